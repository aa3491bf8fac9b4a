"""Rate limits as ledger checks (requests and tokens per minute, concurrency), and OpenAI's
``x-ratelimit-*`` response headers."""

from __future__ import annotations

from ..call import Call, Endpoint
from ..tokens import estimate_prompt
from .ledger import Check, Result
from .rules import Limits

WINDOW = 60.0  # seconds: the "per minute" of rpm and tpm
REQUESTS, TOKENS, CONCURRENT = "r", "t", "c"  # first letter of a ledger's name: what it counts


def estimate_tokens(call: Call, default_max_tokens: int) -> tuple[int, int]:
    """(input tokens estimated from the body, the most output tokens the call may produce)."""
    body = call.body
    tokens_in = estimate_prompt(body)
    if call.endpoint is Endpoint.EMBEDDINGS:
        return tokens_in, 0
    most = body.get("max_completion_tokens")
    if not isinstance(most, int) or isinstance(most, bool) or most < 1:
        most = body.get("max_tokens")
    if not isinstance(most, int) or isinstance(most, bool) or most < 1:
        most = default_max_tokens
    n = body.get("n")
    choices = n if isinstance(n, int) and not isinstance(n, bool) and n > 1 else 1
    return tokens_in, most * choices


def checks(scope: str, name: str, limits: Limits, tokens: int, lease_ttl: float, out: list[Check]) -> None:
    """Append the rate-limit checks of one key or tenant to ``out``."""
    if limits.rpm is not None:
        out.append(Check(f"{REQUESTS}:{scope}:{name}", limits.rpm, 1, WINDOW))
    if limits.tpm is not None:
        out.append(Check(f"{TOKENS}:{scope}:{name}", limits.tpm, tokens, WINDOW))
    if limits.concurrency is not None:
        out.append(Check(f"{CONCURRENT}:{scope}:{name}", limits.concurrency, 1, lease_ttl))


def describe(check: Check) -> str:
    kind, scope, name = check.ledger.split(":", 2)
    what = {REQUESTS: "requests per minute", TOKENS: "tokens per minute", CONCURRENT: "concurrent requests"}[
        kind
    ]
    return f"{scope} '{name}': {check.limit} {what}"


def duration(seconds: float) -> str:
    """OpenAI's spelling of a reset time: "20ms", "1.5s", "6m0s", "1h2m3s"."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    if seconds < 60:
        return f"{seconds:.3g}s"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours}h" if hours else "") + f"{minutes}m{secs}s"


def headers(checks: list[Check], result: Result) -> list[tuple[bytes, bytes]]:
    """``x-ratelimit-{limit,remaining,reset}-{requests,tokens}`` of the tightest limit of each kind."""
    out: list[tuple[bytes, bytes]] = []
    for kind, label in ((REQUESTS, b"requests"), (TOKENS, b"tokens")):
        tightest = -1
        for i, check in enumerate(checks):
            if check.ledger[0] == kind and (
                tightest < 0 or check.limit - result.used[i] < checks[tightest].limit - result.used[tightest]
            ):
                tightest = i
        if tightest < 0:
            continue
        check = checks[tightest]
        remaining = max(0, check.limit - result.used[tightest])
        # A sliding window is back to its initial state one window after its newest entry; when
        # refused, the time until room frees up is the more useful answer.
        reset = check.ttl if result.admitted else (result.retry_after or check.ttl)
        out += [
            (b"x-ratelimit-limit-" + label, str(check.limit).encode()),
            (b"x-ratelimit-remaining-" + label, str(remaining).encode()),
            (b"x-ratelimit-reset-" + label, duration(reset).encode()),
        ]
    return out
