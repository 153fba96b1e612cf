"""Seeded synthetic memory records: the datasets of the tests and benchmarks."""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..vmig.batch import Batch
from ..vmig.model import Record
from ..vmig.writer import VmigWriter

__all__ = ["WORDS", "chat_chunks", "synthetic_batches", "write_synthetic"]

WORDS = (
    "memory agent vector store user prefers dark mode python postgres chroma qdrant milvus redis decided "
    "meeting tuesday deploy staging release budget review travel berlin lisbon coffee tea running book "
    "project deadline migrate index embedding model customer invoice design draft feedback team remote"
).split()


def synthetic_batches(
    n: int, *, dims: int = 384, seed: int = 0, batch_size: int = 1000, words: int = 20
) -> Iterator[Batch]:
    """``n`` records with unit-norm float32 vectors, ``words``-word texts and 3 metadata fields."""
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    for start in range(0, n, batch_size):
        m = min(batch_size, n - start)
        vecs = rng.standard_normal((m, dims), dtype=np.float32)
        vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        picks = rng.integers(0, len(vocab), size=(m, words))
        turns = rng.integers(0, 500, size=m)
        records = []
        for i in range(m):
            k = start + i
            records.append(
                Record(
                    id=f"mem-{seed}-{k:08d}",
                    text=" ".join(vocab[picks[i]].tolist()),
                    model="all-MiniLM-L6-v2",
                    namespace=("work", "personal", "travel")[k % 3],
                    metadata={"source": "claude-export", "turn": int(turns[i]), "pinned": bool(k % 7 == 0)},
                    created_at=f"2026-{1 + k % 12:02d}-{1 + k % 28:02d}T{k % 24:02d}:{k % 60:02d}:00Z",
                    source_store="synthetic",
                    modality="text",
                )
            )
        yield Batch(records=records, vectors=vecs, has_vector=np.ones(m, dtype=bool))


def write_synthetic(path: str | os.PathLike[str], n: int, *, dims: int = 384, seed: int = 0) -> Path:
    """Write ``n`` synthetic records to ``path`` (with its sidecar) and return the path."""
    with VmigWriter(path, source_store="synthetic") as w:
        for batch in synthetic_batches(n, dims=dims, seed=seed):
            w.write_batch(batch)
    return Path(path)


NAMES = ["Anna", "Berlin", "Lisbon", "Postgres", "Dana", "Qdrant", "Porto", "Milo", "Acme", "Tuesday"]
VERBS = ["decided to use", "prefers", "works with", "is planning", "needs to migrate", "likes", "bought", "visited"]


def chat_chunks(n: int, seed: int = 11) -> list[Record]:
    """``n`` chat chunks (a user turn of 2–4 statements, a reply) of conversations of 5, for extraction."""
    rng = random.Random(seed)
    chunks = []
    for i in range(n):
        sentences = []
        for _ in range(rng.randint(2, 4)):
            words = " ".join(rng.choices(WORDS, k=rng.randint(3, 8)))
            sentences.append(f"I {rng.choice(VERBS)} {rng.choice(NAMES)} for the {words}.")
        reply = " ".join(rng.choices(WORDS, k=rng.randint(8, 20))).capitalize() + "."
        text = "User: " + " ".join(sentences) + "\n\nAssistant: " + reply
        day = 1 + i % 28
        meta: Any = {"conversation_id": f"conv{i // 5}", "conversation_title": f"Chat {i // 5}", "chunk_index": i % 5}
        meta["source_message_ids"] = [f"m{i}a", f"m{i}b"]
        chunks.append(Record(id=f"chunk{i}", text=text, metadata=meta, created_at=f"2025-03-{day:02d}T10:00:00Z"))
    return chunks
