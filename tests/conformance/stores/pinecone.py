"""Pinecone through the wire-level fake (:mod:`vexrun.testing.pinecone`, in its own process): no Pinecone server
or emulator can run here. The real ``pinecone`` SDK talks to it; a collection is an index created by the sink
on the fake's control plane (`create:`), at the real limits (100 upserts per second per namespace, 1,000
records and 2 MB per request, 40 KB of metadata)."""

from __future__ import annotations

from pathlib import Path

from conformance.kit import Config, StoreKit
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import pinecone as service

KEY_VAR = "VEXRUN_TEST_PINECONE_API_KEY"
WRONG_VAR = "VEXRUN_TEST_PINECONE_WRONG_KEY"
ENV: dict[str, str] = {}


def _start(tmp: Path) -> service.PineconeHandle:
    handle = service.start(tmp)
    ENV[KEY_VAR] = handle.api_key
    ENV[WRONG_VAR] = "pcsk_wrong_" + handle.api_key[-6:]
    return handle


def _name(collection: str) -> str:
    return collection.lower().replace("_", "-")  # index names are lowercase letters, digits and hyphens


def _source(handle: service.PineconeHandle, collection: str, namespace: str | None, var: str = KEY_VAR) -> Config:
    cfg: Config = {"type": "pinecone", "index": _name(collection), "controller_host": handle.control_url}
    cfg["api_key"] = f"${{{var}}}"
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _target(handle: service.PineconeHandle, collection: str, var: str = KEY_VAR) -> Config:
    return {**_source(handle, collection, None, var), "create": {"cloud": "aws", "region": "us-east-1"}}


KIT = StoreKit(
    name="pinecone",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=lambda handle, collection: service.count(handle, _name(collection)),
    bad_credentials=lambda handle, collection: _target(handle, collection, WRONG_VAR),
    unreachable=lambda collection: {
        "type": "pinecone",
        "host": f"http://127.0.0.1:{free_port()}",
        "api_key": f"${{{KEY_VAR}}}",
    },
    exact_float32=True,
    env=ENV,
    max_batch_records=1000,
)
