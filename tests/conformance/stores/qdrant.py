"""Qdrant in local mode (qdrant-client's own engine in the vexrun process): no server binary can run here, so
a collection lives in a directory; the server route (gRPC) is covered by ``unreachable`` only."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.testing.git_servers import free_port


def _path(handle: Path, collection: str) -> str:
    return str(handle / collection)


def _count(handle: Path, collection: str) -> int:
    from qdrant_client import QdrantClient

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Local mode is not recommended", category=UserWarning)
        client = QdrantClient(path=_path(handle, collection))
        try:
            return int(client.count(collection, exact=True).count)
        finally:
            client.close()


def _target(handle: Path, collection: str) -> dict[str, Any]:
    return {"type": "qdrant", "path": _path(handle, collection), "collection": collection}


def _source(handle: Path, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _unreachable(collection: str) -> dict[str, Any]:
    port = free_port()
    return {"type": "qdrant", "url": f"http://127.0.0.1:{port}", "grpc_port": port, "collection": collection}


KIT = StoreKit(
    name="qdrant",
    start=lambda tmp: tmp,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=None,  # local mode has no authentication
    unreachable=_unreachable,
    exact_float32=False,  # cosine collections keep normalised vectors
    max_batch_records=1024,
)
