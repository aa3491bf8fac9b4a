"""Which deployments may serve a requested model, in the order to try them.

A requested model name resolves, in this order, as
1. an alias from ``[aliases]`` (an ordered list of ``provider/model`` targets);
2. an explicit ``provider/model`` (that provider, that upstream model);
3. a model that one or more providers list: ordered by ``priority`` (lower first); providers with
   equal priority share the load at random in proportion to ``weight``.

A ``provider/model`` pair no route names gets a deployment of its own on first use (its breaker and
totals live as long as it is used); at most ``MAX_ADHOC`` of them are kept, the least recently used
idle one making room, so clients inventing model names cannot grow the gateway's memory.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from collections.abc import Callable

from ..config import Config, ProviderConfig
from ..errors import ModelNotFound
from ..providers.base import Upstream
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

    def _deployment(self, provider: str, upstream_model: str, *, public: str) -> Deployment:
        key = (provider, upstream_model)
        if key not in self._deployments:
            cfg = self._providers[provider]
            self._deployments[key] = Deployment(
                cfg, self._upstreams[provider], public, upstream_model, self._config.health
            )
        return self._deployments[key]

    def candidates(self, model: str) -> list[Deployment]:
        """All deployments for ``model`` in try order, unavailable ones included (see ``health.order``)."""
        groups = self._routes.get(model)
        if groups is None:
            provider, sep, upstream_model = model.partition("/")
            if sep and provider in self._providers and upstream_model:
                return [self._explicit(provider, upstream_model, public=model)]
            raise ModelNotFound(
                f"The model '{model}' does not exist or is not served by this gateway. "
                "GET /v1/models lists the models it serves.",
                param="model",
            )
        out: list[Deployment] = []
        for group in groups:
            if len(group) > 1:
                group = _weighted_shuffle(group)
            out.extend(group)
        return out

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


def _weighted_shuffle(group: list[Deployment]) -> list[Deployment]:
    # Efraimidis-Spirakis: sort by u^(1/w), a weighted random permutation in one pass
    return sorted(group, key=lambda d: random.random() ** (1.0 / d.provider.weight), reverse=True)
