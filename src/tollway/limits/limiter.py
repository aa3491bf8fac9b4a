"""Stage 3, admit, and its settlement: the rate limits and budgets of one call, held in a ``Backend``.

``admit`` turns the principal's limits into ledger checks (``ratelimit``, ``budget``) and asks the
backend to record them all or refuse; ``settle`` runs when the call ends, whatever happened: the
token estimate becomes the real count, the concurrency slot is freed, and each budget reservation
becomes the real cost (``call.cost``; 0 when nothing was charged, i.e. a release).

When the backend is unreachable (Redis down), the limiter never counts per process instead. It
follows ``limits.on_unavailable``: ``fail_closed`` answers 503, ``fail_open`` admits without limits.
It logs the outage once loudly and then every ``REMINDER_EVERY`` seconds, shows it in ``/health``,
stops sending commands to the backend (no timeout per request) and pings it every
``PROBE_INTERVAL`` seconds; when it answers, settlements queued meanwhile are replayed (so spend of
calls admitted during the outage still counts) and limits apply again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from ..call import Call
from ..config import Config
from ..errors import BudgetExceeded, LimitsUnavailable, RateLimited, StoreError
from ..pricing import Pricer
from ..routing.health import Deployment
from . import budget, ratelimit
from .ledger import Backend, Check, Op, Result, Settlement, nanos
from .period import Span, current
from .rules import Action, BudgetRule, Period

if TYPE_CHECKING:
    from ..keys.key import Principal

log = logging.getLogger("tollway.limits")

PROBE_INTERVAL = 0.5
REMINDER_EVERY = 30.0
WARN_LOG_EVERY = 60.0  # seconds between log lines about the same over-budget "warn" ledger
MAX_PENDING = 100_000  # settlements kept for replay during an outage

# (scope, name, since) -> US dollars already spent, from the request log
Seeder = Callable[[str, str, float], Awaitable[float]]


class State(StrEnum):
    OK = "ok"
    UNREACHABLE = "unreachable"


@dataclass(slots=True)
class Ticket:
    """What ``admit`` recorded for one call, for ``settle`` to finish."""

    entry: str
    checks: list[Check]
    unlimited: bool = False  # admitted under fail_open while the backend was unreachable


class Limiter:
    def __init__(
        self,
        config: Config,
        backend: Backend,
        pricer: Pricer,
        *,
        seeder: Seeder | None = None,
        unavailable: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.backend = backend
        self.policy = config.limits.on_unavailable
        self.state = State.OK
        self.since = 0.0  # when the current outage began
        self.admitted_without_limits = 0
        self.refused_unavailable = 0
        self._unavailable = unavailable
        self._pricer = pricer
        self._seeder = seeder
        self._tz = ZoneInfo(config.budgets.timezone)
        self._default_max_tokens = config.limits.default_max_tokens
        self._lease_ttl = config.limits.lease_ttl
        self._max_attempts = config.failover.max_attempts
        self._gateway_budgets = [
            BudgetRule(b.amount, Period(b.period), Action(b.action)) for b in config.budgets.gateway
        ]
        self._has_gateway_budgets = bool(self._gateway_budgets)
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._pending: deque[tuple[str, list[Settlement]]] = deque(maxlen=MAX_PENDING)
        self._probe: asyncio.Task[None] | None = None
        self._warned: dict[str, float] = {}
        self._spans: dict[Period, Span] = {}  # the current period of each kind, until it ends

    async def start(self) -> None:
        try:
            await self.backend.ping()
        except self._unavailable as exc:
            self._lost(exc)
        else:
            log.info("limits: %s backend ready (policy when unreachable: %s)", self.backend.name, self.policy)

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probe
        await self.backend.close()

    # -- admission --------------------------------------------------------------------------------

    def applies(self, principal: Principal) -> bool:
        """Can any limit or budget apply to this principal's calls? When not, ``admit`` has nothing to
        record and returns None: a caller may skip it."""
        return principal.key is not None or principal.tenant is not None or self._has_gateway_budgets

    async def admit(self, call: Call, principal: Principal, candidates: list[Deployment]) -> Ticket | None:
        """Record the call against every limit that applies, or raise RateLimited / BudgetExceeded /
        LimitsUnavailable. None when no limit applies (nothing to settle)."""
        key, tenant = principal.key, principal.tenant
        key_limits, tenant_limits = principal.key_limits, principal.tenant_limits
        budgeted = (
            key_limits.budget is not None or tenant_limits.budget is not None or bool(self._gateway_budgets)
        )
        tokens_in = tokens_out = 0
        if budgeted or key_limits.tpm is not None or tenant_limits.tpm is not None:
            tokens_in, tokens_out = ratelimit.estimate_tokens(call, self._default_max_tokens)
        checks: list[Check] = []
        if key is not None:
            ratelimit.checks("key", key.id, key_limits, tokens_in + tokens_out, self._lease_ttl, checks)
        if tenant is not None:
            ratelimit.checks(
                "tenant", tenant.name, tenant_limits, tokens_in + tokens_out, self._lease_ttl, checks
            )
        budgets: dict[int, budget.BudgetCheck] = {}
        if budgeted:
            amount = nanos(
                budget.reservation(self._pricer, candidates[: self._max_attempts], tokens_in, tokens_out)
            )
            now = time.time()
            spans = self._spans
            wanted: list[tuple[str, str, str, BudgetRule, int]] = []
            if key is not None and key_limits.budget is not None:
                wanted.append(("key", key.id, f"key '{key.name}'", key_limits.budget, 0))
            if tenant is not None and tenant_limits.budget is not None:
                wanted.append(("tenant", tenant.name, f"tenant '{tenant.name}'", tenant_limits.budget, 0))
            wanted += [
                ("gateway", "", "the gateway", rule, i) for i, rule in enumerate(self._gateway_budgets)
            ]
            for scope, name, label, rule, index in wanted:
                span = spans.get(rule.period)
                if span is None or (span.end is not None and now >= span.end):
                    span = spans[rule.period] = current(rule.period, self._tz, now)
                check, about = budget.check(scope, name, label, rule, span, amount, self._lease_ttl, index)
                budgets[len(checks)] = about
                checks.append(check)
        if not checks:
            return None
        if self.state is State.UNREACHABLE:
            return self._without_backend(call, checks)
        try:
            result = await self._admit(call.request_id, checks, budgets)
        except self._unavailable as exc:
            self._lost(exc)
            return self._without_backend(call, checks)
        if not result.admitted:
            raise self._refusal(call, checks, result, budgets)
        call.extra_headers += ratelimit.headers(checks, result)
        for index, about in budgets.items():
            check = checks[index]
            if not check.enforce and result.used[index] > check.limit:
                self._warn(call, check, budget.warning(about, result.used[index]))
        return Ticket(call.request_id, checks)

    async def _admit(self, entry: str, checks: list[Check], budgets: dict[int, budget.BudgetCheck]) -> Result:
        for _ in range(3):
            result = await self.backend.admit(entry, checks)
            if not result.unseeded:
                return result
            await asyncio.gather(*(self._seed(checks[i], budgets[i]) for i in result.unseeded))
        raise LimitsUnavailable("Budget counters could not be initialised; retry shortly.")

    async def _seed(self, check: Check, about: budget.BudgetCheck) -> None:
        pending = self._seeding.get(check.ledger)
        if pending is None:
            pending = self._seeding[check.ledger] = asyncio.ensure_future(self._seed_one(check, about))
            pending.add_done_callback(lambda _: self._seeding.pop(check.ledger, None))
        await asyncio.shield(pending)

    async def _seed_one(self, check: Check, about: budget.BudgetCheck) -> None:
        spent = 0.0
        if self._seeder is not None:
            try:
                spent = await self._seeder(about.scope, about.name, about.span.start)
            except (StoreError, OSError) as exc:
                log.error("limits: reading %s's spend from the request log failed: %r", about.label, exc)
                raise LimitsUnavailable(
                    "Budgets cannot be checked: the request log is unreachable; retry shortly."
                ) from None
        log.info(
            "limits: %s's %s budget starts from $%.6f already spent (request log since %s)",
            about.label,
            about.rule.period.value,
            spent,
            time.strftime("%Y-%m-%d %H:%M", time.localtime(about.span.start)),
        )
        await self.backend.seed(check.ledger, nanos(spent), check.keep_until)

    def _refusal(
        self, call: Call, checks: list[Check], result: Result, budgets: dict[int, budget.BudgetCheck]
    ) -> RateLimited | BudgetExceeded:
        check = checks[result.failed]
        call.extra_headers += ratelimit.headers(checks, result)
        if check.budget:
            about = budgets[result.failed]
            err: RateLimited | BudgetExceeded = BudgetExceeded(
                budget.refusal(about, result.used[result.failed], check.amount)
            )
            err.retry_after = None if about.span.end is None else max(1.0, about.span.end - time.time())
            call.extra_headers.append((b"x-should-retry", b"false"))
            return err
        if check.amount > check.limit:
            call.extra_headers.append((b"x-should-retry", b"false"))
            return RateLimited(
                f"Request too large for {ratelimit.describe(check)}: it may use {check.amount} "
                "tokens (prompt estimate + max_tokens). Lower max_tokens."
            )
        err = RateLimited(
            f"Rate limit reached for {ratelimit.describe(check)}. "
            f"Retry in {ratelimit.duration(result.retry_after)}."
        )
        err.retry_after = result.retry_after
        return err

    def _warn(self, call: Call, check: Check, text: str) -> None:
        call.extra_headers.append((b"x-tollway-budget-warning", text.encode("ascii", "replace")))
        now = time.monotonic()
        if now - self._warned.get(check.ledger, -WARN_LOG_EVERY) >= WARN_LOG_EVERY:
            self._warned[check.ledger] = now
            log.warning("budget warning: %s", text)

    # -- settlement -------------------------------------------------------------------------------

    async def settle(self, call: Call, ticket: Ticket) -> None:
        """Finish a call's admission. Runs to completion even if the caller is cancelled."""
        settlements: list[Settlement] = []
        for check in ticket.checks:
            kind = check.ledger[0]
            if kind == ratelimit.TOKENS:
                used = call.usage.total_tokens if call.usage is not None else 0
                settlements.append(Settlement(check.ledger, Op.SET, used))
            elif kind == ratelimit.CONCURRENT:
                settlements.append(Settlement(check.ledger, Op.RELEASE))
            elif kind == budget.BUDGET:
                settlements.append(Settlement(check.ledger, Op.SPEND, nanos(call.cost or 0.0)))
        if not settlements:
            return
        if self.backend.local:  # no I/O, so nothing can interrupt it halfway
            await self._settle(ticket.entry, settlements)
        else:
            await asyncio.shield(asyncio.ensure_future(self._settle(ticket.entry, settlements)))

    async def _settle(self, entry: str, settlements: list[Settlement]) -> None:
        if self.state is State.UNREACHABLE:
            self._pending.append((entry, settlements))
            return
        try:
            await self.backend.settle(entry, settlements)
        except self._unavailable as exc:
            self._pending.append((entry, settlements))
            self._lost(exc)

    # -- outages ----------------------------------------------------------------------------------

    def _without_backend(self, call: Call, checks: Sequence[Check]) -> Ticket:
        if self.policy == "fail_closed":
            self.refused_unavailable += 1
            err = LimitsUnavailable(
                "Rate limits and budgets cannot be checked right now (the limits backend "
                "is unreachable); retry shortly."
            )
            err.retry_after = 1.0
            raise err
        self.admitted_without_limits += 1
        call.extra_headers.append((b"x-tollway-limits", b"unavailable"))
        return Ticket(call.request_id, list(checks), unlimited=True)

    def _lost(self, exc: BaseException) -> None:
        if self.state is State.UNREACHABLE:
            return
        self.state, self.since = State.UNREACHABLE, time.time()
        self.admitted_without_limits = self.refused_unavailable = 0
        what = (
            "ADMITTING requests WITHOUT rate limits or budgets"
            if self.policy == "fail_open"
            else "REFUSING requests that have limits or budgets (503)"
        )
        log.error(
            "limits: the %s backend is UNREACHABLE (%r); policy %s: %s until it answers again. "
            "Limits are never counted per process instead.",
            self.backend.name,
            exc,
            self.policy,
            what,
        )
        self._probe = asyncio.create_task(self._recover(), name="tollway-limits-probe")

    async def _recover(self) -> None:
        reminded = time.monotonic()
        while True:
            await asyncio.sleep(PROBE_INTERVAL)
            try:
                await self.backend.ping()
                while self._pending:
                    entry, settlements = self._pending[0]
                    await self.backend.settle(entry, settlements)
                    self._pending.popleft()
            except self._unavailable:
                if time.monotonic() - reminded >= REMINDER_EVERY:
                    reminded = time.monotonic()
                    log.error(
                        "limits: the %s backend is still unreachable after %.0fs (%s: %d admitted without "
                        "limits, %d refused)",
                        self.backend.name,
                        time.time() - self.since,
                        self.policy,
                        self.admitted_without_limits,
                        self.refused_unavailable,
                    )
                continue
            self.state = State.OK
            self._probe = None
            log.warning(
                "limits: the %s backend answers again after %.1fs; limits apply again (%d requests were "
                "admitted without limits, %d refused meanwhile)",
                self.backend.name,
                time.time() - self.since,
                self.admitted_without_limits,
                self.refused_unavailable,
            )
            return

    def health(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.backend.name, "state": self.state.value, "policy": self.policy}
        if self.backend.name == "memory":
            out["scope"] = "process"
        if self.state is State.UNREACHABLE:
            out.update(
                since=self.since,
                admitted_without_limits=self.admitted_without_limits,
                refused=self.refused_unavailable,
                pending_settlements=len(self._pending),
            )
        return out
