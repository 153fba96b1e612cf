"""Opening the official ``neo4j`` driver (imported here, lazily), turning its errors into one clear line, and
the Cypher that both the source and the sink run.

Servers differ in what they offer besides Cypher over Bolt: a real Neo4j (5.11 and later) has vector indexes
(``CREATE VECTOR INDEX``, ``db.index.vector.queryNodes``); ArcadeDB's Bolt plugin has neither, but has the
``vector.similarity.*`` functions. :meth:`Store.search_path` finds out once which a server has, and searches
use the best: the index, else a scan that ranks in Cypher, else a scan that ranks in numpy here.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Literal, NoReturn
from urllib.parse import urlsplit

from ...errors import ConnectError, InvalidInput, UsageError
from .codec import quote
from .config import Neo4jStoreConfig

if TYPE_CHECKING:
    from neo4j import Driver, ManagedTransaction

__all__ = ["SEARCH_PATHS", "Conflict", "SearchPath", "Store", "display_location", "fail"]

SearchPath = Literal["index", "cypher", "client"]
SEARCH_PATHS: dict[str, str] = {
    "index": "the vector index (db.index.vector.queryNodes)",
    "cypher": "a scan ranked in Cypher (vector.similarity.*; the server has no vector indexes)",
    "client": "a scan ranked by vexrun (the server has no vector indexes nor vector.similarity.*)",
}
#: the label of the node that records how vexrun prepared a label (dims, metric, model, embedder)
META_LABEL = "VexrunMeta"
_CONNECT_TIMEOUT = 5.0
#: codes of servers that do not have a feature (a vector index, a procedure), as opposed to a failed call
_UNSUPPORTED = ("SyntaxError", "ProcedureNotFound", "UnknownError", "FunctionNotFound", "SemanticError")


def display_location(cfg: Neo4jStoreConfig) -> str:
    """The server for messages: scheme, host and port (never credentials), and the database if one is named."""
    parts = urlsplit(cfg.url if "://" in cfg.url else f"bolt://{cfg.url}")
    port = f":{parts.port}" if parts.port else ""
    where = f"{parts.scheme}://{parts.hostname or ''}{port}"
    return f"{where} (database {cfg.database})" if cfg.database else where


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:300]


def fail(exc: BaseException, where: str, doing: str) -> NoReturn:
    """Raise one ConnectError / InvalidInput line for a driver exception (never with a secret in it)."""
    from neo4j import exceptions as ne

    code = str(getattr(exc, "code", "") or "")
    text = _message(exc)
    if isinstance(exc, ne.AuthError | ne.Forbidden) or "Security.Unauthorized" in code:
        raise ConnectError(
            f"neo4j at {where} refused the credentials while {doing}", hint="check username and password"
        ) from None
    if isinstance(exc, ne.ServiceUnavailable | ne.SessionExpired | ne.ConnectionAcquisitionTimeoutError | OSError):
        low = text.lower()
        why = "connection refused" if "refused" in low else ("timed out" if "timed out" in low else text)
        raise ConnectError(
            f"cannot reach neo4j at {where} ({why})", hint="is the server running, and is url right?"
        ) from None
    if "DatabaseNotFound" in code:
        raise ConnectError(f"neo4j at {where}: {text}", hint="check database") from None
    if isinstance(exc, ne.ConfigurationError | ValueError) and not isinstance(exc, ne.Neo4jError):
        raise UsageError(f"neo4j at {where}: {text}", hint="check url (bolt://host:7687, neo4j+s://...)") from None
    if isinstance(exc, ne.TransientError | ne.DatabaseUnavailable):
        raise ConnectError(f"neo4j at {where}: {doing} kept failing: {text}") from None
    raise InvalidInput(f"neo4j at {where}: {doing} failed: {text}") from None


def unsupported(exc: BaseException) -> bool:
    """The server does not have what was asked (a vector index, a procedure or function)."""
    from neo4j import exceptions as ne

    code = str(getattr(exc, "code", "") or "")
    return isinstance(exc, ne.ClientError | ne.DatabaseError) and any(c in code for c in _UNSUPPORTED)


class Conflict(Exception):
    """A write broke the uniqueness constraint on id (nothing of it was written)."""


class Store:
    """One driver on one database, and the names of the label's schema objects."""

    def __init__(self, cfg: Neo4jStoreConfig) -> None:
        self.cfg = cfg
        self.where = display_location(cfg)
        self.driver: Driver | None = None
        self.agent = ""
        self.path: SearchPath | None = None
        self.label = quote(cfg.label)
        self.emb = quote(cfg.embedding_key)
        self.ns = quote(cfg.namespace_key)
        self.index_name = f"vexrun_{cfg.label}_{cfg.embedding_key}"
        self.constraint_name = f"vexrun_{cfg.label}_id"

    def open(self) -> Driver:
        """Connect and check that the server answers and accepts the credentials (within a few seconds)."""
        import logging

        import neo4j

        from ..._version import __version__

        # the driver logs what it also raises (routing, server info): vexrun says it once, as one line
        driver_log = logging.getLogger("neo4j")
        if not driver_log.handlers:
            driver_log.addHandler(logging.NullHandler())
        self.close()
        cfg = self.cfg
        auth = (cfg.username, cfg.password.get_secret_value()) if cfg.password is not None else None
        try:
            self.driver = neo4j.GraphDatabase.driver(
                cfg.url,
                auth=auth,
                connection_timeout=min(cfg.timeout, _CONNECT_TIMEOUT),
                connection_acquisition_timeout=cfg.timeout,
                max_transaction_retry_time=cfg.timeout,
                user_agent=f"vexrun/{__version__}",
            )
            self.driver.verify_connectivity()
            self.agent = str(self.driver.get_server_info().agent)
            self.read("RETURN 1 AS ok", {})  # the database exists and this user may read it
        except (ConnectError, InvalidInput, UsageError):
            self.close()
            raise
        except Exception as exc:  # noqa: BLE001 - every driver failure becomes one line
            self.close()
            fail(exc, self.where, "connecting")
        return self.driver

    @property
    def api(self) -> Driver:
        if self.driver is None:
            raise RuntimeError("neo4j store used before open()")
        return self.driver

    def read(self, query: str, params: dict[str, Any], doing: str = "reading") -> list[dict[str, Any]]:
        """Run a read query (retried on transient errors); its rows as dicts."""
        import neo4j

        try:
            result = self.api.execute_query(
                query, params, database_=self.cfg.database, routing_=neo4j.RoutingControl.READ
            )
        except Exception as exc:  # noqa: BLE001
            fail(exc, self.where, doing)
        return [dict(zip(result.keys, r, strict=True)) for r in result.records]

    def stream(self, query: str, params: dict[str, Any], size: int, doing: str) -> Iterator[list[dict[str, Any]]]:
        """Run a read query in one auto-commit transaction and yield its rows as they arrive, ``size`` at a time
        (the driver pulls them from the server in pages of its own)."""
        import neo4j

        try:
            with self.api.session(database=self.cfg.database, default_access_mode=neo4j.READ_ACCESS) as session:
                chunk: list[dict[str, Any]] = []
                result = session.run(query, params)
                keys = result.keys()
                for record in result:
                    chunk.append(dict(zip(keys, record, strict=True)))  # record.data() copies every value again
                    if len(chunk) >= size:
                        yield chunk
                        chunk = []
                if chunk:
                    yield chunk
        except Exception as exc:  # noqa: BLE001
            fail(exc, self.where, doing)

    def write(self, work: Callable[[ManagedTransaction], Any], doing: str, *, conflicts: bool = False) -> Any:
        """Run ``work`` in one write transaction (retried on transient errors: it must be idempotent). With
        ``conflicts``, a uniqueness violation (the transaction rolled back) raises :class:`Conflict`."""
        from neo4j.exceptions import ConstraintError

        try:
            with self.api.session(database=self.cfg.database) as session:
                return session.execute_write(work)
        except Exception as exc:  # noqa: BLE001
            if conflicts and isinstance(exc, ConstraintError):
                raise Conflict() from None
            fail(exc, self.where, doing)

    def run_write(self, query: str, params: dict[str, Any], doing: str) -> list[dict[str, Any]]:
        return list(self.write(lambda tx: [dict(zip(r.keys(), r, strict=True)) for r in tx.run(query, params)], doing))

    def schema(self, query: str, doing: str) -> bool:
        """Run a schema statement; False when the server does not have what it asks for."""
        try:
            with self.api.session(database=self.cfg.database) as session:
                session.run(query).consume()
        except Exception as exc:  # noqa: BLE001
            if unsupported(exc):
                return False
            fail(exc, self.where, doing)
        return True

    # -- the label ---------------------------------------------------------------------------------------
    def where_ns(self, var: str = "m", namespace: str | None = None) -> str:
        return f" AND {var}.{self.ns} = $ns" if namespace is not None else ""

    def count(self, namespace: str | None = None) -> int:
        rows = self.read(
            f"MATCH (m:{self.label}) WHERE true{self.where_ns('m', namespace)} RETURN count(m) AS n",
            {"ns": namespace},
            "counting nodes",
        )
        return int(rows[0]["n"]) if rows else 0

    def has_label(self) -> bool:
        rows = self.read("CALL db.labels() YIELD label RETURN label", {}, "listing labels")
        return any(r.get("label") == self.cfg.label for r in rows)

    def has_relationships(self) -> bool:
        """False only when the database lists no relationship type at all (then no node has an edge to read);
        True when it lists one, or cannot say."""
        import neo4j

        try:
            result = self.api.execute_query(
                "CALL db.relationshipTypes() YIELD relationshipType RETURN relationshipType LIMIT 1",
                database_=self.cfg.database,
                routing_=neo4j.RoutingControl.READ,
            )
        except Exception:  # noqa: BLE001 - a server without the procedure: read the edges batch by batch
            return True
        return bool(result.records)

    def meta(self) -> dict[str, Any]:
        rows = self.read(
            f"MATCH (n:{quote(META_LABEL)} {{label: $label}}) RETURN properties(n) AS p",
            {"label": self.cfg.label},
            "reading the label's settings",
        )
        return dict(rows[0]["p"]) if rows else {}

    def set_meta(self, values: dict[str, Any]) -> None:
        self.run_write(
            f"MERGE (n:{quote(META_LABEL)} {{label: $label}}) SET n += $p",
            {"label": self.cfg.label, "p": {k: v for k, v in values.items() if v is not None}},
            "recording the label's settings",
        )

    def search_path(self) -> SearchPath:
        """How this server ranks vectors (found once per store)."""
        if self.path is None:
            self.path = self._find_path()
        return self.path

    def _find_path(self) -> SearchPath:
        try:
            rows = self.read("SHOW INDEXES", {}, "listing indexes")
        except InvalidInput:
            rows = []
        if any(r.get("name") == self.index_name and str(r.get("type")).upper() == "VECTOR" for r in rows):
            return "index"
        try:
            self.read("RETURN vector.similarity.cosine([1.0, 0.0], [1.0, 0.0]) AS s", {}, "probing")
        except InvalidInput:
            return "client"
        return "cypher"

    def delete_all(self, chunk: int = 10_000) -> None:
        """Delete every node of the label with its relationships, a chunk per transaction."""
        query = f"MATCH (m:{self.label}) WITH m LIMIT $n DETACH DELETE m RETURN count(*) AS n"
        while True:
            rows = self.run_write(query, {"n": chunk}, "deleting the label's nodes")
            if not rows or int(rows[0]["n"]) == 0:
                break
        self.run_write(
            f"MATCH (n:{quote(META_LABEL)} {{label: $label}}) DELETE n",
            {"label": self.cfg.label},
            "deleting the label's settings",
        )
        with contextlib.suppress(InvalidInput):
            self.schema(f"DROP INDEX {quote(self.index_name)} IF EXISTS", "dropping the vector index")
        self.path = None

    def fetch_props(self, ids: Sequence[str], namespace: str | None) -> list[dict[str, Any]]:
        """The property maps of the nodes with these ids, in the order asked (missing ids left out)."""
        rows = self.read(
            f"UNWIND $ids AS i MATCH (m:{self.label} {{id: i}}) WHERE true{self.where_ns('m', namespace)} "
            "RETURN m.id AS id, properties(m) AS p",
            {"ids": list(ids), "ns": namespace},
            "fetching nodes",
        )
        found = {str(r["id"]): r["p"] for r in rows}
        return [found[i] for i in dict.fromkeys(ids) if i in found]

    def close(self) -> None:
        if self.driver is not None:
            driver, self.driver = self.driver, None
            with contextlib.suppress(Exception):
                driver.close()
