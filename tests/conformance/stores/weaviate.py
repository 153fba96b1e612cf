"""Weaviate through the wire-level fake (:mod:`vexrun.testing.fake_weaviate`, in its own process): no Weaviate
server can run here. The real ``weaviate-client`` v4 talks to it over REST and gRPC with an API key; a collection
is created multi-tenant by the sink (each namespace a tenant), with flat-index cosine vectors."""

from __future__ import annotations

from pathlib import Path

from conformance.kit import Config, StoreKit
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import weaviate as service

KEY_VAR = "VEXRUN_TEST_WEAVIATE_API_KEY"
WRONG_VAR = "VEXRUN_TEST_WEAVIATE_WRONG_KEY"
ENV: dict[str, str] = {}


def _start(tmp: Path) -> service.WeaviateHandle:
    handle = service.start(tmp)
    assert handle.api_key is not None
    ENV[KEY_VAR] = handle.api_key
    ENV[WRONG_VAR] = "wv_wrong_" + handle.api_key[-6:]
    return handle


def _source(handle: service.WeaviateHandle, collection: str, namespace: str | None, var: str = KEY_VAR) -> Config:
    cfg: Config = {"type": "weaviate", "url": handle.url, "grpc_port": handle.grpc_port, "collection": collection}
    cfg["api_key"] = f"${{{var}}}"
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _count(handle: service.WeaviateHandle, collection: str) -> int:
    client = service.client(handle)
    try:
        coll = client.collections.use(collection)
        tenants = coll.tenants.get() if coll.config.get().multi_tenancy_config.enabled else {"": None}
        total = (coll.with_tenant(t or None).aggregate.over_all(total_count=True).total_count for t in tenants)
        return sum(n or 0 for n in total)
    finally:
        client.close()


KIT = StoreKit(
    name="weaviate",
    start=_start,
    stop=service.stop,
    target=lambda handle, collection: {**_source(handle, collection, None), "index": "flat"},
    source=_source,
    count=_count,
    bad_credentials=lambda handle, collection: _source(handle, collection, None, WRONG_VAR),
    unreachable=lambda collection: {
        "type": "weaviate",
        "url": f"http://127.0.0.1:{free_port()}",
        "grpc_port": free_port(),
        "collection": collection,
    },
    exact_float32=True,
    env=ENV,
    max_batch_records=10_000,
)
