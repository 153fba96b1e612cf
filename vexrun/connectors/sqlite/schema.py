"""The file format of the embedded local memory store: one SQLite file in WAL mode.

::

    meta        key TEXT PRIMARY KEY, value TEXT (JSON)        schema_version, dims, model, metric,
                                                                embedder_spec, tokenizer, created_at, ...
    records     seq INTEGER PRIMARY KEY                        stable order: FTS rowid and source cursor
                id TEXT NOT NULL UNIQUE                        the record id; upserts are keyed on it
                namespace, dims, model, created_at, source_store, modality, score, vex_version,
                updated_at, metadata (JSON), extra (JSON), text, vector (float32 little-endian BLOB)
    records_fts FTS5 over records.text (external content, kept in sync by triggers; BM25 via bm25())
    edges       (src, dst, type) PRIMARY KEY, weight, metadata (JSON), updated_at

``PRAGMA application_id`` marks the file as a vexrun store and ``PRAGMA user_version`` holds the schema
version. ``seq`` is an ``INTEGER PRIMARY KEY`` rather than ``id``: the FTS index and resumable readers
need an integer key that ``VACUUM`` never renumbers and that an upsert never changes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson

from ...errors import InvalidInput, UsageError

__all__ = [
    "APPLICATION_ID",
    "RECORD_COLUMNS",
    "SCHEMA_VERSION",
    "TOKENIZER",
    "dumps",
    "loads",
    "now",
    "open_store",
    "read_meta",
    "transaction",
    "write_meta",
]

#: "vexr": marks a SQLite file as a vexrun store.
APPLICATION_ID = 0x76657872
SCHEMA_VERSION = 1
#: Porter stemming over unicode61: "drinks" finds "drink". Fixed when the store is created.
TOKENIZER = "porter unicode61 remove_diacritics 2"

#: Columns of ``records`` in the order the sink binds them and the source reads them (after ``seq``).
RECORD_COLUMNS: tuple[str, ...] = (
    "id",
    "namespace",
    "dims",
    "model",
    "created_at",
    "source_store",
    "modality",
    "score",
    "vex_version",
    "updated_at",
    "metadata",
    "extra",
    "text",
    "vector",
)

_DDL = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID",
    # Small columns first, the vector last: a scan that reads the vector parses past the others cheaply.
    """CREATE TABLE records (
        seq          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        namespace    TEXT,
        dims         INTEGER,
        model        TEXT,
        created_at   TEXT,
        source_store TEXT,
        modality     TEXT,
        score        REAL,
        vex_version  TEXT,
        updated_at   TEXT NOT NULL,
        metadata     TEXT,
        extra        TEXT,
        text         TEXT,
        vector       BLOB
    )""",
    "CREATE INDEX records_namespace ON records (namespace, seq)",
    f"""CREATE VIRTUAL TABLE records_fts USING fts5(
        text, content='records', content_rowid='seq', tokenize='{TOKENIZER}'
    )""",
    """CREATE TRIGGER records_fts_insert AFTER INSERT ON records WHEN new.text IS NOT NULL BEGIN
        INSERT INTO records_fts (rowid, text) VALUES (new.seq, new.text);
    END""",
    """CREATE TRIGGER records_fts_delete AFTER DELETE ON records WHEN old.text IS NOT NULL BEGIN
        INSERT INTO records_fts (records_fts, rowid, text) VALUES ('delete', old.seq, old.text);
    END""",
    """CREATE TRIGGER records_fts_update AFTER UPDATE OF text ON records WHEN old.text IS NOT new.text BEGIN
        INSERT INTO records_fts (records_fts, rowid, text) SELECT 'delete', old.seq, old.text
            WHERE old.text IS NOT NULL;
        INSERT INTO records_fts (rowid, text) SELECT new.seq, new.text WHERE new.text IS NOT NULL;
    END""",
    """CREATE TABLE edges (
        src        TEXT NOT NULL,
        dst        TEXT NOT NULL,
        type       TEXT NOT NULL,
        weight     REAL NOT NULL,
        metadata   TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (src, dst, type)
    ) WITHOUT ROWID""",
    "CREATE INDEX edges_dst ON edges (dst, type)",
)


def now() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dumps(value: Any) -> str | None:
    """JSON text of a metadata / extra value; None stays SQL NULL. Raises TypeError/ValueError if the
    value is not JSON (orjson first; the stdlib for what orjson refuses, such as integers over 64 bits)."""
    if value is None:
        return None
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def loads(text: str | bytes | None) -> Any:
    if text is None:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on any exception."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # the connection is unusable; SQLite rolls the journal back on the next open
        raise


def read_meta(conn: sqlite3.Connection) -> dict[str, Any]:
    return {key: loads(value) for key, value in conn.execute("SELECT key, value FROM meta")}


def write_meta(conn: sqlite3.Connection, values: dict[str, Any]) -> None:
    conn.executemany(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        # default=str: a stray non-JSON value (a SecretStr prints as stars) never fails a run
        [(key, orjson.dumps(value, default=str).decode()) for key, value in values.items()],
    )


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every table, index and trigger, stamp the file and write the initial meta (inside the
    caller's transaction)."""
    for statement in _DDL:
        conn.execute(statement)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    from ..._version import __version__

    stamp = now()
    write_meta(
        conn,
        {
            "schema_version": SCHEMA_VERSION,
            "created_at": stamp,
            "updated_at": stamp,
            "created_by": f"vexrun {__version__}",
            "tokenizer": TOKENIZER,
            "metric": "cosine",
        },
    )


