"""The fake Weaviate (:mod:`vexrun.testing.fake_weaviate`) as its own process, for tests and benchmarks: no
Weaviate server can run here. Its own process keeps it off the GIL of the code under test. It listens on
127.0.0.1 only (REST and gRPC, ephemeral ports), starts in about a second (importing grpc and the client's
protobuf modules) and is stopped by PID.

A random API key is made per start (unless ``api_key=False``); ``handle.api_key`` is what a client must send
(tests pass it through an environment variable, as a user would ``${WEAVIATE_API_KEY}``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["WeaviateHandle", "client", "start", "stop"]


@dataclass
class WeaviateHandle:
    """A running fake: ``url`` (REST) and ``grpc_port`` for vexrun configs and the client."""

    url: str
    http_port: int
    grpc_port: int
    api_key: str | None
    pid: int
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = None


def start(
    directory: str | os.PathLike[str] | None = None,
    *,
    api_key: bool = True,
    autoschema: bool = True,
    timeout: float = 30.0,
) -> WeaviateHandle:
    """Start the fake; return once both listeners are up. Raises RuntimeError with its stderr if it does not come
    up within ``timeout`` seconds."""
    key = "wv_fake_" + secrets.token_hex(12) if api_key else None
    argv = [sys.executable, "-m", "vexrun.testing.fake_weaviate"]
    if not autoschema:
        argv.append("--no-autoschema")
    log = Path(directory) / "fake-weaviate.log" if directory is not None else None
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    err = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    env = {k: v for k, v in os.environ.items() if k != "FAKE_WEAVIATE_API_KEY"}
    if key is not None:
        env["FAKE_WEAVIATE_API_KEY"] = key
    t0 = time.monotonic()
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, stdin=subprocess.DEVNULL, env=env)
    finally:
        if log is not None and not isinstance(err, int):
            err.close()
    assert proc.stdout is not None
    line = b""
    deadline = t0 + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.strip():
            break
    if not line.strip():
        proc.kill()
        proc.wait()
        tail = log.read_text(errors="replace")[-2000:] if log is not None and log.exists() else ""
        raise RuntimeError(f"the fake Weaviate did not start within {timeout:.0f} s\n{tail}")
    info = json.loads(line)
    return WeaviateHandle(
        info["url"], info["http_port"], info["grpc_port"], key, proc.pid, time.monotonic() - t0, proc=proc, log=log
    )


def stop(handle: WeaviateHandle) -> None:
    """Stop the fake started by :func:`start` (SIGTERM to its PID, then SIGKILL after 10 s)."""
    proc = handle.proc
    if proc is None:
        try:
            os.kill(handle.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        return
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def client(handle: WeaviateHandle) -> Any:
    """A connected ``weaviate.WeaviateClient`` on the fake (close it when done)."""
    from ..fake_weaviate import connect

    return connect(handle.http_port, handle.grpc_port, handle.api_key)
