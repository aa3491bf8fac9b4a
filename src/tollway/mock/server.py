"""One fake-provider server: every wire format's routes, the control endpoints, start and run.

Each wire format lives in a sibling module exposing ``register(app, state)``; ``FORMATS`` lists
them, so one server on one port answers OpenAI (``/v1/chat/completions``...), Anthropic
(``/v1/messages``) and Gemini (``/v1beta/models/{model}:generateContent``...) requests alike.
Handlers begin every API request with ``MockState.admit`` (in ``state``), which counts it, applies
the fault and the API-key check, and hands back the request's ``Plan``.

Control endpoints (never counted, faulted or key-checked):

    POST   /__mock/faults   set the active fault and quirk overrides (JSON body, fields optional)
    GET    /__mock/faults   the active settings
    DELETE /__mock/faults   clear the fault; quirks back to the start options
    GET    /__mock/stats    {"requests": N, "by_path": {...}, "by_model": {...}}
    POST   /__mock/reset    clear the fault, quirk overrides and counters
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable
from types import TracebackType
from typing import Any, Self

import orjson
from aiohttp import web

from tollway.mock import anthropic, gemini, openai
from tollway.mock.faults import describe
from tollway.mock.state import MockOptions, MockState

CONTROL_PREFIX = "/__mock/"

FormatRegistrar = Callable[[web.Application, MockState], None]
FORMATS: tuple[FormatRegistrar, ...] = (openai.register, anthropic.register, gemini.register)

STATE: web.AppKey[MockState] = web.AppKey("tollway_mock_state", MockState)


def build_app(options: MockOptions) -> web.Application:
    """The mock server's application: every wire format, the control endpoints, a JSON 404."""
    app = web.Application()
    state = MockState(options)
    app[STATE] = state
    for register in FORMATS:
        register(app, state)
    _add_control_routes(app, state)
    app.router.add_route("*", "/{tail:.*}", _unknown_route(state))
    return app


def _json(value: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(value), content_type="application/json")


def _add_control_routes(app: web.Application, state: MockState) -> None:
    async def set_fault(request: web.Request) -> web.Response:
        try:
            values = orjson.loads(await request.read() or b"{}")
            if not isinstance(values, dict):
                raise TypeError("the body must be a JSON object")
            state.configure(values)
        except (ValueError, TypeError) as exc:  # orjson.JSONDecodeError is a ValueError
            return _json({"error": str(exc)}, 400)
        return _json(describe(state.slot, state.quirks))

    async def get_fault(_: web.Request) -> web.Response:
        return _json(describe(state.slot, state.quirks))

    async def clear_fault(_: web.Request) -> web.Response:
        state.clear()
        return _json(describe(state.slot, state.quirks))

    async def stats(_: web.Request) -> web.Response:
        return _json(state.stats.snapshot())

    async def reset(_: web.Request) -> web.Response:
        state.reset()
        return _json(describe(state.slot, state.quirks))

    app.router.add_post(CONTROL_PREFIX + "faults", set_fault)
    app.router.add_get(CONTROL_PREFIX + "faults", get_fault)
    app.router.add_delete(CONTROL_PREFIX + "faults", clear_fault)
    app.router.add_get(CONTROL_PREFIX + "stats", stats)
    app.router.add_post(CONTROL_PREFIX + "reset", reset)


def _unknown_route(state: MockState) -> Callable[[web.Request], Any]:
    async def unknown(request: web.Request) -> web.Response:
        if not request.path.startswith(CONTROL_PREFIX):
            state.stats.record(request.path, None)
        return openai.error_response(404, f"Invalid URL ({request.method} {request.path})", None)

    return unknown


class RunningMock:
    """A mock server listening on a socket; also an async context manager that closes it."""

    def __init__(self, runner: web.AppRunner, state: MockState, host: str, port: int) -> None:
        self._runner = runner
        self.state = state
        self.host = host
        self.port = port
        self.url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    async def set_fault(self, **fields: object) -> None:
        """Same fields as ``POST /__mock/faults``; ValueError if one is malformed."""
        self.state.configure(fields)

    async def clear_fault(self) -> None:
        self.state.clear()

    async def reset(self) -> None:
        self.state.reset()

    def stats(self) -> dict[str, Any]:
        return self.state.stats.snapshot()

    async def close(self) -> None:
        await self._runner.cleanup()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


async def start_mock(
    host: str = "127.0.0.1", port: int = 0, options: MockOptions | None = None
) -> RunningMock:
    """Start a mock server in the running event loop; port 0 picks a free port."""
    app = build_app(options or MockOptions())
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1]
    return RunningMock(runner, app[STATE], host, int(bound))


def run(host: str, port: int, options: MockOptions) -> None:
    """Serve until interrupted (``tollway mock``); prints one line saying where it listens."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    with contextlib.suppress(ImportError):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve(host, port, options))


async def _serve(host: str, port: int, options: MockOptions) -> None:
    async with await start_mock(host, port, options) as mock:
        print(
            f"tollway mock listening on {mock.url} (OpenAI base URL {mock.url}/v1; "
            f"Anthropic and Gemini base URL {mock.url})",
            flush=True,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        await stop.wait()
