"""``GatewayEmbedder``: the semantic cache's embeddings from a model this gateway serves
(``cache.semantic.embedder = "text-embedding-3-small"``). Each embedding is a sub-call
(``internal``): on behalf of the call being looked up — its key, limits and tenant — cached, routed
with failover, priced, and logged with that call's id as ``parent_request_id``.

Built by ``server.open_runtime``, not ``make_cache``: it calls through the pipeline, and the pipeline
imports the cache."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from ..call import Endpoint
from ..errors import TollwayError
from ..internal import ask
from .embed import Vector, unit

if TYPE_CHECKING:
    from ..call import Call
    from ..runtime import Runtime

log = logging.getLogger("tollway.cache")


class GatewayEmbedder:
    """An embeddings model served by this gateway's own providers."""

    def __init__(self, model: str) -> None:
        self.name = model
        self.model = model

    async def start(self) -> None:
        return None

    async def embed(self, rt: Runtime, text: str, parent: Call | None) -> Vector | None:
        try:
            answer = await ask(rt, parent, Endpoint.EMBEDDINGS, {"model": self.model, "input": text})
        except TollwayError as exc:
            log.warning("semantic cache: embedding with %s failed: %s", self.model, exc.message)
            return None
        try:
            return unit(np.asarray(answer["data"][0]["embedding"], dtype=np.float32))
        except (KeyError, IndexError, TypeError, ValueError):
            log.warning("semantic cache: %s answered something that is not an embedding", self.model)
            return None

    async def close(self) -> None:
        return None
