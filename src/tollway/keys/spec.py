"""Validation of what an operator asks for, shared by the CLI and the admin API: a key's or
tenant's settings arrive as a JSON object (admin API) or as flags turned into one (CLI)."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..errors import SpecError
from ..limits.rules import Action, BudgetRule, Limits, Period

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}$")
_DURATION = re.compile(r"^(\d+)([mhdw])$")
_UNIT = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}

KEY_FIELDS = frozenset(
    {
        "name",
        "tenant",
        "models",
        "rpm",
        "tpm",
        "concurrency",
        "budget",
        "budget_period",
        "budget_action",
        "expires",
        "cache",
    }
)
TENANT_FIELDS = frozenset({"rpm", "tpm", "concurrency", "budget", "budget_period", "budget_action"})


def check_name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not NAME.match(value):
        raise SpecError(
            f"{what} must be 1-64 letters, digits, '_', '.', '@' or '-' (starting with a letter "
            f"or digit), got {value!r}"
        )
    return value


def parse_expires(value: Any, now: float | None = None) -> float | None:
    """``None``/"" (never), a duration ("30d", "12h", "90m", "2w"), an ISO date or time (UTC unless it
    says otherwise), or unix seconds."""
    now = time.time() if now is None else now
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        match = _DURATION.match(value.strip())
        if match:
            return now + int(match.group(1)) * _UNIT[match.group(2)]
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return moment.timestamp()
    raise SpecError(
        f"expires must be a duration like 30d, 12h, 2w, an ISO date/time or unix seconds, got {value!r}"
    )


def _positive_int(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(f"{name} must be a positive integer or null, got {value!r}")
    return value


def parse_limits(data: dict[str, Any], base: Limits | None = None) -> Limits:
    """Limits from ``data``; fields absent from ``data`` keep ``base``'s values."""
    base = base or Limits()
    values: dict[str, Any] = {}
    for name in ("rpm", "tpm", "concurrency"):
        values[name] = _positive_int(data, name) if name in data else getattr(base, name)
    budget = base.budget
    if "budget" in data and data["budget"] is None:
        budget = None  # an explicit null removes the budget
    elif any(k in data for k in ("budget", "budget_period", "budget_action")):
        amount = data.get("budget", budget.amount if budget else None)
        if amount is None:
            raise SpecError("budget_period and budget_action need a budget amount")
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount < 0:
            raise SpecError(f"budget must be a number of US dollars >= 0, got {amount!r}")
        period = data.get("budget_period") or (budget.period if budget else Period.MONTH)
        action = data.get("budget_action") or (budget.action if budget else Action.BLOCK)
        try:
            budget = BudgetRule(float(amount), Period(period), Action(action))
        except ValueError:
            raise SpecError(
                f"budget_period must be one of day, week, month, all and budget_action one of "
                f"block, warn; got {period!r}, {action!r}"
            ) from None
    return Limits(values["rpm"], values["tpm"], values["concurrency"], budget)


def parse_models(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise SpecError(f"models must be a list of model names (or a comma-separated string), got {value!r}")
    return tuple(m.strip() for m in value if m.strip())


def parse_cache(value: Any) -> bool:
    """Whether the response cache serves a key's calls: true (the default, also for null) or false."""
    if value is None:
        return True
    if not isinstance(value, bool):
        raise SpecError(f"cache must be true or false, got {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class KeySpec:
    name: str
    tenant: str
    models: tuple[str, ...]
    limits: Limits
    expires_at: float | None
    cache: bool = True

    @classmethod
    def parse(cls, data: dict[str, Any]) -> KeySpec:
        check_fields(data, KEY_FIELDS)
        tenant = data.get("tenant") or ""
        return cls(
            name=check_name(data.get("name")),
            tenant=check_name(tenant, "tenant") if tenant else "",
            models=parse_models(data.get("models")),
            limits=parse_limits(data),
            expires_at=parse_expires(data.get("expires")),
            cache=parse_cache(data.get("cache")),
        )


def check_fields(data: dict[str, Any], allowed: frozenset[str]) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise SpecError(
            f"unknown field(s): {', '.join(unknown)}; expected some of {', '.join(sorted(allowed))}"
        )
