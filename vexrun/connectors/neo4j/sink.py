"""Neo4j as a sink: each batch is one write transaction of ``UNWIND $rows AS r MERGE (m:Label {id: r.id}) SET m =
r.props`` statements (idempotent: a node is found by id and its properties replaced), and edges are merged into
relationships between the nodes, found by id too. While the label held nothing before the run, ``CREATE`` takes
the place of ``MERGE`` (20% faster on ArcadeDB), until the uniqueness constraint refuses an id that is there
already: that transaction rolls back, and the batch and the rest of the run are merged.

``prepare`` creates a uniqueness constraint on ``id`` (which also indexes it) and, where the server has them and
the vectors have a size, a vector index; a node labelled ``VexrunMeta`` records the size, metric, model and
embedder the label was prepared for, and a later run with another size or metric is refused.

Edges travel both ways, into the graph and back out (see :mod:`.source`), as ONE relationship each,
``(src)-[:type]->(dst)``: Neo4j follows a relationship in either direction at the same cost
(``(a)-[:tag]-(b)``), and a second, reversed copy would be counted twice by every undirected match. An edge
whose ends are not both nodes of the label is not written (counted, and said once in the log).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ..._version import __version__
from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Edge, Hit, RunContext, Sink, WriteResult
from .client import SEARCH_PATHS, Conflict, Store
from .codec import edge_props, edge_type, node_props, nodes_to_batch, quote
from .config import Neo4jSinkConfig
from .search import search

if TYPE_CHECKING:
    from neo4j import ManagedTransaction

__all__ = ["Neo4jSink"]

_SIMILARITY = {"cosine": "cosine", "l2": "euclidean"}


class Neo4jSink(Sink):
    name = "neo4j"
    concurrent_writers = True
    io_bound = True

    def __init__(self, config: Neo4jSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config)
        self.fresh = True
        self.records = 0
        self.edges = 0
        self.dropped = 0
        self.dims: int | None = None
        self.metric: str = config.metric or "cosine"
        #: a label that held no node when the run prepared it, with the uniqueness constraint on id: CREATE (the
        #: constraint refuses an id already there, and the sink switches to MERGE for the rest of the run)
        self.create = False
        self._merge = f"UNWIND $rows AS r MERGE (m:{self.store.label} {{id: r.id}}) SET m = r.props"
        self._create = f"UNWIND $rows AS r CREATE (m:{self.store.label}) SET m = r.props"

    def identity(self) -> str:
        return f"neo4j:{self.cfg.label} at {self.store.where}"

    # -- the run -----------------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        self.store.open()
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))
        self.edges = int((state or {}).get("edges", 0))
        self.dropped = int((state or {}).get("edges_dropped", 0))
        meta = self.store.meta()
        self.dims = int(meta["dims"]) if isinstance(meta.get("dims"), int) else None

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in _SIMILARITY:
            raise InvalidInput(f"neo4j has no metric {metric!r} (it has {', '.join(_SIMILARITY)})")
        if cfg.replace and self.fresh:
            store.delete_all()
        self.fresh = False
        meta = store.meta()
        have_dims, have_metric = meta.get("dims"), meta.get("metric")
        if (dims is not None and isinstance(have_dims, int) and have_dims != dims) or (
            have_metric not in (None, metric)
        ):
            shape = f"{have_dims}-d vectors" if have_dims else "vectors"
            raise InvalidInput(
                f"neo4j label '{cfg.label}' at {store.where} holds {shape} by {have_metric}, this run writes "
                f"{dims}-d vectors by {metric}",
                hint="set replace: true on the target to empty it, or choose another label",
            )
        unique = store.schema(
            f"CREATE CONSTRAINT {quote(store.constraint_name)} IF NOT EXISTS FOR (m:{store.label}) "
            "REQUIRE m.id IS UNIQUE",
            "creating the uniqueness constraint on id",
        )
        self.create = unique and store.count() == 0
        self.dims = have_dims if isinstance(have_dims, int) else dims
        self.metric = metric
        self._vector_index()
        spec = getattr(self.ctx, "embedder_spec", None)
        store.set_meta(
            {
                "dims": self.dims,
                "metric": metric,
                "model": meta.get("model") or model,
                "embedder_spec": orjson.dumps(spec).decode() if spec else None,
                "created_by": meta.get("created_by") or f"vexrun {__version__}",
            }
        )

    def _vector_index(self) -> None:
        """A vector index where the server has them; which search path the label gets is said once."""
        store, cfg = self.store, self.cfg
        if self.dims is not None and cfg.vector_index:
            made = store.schema(
                f"CREATE VECTOR INDEX {quote(store.index_name)} IF NOT EXISTS FOR (m:{store.label}) ON (m.{store.emb}) "
                f"OPTIONS {{indexConfig: {{`vector.dimensions`: {int(self.dims)}, "
                f"`vector.similarity_function`: '{_SIMILARITY[self.metric]}'}}}}",
                "creating the vector index",
            )
            store.path = "index" if made else None
        path = store.search_path()
        self.ctx.info(f"{self.identity()}: searches use {SEARCH_PATHS[path]}")

    def write(self, batch: Batch) -> WriteResult:
        rejected: dict[str, str] = {}
        mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
        if mat is not None and self.dims is not None and mat.shape[1] != self.dims:
            reason = f"vector has {mat.shape[1]} dims, the label holds {self.dims}-d vectors"
            return WriteResult(0, {rec.id: reason for rec in batch.records})
        rows: dict[str, dict[str, Any]] = {}
        for i, rec in enumerate(batch.records):
            vec = None if mat is None or (batch.has_vector is not None and not batch.has_vector[i]) else mat[i]
            rows[rec.id] = {"id": rec.id, "props": node_props(rec, vec, self.cfg, self.cfg.namespace)}
        if not rows:
            return WriteResult(0, rejected)
        items = list(rows.values())
        step = self.cfg.rows_per_statement

        def work(tx: ManagedTransaction) -> None:
            query = self._create if self.create else self._merge
            for start in range(0, len(items), step):
                tx.run(query, {"rows": items[start : start + step]}).consume()

        try:
            self.store.write(work, "writing nodes", conflicts=self.create)
        except Conflict:  # an id the label holds already (a re-run, or an id repeated across batches)
            self.create = False
            self.store.write(work, "merging nodes")
        if self.dims is None and mat is not None and (batch.has_vector is None or bool(np.any(batch.has_vector))):
            self.dims = int(mat.shape[1])  # a label prepared without vectors takes the size of the first ones
            self.store.set_meta({"dims": self.dims})
            self._vector_index()
        self.records += len(batch) - len(rejected)
        return WriteResult(written=len(batch) - len(rejected), rejected=rejected)

    def write_edges(self, edges: list[Edge]) -> None:
        """Merge each edge into one relationship (src)-[:type]->(dst), its properties replaced."""
        if not edges:
            return
        by_type: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for e in edges:
            rows = by_type.setdefault(edge_type(e.type), {})
            rows[(e.src, e.dst)] = {"s": e.src, "d": e.dst, "p": edge_props(e)}
        label = self.store.label
        step = self.cfg.rows_per_statement

        def work(tx: ManagedTransaction) -> int:
            made = 0
            for kind, rows in sorted(by_type.items()):
                query = (
                    f"UNWIND $rows AS e MATCH (a:{label} {{id: e.s}}) MATCH (b:{label} {{id: e.d}}) "
                    f"MERGE (a)-[r:{quote(kind)}]->(b) SET r = e.p RETURN count(r) AS n"
                )
                items = list(rows.values())
                for start in range(0, len(items), step):
                    got = tx.run(query, {"rows": items[start : start + step]}).single()
                    made += int(got["n"]) if got else 0
            return made

        total = sum(len(rows) for rows in by_type.values())
        made = int(self.store.write(work, "merging relationships"))
        if made < total and not self.dropped:
            self.ctx.info(
                f"{self.identity()}: edges whose ends are not both nodes of label '{self.cfg.label}' are not written"
            )
        self.dropped += total - made
        self.edges += made

    def state(self) -> dict[str, Any]:
        return {"records": self.records, "edges": self.edges, "edges_dropped": self.dropped}

    def check(self) -> str:
        store = Store(self.cfg)  # its own connection: an open sink keeps its own
        store.open()
        try:
            agent = f" ({store.agent})" if store.agent else ""
            if not store.has_label():
                return f"{self.identity()}: reachable{agent}; no nodes labelled {self.cfg.label} yet (a run adds them)"
            meta = store.meta()
            shape = f", {meta['dims']}-d {meta.get('metric', 'cosine')}" if meta.get("dims") else ""
            return (
                f"{self.identity()}: reachable{agent}, {store.count():,} nodes{shape}; searches use "
                f"{SEARCH_PATHS[store.search_path()]}"
            )
        finally:
            store.close()

    def close(self) -> None:
        self.store.close()

    # -- reading back ------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.store.open()
        if not self.store.has_label():
            self.store.close()
            raise InvalidInput(f"neo4j at {self.store.where} has no nodes labelled {self.cfg.label}")
        meta = self.store.meta()
        self.metric = str(meta.get("metric") or self.metric)
        self.ctx.info(f"{self.identity()}: searches use {SEARCH_PATHS[self.store.search_path()]}")

    def _ready(self) -> Store:
        if self.store.driver is None:
            self.connect()
        return self.store

    def embedder_spec(self) -> dict[str, Any] | None:
        """The embedder that made the vectors, as the sink recorded it (``{"type": ..., settings}``), or None."""
        raw = self._ready().meta().get("embedder_spec")
        try:
            spec = orjson.loads(raw) if isinstance(raw, str) else None
        except orjson.JSONDecodeError:
            return None
        return dict(spec) if isinstance(spec, dict) and isinstance(spec.get("type"), str) else None

    def search(self, vector: np.ndarray | None, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        if vector is None:
            raise InvalidInput("neo4j search needs a query vector (the recipe's embedder makes one)")
        return search(self._ready(), np.asarray(vector, dtype=np.float32).ravel(), k, namespace, self.metric)

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        from ..encoding import from_store

        rows = self._ready().fetch_props(ids, namespace)
        return from_store(nodes_to_batch(rows, self.cfg))

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        store = self._ready()
        rows = store.run_write(
            f"UNWIND $ids AS i MATCH (m:{store.label} {{id: i}}) WHERE true{store.where_ns('m', namespace)} "
            "WITH m, i DETACH DELETE m RETURN count(i) AS n",
            {"ids": list(dict.fromkeys(ids)), "ns": namespace},
            "deleting nodes",
        )
        return int(rows[0]["n"]) if rows else 0

    def namespaces(self) -> list[str]:
        store = self._ready()
        rows = store.read(
            f"MATCH (m:{store.label}) WHERE m.{store.ns} IS NOT NULL RETURN DISTINCT m.{store.ns} AS ns",
            {},
            "listing namespaces",
        )
        return sorted({r["ns"] for r in rows if isinstance(r.get("ns"), str)})

    def count(self, namespace: str | None = None) -> int:
        return self._ready().count(namespace)
