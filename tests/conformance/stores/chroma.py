"""Chroma through its real server (``chroma run``, the Rust server in the chromadb wheel)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import chroma as service


def _count(handle: service.ChromaHandle, collection: str) -> int:
    with service.client(handle) as client:
        return int(client.get_collection(collection, embedding_function=None).count())


def _target(handle: service.ChromaHandle, collection: str) -> dict[str, Any]:
    return {"type": "chroma", "url": handle.url, "collection": collection}


def _source(handle: service.ChromaHandle, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _start(tmp: Path) -> service.ChromaHandle:
    return service.start(tmp)


KIT = StoreKit(
    name="chroma",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=_count,
    # Chroma 1.x's Rust server has no authentication: it ignores CHROMA_SERVER_AUTHN_* and accepts any token.
    bad_credentials=None,
    unreachable=lambda collection: {
        "type": "chroma",
        "url": f"http://127.0.0.1:{free_port()}",
        "collection": collection,
    },
    # cosine collections return each value within 1 ulp of what was written (l2 / ip ones are bit-exact)
    exact_float32=False,
    max_batch_records=5000,
)
