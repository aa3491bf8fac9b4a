"""One cached answer: the whole body as a non-streaming client of the call's protocol receives it
(an OpenAI ``chat.completion`` or ``/v1/embeddings`` list, an Anthropic message), whichever way it
reached its first client. A streamed answer is reassembled before it is stored (through the pivot:
``translate.completion.Assembler`` and the protocol's ``CacheCodec``); a streaming client of a hit gets the
body read back into the pivot and replayed as its protocol's stream (``CacheCodec.stream``). The
client protocol is part of the cache key, so an entry is only ever served to its own protocol.

On the wire (Redis) an entry is one line of JSON metadata, a newline, then the body bytes exactly as
they are sent to a non-streaming client, so a hit is served without re-encoding it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import orjson

from ..call import Usage

_OVERHEAD = 400  # bytes a memory entry costs beyond its body: the object, its key, the LRU's slot


@dataclass(frozen=True, slots=True)
class Entry:
    body: bytes  # the answer as a non-streaming client of the call's protocol receives it
    tenant: str
    provider: str = ""
    upstream_model: str = ""
    cost: float | None = None  # what the original call cost: what every hit saves
    input_tokens: int = 0
    output_tokens: int = 0
    created: float = field(default_factory=time.time)

    @property
    def size(self) -> int:
        return len(self.body) + len(self.tenant) + _OVERHEAD

    def usage(self) -> Usage:
        return Usage(input_tokens=self.input_tokens, output_tokens=self.output_tokens)

    def encode(self) -> bytes:
        meta = orjson.dumps(
            {
                "t": self.tenant,
                "p": self.provider,
                "m": self.upstream_model,
                "c": self.cost,
                "i": self.input_tokens,
                "o": self.output_tokens,
                "at": self.created,
            }
        )
        return meta + b"\n" + self.body

    @classmethod
    def decode(cls, raw: bytes) -> Entry:
        meta_raw, sep, body = raw.partition(b"\n")
        if not sep:
            raise ValueError("not a cache entry")
        meta = orjson.loads(meta_raw)
        return cls(
            body,
            str(meta["t"]),
            str(meta["p"]),
            str(meta["m"]),
            meta["c"],
            int(meta["i"]),
            int(meta["o"]),
            float(meta["at"]),
        )
