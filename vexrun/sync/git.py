"""A small wrapper around the ``git`` CLI: explicit timeouts, and the HTTPS token passed only through an
environment-only credential helper.

Each git child runs with::

    GIT_TERMINAL_PROMPT=0
    GIT_CONFIG_COUNT=2
    GIT_CONFIG_KEY_0=credential.helper  GIT_CONFIG_VALUE_0=            (clears inherited helpers)
    GIT_CONFIG_KEY_1=credential.helper  GIT_CONFIG_VALUE_1=!f() { test "$1" = get && printf ...; }; f
    VEXRUN_GIT_USER=<user>  VEXRUN_GIT_TOKEN=<token>

so the token is only in the child's environment (``/proc/<pid>/environ``: same user and root), never in
argv (``/proc/<pid>/cmdline`` is world-readable), the URL, ``.git/config`` or a log. The helper answers
``get`` only, so git never stores the token, and the empty first entry stops the user's own helpers
(``store``) from being handed it after a successful push. Without a token nothing is set and the user's
own git credential helpers apply. Captured output is redacted (the token, any URL userinfo) before it is
logged or raised.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..redact import redact, register_secret
from .errors import GitAuthFailed, GitError

__all__ = ["HELPER", "Git", "GitResult", "MIN_GIT", "git_version", "scrub"]

HELPER = (
    '!f() { test "$1" = get && printf \'username=%s\\npassword=%s\\n\' "$VEXRUN_GIT_USER" "$VEXRUN_GIT_TOKEN"; }; f'
)
MIN_GIT = (2, 31)
NETWORK_TIMEOUT = float(os.environ.get("VEXRUN_GIT_TIMEOUT", "900"))
LOCAL_TIMEOUT = 300.0
_USERINFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")
#: Settings for the sync clone: ciphertext does not compress, and delta search on it is wasted time.
REPO_CONFIG = {
    "core.compression": "0",
    "core.looseCompression": "0",
    "pack.compression": "0",
    "pack.window": "0",
    "core.bigFileThreshold": "1m",
    # bounded memory: git maps pack files in windows; the defaults let a push map the whole backup
    "core.packedGitWindowSize": "16m",
    "core.packedGitLimit": "64m",
    "core.deltaBaseCacheLimit": "16m",
    "pack.threads": "1",
    "gc.auto": "0",
    "core.autocrlf": "false",
    "commit.gpgSign": "false",
    "user.name": "vexrun sync",
    "user.email": "sync@vexrun.invalid",
}
#: The settings above that matter before a clone exists (passed with ``-c`` to ``git clone``).
CLONE_CONFIG = [
    f"{key}={REPO_CONFIG[key]}"
    for key in ("core.compression", "core.bigFileThreshold", "core.packedGitWindowSize", "core.packedGitLimit")
]
#: Test hook: called with each started git child (tests read /proc/<pid>/cmdline through it).
on_spawn: list[Callable[[subprocess.Popen[bytes]], None]] = []


def _inherited_risk(name: str) -> bool:
    """Variables a parent (a git hook, a CI step) may set that would point git elsewhere or smuggle config."""
    return (
        name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY", "GIT_NAMESPACE")
        or name in ("GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_CONFIG_PARAMETERS", "GIT_CONFIG_COUNT", "GIT_PREFIX")
        or name.startswith(("GIT_CONFIG_KEY_", "GIT_CONFIG_VALUE_", "VEXRUN_GIT_"))
    )


def scrub(text: str) -> str:
    """Remove URL userinfo and every registered secret."""
    return redact(_USERINFO.sub(r"\1***@", text))


@dataclass
class GitResult:
    code: int
    out: str
    err: str


def git_version() -> tuple[int, int]:
    try:
        out = subprocess.run(["git", "--version"], capture_output=True, text=True, timeout=30, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        raise GitError("the git command is not available", hint="install git >= 2.31") from None
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


class Git:
    """Run git in ``cwd`` with the credential environment above (when a token is given)."""

    def __init__(self, cwd: Path | None = None, *, token: str | None = None, username: str | None = None) -> None:
        self.cwd = cwd
        self.token = token or None
        self.username = username or "x-access-token"
        register_secret(self.token)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not _inherited_risk(k)}
        env["GIT_TERMINAL_PROMPT"] = "0"
        env["GIT_ASKPASS"] = ""
        env["SSH_ASKPASS"] = ""
        env["LC_ALL"] = "C"
        if self.token:
            if git_version() < MIN_GIT:
                raise GitError("passing the token needs git >= 2.31 (GIT_CONFIG_COUNT)", hint="upgrade git")
            env.update(
                {
                    "GIT_CONFIG_COUNT": "2",
                    "GIT_CONFIG_KEY_0": "credential.helper",
                    "GIT_CONFIG_VALUE_0": "",
                    "GIT_CONFIG_KEY_1": "credential.helper",
                    "GIT_CONFIG_VALUE_1": HELPER,
                    "VEXRUN_GIT_USER": self.username,
                    "VEXRUN_GIT_TOKEN": self.token,
                }
            )
        return env

    def run(
        self,
        args: Sequence[str],
        *,
        timeout: float = LOCAL_TIMEOUT,
        check: bool = True,
        what: str | None = None,
        input_bytes: bytes | None = None,
        text: bool = True,
    ) -> GitResult:
        """Run ``git ARGS``; on failure raise :class:`GitError` (or :class:`GitAuthFailed`) with scrubbed text."""
        cmd = ["git", *args]
        try:
            proc = subprocess.Popen(
                cmd,
                cwd=self.cwd,
                env=self.env(),
                stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        except OSError as exc:
            raise self._spawn_error(exc) from None
        for hook in on_spawn:
            hook(proc)
        try:
            out, err = proc.communicate(input_bytes, timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise GitError(f"git {what or args[0]} timed out after {timeout:.0f} s") from None
        result = GitResult(
            proc.returncode,
            out.decode("utf-8", "replace") if text else out.decode("latin-1"),
            scrub(err.decode("utf-8", "replace")),
        )
        if check and result.code != 0:
            raise self.error(result, what or args[0])
        return result

    def _spawn_error(self, exc: OSError) -> GitError:
        if self.cwd is not None and not Path(self.cwd).is_dir():
            return GitError(f"{self.cwd}: the sync clone is missing", hint="vexrun sync init --restore URL again")
        return GitError(f"cannot run git ({exc.strerror or exc})", hint="install git >= 2.31")

    def run_bytes(
        self,
        args: Sequence[str],
        *,
        timeout: float = LOCAL_TIMEOUT,
        what: str | None = None,
        input_bytes: bytes | None = None,
    ) -> bytes:
        """Run git and return its raw stdout (``git show`` of binary files, ``cat-file --batch``)."""
        cmd = ["git", *args]
        try:
            proc = subprocess.run(
                cmd, cwd=self.cwd, env=self.env(), capture_output=True, timeout=timeout, check=False, input=input_bytes
            )
        except OSError as exc:
            raise self._spawn_error(exc) from None
        except subprocess.TimeoutExpired:
            raise GitError(f"git {what or args[0]} timed out after {timeout:.0f} s") from None
        if proc.returncode != 0:
            raise self.error(
                GitResult(proc.returncode, "", scrub(proc.stderr.decode("utf-8", "replace"))), what or args[0]
            )
        return proc.stdout

    @staticmethod
    def error(result: GitResult, what: str) -> GitError | GitAuthFailed:
        lines = [ln for ln in result.err.strip().splitlines() if ln.strip()]
        tail = "; ".join(lines[-4:]) or f"exit {result.code}"
        low = result.err.lower()
        if "authentication failed" in low or "could not read username" in low or "403" in low and "http" in low:
            return GitAuthFailed(
                f"git {what}: the server refused the credential ({tail})",
                hint="check VEXRUN_GIT_TOKEN and the username for your forge",
            )
        return GitError(f"git {what} failed: {tail}")
