"""The nouns of authentication: a virtual key, a tenant (a group of keys), and the principal a
request runs as."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any

from ..limits.rules import NO_LIMITS, Limits


class KeyStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"
    DELETED = "deleted"  # kept as a row so the request log's key ids keep their names


@dataclass(frozen=True, slots=True)
class VirtualKey:
    id: str  # "key_…": what the request log records as key_id
    name: str
    tenant: str
    key_hash: str  # SHA-256 of the secret; the secret itself is never stored
    hint: str  # "sk-tw-…abcd"
    models: tuple[str, ...]  # allowed requested models (fnmatch patterns); empty: any
    limits: Limits
    expires_at: float | None
    status: KeyStatus
    created_at: float
    updated_at: float
    cache: bool = True  # whether the response cache serves (and shares) this key's calls

    def allows(self, model: str) -> bool:
        return not self.models or any(model == m or fnmatchcase(model, m) for m in self.models)

    def expired(self, now: float | None = None) -> bool:
        return self.expires_at is not None and (time.time() if now is None else now) >= self.expires_at

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "tenant": self.tenant or None,
            "hint": self.hint,
            "models": list(self.models),
            **self.limits.to_json(),
            "expires_at": self.expires_at,
            "cache": self.cache,
            "status": self.status.value,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Tenant:
    name: str
    limits: Limits
    created_at: float
    updated_at: float

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            **self.limits.to_json(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request runs as. ``key`` is None when the gateway runs open (no key was ever created)."""

    key: VirtualKey | None
    tenant: Tenant | None

    @property
    def key_limits(self) -> Limits:
        return NO_LIMITS if self.key is None else self.key.limits

    @property
    def tenant_limits(self) -> Limits:
        return NO_LIMITS if self.tenant is None else self.tenant.limits


OPEN = Principal(None, None)
