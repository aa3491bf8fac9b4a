"""What may be limited: the rate limits and the budget one key or tenant carries."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Period(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    ALL = "all"


class Action(StrEnum):
    BLOCK = "block"  # refuse a call that might not fit (429 budget_exceeded)
    WARN = "warn"  # let it through with an x-tollway-budget-warning header and a log line


@dataclass(frozen=True, slots=True)
class BudgetRule:
    amount: float  # US dollars per period
    period: Period = Period.MONTH
    action: Action = Action.BLOCK

    def to_json(self) -> dict[str, Any]:
        return {"amount": self.amount, "period": self.period.value, "action": self.action.value}


@dataclass(frozen=True, slots=True)
class Limits:
    """Limits of one key or tenant; None means unlimited."""

    rpm: int | None = None  # requests per minute
    tpm: int | None = None  # tokens per minute (input estimate + max_tokens, corrected after the call)
    concurrency: int | None = None  # requests in flight at once
    budget: BudgetRule | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "rpm": self.rpm,
            "tpm": self.tpm,
            "concurrency": self.concurrency,
            "budget": None if self.budget is None else self.budget.to_json(),
        }


NO_LIMITS = Limits()
