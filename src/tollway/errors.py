"""The one error tree of tollway: every exception the gateway raises is defined here.

Each class knows its HTTP status, whether the failover loop may try the next deployment after it
(``retryable``), the short name the log records (``error_type``), and how it renders in each client
protocol (OpenAI's and Anthropic's envelopes). Code never sets a status by hand: a new situation is
a new class. (The fake providers in ``mock/`` are separate servers with errors of their own.)

    TollwayError
    ├── ClientError                      the request is wrong; never retried
    │   ├── InvalidJSON                  400 body is not JSON
    │   ├── InvalidRequest               400 wrong type / missing field / bad value (``param`` names it)
    │   │   ├── TranslationError         400 the upstream's protocol cannot express the request; the
    │   │   │                            failover loop may still try a deployment of another protocol
    │   │   └── SpecError                400 a key's or tenant's settings are invalid (admin API, CLI)
    │   ├── BodyTooLarge                 413
    │   ├── AuthenticationFailed         401
    │   ├── PermissionDenied             403
    │   ├── NotFound                     404 unknown route
    │   │   ├── ModelNotFound            404 unknown model
    │   │   └── RecordNotFound           404 no key or tenant by that id or name
    │   ├── UnsupportedCapability        400 no deployment of the model declares what the call needs
    │   ├── MethodNotAllowed             405
    │   ├── NameTaken                    409 a key's name is already in use
    │   ├── RateLimited                  429 a key's or tenant's requests/tokens/concurrency limit
    │   └── BudgetExceeded               429 a key's, tenant's or the gateway's budget (``budget_exceeded``)
    ├── ClientDisconnected               499 the client went away before its request body arrived
    │                                    (forgotten) or before its answer was complete (logged);
    │                                    nothing is sent
    ├── ConfigError                      500 the configuration is invalid (raised before serving)
    ├── GatewayNotReady                  503 the gateway is starting or stopping
    ├── LimitsUnavailable                503 the shared limits backend (Redis) is unreachable and the
    │                                    policy is ``fail_closed``
    ├── KeyStoreUnavailable              503 an unknown key could not be looked up (database down)
    ├── StoreError                       503 the database under the log, keys and tenants failed; its
    │   │                                message stays in the log
    │   └── StoreConflict                409 a write broke a unique constraint
    ├── CacheUnavailable                 503 the shared cache store failed: treated as a miss, never a
    │                                    failed call
    ├── EmbedderUnavailable              503 the semantic cache's embedding model or runtime is missing
    ├── UpstreamError                    an upstream answered with an error status
    │   (status and body kept as evidence; retryable for 401/403/404 — a deployment
    │   misconfiguration — and 408/409/429/5xx; other 4xx go back to the client as they are)
    ├── UpstreamUnavailable              connection refused / reset / DNS: retryable, 502
    ├── UpstreamTimeout                  retryable, 504
    ├── StreamInterrupted                502 an upstream stream broke after bytes reached the client
    ├── NoHealthyUpstream                503: every candidate's circuit is open
    └── UpstreamsExhausted               every candidate failed; status from the last failure

Provider keys never appear in messages: upstream bodies are kept as evidence for the log but
``redact`` scrubs anything that looks like a bearer token before it is shown.
"""

from __future__ import annotations

import re
from typing import Any

_SECRET = re.compile(r"(sk-[A-Za-z0-9_\-]{6,}|Bearer\s+[A-Za-z0-9_\-\.]{6,}|AIza[0-9A-Za-z_\-]{10,})")


def redact(text: str) -> str:
    """Remove anything shaped like an API key from text that may reach a client or a log."""
    return _SECRET.sub("[redacted]", text)


class TollwayError(Exception):
    status: int = 500
    type: str = "api_error"
    code: str | None = None
    retryable: bool = False
    anthropic_type: str = "api_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = redact(message)
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after: float | None = None

    def openai_envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}

    def anthropic_envelope(self) -> dict[str, Any]:
        return {"type": "error", "error": {"type": self.anthropic_type, "message": self.message}}

    @property
    def error_type(self) -> str:
        """The short name recorded in the log's ``error_type`` column."""
        return self.code or self.type


class ClientError(TollwayError):
    status = 400
    type = "invalid_request_error"
    anthropic_type = "invalid_request_error"


class InvalidJSON(ClientError):
    code = "invalid_json"


class InvalidRequest(ClientError):
    code = "invalid_request"


class TranslationError(InvalidRequest):
    """The request uses something the upstream's protocol cannot express (``n`` > 1 for Anthropic,
    an OpenAI ``file_id``, audio for Anthropic). It is wrong only for this upstream: the failover
    loop may still try a candidate that speaks another protocol."""

    code = "untranslatable_request"


class SpecError(InvalidRequest):
    """A key's or tenant's settings are invalid; the message names the field."""


class BodyTooLarge(ClientError):
    status = 413
    code = "request_too_large"
    anthropic_type = "request_too_large"


