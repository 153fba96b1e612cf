"""A real Milvus standalone server (PyPI ``milvus``: the Milvus binary with embedded etcd and rocksmq) for
tests and benchmarks, reachable on 127.0.0.1 only, stopped by PID.

Milvus 2.3 binds its gRPC and HTTP ports on every interface and has fixed internal ports (etcd on 2379/2380,
the coordinators on 53100, 19531, ...), so two servers on one machine collide and each is reachable from the
network. So the server runs in a network namespace of its own (only a loopback device in it), started by a
small launcher process (``python -m vexrun.testing.services.milvus``) that

1. listens on an ephemeral port of the host's 127.0.0.1 (the kernel picks it: no race between runs),
2. moves itself into a new network namespace (``unshare(CLONE_NEWNET)``; needs root, as on these machines)
   and brings its loopback up,
3. starts the ``milvus-server`` wrapper there, waits for ``/healthz``, writes ``{"port": ...}`` to a status
   file, and relays every connection from the host port to the proxy (19530) inside the namespace.

:func:`stop` sends SIGTERM to the launcher, which stops the wrapper with SIGINT (the wrapper then stops the
Milvus binary), and removes the data directory (about 500 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_TOKEN", "MilvusHandle", "start", "stop"]

#: Milvus's default superuser when authorization is enabled.
DEFAULT_TOKEN = "root:Milvus"
_PROXY_PORT = 19530
_HEALTH_URL = "http://127.0.0.1:9091/healthz"
_COMPONENTS = ("rootCoord", "proxy", "queryCoord", "queryNode", "indexNode", "dataCoord", "dataNode", "indexCoord")
_WRAPPER = "import sys; from milvus import main; sys.argv[0] = 'milvus-server'; main()"


@dataclass
class MilvusHandle:
    """A running server: ``uri`` for ``MilvusClient``; ``token`` is set when authorization is on."""

    uri: str
    port: int
    pid: int
    directory: Path
    token: str | None = None
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log(self) -> Path:
        return self.directory / "launcher.log"


def start(directory: str | os.PathLike[str], *, auth: bool = False, timeout: float = 180.0) -> MilvusHandle:
    """Start a server with its data under ``directory``; return once it answers. Raises RuntimeError with
    the tail of the server's logs if it does not come up within ``timeout`` seconds."""
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    status = base / "launcher.json"
    status.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "vexrun.testing.services.milvus", "--data", str(base / "data")]
    argv += ["--status", str(status)] + (["--auth"] if auth else [])
    t0 = time.monotonic()
    with open(base / "launcher.log", "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    handle = MilvusHandle(uri="", port=0, pid=proc.pid, directory=base, proc=proc)
    deadline = t0 + timeout
    while True:
        if status.exists():
            info = json.loads(status.read_text())
            handle.port = int(info["port"])
            handle.uri = f"http://127.0.0.1:{handle.port}"
            handle.token = DEFAULT_TOKEN if auth else None
            handle.startup_s = time.monotonic() - t0
            return handle
        if proc.poll() is not None or time.monotonic() > deadline:
            why = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {timeout:.0f} s"
            tail = _log_tail(base)
            stop(handle)
            raise RuntimeError(f"Milvus server {why}; log tail:\n{tail}")
        time.sleep(0.1)


def stop(handle: MilvusHandle, *, remove: bool = True) -> None:
    """Stop the server started by :func:`start` (by its launcher's PID) and remove its data directory."""
    proc = handle.proc
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    elif proc is None:
        try:
            os.kill(handle.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if remove:
        shutil.rmtree(handle.directory / "data", ignore_errors=True)


def _log_tail(base: Path, lines: int = 30) -> str:
    parts = []
    for path in (base / "launcher.log", base / "data" / "logs" / "milvus-stderr.log"):
        if path.exists():
            text = path.read_text(errors="replace").splitlines()[-lines:]
            parts.append(f"--- {path.name}\n" + "\n".join(text))
    return "\n".join(parts) or "(no log)"


# --- the launcher (runs in its own process) ---------------------------------------------------------------

_CLONE_NEWNET = 0x40000000
_PR_SET_PDEATHSIG = 1
_SIOCGIFFLAGS = 0x8913
_SIOCSIFFLAGS = 0x8914
_IFF_UP = 0x1


def _libc() -> Any:
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def _enter_new_netns() -> None:
    """Move this process into a new network namespace and bring its loopback up."""
    import ctypes
    import fcntl
    import struct

    libc = _libc()
    if libc.unshare(_CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"unshare(CLONE_NEWNET) failed: {os.strerror(err)} (needs root)")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        req = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), _SIOCGIFFLAGS, req))[1]
        fcntl.ioctl(s.fileno(), _SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | _IFF_UP))


