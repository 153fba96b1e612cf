"""Connecting: the DSN (or the local server behind ``dsn: embedded``), errors as one line without secrets."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConnectError, UsageError
from ..base import RunContext
from . import server as _server
from .config import LOCAL

if TYPE_CHECKING:
    import psycopg

__all__ = ["Endpoint", "describe", "map_error", "release"]

_CONNECT_TIMEOUT = 5  # seconds; an address that never answers fails fast
_lock = threading.Lock()
#: local servers of this process: data dir → (server, users)
_local: dict[Path, tuple[_server.LocalServer, int]] = {}


def describe(dsn: str) -> str:
    """Where ``dsn`` points, for messages: host and port (or socket directory), database and user; never the
    password, and never the DSN text itself (a DSN is registered as a secret and would be masked)."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        params = conninfo_to_dict(dsn)
    except Exception:  # noqa: BLE001 - an unparsable DSN must not be echoed: it may hold a password
        return "an unparsable dsn"
    user = params.get("user")
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    port = params.get("port") or "5432"
    where = f"{host} (socket)" if host.startswith("/") else f"{host}:{port}"
    db = params.get("dbname") or user or "postgres"
    return f"{where}, database {db}" + (f", user {user}" if user else "")


class Endpoint:
    """Where a connector's table lives: a DSN, or the local server of ``dsn: embedded`` (started on first use,
    stopped by :meth:`close` when this process started it)."""

    def __init__(self, dsn: str, ctx: RunContext, data_dir: str | None) -> None:
        self.local = dsn.strip() == LOCAL
        self.dsn = dsn
        self.data_dir: Path | None = None
        if self.local:
            base = Path(ctx.resolve_path(data_dir)) if data_dir else Path(ctx.state_dir) / "postgres"
            self.data_dir = base.resolve()
        self.server: _server.LocalServer | None = None
        self.ctx = ctx

    @property
    def where(self) -> str:
        """A name for messages: the URL without password, or the local server's data directory."""
        if self.data_dir is not None:
            return f"the local PostgreSQL server ({self.data_dir})"
        return f"PostgreSQL at {describe(self.dsn)}"

    def exists(self) -> bool:
        """False for a local server that was never created (nothing to read or search yet)."""
        return self.data_dir is None or (self.data_dir / "PG_VERSION").is_file()

    def connect(self, *, autocommit: bool = False) -> psycopg.Connection[Any]:
        """A connection, starting the local server first if needed. ConnectError / UsageError on failure."""
        try:
            import psycopg
        except ImportError:  # pragma: no cover - the registry checks the extra first
            raise UsageError("the pgvector connector needs psycopg: pip install 'vexrun[pgvector]'") from None
        dsn = self.dsn
        if self.data_dir is not None:
            if self.server is None:
                self.server = _acquire(self.data_dir, self.ctx)
            dsn = self.server.dsn()
        else:
            try:
                from psycopg.conninfo import conninfo_to_dict

                conninfo_to_dict(dsn)
            except psycopg.ProgrammingError:
                raise UsageError(
                    "dsn: not a PostgreSQL connection string (expected postgresql://user:password@host:5432/db "
                    "or 'host=... dbname=...')"
                ) from None
        try:
            return psycopg.connect(
                dsn, connect_timeout=_CONNECT_TIMEOUT, autocommit=autocommit, application_name="vexrun"
            )
        except psycopg.Error as exc:
            raise map_error(exc, self.where) from None

    def close(self) -> None:
        if self.server is not None:
            release(self.server)
            self.server = None


def _acquire(data_dir: Path, ctx: RunContext) -> _server.LocalServer:
    with _lock:
        entry = _local.get(data_dir)
        if entry is not None:
            _local[data_dir] = (entry[0], entry[1] + 1)
            return entry[0]
        fresh = not (data_dir / "PG_VERSION").is_file()
        if fresh:
            ctx.info(f"Creating a local PostgreSQL database in {data_dir} ...")
        server = _server.launch(data_dir, settings=_server.LOCAL_SETTINGS)
        if server.opened:
            ctx.info(
                f"Made {', '.join(map(str, server.opened))} traversable (o+x) for the user {_server.PG_USER}: "
                "PostgreSQL does not run as root"
            )
        _local[data_dir] = (server, 1)
        return server


def release(server: _server.LocalServer) -> None:
    """One user less of a local server; the last one stops it (if this process owns it)."""
    with _lock:
        entry = _local.get(server.data_dir)
        if entry is None:
            return
        if entry[1] > 1:
            _local[server.data_dir] = (entry[0], entry[1] - 1)
            return
        del _local[server.data_dir]
    _server.stop(server)


_CREDENTIALS = (
    "password authentication failed",
    "no password supplied",
    "authentication failed",
    "pg_hba.conf",
    "role",
    "permission denied",
    "sasl",
    "scram",
)


def map_error(exc: Exception, where: str) -> ConnectError:
    """One line for a psycopg error: refused credentials, unreachable, or what the server said."""
    import psycopg

    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # "connection failed: connection to server at "127.0.0.1", port 1 failed: FATAL:  password authentication …"
    reason = text.rsplit(" failed: ", 1)[-1].strip()
    for prefix in ("FATAL:", "ERROR:"):
        if reason.startswith(prefix):
            reason = reason[len(prefix) :].strip()
    low = reason.lower()
    connecting = isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None
    if connecting and low.startswith("database") and "does not exist" in low:
        return ConnectError(f"{where}: {reason}", hint="create the database, or name another in the dsn")
    if connecting and any(k in low for k in _CREDENTIALS):
        return ConnectError(f"{where} refused the credentials ({reason})", hint="check the user and password")
    if connecting:
        return ConnectError(f"cannot reach {where} ({reason})")
    return ConnectError(f"{where}: {reason}")
