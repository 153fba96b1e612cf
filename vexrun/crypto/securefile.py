"""Private files: created 0600 in 0700 directories whatever the umask, never through a symlink, and
refused on load when group/other can read them.

On Windows there are no POSIX modes: the checks are skipped there (use the OS keyring instead).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from .errors import KeyFileError

__all__ = ["ensure_private_dir", "read_private", "write_private", "write_private_atomic"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_POSIX = os.name == "posix"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if _POSIX:
        st = path.lstat()
        if stat.S_ISLNK(st.st_mode):
            raise KeyFileError(f"{path}: is a symlink; refusing to keep keys there")
        if st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.chmod(path, 0o700)
    return path


def _write_fd(fd: int, data: bytes) -> None:
    try:
        if _POSIX:
            os.fchmod(fd, 0o600)
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
        data = b""
        while len(data) <= max_bytes:
            chunk = os.read(fd, max_bytes + 1 - len(data))
            if not chunk:
                break
            data += chunk
        if len(data) > max_bytes:
            raise KeyFileError(f"{path}: the {what} is larger than {max_bytes} bytes")
        return data
    finally:
        os.close(fd)
