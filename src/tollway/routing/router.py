"""Which deployments may serve a requested model, in the order to try them.

A requested model name resolves, in this order, as
1. an alias from ``[aliases]`` (an ordered list of ``provider/model`` targets);
2. an explicit ``provider/model`` (that provider, that upstream model);
3. a model that one or more providers list: ordered by ``priority`` (lower first); providers with
   equal priority share the load at random in proportion to ``weight``.

A ``provider/model`` pair no route names gets a deployment of its own on first use (its breaker and
totals live as long as it is used); at most ``MAX_ADHOC`` of them are kept, the least recently used
idle one making room, so clients inventing model names cannot grow the gateway's memory.

A call reaches only the deployments whose provider kind declares what its endpoint needs
(``providers/registry.py``: embeddings, token counting). The routes are filtered once per endpoint
when the router is built, so a request pays one dictionary lookup for it; a model none of whose
deployments can serve the endpoint is refused with ``UnsupportedCapability`` (a 400 in the client's
format) before any upstream is asked.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable, Sequence

from ..call import Endpoint
from ..config import Config, ProviderConfig
from ..errors import ModelNotFound, UnsupportedCapability
from ..providers.base import Upstream
from ..providers.registry import FACTS, Capabilities
from .health import Deployment

MAX_ADHOC = 256


class Router:
    def __init__(self, config: Config, upstream_for: Callable[[ProviderConfig], Upstream]) -> None:
        self._config = config
        self._providers = {p.name: p for p in config.providers}
        self._upstreams = {p.name: upstream_for(p) for p in config.providers}
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._adhoc: OrderedDict[tuple[str, str], Deployment] = (
            OrderedDict()
        )  # provider/model pairs no route names
        self._routes: dict[str, list[list[Deployment]]] = {}
        for alias, targets in config.aliases.items():
            self._routes[alias] = [[self._deployment(*t.split("/", 1), public=alias)] for t in targets]
        by_model: dict[str, list[ProviderConfig]] = {}
        for provider in config.providers:
            for public in provider.models:
                by_model.setdefault(public, []).append(provider)
        for public, providers in by_model.items():
            if public in self._routes:
                continue
            groups: dict[int, list[Deployment]] = {}
            for provider in providers:
                dep = self._deployment(provider.name, provider.models[public], public=public)
                groups.setdefault(provider.priority, []).append(dep)
            self._routes[public] = [groups[p] for p in sorted(groups)]
        # per endpoint, the routes with the deployments that cannot serve it left out (a model none
        # of whose deployments can is absent): built once here, never per request
        self._by_endpoint: dict[Endpoint, dict[str, list[list[Deployment]]]] = {}
        for endpoint in Endpoint:
            table = self._by_endpoint[endpoint] = {}
            for public, route in self._routes.items():
                kept = [g for g in ([d for d in group if _serves(d, endpoint)] for group in route) if g]
                if kept:
                    table[public] = kept

    def _deployment(self, provider: str, upstream_model: str, *, public: str) -> Deployment:
        key = (provider, upstream_model)
        if key not in self._deployments:
            cfg = self._providers[provider]
            self._deployments[key] = Deployment(
                cfg, self._upstreams[provider], public, upstream_model, self._config.health
            )
        return self._deployments[key]

    def candidates(self, model: str, endpoint: Endpoint = Endpoint.CHAT) -> list[Deployment]:
        """All deployments for ``model`` that can serve ``endpoint``, in try order, unavailable ones
        included (see ``health.order``)."""
        groups = self._by_endpoint[endpoint].get(model)
        if groups is None:
            return self._unrouted(model, endpoint)
        out: list[Deployment] = []
        for group in groups:
            if len(group) > 1:
                group = _weighted_shuffle(group)
            out.extend(group)
        return out

    def _unrouted(self, model: str, endpoint: Endpoint) -> list[Deployment]:
        """A model no route of ``endpoint`` names: an explicit ``provider/model``, a model whose
        deployments cannot serve the endpoint, or an unknown model."""
        if model in self._routes:
            kinds = sorted({d.provider.kind for group in self._routes[model] for d in group})
            raise _unsupported(model, endpoint, kinds)
        provider, sep, upstream_model = model.partition("/")
        if sep and provider in self._providers and upstream_model:
            cfg = self._providers[provider]
            if not _can(FACTS[cfg.kind].capabilities, endpoint):
                raise _unsupported(model, endpoint, [cfg.kind])
            return [self._explicit(provider, upstream_model, public=model)]
        raise ModelNotFound(
            f"The model '{model}' does not exist or is not served by this gateway. "
            "GET /v1/models lists the models it serves.",
            param="model",
        )

    def _explicit(self, provider: str, upstream_model: str, *, public: str) -> Deployment:
        key = (provider, upstream_model)
        dep = self._deployments.get(key)
        if dep is not None:
            return dep
        dep = self._adhoc.get(key)
        if dep is not None:
            self._adhoc.move_to_end(key)
            return dep
        if len(self._adhoc) >= MAX_ADHOC:
            idle = next((k for k, d in self._adhoc.items() if d.inflight == 0), None)
            if idle is not None:
                del self._adhoc[idle]
        dep = self._adhoc[key] = Deployment(
            self._providers[provider], self._upstreams[provider], public, upstream_model, self._config.health
        )
        return dep

    def serves(self, model: str) -> bool:
        """Would ``candidates(model)`` find deployments? (Without creating any.)"""
        if model in self._routes:
            return True
        provider, sep, upstream_model = model.partition("/")
        return bool(sep and upstream_model and provider in self._providers)

    def provider(self, name: str) -> ProviderConfig:
        return self._providers[name]

    def models(self) -> list[str]:
        return sorted(self._routes)

    def deployments(self) -> list[Deployment]:
        return [*self._deployments.values(), *self._adhoc.values()]

    def upstreams(self) -> list[Upstream]:
        return list(self._upstreams.values())


def _can(capabilities: Capabilities, endpoint: Endpoint) -> bool:
    """Does a provider kind with these capabilities serve ``endpoint``? (Every kind serves chat.)"""
    if endpoint is Endpoint.EMBEDDINGS:
        return capabilities.embeddings
    if endpoint is Endpoint.COUNT_TOKENS:
        return capabilities.token_counting
    return True


def _serves(deployment: Deployment, endpoint: Endpoint) -> bool:
    return _can(FACTS[deployment.provider.kind].capabilities, endpoint)


_WHAT = {
    Endpoint.CHAT: "chat completions",
    Endpoint.EMBEDDINGS: "embeddings",
    Endpoint.COUNT_TOKENS: "token counting",
}


def _unsupported(model: str, endpoint: Endpoint, kinds: Sequence[str]) -> UnsupportedCapability:
    return UnsupportedCapability(
        f"The model '{model}' cannot serve {_WHAT[endpoint]}: it is served by "
        f"{', '.join(kinds)} provider(s), which offer no {_WHAT[endpoint]}.",
        param="model",
    )


def _weighted_shuffle(group: list[Deployment]) -> list[Deployment]:
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted random permutation in one pass
    return sorted(group, key=lambda d: random.random() ** (1.0 / d.provider.weight), reverse=True)
