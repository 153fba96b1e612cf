"""Streamed digests of a file with flat memory: BLAKE3 (all cores), optional SHA-256, optional line count."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BLOCK", "FileDigest", "count_lines", "digest_file"]

#: 8 MiB reads: large enough for BLAKE3's threads, small enough for a flat RSS.
BLOCK = 8 * 1024 * 1024


@dataclass(frozen=True)
class FileDigest:
    size: int
    blake3: str
    sha256: str | None = None


def digest_file(path: Path, *, sha256: bool = False, block: int = BLOCK) -> FileDigest:
    """BLAKE3 (and SHA-256 if asked) of the file's bytes. Raises ``OSError`` as is."""
    import blake3

    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    s = None
    if sha256:
        import hashlib

        s = hashlib.sha256()
    buf = bytearray(block)
    view = memoryview(buf)
    size = 0
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            chunk = view[:n]
            h.update(chunk)
            if s is not None:
                s.update(chunk)
            size += n
    return FileDigest(size, h.hexdigest(), s.hexdigest() if s is not None else None)


def count_lines(path: Path, *, block: int = BLOCK) -> int:
    """Records as lines: newline-terminated lines plus a final unterminated one."""
    buf = bytearray(block)
    view = memoryview(buf)
    lines = 0
    last = b"\n"
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            lines += buf.count(b"\n", 0, n)
            last = bytes(view[n - 1 : n])
    return lines + (0 if last == b"\n" else 1)


def file_size(path: Path) -> int:
    return os.stat(path).st_size
