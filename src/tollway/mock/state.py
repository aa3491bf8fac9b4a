"""The mutable state one mock server shares across its wire formats: start options, the active fault
and quirks, request counters, and ``MockState.admit``, with which every API handler begins.

It lives apart from ``server`` so that the wire formats (which ``server`` imports to register their
routes) can use it without importing ``server`` back."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from tollway.mock.faults import (
    ErrorRenderer,
    Fault,
    FaultSlot,
    Plan,
    Quirks,
    inject,
    make_fault,
    make_plan,
    parse_directives,
    parse_settings,
)

DEFAULT_MODELS: tuple[str, ...] = (
    "gpt-4o-mini",
    "gpt-4o",
    "gpt-4.1-mini",
    "o4-mini",
    "text-embedding-3-small",
    "text-embedding-3-large",
)
KeyReader = Callable[[web.Request], "str | None"]
"""Where a wire format's requests carry their API key: the key presented, or None."""


def bearer_key(request: web.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (OpenAI's way)."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token if scheme == "Bearer" and token else None


@dataclass(frozen=True, slots=True)
class MockOptions:
    models: Sequence[str] = DEFAULT_MODELS  # served by the model list; strict_models accepts only these
    reply_words: int = 12
    strict_models: bool = False
    api_key: str | None = None  # when set, API requests must present it, each format its own way
    chunk_delay_ms: float = 0
    omit_tool_call_index: bool = False
    no_usage: bool = False
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    fault: Fault | None = None  # active from the start, like POST /__mock/faults

    def quirks(self) -> Quirks:
        return Quirks(self.omit_tool_call_index, self.no_usage, self.cached_tokens, self.reasoning_tokens)


class Stats:
    """Counts of API requests received, by path and by requested model."""

    def __init__(self) -> None:
        self.requests = 0
        self.by_path: Counter[str] = Counter()
        self.by_model: Counter[str] = Counter()

    def record(self, path: str, model: str | None) -> None:
        self.requests += 1
        self.by_path[path] += 1
        if model is not None:
            self.by_model[model] += 1

    def snapshot(self) -> dict[str, Any]:
        return {"requests": self.requests, "by_path": dict(self.by_path), "by_model": dict(self.by_model)}


class MockState:
    """The mutable state one mock server shares across its wire formats."""

    def __init__(self, options: MockOptions) -> None:
        self.options = options
        self.models = tuple(options.models)
        self.slot = FaultSlot(options.fault)
        self.quirks = options.quirks()
        self.stats = Stats()

    def configure(self, values: dict[str, object]) -> None:
        """Replace the active fault and quirk overrides (ValueError if a field is malformed)."""
        settings = parse_settings(values)
        self.slot.set(make_fault(settings) if settings.fault else None)
        self.quirks = replace(self.options.quirks(), **settings.quirks)

    def clear(self) -> None:
        self.slot.set(None)
        self.quirks = self.options.quirks()

    def reset(self) -> None:
        self.clear()
        self.stats = Stats()

    def knows_model(self, model: str) -> bool:
        return not self.options.strict_models or model in self.models

    async def admit(
        self,
        request: web.Request,
        *,
        model: str | None,
        prompt: str,
        reject: ErrorRenderer,
        key: KeyReader = bearer_key,
    ) -> Plan | web.StreamResponse:
        """Count the request, then fault it or check its key; its Plan, or the response to send.

        A wrong or missing key is refused with ``reject(401, ..., "invalid_api_key")``.
        """
        self.stats.record(request.path, model)
        try:
            directives, prompt = parse_directives(prompt)
        except ValueError as exc:
            return reject(400, str(exc), None)
        options = self.options
        plan = make_plan(
            self.slot.take(),
            self.quirks,
            directives,
            prompt,
            words=options.reply_words,
            chunk_delay_ms=options.chunk_delay_ms,
        )
        failed = await inject(request, plan.fault, reject)
        if failed is not None:
            return failed
        if options.api_key is not None and key(request) != options.api_key:
            return reject(401, "Incorrect API key provided.", "invalid_api_key")
        return plan
