"""The fake Pinecone (:mod:`vexrun.testing.pinecone`) as its own process, for tests and benchmarks: no
Pinecone server or emulator can run here (the emulator is a docker image). Its own process keeps it off the GIL
of the code under test. It listens on 127.0.0.1 only (ephemeral ports), starts in well under a second and is
stopped by PID.

A random API key is made per start; ``handle.api_key`` is what a client must send (tests pass it through an
environment variable, as a user would ``${PINECONE_API_KEY}``).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["PineconeHandle", "client", "count", "start", "stats", "stop"]


@dataclass
class PineconeHandle:
    """A running fake: ``control_url`` for ``Pinecone(host=...)`` (and vexrun's ``controller_host``), the hosts of
    the indexes it was started with, and the API key it accepts."""

    control_url: str
    api_key: str
    pid: int
    indexes: dict[str, str] = field(default_factory=dict)
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    log: Path | None = None


def start(
    directory: str | os.PathLike[str] | None = None,
    *,
    indexes: dict[str, int] | None = None,
    upserts_per_second: float = 100.0,
    read_limits: bool = True,
    timeout: float = 20.0,
) -> PineconeHandle:
    """Start the fake; ``indexes`` (name -> dimension, cosine) are created at start. Returns once it listens.
    Raises RuntimeError with its stderr if it does not come up within ``timeout`` seconds."""
    key = "pcsk_fake_" + secrets.token_hex(12)
    argv = [sys.executable, "-m", "vexrun.testing.pinecone", "--upserts-per-second", str(upserts_per_second)]
    for name, dims in (indexes or {}).items():
        argv += ["--index", f"{name}:{dims}"]
    if not read_limits:
        argv.append("--no-read-limits")
    log = Path(directory) / "fake-pinecone.log" if directory is not None else None
    err = open(log, "wb") if log is not None else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    t0 = time.monotonic()
    env = {**os.environ, "FAKE_PINECONE_API_KEY": key}
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
        raise RuntimeError(f"the fake Pinecone did not start within {timeout:.0f} s\n{tail}")
    info = json.loads(line)
    return PineconeHandle(
        info["control"], key, proc.pid, dict(info["indexes"]), time.monotonic() - t0, proc=proc, log=log
    )


def stop(handle: PineconeHandle) -> None:
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


def stats(handle: PineconeHandle) -> dict[str, Any]:
    """The fake's counters (requests by route and status, 429s, records upserted; see
    :class:`~vexrun.testing.pinecone.limits.Stats`)."""
    with urllib.request.urlopen(f"{handle.control_url}/_fake/stats", timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
    return data


def client(handle: PineconeHandle) -> Any:
    """A ``pinecone.Pinecone`` client on the fake's control plane (a context manager: it closes its
    connections on leaving)."""
    from pinecone import Pinecone

    return Pinecone(api_key=handle.api_key, host=handle.control_url)


def count(handle: PineconeHandle, index: str) -> int:
    """How many records an index holds, asked through the SDK (``describe_index_stats``)."""
    with client(handle) as pc, pc.Index(host=pc.describe_index(index).host) as idx:
        return int(idx.describe_index_stats().total_vector_count)
