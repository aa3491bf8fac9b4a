"""Google's Gemini API: ``models/{model}:generateContent`` and ``:streamGenerateContent?alt=sse``
with ``x-goog-api-key``. Every client protocol is translated through the pivot
(``translate.gemini``; the client's protocol for its side)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from ..call import Call, Usage
from ..config import ProviderConfig
from ..errors import UpstreamError
from ..sse import SSEEvent
from ..tokens import estimate_prompt, estimate_text
from ..translate.anthropic.client_request import anthropic_to_openai_request
from ..translate.gemini.embeddings import (
    embedding_texts,
    gemini_to_openai_embeddings,
    openai_to_gemini_embed_request,
)
from ..translate.gemini.upstream_request import openai_to_gemini_request
from ..translate.gemini.upstream_response import GeminiToOpenAIStream, gemini_to_openai_response
from ..usage import usage_from_gemini
from .anthropic import named_error
from .base import Reply
from .transport import Transport, parse_event_json, relay_sse


class GeminiUpstream:
    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        headers = {"x-goog-api-key": config.api_key} if config.api_key else {}
        self._http = Transport(
            config, headers, lambda s, raw, ra: named_error(config.name, s, raw, ra, "gemini")
        )

    async def close(self) -> None:
        await self._http.close()

    def _url(self, model: str, stream: bool) -> str:
        action = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return f"{self.config.base_url}/models/{model}:{action}"

    async def complete(self, call: Call, model: str) -> Reply:
        body = openai_to_gemini_request(call.protocol.pivot_request(call.body), model)
        raw = await self._http.post(self._url(model, False), body)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.config.name}: the answer is not JSON", status=502, provider=self.config.name, body=raw
            ) from None
        response = gemini_to_openai_response(parsed, model=model, request_id=call.request_id)
        usage = usage_from_gemini(parsed.get("usageMetadata") or {})
        return Reply(call.protocol.encode_body(response, model=call.model), usage)

    async def stream(self, call: Call, model: str) -> GeminiStream:
        body = openai_to_gemini_request(call.protocol.pivot_request(call.body), model)
        resp = await self._http.open_stream(self._url(model, True), body)
        return GeminiStream(resp, call, self.config.name, model)

    async def count_tokens(self, body: dict[str, Any], model: str) -> bytes:
        """``countTokens`` on the generateContent request the Messages body becomes, answered as
        Anthropic's count_tokens does (``{"input_tokens": n}``)."""
        request = openai_to_gemini_request(anthropic_to_openai_request(body), model)
        raw = await self._http.post(
            f"{self.config.base_url}/models/{model}:countTokens",
            {"generateContentRequest": {"model": f"models/{model}", **request}},
        )
        try:
            total = orjson.loads(raw)["totalTokens"]
        except (orjson.JSONDecodeError, KeyError, TypeError):
            raise UpstreamError(
                f"{self.config.name}: the countTokens answer has no totalTokens",
                status=502,
                provider=self.config.name,
                body=raw,
            ) from None
        return orjson.dumps({"input_tokens": int(total)})

    async def embed(self, call: Call, model: str) -> Reply:
        """``batchEmbedContents``, one request per input string; the usage is estimated (Gemini reports
        none for embeddings)."""
        body = openai_to_gemini_embed_request(call.body, model)
        raw = await self._http.post(f"{self.config.base_url}/models/{model}:batchEmbedContents", body)
        tokens = sum(estimate_text(t) for t in embedding_texts(call.body))
        answer = gemini_to_openai_embeddings(
            raw,
            inputs=len(body["requests"]),
            provider=self.config.name,
            model=model,
            encoding_format=call.body.get("encoding_format"),
            prompt_tokens=tokens,
        )
        return Reply(orjson.dumps(answer), Usage(input_tokens=tokens, estimated=True))


class GeminiStream:
    def __init__(self, resp: aiohttp.ClientResponse, call: Call, provider: str, model: str) -> None:
        self._resp = resp
        self._call = call
        self._provider = provider
        protocol = call.protocol
        self._to_openai = GeminiToOpenAIStream(
            model=model, request_id=call.request_id, include_usage=protocol.wants_usage(call.body)
        )
        self._sink = protocol.encoder(call.body, model=call.model)
        self._output_chars = 0
        self._last_usage: dict[str, Any] = {}
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
        if isinstance(data.get("usageMetadata"), dict):
            self._last_usage = data["usageMetadata"]
        chunks = self._to_openai.feed(data)
        for chunk in chunks:
            for choice in chunk.get("choices") or ():
                self._output_chars += len((choice.get("delta") or {}).get("content") or "")
        return b"".join(self._sink.feed(chunk) for chunk in chunks)

    def _end(self) -> bytes:
        tail = b"".join(self._sink.feed(chunk) for chunk in self._to_openai.finish())
        self.usage = self._to_openai.usage or usage_from_gemini(self._last_usage)
        return tail + self._sink.finish()

    def _estimate(self) -> None:
        known = usage_from_gemini(self._last_usage) if self._last_usage else Usage()
        self.usage = Usage(
            input_tokens=known.input_tokens
            or estimate_prompt(self._call.protocol.pivot_request(self._call.body)),
            cached_tokens=known.cached_tokens,
            output_tokens=max(known.output_tokens, (self._output_chars + 3) // 4),
            estimated=True,
        )
