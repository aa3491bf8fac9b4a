"""Every OpenAI-compatible upstream: OpenAI, Mistral, DeepSeek, xAI, Groq, Together, Ollama, vLLM.

They differ in data only (base URL, key, extra headers) and in a few quirks this module repairs:
tool-call deltas without ``index``, usage in non-standard fields (DeepSeek's
``prompt_cache_hit_tokens``) and error bodies that are not OpenAI's envelope.

Requests are passed through: the client's body with the upstream model name swapped in (and, for
streams, ``stream_options.include_usage`` switched on so every call can be priced). Responses are
passed through byte for byte when nothing needs repair; streams are relayed event by event as they
arrive.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from ..call import Call, Usage
from ..config import ProviderConfig
from ..errors import StreamInterrupted, TollwayError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from ..sse import DONE, SSEDecoder, encode_data
from ..tokens import estimate_prompt, estimate_text
from .base import Reply

if TYPE_CHECKING:
    from ..pool import Deployment


class OpenAICompatible:
    """Upstream adapter for one provider. One pooled keep-alive aiohttp session per provider."""

    def __init__(self, config: ProviderConfig) -> None:
        self.config = config
        self._session: aiohttp.ClientSession | None = None
        self._headers = {"Content-Type": "application/json", **config.headers}
        if config.api_key:
            self._headers["Authorization"] = f"Bearer {config.api_key}"
        self._chat_url = f"{config.base_url}/chat/completions"
        self._embed_url = f"{config.base_url}/embeddings"
        self._timeout = aiohttp.ClientTimeout(total=config.timeout, sock_connect=config.connect_timeout)
        self._stream_timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=config.connect_timeout, sock_read=config.timeout
        )

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.config.max_connections, keepalive_timeout=60,
                                             ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, json_serialize=lambda o: orjson.dumps(o).decode(),
                skip_auto_headers=("User-Agent",), auto_decompress=True,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- calls ----------------------------------------------------------------------------------

    async def complete(self, call: Call, deployment: Deployment) -> Reply:
        body = dict(call.body)
        body["model"] = deployment.upstream_model
        raw = await self._post(self._chat_url, body)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("upstream returned a body that is not JSON", status=502,
                                provider=self.config.name, body=raw) from None
        if isinstance(parsed, dict) and "error" in parsed:  # some vendors answer 200 with an error
            raise _error_from_body(200, raw, self.config.name, None)
        return Reply(raw, usage_from_openai(parsed.get("usage") if isinstance(parsed, dict) else None))

    async def embed(self, call: Call, deployment: Deployment) -> Reply:
        body = dict(call.body)
        body["model"] = deployment.upstream_model
        raw = await self._post(self._embed_url, body)
        try:
            parsed = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamError("upstream returned a body that is not JSON", status=502,
                                provider=self.config.name, body=raw) from None
        return Reply(raw, usage_from_openai(parsed.get("usage") if isinstance(parsed, dict) else None))

    async def stream(self, call: Call, deployment: Deployment) -> OpenAIStream:
        body = dict(call.body)
        body["model"] = deployment.upstream_model
        options = body.get("stream_options")
        call.client_wants_usage = isinstance(options, dict) and options.get("include_usage") is True
        body["stream_options"] = {**(options if isinstance(options, dict) else {}), "include_usage": True}
        try:
            resp = await self._client().post(self._chat_url, data=orjson.dumps(body), headers=self._headers,
                                             timeout=self._stream_timeout)
        except Exception as exc:
            raise self._map(exc) from exc
        if resp.status != 200:
            try:
                raw = await resp.read()
            except Exception as exc:
                raise self._map(exc) from exc
            finally:
                resp.release()
            raise _error_from_body(resp.status, raw, self.config.name, _retry_after(resp.headers))
        return OpenAIStream(resp, call, self.config.name)

    async def _post(self, url: str, body: dict[str, Any]) -> bytes:
        try:
            async with self._client().post(url, data=orjson.dumps(body), headers=self._headers,
                                           timeout=self._timeout) as resp:
                raw = await resp.read()
                if resp.status != 200:
                    raise _error_from_body(resp.status, raw, self.config.name, _retry_after(resp.headers))
                return raw
        except TollwayError:
            raise
        except Exception as exc:
            raise self._map(exc) from exc

    def _map(self, exc: BaseException) -> TollwayError:
        name = self.config.name
        if isinstance(exc, (asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
            return UpstreamTimeout(f"{name}: no answer within the timeout")
        if isinstance(exc, aiohttp.ClientConnectorError):
            return UpstreamUnavailable(f"{name}: cannot connect ({exc.os_error.strerror or 'refused'})")
        if isinstance(exc, aiohttp.ClientError):
            return UpstreamUnavailable(f"{name}: connection failed ({type(exc).__name__})")
        return UpstreamUnavailable(f"{name}: {type(exc).__name__}")


class OpenAIStream:
    """Relays an upstream SSE stream to an OpenAI client, repairing quirks and picking out usage."""

    def __init__(self, resp: aiohttp.ClientResponse, call: Call, provider: str) -> None:
        self._resp = resp
        self._call = call
        self._provider = provider
        self.usage: Usage | None = None
        self._finished = False  # a finish_reason or [DONE] was seen
        self._done_sent = False
        self._output_chars = 0
        self._tool_index: dict[str, int] = {}
        self._last_tool_index = -1

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._relay()

    async def _relay(self) -> AsyncIterator[bytes]:
        decoder = SSEDecoder()
        try:
            async for chunk in self._resp.content.iter_any():
                out = [self._event(e.data) for e in decoder.feed(chunk)]
                piece = b"".join(out)
                if piece:
                    yield piece
            piece = b"".join(self._event(e.data) for e in decoder.close())
            if piece:
                yield piece
        except TollwayError:
            self._estimate()
            raise
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError):
            self._estimate()
            raise StreamInterrupted(f"{self._provider}: the stream stalled past the timeout") from None
        except aiohttp.ClientError as exc:
            self._estimate()
            raise StreamInterrupted(f"{self._provider}: the stream broke ({type(exc).__name__})") from None
        finally:
            self._resp.release() if self._finished else self._resp.close()
        if not self._finished:
            self._estimate()
            raise StreamInterrupted(f"{self._provider}: the stream ended before the answer finished")
        if self.usage is None:
            self._estimate()
        if not self._done_sent:
            yield DONE

    def _event(self, data: bytes) -> bytes:
        if data == b"[DONE]":
            self._finished = True
            self._done_sent = True
            return DONE
        try:
            chunk = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise StreamInterrupted(f"{self._provider}: the stream sent an event that is not JSON") from None
        if not isinstance(chunk, dict):
            return b""
        if "error" in chunk:
            raise _error_from_parsed(chunk, 502, data, self._provider)
        changed = False
        usage = chunk.get("usage", _MISSING)
        if usage is not _MISSING:
            if usage:
                self.usage = usage_from_openai(usage)
            if not self._call.client_wants_usage:
                if not chunk.get("choices"):
                    return b""  # the usage chunk the client did not ask for
                del chunk["usage"]
                changed = True
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
            self.usage = Usage(input_tokens=estimate_prompt(self._call.body),
                               output_tokens=(self._output_chars + 3) // 4, estimated=True)

    async def close(self) -> None:
        if not self._resp.closed:
            self._resp.close()


_MISSING: Any = object()


def usage_from_openai(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    prompt = usage.get("prompt_tokens") or 0
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
    completion = usage.get("completion_tokens") or 0
    reasoning = (usage.get("completion_tokens_details") or {}).get("reasoning_tokens") or 0
    return Usage(input_tokens=int(prompt), cached_tokens=int(cached), output_tokens=int(completion),
                 reasoning_tokens=int(reasoning))


def _retry_after(headers: Any) -> float | None:
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return float(ms) / 1000.0
        except ValueError:
            pass
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return None if parsed is None else max(0.0, parsed.timestamp() - time.time())


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
            message = parsed["detail"] if isinstance(parsed["detail"], str) else orjson.dumps(parsed["detail"]).decode()
    elif raw:
        message = raw[:500].decode("utf-8", "replace").strip()
    if not message:
        message = f"upstream answered HTTP {status}"
    return UpstreamError(f"{provider} (HTTP {status}): {message}", status=status, provider=provider, body=raw,
                         code=code, param=param)
