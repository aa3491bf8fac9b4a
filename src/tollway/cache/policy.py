"""Whether one call may be answered from the cache, may fill it, and may share an identical call in
flight — decided from the configuration, the model, the key and the client's ``Cache-Control``.

- ``cache.enabled``, overridden per requested model by ``cache.models`` (fnmatch patterns, the first
  match wins) and per virtual key by ``call.cache_enabled`` (set in stage 1).
- ``cache.temperature_policy``: "skip" caches and shares only calls that ask for temperature 0 (an
  absent temperature means the provider's default, which samples); "cache" caches every call (a
  cached answer is then one sample that every identical call gets).
- ``Cache-Control: no-cache``: do not answer from the cache nor join a call in flight, but store
  the fresh answer. ``no-store``: none of it, and nothing of this call is kept or shared.
- Once answered, only a whole answer fills the cache (``cacheable``): finished with ``stop`` or
  ``length``, no tool call awaiting its result.
- Every client protocol takes part: each has a codec that stores and replays its answers
  (``protocols.base.CacheCodec``).
"""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from ..call import Call, Endpoint
from ..config import CacheConfig

# A cached answer must be the whole answer: no tool call waiting for its result, nothing cut short
# by the provider's filter, nothing unfinished.
CACHEABLE_FINISH = frozenset({"stop", "length"})


def cacheable(completion: dict[str, Any]) -> bool:
    """May this answer (a pivot completion) fill the cache? Only a finished one with no tool call
    awaiting its result."""
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        return False
    for choice in choices:
        if not isinstance(choice, dict) or choice.get("finish_reason") not in CACHEABLE_FINISH:
            return False
        message = choice.get("message")
        if not isinstance(message, dict) or message.get("tool_calls") or message.get("function_call"):
            return False
    return True


@dataclass(frozen=True, slots=True)
class Decision:
    lookup: bool = False  # may answer from the cache (and join an identical call in flight)
    store: bool = False  # may fill the cache (and let identical calls join this one)
    semantic: bool = False  # may also look up / index by meaning

    @property
    def active(self) -> bool:
        return self.lookup or self.store


BYPASS = Decision()


def _directives(header: str) -> set[str]:
    return {part.strip().split("=", 1)[0].lower() for part in header.split(",") if part.strip()}


class Policy:
    def __init__(self, config: CacheConfig) -> None:
        self._config = config
        self._exact = {m: on for m, on in config.models.items() if not any(c in m for c in "*?[")}
        self._patterns = [(m, on) for m, on in config.models.items() if m not in self._exact]
        self._semantic_models = tuple(config.semantic.models)
        self._memo: dict[str, tuple[bool, bool]] = {}
        self._skip_sampled = config.temperature_policy == "skip"

    def _model(self, model: str) -> tuple[bool, bool]:
        """(cached, semantic) for a requested model; memoized, the set of names is small."""
        known = self._memo.get(model)
        if known is not None:
            return known
        on = self._exact.get(model)
        if on is None:
            on = next((v for m, v in self._patterns if fnmatchcase(model, m)), self._config.enabled)
        sem = self._config.semantic
        semantic = (
            on
            and sem.enabled
            and (
                not self._semantic_models
                or any(model == m or fnmatchcase(model, m) for m in self._semantic_models)
            )
        )
        if len(self._memo) < 4096:
            self._memo[model] = (on, semantic)
        return on, semantic

    def decide(self, call: Call) -> Decision:
        if not call.cache_enabled:
            return BYPASS
        on, semantic = self._memo.get(call.model) or self._model(call.model)
        if not on:
            return BYPASS
        if self._skip_sampled and call.endpoint is Endpoint.CHAT:
            temperature = call.body.get("temperature")
            if temperature is None or temperature != 0:
                return BYPASS
        lookup = True
        if call.cache_control:
            directives = _directives(call.cache_control)
            if "no-store" in directives:
                return BYPASS
            lookup = "no-cache" not in directives
        return Decision(lookup=lookup, store=True, semantic=semantic and call.endpoint is Endpoint.CHAT)
