"""Every provider kind tollway speaks to, and the facts about each in one table.

A kind's row says where its API lives by default and which environment variable holds its key (the
configuration's defaults and zero-config read them), which class speaks its wire protocol (imported
only when a provider of that kind is configured), which ``genai-prices`` provider prices its models,
and what tollway can ask of it (``Capabilities``). Code that needs to know whether a deployment can
serve a call asks the declaration (``routing.Router`` filters on it), never the upstream's type.

Adding a kind is adding its name to ``ProviderKind`` and a row to ``FACTS`` (a test checks that both
name the same kinds, and the capability matrix test exercises every declared capability).

This module imports nothing of tollway at run time: ``config.py`` imports it for the defaults.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from collections.abc import Callable

    from .base import Upstream

ProviderKind = Literal[
    "openai",
    "mistral",
    "deepseek",
    "xai",
    "groq",
    "together",
    "ollama",
    "vllm",
    "mock",
    "anthropic",
    "gemini",
]


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What tollway can ask of a kind of upstream (whether one model of it can, say, see images is the
    upstream's answer to give; this says whether tollway can carry the request there at all)."""

    streaming: bool = True  # answers as server-sent events
    tools: bool = True  # function tools and tool calls, translated where the wire format differs
    vision: bool = True  # image parts in messages
    embeddings: bool = False  # /v1/embeddings
    token_counting: bool = False  # /v1/messages/count_tokens asked of the upstream (else estimated)
    responses: bool = False  # OpenAI's Responses API (/v1/responses)

    def names(self) -> list[str]:
        """The declared capabilities, by field name."""
        return [f.name for f in fields(self) if getattr(self, f.name)]


CAPABILITY_NAMES: tuple[str, ...] = tuple(f.name for f in fields(Capabilities))

_OPENAI_COMPATIBLE = "tollway.providers.openai:OpenAICompatible"
_EMBEDS = Capabilities(embeddings=True)
_CHAT_ONLY = Capabilities()


@dataclass(frozen=True, slots=True)
class ProviderFacts:
    kind: ProviderKind
    base_url: str  # the default when a provider of this kind sets none
    key_env: tuple[str, ...]  # where zero-config looks for its API key, first set wins
    models: tuple[str, ...]  # the models zero-config routes to a provider found in the environment
    upstream: str  # "module:Class" speaking its wire protocol, imported on first use
    price_id: str | None  # its genai-prices provider id (None: the library matches by model name)
    priced: bool  # False for self-hosted kinds: no per-token price unless [prices] sets one
    capabilities: Capabilities

    def upstream_class(self) -> Callable[..., Upstream]:
        """The class to build an upstream of this kind from its ``ProviderConfig``. Imported lazily,
        so reading the configuration does not load every provider's translators."""
        module, _, name = self.upstream.partition(":")
        cls: Callable[..., Upstream] = getattr(importlib.import_module(module), name)
        return cls


def _compatible(
    kind: ProviderKind,
    base_url: str,
    key_env: tuple[str, ...],
    models: tuple[str, ...] = (),
    *,
    price_id: str | None = None,
    priced: bool = True,
    capabilities: Capabilities = _EMBEDS,
) -> ProviderFacts:
    """An OpenAI-compatible vendor: they differ only in data."""
    return ProviderFacts(kind, base_url, key_env, models, _OPENAI_COMPATIBLE, price_id, priced, capabilities)


FACTS: dict[str, ProviderFacts] = {
    f.kind: f
    for f in (
        _compatible(
            "openai",
            "https://api.openai.com/v1",
            ("OPENAI_API_KEY",),
            ("gpt-4o-mini", "gpt-4o", "gpt-4.1", "gpt-4.1-mini", "o4-mini", "text-embedding-3-small"),
            price_id="openai",
        ),
        _compatible(
            "mistral",
            "https://api.mistral.ai/v1",
            ("MISTRAL_API_KEY",),
            ("mistral-small-latest", "mistral-large-latest", "mistral-embed"),
            price_id="mistral",
        ),
        _compatible(
            "deepseek",
            "https://api.deepseek.com/v1",
            ("DEEPSEEK_API_KEY",),
            ("deepseek-chat", "deepseek-reasoner"),
            price_id="deepseek",
            capabilities=_CHAT_ONLY,  # DeepSeek has no embeddings endpoint
        ),
        _compatible(
            "xai", "https://api.x.ai/v1", ("XAI_API_KEY",), ("grok-3", "grok-3-mini"), price_id="x-ai"
        ),
        _compatible(
            "groq",
            "https://api.groq.com/openai/v1",
            ("GROQ_API_KEY",),
            ("llama-3.1-8b-instant", "llama-3.3-70b-versatile"),
            price_id="groq",
            capabilities=_CHAT_ONLY,  # Groq has no embeddings endpoint
        ),
        _compatible("together", "https://api.together.xyz/v1", ("TOGETHER_API_KEY",), price_id="together"),
        _compatible("ollama", "http://127.0.0.1:11434/v1", (), priced=False),
        _compatible("vllm", "http://127.0.0.1:8000/v1", (), priced=False),
        _compatible("mock", "http://127.0.0.1:9000/v1", ()),
        # native protocols, translated when the client speaks another
        ProviderFacts(
            "anthropic",
            "https://api.anthropic.com/v1",
            ("ANTHROPIC_API_KEY",),
            ("claude-sonnet-4-5", "claude-haiku-4-5", "claude-opus-4-5"),
            "tollway.providers.anthropic:AnthropicUpstream",
            "anthropic",
            True,
            Capabilities(token_counting=True),  # Anthropic offers no embeddings endpoint
        ),
        ProviderFacts(
            "gemini",
            "https://generativelanguage.googleapis.com/v1beta",
            ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
            ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.5-flash-lite"),
            "tollway.providers.gemini:GeminiUpstream",
            "google",
            True,
            Capabilities(embeddings=True, token_counting=True),
        ),
    )
}
