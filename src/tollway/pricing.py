"""Cost of a call: per-token prices from the maintained ``genai-prices`` library, overridable per
model in config. Input, cached input, cache writes, output and reasoning tokens are priced
separately.

A price lookup in ``genai-prices`` costs tens of microseconds, so each (provider, upstream model,
public name) is resolved once into plain per-token rates and cached; a model the library prices in
tiers (by prompt size) falls back to the library's own calculation for every call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from .call import Usage
from .config import PriceConfig
from .providers.registry import FACTS

log = logging.getLogger("tollway.pricing")


@dataclass(frozen=True, slots=True)
class Rates:
    """US dollars per token."""

    input: float
    output: float
    cached_input: float
    cache_write: float
    reasoning: float

    def cost(self, usage: Usage) -> float:
        # not max(0, …): a builtin call each, on every priced call
        inp, cached, written = usage.input_tokens, usage.cached_tokens, usage.cache_write_tokens
        fresh = inp - cached - written if inp > cached + written else 0
        out, reasoning = usage.output_tokens, usage.reasoning_tokens
        plain_output = out - reasoning if out > reasoning else 0
        return (
            fresh * self.input
            + usage.cached_tokens * self.cached_input
            + usage.cache_write_tokens * self.cache_write
            + plain_output * self.output
            + usage.reasoning_tokens * self.reasoning
        )


def _rates_from_override(p: PriceConfig) -> Rates:
    m = 1e-6
    return Rates(
        input=p.input * m,
        output=p.output * m,
        cached_input=(p.input if p.cached_input is None else p.cached_input) * m,
        cache_write=(p.input if p.cache_write is None else p.cache_write) * m,
        reasoning=(p.output if p.reasoning is None else p.reasoning) * m,
    )


def _plain(value: Any) -> float | None:
    if value is None:
        return 0.0
    if isinstance(value, (int, float, Decimal)):
        return float(value) * 1e-6
    return None  # tiered or conditional: not a single rate


class _LibraryPrice:
    """A model the library prices in tiers: delegate each call to it."""

    def __init__(self, model_price: Any) -> None:
        self._price = model_price

    def cost(self, usage: Usage) -> float:
        from genai_prices import Usage as LibUsage

        result = self._price.calc_price(
            LibUsage(
                input_tokens=usage.input_tokens,
                cache_read_tokens=usage.cached_tokens,
                cache_write_tokens=usage.cache_write_tokens,
                output_tokens=usage.output_tokens,
            )
        )
        return float(result["total_price"])


MAX_RESOLVED = 4096  # (provider, upstream model, public name) triples kept; clients can invent names


class Pricer:
    def __init__(self, overrides: dict[str, PriceConfig]) -> None:
        self._overrides = {name: _rates_from_override(p) for name, p in overrides.items()}
        self._cache: dict[tuple[str, str, str], Rates | _LibraryPrice | None] = {}

    def cost(
        self, provider_kind: str, provider_name: str, upstream_model: str, public_model: str, usage: Usage
    ) -> float | None:
        """Dollars for this usage, or None when the model has no known price."""
        # the public name is part of the key: two aliases of one upstream model may be priced apart
        key = (provider_name, upstream_model, public_model)
        try:
            price = self._cache[key]
        except KeyError:
            if len(self._cache) >= MAX_RESOLVED:
                self._cache.clear()
            price = self._cache[key] = self._resolve(
                provider_kind, provider_name, upstream_model, public_model
            )
        return None if price is None else price.cost(usage)

    def _resolve(
        self, kind: str, name: str, upstream_model: str, public_model: str
    ) -> Rates | _LibraryPrice | None:
        for ref in (f"{name}/{upstream_model}", upstream_model, public_model):
            if ref in self._overrides:
                return self._overrides[ref]
        facts = FACTS[kind]
        if not facts.priced:
            return None
        from genai_prices import Usage as LibUsage
        from genai_prices import calc_price

        try:
            found = calc_price(
                LibUsage(input_tokens=0, output_tokens=0),
                model_ref=upstream_model,
                provider_id=facts.price_id,
            )
        except LookupError:
            log.warning(
                "no price known for %s/%s: its calls are logged with no cost "
                "(add a [prices] entry to set one)",
                name,
                upstream_model,
            )
            return None
        mp = found.model_price
        rates = [
            _plain(getattr(mp, f, None))
            for f in ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")
        ]
        if any(r is None for r in rates):
            return _LibraryPrice(mp)
        inp, out, cread, cwrite = (r or 0.0 for r in rates)
        return Rates(
            input=inp,
            output=out,
            cached_input=cread if getattr(mp, "cache_read_mtok", None) is not None else inp,
            cache_write=cwrite if getattr(mp, "cache_write_mtok", None) is not None else inp,
            reasoning=out,
        )
