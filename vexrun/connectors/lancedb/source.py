"""LanceDB as a source: one streamed scan of a pinned table version, cut into batches, resumable.

Every Lance commit makes a new table version, and an old version stays readable, unchanged, until it is
cleaned up. So an export reads the version that was current when it started, and its cursor is
``{"version": V, "offset": n, "last": rowid}``: the rows already read, in the scan order of that version
(fragments in order, rows in order within each). A resumed export opens the same version and scans from row
``n - 1``, checking that the row there is still the last one read (its ``_rowid``), so it continues exactly
where it stopped whatever was written to the table in between; a scan order that did not repeat fails loudly.
A complete read is checked against the version's own row count. If version V was cleaned up in between
(``optimize`` / ``cleanup_old_versions``), the export says so and asks for ``--fresh``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ..base import Cursor, RunContext, Source, page_ranges
from .client import Store, namespace_filter
from .codec import Layout, decode
from .config import LanceDBSourceConfig

__all__ = ["LanceDBSource"]

#: the most rows one Arrow batch of the scan holds (the run's batch size when smaller)
SCAN_BATCH = 4096


class LanceDBSource(Source):
    name = "lancedb"
    #: the scan runs in LanceDB's threads: the next batch is read while the sinks write this one
    prefetch = True

    def __init__(self, config: LanceDBSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.read = 0
        self.expected: int | None = None
        self.version: int | None = None
        self.layout: Layout | None = None

    def identity(self) -> str:
        ns = f"#{self.cfg.namespace}" if self.cfg.namespace is not None else ""
        return f"lancedb:{self.cfg.table}{ns}"

    def open(self) -> None:
        store = self.store
        store.open(create=False)
        tbl = store.open_table()
        if tbl is None:
            store.close()
            raise InvalidInput(f"{store.label} does not exist")
        self.version = int(store.call("reading the table version", lambda: tbl.version))
        self._layout(tbl)

    def _layout(self, tbl: Any) -> Layout:
        cfg = self.cfg
        self.layout = Layout(
            tbl.schema,
            self.store.label,
            id_column=cfg.id_column,
            vector_column=cfg.vector_column,
            text_column=cfg.text_column,
            namespace_column=cfg.namespace_column,
        )
        if cfg.namespace is not None and self.layout.namespace is None:
            raise InvalidInput(f"{self.store.label}: no namespace column '{cfg.namespace_column}' to filter on")
        return self.layout

    @property
    def _filter(self) -> str | None:
        return namespace_filter(self.cfg.namespace, self.cfg.namespace_column)

    def estimate(self) -> int | None:
        tbl = self.store.table
        self.expected = int(self.store.call("counting rows", tbl.count_rows, self._filter))
        return self.expected

    def _pin(self, version: int) -> Any:
        """The table at ``version`` (the one the export started on)."""
        store = self.store
        if store.tbl is not None and int(store.tbl.version) == version:
            return store.tbl
        try:
            tbl = store.api.open_table(store.name, version=version)
        except Exception:  # noqa: BLE001 - a version that is gone, or the table itself
            if store.open_table() is None:
                raise InvalidInput(f"{store.label} does not exist any more") from None
            raise InvalidInput(
                f"{store.label}: version {version}, which this export started reading, no longer exists "
                "(cleaned up since)",
                hint="run the export again with --fresh",
            ) from None
        store.tbl = tbl
        return tbl

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        import pyarrow as pa  # type: ignore[import-untyped]

        store = self.store
        version = int(cursor["version"]) if cursor and cursor.get("version") is not None else self.version
        assert version is not None, "LanceDBSource.batches before open()"
        offset = int(cursor.get("offset", 0)) if cursor else 0
        last: int | None = cursor.get("last") if cursor else None
        until: int | None = cursor.get("until") if cursor else None  # a partition's end (see partitions)
        tbl = self._pin(version)
        layout = self._layout(tbl)
        overlap = 1 if offset > 0 and last is not None else 0
        query = tbl.search().with_row_id(True)
        if self._filter is not None:
            query = query.where(self._filter)
        if offset - overlap > 0:
            query = query.offset(offset - overlap)
        reader = store.call("reading the table", query.to_batches, min(batch_size, SCAN_BATCH))
        pending: list[pa.RecordBatch] = []
        held = 0
        stream = iter(reader)
        while True:
            part = store.call("reading the table", next, stream, None)
            if part is not None and overlap:
                if not part.num_rows:
                    continue
                if part.column("_rowid")[0].as_py() != last:
                    raise InvalidInput(
                        f"{store.label}: the rows of version {version} did not come back in the order of the first "
                        f"read (row {offset:,} is not the last one read)",
                        hint="run the export again with --fresh",
                    )
                part, overlap = part.slice(1), 0
            if part is not None and part.num_rows:
                pending.append(part)
                held += part.num_rows
            while True:
                want = batch_size if until is None else min(batch_size, until - offset)
                if want <= 0 or not (held >= want or (part is None and held)):
                    break
                data = pa.Table.from_batches(pending)
                out, rest = data.slice(0, want), data.slice(want)
                pending, held = rest.to_batches(), rest.num_rows
                n = out.num_rows
                offset += n
                self.read += n
                cursor_after = {
                    "version": version,
                    "offset": offset,
                    "last": out.column("_rowid")[n - 1].as_py(),
                    **({"until": until} if until is not None else {}),
                }
                yield decode(out, layout), cursor_after
            if part is None or (until is not None and offset >= until):
                break
        if until is None:
            self._verify(tbl, offset, version)
        elif offset < until:
            raise InvalidInput(
                f"{store.label}: version {version} ends at row {offset:,}, before the partition's end at {until:,}",
                hint="run the export again with --fresh",
            )

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of rows in the scan order of the version the run reads, named ``rows A-B``, cut where a serial
        read's batch starts (so the batches are the same); the last range is checked against the version's row
        count as a serial read is."""
        if n <= 1:
            return [("all", None)]
        total = int(self.store.call("counting rows", self.store.table.count_rows, self._filter))
        ranges = page_ranges(total, batch_size, n)
        if len(ranges) < 2:
            return [("all", None)]
        return [
            (f"rows {a}-{b}", {"version": self.version, "offset": a, **({"until": b} if b != total else {})})
            for a, b in ranges
        ]

    def _verify(self, tbl: Any, total: int, version: int) -> None:
        holds = int(self.store.call("counting rows", tbl.count_rows, self._filter))
        if holds != total:
            ns = f" in namespace '{self.cfg.namespace}'" if self.cfg.namespace is not None else ""
            raise InvalidInput(
                f"{self.store.label}: version {version} holds {holds:,} rows{ns} but {total:,} were read",
                hint="run the export again with --fresh",
            )

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {"read": self.read}
        if self.expected is not None:
            out["expected"] = self.expected
        return out

    def check(self) -> str:
        try:
            self.open()
            return (
                f"{self.identity()} at {self.store.where}: readable, {self.estimate():,} rows (version {self.version})"
            )
        finally:
            self.store.close()

    def close(self) -> None:
        self.store.close()
