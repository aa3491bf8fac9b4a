"""``KeyCache``: every gateway process's in-memory copy of the keys and tenants, so that checking a
key costs one SHA-256 and one dict lookup.

How changes made elsewhere (``tollway keys …``, the admin API of another process) arrive:

- a **new key** works at once: a hash the cache does not know is looked up in the database (one
  query per unknown hash at a time); a hash found nowhere is remembered as unknown for
  ``keys.negative_ttl`` seconds, so a client retrying a bad key costs no query;
- a **disabled, deleted, rotated or re-limited key**, and any tenant change, is picked up by the
  refresh every ``keys.refresh_interval`` seconds: rows whose ``updated_at`` moved since the last
  refresh (with an overlap for clocks that disagree), plus a full reload every
  ``FULL_RELOAD_EVERY`` refreshes as a safety net.

If the database is unreachable, the cache keeps serving what it has and says so in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict

from .key import KeyStatus, Tenant, VirtualKey
from .repository import KeyRepository

log = logging.getLogger("tollway.keys")

OVERLAP = 30.0  # seconds re-read at each incremental refresh, for clock skew between writers
FULL_RELOAD_EVERY = 12
NEGATIVE_MAX = 10_000  # unknown hashes remembered at most (a client spraying random keys)


class KeyCache:
    def __init__(
        self,
        repo: KeyRepository,
        *,
        refresh_interval: float = 5.0,
        negative_ttl: float = 2.0,
        required: bool = False,
    ) -> None:
        self.repo = repo
        self.refresh_interval = refresh_interval
        self.negative_ttl = negative_ttl
        self.required = required
        self.open = not required  # until a key is known to exist
        self.last_refresh = 0.0
        self.refresh_failures = 0
        self._by_hash: dict[str, VirtualKey] = {}
        self._hash_of: dict[str, str] = {}  # key id -> hash it is filed under
        self._tenants: dict[str, Tenant] = {}
        self._unknown: OrderedDict[str, float] = OrderedDict()  # hash -> when it may be asked again
        self._pending: dict[str, asyncio.Future[VirtualKey | None]] = {}
        self._watermark = 0.0
        self._refreshes = 0
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.refresh(full=True)
        if self.open:
            log.warning(
                "no virtual key exists: tollway is running OPEN — any client may call it without a "
                'key. Create one with `tollway keys create --name …` (or set keys.auth = "required").'
            )
        else:
            log.info("virtual keys: %d loaded; every request needs a key", len(self._by_hash))
        self._task = asyncio.create_task(self._run(), name="tollway-key-refresh")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the request path -------------------------------------------------------------------------

    def cached(self, key_hash: str) -> VirtualKey | None:
        return self._by_hash.get(key_hash)

    def known_unknown(self, key_hash: str) -> bool:
        """Whether this hash was looked up and found nowhere less than ``negative_ttl`` seconds ago."""
        retry_at = self._unknown.get(key_hash)
        return retry_at is not None and time.monotonic() < retry_at

    def tenant(self, name: str) -> Tenant | None:
        return self._tenants.get(name) if name else None

    async def lookup(self, key_hash: str) -> VirtualKey | None:
        """The live (active or disabled) key with this hash, or None. Raises if the database is needed
        and unreachable."""
        found = self._by_hash.get(key_hash)
        if found is not None:
            return found
        retry_at = self._unknown.get(key_hash)
        if retry_at is not None:
            if time.monotonic() < retry_at:
                return None
            del self._unknown[key_hash]
        pending = self._pending.get(key_hash)
        if pending is None:
            # one query per unknown hash however many requests carry it; a task of its own, so that
            # the first caller's disconnect does not cancel it for the others
            pending = self._pending[key_hash] = asyncio.ensure_future(self._fetch(key_hash))
        return await asyncio.shield(pending)

    async def _fetch(self, key_hash: str) -> VirtualKey | None:
        try:
            key = await self.repo.by_hash(key_hash)
        finally:
            self._pending.pop(key_hash, None)
        if key is None or key.status is KeyStatus.DELETED:
            self._remember_unknown(key_hash)
            return None
        self.apply(key)
        return key

    def _remember_unknown(self, key_hash: str) -> None:
        self._unknown[key_hash] = time.monotonic() + self.negative_ttl
        while len(self._unknown) > NEGATIVE_MAX:
            self._unknown.popitem(last=False)

    # -- keeping up with the database -------------------------------------------------------------

    def apply(self, key: VirtualKey) -> None:
        """Take a key as written (by this process's admin API, or read back by a refresh)."""
        old_hash = self._hash_of.pop(key.id, None)
        if old_hash is not None:
            self._by_hash.pop(old_hash, None)
        if key.status is not KeyStatus.DELETED:
            self._file(key)
        self._unknown.pop(key.key_hash, None)
        self.open = False

    def apply_tenant(self, tenant: Tenant | None, name: str = "") -> None:
        if tenant is None:
            self._tenants.pop(name, None)
        else:
            self._tenants[tenant.name] = tenant

    def _file(self, key: VirtualKey) -> None:
        old_hash = self._hash_of.get(key.id)
        if old_hash is not None and old_hash != key.key_hash:
            self._by_hash.pop(old_hash, None)
        self._by_hash[key.key_hash] = key
        self._hash_of[key.id] = key.key_hash

    async def refresh(self, *, full: bool = False) -> None:
        started = time.time()
        was_open = self.open
        since = 0.0 if full else max(0.0, self._watermark - OVERLAP)
        changed = await self.repo.changed_since(since)
        tenants = await self.repo.tenants()
        if full:  # forget keys whose rows are gone altogether (removed from the database by hand)
            present = {key.id for key in changed}
            for key_id in [k for k in self._hash_of if k not in present]:
                self._by_hash.pop(self._hash_of.pop(key_id), None)
        for key in changed:
            self._watermark = max(self._watermark, key.updated_at)
            current = self._hash_of.get(key.id)
            if current is not None and self._by_hash[current].updated_at > key.updated_at:
                continue  # this process already holds a newer write of its own
            self.apply(key)
        self._tenants = {t.name: t for t in tenants}
        self.open = (
            not self.required and not self._by_hash and not changed and not await self.repo.any_created()
        )
        if was_open and not self.open and self._refreshes:
            log.warning("a virtual key now exists: tollway stops running open; every request needs a key")
        self.last_refresh = started
        self._refreshes += 1

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.refresh_interval)
            try:
                await self.refresh(full=self._refreshes % FULL_RELOAD_EVERY == 0)
            except Exception as exc:
                self.refresh_failures += 1
                log.error(
                    "refreshing virtual keys from the database failed (%r); serving the %d cached keys "
                    "(disabled or deleted keys keep working until a refresh succeeds)",
                    exc,
                    len(self._by_hash),
                    exc_info=self.refresh_failures == 1,
                )
            else:
                if self.refresh_failures:
                    log.warning("virtual key refresh recovered after %d failures", self.refresh_failures)
                self.refresh_failures = 0

    def snapshot(self) -> dict[str, object]:
        return {
            "open": self.open,
            "keys": len(self._by_hash),
            "tenants": len(self._tenants),
            "refreshed_s_ago": round(time.time() - self.last_refresh, 3) if self.last_refresh else None,
            "refresh_failures": self.refresh_failures,
        }
