"""OpenAI embeddings → Gemini ``batchEmbedContents``, and the vectors back: an OpenAI client's
``POST /v1/embeddings`` served by a Gemini model.

One ``EmbedContentRequest`` per input string, in order (``dimensions`` becomes
``outputDimensionality``); the answer's ``embeddings[i].values`` become ``data[i].embedding``, as
float arrays or, for ``encoding_format: "base64"`` (the OpenAI SDK's default), little-endian float32
bytes in base64, exactly as OpenAI encodes them. Gemini takes text only: token-id inputs are refused
(a ``TranslationError``: another deployment may take them), and Gemini reports no token usage for
embeddings, so the provider estimates it.
"""

from __future__ import annotations

import base64
import struct
from typing import Any

import orjson

from tollway.errors import TranslationError, UpstreamError


def embedding_texts(body: dict[str, Any]) -> list[str]:
    """The input strings of an OpenAI embeddings body (already checked: a string or a non-empty array)."""
    inp = body.get("input")
    texts = [inp] if isinstance(inp, str) else inp
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise TranslationError(
            "Gemini embeds text only: 'input' must be a string or an array of strings, not token ids.",
            param="input",
        )
    return texts


def openai_to_gemini_embed_request(body: dict[str, Any], model: str) -> dict[str, Any]:
    """The ``batchEmbedContents`` body for ``model`` (the upstream name, without ``models/``)."""
    dimensions = body.get("dimensions")
    if dimensions is not None and (
        not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1
    ):
        raise TranslationError("'dimensions' must be a positive integer.", param="dimensions")
    requests = []
    for text in embedding_texts(body):
        one: dict[str, Any] = {"model": f"models/{model}", "content": {"parts": [{"text": text}]}}
        if dimensions is not None:
            one["outputDimensionality"] = dimensions
        requests.append(one)
    return {"requests": requests}


def gemini_to_openai_embeddings(
    raw: bytes, *, inputs: int, provider: str, model: str, encoding_format: str | None, prompt_tokens: int
) -> dict[str, Any]:
    """OpenAI's ``CreateEmbeddingResponse`` from a ``batchEmbedContents`` answer to ``inputs`` texts.
    An answer without one vector of numbers per input is the upstream's fault: a 502, which the
    failover loop may take to the next deployment."""

    def broken(why: str) -> UpstreamError:
        return UpstreamError(
            f"{provider}: the embeddings answer {why}", status=502, provider=provider, body=raw
        )

    try:
        answer = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise broken("is not JSON") from None
    embeddings = answer.get("embeddings") if isinstance(answer, dict) else None
    if not isinstance(embeddings, list) or len(embeddings) != inputs:
        raise broken(f"does not hold {inputs} embedding(s)")
    data = []
    for index, item in enumerate(embeddings):
        values = item.get("values") if isinstance(item, dict) else None
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise broken(f"has no list of numbers at embeddings[{index}].values")
        vector: Any = values
        if encoding_format == "base64":
            vector = base64.b64encode(struct.pack(f"<{len(values)}f", *values)).decode()
        data.append({"object": "embedding", "index": index, "embedding": vector})
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
