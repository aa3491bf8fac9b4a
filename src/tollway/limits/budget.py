"""Budgets as ledger checks: what a call may cost at most (its reservation), which budget ledgers it
is checked against, and how an exceeded or nearly spent budget is told to the client."""

from __future__ import annotations

from dataclasses import dataclass

from ..call import Usage
from ..pricing import Pricer
from ..routing.health import Deployment
from .ledger import NANO, Check
from .period import Span
from .rules import Action, BudgetRule

BUDGET = "b"
KEEP_AFTER_PERIOD = 86_400.0  # a finished period's counter lingers a day (for reports), then goes


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    """What a budget check stands for, to seed it and to explain a refusal or warning."""

    scope: str  # "key", "tenant" or "gateway"
    name: str  # key id, tenant name, or "" for the gateway
    label: str  # "key 'ci'", "tenant 'acme'", "the gateway"
    rule: BudgetRule
    span: Span


def reservation(pricer: Pricer, deployments: list[Deployment], tokens_in: int, tokens_out: int) -> float:
    """The most the call may cost: its input estimate plus its output allowance, priced at the
    dearest deployment it may be sent to (0 when none has a known price)."""
    usage = Usage(input_tokens=tokens_in, output_tokens=tokens_out)
    most = 0.0
    for dep in deployments:
        cost = pricer.cost(dep.provider.kind, dep.provider.name, dep.upstream_model, dep.model, usage)
        if cost is not None and cost > most:
            most = cost
    return most


def check(
    scope: str,
    name: str,
    label: str,
    rule: BudgetRule,
    span: Span,
    amount: int,
    lease_ttl: float,
    index: int = 0,
) -> tuple[Check, BudgetCheck]:
    """The check of one budget in its current period ``span``."""
    keep = None if span.end is None else span.end + KEEP_AFTER_PERIOD
    ledger = f"{BUDGET}:{scope}:{name or index}:{span.id}"
    return (
        Check(
            ledger,
            round(rule.amount * NANO),
            amount,
            lease_ttl,
            budget=True,
            enforce=rule.action is Action.BLOCK,
            keep_until=keep,
        ),
        BudgetCheck(scope, name, label, rule, span),
    )


def _period(rule: BudgetRule) -> str:
    return {"day": "daily", "week": "weekly", "month": "monthly", "all": "all-time"}[rule.period.value]


def refusal(b: BudgetCheck, used: int, amount: int) -> str:
    return (
        f"Budget exceeded: {b.label} has used ${used / NANO:.6f} of its ${b.rule.amount:.2f} "
        f"{_period(b.rule)} budget (spent, plus reserved by calls in flight), and this call could cost "
        f"up to ${amount / NANO:.6f}."
    )


def warning(b: BudgetCheck, used: int) -> str:
    return (
        f"{b.label} is over its {_period(b.rule)} budget: ${used / NANO:.6f} of ${b.rule.amount:.2f} "
        "(spent, plus reserved by calls in flight)"
    )
