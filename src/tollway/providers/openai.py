"""Every OpenAI-compatible upstream: OpenAI, Mistral, DeepSeek, xAI, Groq, Together, Ollama, vLLM.

They differ in data only (base URL, key, extra headers) and in a few quirks this module repairs:
tool-call deltas without ``index`` and error bodies that are not OpenAI's envelope (usage in
non-standard fields, such as DeepSeek's ``prompt_cache_hit_tokens``, is read by ``tollway.usage``).

OpenAI clients are passed through: the client's body with the upstream model name swapped in (and,
for streams, ``stream_options.include_usage`` switched on so every call can be priced); answers go
back byte for byte when nothing needs repair, and stream events are relayed as they arrive.
Clients of other protocols are served through the pivot: their protocol (``call.protocol``) gives
the request's OpenAI form and encodes the answer for them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any

import aiohttp
import msgspec
import orjson

from ..call import Call, Usage
from ..config import ProviderConfig
from ..errors import StreamInterrupted, UpstreamError
from ..protocols.base import Encoder
from ..protocols.openai import OPENAI
from ..sse import DONE, SSEEvent, encode_data
from ..tokens import estimate_prompt
from ..usage import WireUsage, usage_from_openai
from .base import Reply, unsupported
from .transport import Transport, parse_event_json, relay_sse


class OpenAICompatible:
    """Upstream adapter for one OpenAI-compatible provider."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
        self._http = Transport(
            config, headers, lambda status, raw, ra: _error_from_body(status, raw, config.name, ra)
        )
        self._chat_url = f"{config.base_url}/chat/completions"
        self._embed_url = f"{config.base_url}/embeddings"

    async def close(self) -> None:
        await self._http.close()

    def complete(self, call: Call, model: str) -> Coroutine[Any, Any, Reply]:
        # the transport's coroutine, not one of our own around it: one frame fewer on every resume
        if call.protocol is OPENAI:  # the upstream speaks the client's protocol
            return self._http.post_then(self._chat_url, _passed_body(call, model), self._passed_through)
        body = call.protocol.pivot_request(call.body)
        body["model"] = model
        return self._http.post_then(self._chat_url, body, lambda raw: self._translated(call, raw))

    def _passed_through(self, raw: bytes) -> Reply:
        return Reply(raw, self._usage_of(raw))

    def _usage_of(self, raw: bytes) -> Usage | None:
        """The usage of an answer passed through as it is, or the upstream error it is raised. The
        answer is decoded for ``usage`` (and the presence of ``error``) only: msgspec still checks
        that all of it is JSON, but builds no objects for the rest (a third of a full parse's cost,
        far less for an embeddings answer's vectors). Anything unusual — not JSON, not an object, an
        ``error`` member, a usage of another shape — takes the full parse, which decides as before."""
        try:
            answer = _ANSWER.decode(raw)
        except msgspec.MsgspecError:
            answer = None
        if answer is None or answer.error is not msgspec.UNSET:
            return usage_from_openai(self._parse(raw).get("usage"))  # _parse raises an error answer
        return answer.usage.tokens() if answer.usage is not None else None

    def _translated(self, call: Call, raw: bytes) -> Reply:
        parsed = self._parse(raw)
        return Reply(
            call.protocol.encode_body(parsed, model=call.model), usage_from_openai(parsed.get("usage"))
        )

    async def embed(self, call: Call, model: str) -> Reply:
        raw = await self._http.post(self._embed_url, _passed_body(call, model))
        return Reply(raw, self._usage_of(raw))

    async def count_tokens(self, body: dict[str, Any], model: str) -> bytes:
        raise unsupported(self.config.name, "token counting")  # no OpenAI-compatible endpoint

    async def stream(self, call: Call, model: str) -> OpenAIStream:
        protocol = call.protocol
        body = protocol.pivot_request(call.body)
        body["model"] = model
        body["stream"] = True
        options = body.get("stream_options")
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        resp = await self._http.open_stream(self._chat_url, body)
        encoder = None if protocol is OPENAI else protocol.encoder(call.body, model=call.model)
        return OpenAIStream(resp, call, self.config.name, encoder)

    def _parse(self, raw: bytes) -> dict[str, Any]:
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError(
                f"{self.config.name}: the answer is not JSON", status=502, provider=self.config.name, body=raw
            ) from None
        if not isinstance(parsed, dict):
            raise UpstreamError(
                f"{self.config.name}: the answer is not a JSON object",
                status=502,
                provider=self.config.name,
                body=raw,
            )
        if "error" in parsed:  # some vendors answer 200 with an error body
            raise _error_from_body(200, raw, self.config.name, None)
        return parsed


