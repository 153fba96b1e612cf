"""Real git servers on 127.0.0.1 for the sync tests and benchmarks, started and stopped by PID.

* :class:`BareRepo` — ``git init --bare`` on a path, with helpers to rewind a branch (a rollback) and a
  ``pre-receive`` hook that refuses blobs over a size (a forge's file-size limit).
* :class:`GitDaemon` — ``git daemon --enable=receive-pack`` (no auth).
* :class:`GitHttpServer` — ``git http-backend`` behind a small Basic-auth ``http.server``: request bodies
  are de-chunked, the CGI ``Status:`` is relayed, every request is logged (method, path, status, user —
  never the Authorization header) to a file the tests can grep; ``delay`` slows requests down so a test
  can look at the git child while a push runs.
"""

from __future__ import annotations

import base64
import hmac
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import IO, Any

__all__ = ["BareRepo", "GitDaemon", "GitHttpServer", "free_port", "git", "vexrun_argv"]

#: Starts the vexrun CLI with the signing and sync command groups registered even where the CLI does not
#: list them yet (a no-op once ``vexrun.cli.COMMAND_MODULES`` names them).
_BOOT = """
import importlib
from vexrun.cli import cli, main
for name in ("keys", "sync"):
    for command in importlib.import_module("vexrun.cli." + name).COMMANDS:
        cli.commands.setdefault(command.name, command)
main()
"""


def vexrun_argv(*args: str) -> list[str]:
    """argv that runs ``vexrun ARGS`` in a child Python, the way a user runs it."""
    import sys

    return [sys.executable, "-c", _BOOT, *args]


_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_COUNT", "GIT_CONFIG_PARAMETERS")


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _ENV_DROP and not k.startswith("GIT_CONFIG_")}
    env["GIT_TERMINAL_PROMPT"] = "0"
    return env


def git(*args: str, cwd: Path | None = None, check: bool = True) -> str:
    """Run git (for test set-up) and return stdout."""
    proc = subprocess.run(["git", *args], cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args[:3])} failed: {proc.stderr.strip()[-500:]}")
    return proc.stdout


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


_HOOK = """#!/bin/sh
# Emulates a forge's file-size limit: refuse any pushed blob larger than {limit} bytes.
zero=0000000000000000000000000000000000000000
status=0
while read old new ref; do
  [ "$new" = "$zero" ] && continue
  if [ "$old" = "$zero" ]; then range="$new"; else range="$old..$new"; fi
  big=$(git rev-list --objects $range | git cat-file --batch-check='%(objecttype) %(objectsize) %(rest)' \\
        | awk -v lim={limit} '$1 == "blob" && $2 > lim {{ print $3 " is " $2 " bytes" }}')
  if [ -n "$big" ]; then
    echo "error: this forge refuses files over {limit} bytes:" >&2
    echo "$big" | head -5 >&2
    status=1
  fi
done
exit $status
"""


class BareRepo:
    """A bare repository on disk that tests push to, rewind and inspect."""

    def __init__(self, path: Path, branch: str = "main", *, keep_packs: bool = False) -> None:
        """``keep_packs``: keep every pushed pack as it arrives, as large forges do, instead of git's default
        of exploding pushes of fewer than 100 objects into (recompressed) loose objects."""
        self.path = path
        self.branch = branch
        git("init", "--quiet", "--bare", "-b", branch, str(path))
        if keep_packs:
            git("config", "receive.unpackLimit", "1", cwd=path)
        git("symbolic-ref", "HEAD", f"refs/heads/{branch}", cwd=path)
        git("config", "http.receivepack", "true", cwd=path)
        git("config", "receive.denyNonFastForwards", "false", cwd=path)

    @property
    def url(self) -> str:
        return str(self.path)

    def set_size_limit(self, limit: int | None) -> None:
        hook = self.path / "hooks" / "pre-receive"
        if limit is None:
            hook.unlink(missing_ok=True)
            return
        hook.write_text(_HOOK.format(limit=int(limit)), encoding="ascii")
        hook.chmod(0o755)

    def head(self) -> str:
        return git("rev-parse", f"refs/heads/{self.branch}", cwd=self.path).strip()

    def history(self) -> list[str]:
        """Commits of the branch, newest first."""
        return git("rev-list", "--first-parent", f"refs/heads/{self.branch}", cwd=self.path).split()

    def rewind(self, commit: str) -> None:
        """Point the branch at an older commit: what a forge serving a rolled-back copy looks like."""
        git("update-ref", f"refs/heads/{self.branch}", commit, cwd=self.path)

    def show(self, commit: str, path: str) -> bytes:
        proc = subprocess.run(
            ["git", "show", f"{commit}:{path}"], cwd=self.path, env=_env(), capture_output=True, timeout=60, check=True
        )
        return proc.stdout


