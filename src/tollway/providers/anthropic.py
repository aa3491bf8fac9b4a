"""Anthropic's Messages API (``x-api-key`` + ``anthropic-version``; the full streaming event sequence).

Anthropic clients are passed through untouched (so ``cache_control``, thinking blocks and
everything else Anthropic-specific survive); other clients are translated both ways through the
pivot (``translate.anthropic.upstream_*``, and their protocol for their side), streams included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..call import Call, Usage
from ..config import ProviderConfig
from ..errors import StreamInterrupted, UpstreamError
from ..protocols.anthropic import ANTHROPIC
from ..sse import SSEEvent, encode_data
from ..tokens import estimate_prompt
from ..translate.anthropic.upstream_request import openai_to_anthropic_request
from ..translate.anthropic.upstream_response import AnthropicToOpenAIStream, anthropic_to_openai_response
from ..translate.errors import anthropic_event_error, upstream_error
from ..usage import merge_anthropic_usage, usage_from_anthropic
from .base import Reply, unsupported
from .transport import Transport, parse_event_json, relay_sse

ANTHROPIC_VERSION = "2023-06-01"


def named_error(
    provider: str, status: int, raw: bytes, retry_after: float | None, protocol: str = "anthropic"
) -> UpstreamError:
    """The upstream's error from its envelope, its message prefixed with the provider's name."""
    err = upstream_error(protocol, status, raw, retry_after=retry_after)  # type: ignore[arg-type]
    err.message = f"{provider} (HTTP {status}): {err.message}"
    err.provider = provider
    return err


class AnthropicUpstream:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if config.api_key:
            headers["x-api-key"] = config.api_key
        self._http = Transport(config, headers, lambda s, raw, ra: named_error(config.name, s, raw, ra))
        self._url = f"{config.base_url}/messages"

    async def close(self) -> None:
        await self._http.close()

    def _body(self, call: Call, model: str, stream: bool) -> dict[str, Any]:
        if call.protocol is ANTHROPIC:  # the upstream speaks the client's protocol
            body = dict(call.body)
            body["model"] = model
        else:
            body = openai_to_anthropic_request(call.protocol.pivot_request(call.body), model)
        body["stream"] = stream
        return body

    async def complete(self, call: Call, model: str) -> Reply:
        raw = await self._http.post(self._url, self._body(call, model, stream=False))
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.config.name}: the answer is not JSON", status=502, provider=self.config.name, body=raw
            ) from None
        usage = usage_from_anthropic(parsed.get("usage") or {})
        if call.protocol is ANTHROPIC:
            return Reply(raw, usage)
        response = anthropic_to_openai_response(parsed, model=model, request_id=call.request_id)
        return Reply(call.protocol.encode_body(response, model=call.model), usage)

    async def stream(self, call: Call, model: str) -> AnthropicStream:
        resp = await self._http.open_stream(self._url, self._body(call, model, stream=True))
        return AnthropicStream(resp, call, self.config.name, model)

    async def embed(self, call: Call, model: str) -> Reply:
        raise unsupported(self.config.name, "embeddings")  # Anthropic has no embeddings endpoint

    async def count_tokens(self, body: dict[str, Any], model: str) -> bytes:
        return await self._http.post(f"{self._url}/count_tokens", {**body, "model": model})


class AnthropicStream:
    """Anthropic events: relayed as they are to Anthropic clients, translated through the pivot for
    others."""

    def __init__(self, resp: aiohttp.ClientResponse, call: Call, provider: str, model: str) -> None:
        self._resp = resp
        self._call = call
        self._provider = provider
        protocol = call.protocol
        self._passthrough = protocol is ANTHROPIC
        self._to_openai = AnthropicToOpenAIStream(
            model=model, request_id=call.request_id, include_usage=protocol.wants_usage(call.body)
        )
        self._sink = protocol.encoder(call.body, model=call.model)
        self._raw_usage: dict[str, Any] = {}
        self._stopped = False
        self._output_chars = 0
        self.usage: Usage | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return relay_sse(self._resp, self._provider, self._event, self._end, self._estimate)

    async def close(self) -> None:
        if not self._resp.closed:
            self._resp.close()

    def _event(self, event: SSEEvent) -> bytes:
        data = parse_event_json(event.data, self._provider)
        if not isinstance(data, dict):
            return b""
        name = event.event or str(data.get("type", ""))
        if name == "error":
            raise anthropic_event_error(data)
        if name == "message_start":
            merge_anthropic_usage(self._raw_usage, (data.get("message") or {}).get("usage") or {})
        elif name == "message_delta":
            merge_anthropic_usage(self._raw_usage, data.get("usage") or {})
            if (data.get("delta") or {}).get("stop_reason"):
                self._stopped = True
        elif name == "content_block_delta":
            delta = data.get("delta") or {}
            self._output_chars += len(delta.get("text") or delta.get("partial_json") or "")
        if self._passthrough:
            return b"event: " + name.encode() + b"\n" + encode_data(event.data)
        return b"".join(self._sink.feed(chunk) for chunk in self._to_openai.feed(name, data))

    def _end(self) -> bytes:
        if not self._stopped:
            raise StreamInterrupted(f"{self._provider}: the stream ended before the message finished")
        self.usage = usage_from_anthropic(self._raw_usage)
        if self._passthrough:
            return b""
        tail = b"".join(self._sink.feed(chunk) for chunk in self._to_openai.finish())
        return tail + self._sink.finish()

    def _estimate(self) -> None:
        """The stream broke: keep what Anthropic already reported (input, cache) and estimate the
        output from the text that arrived."""
        known = usage_from_anthropic(self._raw_usage) if self._raw_usage else Usage()
        self.usage = Usage(
            input_tokens=known.input_tokens
            or estimate_prompt(self._call.protocol.pivot_request(self._call.body)),
            cached_tokens=known.cached_tokens,
            cache_write_tokens=known.cache_write_tokens,
            output_tokens=max(known.output_tokens, (self._output_chars + 3) // 4),
            estimated=True,
        )
