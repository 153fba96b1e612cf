"""Milvus / Zilliz Cloud (or Milvus Lite) as a source: every record in primary-key order, page by page
(``pk > last`` with a limit, which Milvus answers with the smallest keys in key order), resumable from
``{"after": pk}``.

The next page is fetched while the runner works on the current one. A read starts with a Strong count (it
waits until the server has applied every write made before the read started); the pages are then queried
Eventually, which sees the same data without waiting for another time tick. A complete pass is checked
against that count: fewer records read than counted is an error, never a silent loss.

Collections that vexrun did not write are read too: the primary key becomes the id, the float vector field
the vector, ``text_field`` (default ``text``) the text, ``namespace_field`` the namespace, and every other
field (and the dynamic fields) the metadata — objects as JSON text, so metadata stays flat.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import Field

from ...errors import ConnectError, InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Cursor, RunContext, Source, page_ranges
from .codec import decode_row
from .common import (
    MAX_QUERY_ROWS,
    METADATA,
    NAMESPACE,
    TEXT,
    VECTOR,
    VEXRUN,
    MilvusStoreConfig,
    Store,
    dumps,
    literal,
    milvus_error,
    open_store,
)
from .wire import WireReader, wire_reader

__all__ = ["MilvusSource", "MilvusSourceConfig"]

_FLOAT_VECTOR = "FLOAT_VECTOR"
_STRING_TYPES = ("VARCHAR", "STRING")


class MilvusSourceConfig(MilvusStoreConfig):
    """``type: milvus`` (alias ``zilliz``) — read a Milvus collection (a server, Zilliz Cloud, or Milvus Lite),
    whether vexrun wrote it or not."""

    namespace: str | None = Field(default=None, description="Read only the records of this namespace.")
    filter: str | None = Field(
        default=None, description="A Milvus boolean expression: read only the records that match it."
    )
    partitions: list[str] | None = Field(default=None, description="Read only these partitions.")
    vector_field: str | None = Field(
        default=None, description="The vector field of a collection with several (default: its float vector)."
    )
    text_field: str | None = Field(default=None, description="The text field of a foreign collection (default: text).")
    namespace_field: str | None = Field(
        default=None, description="The field holding the namespace in a foreign collection (default: namespace)."
    )


class _Layout:
    """Which field is what in the collection being read."""

    def __init__(self, fields: dict[str, dict[str, Any]], cfg: MilvusSourceConfig, where: str) -> None:
        pk = next((n for n, f in fields.items() if f.get("is_primary")), None)
        if pk is None:
            raise InvalidInput(f"{where}: the collection has no primary key field")
        self.pk: str = pk
        self.pk_is_str = _type_name(fields[self.pk]) in _STRING_TYPES
        self.native = VEXRUN in fields and METADATA in fields
        vectors = [n for n, f in fields.items() if _type_name(f) == _FLOAT_VECTOR]
        if cfg.vector_field is not None:
            if cfg.vector_field not in vectors:
                raise InvalidInput(f"{where}: no float vector field '{cfg.vector_field}' (have: {', '.join(vectors)})")
            self.vector = cfg.vector_field
        elif len(vectors) == 1:
            self.vector = vectors[0]
        elif VECTOR in vectors:
            self.vector = VECTOR
        else:
            kinds = ", ".join(f"{n} ({_type_name(f)})" for n, f in fields.items() if "VECTOR" in _type_name(f))
            raise InvalidInput(
                f"{where}: cannot tell which vector field to read (float vector fields: {', '.join(vectors) or 'none'};"
                f" vector fields: {kinds or 'none'})",
                hint="set vector_field on the source",
            )
        self.dims = int(fields[self.vector].get("params", {}).get("dim", 0)) or None
        self.text = cfg.text_field or (TEXT if TEXT in fields else None)
        self.namespace = cfg.namespace_field or (NAMESPACE if NAMESPACE in fields else None)
        for name in (self.text, self.namespace):
            if name is not None and name not in fields:
                raise InvalidInput(f"{where}: no field '{name}' (fields: {', '.join(fields)})")
        self.output = [*fields] if self.native else ["*", self.vector]


@dataclass
class _Page:
    batch: Batch | None
    last: str | int | None
    limit: int
    full: bool


def _type_name(field: dict[str, Any]) -> str:
    kind = field.get("type")
    return str(getattr(kind, "name", kind)).upper()


class MilvusSource(Source):
    name = "milvus"

    def __init__(self, config: MilvusSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store: Store | None = None
        self.layout: _Layout | None = None
        self.expected: int | None = None
        self.read = 0
        #: the fast path for collections vexrun wrote (None: read through MilvusClient.query)
        self.wire: WireReader | None = None

    def identity(self) -> str:
        db = f"{self.cfg.db_name}/" if self.cfg.db_name else ""
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"milvus:{db}{self.cfg.collection}{ns}"

    def open(self) -> None:
        if self.store is not None:
            return
        store = open_store(self.cfg, self.ctx)
        try:
            self.layout = self._inspect(store)
        except BaseException:
            store.close()
            raise
        self.store = store
        if self.layout.native:
            self.wire = wire_reader(store, self.cfg.db_name, self.cfg.partitions)

    def _inspect(self, store: Store) -> _Layout:
        if not store.exists():
            names = store.call("listing collections", store.client.list_collections) or []
            shown = ", ".join(sorted(names)[:20]) or "none"
            raise InvalidInput(f"{store.where}: no collection '{store.collection}' (collections: {shown})")
        layout = _Layout(store.fields(), self.cfg, store.where)
        if not store.loaded():
            if store.index_metric() is None:
                raise InvalidInput(
                    f"{store.where}: collection '{store.collection}' has no vector index, so Milvus cannot load it "
                    "for reading",
                    hint="build an index on it (or finish the vexrun import that writes it)",
                )
            store.call("loading the collection", store.client.load_collection, store.collection)
        return layout

    def _db(self) -> tuple[Store, _Layout]:
        if self.store is None or self.layout is None:
            raise RuntimeError("MilvusSource used before open()")
        return self.store, self.layout

    def _where(self, after: str | int | None, until: str | int | None = None) -> str:
        _, layout = self._db()
        parts = []
        if after is not None:
            parts.append(f"{layout.pk} > {literal(after)}")
        if until is not None:  # a partition's end (see partitions)
            parts.append(f"{layout.pk} <= {literal(until)}")
        if self.cfg.namespace is not None:
            if layout.namespace is None:
                raise InvalidInput(
                    f"{self.identity()}: the collection has no namespace field",
                    hint="set namespace_field on the source",
                )
            parts.append(f"{layout.namespace} == {literal(self.cfg.namespace)}")
        if self.cfg.filter:
            parts.append(f"({self.cfg.filter})")
        return " and ".join(parts)

    def estimate(self) -> int | None:
        self.open()
        store, _ = self._db()
        self.expected = store.count(self._where(None))
        return self.expected

    def _page(
        self, after: str | int | None, limit: int, until: str | int | None = None, fields: list[str] | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        """One page of rows with keys above ``after``; halves the page when a reply would be too big."""
        store, layout = self._db()
        # A Milvus server answers a query with a limit in key order; Milvus Lite does so for iterator queries.
        order: dict[str, Any] = {"iterator": "True"} if store.local is not None else {}
        if store.local is None:
            order["consistency_level"] = "Eventually"  # after the Strong count of batches()
        while True:
            try:
                rows = store.client.query(
                    store.collection,
                    filter=self._where(after, until),
                    output_fields=fields or layout.output,
                    limit=limit,
                    partition_names=self.cfg.partitions,
                    strict_float32=True,
                    **order,
                )
                return list(rows), limit
            except Exception as exc:  # noqa: BLE001 - see milvus_error
                err = milvus_error(exc, store.where, "reading records")
                if "over the size limit" in str(err) and limit > 1:
                    limit = max(1, limit // 2)
                    continue
                raise err from None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        store, layout = self._db()
        if self.expected is None:
            self.expected = store.count(self._where(None))  # Strong: the pages can be read Eventually
        after = cursor.get("after") if cursor else None
        until = cursor.get("until") if cursor else None
        done = int(cursor.get("read", 0)) if cursor else 0
        limit = max(1, min(batch_size, MAX_QUERY_ROWS))
        with ThreadPoolExecutor(1, thread_name_prefix="milvus-read") as pool:
            pending: Future[_Page] | None = pool.submit(self._fetch, after, limit, until)
            try:
                while pending is not None:
                    page = pending.result()
                    pending = None
                    if page.batch is None:
                        break
                    if page.full:  # there may be more: fetch and convert it while this one is processed
                        pending = pool.submit(self._fetch, page.last, page.limit, until)
                    after = page.last
                    done += len(page.batch)
                    self.read += len(page.batch)
                    at: Cursor = {"after": after, "read": done}
                    yield page.batch, at if until is None else {**at, "until": until}
            finally:
                if pending is not None:
                    pending.cancel()
                    try:
                        pending.result()
                    except Exception:  # noqa: BLE001 - the reader stopped early; its prefetch does not matter
                        pass
        if until is None and self.expected is not None and done < self.expected:
            raise ConnectError(
                f"{store.where}: read {done:,} records of collection '{store.collection}', but it counted "
                f"{self.expected:,} when the read started",
                hint="records were deleted meanwhile, or the server returned pages out of order; run again",
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of primary keys holding about equal numbers of whole pages, named ``rows A-B`` (positions in key
        order when the run started), cut where a serial read's page starts: the keys are listed once, pk only.
        Each start cursor holds the range's bounds as keys; only the last range checks the collection's count."""
        if n <= 1:
            return [("all", None)]
        store, layout = self._db()
        limit = max(1, min(batch_size, MAX_QUERY_ROWS))
        keys: list[Any] = []
        after: Any = None
        while True:
            rows, _ = self._page(after, MAX_QUERY_ROWS, fields=[layout.pk])
            if not rows:
                break
            page = [row[layout.pk] for row in rows]
            after = self._last_key(page, after)
            keys.extend(page)
            if len(rows) < MAX_QUERY_ROWS:
                break
        total = len(keys)
        ranges = page_ranges(total, limit, n)
        if len(ranges) < 2:
            return [("all", None)]
        out: list[tuple[str, Cursor | None]] = []
        for a, b in ranges:
            cursor: Cursor = {"read": a}
            if a:
                cursor["after"] = keys[a - 1]
            if b != total:
                cursor["until"] = keys[b - 1]
            out.append((f"rows {a}-{b}", cursor))
        return out

    def _fetch(self, after: str | int | None, limit: int, until: str | int | None = None) -> _Page:
        """A page as a Batch (the SDK's rows are dropped as soon as they are converted)."""
        if self.wire is not None:
            while True:
                try:
                    ids, batch = self.wire.page(self._where(after, until), limit)
                    break
                except ConnectError as err:
                    if "over the size limit" in str(err) and limit > 1:
                        limit = max(1, limit // 2)
                        continue
                    raise
            if batch is None:
                return _Page(None, after, limit, False)
            return _Page(batch, self._last_key(ids, after), limit, len(ids) >= limit)
        rows, limit = self._page(after, limit, until)
        if not rows:
            return _Page(None, after, limit, False)
        _, layout = self._db()
        last = self._last_key([row[layout.pk] for row in rows], after)
        return _Page(self._to_batch(rows), last, limit, len(rows) >= limit)

    def _last_key(self, keys: list[Any], after: str | int | None) -> str | int:
        """The last key of a page, after checking the page is in ascending key order above ``after``."""
        ordered = all(a < b for a, b in zip(keys, keys[1:], strict=False)) and (after is None or keys[0] > after)
        if not ordered:
            raise ConnectError(
                f"{self.identity()}: the server returned a page out of primary-key order; vexrun cannot read it "
                "without risking lost records"
            )
        last: str | int = keys[-1]
        return last

    def _to_batch(self, rows: list[dict[str, Any]]) -> Batch:
        _, layout = self._db()
        vectors = np.stack([np.asarray(row[layout.vector], dtype=np.float32) for row in rows])
        dims = int(vectors.shape[1])
        records = [self._record(row, layout, dims) for row in rows]
        return Batch(records=records, vectors=vectors, has_vector=np.ones(len(records), dtype=bool))

    def _record(self, row: dict[str, Any], layout: _Layout, dims: int) -> Record:
        if layout.native:
            rec = decode_row(row)
            rec.dims = dims
            return rec
        meta: dict[str, Any] = {}
        skip = {layout.pk, layout.vector, layout.text, layout.namespace}
        for key, value in row.items():
            if key in skip:
                continue
            if isinstance(value, dict):
                meta[key] = dumps(value)
            elif isinstance(value, list) and any(isinstance(v, dict | list) for v in value):
                meta[key] = dumps(value)
            elif isinstance(value, np.ndarray | bytes):
                continue  # other vector fields
            else:
                meta[key] = value
        text = row.get(layout.text) if layout.text else None
        ns = row.get(layout.namespace) if layout.namespace else None
        return Record(
            id=str(row[layout.pk]),
            text=None if text is None else str(text),
            namespace=None if ns is None else str(ns),
            metadata=meta or None,
            dims=dims,
            source_store="milvus",
        )

    def report(self) -> dict[str, Any]:
        return {"read": self.read, "counted": self.expected}

    def check(self) -> str:
        n = self.estimate()
        _, layout = self._db()
        kind = "a vexrun collection" if layout.native else f"vectors in '{layout.vector}'"
        return f"{self.identity()}: readable ({kind}, {layout.dims}-d), {n:,} records"

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None
            self.layout = None
            self.wire = None
