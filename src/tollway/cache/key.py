"""What makes two requests "the same": the cache key of a call, and the semantic group it falls in.

The exact key hashes the canonical request (sorted keys, compact JSON) with the tenant, the client
protocol and the endpoint in front, so two tenants can never share an entry. It keeps the requested
model (the route, not the upstream that happened to answer), the messages, the tools and every
parameter that can change the answer; it drops only what cannot: the stream flag and its options
(a stream and a body carry the same answer), the end-user id and the fields that steer the
provider's own storage and prompt caching.

The semantic group hashes the same canonical request with the content of the last user message
left out: two calls in one group differ only in that message, which is what a semantic lookup
compares. A call whose last message is not a user's plain text has no group.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from ..call import Call, Endpoint

# Fields that never change the answer. Anything not listed here is part of the key.
IGNORED_FIELDS = frozenset(
    {
        "stream",
        "stream_options",
        "user",
        "metadata",
        "store",
        "prompt_cache_key",
        "safety_identifier",
    }
)

_VERSION = b"tollway-cache-v1"


@dataclass(frozen=True, slots=True)
class CacheKey:
    digest: str  # the exact key: hex, 40 characters
    group: str | None = None  # the semantic group (None: no semantic lookup possible)
    text: str = ""  # the last user message, compared semantically within the group


def _hash(*parts: bytes) -> str:
    return hashlib.blake2b(b"\x00".join(parts), digest_size=20).hexdigest()


def _canonical(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in IGNORED_FIELDS}


def _dump(value: Any) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def last_user_text(body: dict[str, Any]) -> str | None:
    """The plain text of the last message when a user sent it (a string, or text parts only)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, dict) or last.get("role") != "user":
        return None
    content = last.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list) and content:
        texts = []
        for part in content:
            if (
                not isinstance(part, dict)
                or part.get("type") != "text"
                or not isinstance(part.get("text"), str)
            ):
                return None  # an image, audio or file: not something text similarity can judge
            texts.append(part["text"])
        return "\n".join(texts)
    return None


# the endpoint's name as bytes, encoded once here rather than on every request (the protocol keeps
# its own, ``ClientProtocol.key``)
_NAMES: dict[Endpoint, bytes] = {name: name.value.encode() for name in Endpoint}


def request_key(call: Call, *, semantic: bool = False) -> CacheKey:
    head = (_VERSION, call.tenant.encode(), call.protocol.key, _NAMES[call.endpoint])
    canonical = _canonical(call.body)
    digest = _hash(*head, _dump(canonical))
    if not semantic:
        return CacheKey(digest)
    text = last_user_text(call.body)
    if text is None or not text.strip():
        return CacheKey(digest)
    messages = list(canonical["messages"])
    messages[-1] = {k: v for k, v in messages[-1].items() if k != "content"}
    canonical["messages"] = messages
    return CacheKey(digest, _hash(*head, b"semantic", _dump(canonical)), text.strip())
