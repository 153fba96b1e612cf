"""A real Milvus standalone server (PyPI ``milvus``) with authorization on, started once per session."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.connectors.milvus.common import sdk
from vexrun.testing.services import milvus as service

TOKEN = service.DEFAULT_TOKEN


def _target(handle: service.MilvusHandle, collection: str) -> dict[str, Any]:
    return {"type": "milvus", "uri": handle.uri, "token": "${MILVUS_TOKEN}", "collection": collection}


def _source(handle: service.MilvusHandle, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _count(handle: service.MilvusHandle, collection: str) -> int:
    client = sdk().MilvusClient(uri=handle.uri, token=TOKEN)
    try:
        rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
        return int(rows[0]["count(*)"])
    finally:
        client.close()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(tmp: Path) -> service.MilvusHandle:
    return service.start(tmp, auth=True)


KIT = StoreKit(
    name="milvus",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=lambda h, c: {"type": "milvus", "uri": h.uri, "token": "root:not-the-password", "collection": c},
    unreachable=lambda c: {"type": "milvus", "uri": f"http://127.0.0.1:{_closed_port()}", "collection": c},
    exact_float32=True,
    env={"MILVUS_TOKEN": TOKEN},
)
