"""Opening ``.vmig.jsonl`` / ``.vmig.jsonl.gz`` files and walking their lines with bounded memory."""

from __future__ import annotations

import gzip
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from ..errors import UsageError

__all__ = [
    "DECOMPRESS_ERRORS",
    "DEFAULT_MAX_LINE_BYTES",
    "GZIP_MAGIC",
    "TOO_LONG",
    "check_readable",
    "is_gzip",
    "iter_lines",
    "open_data",
    "sniff",
]

GZIP_MAGIC = b"\x1f\x8b"
#: Lines longer than this are reported (``line-too-long``) and skipped without being held in memory.
DEFAULT_MAX_LINE_BYTES = 64 * 1024 * 1024
#: Yielded in place of a line that exceeded the limit.
TOO_LONG = b""
_BLOCK = 1 << 20
#: What a corrupt or truncated gzip stream raises while it is read.
DECOMPRESS_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)
_SNIFF_BYTES = 1 << 16
_BOM = b"\xef\xbb\xbf"
#: A key only one kind of conversation export has near the start of its first conversation → its source type.
_EXPORT_KEYS = (
    (b'"mapping"', "ChatGPT", "chatgpt-export"),
    (b'"chat_messages"', "Claude", "claude-export"),
    (b'"messages"', "Claude (Anthropic API shape)", "claude-export"),
)


def check_readable(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a Path if it is a readable regular file, else raise :class:`UsageError`."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise UsageError(f"{p}: no such file") from None
    except PermissionError:
        raise UsageError(f"{p}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{p}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(st.st_mode):
        raise UsageError(f"{p}: is a directory, not a .vmig.jsonl file")
    if not stat.S_ISREG(st.st_mode):
        # a device or FIFO may never end (/dev/zero) or never start (a FIFO without a writer)
        raise UsageError(f"{p}: not a regular file (a device, FIFO or socket), not a .vmig.jsonl file")
    if not os.access(p, os.R_OK):
        raise UsageError(f"{p}: permission denied")
    return p


def is_gzip(path: Path) -> bool:
    """True if the file starts with the gzip magic bytes (whatever its name)."""
    with open(path, "rb") as fh:
        return fh.read(2) == GZIP_MAGIC


def open_data(path: Path) -> BinaryIO:
    """Open a data file for reading, decompressing gzip transparently."""
    try:
        if is_gzip(path):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return open(path, "rb", buffering=_BLOCK)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None


def iter_lines(
    fh: BinaryIO, *, limit: int | None = None, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
) -> Iterator[bytes]:
    """Yield the lines of ``fh`` (with their newline). A line longer than ``max_line_bytes`` is skipped
    without being held in memory and yielded as :data:`TOO_LONG`. With ``limit``, stop once that many
    bytes have been consumed (the line that crosses the limit is the last one yielded)."""
    readline = fh.readline
    consumed = 0
    while limit is None or consumed < limit:
        line = readline(max_line_bytes)
        if not line:
            return
        consumed += len(line)
        if len(line) >= max_line_bytes and not line.endswith(b"\n"):
            # Skip the rest of the oversized line in bounded blocks.
            while True:
                rest = readline(_BLOCK)
                consumed += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            yield TOO_LONG
            continue
        yield line


def sniff(path: Path) -> str | None:
    """What ``path`` clearly is instead of a ``.vmig.jsonl`` file (a conversation export, naming the source
    ``type:`` that reads it; a zip archive; binary data), or None when it starts the way JSON lines do. Reads at
    most 64 KiB (decompressed, for gzip). A text file that merely has a bad first line is not refused here: its
    lines are reported one by one."""
    try:
        with open_data(path) as fh:
            head = fh.read(_SNIFF_BYTES)
    except DECOMPRESS_ERRORS:
        return None  # reading the file reports it, with the line
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return (
            "a zip archive, not JSON lines (a conversation export's .zip is read with `type: claude-export` or "
            "`type: chatgpt-export`)"
        )
    start = len(head) - len(head.removeprefix(_BOM).lstrip(b" \t\r\n"))
    body = head[start:]
    if body.startswith(b"["):
        for key, label, kind in _EXPORT_KEYS:
            if key in body:
                return f"a {label} conversation export (a JSON array), not JSON lines: read it with `type: {kind}`"
        return "a JSON array, not JSON lines (one JSON object per line)"
    if body.startswith(b"{"):
        return None
    line = body.split(b"\n", 1)[0]
    nul = line.find(b"\x00")
    if nul >= 0:
        return f"binary data (a NUL byte at byte {start + nul}), not JSON lines"
    try:
        line.decode("utf-8")
    except UnicodeDecodeError as exc:
        cut_at_end = len(line) == len(body) and exc.start >= len(line) - 3  # a character cut by the 64 KiB read
        if not cut_at_end:
            return f"binary data (not UTF-8 at byte {start + exc.start}), not JSON lines"
    return None
