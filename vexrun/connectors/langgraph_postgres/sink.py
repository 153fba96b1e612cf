"""LangGraph's ``PostgresStore`` as a sink: items and vectors that stock ``PostgresStore.search`` recalls.

``prepare`` refuses a store whose vectors have other dims (or, when vexrun made it, another model or metric),
then runs LangGraph's own ``setup()`` without the ANN index; each batch is one transaction: a binary COPY into a
temporary table, then ``INSERT … ON CONFLICT DO UPDATE`` into ``store`` and ``store_vectors`` (an unchanged
item is not touched). ``finalize`` runs ``setup()`` again with the index, which builds it after the load.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from ...errors import ConnectError, InvalidInput, UsageError
from ...vmig.batch import Batch
from ..base import Hit, RunContext, Sink, WriteResult
from ..encoding import from_store, store_id
from ..pgvector.codec import COPY_HEADER, COPY_TRAILER, Refused
from ..pgvector.conn import Endpoint, map_error
from .codec import Decoder, Encoder
from .config import LanggraphPostgresSinkConfig
from .layout import Namespaces, StoreInfo, inspect
from .migrations import index_config, run_setup
from .plugin import CAPABILITIES
from .queries import (
    OPS,
    Reader,
    copy_sql,
    drop_stale_vectors_sql,
    stage_sql,
    upsert_store_sql,
    upsert_vectors_sql,
)

if TYPE_CHECKING:
    import numpy as np
    import psycopg

__all__ = ["LanggraphPostgresSink"]

#: pgvector's indexes (HNSW, IVFFlat) hold vectors of at most this many dims, by column type.
ANN_MAX_DIMS = {"vector": 2000, "halfvec": 4000}


class LanggraphPostgresSink(Sink):
    name = "langgraph-postgres"
    io_bound = True

    def __init__(self, config: LanggraphPostgresSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.endpoint = Endpoint(config.dsn.get_secret_value(), ctx, config.data_dir)
        self.spaces = Namespaces(config.namespace_prefix, config.namespace)
        self.conn: psycopg.Connection[Any] | None = None
        self.reader: psycopg.Connection[Any] | None = None
        self.info = StoreInfo()
        self.metric: str = config.metric or "cosine"
        self.model: str | None = None
        self.records = 0
        self.staged = False
        self.encoder = Encoder(self.spaces, config.text_field)

    # -- naming -------------------------------------------------------------------------------------
    def identity(self) -> str:
        return f"langgraph-postgres:{self.spaces.base or '(all namespaces)'}"

    @property
    def where(self) -> str:
        return f"{self.endpoint.where}, LangGraph store"

    def _scope(self) -> str:
        return f"namespace {tuple(self.cfg.namespace_prefix)}" if self.cfg.namespace_prefix else "every namespace"

    def _db(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise RuntimeError("LanggraphPostgresSink used before open()")
        return self.conn

    def _fail(self, exc: Exception) -> ConnectError:
        return map_error(exc, self.where)

    # -- the run ------------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        import psycopg

        self.conn = self.endpoint.connect(autocommit=True)
        self.records = int((state or {}).get("records", 0))
        try:
            self.info = inspect(self.conn)
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        import psycopg

        conn = self._db()
        self.metric = self.cfg.metric or metric
        if self.metric not in OPS:
            raise InvalidInput(f"{self.where}: LangGraph has no distance for the metric {self.metric!r}")
        self.model = model
        try:
            self.info = inspect(conn)
            if self.info.foreign:
                raise InvalidInput(
                    f"{self.where}: a table named 'store' exists and is not LangGraph's (no prefix, key, value)",
                    hint="use another database, or a schema of its own through the dsn's search_path",
                )
            self._check_existing(dims, model)
            self._ensure_extension(conn)
            self._setup(dims if dims is not None else self.info.dims, model)
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def _check_existing(self, dims: int | None, model: str | None) -> None:
        """Refuse a store whose vectors do not match this run's (one dims per store: LangGraph's column)."""
        info = self.info
        if not info.vectors:
            return
        hint = "LangGraph keeps one vector size per store: embed with its model, or use another database or schema"
        if dims and info.dims and dims != info.dims:
            raise InvalidInput(
                f"{self.where}: store_vectors holds vector({info.dims}) embeddings, this run writes {dims}-d vectors",
                hint=hint,
            )
        meta = info.meta
        if model and meta.get("model") and meta["model"] != model:
            raise InvalidInput(
                f"{self.where}: the store holds vectors of model '{meta['model']}', this run writes '{model}'",
                hint=hint,
            )
        if meta.get("text_field") and meta["text_field"] != self.cfg.text_field:
            raise InvalidInput(
                f"{self.where}: the store keeps the text in the field '{meta['text_field']}', this run asks for "
                f"'{self.cfg.text_field}'",
                hint=f"set text_field: {meta['text_field']} on the target",
            )
        if meta.get("metric") and meta["metric"] != self.metric:
            raise InvalidInput(
                f"{self.where}: the store was written for the {meta['metric']} metric, this run asks for {self.metric}",
                hint="search it with that metric (set metric: on the target), or write to another store",
            )

    def _ensure_extension(self, conn: psycopg.Connection[Any]) -> None:
        import psycopg

        if conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone():
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        except psycopg.errors.InsufficientPrivilege:
            raise ConnectError(
                f"{self.endpoint.where}: the pgvector extension is not enabled in this database, and this user "
                "may not enable it",
                hint="ask an administrator to run: CREATE EXTENSION vector",
            ) from None
        except psycopg.errors.UndefinedFile:
            raise ConnectError(
                f"{self.endpoint.where}: the server has no pgvector extension",
                hint="install pgvector on the server (https://github.com/pgvector/pgvector#installation)",
            ) from None

    def _index(self, dims: int, kind: str, lists: int | None = None) -> dict[str, Any]:
        cfg = self.cfg
        return index_config(
            dims,
            cfg.text_field,
            self.metric,
            kind,
            cfg.vector_type,
            m=cfg.hnsw_m,
            ef_construction=cfg.hnsw_ef_construction,
            lists=lists,
        )

    def _setup(self, dims: int | None, model: str | None) -> None:
        """LangGraph's setup() without the ANN index (built in :meth:`finalize`); the vector table only once
        there are dims to make it with."""
        conn = self._db()
        limit = ANN_MAX_DIMS[self.cfg.vector_type]
        if dims is not None and not self.info.vectors and self.cfg.index != "flat" and dims > limit:
            raise InvalidInput(
                f"{self.where}: pgvector's {self.cfg.index} index of {self.cfg.vector_type} holds at most "
                f"{limit:,} dims, these vectors have {dims:,}",
                hint="set index: flat on the target (exact scans), or embed with a smaller model",
            )
        made = dims is not None and not self.info.vectors
        run_setup(conn, None if dims is None else self._index(dims, "flat"))
        if made:  # a store made by an app keeps no record of its model: only vexrun's own is described
            self._write_meta(conn, model)
        self.info = inspect(conn)
        self.encoder.dims = self.info.dims

    def _write_meta(self, conn: psycopg.Connection[Any], model: str | None) -> None:
        """What a later run (and ``vexrun search``) needs to know about the vectors, as the comment of
        ``store_vectors`` (LangGraph keeps none of it)."""
        from psycopg import sql

        from ..._version import __version__

        meta: dict[str, Any] = {"metric": self.metric, "text_field": self.cfg.text_field}
        if model:
            meta["model"] = model
        meta["created_by"] = f"vexrun {__version__}"
        spec = getattr(self.ctx, "embedder_spec", None)
        if spec:
            meta["embedder_spec"] = dict(spec)
        text = orjson.dumps({"vexrun": meta}, default=str).decode()
        conn.execute(sql.SQL("COMMENT ON TABLE store_vectors IS {}").format(sql.Literal(text)))

    def write(self, batch: Batch) -> WriteResult:
        import psycopg

        conn = self._db()
        if batch.vectors is not None and not self.info.vectors and batch.dims is not None:
            model = next((r.model for r in batch.records if r.model), None)
            self.prepare(batch.dims, self.model or model, self.metric)  # the first vectors of a run
        rejected: dict[str, str] = {}
        rows = bare = 0
        try:
            with conn.transaction():
                if not self.staged:
                    conn.execute(stage_sql())
                with conn.cursor() as cur, cur.copy(copy_sql()) as copy:
                    copy.write(COPY_HEADER)
                    for n, without, data in self.encoder.rows(batch, rejected):
                        rows += n
                        bare += without
                        copy.write(data)
                    copy.write(COPY_TRAILER)
                if rows:
                    conn.execute(upsert_store_sql(self.cfg.ttl_minutes))
                    field = {"field": self.cfg.text_field}
                    if self.info.vectors and rows > bare:
                        conn.execute(upsert_vectors_sql(), field)
                    if self.info.vectors and bare:
                        conn.execute(drop_stale_vectors_sql(), field)
            self.staged = True
        except psycopg.Error as exc:
            self.staged = False  # the temporary table went with the rolled-back transaction
            raise self._fail(exc) from None
        written = len(batch) - len(rejected)
        self.records += written
        return WriteResult(written=written, rejected=rejected)

    def state(self) -> dict[str, Any]:
        return {"records": self.records}

    def finalize(self) -> None:
        """Build the ANN index the way LangGraph does (its setup() with the index config), then ANALYZE."""
        import psycopg

        conn = self._db()
        try:
            self.info = inspect(conn)
            dims = self.info.dims
            if self.info.vectors and dims is not None and self.cfg.index != "flat" and not self._has_ann():
                if dims > ANN_MAX_DIMS.get(self.info.vector_type or "vector", 2000):
                    self.ctx.info(f"{self.identity()}: no {self.cfg.index} index: the vectors have {dims:,} dims")
                else:
                    self._build_index(conn, dims)
            conn.execute("ANALYZE store")
            if self.info.vectors:
                conn.execute("ANALYZE store_vectors")
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def _has_ann(self) -> bool:
        return any(" USING hnsw " in d or " USING ivfflat " in d for d in self.info.indexes.values())

    def _build_index(self, conn: psycopg.Connection[Any], dims: int) -> None:
        row = conn.execute("SELECT count(*) FROM store_vectors").fetchone()
        n = int(row[0]) if row else 0
        lists = self.cfg.ivfflat_lists or max(1, n // 1000)
        self.ctx.info(f"Building the {self.cfg.index} index of {self.identity()} ({n:,} vectors) ...")
        if self.cfg.maintenance_work_mem:
            conn.execute(f"SET maintenance_work_mem = '{self.cfg.maintenance_work_mem}'")
        run_setup(conn, self._index(dims, self.cfg.index, lists))
        self.info = inspect(conn)

    def check(self) -> str:
        import psycopg

        if not self.endpoint.exists():
            return f"{self.endpoint.where}: not created yet; the first run creates it"
        conn = self.endpoint.connect(autocommit=True)
        try:
            version = conn.execute("SHOW server_version").fetchone()
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            info = inspect(conn)
            what = f"PostgreSQL {version[0] if version else '?'}, " + (
                f"pgvector {ext[0]}" if ext else "pgvector not enabled yet"
            )
            if not info.store:
                return f"{self.where}: reachable ({what}); PostgresStore.setup() will create the tables"
            if info.foreign:
                return f"{self.where}: reachable ({what}); a table named 'store' exists and is not LangGraph's"
            n = Reader(self.spaces, self.cfg.text_field, info, self.where).count(conn, None)
            dims = f"vector({info.dims})" if info.dims else "no vectors yet"
            return f"{self.where}: reachable ({what}); {n:,} items under {self._scope()}, {dims}"
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        finally:
            conn.close()

    # -- reading back -------------------------------------------------------------------------------
    def connect(self) -> None:
        import psycopg

        if not self.endpoint.exists():
            raise UsageError(f"{self.endpoint.where}: nothing there yet", hint="run the recipe first")
        self.reader = self.endpoint.connect(autocommit=True)
        try:
            self.info = inspect(self.reader)
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        if not self.info.store or self.info.foreign:
            raise UsageError(f"{self.where}: no LangGraph store here (no table 'store')", hint="run the recipe first")
        cond, args = self.spaces.condition()
        try:
            held = self.reader.execute(f"SELECT EXISTS (SELECT 1 FROM store WHERE {cond})", args).fetchone()
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        if held != (True,):
            raise UsageError(
                f"{self.where}: no items under {self._scope()}",
                hint="run the recipe first",
            )

    def _read(self) -> tuple[psycopg.Connection[Any], Reader]:
        conn = self.reader or self.conn
        if conn is None:
            self.connect()
            conn = self.reader
        assert conn is not None
        return conn, Reader(self.spaces, self.cfg.text_field, self.info, self.where)

    def _namespace(self, namespace: str | None) -> str | None:
        """A namespace to read, checked (one that LangGraph cannot address holds nothing vexrun wrote)."""
        if namespace is not None:
            try:
                self.spaces.prefix(namespace)
            except Refused as exc:
                raise InvalidInput(f"{self.where}: namespace {namespace!r}: {exc}") from None
        return namespace

    def search(self, vector: np.ndarray | None, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        import psycopg

        if vector is None:
            raise UsageError(f"{self.where}: searching needs a query vector", hint="add an embed: section")
        conn, reader = self._read()
        if not self.info.vectors:
            return []
        metric = str(self.info.meta.get("metric") or self.cfg.metric or "cosine")
        try:
            hits = reader.search(conn, vector, k, self._namespace(namespace), metric)
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        return [_decoded(h) for h in hits]

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        import psycopg

        conn, reader = self._read()
        try:
            rows = reader.fetch(conn, [store_id(i, CAPABILITIES) for i in ids], self._namespace(namespace))
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        batch = from_store(Decoder(self.spaces, self.cfg.text_field, self.where).batch(rows))
        return batch

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        import psycopg

        conn, reader = self._read()
        try:
            return reader.delete(conn, [store_id(i, CAPABILITIES) for i in ids], self._namespace(namespace))
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def namespaces(self) -> list[str]:
        import psycopg

        conn, reader = self._read()
        try:
            return reader.namespaces(conn) if self.info.store else []
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def count(self, namespace: str | None = None) -> int:
        import psycopg

        conn, reader = self._read()
        try:
            return reader.count(conn, self._namespace(namespace)) if self.info.store else 0
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def close(self) -> None:
        for conn in (self.conn, self.reader):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                    pass
        self.conn = self.reader = None
        self.staged = False
        self.endpoint.close()


def _decoded(hit: Hit) -> Hit:
    """A hit with vexrun's id and metadata (an id the store could not hold is kept in the metadata)."""
    from dataclasses import replace

    from ...vmig.model import Record

    if not hit.metadata or "_vexrun_id" not in hit.metadata:
        return hit
    rec = from_store(Batch(records=[Record(id=hit.id, metadata=hit.metadata)])).records[0]
    return replace(hit, id=rec.id, metadata=rec.metadata)
