"""The one error tree: every exception tollway raises is a class of ``tollway.errors`` that knows its
HTTP status and renders in both client protocols' envelopes; the module's docstring names them all."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import tollway
from tollway import errors
from tollway.errors import (
    AuthenticationFailed,
    BodyTooLarge,
    BudgetExceeded,
    CacheUnavailable,
    ClientDisconnected,
    ClientError,
    ConfigError,
    EmbedderUnavailable,
    GatewayNotReady,
    InvalidJSON,
    InvalidRequest,
    KeyStoreUnavailable,
    LimitsUnavailable,
    MethodNotAllowed,
    ModelNotFound,
    NameTaken,
    NoHealthyUpstream,
    NotFound,
    PermissionDenied,
    RateLimited,
    RecordNotFound,
    SpecError,
    StoreConflict,
    StoreError,
    StreamInterrupted,
    TollwayError,
    TranslationError,
    UnsupportedCapability,
    UpstreamError,
    UpstreamsExhausted,
    UpstreamTimeout,
    UpstreamUnavailable,
)

SRC = Path(tollway.__file__).parent

# error, status, OpenAI type, code, Anthropic type, retryable
CASES: list[tuple[TollwayError, int, str, str | None, str, bool]] = [
    (InvalidJSON("x"), 400, "invalid_request_error", "invalid_json", "invalid_request_error", False),
    (InvalidRequest("x"), 400, "invalid_request_error", "invalid_request", "invalid_request_error", False),
    (
        TranslationError("x"),
        400,
        "invalid_request_error",
        "untranslatable_request",
        "invalid_request_error",
        False,
    ),
    (SpecError("x"), 400, "invalid_request_error", "invalid_request", "invalid_request_error", False),
    (BodyTooLarge("x"), 413, "invalid_request_error", "request_too_large", "request_too_large", False),
    (
        AuthenticationFailed("x"),
        401,
        "authentication_error",
        "invalid_api_key",
        "authentication_error",
        False,
    ),
    (PermissionDenied("x"), 403, "permission_error", "permission_denied", "permission_error", False),
    (NotFound("x"), 404, "invalid_request_error", "not_found", "not_found_error", False),
    (ModelNotFound("x"), 404, "invalid_request_error", "model_not_found", "not_found_error", False),
    (RecordNotFound("x"), 404, "invalid_request_error", "not_found", "not_found_error", False),
    (
        MethodNotAllowed("x"),
        405,
        "invalid_request_error",
        "method_not_allowed",
        "invalid_request_error",
        False,
    ),
    (
        UnsupportedCapability("x"),
        400,
        "invalid_request_error",
        "unsupported_capability",
        "invalid_request_error",
        False,
    ),
    (NameTaken("x"), 409, "invalid_request_error", "conflict", "invalid_request_error", False),
    (RateLimited("x"), 429, "rate_limit_error", "rate_limit_exceeded", "rate_limit_error", False),
    (BudgetExceeded("x"), 429, "insufficient_quota", "budget_exceeded", "rate_limit_error", False),
    (ClientDisconnected(), 499, "api_error", "client_disconnected", "api_error", False),
    (ConfigError("x"), 500, "api_error", "invalid_config", "api_error", False),
    (GatewayNotReady("x"), 503, "api_error", "not_ready", "api_error", False),
    (LimitsUnavailable("x"), 503, "api_error", "limits_unavailable", "api_error", False),
    (KeyStoreUnavailable("x"), 503, "api_error", "key_store_unavailable", "api_error", False),
    (StoreError("x"), 503, "api_error", "store_unavailable", "api_error", False),
    (StoreConflict("x"), 409, "invalid_request_error", "conflict", "api_error", False),
    (CacheUnavailable("x"), 503, "api_error", "cache_unavailable", "api_error", False),
    (EmbedderUnavailable("x"), 503, "api_error", "embedder_unavailable", "api_error", False),
    (UpstreamUnavailable("x"), 502, "api_error", "upstream_unavailable", "api_error", True),
    (UpstreamTimeout("x"), 504, "api_error", "upstream_timeout", "api_error", True),
    (StreamInterrupted("x"), 502, "api_error", "stream_interrupted", "api_error", False),
    (NoHealthyUpstream("x"), 503, "api_error", "no_healthy_upstream", "overloaded_error", False),
    (
        UpstreamError("x", status=429, provider="p"),
        429,
        "rate_limit_error",
        None,
        "rate_limit_error",
        True,
    ),
    (
        UpstreamError("x", status=400, provider="p"),
        400,
        "invalid_request_error",
        None,
        "invalid_request_error",
        False,
    ),
    (UpstreamError("x", status=529, provider="p"), 529, "api_error", None, "overloaded_error", True),
    (
        UpstreamsExhausted("x", last=UpstreamError("x", status=429, provider="p"), attempts=2),
        429,
        "rate_limit_error",
        "upstreams_exhausted",
        "rate_limit_error",
        False,
    ),
    (
        UpstreamsExhausted("x", last=UpstreamError("x", status=503, provider="p"), attempts=2),
        503,
        "api_error",
        "upstreams_exhausted",
        "overloaded_error",
        False,
    ),
    (
        UpstreamsExhausted("x", last=None, attempts=0),
        502,
        "api_error",
        "upstreams_exhausted",
        "api_error",
        False,
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: type(c[0]).__name__)
def test_status_and_both_envelopes(case: tuple[TollwayError, int, str, str | None, str, bool]) -> None:
    err, status, openai_type, code, anthropic_type, retryable = case
    assert (err.status, err.retryable) == (status, retryable)
    assert err.openai_envelope() == {
        "error": {"message": err.message, "type": openai_type, "param": None, "code": code}
    }
    assert err.anthropic_envelope() == {
        "type": "error",
        "error": {"type": anthropic_type, "message": err.message},
    }


def test_every_class_of_the_tree_is_pinned_and_documented() -> None:
    classes = {c for _, c in inspect.getmembers(errors, inspect.isclass) if issubclass(c, TollwayError)}
    pinned = {type(case[0]) for case in CASES}
    assert classes - {TollwayError, ClientError} == pinned
    doc = errors.__doc__ or ""
    assert [c.__name__ for c in classes if c.__name__ not in doc] == []


def test_param_and_messages() -> None:
    err = InvalidRequest("bad max_tokens with sk-abcdefghijklmnop", param="max_tokens")
    assert err.openai_envelope()["error"]["param"] == "max_tokens"
    assert "sk-abcdefghijklmnop" not in err.message and "[redacted]" in err.message
    assert ClientDisconnected().message  # raised bare, still says what happened


def _exception_classes(tree: ast.Module) -> list[str]:
    """Classes whose bases name an exception (…Error, …Exception, a known error class)."""
    names = {c for c, v in vars(errors).items() if isinstance(v, type) and issubclass(v, BaseException)}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            bases = [ast.unparse(b).rsplit(".", 1)[-1] for b in node.bases]
            if any(b.endswith(("Error", "Exception")) or b in names for b in bases):
                found.append(node.name)
    return found


def test_no_exception_is_defined_outside_errors_py() -> None:
    """The fake providers (``mock/``) are separate servers and keep their own."""
    outside: dict[str, list[str]] = {}
    for path in sorted(SRC.rglob("*.py")):
        relative = path.relative_to(SRC).as_posix()
        if relative == "errors.py" or relative.startswith("mock/"):
            continue
        classes = _exception_classes(ast.parse(path.read_text()))
        if classes:
            outside[relative] = classes
    assert outside == {}
