"""ASGI assembly and lifespan: the routing table, the stores and background writers, startup and a
graceful stop that flushes every queued log row."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Self

import uvicorn

from .asgi import Receive, Scope, Send, respond
from .cache import make_cache
from .config import Config, ProviderConfig, storage_url
from .dedup import Flights
from .errors import GatewayNotReady, MethodNotAllowed, NotFound, TollwayError
from .ingress import admin, admin_api, anthropic, models, openai, stats
from .keys.cache import KeyCache
from .keys.repository import KeyRepository
from .limits import make_limiter
from .observe.sinks import LogSink, Sinks
from .pricing import Pricer
from .providers.base import Upstream
from .providers.registry import FACTS
from .routing import Router
from .runtime import Runtime
from .store import LogStore, LogWriter

log = logging.getLogger("tollway")

Handler = Callable[[Runtime, Scope, Receive, Send], Awaitable[None]]

ROUTES: dict[str, dict[str, Handler]] = {
    "/v1/chat/completions": {"POST": openai.chat_completions},
    "/v1/messages": {"POST": anthropic.messages},
    "/v1/messages/count_tokens": {"POST": anthropic.count_tokens},
    "/v1/embeddings": {"POST": openai.embeddings},
    "/v1/models": {"GET": models.models},
    "/v1/backends": {"GET": admin.backends},
    "/health": {"GET": admin.health},
    "/stats": {"GET": stats.stats},
}
_ONE_MODEL: dict[str, Handler] = {"GET": models.model}  # /v1/models/{id}, matched by prefix
# clients configured with a base URL without /v1 still work
for _path in ("/chat/completions", "/embeddings", "/models", "/messages", "/messages/count_tokens"):
    ROUTES[_path] = ROUTES["/v1" + _path]


def make_upstream(provider: ProviderConfig) -> Upstream:
    """The upstream speaking ``provider``'s wire protocol (its class comes from the registry)."""
    return FACTS[provider.kind].upstream_class()(provider)


async def open_runtime(
    config: Config, storage: str, upstream: Callable[[ProviderConfig], Upstream] = make_upstream
) -> Runtime:
    """Every part of a running gateway, built and started (``close_runtime`` stops them). The
    benchmarks build theirs here too, with ``upstream`` standing in for the providers."""
    store = await LogStore.open(storage)
    writer = LogWriter(
        store, batch_size=config.storage.batch_size, flush_interval=config.storage.flush_interval
    )
    await writer.start()
    pricer = Pricer(config.prices)
    kc = config.keys
    keys = KeyCache(
        KeyRepository(store.db),
        refresh_interval=kc.refresh_interval,
        negative_ttl=kc.negative_ttl,
        required=kc.auth == "required",
    )
    await keys.start()
    limiter = make_limiter(config, pricer, store)
    await limiter.start()
    embedder = None
    semantic = config.cache.semantic
    if semantic.enabled and semantic.embedder != "local":
        # numpy is an optional extra, imported only when the semantic cache is on
        from .cache.gateway_embed import GatewayEmbedder

        embedder = GatewayEmbedder(semantic.embedder)
    cache = make_cache(config, embedder)
    await cache.start()
    return Runtime(
        config,
        Router(config, upstream),
        pricer,
        store,
        writer,
        keys,
        limiter,
        cache,
        Flights(),
        Sinks([LogSink(writer)]),
    )


async def close_runtime(rt: Runtime) -> None:
    """Stop what ``open_runtime`` started; every queued log row is written first."""
    await rt.keys.stop()
    await rt.limits.close()
    await rt.cache.close()
    await rt.writer.stop()
    await rt.store.close()
    for upstream in rt.router.upstreams():
        await upstream.close()


