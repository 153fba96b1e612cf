"""LanceDB as a sink: one Arrow table per batch, one commit (table version) per batch, committed on return.

A table this run created (or found empty) is loaded by appends (``add``) of whole batches, the fast path;
an id this run already wrote (the same id in two batches: the last write wins) sends that batch through
``merge_insert("id")`` instead. Into a table that held records before the run (a re-run), each row's id hash
and digest are read first (:class:`_Held`): a record the table holds exactly as the run writes it is not
written, a batch whose other ids the table does not hold is appended, and the rest goes through ``merge_insert``.
Which ids the run wrote is kept as 64-bit hashes in an :class:`~vexrun.ids.IdSet`, logged to
``lancedb-ids-<hash>.bin`` in the recipe's state directory (cut back to the committed length on resume).

Resume: the checkpoint holds the table version after the last committed batch. An append-loaded table that
is ahead of it when a run resumes (a batch committed after the checkpoint, before the kill) is restored to
that version first, so re-sending the batch adds nothing twice; upserted tables need no such step. While the
sink is open it holds ``<table>.lance.lock`` next to the table (local databases), so no other run writes it.

At the end (:meth:`finalize`) the table is compacted (``optimize``: each batch was one fragment and one
version), a BTREE index on id is built (fetch by id uses it) and, when asked and the table is big enough, a
vector index. A table the sink creates is in Lance's ``legacy`` file format unless ``storage_version`` says
otherwise: with the v2 formats Lance buffers whole pages when it compacts or reads, and vexrun's peak memory
grew by 250-400 MB from 100k to 1M records of 384-d; with ``legacy`` it stays flat (and appends were faster).
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import blake3
import numpy as np

from ...appendfile import OutputLock
from ...errors import InvalidInput, UsageError
from ...ids import IdSet, id_hashes
from ...mallocarena import release_free_memory
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from .client import Store, sdk
from .codec import Layout, encode, row_digests, vexrun_schema
from .config import LanceDBSinkConfig
from .readback import Reader

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = ["LanceDBSink"]

_METRICS = ("cosine", "l2", "dot")
_HINT = "set replace: true on the target to re-create it, or choose another table"


class LanceDBSink(Sink):
    name = "lancedb"
    #: writes run in LanceDB's own threads (the GIL is released): reading the next batch overlaps with them
    io_bound = True

    def __init__(self, config: LanceDBSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.store = Store(config, ctx)
        self.reader = Reader(self.store)
        self.lock: OutputLock | None = None
        self.fresh = True
        self.resumed: dict[str, Any] | None = None
        self.records = 0
        self.version: int | None = None
        #: load by appends (the table was created by this run, or empty when it started)
        self.append = False
        self.dims: int | None = None
        self.metric = "cosine"
        self.schema: pa.Schema | None = None
        self.index = IdSet()
        self.ids_log: Any = None
        #: what a table that held records before the run holds (each row's id hash and digest), or None
        self.held: _Held | None = None
        self.unchanged = 0

    def identity(self) -> str:
        return f"lancedb:{self.cfg.table} at {self.store.where}"

    # -- lifecycle ---------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        store = self.store
        store.open(create=True)
        if store.local:
            self.lock = OutputLock(store.dir / f"{self.cfg.table}.lance").acquire()
        self._open_ids(state)
        self.fresh = state is None
        self.resumed = dict(state) if state else None
        self.records = int((state or {}).get("records", 0))
        tbl = store.open_table()
        committed = (state or {}).get("version")
        if tbl is not None and (state or {}).get("append") and committed is not None:
            self._restore(tbl, int(committed))
            if not len(self.index) and self.records:
                self._ids_from(tbl)
        self.version = None if tbl is None else int(tbl.version)

    def _ids_from(self, tbl: Any) -> None:
        """The id log of an append-loaded table was lost (a checkpoint from before it, a power loss): its ids
        are the table's, which now holds exactly what the run committed. Without them, an id written again
        would be appended a second time instead of replacing the first."""

        def scan() -> None:
            for part in tbl.search().select(["id"]).to_batches(65536):
                ids = part.column(0).to_pylist()
                hashes = id_hashes(rid.encode("utf-8", "surrogatepass") for rid in ids)
                self.index.add(hashes)
                self.ids_log.write(hashes.astype("<u8").tobytes())
            self.ids_log.flush()

        self.store.call("reading the ids the run wrote", scan)

    def _restore(self, tbl: Any, committed: int) -> None:
        """Undo what an append-loaded table got after the last committed batch. A committed version that is
        gone was dropped by this run's own :meth:`finalize` (which runs after every batch was committed and only
        compacts and indexes): then there is nothing to undo."""
        store = self.store
        if int(store.call("reading the table version", lambda: tbl.version)) == committed:
            return
        versions = {int(v["version"]) for v in store.call("listing table versions", tbl.list_versions)}
        if committed not in versions:
            return
        self.ctx.info(f"{self.identity()}: restoring version {committed} (the last committed batch)")
        store.call(f"restoring version {committed}", tbl.restore, committed)

    @property
    def ids_path(self) -> Path:
        key = f"{self.store.where}\x1f{self.cfg.table}"
        return Path(self.ctx.state_dir) / f"lancedb-ids-{blake3.blake3(key.encode()).hexdigest(8)}.bin"

    def _open_ids(self, state: dict[str, Any] | None) -> None:
        """The index of the ids this run wrote: empty on a fresh run, read back from the log on resume."""
        path = self.ids_path
        committed = (state or {}).get("ids_bytes")
        self.index = IdSet()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if committed is None or not path.exists() or path.stat().st_size < int(committed):
                self.ids_log = open(path, "wb")  # noqa: SIM115 - closed in close()
                return
            self.ids_log = open(path, "r+b")  # noqa: SIM115 - closed in close()
            self.ids_log.truncate(int(committed))
            self.ids_log.seek(int(committed))
            keys = np.fromfile(path, dtype="<u8", count=int(committed) // 8)
        except OSError as exc:
            raise UsageError(f"{path}: cannot write the run's id log ({exc.strerror or exc})") from None
        step = 1 << 20
        for at in range(0, len(keys), step):
            part = keys[at : at + step]
            self.index.add(part)

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        store, cfg = self.store, self.cfg
        metric = cfg.metric or metric
        if metric not in _METRICS:
            raise InvalidInput(f"lancedb has no metric {metric!r} (it has {', '.join(_METRICS)})")
        tbl = store.tbl
        if tbl is not None and cfg.replace and self.fresh:
            store.call("dropping the table", store.api.drop_table, store.name)
            tbl = store.tbl = None
        self.fresh = False  # a second prepare() of the same run must not drop the table again
        if tbl is None:
            if dims is None:
                raise InvalidInput(f"{store.label} needs vectors: this run has none (add an embed step)")
            from ..._version import __version__

            meta: dict[str, Any] = {
                "metric": metric,
                "model": model,
                "dims": dims,
                "created_by": f"vexrun {__version__}",
            }
            spec = getattr(self.ctx, "embedder_spec", None)
            if spec:
                meta["embedder_spec"] = dict(spec)
            schema = vexrun_schema(dims, meta)
            options = {"new_table_data_storage_version": cfg.storage_version}
            tbl = store.call(
                "creating the table", store.api.create_table, store.name, schema=schema, storage_options=options
            )
            store.tbl = tbl
            self.append = True
        else:
            self._check_existing(tbl.schema, dims, model, metric)
            if self.resumed is not None and "append" in self.resumed:
                self.append = bool(self.resumed["append"])
            else:
                self.append = int(store.call("counting rows", tbl.count_rows)) == 0
            if not self.append and self.held is None:
                self.held = self._read_held(tbl)
        self.schema = tbl.schema
        layout = Layout(tbl.schema, store.label)
        self.dims = layout.dims
        self.metric = (layout.meta or {}).get("metric") or metric
        self.version = int(tbl.version)

    def _check_existing(self, schema: pa.Schema, dims: int | None, model: str | None, metric: str) -> None:
        label = self.store.label
        layout = Layout(schema, label)
        if not layout.native:
            raise InvalidInput(f"{label}: the table exists and was not written by vexrun", hint=_HINT)
        meta = layout.meta or {}
        if dims is not None and layout.dims != dims:
            raise InvalidInput(f"{label} holds {layout.dims}-d vectors, this run writes {dims}-d vectors", hint=_HINT)
        have = meta.get("metric")
        if have and have != metric:
            raise InvalidInput(f"{label} was made for the {have} metric, this run asks for {metric}", hint=_HINT)
        if model and meta.get("model") and meta["model"] != model:
            raise InvalidInput(
                f"{label} holds vectors of model '{meta['model']}', this run writes '{model}'", hint=_HINT
            )

    def _read_held(self, tbl: Any) -> _Held:
        """Each row's id hash and digest, of a table that holds records before the run writes: a record the run
        writes exactly as the table holds it is not written again, and a batch of ids the table does not hold is
        appended. Re-running a 1M-record import into its table sent every batch through ``merge_insert``, a hash
        join over the whole table: 407 s, against 25 s for the first run."""
        keys: list[np.ndarray] = []
        digests: list[np.ndarray] = []

        def scan() -> None:
            import pyarrow as pa

            names = list(tbl.schema.names)  # the columns an encoded batch has, in its order
            for part in tbl.search().to_batches(8192):
                if part.num_rows:
                    data = pa.Table.from_batches([part]).select(names)
                    ids = data.column("id").to_pylist()
                    keys.append(id_hashes(rid.encode("utf-8", "surrogatepass") for rid in ids))
                    digests.append(row_digests(data))

        self.store.call("reading what the table holds", scan)
        return _Held(keys, digests)

    # -- writing -----------------------------------------------------------------------------------
    def write(self, batch: Batch) -> WriteResult:
        store = self.store
        if self.schema is None or self.dims is None:
            raise RuntimeError("LanceDBSink.write before prepare()")
        enc = encode(batch, self.schema, self.dims, self.cfg.namespace)
        if enc.table is None:
            return WriteResult(0, enc.rejected, enc.duplicates)
        hashes = id_hashes(rid.encode("utf-8", "surrogatepass") for rid in enc.ids)
        table, new = enc.table, False
        if self.held is not None:
            earlier = self.index.contains(hashes)  # the run wrote these ids before: the table no longer holds
            present, same = self.held.lookup(hashes, row_digests(table))  # what it held when the run began
            same &= ~earlier
            if same.any():
                self.unchanged += int(same.sum())
                table = table.filter(~same)
            new = not (present | earlier)[~same].any()
        again = self.index.add(hashes)
        tbl = store.table
        if not table.num_rows:
            pass  # every record is in the table as written
        elif (self.append and not again) or new:
            result = store.call("adding records", tbl.add, table)
            self.version = int(result.version)
        else:
            # a hash join over the id column: the BTREE index's lookups slow down with every batch (the rows
            # each merge rewrote are unindexed until the next optimize): 100k upserts into a 100k-row table
            # went from 8.9k to 0.6k records/s with it, ~7k/s steady without
            merge = tbl.merge_insert("id").when_matched_update_all().when_not_matched_insert_all().use_index(False)
            result = store.call("upserting records", merge.execute, table)
            self.version = int(result.version)
        try:
            self.ids_log.write(hashes.astype("<u8").tobytes())
            self.ids_log.flush()
        except OSError as exc:
            raise UsageError(f"{self.ids_path}: cannot write the run's id log ({exc.strerror or exc})") from None
        written = len(enc.rows) + enc.duplicates
        self.records += written
        return WriteResult(written=written, rejected=enc.rejected, duplicates=again + enc.duplicates)

    def state(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "version": self.version,
            "append": self.append,
            "ids_bytes": None if self.ids_log is None else self.ids_log.tell(),
        }

    def finalize(self) -> None:
        store = self.store
        tbl = store.tbl if store.tbl is not None else store.open_table()
        if tbl is None:
            return
        rows = int(store.call("counting rows", tbl.count_rows))
        if self.unchanged:
            self.ctx.info(
                f"{self.identity()}: {self.unchanged:,} records were in the table as this run writes them "
                "(not written again)"
            )
        self.held = None
        self.index = IdSet()  # no write follows: its memory (8 bytes a record) is better spent on compaction
        if self.cfg.optimize:
            # a table this run loaded holds only the run's own steps as older versions: drop them (their
            # fragments would keep a second copy of the data on disk for the default seven days)
            older = timedelta(0) if self.append else None
            with warnings.catch_warnings():  # that this drops every older version is the point (see above)
                warnings.filterwarnings("ignore", message=r"optimize\(cleanup_older_than=0\)", category=UserWarning)
                store.call("compacting the table", tbl.optimize, cleanup_older_than=older)
            release_free_memory()  # what compaction freed, before the index build peaks in turn
        if rows:
            self._indexes(tbl, rows)
            release_free_memory()
        self.version = int(tbl.version)

    def _indexes(self, tbl: Any, rows: int) -> None:
        sdk()
        from lancedb.index import BTree, IvfFlat, IvfHnswSq, IvfPq

        store = self.store
        indexed = {col for ix in store.call("listing indexes", tbl.list_indices) for col in ix.columns}
        if "id" not in indexed:
            store.call("indexing the id column", tbl.create_index, "id", config=BTree())
        if self.cfg.index == "none" or "vector" in indexed:
            return
        if rows < self.cfg.index_min_rows:
            self.ctx.info(
                f"{self.identity()}: no {self.cfg.index} index ({rows:,} rows, fewer than index_min_rows "
                f"{self.cfg.index_min_rows:,}): searches scan the table"
            )
            return
        kinds = {"ivf_pq": IvfPq, "ivf_hnsw_sq": IvfHnswSq, "ivf_flat": IvfFlat}
        metric = self.metric if self.metric in _METRICS else "cosine"
        self.ctx.info(f"Building the {self.cfg.index} index of {self.identity()} ({rows:,} vectors) ...")
        config = kinds[self.cfg.index](distance_type=metric)
        store.call(f"building the {self.cfg.index} index", tbl.create_index, "vector", config=config)

    def check(self) -> str:
        store = self.store
        if store.local and not store.dir.exists():
            return f"{self.identity()}: the database does not exist yet (a run creates it)"
        store.open(create=False)
        try:
            tbl = store.open_table()
            if tbl is None:
                return f"{self.identity()}: reachable; the table does not exist yet (a run creates it)"
            layout = Layout(tbl.schema, store.label)
            n = int(store.call("counting rows", tbl.count_rows))
            metric = (layout.meta or {}).get("metric", "?") if layout.native else "not written by vexrun"
            return f"{self.identity()}: reachable, {n:,} rows, {layout.dims}-d {metric}"
        finally:
            store.close()

    def close(self) -> None:
        if self.ids_log is not None:
            with contextlib.suppress(OSError):
                self.ids_log.close()
            self.ids_log = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None
        self.store.close()

    # -- reading back (see .readback) ----------------------------------------------------------------
    def connect(self) -> None:
        store = self.store
        store.open(create=False)
        if store.open_table() is None:
            raise InvalidInput(f"{store.label} does not exist", hint="run the recipe that writes it first")

    def _reading(self) -> Reader:
        if self.store.db is None:
            self.connect()
        return self.reader

    def search(self, vector: np.ndarray | None, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        return self._reading().search(vector, k, namespace)

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        return self._reading().fetch(ids, namespace)

    def scan(self, batch_size: int) -> Iterator[Batch]:
        return self._reading().scan(batch_size)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        deleted = self._reading().delete(ids, namespace)
        if self.store.tbl is not None and self.version is not None:
            self.version = int(self.store.tbl.version)
        return deleted

    def namespaces(self) -> list[str]:
        return self._reading().namespaces()

    def count(self, namespace: str | None = None) -> int:
        return self._reading().count(namespace)


class _Held:
    """A table's rows when a run began: id hashes (sorted) and each row's :func:`~.codec.row_digests` digest,
    16 bytes a row."""

    def __init__(self, keys: list[np.ndarray], digests: list[np.ndarray]) -> None:
        all_keys = np.concatenate(keys) if keys else np.zeros(0, dtype=np.uint64)
        all_digests = np.concatenate(digests) if digests else np.zeros(0, dtype=np.uint64)
        order = np.argsort(all_keys, kind="stable")
        self.keys = all_keys[order]
        self.digests = all_digests[order]

    def lookup(self, hashes: np.ndarray, digests: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per row: whether the table held its id, and whether it held it with this digest."""
        if not len(self.keys):
            none = np.zeros(len(hashes), dtype=bool)
            return none, none.copy()
        pos = np.minimum(np.searchsorted(self.keys, hashes), len(self.keys) - 1)
        present = self.keys[pos] == hashes
        return present, present & (self.digests[pos] == digests)
