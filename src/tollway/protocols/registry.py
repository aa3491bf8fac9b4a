"""Every client protocol by name. Adding one is adding its module and a line here."""

from __future__ import annotations

from .anthropic import ANTHROPIC
from .base import ClientProtocol
from .openai import OPENAI

PROTOCOLS: dict[str, ClientProtocol] = {p.name: p for p in (OPENAI, ANTHROPIC)}


def protocol(name: str) -> ClientProtocol:
    """The protocol named ``name`` (``KeyError`` for one tollway does not speak)."""
    return PROTOCOLS[name]
