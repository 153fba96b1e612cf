"""LanceDB, embedded (no server): a database is a directory of the session, a collection is a table in it."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from conformance.kit import StoreKit


def _target(handle: Path, collection: str) -> dict[str, Any]:
    return {"type": "lancedb", "path": str(handle / "db"), "table": collection}


def _source(handle: Path, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _count(handle: Path, collection: str) -> int:
    os.environ.setdefault("LANCEDB_LOG", "error")
    import lancedb

    return int(lancedb.connect(str(handle / "db")).open_table(collection).count_rows())


KIT = StoreKit(
    name="lancedb",
    start=lambda tmp: tmp,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=None,  # an embedded database has no authentication
    unreachable=None,  # and no server
    exact_float32=True,
)
