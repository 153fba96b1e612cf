"""Private files: created 0600 in 0700 directories whatever the umask, never through a symlink, and
refused on load when group/other can read them.

Every directory vexrun creates on the way to a private one (``$XDG_CONFIG_HOME`` itself when it is missing,
``…/vexrun``, ``…/vexrun/keys``) is made 0700, and vexrun's own roots (``$XDG_CONFIG_HOME/vexrun``,
``$XDG_STATE_HOME/vexrun``) are tightened to 0700 when an older vexrun left them open. ``mkdir``'s mode is
filtered by the umask, so each new directory is also ``chmod``-ed.

On Windows there are no POSIX modes: the checks are skipped there (use the OS keyring instead).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KeyFileError

__all__ = [
    "ensure_private_dir",
    "read_at_most",
    "read_private",
    "write_private",
    "write_private_atomic",
    "write_public",
]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POSIX = os.name == "posix"


def _tighten(path: Path) -> None:
    """Make an existing directory of ours 0700 (a symlink is refused; one owned by someone else is left)."""
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        raise KeyFileError(f"{path}: is a symlink; refusing to keep keys there")
    if not stat.S_ISDIR(st.st_mode):
        raise KeyFileError(f"{path}: is not a directory")
    if st.st_mode & 0o077 and st.st_uid == os.getuid():
        os.chmod(path, 0o700)


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` and every missing parent with mode 0700 (whatever the umask), and make ``path`` 0700."""
    if not _POSIX:
        path.mkdir(parents=True, exist_ok=True)
        return path
    missing = []
    probe = path
    while not os.path.lexists(probe) and probe.parent != probe:
        missing.append(probe)
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:  # made meanwhile by another process: checked below like any other
            continue
        os.chmod(directory, 0o700)
    _tighten(path)
    from .paths import config_dir, state_dir

    for root in (config_dir(), state_dir()):
        if root in path.parents and os.path.isdir(root) and not os.path.islink(root):
            _tighten(root)  # a symlinked root (dotfiles managers do that) is the user's business
    return path


def _write_fd(fd: int, data: bytes, mode: int = 0o600) -> None:
    try:
        if _POSIX:
            os.fchmod(fd, mode)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_private(path: Path, data: bytes) -> Path:
    """Create ``path`` exclusively (``O_CREAT|O_EXCL|O_NOFOLLOW``) with mode 0600 and write ``data``."""
    ensure_private_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite it") from None
    _write_fd(fd, data)
    return path


def write_private_atomic(path: Path, data: bytes) -> Path:
    """Replace ``path`` atomically with a 0600 file holding ``data`` (temp file, fsync, rename)."""
    ensure_private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    _write_fd(fd, data)
    os.replace(tmp, path)
    return path


def write_public(path: Path, data: bytes) -> Path:
    """Replace ``path`` atomically with a 0644 file holding ``data``: a public key, readable by anyone but
    writable only by its owner whatever the umask (a trusted key others could rewrite would be no trust)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.unlink()
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o644)
    _write_fd(fd, data, 0o644)
    os.replace(tmp, path)
    return path


def read_at_most(fd: int, limit: int) -> bytes:
    """Up to ``limit + 1`` bytes from ``fd``: a result longer than ``limit`` means the file is too large (the
    rest is never read, so a huge or endless file costs nothing)."""
    data = b""
    while len(data) <= limit:
        chunk = os.read(fd, limit + 1 - len(data))
        if not chunk:
            break
        data += chunk
    return data


def read_private(path: Path, *, max_bytes: int = 64 * 1024, what: str = "key file") -> bytes:
    """Read a private file; refuse symlinks, non-regular files, group/other access and oversize files."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        raise KeyFileError(f"{path}: no such {what}") from None
    except OSError as exc:
        if _NOFOLLOW and path.is_symlink():
            raise KeyFileError(f"{path}: is a symlink; refusing to read a {what} through it") from None
        raise KeyFileError(f"{path}: cannot read the {what} ({exc.strerror or exc})") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeyFileError(f"{path}: not a regular file")
        if _POSIX and st.st_mode & 0o077:
            raise KeyFileError(
                f"{path}: the {what} is accessible by group or others (mode {stat.S_IMODE(st.st_mode):o})",
                hint=f"chmod 600 {path}",
            )
        data = read_at_most(fd, max_bytes)
        if len(data) > max_bytes:
            raise KeyFileError(f"{path}: the {what} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)