class AuthenticationFailed(ClientError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"
    anthropic_type = "authentication_error"


class PermissionDenied(ClientError):
    status = 403
    type = "permission_error"
    code = "permission_denied"
    anthropic_type = "permission_error"


class NotFound(ClientError):
    status = 404
    code = "not_found"
    anthropic_type = "not_found_error"


class ModelNotFound(NotFound):
    code = "model_not_found"


class RecordNotFound(NotFound):
    """No key or tenant by that id or name (the key repository raises it)."""


class UnsupportedCapability(ClientError):
    """The model exists, but none of its deployments can serve this kind of call (embeddings from a
    model only Anthropic serves): what each provider kind can do is declared in
    ``providers/registry.py`` and the router refuses here, before any upstream is asked."""

    code = "unsupported_capability"


class MethodNotAllowed(ClientError):
    status = 405
    code = "method_not_allowed"


class NameTaken(ClientError):
    """A key's name is already in use (the key repository raises it for the database's conflict)."""

    status = 409
    code = "conflict"


class RateLimited(ClientError):
    """Over a rate limit of tollway's own (not an upstream's). ``retry_after`` says when one frees."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"
    anthropic_type = "rate_limit_error"


class BudgetExceeded(ClientError):
    """A ``block`` budget has no room for this call; ``retry_after`` is the time to the period's end."""

    status = 429
    type = "insufficient_quota"
    code = "budget_exceeded"
    anthropic_type = "rate_limit_error"


class ClientDisconnected(TollwayError):
    """The client went away: before its request body arrived (the request is forgotten), or before
    its answer was complete (a stream cancelled; the call's log row records it). Nothing is sent to
    it (there is no one to send to); 499 is the status proxies log for a request the client closed."""

    status = 499
    code = "client_disconnected"

    def __init__(self, message: str = "the client went away before its request body arrived") -> None:
        super().__init__(message)


class ConfigError(TollwayError):
    """The configuration is invalid; ``str()`` lists every problem with the key that has it."""

    code = "invalid_config"


class GatewayNotReady(TollwayError):
    """A request arrived while the gateway is starting or stopping (its runtime is not open)."""

    status = 503
    code = "not_ready"


class LimitsUnavailable(TollwayError):
    status = 503
    type = "api_error"
    code = "limits_unavailable"
    anthropic_type = "api_error"


class KeyStoreUnavailable(TollwayError):
    status = 503
    type = "api_error"
    code = "key_store_unavailable"
    anthropic_type = "api_error"


class StoreError(TollwayError):
    """The database under the request log, keys and tenants failed (``store.sql`` raises it for any
    driver error). Callers on a client's path turn it into ``KeyStoreUnavailable`` or
    ``LimitsUnavailable``; its message never reaches a client."""

    status = 503
    type = "api_error"
    code = "store_unavailable"
    anthropic_type = "api_error"


class StoreConflict(StoreError):
    """A write broke a unique constraint (a key name already in use)."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class CacheUnavailable(TollwayError):
    """The shared answer store could not be reached or answered with an error: a miss, never a
    failed call (the cache catches it)."""

    status = 503
    code = "cache_unavailable"


class EmbedderUnavailable(TollwayError):
    """The semantic cache's embedding model or its runtime is not installed (raised at start)."""

    status = 503
    code = "embedder_unavailable"


# 401/403/404 from an upstream mean the *deployment* is misconfigured (tollway's provider key, the
# upstream model name), not that the client erred: try the next deployment.
_UPSTREAM_RETRYABLE = frozenset({401, 403, 404, 408, 409, 425, 429, 500, 502, 503, 504, 529})

_OPENAI_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_ANTHROPIC_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    529: "overloaded_error",
}


class UpstreamError(TollwayError):
    """An upstream answered with an error status. ``body`` keeps the (redacted) evidence."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        provider: str,
        body: bytes = b"",
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code)
        self.status = status
        self.provider = provider
        self.body = redact(body[:2000].decode("utf-8", "replace"))
        self.retryable = status in _UPSTREAM_RETRYABLE
        self.type = _OPENAI_TYPE_BY_STATUS.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        self.anthropic_type = _ANTHROPIC_TYPE_BY_STATUS.get(
            status, "api_error" if status >= 500 else "invalid_request_error"
        )
        self.retry_after = retry_after

    @property
    def error_type(self) -> str:
        return f"upstream_{self.status}"


class UpstreamUnavailable(TollwayError):
    status = 502
    type = "api_error"
    code = "upstream_unavailable"
    retryable = True


class UpstreamTimeout(TollwayError):
    status = 504
    type = "api_error"
    code = "upstream_timeout"
    retryable = True
    anthropic_type = "api_error"


class StreamInterrupted(TollwayError):
    status = 502
    type = "api_error"
    code = "stream_interrupted"


class NoHealthyUpstream(TollwayError):
    status = 503
    type = "api_error"
    code = "no_healthy_upstream"
    anthropic_type = "overloaded_error"


class UpstreamsExhausted(TollwayError):
    """Every candidate failed. Status: the last failure's if it was an upstream 4xx/429, else 502."""

    type = "api_error"
    code = "upstreams_exhausted"

    def __init__(self, message: str, *, last: TollwayError | None, attempts: int) -> None:
        super().__init__(message)
        self.last = last
        self.attempts = attempts
        if isinstance(last, UpstreamError) and last.status == 429:
            self.status = 429
            self.type = "rate_limit_error"
            self.anthropic_type = "rate_limit_error"
        elif isinstance(last, UpstreamError) and last.status in (503, 529):
            self.status = 503
            self.anthropic_type = "overloaded_error"
        else:
            self.status = 502
        if last is not None:
            self.retry_after = last.retry_after
