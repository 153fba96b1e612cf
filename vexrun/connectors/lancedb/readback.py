"""Reading a LanceDB table back (``vexrun search``, ``vexrun compare``, a run's reconciliation, the recall
facade): nearest neighbours within a namespace, fetch / delete by id (``id IN (...)`` filters over chunks of
quoted ids, answered by the BTREE index on id that a run builds), counts and the distinct namespaces."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import InvalidInput, UsageError
from ...vmig.batch import Batch
from ..base import Hit
from ..encoding import from_store
from .client import Store, id_filters, namespace_filter
from .codec import Layout, decode, table_meta

if TYPE_CHECKING:
    from ...vmig.model import Record

__all__ = ["Reader"]

#: what LanceDB's ``_distance`` means per metric, turned into "higher is better"
_SCORE = {"cosine": lambda d: 1.0 - d, "dot": lambda d: -d, "l2": lambda d: -d}


class Reader:
    """Read-back operations on the store's open table."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _table(self) -> Any:
        if self.store.tbl is None and self.store.open_table() is None:
            raise UsageError(f"{self.store.label}: no such table", hint="run the recipe that writes it first")
        return self.store.table

    def layout(self) -> Layout:
        return Layout(self._table().schema, self.store.label)

    def metric(self) -> str:
        meta = table_meta(self._table().schema) or {}
        metric = meta.get("metric")
        return metric if metric in _SCORE else "cosine"

    def _rows(self, where: str) -> Any:
        tbl = self._table()
        return self.store.call("reading records", lambda: tbl.search().where(where).to_arrow())

    def fetch(self, ids: Sequence[str], namespace: str | None) -> Batch:
        keys = list(dict.fromkeys(ids))
        if not keys:
            return Batch(records=[])
        layout = self.layout()
        found: dict[str, tuple[Record, np.ndarray | None]] = {}
        for where in id_filters(keys, namespace):
            data = self._rows(where)
            if data.num_rows:
                for rec, vec in from_store(decode(data, layout)):
                    found[rec.id] = (rec, vec)
        hits = [found[rid] for rid in ids if rid in found]
        return Batch.from_records([rec for rec, _ in hits], [vec for _, vec in hits])

    def scan(self, batch_size: int) -> Iterator[Batch]:
        """Every row in the table's scan order (the order appended, for a table a run filled), decoded, in
        batches of exactly ``batch_size`` but the last."""
        import pyarrow as pa  # type: ignore[import-untyped]

        tbl = self._table()
        layout = self.layout()
        stream = iter(self.store.call("reading the table", tbl.search().to_batches, batch_size))
        pending: list[Any] = []
        held = 0
        while True:
            part = self.store.call("reading the table", next, stream, None)
            if part is not None and part.num_rows:
                pending.append(part)
                held += part.num_rows
            while held >= batch_size or (part is None and held):
                data = pa.Table.from_batches(pending)
                out, rest = data.slice(0, batch_size), data.slice(batch_size)
                pending, held = rest.to_batches(), rest.num_rows
                yield from_store(decode(out, layout))
            if part is None:
                return

    def delete(self, ids: Sequence[str], namespace: str | None) -> int:
        keys = list(dict.fromkeys(ids))
        tbl = self._table()
        deleted = 0
        for where in id_filters(keys, namespace):
            n = int(self.store.call("counting records", tbl.count_rows, where))
            if n:
                self.store.call("deleting records", tbl.delete, where)
                deleted += n
        return deleted

    def count(self, namespace: str | None) -> int:
        tbl = self._table()
        return int(self.store.call("counting records", tbl.count_rows, namespace_filter(namespace)))

    def namespaces(self) -> list[str]:
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        tbl = self._table()
        if "namespace" not in tbl.schema.names:
            return []
        found: set[str] = set()

        def scan() -> None:
            for part in tbl.search().select(["namespace"]).to_batches(65536):
                found.update(v for v in pc.unique(part.column(0)).to_pylist() if v is not None)

        self.store.call("listing namespaces", scan)
        return sorted(found)

    def search(self, vector: Any, k: int, namespace: str | None) -> list[Hit]:
        if vector is None:
            raise InvalidInput("lancedb search needs a query vector (the recipe's embedder makes one)")
        layout = self.layout()
        if layout.vector is None:
            raise InvalidInput(f"{self.store.label}: the table has no vector column")
        query = np.asarray(vector, dtype=np.float32).ravel()
        if layout.dims is not None and len(query) != layout.dims:
            raise InvalidInput(f"{self.store.label}: the query has {len(query)} dims, the table {layout.dims}")
        metric = self.metric()
        tbl = self._table()

        def run() -> Any:
            q = tbl.search(query, vector_column_name=layout.vector).distance_type(metric).limit(k)
            where = namespace_filter(namespace)
            if where is not None:
                q = q.where(where, prefilter=True)
            return q.to_arrow()

        data = self.store.call("searching", run)
        if not data.num_rows:
            return []
        distances = data.column("_distance").to_pylist()
        batch = from_store(decode(data, layout))
        qn = float(np.linalg.norm(query)) or 1.0
        hits = []
        for rank, ((rec, vec), dist) in enumerate(zip(batch, distances, strict=True), start=1):
            cosine = None if vec is None else float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
            hits.append(
                Hit(
                    rank=rank,
                    id=rec.id,
                    score=float(_SCORE[metric](float(dist))),
                    text=rec.text,
                    namespace=rec.namespace,
                    metadata=rec.metadata,
                    created_at=rec.created_at,
                    cosine=cosine,
                    vector_rank=rank,
                )
            )
        return hits
