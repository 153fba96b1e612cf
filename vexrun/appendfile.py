"""An append-only file that can be cut back to a committed length: the building block of resumable
file outputs (the ``.vmig.jsonl`` sink, the rejects file). The checkpoint stores the committed length
with every batch; on resume the file is truncated to it, so a half-written batch leaves no trace."""

from __future__ import annotations

import os
from pathlib import Path

import blake3

from .errors import UsageError

__all__ = ["AppendFile"]


class AppendFile:
    def __init__(self, path: Path, committed: int | None) -> None:
        """Open ``path``: a new empty file when ``committed`` is None, else the existing file cut back to
        ``committed`` bytes (and hashed so far, so the final checksum covers the whole file)."""
        self.path = path
        self.hasher = blake3.blake3(max_threads=1)
        if committed is None or (committed == 0 and not path.exists()):
            self.fh = open(path, "wb")  # noqa: SIM115 - closed in close()
            self.size = 0
            return
        if not path.exists() or path.stat().st_size < committed:
            have = path.stat().st_size if path.exists() else 0
            raise UsageError(
                f"{path}: holds {have:,} bytes but the checkpoint committed {committed:,}; "
                "the output was changed outside vexrun (run again with --fresh)"
            )
        self.fh = open(path, "r+b")  # type: ignore[assignment]  # noqa: SIM115
        self.fh.truncate(committed)
        remaining = committed
        while remaining:
            chunk = self.fh.read(min(remaining, 1 << 22))
            self.hasher.update(chunk)
            remaining -= len(chunk)
        self.fh.seek(committed)
        self.size = committed

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.hasher.update(data)
        self.size += len(data)

    def sync(self) -> None:
        self.fh.flush()
        os.fsync(self.fh.fileno())

    def close(self) -> None:
        if not self.fh.closed:
            self.fh.close()