class _Server:
    proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class GitDaemon(_Server):
    """``git daemon`` serving every repository under ``base`` with push enabled, at ``url_for(name)``."""

    def __init__(self, base: Path, log_path: Path | None = None) -> None:
        self.base = base
        self.port = 0
        self.log_path = log_path or base / "git-daemon.log"
        self._log: IO[bytes] | None = None

    def url_for(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        self._log = open(self.log_path, "ab")
        for _ in range(5):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [
                    "git", "daemon", "--listen=127.0.0.1", f"--port={self.port}", f"--base-path={self.base}",
                    "--export-all", "--enable=receive-pack", "--max-connections=8", "--reuseaddr", "--verbose",
                    str(self.base),
                ],
                env=_env(), stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            try:
                _wait_port(self.port, self.proc)
                return
            except RuntimeError:
                self.stop(close_log=False)
        raise RuntimeError("git daemon did not start")

    def stop(self, close_log: bool = True) -> None:
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    os.killpg(self.proc.pid, signal.SIGTERM)  # the daemon and the children it forked
                except ProcessLookupError:
                    pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.proc = None
        if close_log and self._log is not None:
            self._log.close()
            self._log = None


class _Handler(BaseHTTPRequestHandler):
    server: _HttpServer
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self._handle()

    def do_POST(self) -> None:  # noqa: N802
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass  # everything is logged by _log below, without headers

    def _log(self, status: int, user: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {self.command} {self.path} {status} user={user or '-'}\n"
        with self.server.log_lock:
            with open(self.server.log_path, "a", encoding="utf-8") as fh:
                fh.write(line)

    def _user(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(header[6:]).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        if not hmac.compare_digest(password.encode(), self.server.token.encode()):
            return None
        if self.server.username is not None and user != self.server.username:
            return None
        return user or "-"

    def _body(self, sink: IO[bytes]) -> None:
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                while True:
                    size_line = self.rfile.readline(1024)
                    size = int(size_line.split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                            pass
                        break
                    remaining = size
                    while remaining:
                        chunk = self.rfile.read(min(remaining, 1 << 20))
                        if not chunk:
                            return
                        sink.write(chunk)
                        remaining -= len(chunk)
                    self.rfile.readline(1024)
            else:
                remaining = int(self.headers.get("Content-Length") or 0)
                while remaining:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        return
                    sink.write(chunk)
                    remaining -= len(chunk)
        except (BrokenPipeError, ValueError):
            pass
        finally:
            try:
                sink.close()
            except BrokenPipeError:
                pass

    def _handle(self) -> None:
        srv = self.server
        if srv.delay:
            time.sleep(srv.delay)
        user = self._user()
        if user is None:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="vexrun test git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            self._log(401, "")
            return
        path, _, query = self.path.partition("?")
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "GIT_PROJECT_ROOT": str(srv.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "REMOTE_USER": user,
            "REMOTE_ADDR": "127.0.0.1",
            "REQUEST_METHOD": self.command,
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
        }
        if self.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
        if self.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
        with open(srv.log_path, "ab") as errlog:
            proc = subprocess.Popen(
                ["git", "http-backend"], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog
            )
            assert proc.stdin is not None and proc.stdout is not None
            feeder = threading.Thread(target=self._body, args=(proc.stdin,), daemon=True)
            feeder.start()
            status, headers = 200, []
            with proc.stdout:
                while True:
                    line = proc.stdout.readline()
                    if not line or line in (b"\r\n", b"\n"):
                        break
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.lower() == "status":
                        status = int(value.strip().split()[0])
                    else:
                        headers.append((name.strip(), value.strip()))
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.end_headers()
                shutil.copyfileobj(proc.stdout, self.wfile, 1 << 16)
            feeder.join(timeout=60)
            proc.wait(timeout=60)
        self._log(status, user)


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    root: Path
    token: str
    username: str | None
    log_path: Path
    log_lock: threading.Lock
    delay: float


class GitHttpServer(_Server):
    """Smart HTTP with Basic auth (password = ``token``; user checked if ``username`` is given)."""

    def __init__(
        self, root: Path, *, token: str, username: str | None = None, log_path: Path | None = None, delay: float = 0
    ) -> None:
        self.root = root
        self.token = token
        self.username = username
        self.log_path = log_path or root / "http-server.log"
        self.delay = delay
        self.httpd: _HttpServer | None = None
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self.httpd is not None
        return int(self.httpd.server_address[1])

    def url_for(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}"

    def start(self) -> None:
        httpd = _HttpServer(("127.0.0.1", 0), _Handler)
        httpd.root, httpd.token, httpd.username = self.root, self.token, self.username
        httpd.log_path, httpd.log_lock, httpd.delay = self.log_path, threading.Lock(), self.delay
        self.log_path.touch()
        self.httpd = httpd
        self.thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self.thread.start()

    def set_delay(self, delay: float) -> None:
        if self.httpd is not None:
            self.httpd.delay = delay

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None
        if self.thread is not None:
            self.thread.join(timeout=10)
            self.thread = None
