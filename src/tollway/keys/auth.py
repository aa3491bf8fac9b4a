"""Stage 1: authenticate. The client's key (read at ingress into ``call.api_key``) becomes a
``Principal``: the key, its tenant, and so the limits that stage 3 (admit) applies."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..call import Call
from ..errors import AuthenticationFailed, KeyStoreUnavailable, PermissionDenied, StoreError
from . import secret
from .key import OPEN, KeyStatus, Principal, VirtualKey

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .cache import KeyCache

log = logging.getLogger("tollway.keys")


async def authenticate(rt: Runtime, call: Call, *, check_model: bool = True) -> Principal:
    """``check_model=False``: only who the caller is (``GET /v1/models`` filters the list instead)."""
    found = known(rt, call, check_model=check_model)
    if isinstance(found, str):
        return await look_up(rt, call, found, check_model=check_model)
    return found


def known(rt: Runtime, call: Call, *, check_model: bool = True) -> Principal | str:
    """``authenticate`` without I/O: the principal, or — when the key is not in memory and must be
    looked up in the database — the key's digest, for ``look_up`` (it costs a SHA-256 to compute)."""
    cache = rt.keys
    if cache.open and not call.api_key:
        return OPEN
    if not call.api_key:
        raise AuthenticationFailed(
            "Missing API key: send it as 'Authorization: Bearer <key>' or in an 'x-api-key' header."
        )
    key_hash = secret.digest(call.api_key)
    key = cache.cached(key_hash)
    if key is not None:
        return _principal(cache, call, key, check_model)
    if cache.open and cache.known_unknown(key_hash):
        return OPEN  # running open, and this key was looked up and found nowhere a moment ago
    return key_hash


async def look_up(rt: Runtime, call: Call, key_hash: str, *, check_model: bool = True) -> Principal:
    """The rest of ``authenticate`` once ``known`` returned the key's digest: ask the database."""
    cache = rt.keys
    try:
        key = await cache.lookup(key_hash)  # a key created since the last refresh, elsewhere
    except (StoreError, OSError) as exc:
        log.error("looking up an unknown key failed: %r", exc)
        if cache.open:
            return OPEN
        raise KeyStoreUnavailable("The key store is unreachable; retry shortly.") from None
    if key is None:
        if cache.open:
            return OPEN  # running open: a key tollway does not know (an upstream's, say) is ignored
        raise AuthenticationFailed("Incorrect API key provided.")
    return _principal(cache, call, key, check_model)


def _principal(cache: KeyCache, call: Call, key: VirtualKey, check_model: bool) -> Principal:
    call.key_id, call.tenant = key.id, key.tenant  # the log shows refused calls of a known key too
    if key.status is not KeyStatus.ACTIVE:
        raise AuthenticationFailed("This API key is disabled.")
    if key.expired():
        raise AuthenticationFailed("This API key has expired.")
    if check_model and not key.allows(call.model):
        raise PermissionDenied(
            f"This API key may not use the model '{call.model}'; it may use: {', '.join(key.models)}.",
            param="model",
            code="model_not_allowed",
        )
    call.cache_enabled = key.cache  # the response cache's per-key switch (cache/policy.py)
    return Principal(key, cache.tenant(key.tenant))
