"""``ClientProtocol``: what the gateway needs to know about the protocol a client speaks.

The OpenAI chat-completions format is the pivot (``translate/pivot.py``): every provider that does
not speak the client's protocol turns its upstream's answer into pivot chunks or a pivot completion,
and the client's protocol encodes those for the client. A protocol therefore says:

- what its client asked for: the request in the pivot's form (``pivot_request``) and whether the
  client wants token usage in a stream (``wants_usage``);
- how to answer it from the pivot: a whole answer (``encode_body``), a stream (``encoder``), an error
  before anything was sent (``envelope``) or after (``stream_error_event``), and the models list;
- how its answers go into the cache and come back out (``codec``, a ``CacheCodec`` per call).

Request validation is per endpoint, so each protocol module exposes its ``validate_*`` functions and
its ingress handler passes the right one to ``ingress.calls.serve``.

Methods take the request body, not the ``Call``: ``call.py`` imports this module for its annotation,
so this module must not import ``call.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ..errors import TollwayError
from ..sse import SSEEvent


class Encoder(ABC):
    """Pivot chunks of one streamed answer → the bytes its client receives. Keeps state per stream."""

    __slots__ = ()

    @abstractmethod
    def feed(self, chunk: dict[str, Any]) -> bytes: ...

    @abstractmethod
    def finish(self) -> bytes:
        """The closing bytes; raises ``StreamInterrupted`` if the answer never finished."""


class CacheCodec(ABC):
    """One call's answers as the cache and a shared call see them: the client's bytes ⇄ the pivot.

    A shared or cacheable call records what the client would receive, in the client's protocol,
    because the usual path passes the upstream's bytes through untouched (same protocol on both
    sides) and the recording must not cost that path a translation. To store or replay the answer in
    another shape the recording reads those bytes back into the pivot: ``read`` turns one recorded
    SSE event into pivot chunks (for ``translate.completion.Assembler``), ``neutral`` a whole body into a
    pivot completion. ``body`` and ``stream`` encode a pivot completion for the client again.

    So a translated answer makes a round trip: an Anthropic client served by Gemini is recorded as
    Gemini → pivot chunk → Anthropic event (what the client got) → pivot chunk → completion →
    Anthropic body (what is stored). It costs a parse per event of cacheable streams that are not
    passed through, and it keeps one recording format whatever the upstream.
    """

    tail: bytes
    """What a reader of a recorded stream sends after the recorded events: the protocol's end
    marker when the recording leaves it out (OpenAI's ``[DONE]``), else nothing."""

    @abstractmethod
    def read(self, event: SSEEvent) -> tuple[list[dict[str, Any]], bool]:
        """The pivot chunks in one recorded event, and whether the event carries only usage (it then
        goes only to readers who asked for usage)."""

    @abstractmethod
    def close(self) -> list[dict[str, Any]]:
        """The pivot chunks the recorded stream still owes at its end."""

    @abstractmethod
    def neutral(self, body: bytes) -> dict[str, Any] | None:
        """A whole answer in the client's protocol → the pivot completion (None: not understood)."""

    @abstractmethod
    def body(self, completion: dict[str, Any]) -> bytes:
        """A pivot completion → the whole answer in the client's protocol."""

    @abstractmethod
    def stream(self, completion: dict[str, Any], *, include_usage: bool) -> bytes:
        """A pivot completion replayed as the client's stream, its closing event included."""

    usage_apart: bool
    """Usage comes in an event of its own that only clients who asked for it get (OpenAI's usage
    chunk), so a recorded stream may lack it and a reader who asked is owed ``late_usage``."""

    @abstractmethod
    def late_usage(self, completion: dict[str, Any]) -> bytes:
        """The usage event owed to a reader who asked for usage when the recorded stream carried
        none (its first client did not ask); read only when ``usage_apart``."""


class ClientProtocol(ABC):
    """One client protocol. Instances are singletons (``registry``); compare them with ``is``."""

    name: str
    """Its name in logs and cache keys: ``openai``, ``anthropic``."""

    key: bytes
    """``name`` encoded, for the cache key (computed once, not per request)."""

    request_id_header: bytes | None = None
    """A header that repeats ``x-request-id`` under the name this protocol's SDKs read, if any."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.key = name.encode()

    def __repr__(self) -> str:
        return f"<client protocol {self.name}>"

    # -- what the client asked for ----------------------------------------------------------------

    @abstractmethod
    def wants_usage(self, body: dict[str, Any]) -> bool:
        """Does the client expect token usage in a streamed answer? Every stream takes usage from
        its upstream (to price the call); this says whether the client is shown it."""

    @abstractmethod
    def pivot_request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The request in the pivot's form: a new dict the caller may change at its top level."""

    # -- answering from the pivot -----------------------------------------------------------------

    @abstractmethod
    def encode_body(self, completion: dict[str, Any], *, model: str) -> bytes:
        """A whole pivot completion as the client's answer (``model``: the name the client asked for)."""

    @abstractmethod
    def encoder(self, body: dict[str, Any], *, model: str) -> Encoder:
        """The stream encoder for one request (``body``: the client's request)."""

    @abstractmethod
    def envelope(self, error: TollwayError) -> dict[str, Any]:
        """The error body when nothing was sent yet."""

    @abstractmethod
    def stream_error_event(self, error: TollwayError) -> bytes:
        """The event that ends a stream broken after bytes reached the client."""

    @abstractmethod
    def model_object(self, name: str, created: int) -> dict[str, Any]:
        """One entry of the models list (``created``: Unix time)."""

    @abstractmethod
    def model_list(self, models: list[dict[str, Any]]) -> dict[str, Any]:
        """The models list's body."""

    # -- the cache --------------------------------------------------------------------------------

    @abstractmethod
    def codec(self, *, model: str, request_id: str) -> CacheCodec:
        """A codec for one call (reading a stream keeps state)."""
