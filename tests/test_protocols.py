"""The client protocols (``tollway.protocols``): one answer to "does this client want usage", and each
protocol's encoders and cache codec against the pivot, the same checks for every registered protocol."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tollway.call import Call, Endpoint
from tollway.protocols.anthropic import ANTHROPIC
from tollway.protocols.base import ClientProtocol
from tollway.protocols.openai import OPENAI
from tollway.protocols.registry import PROTOCOLS, protocol
from tollway.sse import SSEDecoder
from tollway.translate.completion import Assembler

COMPLETION: dict[str, Any] = {
    "id": "chatcmpl-abc123",
    "object": "chat.completion",
    "created": 1_700_000_000,
    "model": "gpt-4o-mini",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": "Hello there."},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15},
}


def test_registry_names_every_protocol_once() -> None:
    assert PROTOCOLS == {"openai": OPENAI, "anthropic": ANTHROPIC}
    for name, p in PROTOCOLS.items():
        assert protocol(name) is p
        assert p.name == name
        assert p.key == name.encode()  # what the cache key holds
    with pytest.raises(KeyError):
        protocol("gemini")  # an upstream protocol only: no client speaks it to tollway


def test_wants_usage_openai_only_when_asked() -> None:
    assert OPENAI.wants_usage({}) is False
    assert OPENAI.wants_usage({"stream_options": {"include_usage": True}}) is True
    assert OPENAI.wants_usage({"stream_options": {"include_usage": False}}) is False
    assert OPENAI.wants_usage({"stream_options": "yes"}) is False


def test_wants_usage_anthropic_always() -> None:
    """One answer for an Anthropic call, wherever it is asked (a provider translating its stream, a
    cache hit replayed, a reader of a shared stream): Anthropic's stream always carries usage in
    message_start and message_delta, and has no option to leave it out."""
    assert ANTHROPIC.wants_usage({}) is True
    assert ANTHROPIC.wants_usage({"stream_options": {"include_usage": False}}) is True


def test_the_call_holds_no_client_fact_a_provider_could_set() -> None:
    call = Call("r", ANTHROPIC, Endpoint.CHAT, {"model": "m", "messages": []}, "m", True)
    assert not hasattr(call, "client_wants_usage")
    assert call.protocol.wants_usage(call.body) is True


def test_openai_encoder_hides_the_usage_chunk_not_asked_for() -> None:
    chunk = {"id": "c", "choices": [], "usage": {"prompt_tokens": 1}}
    with_choice = {"id": "c", "choices": [{"index": 0, "delta": {"content": "x"}}], "usage": {"a": 1}}
    quiet = OPENAI.encoder({}, model="m")
    assert quiet.feed(chunk) == b""
    assert b"usage" not in quiet.feed(with_choice)
    assert quiet.finish() == b"data: [DONE]\n\n"
    asked = OPENAI.encoder({"stream_options": {"include_usage": True}}, model="m")
    assert b'"usage"' in asked.feed(chunk)


@pytest.mark.parametrize("p", list(PROTOCOLS.values()), ids=list(PROTOCOLS))
def test_codec_round_trips_a_whole_answer(p: ClientProtocol) -> None:
    codec = p.codec(model="gpt-4o-mini", request_id="req_1")
    body = codec.body(COMPLETION)
    assert body == p.encode_body(COMPLETION, model="gpt-4o-mini")
    back = codec.neutral(body)
    assert back is not None
    assert back["choices"][0]["message"]["content"] == "Hello there."
    assert back["choices"][0]["finish_reason"] == "stop"
    assert back["usage"]["prompt_tokens"] == 12
    assert back["usage"]["completion_tokens"] == 3


@pytest.mark.parametrize("p", list(PROTOCOLS.values()), ids=list(PROTOCOLS))
def test_codec_reads_back_the_stream_it_writes(p: ClientProtocol) -> None:
    """A replayed answer, read the way a recording reads a live one, reassembles into the answer."""
    codec = p.codec(model="gpt-4o-mini", request_id="req_1")
    asks = {"stream_options": {"include_usage": True}}
    wire = codec.stream(COMPLETION, include_usage=p.wants_usage(asks))
    if codec.tail:
        assert wire.endswith(codec.tail)
        wire = wire[: -len(codec.tail)]
    reader = p.codec(model="gpt-4o-mini", request_id="req_1")
    assembler = Assembler()
    for event in SSEDecoder().feed(wire):
        chunks, _ = reader.read(event)
        for chunk in chunks:
            assembler.feed(chunk)
    for chunk in reader.close():
        assembler.feed(chunk)
    assert assembler.understood
    rebuilt = assembler.completion()
    assert rebuilt is not None
    assert rebuilt["choices"][0]["message"]["content"] == "Hello there."
    assert rebuilt["choices"][0]["finish_reason"] == "stop"
    assert rebuilt["usage"]["completion_tokens"] == 3


def test_anthropic_replay_carries_usage_though_the_request_asked_nothing() -> None:
    codec = ANTHROPIC.codec(model="claude", request_id="req_1")
    wire = codec.stream(COMPLETION, include_usage=ANTHROPIC.wants_usage({}))
    deltas = [orjson.loads(e.data) for e in SSEDecoder().feed(wire) if e.event == "message_delta"]
    assert len(deltas) == 1
    assert deltas[0]["usage"]["output_tokens"] == 3
    assert not codec.usage_apart and codec.late_usage(COMPLETION) == b""


def test_openai_late_usage_is_the_usage_chunk() -> None:
    codec = OPENAI.codec(model="gpt-4o-mini", request_id="req_1")
    assert codec.usage_apart
    (event,) = SSEDecoder().feed(codec.late_usage(COMPLETION))
    chunk = orjson.loads(event.data)
    assert chunk["choices"] == []
    assert chunk["usage"]["prompt_tokens"] == 12


@pytest.mark.parametrize("p", list(PROTOCOLS.values()), ids=list(PROTOCOLS))
def test_models_list_and_object(p: ClientProtocol) -> None:
    entry = p.model_object("gpt-4o-mini", 1_700_000_000)
    assert entry["id"] == "gpt-4o-mini"
    listing = p.model_list([entry])
    assert listing["data"] == [entry]
