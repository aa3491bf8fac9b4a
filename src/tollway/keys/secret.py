"""Virtual key secrets: how they are made and reduced to what is stored (ingress reads them off a request).

A key is ``sk-tw-`` and 43 URL-safe characters (256 random bits). Only its SHA-256 digest is kept:
the secret carries 256 bits of entropy, so a slow password hash would add nothing but latency on
every request, and a fast digest lets the hot path check a key with one dict lookup. The ``sk-``
prefix also makes ``errors.redact`` scrub a key that ends up in a message.
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sk-tw-"


def generate() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def hint(secret: str) -> str:
    """What may be shown of a key later: its prefix and last four characters."""
    return f"{PREFIX}…{secret[-4:]}"
