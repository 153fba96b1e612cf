"""PostgreSQL + pgvector as a sink: one binary COPY per batch, idempotent, durable on return.

While the table holds none of the ids being written (a fresh load), a batch is COPied straight into it; the
first id that is already there (a re-run, a resumed run, the same id in two batches) switches the sink to
the upsert path for the rest of the run: COPY into a temporary table, then ``INSERT … ON CONFLICT (id) DO
UPDATE … WHERE`` something changed. Each batch is one transaction. Indexes are built in :meth:`finalize`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ...errors import ConnectError, InvalidInput, UsageError
from ...vmig.batch import Batch
from ..base import Edge, Hit, RunContext, Sink, WriteResult
from .codec import COLUMNS, COPY_HEADER, COPY_TRAILER, Encoder
from .config import PgvectorSinkConfig
from .conn import Endpoint, map_error
from .readback import TableReader
from .search import search_table
from .table import HNSW_MAX_DIMS, OPS, TableInfo, create_sql, ident, index_name, inspect, qualified, upsert_sql

if TYPE_CHECKING:
    import psycopg

__all__ = ["PgvectorSink"]

_STAGE = "vexrun_stage"


class PgvectorSink(Sink):
    name = "pgvector"
    concurrent_writers = True
    io_bound = True

    def __init__(self, config: PgvectorSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.endpoint = Endpoint(config.dsn.get_secret_value(), ctx, config.data_dir)
        self.table = qualified(config.db_schema, config.table)
        #: edges between records (``write_edges``), made on the first edge
        self.edges_table = qualified(config.db_schema, config.table + "_edges")
        self.edges = 0
        self.conn: psycopg.Connection[Any] | None = None
        self.fresh = True
        self.info = TableInfo(exists=False)
        self.dims: int | None = None
        self.metric: str = config.metric or "cosine"
        self.upsert = True
        self.staged = False
        self.records = 0
        self.reader: psycopg.Connection[Any] | None = None
        self.encoder = Encoder(None, config.namespace)
        self.readback: TableReader | None = None

    # -- naming -------------------------------------------------------------------------------------
    def identity(self) -> str:
        return f"pgvector:{self.cfg.db_schema}.{self.cfg.table}"

    @property
    def where(self) -> str:
        return f"{self.endpoint.where}, table {self.cfg.db_schema}.{self.cfg.table}"

    def _db(self) -> psycopg.Connection[Any]:
        if self.conn is None:
            raise RuntimeError("PgvectorSink used before open()")
        return self.conn

    def _fail(self, exc: Exception) -> ConnectError:
        """One line for a failed statement (transaction blocks have rolled back by then)."""
        return map_error(exc, self.where)

    # -- the run ------------------------------------------------------------------------------------
    def open(self, state: dict[str, Any] | None) -> None:
        import psycopg

        # Autocommit: a COPY is its own transaction, durable when it returns, in two round trips; statements
        # that belong together run in explicit transaction blocks.
        self.conn = self.endpoint.connect(autocommit=True)
        self.fresh = state is None
        self.records = int((state or {}).get("records", 0))
        self.edges = int((state or {}).get("edges", 0))
        try:
            self.info = inspect(self.conn, self.cfg.db_schema, self.cfg.table)
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        import psycopg

        conn = self._db()
        self.metric = self.cfg.metric or metric
        if self.metric not in OPS:
            raise InvalidInput(f"{self.where}: pgvector has no metric {self.metric!r} (cosine, l2 or dot)")
        try:
            self._ensure_extension(conn)
            with conn.transaction():
                self._prepare_table(conn, dims, model)
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        self.dims = self.info.dims
        self.fresh = False  # a second prepare() of the same run must not drop the table again
        if self.cfg.index == "hnsw" and self.dims is not None and self.dims > HNSW_MAX_DIMS:
            self.ctx.info(
                f"{self.identity()}: no HNSW index will be built: pgvector indexes vectors of at most "
                f"{HNSW_MAX_DIMS:,} dims, these have {self.dims:,} (searches scan the table)"
            )

    def _prepare_table(self, conn: psycopg.Connection[Any], dims: int | None, model: str | None) -> None:
        """Drop (``replace``), check or create the table, inside the caller's transaction."""
        if self.cfg.replace and self.fresh and self.info.exists:
            conn.execute(f"DROP TABLE {self.table}")
            conn.execute(f"DROP TABLE IF EXISTS {self.edges_table}")
            self.info = TableInfo(exists=False)
        if self.info.exists:
            self._check_existing(dims, model)
            self.upsert = conn.execute(f"SELECT EXISTS (SELECT 1 FROM {self.table})").fetchone() == (True,)
        else:
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {ident(self.cfg.db_schema)}")
            conn.execute(create_sql(self.cfg.db_schema, self.cfg.table, dims))
            self._write_meta(conn, {"metric": self.metric, "model": model})
            self.info = inspect(conn, self.cfg.db_schema, self.cfg.table)
            self.upsert = False

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

    def _check_existing(self, dims: int | None, model: str | None) -> None:
        info = self.info
        hint = "set replace: true on the target to recreate it, or choose another table"
        if info.missing:
            raise InvalidInput(
                f"{self.where}: the table exists and is not a vexrun table (no column {', '.join(info.missing)})",
                hint="choose another table",
            )
        if dims and info.dims and dims != info.dims:
            raise InvalidInput(
                f"{self.where}: the table holds vector({info.dims}), this run writes {dims}-d vectors", hint=hint
            )
        meta = info.meta or {}
        if meta.get("metric") and meta["metric"] != self.metric:
            raise InvalidInput(
                f"{self.where}: the table was made for the {meta['metric']} metric, this run asks for {self.metric}",
                hint=hint,
            )
        if model and meta.get("model") and meta["model"] != model:
            raise InvalidInput(
                f"{self.where}: the table holds vectors of model '{meta['model']}', this run writes '{model}'",
                hint=hint,
            )

    def _write_meta(self, conn: psycopg.Connection[Any], values: dict[str, Any]) -> None:
        from psycopg import sql

        from ..._version import __version__

        meta = {**(self.info.meta or {}), **{k: v for k, v in values.items() if v is not None}}
        meta.setdefault("created_by", f"vexrun {__version__}")
        spec = getattr(self.ctx, "embedder_spec", None)
        if spec:
            meta["embedder_spec"] = dict(spec)
        text = orjson.dumps({"vexrun": meta}, default=str).decode()
        conn.execute(sql.SQL(f"COMMENT ON TABLE {self.table} IS {{}}").format(sql.Literal(text)))
        self.info.meta = meta

    def write(self, batch: Batch) -> WriteResult:
        import psycopg

        conn = self._db()
        rejected: dict[str, str] = {}
        self.encoder.dims = self.dims
        chunks = self.encoder.rows(batch, rejected)
        sent: list[bytes] = []
        try:
            if not self.upsert:
                try:
                    self._copy(conn, self.table, chunks, sent)  # its own transaction
                except psycopg.errors.UniqueViolation:
                    self.upsert = True  # an id already there (nothing was written): upsert from now on
            if self.upsert:
                self._stage(conn)
                with conn.transaction():
                    self._copy(conn, ident(_STAGE), chunks, sent)
                    if sent:
                        conn.execute(upsert_sql(self.cfg.db_schema, self.cfg.table, _STAGE))
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        written = len(batch) - len(rejected)
        self.records += written
        self._learn_dims(batch)
        return WriteResult(written=written, rejected=rejected)

    def _copy(
        self, conn: psycopg.Connection[Any], into: str, chunks: Iterator[tuple[int, bytes]], sent: list[bytes]
    ) -> None:
        """COPY the pieces already ``sent`` (a replay) and then the rest of ``chunks`` as they are encoded,
        adding those to ``sent``. Nothing is sent for a batch without rows."""
        first = next(chunks, None) if not sent else None
        if first is not None:
            sent.append(first[1])
        if not sent:
            return
        cols = ", ".join(ident(c) for c in COLUMNS)
        try:
            with conn.cursor() as cur, cur.copy(f"COPY {into} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(COPY_HEADER)
                for data in sent:
                    copy.write(data)
                for _, data in chunks:
                    sent.append(data)
                    copy.write(data)
                copy.write(COPY_TRAILER)
        finally:
            sent.extend(data for _, data in chunks)  # a replay needs every piece, even after a failure

    def _stage(self, conn: psycopg.Connection[Any]) -> None:
        if self.staged:
            return
        cols = ", ".join(ident(c) for c in COLUMNS)
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS {ident(_STAGE)} ON COMMIT DELETE ROWS AS "
            f"SELECT {cols} FROM {self.table} WITH NO DATA"
        )
        self.staged = True

    def _learn_dims(self, batch: Batch) -> None:
        """A table made without dims (text-only first batch) takes the dims of the first vectors."""
        if self.dims is None and batch.dims is not None and batch.has_vector is not None and np.any(batch.has_vector):
            self.dims = batch.dims

    def write_edges(self, edges: list[Edge]) -> None:
        """Upsert edges into ``<table>_edges`` (src, dst, type) → weight, metadata; durable on return."""
        import psycopg

        if not edges:
            return
        conn = self._db()
        try:
            with conn.transaction():
                self._upsert_edges(conn, edges)
        except psycopg.Error as exc:
            raise self._fail(exc) from None
        self.edges += len(edges)

    def _upsert_edges(self, conn: psycopg.Connection[Any], edges: list[Edge]) -> None:
        """Create ``<table>_edges`` if needed and upsert, inside the caller's transaction."""
        from psycopg.types.json import Jsonb

        conn.execute(
            f'CREATE TABLE IF NOT EXISTS {self.edges_table} (src text COLLATE "C" NOT NULL, '
            'dst text COLLATE "C" NOT NULL, type text NOT NULL, weight double precision NOT NULL, '
            "metadata jsonb, updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (src, dst, type))"
        )
        with conn.cursor() as cur:
            cur.executemany(
                f"INSERT INTO {self.edges_table} AS e (src, dst, type, weight, metadata) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (src, dst, type) DO UPDATE SET weight = EXCLUDED.weight, "
                "metadata = EXCLUDED.metadata, updated_at = now() "
                "WHERE (e.weight, e.metadata) IS DISTINCT FROM (EXCLUDED.weight, EXCLUDED.metadata)",
                [
                    (e.src, e.dst, e.type, float(e.weight), None if e.metadata is None else Jsonb(e.metadata))
                    for e in {(e.src, e.dst, e.type): e for e in edges}.values()
                    if "\x00" not in e.src + e.dst + e.type  # ends of records PostgreSQL refused
                ],
            )

    def state(self) -> dict[str, Any]:
        return {"records": self.records, "edges": self.edges}

    def finalize(self) -> None:
        import psycopg

        conn = self._db()
        name = self.cfg.table
        try:
            conn.execute(f"CREATE INDEX IF NOT EXISTS {index_name(name, 'namespace')} ON {self.table} (namespace, id)")
            self._build_hnsw(conn)
            # the statistics of the columns vexrun's queries filter and sort by (namespace, id): a whole-table
            # ANALYZE also samples the vectors, texts and JSON, 0.20 s against 0.08 s for 100k × 384 here, and the
            # server's autovacuum analyzes every column once the load settles
            conn.execute(f"ANALYZE {self.table} (id, namespace)")
        except psycopg.Error as exc:
            raise self._fail(exc) from None

    def _build_hnsw(self, conn: psycopg.Connection[Any]) -> None:
        info = inspect(conn, self.cfg.db_schema, self.cfg.table)
        if self.cfg.index != "hnsw" or info.dims is None or info.dims > HNSW_MAX_DIMS:
            if self.cfg.index == "hnsw" and info.dims is None:
                self.ctx.info(f"{self.identity()}: no HNSW index: the embedding column has no fixed dims")
            return
        opclass = OPS[self.metric][1]
        if any("USING hnsw" in d and "(embedding" in d for d in (info.indexes or {}).values()):
            return
        n = conn.execute(f"SELECT count(*) FROM {self.table} WHERE embedding IS NOT NULL").fetchone()
        rows = int(n[0]) if n else 0
        self.ctx.info(f"Building the HNSW index of {self.identity()} ({rows:,} vectors) ...")
        if self.cfg.maintenance_work_mem:
            conn.execute(f"SET maintenance_work_mem = '{self.cfg.maintenance_work_mem}'")
        index = index_name(self.cfg.table, "hnsw")
        conn.execute(
            f"CREATE INDEX IF NOT EXISTS {index} ON {self.table} USING hnsw (embedding {opclass}) "
            f"WITH (m = {int(self.cfg.hnsw_m)}, ef_construction = {int(self.cfg.hnsw_ef_construction)})"
        )

    def check(self) -> str:
        import psycopg

        if not self.endpoint.exists():
            return f"{self.endpoint.where}: not created yet; the first run creates it"
        conn = self.endpoint.connect(autocommit=True)
        try:
            version = conn.execute("SHOW server_version").fetchone()
            ext = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'").fetchone()
            info = inspect(conn, self.cfg.db_schema, self.cfg.table)
            what = f"PostgreSQL {version[0] if version else '?'}, " + (
                f"pgvector {ext[0]}" if ext else "pgvector not enabled yet"
            )
            if not info.exists:
                return f"{self.where}: reachable ({what}); the table will be created"
            n = conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()
            dims = f"vector({info.dims})" if info.dims else "vector"
            return f"{self.where}: reachable ({what}); {int(n[0]) if n else 0:,} records, {dims}"
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None
        finally:
            conn.close()

    # -- search -------------------------------------------------------------------------------------
    def connect(self) -> None:
        if not self.endpoint.exists():
            raise UsageError(f"{self.endpoint.where}: nothing there yet", hint="run the recipe first")
        self.reader = self.endpoint.connect(autocommit=True)

    def search(self, vector: np.ndarray | None, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        if self.reader is None:
            self.connect()
        assert self.reader is not None
        return search_table(self.reader, self.cfg.db_schema, self.cfg.table, self.where, vector, k, namespace)

    # -- reading back (see .readback) ----------------------------------------------------------------
    def _reading(self) -> tuple[TableReader, psycopg.Connection[Any]]:
        """The read-back statements, and the run's connection when the sink is open (its writes are
        committed), else :meth:`connect`'s."""
        if self.readback is None:
            self.readback = TableReader(self.cfg.db_schema, self.cfg.table, self.where)
        if self.conn is not None:
            return self.readback, self.conn
        if self.reader is None:
            self.connect()
        assert self.reader is not None
        return self.readback, self.reader

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        reader, conn = self._reading()
        return reader.fetch(conn, ids, namespace)

    def scan(self, batch_size: int) -> Iterator[Batch]:
        reader, conn = self._reading()
        return reader.scan(conn, batch_size)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        reader, conn = self._reading()
        return reader.delete(conn, ids, namespace)

    def namespaces(self) -> list[str]:
        reader, conn = self._reading()
        return reader.namespaces(conn)

    def count(self, namespace: str | None = None) -> int:
        reader, conn = self._reading()
        return reader.count(conn, namespace)

    def counts(self, namespaces: Sequence[str]) -> tuple[int, dict[str, int]]:
        reader, conn = self._reading()
        per = reader.counts(conn)
        return sum(per.values()), {ns: per.get(ns, 0) for ns in namespaces}

    def close(self) -> None:
        for conn in (self.conn, self.reader):
            if conn is not None:
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - closing after a failure must not hide it
                    pass
        self.conn = self.reader = None
        self.endpoint.close()