def _header(conn: sqlite3.Connection, path: Path) -> tuple[int, int, int]:
    """(application_id, user_version, number of schema objects); InvalidInput if not SQLite at all."""
    try:
        app_id = int(conn.execute("PRAGMA application_id").fetchone()[0])
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        objects = int(conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0])
    except sqlite3.DatabaseError as exc:
        raise InvalidInput(f"{path}: not a vexrun store ({exc})") from None
    return app_id, version, objects


def _check(path: Path, app_id: int, version: int, objects: int) -> None:
    if app_id != APPLICATION_ID:
        what = "an empty file" if objects == 0 else "a SQLite database of another application"
        raise InvalidInput(f"{path}: not a vexrun store ({what})")
    if version > SCHEMA_VERSION:
        raise InvalidInput(
            f"{path}: the store has schema version {version}, newer than this vexrun reads ({SCHEMA_VERSION})",
            hint="upgrade vexrun",
        )
    if version < 1:
        raise InvalidInput(f"{path}: not a vexrun store (no schema version)")


def _connect(target: str, *, uri: bool) -> sqlite3.Connection:
    conn = sqlite3.connect(target, uri=uri, isolation_level=None, check_same_thread=False, timeout=30.0)
    return conn


def open_store(
    path: Path, *, write: bool, synchronous: Literal["full", "normal"] = "full"
) -> tuple[sqlite3.Connection, bool]:
    """Open a store; return (connection, created). ``write=False`` opens it read-only and requires an
    existing store; ``write=True`` creates the file and its schema when it is missing or empty.

    Raises UsageError (missing file, a directory) or InvalidInput (not a vexrun store, a newer schema),
    each one line naming the path. The connection is in autocommit mode: use :func:`transaction`.
    """
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a store file")
    if not write:
        if not path.exists():
            raise UsageError(f"{path}: no such file")
        conn = _open_readonly(path)
    else:
        try:
            conn = _connect(str(path), uri=False)
        except sqlite3.Error as exc:
            raise UsageError(f"{path}: cannot open ({exc})") from None
    try:
        created = False
        app_id, version, objects = _header(conn, path)
        if write and app_id == 0 and version == 0 and objects == 0:
            _set_pragmas(conn, synchronous)
            with transaction(conn):
                # Re-read under the write lock: another process may have created it meanwhile.
                if _header(conn, path) == (0, 0, 0):
                    create_schema(conn)
                    created = True
            app_id, version, objects = _header(conn, path)
        _check(path, app_id, version, objects)
        if write and not created:
            _set_pragmas(conn, synchronous)
    except BaseException:
        conn.close()
        raise
    return conn, created


def _set_pragmas(conn: sqlite3.Connection, synchronous: str) -> None:
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise InvalidInput(f"cannot switch the store to WAL mode (journal_mode is {mode})")
    conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
    conn.execute("PRAGMA cache_size = -65536")  # 64 MB
    conn.execute("PRAGMA temp_store = MEMORY")


def _open_readonly(path: Path) -> sqlite3.Connection:
    uri = path.resolve().as_uri()
    conn = _connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    except sqlite3.OperationalError as exc:
        if "unable to open" not in str(exc):
            conn.close()
            raise InvalidInput(f"{path}: cannot read the store ({exc})") from None
        # A WAL store in a read-only directory: its -shm file cannot be created. Nobody can be writing it
        # (a writer needs the directory too), so read it as immutable.
        conn.close()
        conn = _connect(f"{uri}?mode=ro&immutable=1", uri=True)
    except sqlite3.DatabaseError:
        pass  # not a database: _header says so
    # No mmap: scans then go through SQLite's small page cache and the process's RSS stays flat.
    conn.execute("PRAGMA query_only = ON")
    return conn
