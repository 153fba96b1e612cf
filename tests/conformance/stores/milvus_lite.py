"""Milvus Lite (PyPI ``milvus-lite``): a local ``.db`` served in-process by a pure-Python gRPC server, which
one process at a time may open."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.connectors.milvus.common import release_lite, sdk


def _path(handle: Path, collection: str) -> str:
    return str(handle / f"{collection}.db")


def _target(handle: Path, collection: str) -> dict[str, Any]:
    return {"type": "milvus", "uri": _path(handle, collection), "collection": collection}


def _source(handle: Path, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _count(handle: Path, collection: str) -> int:
    client = sdk().MilvusClient(_path(handle, collection))
    try:
        rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])
    finally:
        client.close()
        release_lite(Path(_path(handle, collection)))  # the lock, for the next vexrun process


KIT = StoreKit(
    name="milvus-lite",
    start=lambda tmp: tmp,
    target=_target,
    source=_source,
    count=_count,
    exact_float32=True,
)
