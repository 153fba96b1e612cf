"""Neo4j as a source: the nodes of a label in ``id`` order (``WHERE m.id > $after ORDER BY m.id LIMIT n``, no
SKIP, streamed and cut into batches; the last id yielded is the resumable cursor), with the relationships between
nodes of the label as the batch's edges.

A relationship comes with the batch that holds the later of its two ends (in id order), so both ends have been
yielded by the time a sink writes it (a graph sink can link them), and each relationship comes exactly once.
Reading one namespace, only relationships between nodes of that namespace come. A reversed copy of an edge is
not told apart from an edge of its own: each relationship is one edge, src = its start node.

Nodes are read by their ``id`` property (a string): at the end the number read is checked against the number of
nodes the label holds, and a difference (nodes without a string id, or written while the export ran) fails.

For ``run.executor: ray`` the nodes are cut into ranges of ids (``nodes A-B``, positions in id order) that start
where the serial read's batches start; a range stops at its last id (``until``) and checks that it read as many
nodes as it was planned with; only the last one checks the label's count. Planning lists the ids once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, Edge, RunContext, Source
from .client import Store
from .codec import decode_edge, nodes_to_batch
from .config import Neo4jSourceConfig

__all__ = ["STREAM_PAGE", "Neo4jSource"]

#: Nodes per ordered query, streamed and cut into batches as they arrive. Neo4j walks the id index, so a page
#: bounds how long one read transaction stays open; ArcadeDB sorts the rest of the label for every query, so
#: pages of a batch each cost a sort per batch (10k nodes: 26 s in pages of 500, 10 s in one stream, about
#: the time of an unordered scan).
STREAM_PAGE = 100_000


class Neo4jSource(Source):
    name = "neo4j"
    prefetch = True  # the driver is thread-safe: the next page is read while the sinks write this one

    def __init__(self, config: Neo4jSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config)
        self.read = 0
        self.edges = 0
        self.expected: int | None = None
        #: the database has relationships of some type: each batch's are read with it
        self.any_edges = True

    def open(self) -> None:
        self.store.open()
        if not self.store.has_label():
            self.store.close()
            raise InvalidInput(f"neo4j at {self.store.where} has no nodes labelled {self.cfg.label}")
        # a graph of nodes only (a store of memories without their graph) asks for no relationships batch by batch
        self.any_edges = self.store.has_relationships()

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"neo4j:{self.cfg.label}{ns}"

    def estimate(self) -> int | None:
        self.expected = self.store.count(self.cfg.namespace)
        return self.expected

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        store, ns = self.store, self.cfg.namespace
        after = str(cursor.get("after", "")) if cursor else ""
        total = int(cursor.get("read", 0)) if cursor else 0
        until: str | None = cursor.get("until") if cursor else None
        bound = " AND m.id <= $until" if until is not None else ""
        query = (
            f"MATCH (m:{store.label}) WHERE m.id > $after{bound}{store.where_ns('m', ns)} "
            "WITH m ORDER BY m.id LIMIT $n RETURN m.id AS id, properties(m) AS p"
        )
        # pages of STREAM_PAGE from the start of the label: a read resumed mid-page (or a partition) finishes that
        # page first, so its batches are cut where an uninterrupted read's are
        limit = STREAM_PAGE - total % STREAM_PAGE
        while True:
            got = 0
            params = {"after": after, "n": limit, "ns": ns, "until": until}
            for rows in store.stream(query, params, batch_size, "reading nodes"):
                got += len(rows)
                ids = [str(r["id"]) for r in rows]
                batch = nodes_to_batch([r["p"] for r in rows], self.cfg)
                batch.edges = self._edges(ids) if self.any_edges else []
                after = ids[-1]
                total += len(rows)
                self.read += len(rows)
                self.edges += len(batch.edges)
                yield batch, _cursor(after, total, cursor)
            if got < limit:
                break
            limit = STREAM_PAGE
        if until is not None:
            end = int(cursor.get("end", total))  # type: ignore[union-attr]
            if total != end:
                raise InvalidInput(
                    f"neo4j label '{self.cfg.label}' at {store.where}: the range of nodes up to id {until!r} ends at "
                    f"{total:,} nodes, not {end:,} as when the run was planned",
                    hint="the graph changed while it was read; run the export again with --fresh",
                )
            return
        holds = store.count(ns)
        if holds != total:
            raise InvalidInput(
                f"neo4j label '{self.cfg.label}' at {store.where} holds {holds:,} nodes"
                + (f" in namespace '{ns}'" if ns is not None else "")
                + f" but {total:,} were read",
                hint="nodes need a string id property; if the graph changed while it was read, run the export "
                "again with --fresh",
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of nodes in id order, each a whole number of the serial read's batches (``nodes A-B``)."""
        if n <= 1:
            return [("all", None)]
        store, ns = self.store, self.cfg.namespace
        total = store.count(ns)
        starts = [
            at
            for page in range(0, total, STREAM_PAGE)
            for at in range(page, min(page + STREAM_PAGE, total), batch_size)
        ]
        if len(starts) < 2:
            return [("all", None)]
        cuts = sorted({starts[len(starts) * k // n] for k in range(1, n)} - {0})
        wanted = {at - 1 for at in cuts}
        last_ids: dict[int, str] = {}
        query = f"MATCH (m:{store.label}) WHERE m.id > $after{store.where_ns('m', ns)} RETURN m.id AS id ORDER BY m.id"
        at = 0
        for rows in store.stream(query, {"after": "", "ns": ns}, 10_000, "listing node ids"):
            for row in rows:
                if at in wanted:
                    last_ids[at] = str(row["id"])
                at += 1
        if at != total or len(last_ids) != len(wanted):
            raise InvalidInput(
                f"neo4j label '{self.cfg.label}' at {store.where} counts {total:,} nodes but {at:,} ids were listed",
                hint="nodes need a string id property; if the graph is being written, plan the run again",
            )
        bounds = [0, *cuts, total]
        out: list[tuple[str, Cursor | None]] = []
        for a, b in zip(bounds, bounds[1:], strict=False):
            start: Cursor = {"after": last_ids[a - 1] if a else "", "read": a}
            if b < total:
                start.update(until=last_ids[b - 1], end=b)
            out.append((f"nodes {a}-{b}", start))
        return out

    def _edges(self, ids: list[str]) -> list[Edge]:
        """The relationships whose later end (by id) is one of these nodes, as edges in (src, dst, type) order.
        Both halves start from the batch's nodes, found by id (a pattern that starts from the other end scans
        the label on ArcadeDB)."""
        store, ns = self.store, self.cfg.namespace
        label, where = store.label, store.where_ns("o", ns)
        rows = store.read(
            f"UNWIND $ids AS i MATCH (m:{label} {{id: i}})-[r]->(o:{label}) WHERE o.id <= i{where} "
            "RETURN i AS s, o.id AS d, type(r) AS t, properties(r) AS p "
            "UNION ALL "
            f"UNWIND $ids AS i MATCH (m:{label} {{id: i}})<-[r]-(o:{label}) WHERE o.id < i{where} "
            "RETURN o.id AS s, i AS d, type(r) AS t, properties(r) AS p",
            {"ids": ids, "ns": ns},
            "reading relationships",
        )
        edges = [decode_edge(r["s"], r["d"], r["t"], r["p"] or {}) for r in rows]
        edges.sort(key=lambda e: (e.src, e.dst, e.type))
        return edges

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"read": self.read, "edges": self.edges}
        if self.expected is not None:
            out["expected"] = self.expected
        return out

    def check(self) -> str:
        try:
            self.open()
            agent = f" ({self.store.agent})" if self.store.agent else ""
            return f"{self.identity()} at {self.store.where}{agent}: readable, {self.estimate():,} nodes"
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()


def _cursor(after: str, read: int, start: Cursor | None) -> Cursor:
    """The cursor after a batch; a partition's bound goes along."""
    cur: Cursor = {"after": after, "read": read}
    if start and start.get("until") is not None:
        cur.update(until=start["until"], end=start["end"])
    return cur
