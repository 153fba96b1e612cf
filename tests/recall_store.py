"""A small local store built by a real vexrun run, for the recall tests: the 22 memories of
``examples/memories.vmig.jsonl`` (namespaces personal, travel, work) re-embedded with the fake embedder (32-d), so
the store records ``{"type": "fake", "dims": 32}`` as its embedder and every test opens it the way a user would."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import ROOT

DIMS = 32
SOURCE = ROOT / "examples" / "memories.vmig.jsonl"
#: the one memory whose text holds "ingestion" (a BM25 match that no other memory shares)
PRIYA = "Priya leads the data platform team and owns the nightly ingestion jobs."


def build_store(directory: Path) -> Path:
    """Run a recipe into ``directory/memory.db`` and return the store's path."""
    from vexrun.api import run

    recipe = directory / "recall.yaml"
    recipe.write_text(
        f"version: 1\nname: recall-test\nsource: {{type: vmig, path: {json.dumps(str(SOURCE))}}}\n"
        f"embed: {{type: fake, dims: {DIMS}}}\ntarget: {{type: sqlite, path: memory.db}}\n"
    )
    summary = run(recipe)
    assert summary.status == "completed", summary
    return directory / "memory.db"


def texts(namespace: str | None = None) -> dict[str, str]:
    """id → text of the source's memories (in ``namespace``)."""
    return {doc["id"]: doc["text"] for doc in records() if namespace is None or doc.get("namespace") == namespace}


def records() -> list[dict[str, Any]]:
    """The source's memories as JSON objects."""
    return [json.loads(line) for line in SOURCE.read_text().splitlines()]


def ids_where(test: Callable[[dict[str, Any]], bool]) -> set[str]:
    """The ids of the memories whose metadata passes ``test``."""
    return {doc["id"] for doc in records() if test(doc.get("metadata") or {})}
