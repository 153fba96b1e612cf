"""The embedded local store: no server; a collection is a file."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from conformance.kit import StoreKit


def _start(tmp: Path) -> Path:
    return tmp


def _path(handle: Path, collection: str) -> str:
    return str(handle / f"{collection}.db")


def _count(handle: Path, collection: str) -> int:
    db = sqlite3.connect(_path(handle, collection))
    try:
        return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
    finally:
        db.close()


def _source(handle: Path, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg: dict[str, Any] = {"type": "sqlite", "path": _path(handle, collection)}
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


KIT = StoreKit(
    name="sqlite",
    start=_start,
    target=lambda h, c: {"type": "sqlite", "path": _path(h, c)},
    source=_source,
    count=_count,
    exact_float32=True,
)