def _die_with_parent() -> None:
    _libc().prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _healthy() -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(_HEALTH_URL, timeout=1) as resp:
            return b"OK" in resp.read()
    except (OSError, urllib.error.URLError):
        return False


def _pump(src: socket.socket, dst: socket.socket, pending: list[int], lock: threading.Lock) -> None:
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with lock:
            pending[0] -= 1
            last = pending[0] == 0
        if last:  # both directions are finished
            src.close()
            dst.close()


def _relay(client: socket.socket) -> None:
    try:
        upstream = socket.create_connection(("127.0.0.1", _PROXY_PORT), timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    for s in (client, upstream):
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    pending, lock = [2], threading.Lock()
    for a, b in ((client, upstream), (upstream, client)):
        threading.Thread(target=_pump, args=(a, b, pending, lock), daemon=True).start()


def _launch(data: Path, status: Path, auth: bool) -> int:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))  # in the host's namespace, before unshare
    listener.listen(64)
    listener.settimeout(0.5)
    _enter_new_netns()
    extra = [f"{c}.ip=127.0.0.1" for c in _COMPONENTS]
    if auth:
        extra.append("common.security.authorizationEnabled=true")
    argv = [sys.executable, "-c", _WRAPPER, "--data", str(data), "--proxy-port", str(_PROXY_PORT)]
    for item in extra:
        argv += ["--extra-config", item]
    wrapper = subprocess.Popen(argv, start_new_session=True, preexec_fn=_die_with_parent)  # noqa: PLW1509
    stopping = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    ready = False
    servers: list[int] = []
    code = 0
    while not stopping.is_set():
        if wrapper.poll() is not None:
            print(f"milvus-server exited with {wrapper.returncode}", file=sys.stderr, flush=True)
            code = 1
            break
        if not ready:
            if _healthy():
                ready = True
                servers = _children(wrapper.pid)
                tmp = status.with_suffix(".tmp")
                tmp.write_text(json.dumps({"port": listener.getsockname()[1], "pid": os.getpid()}))
                tmp.replace(status)
            else:
                time.sleep(0.2)
            continue
        try:
            client, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            break
        client.settimeout(None)
        _relay(client)
    listener.close()
    if wrapper.poll() is None:
        wrapper.send_signal(signal.SIGINT)
        try:
            wrapper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(wrapper.pid, signal.SIGKILL)  # the group this launcher created for the wrapper
            wrapper.wait()
    for pid in servers:  # Milvus 2.3 leaves /tmp/milvus/server_id_<pid> behind
        Path(f"/tmp/milvus/server_id_{pid}").unlink(missing_ok=True)
    try:
        Path("/tmp/milvus").rmdir()
    except OSError:
        pass  # not empty (another server's), or gone
    return code


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(x) for x in text.split()]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run a Milvus standalone server behind a 127.0.0.1 port.")
    parser.add_argument("--data", required=True, type=Path)
    parser.add_argument("--status", required=True, type=Path)
    parser.add_argument("--auth", action="store_true")
    args = parser.parse_args()
    return _launch(args.data, args.status, args.auth)


if __name__ == "__main__":
    sys.exit(main())
