"""Choosing where a call goes: which deployments may serve a model, and how healthy each one is.

- ``router``: the model name → deployments table (aliases, ``provider/model``, priority groups).
- ``health``: one deployment's health — circuit breaker, in-flight count, latency EMA — and ``order``.

Room is kept here for the routers that pick a model by the request itself (the complexity router and
the learned router of issue 13): they narrow or reorder ``Router.candidates`` and live beside it.
"""

from __future__ import annotations

from .health import Deployment, State, order
from .router import MAX_ADHOC, Router

__all__ = ["MAX_ADHOC", "Deployment", "Router", "State", "order"]
