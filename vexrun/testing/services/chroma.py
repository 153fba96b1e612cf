"""A real Chroma server (``chroma run``: the Rust server shipped in the ``chromadb`` wheel) for tests and
benchmarks, on 127.0.0.1 only, stopped by PID.

It starts in about a second. The server binds the host it is given (127.0.0.1 here), on an ephemeral port
picked just before the start (retried if another process took it meanwhile). Chroma 1.x's Rust server has no
authentication (the ``CHROMA_SERVER_AUTHN_*`` settings of the old Python server are ignored by it), so there is
no server with credentials to test against.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["ChromaHandle", "client", "start", "stop"]

#: Runs the ``chroma`` command of the installed wheel with the interpreter running vexrun.
_CLI = "import sys, chromadb_rust_bindings; chromadb_rust_bindings.cli(['chroma', *sys.argv[1:]])"


@dataclass
class ChromaHandle:
    """A running server: ``url`` for vexrun configs, ``host``/``port`` for ``chromadb.HttpClient``."""

    host: str
    port: int
    pid: int
    directory: Path
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def log(self) -> Path:
        return self.directory / "chroma.log"


@contextlib.contextmanager
def client(handle: ChromaHandle) -> Iterator[Any]:
    """A ``chromadb.HttpClient`` on the server (telemetry off), closed with its HTTP session afterwards."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    import chromadb
    from chromadb.config import Settings

    from ...connectors.chroma.client import close_client

    api = chromadb.HttpClient(host=handle.host, port=handle.port, settings=Settings(anonymized_telemetry=False))
    try:
        yield api
    finally:
        close_client(api)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(directory: str | os.PathLike[str], *, timeout: float = 30.0) -> ChromaHandle:
    """Start a server keeping its data under ``directory``; return once it answers its heartbeat. Raises
    RuntimeError with the tail of the server's log if it does not come up within ``timeout`` seconds."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", "NO_COLOR": "1"}
    last = ""
    for _attempt in range(3):
        port = _free_port()
        argv = [sys.executable, "-c", _CLI, "run", "--path", str(base / "data"), "--host", "127.0.0.1"]
        argv += ["--port", str(port)]
        t0 = time.monotonic()
        with open(base / "chroma.log", "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        handle = ChromaHandle("127.0.0.1", port, proc.pid, base, proc=proc)
        deadline = t0 + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if _ready(handle.url):
                handle.startup_s = time.monotonic() - t0
                return handle
            time.sleep(0.05)
        last = _log_tail(handle)
        exited = proc.poll() is not None
        stop(handle, remove=False)
        if not exited:
            raise RuntimeError(f"Chroma server not ready after {timeout:.0f} s; log tail:\n{last}")
        if "in use" not in last.lower():
            break
    raise RuntimeError(f"Chroma server exited before answering; log tail:\n{last}")


def stop(handle: ChromaHandle, *, remove: bool = True) -> None:
    """Stop the server started by :func:`start` (by its PID) and remove its data directory."""
    proc = handle.proc
    if proc is not None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    else:
        try:
            os.kill(handle.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if remove:
        shutil.rmtree(handle.data, ignore_errors=True)


def _log_tail(handle: ChromaHandle, lines: int = 30) -> str:
    if not handle.log.exists():
        return "(no log)"
    return "\n".join(handle.log.read_text(errors="replace").splitlines()[-lines:])