class OpenAIStream:
    """Relays an OpenAI-format SSE stream: repaired and passed through to OpenAI clients, encoded
    for others (``translate``, their protocol's encoder); picks out usage on the way."""

    def __init__(
        self, resp: aiohttp.ClientResponse, call: Call, provider: str, translate: Encoder | None
    ) -> None:
        self._resp = resp
        self._call = call
        self._provider = provider
        self._translate = translate
        # passed through: the usage chunk (always asked of the upstream) is hidden unless asked for
        self._client_wants_usage = translate is None and call.protocol.wants_usage(call.body)
        self.usage: Usage | None = None
        self._finished = False  # a finish_reason or [DONE] was seen
        self._done_sent = False
        self._output_chars = 0
        self._tool_index: dict[str, int] = {}
        self._last_tool_index = -1

    def __aiter__(self) -> AsyncIterator[bytes]:
        return relay_sse(self._resp, self._provider, self._event, self._end, self._estimate)

    async def close(self) -> None:
        if not self._resp.closed:
            self._resp.close()

    def _end(self) -> bytes:
        if not self._finished:
            raise StreamInterrupted(f"{self._provider}: the stream ended before the answer finished")
        if self.usage is None:
            self._estimate()
        if self._translate is not None:
            return self._translate.finish()
        return b"" if self._done_sent else DONE

    def _event(self, event: SSEEvent) -> bytes:
        data = event.data
        if data == b"[DONE]":
            self._finished = True
            if self._translate is not None:
                return b""
            self._done_sent = True
            return DONE
        chunk = parse_event_json(data, self._provider)
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            raise _error_from_parsed(chunk, 502, data, self._provider)
        changed = False
        usage = chunk.get("usage")
        if usage:
            self.usage = usage_from_openai(usage)
        for choice in chunk.get("choices") or ():
            if choice.get("finish_reason"):
                self._finished = True
            delta = choice.get("delta")
            if not delta:
                continue
            content = delta.get("content")
            if content:
                self._output_chars += len(content)
            calls = delta.get("tool_calls")
            if calls:
                changed |= self._repair_tool_calls(calls)
        if self._translate is not None:
            return self._translate.feed(chunk)
        if "usage" in chunk and not self._client_wants_usage:
            if not chunk.get("choices"):
                return b""  # the usage chunk the client did not ask for
            del chunk["usage"]
            changed = True
        return encode_data(orjson.dumps(chunk)) if changed else encode_data(data)

    def _repair_tool_calls(self, calls: list[dict[str, Any]]) -> bool:
        """Some vendors omit ``index`` on tool-call deltas; the OpenAI SDK needs it to reassemble."""
        changed = False
        for tc in calls:
            fn = tc.get("function") or {}
            self._output_chars += len(fn.get("arguments") or "") + len(fn.get("name") or "")
            if "index" in tc:
                self._last_tool_index = tc["index"]
                continue
            ident = tc.get("id")
            if ident:
                if ident not in self._tool_index:
                    self._tool_index[ident] = len(self._tool_index)
                tc["index"] = self._tool_index[ident]
            else:
                tc["index"] = max(self._last_tool_index, 0)
            self._last_tool_index = tc["index"]
            changed = True
        return changed

    def _estimate(self) -> None:
        if self.usage is None:
            self.usage = Usage(
                input_tokens=estimate_prompt(self._call.protocol.pivot_request(self._call.body)),
                output_tokens=(self._output_chars + 3) // 4,
                estimated=True,
            )


def _passed_body(call: Call, model: str) -> dict[str, Any] | bytes:
    """An OpenAI client's body for an OpenAI-compatible upstream: its own bytes when the upstream
    knows the model by the name the client sent (nothing to change, nothing to encode again), else
    the body with the upstream's model name."""
    if call.raw and model == call.model:
        return call.raw
    return {**call.body, "model": model}


class _Answer(msgspec.Struct):
    usage: WireUsage | None = None
    error: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


_ANSWER = msgspec.json.Decoder(_Answer)


def _error_from_body(status: int, raw: bytes, provider: str, retry_after: float | None) -> UpstreamError:
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        parsed = None
    err = _error_from_parsed(parsed, status, raw, provider)
    err.retry_after = retry_after
    return err


def _error_from_parsed(parsed: Any, status: int, raw: bytes, provider: str) -> UpstreamError:
    """Repair the envelopes vendors send into one shape: OpenAI's, ``{"error": "text"}``,
    ``{"detail": …}``, ``{"message": …}`` or plain text."""
    message, code, param = "", None, None
    if isinstance(parsed, dict):
        err = parsed.get("error", parsed)
        if isinstance(err, dict):
            message = str(err.get("message") or err.get("detail") or "")
            code = err.get("code") if isinstance(err.get("code"), str) else None
            param = err.get("param") if isinstance(err.get("param"), str) else None
        elif isinstance(err, str):
            message = err
        if not message and "detail" in parsed:
            detail = parsed["detail"]
            message = detail if isinstance(detail, str) else orjson.dumps(detail).decode()
    elif raw:
        message = raw[:500].decode("utf-8", "replace").strip()
    if not message:
        message = f"upstream answered HTTP {status}"
    return UpstreamError(
        f"{provider} (HTTP {status}): {message}",
        status=status,
        provider=provider,
        body=raw,
        code=code,
        param=param,
    )
