"""GENERATOR (not a test): writes the small input files the recipes in tests/data/recipes/good/ read.

Run from the repository root, then commit what it wrote (deterministic, but for the sidecars' exported_at)::

    .venv/bin/python tests/data/recipes/good/inputs/make_inputs.py

The conversation exports are copies of tests/data/exports/{claude,chatgpt}/conversations.json.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig import Record, VmigWriter

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2]  # tests/data
WORDS = "memory agent prefers dark mode python postgres decided meeting tuesday deploy release travel lisbon".split()


def _text(i: int, n_words: int) -> str:
    return " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(n_words)) + f" (note {i})"


def notes(path: Path, n: int) -> None:
    """Text-only records in conversations of 10, every 15th one long enough for `chunk` to split."""
    with VmigWriter(path, source_store="synthetic") as w:
        for i in range(n):
            long = i % 15 == 7
            w.write(
                Record(
                    id=f"note-{i:04d}",
                    text=_text(i, 700 if long else 12),
                    namespace=("work", "personal")[i % 2],
                    metadata={"conversation_id": f"conv-{i // 10:03d}", "turn": i % 10},
                    created_at=f"2026-03-{1 + (i // 10) % 28:02d}T10:{i % 60:02d}:00Z",
                ),
                None,
            )


def vectors(path: Path, n: int, dims: int, model: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, dims)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    with VmigWriter(path, source_store="synthetic") as w:
        for i in range(n):
            w.write(
                Record(id=f"{model}-{i:04d}", text=_text(i, 10), model=model, metadata={"conversation_id": "c1"}),
                vecs[i],
            )


def projectable(path: Path, n: int) -> None:
    """48-d vectors that are a fixed linear image of the fake embedder's 32-d ones: a projection fits."""
    mix = np.random.default_rng(1).standard_normal((32, 48)).astype(np.float32)
    with VmigWriter(path, source_store="synthetic") as w:
        for i in range(n):
            text = f"memory {i} about project adaptation"
            w.write(Record(id=f"proj-{i:04d}", text=text, model="old-48"), fake_vector(text, 32) @ mix)


def with_bad_line(path: Path) -> None:
    """Five good text-only records and one line that is not a record (no sidecar: the file is hand-made)."""
    lines = [f'{{"id":"ok-{i}","text":"a good record number {i}"}}' for i in range(5)]
    lines.insert(3, '{"id":"bad-1","dims":4,"vector":[1.0,2.0]}')
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    notes(HERE / "notes.vmig.jsonl", 60)
    vectors(HERE / "te3small.vmig.jsonl", 20, 8, "text-embedding-3-small", seed=2)
    vectors(HERE / "mrl64.vmig.jsonl", 40, 64, "mrl-64", seed=3)
    projectable(HERE / "project48.vmig.jsonl", 120)
    with_bad_line(HERE / "with-bad-line.vmig.jsonl")
    for kind in ("claude", "chatgpt"):
        shutil.copy(DATA / "exports" / kind / "conversations.json", HERE / f"{kind}-conversations.json")


if __name__ == "__main__":
    main()
