"""Neo4j through a real Bolt server (ArcadeDB with its Bolt plugin, from the arcadedb-embedded wheel), with a
password; a collection is a label."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import neo4j as service

PASSWORD_VAR = "VEXRUN_TEST_NEO4J_PASSWORD"
WRONG_VAR = "VEXRUN_TEST_NEO4J_WRONG_PASSWORD"
ENV: dict[str, str] = {}


def _start(tmp: Path) -> service.Neo4jHandle:
    handle = service.start(tmp)
    ENV[PASSWORD_VAR] = handle.password
    ENV[WRONG_VAR] = "not-" + handle.password
    return handle


def _target(handle: service.Neo4jHandle, collection: str, var: str = PASSWORD_VAR) -> dict[str, Any]:
    return {"type": "neo4j", "url": handle.url, "username": handle.user, "password": f"${{{var}}}", "label": collection}


def _source(handle: service.Neo4jHandle, collection: str, namespace: str | None) -> dict[str, Any]:
    return {**_target(handle, collection), **({"namespace": namespace} if namespace is not None else {})}


def _count(handle: service.Neo4jHandle, collection: str) -> int:
    with service.driver(handle) as drv:
        records, _, _ = drv.execute_query(f"MATCH (m:`{collection}`) RETURN count(m) AS n")
    return int(records[0]["n"])


KIT = StoreKit(
    name="neo4j",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=lambda handle, collection: _target(handle, collection, WRONG_VAR),
    unreachable=lambda collection: {"type": "neo4j", "url": f"bolt://127.0.0.1:{free_port()}", "label": collection},
    exact_float32=True,
    env=ENV,
)
