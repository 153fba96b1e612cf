"""Errors of ``vexrun sync``; each carries its exit code (documented in ``vexrun sync --help``).

::

    SyncError              exit 1  base: a git failure, an unusable remote
    ├── BackupDamaged      exit 1  a missing or damaged object, manifest or config in the backup
    ├── RemoteRefused      exit 1  the forge refused the push (a pre-receive hook, a size limit)
    ├── GitAuthFailed      exit 1  the git credential was refused (ConnectError semantics)
    ├── NotInitialised     exit 2  no sync repository in the state directory
    ├── RollbackRefused    exit 7  the remote is older than what this machine last saw
    ├── ForkDetected       exit 8  the remote's history does not contain what this machine last saw
    ├── PullFirst          exit 9  the remote has a newer generation (or changed during the push)
    └── ShrinkRefused      exit 10 the push would drop more records than ``max_shrink`` allows

A wrong passphrase or recovery code is :class:`vexrun.crypto.errors.WrongPassphrase` (exit 6).
"""

from __future__ import annotations

from ..errors import ConnectError, Terminal, Transient, VexrunError

__all__ = [
    "BackupDamaged",
    "ForkDetected",
    "GitAuthFailed",
    "GitError",
    "NotInitialised",
    "PullFirst",
    "RemoteRefused",
    "RollbackRefused",
    "ShrinkRefused",
    "SyncError",
]


class SyncError(VexrunError):
    """Base of sync errors."""


class GitError(SyncError, Transient):
    """A git command failed (network, timeout, an unexpected answer)."""


class BackupDamaged(SyncError, Terminal):
    """The backup repository is missing a file or holds a damaged one."""


class RemoteRefused(SyncError, Terminal):
    """The remote refused the push (pre-receive hook, size limit, protected branch)."""


class GitAuthFailed(ConnectError, Terminal):
    """The git server refused the credential."""


class NotInitialised(SyncError, Terminal):
    """The state directory holds no sync repository."""

    exit_code = 2


class RollbackRefused(SyncError, Terminal):
    """The remote serves an older generation than this machine already saw."""

    exit_code = 7


class ForkDetected(SyncError, Terminal):
    """Two different manifests claim to follow what this machine saw: a fork or equivocation."""

    exit_code = 8


class PullFirst(SyncError, Terminal):
    """The remote holds a generation this machine has not pulled; pushing would overwrite it."""

    exit_code = 9


class ShrinkRefused(SyncError, Terminal):
    """The push would shrink the backup's record count by more than ``max_shrink`` (an empty or failed
    export replacing a good backup); ``--allow-shrink`` or a higher ``--max-shrink`` lets it through."""

    exit_code = 10
