"""The response cache (pipeline stage 3): exact and semantic lookups, tenant-isolated, streams
included. ``dedup`` (stage 4) shares identical calls in flight and fills the cache."""

from .lookup import Lookup, look_up
from .responses import ResponseCache, make_cache

__all__ = ["Lookup", "ResponseCache", "look_up", "make_cache"]
