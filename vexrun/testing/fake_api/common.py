"""Pieces the fake dialects share: token counting, deterministic vectors with body faults applied, API keys."""

from __future__ import annotations

import re

import numpy as np

from ..fake_embedder import fake_vector
from .faults import Fault
from .server import Request

__all__ = ["api_key_of", "count_tokens", "embedding_matrix", "mask_key"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def count_tokens(text: str) -> int:
    """The fakes' token count: words and punctuation marks (a real BPE tokenizer counts a little more)."""
    return max(1, len(_TOKEN.findall(text)))


def embedding_matrix(texts: list[str], dims: int, fault: Fault | None) -> np.ndarray:
    """``fake_vector(text, dims)`` for each text (so a shorter ``dims`` gives a prefix of the longer vector,
    renormalised, like text-embedding-3's shortening), with a body fault applied: ``wrong_count`` drops the
    last vector, ``wrong_dims`` the last dimension, ``non_finite`` puts a NaN in the first vector."""
    vectors = np.stack([fake_vector(t, dims) for t in texts]) if texts else np.empty((0, dims), np.float32)
    if fault is None:
        return vectors
    if fault.kind == "wrong_count":
        return vectors[:-1]
    if fault.kind == "wrong_dims":
        return np.ascontiguousarray(vectors[:, :-1])
    if fault.kind == "non_finite" and len(vectors):
        vectors = vectors.copy()
        vectors[0, 0] = np.nan
    return vectors


def api_key_of(request: Request) -> str | None:
    """The key a request carries: ``Authorization: Bearer K``, ``x-api-key: K`` or ``api-key: K``."""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.headers.get("api-key")


def mask_key(key: str) -> str:
    """A key shown the way OpenAI's 401 message shows it: a few leading characters, stars, the last four."""
    if len(key) <= 8:
        return "*" * len(key)
    return key[:3] + "*" * (len(key) - 7) + key[-4:]
