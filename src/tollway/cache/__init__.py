"""The response cache (pipeline stage 4): exact and semantic lookups, tenant-isolated, streams
included. ``dedup`` (stage 5) shares identical calls in flight and fills the cache."""

from .answers import AnswerCache, make_cache
from .lookup import Lookup, look_up

__all__ = ["AnswerCache", "Lookup", "look_up", "make_cache"]