class Gateway:
    """The ASGI application."""

    def __init__(
        self,
        config: Config,
        *,
        storage: str | None = None,
        embedded_mock: bool = False,
        tune_gc: bool = False,
    ) -> None:
        self.config = config
        self._tune_gc = tune_gc  # a process of its own (tollway start), not a test embedding it
        self.storage = storage if storage is not None else storage_url(config)
        self.runtime: Runtime | None = None
        self._embedded_mock = embedded_mock
        self._mocks: list[Any] = []

    async def _start_embedded_mocks(self) -> None:
        """No providers configured: serve two built-in fake providers so tollway can be tried."""
        from .mock import MockOptions, start_mock

        models = ["gpt-4o-mini", "gpt-4o", "text-embedding-3-small"]
        providers = []
        for priority, name in enumerate(("mock-a", "mock-b")):
            mock = await start_mock(options=MockOptions(models=models))
            self._mocks.append(mock)
            providers.append(
                ProviderConfig(
                    name=name,
                    kind="mock",
                    base_url=f"{mock.url}/v1",
                    models={m: m for m in models},
                    priority=priority,
                )
            )
        self.config = self.config.model_copy(update={"providers": providers})

    async def startup(self) -> None:
        if self._embedded_mock and not self._mocks:
            await self._start_embedded_mocks()
        self.runtime = await open_runtime(self.config, self.storage)
        if self._tune_gc:
            tune_process_gc()

    async def shutdown(self) -> None:
        rt, self.runtime = self.runtime, None
        if rt is None:
            return
        await close_runtime(rt)
        for mock in self._mocks:
            await mock.close()
        self._mocks.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            rt = self.runtime
            methods = ROUTES.get(scope["path"])
            if methods is None and rt is not None:
                path = scope["path"]
                if path.startswith(admin_api.PREFIX):
                    await admin_api.dispatch(rt, scope, receive, send)  # token-guarded, its own router
                    return
                if path.startswith(models.PREFIXES):
                    methods = _ONE_MODEL
            handler = None if methods is None else methods.get(scope["method"])
            if rt is not None and handler is not None:
                await handler(rt, scope, receive, send)
                return
            await self._no_route(scope, send, methods)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _no_route(self, scope: Scope, send: Send, methods: dict[str, Handler] | None) -> None:
        err: TollwayError
        if methods is None:
            err = NotFound(f"Unknown path {scope['method']} {scope['path']}.")
        elif self.runtime is None:
            err = GatewayNotReady("The gateway is starting or stopping.")
        else:
            err = MethodNotAllowed(
                f"{scope['method']} is not allowed on {scope['path']}; use {', '.join(methods)}."
            )
        import orjson

        await respond(
            send, err.status, orjson.dumps(err.openai_envelope()), [(b"content-type", b"application/json")]
        )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("startup failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                finally:
                    await send({"type": "lifespan.shutdown.complete"})
                return


GC_YOUNG_THRESHOLD = 5_000
"""Net allocations of container objects between two young-generation collections (CPython's default
is 700). Each collection walks every young object still alive, and under load that is mostly the
requests in flight, so at the default the collector ran every few requests and took ~8 % of the
gateway's time (py-spy); at 5,000 it runs ~7x less often. Garbage cycles wait a little longer:
at most a few thousand small objects, well under a megabyte. Measured in docs/benchmarks.md."""


def tune_process_gc() -> None:
    """For a gateway process of its own (``tollway start``), once startup is done."""
    # Everything allocated so far (modules, config, tables) lives as long as the process: move it
    # out of the collector's sight, so full collections walk only per-request garbage (they
    # otherwise cost tens of milliseconds each and showed up as the p99 under load).
    gc.freeze()  # no collect first: it cost 60 ms of startup for a few KB of import garbage
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, older, oldest)


def uvicorn_config(app: Any, host: str, port: int, *, fd: int | None = None) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        fd=fd,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        timeout_graceful_shutdown=10,
        server_header=False,
        date_header=False,
        proxy_headers=False,
    )


@dataclass
class RunningServer:
    url: str
    port: int
    gateway: Gateway
    _server: uvicorn.Server
    _task: asyncio.Task[None]

    async def close(self) -> None:
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


async def start_server(
    config: Config, *, host: str = "127.0.0.1", port: int = 0, storage: str | None = None
) -> RunningServer:
    """Serve a gateway inside the running event loop (tests, the demo). Port 0 picks a free port."""
    gateway = Gateway(config, storage=storage)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    cfg = uvicorn_config(gateway, host, bound)
    cfg.loop = "none"
    server = uvicorn.Server(cfg)
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]  # the host owns signals
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("the gateway did not start")
        await asyncio.sleep(0.005)
    return RunningServer(f"http://{host}:{bound}", bound, gateway, server, task)
