"""Stream the top-level JSON array of an export, one conversation at a time.

A ``conversations.json`` can be hundreds of MB on one line. Loading it whole costs several times its size in
Python objects, so this module finds where each top-level element starts and ends and hands only that slice
to ``orjson``. Finding the boundaries is vectorised with numpy (in the spirit of simdjson's first stage):
per chunk, locate quotes and brackets, drop escaped quotes, ignore brackets inside strings, and take a
running sum of the bracket depth. Elements are then the spans where the depth goes 1 → 2 → 1. Measured on a
200 MB ChatGPT-shaped export (``bench/bench_import.py``): ~320 MB/s for the split alone, ~175 MB/s with
``orjson`` parsing each element, peak RSS ~85 MB (8 MB chunks); ``ijson``'s C backend builds the same objects
at ~140 MB/s, and a regex splitter reached ~95 MB/s. Loading the file whole with ``orjson`` took 1.3 GB.

What the reader holds is bounded whatever the input: one conversation at a time, at most ``max_value_bytes``
of JSON (a larger one is refused with its index and offset before it is parsed), and out of a zip at most
``max_member_bytes`` inflated (the declared size is checked before anything is inflated, and the bytes actually
inflated are counted), so a 1 MB zip that inflates to gigabytes ends at once with the member and the limit named.
A zip archive may hold at most :data:`MAX_ZIP_MEMBERS` entries (counted from its end record, before the
central directory is loaded), and ``conversations.json`` is looked for at most :data:`MAX_MEMBER_DEPTH` folders
deep, in entries whose names hold no ``..`` and are not absolute.

Everything the importer reports about a broken file carries the file name, the conversation index and the
absolute byte offset. An element ``orjson`` refuses only because of a lone surrogate escape (``"\\ud800"``,
which JSON allows but UTF-8 cannot carry) is parsed by the standard library instead and the lone surrogates
are replaced by U+FFFD; everything else keeps every code point.
"""

from __future__ import annotations

import json
import re
import struct
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, cast

import numpy as np
import orjson

from ...errors import FormatError, UsageError

__all__ = [
    "DEFAULT_MAX_MEMBER_BYTES",
    "DEFAULT_MAX_VALUE_BYTES",
    "MAX_MEMBER_DEPTH",
    "MAX_ZIP_MEMBERS",
    "Element",
    "ExportFile",
    "iter_elements",
    "locate",
    "open_export",
    "parse_element",
]

#: The most a zip's ``conversations.json`` may inflate to (``max_member_bytes``). The largest real exports we
#: know of are a few GB; the file is streamed, so this bounds time (~25 s at the reader's speed), not memory.
DEFAULT_MAX_MEMBER_BYTES = 4 * 1024**3
#: The largest single conversation, in bytes of JSON (``max_value_bytes``). One conversation is held and parsed
#: whole (~3-5x its size in Python objects); real ones are KB to a few MB, attachments included.
DEFAULT_MAX_VALUE_BYTES = 64 * 1024**2
#: Entries a zip export may hold (a real one has conversations.json and some thousands of attachments).
MAX_ZIP_MEMBERS = 100_000
#: How many folders deep ``conversations.json`` is looked for inside a zip (an export re-zipped in its folder
#: is one).
MAX_MEMBER_DEPTH = 3
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
#: What inflating a damaged or truncated member raises.
_INFLATE_ERRORS: tuple[type[Exception], ...] = (zipfile.BadZipFile, EOFError, zlib.error)
try:
    import lzma

    _INFLATE_ERRORS += (lzma.LZMAError,)
except ImportError:  # pragma: no cover - a Python built without lzma
    pass

CHUNK_BYTES = 1 << 23
_QUOTE, _BACKSLASH = 0x22, 0x5C
_OPEN = (0x7B, 0x5B)  # { [
_CLOSE = (0x7D, 0x5D)  # } ]
_WS = b" \t\r\n"
_GAP = re.compile(rb"[ \t\r\n,]*+")
_LONE = re.compile("[\ud800-\udfff]")
_MEMBER = "conversations.json"


@dataclass(frozen=True, slots=True)
class ExportFile:
    """Where an export's ``conversations.json`` is: a plain file, or a member of a zip archive."""

    path: Path
    member: str | None = None
    #: a zip member may inflate to at most this many bytes
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES
    #: one top-level element (a conversation) may be at most this many bytes of JSON
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES

    @property
    def name(self) -> str:
        """How errors name the file."""
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    @property
    def seekable(self) -> bool:
        return self.member is None


@dataclass(frozen=True, slots=True)
class Element:
    """One top-level array element: its position in the array, its byte offset and its raw JSON."""

    index: int
    offset: int
    raw: bytes


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:,} bytes"


def locate(
    path: Path,
    shown: str,
    *,
    max_member_bytes: int = DEFAULT_MAX_MEMBER_BYTES,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> ExportFile:
    """Resolve what the user pointed at: ``conversations.json``, the unpacked export folder holding it, or
    the export's ``.zip``. ``shown`` is the path as the recipe wrote it, for error messages."""
    try:
        if not path.exists():
            raise UsageError(f"{shown}: no such file")
        if path.is_dir():
            inner = path / _MEMBER
            if not inner.is_file():
                raise UsageError(f"{shown}: no {_MEMBER} in this folder")
            return ExportFile(inner, max_member_bytes=max_member_bytes, max_value_bytes=max_value_bytes)
        if not path.is_file():
            raise UsageError(f"{shown}: not a file")
        with open(path, "rb") as fh:
            magic = fh.read(4)
        if magic in _ZIP_MAGIC or zipfile.is_zipfile(path):
            return _locate_in_zip(path, shown, max_member_bytes, max_value_bytes)
    except PermissionError:
        raise UsageError(f"{shown}: permission denied") from None
    except OSError as exc:
        raise UsageError(f"{shown}: cannot read ({exc.strerror or exc})") from None
    return ExportFile(path, max_member_bytes=max_member_bytes, max_value_bytes=max_value_bytes)


def _zip_entries(path: Path) -> int | None:
    """The number of entries a zip's end record declares (ZIP64 too), or None without an end record. Read
    from the last 64 KiB, so a huge central directory is never loaded to count it."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        tail_start = max(0, size - (1 << 16) - 22)
        fh.seek(tail_start)
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        entries = int(struct.unpack_from("<H", tail, at + 10)[0])
        if entries != 0xFFFF:
            return entries
        loc = at - 20  # the ZIP64 end-record locator sits right before the end record
        if loc < 0 or tail[loc : loc + 4] != b"PK\x06\x07":
            return entries
        (offset,) = struct.unpack_from("<Q", tail, loc + 8)
        fh.seek(offset)
        record = fh.read(56)
        if len(record) < 56 or record[:4] != b"PK\x06\x06":
            return entries
        return int(struct.unpack_from("<Q", record, 32)[0])


def _first_member(path: Path) -> str | None:
    """The name in the first local header of a zip (what a truncated archive still tells)."""
    with open(path, "rb") as fh:
        head = fh.read(30 + 1024)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        return None
    (length,) = struct.unpack_from("<H", head, 26)
    return head[30 : 30 + length].decode("utf-8", "replace") or None


def _locate_in_zip(path: Path, shown: str, max_member_bytes: int, max_value_bytes: int) -> ExportFile:
    entries = _zip_entries(path)
    if entries is None:
        first = _first_member(path)
        member = f"; its first member is '{first}'" if first else ""
        raise FormatError(
            f"a truncated or damaged zip archive: it has no end record (central directory){member}", location=shown
        )
    if entries > MAX_ZIP_MEMBERS:
        raise FormatError(
            f"the zip archive declares {entries:,} entries; an export holds at most {MAX_ZIP_MEMBERS:,}",
            location=shown,
        )
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as exc:
        raise FormatError(f"not a readable zip archive ({exc})", location=shown) from None
    candidates = [
        info
        for info in infos
        if not info.is_dir()
        and info.filename.rsplit("/", 1)[-1] == _MEMBER
        and info.filename.count("/") <= MAX_MEMBER_DEPTH
        and not info.filename.startswith(("/", "\\"))
        and ".." not in info.filename.replace("\\", "/").split("/")
    ]
    if not candidates:
        skipped = [i.filename for i in infos if i.filename.rsplit("/", 1)[-1] == _MEMBER and not i.is_dir()]
        why = ""
        if skipped:
            why = f" (only '{skipped[0][:200]}': deeper than {MAX_MEMBER_DEPTH} folders, or outside the archive)"
        raise FormatError(f"the archive holds no {_MEMBER}{why}", location=shown)
    info = min(candidates, key=lambda i: (i.filename.count("/"), i.filename))
    where = f"{shown}!{info.filename}"
    if info.flag_bits & 0x1:
        raise FormatError("the member is encrypted; unzip it with its password and give the folder", location=where)
    if info.compress_type not in _ZIP_METHODS:
        raise FormatError(
            f"the member uses compression method {info.compress_type}, which Python's zipfile cannot read; "
            "unzip it and give the folder",
            location=where,
        )
    if info.file_size > max_member_bytes:
        raise FormatError(
            f"the member inflates to {_size(info.file_size)}, more than max_member_bytes ({_size(max_member_bytes)})",
            location=where,
            hint="a zip bomb? for a genuine export this large, raise max_member_bytes on the source",
        )
    return ExportFile(path, info.filename, max_member_bytes=max_member_bytes, max_value_bytes=max_value_bytes)


class _Bounded:
    """A zip member's stream that refuses to inflate more than ``limit`` bytes (whatever its header said)."""

    def __init__(self, fh: IO[bytes], limit: int, name: str) -> None:
        self.fh = fh
        self.limit = limit
        self.name = name
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        room = self.limit + 1 - self.count
        data = self.fh.read(room if n < 0 else min(n, room))
        self.count += len(data)
        if self.count > self.limit:
            raise FormatError(
                f"the member inflates to more than max_member_bytes ({_size(self.limit)})",
                location=self.name,
                hint="a zip bomb? for a genuine export this large, raise max_member_bytes on the source",
            )
        return data


@contextmanager
def open_export(export: ExportFile) -> Iterator[IO[bytes]]:
    """A binary stream of the export's JSON (streamed out of the zip when it is one, at most
    ``export.max_member_bytes``). Read errors end in one :class:`FormatError` or :class:`UsageError` naming the
    file (and the member)."""
    try:
        if export.member is None:
            with open(export.path, "rb") as fh:
                yield fh
        else:
            with zipfile.ZipFile(export.path) as zf, zf.open(export.member) as fh:
                yield cast(IO[bytes], _Bounded(fh, export.max_member_bytes, export.name))
    except PermissionError:
        raise UsageError(f"{export.path}: permission denied") from None
    except IsADirectoryError:
        raise UsageError(f"{export.path}: not a file") from None
    except _INFLATE_ERRORS as exc:
        raise FormatError(f"the archive is damaged or truncated ({exc})", location=export.name) from None
    except OSError as exc:
        if export.member is not None and exc.errno is None:  # bz2's "Invalid data stream"
            raise FormatError(f"the archive is damaged or truncated ({exc})", location=export.name) from None
        raise UsageError(f"{export.name}: cannot read ({exc.strerror or exc})") from None


def _escaped(arr: np.ndarray, quotes: np.ndarray) -> np.ndarray:
    """Which of the quote positions ``quotes`` are escaped (preceded by an odd run of backslashes)."""
    prev = quotes - 1
    one = (prev >= 0) & (arr[np.maximum(prev, 0)] == _BACKSLASH)
    two = one & (prev >= 1) & (arr[np.maximum(prev - 1, 0)] == _BACKSLASH)
    escaped = one & ~two
    for k in np.flatnonzero(two).tolist():  # rare: a run of 2+ backslashes before a quote
        p, run = int(quotes[k]) - 1, 0
        while p >= 0 and arr[p] == _BACKSLASH:
            run += 1
            p -= 1
        escaped[k] = run % 2 == 1
    result: np.ndarray = escaped
    return result


class _Splitter:
    """Incremental state of the boundary search over one stream. Positions inside ``feed`` are indices
    into the current buffer; ``base`` is the absolute offset of its first byte."""

    def __init__(
        self, name: str, *, index: int, base: int, inside: bool, max_value: int = DEFAULT_MAX_VALUE_BYTES
    ) -> None:
        self.name = name
        self.max_value = max_value
        self.index = index  # index of the next element
        self.base = base
        self.buf = b""
        self.scanned = 0  # bytes at the start of buf already scanned
        self.depth = 1 if inside else 0
        self.opened = inside  # the top-level '[' was seen
        self.parity = 0  # quotes seen mod 2 (1 = inside a string)
        self.pending: int | None = None  # start of an element not yet closed
        self.gap_commas = 0  # commas seen since the last element ended
        self.first = True  # no element yet, so no comma may come before the next one
        self.closed = False

    def fail(self, message: str, at: int, hint: str | None = None) -> FormatError:
        return FormatError(f"{message} (byte {at})", location=self.name, hint=hint)

    def too_large(self, start: int) -> FormatError:
        """Conversation ``self.index``, starting at absolute byte ``start``, is past ``max_value_bytes``."""
        return self.fail(
            f"conversation {self.index} is larger than max_value_bytes ({_size(self.max_value)}); refused",
            start,
            hint="for a genuine conversation this large, raise max_value_bytes on the source",
        )

    def _gap(self, gap: bytes, at: int) -> None:
        """Bytes between elements: whitespace and commas only (one comma is checked for at the next element)."""
        m = _GAP.match(gap)
        assert m is not None
        if m.end() < len(gap):
            raise self.fail(f"conversation {self.index} is not a JSON object", at + m.end())
        self.gap_commas += gap.count(b",")
        if self.gap_commas > (0 if self.first else 1):
            raise self.fail("invalid JSON: unexpected ','", at + gap.rindex(b","))

    def feed(self, more: bytes) -> Iterator[Element]:
        buf = self.buf + more
        arr = np.frombuffer(buf, dtype=np.uint8)
        region = arr[self.scanned :]
        sp = np.flatnonzero(
            (region == _QUOTE) | (region == 0x7B) | (region == 0x7D) | (region == 0x5B) | (region == 0x5D)
        )
        sp += self.scanned
        kinds = arr[sp]
        isq = kinds == _QUOTE
        if isq.any():
            qi = np.flatnonzero(isq)
            isq[qi[_escaped(arr, sp[qi])]] = False
        qc = np.cumsum(isq, dtype=np.int64) + self.parity
        outside = (qc % 2 == 0) & ~isq
        delta = np.zeros(len(sp), dtype=np.int64)
        delta[outside & ((kinds == _OPEN[0]) | (kinds == _OPEN[1]))] = 1
        delta[outside & ((kinds == _CLOSE[0]) | (kinds == _CLOSE[1]))] = -1
        depth = np.cumsum(delta) + self.depth
        # only the events at the top two levels matter: elements opening/closing, the array opening/closing
        events = np.flatnonzero(((delta == 1) & (depth <= 2)) | ((delta == -1) & (depth <= 1)))
        mark = 0 if self.pending is None else self.pending  # start of the unchecked gap, or of the element
        for k in events.tolist():
            pos, d = int(sp[k]), int(depth[k])
            if delta[k] == 1 and d == 2:  # an element opens
                self._gap(buf[mark:pos], self.base + mark)
                if not self.first and self.gap_commas != 1:
                    raise self.fail("invalid JSON: expected ',' between conversations", self.base + pos)
                if kinds[k] != _OPEN[0]:
                    raise self.fail(f"conversation {self.index} is not a JSON object", self.base + pos)
                self.pending = mark = pos
            elif delta[k] == 1:  # the top-level array opens
                if self.opened or kinds[k] != _OPEN[1]:
                    raise self.fail("invalid JSON: more than one top-level value", self.base + pos)
                self.opened, mark = True, pos + 1
            elif d == 1:  # an element closes
                assert self.pending is not None
                if pos + 1 - self.pending > self.max_value:
                    raise self.too_large(self.base + self.pending)
                yield Element(self.index, self.base + self.pending, buf[self.pending : pos + 1])
                self.index += 1
                self.first, self.gap_commas, self.pending, mark = False, 0, None, pos + 1
            elif d == 0:  # the top-level array closes
                self._gap(buf[mark:pos], self.base + mark)
                if self.gap_commas and not self.first:
                    raise self.fail("invalid JSON: a trailing ',' before ']'", self.base + pos)
                self.closed = True
                self.after(buf[pos + 1 :], self.base + pos + 1)
                self.base += len(buf)
                self.buf = b""
                return
            else:
                raise self.fail("invalid JSON: unbalanced brackets", self.base + pos)
        self.depth = int(depth[-1]) if len(depth) else self.depth
        self.parity = int(qc[-1] % 2) if len(qc) else self.parity
        if self.pending is None:  # between elements: check the gap so far and drop it
            self._gap(buf[mark:], self.base + mark)
            cut = len(buf)
        else:
            cut = self.pending
            self.pending = 0
            if len(buf) - cut > self.max_value:  # an open element already past the limit: stop reading
                raise self.too_large(self.base + cut)
        self.buf = buf[cut:]
        self.base += cut
        self.scanned = len(self.buf)

    def after(self, tail: bytes, at: int) -> None:
        """Only whitespace may follow the array."""
        stripped = tail.lstrip(_WS)
        if stripped:
            raise self.fail("unexpected data after the array of conversations", at + len(tail) - len(stripped))

    def finish(self) -> None:
        if self.closed:
            return
        end = self.base + len(self.buf)
        if self.pending is not None:
            raise self.fail(f"the file ends inside conversation {self.index} (truncated?)", end)
        raise self.fail("the file ends before the array of conversations is closed (truncated?)", end)


def _start(fh: IO[bytes], name: str) -> tuple[bytes, int]:
    """Skip a BOM and whitespace; return the first chunk from the opening '[' on, and its offset."""
    buf = fh.read(max(CHUNK_BYTES, 16))
    pos = 3 if buf.startswith(b"\xef\xbb\xbf") else 0
    skipped = 0  # bytes of earlier chunks that were all whitespace
    while True:
        while pos < len(buf) and buf[pos] in _WS:
            pos += 1
        if pos < len(buf):
            break
        more = fh.read(CHUNK_BYTES)
        if not more:
            raise FormatError("empty file: expected a JSON array of conversations", location=name)
        skipped += len(buf)
        buf, pos = more, 0
    first = buf[pos : pos + 1]
    if first != b"[":
        if first == b"{":
            raise FormatError(
                "the file is one JSON object; an export is a JSON array of conversations (byte 0)", location=name
            )
        if buf.startswith((b"\xff\xfe", b"\xfe\xff")):
            raise FormatError("the file is UTF-16; an export is UTF-8 JSON", location=name)
        raise FormatError(f"not JSON: expected '[' at byte {skipped + pos}", location=name)
    return buf[pos:], skipped + pos


def iter_elements(
    fh: IO[bytes],
    name: str,
    *,
    start: tuple[int, int] | None = None,
    max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
) -> Iterator[Element]:
    """The top-level array's elements, one by one. ``start=(index, offset)`` resumes at the element that
    begins at ``offset`` in a stream already positioned there (so nothing before it is read again). An element
    larger than ``max_value_bytes`` is refused as soon as it grows past it."""
    if start is None:
        first, offset = _start(fh, name)
        sp = _Splitter(name, index=0, base=offset, inside=False, max_value=max_value_bytes)
    else:
        first, offset = fh.read(CHUNK_BYTES), start[1]
        if first[:1] != b"{":
            raise FormatError(f"cannot resume: no conversation starts at byte {offset}", location=name)
        sp = _Splitter(name, index=start[0], base=offset, inside=True, max_value=max_value_bytes)
    chunk = first
    while chunk:
        yield from sp.feed(chunk)
        if sp.closed:
            while tail := fh.read(CHUNK_BYTES):
                sp.after(tail, sp.base)
                sp.base += len(tail)
            return
        chunk = fh.read(CHUNK_BYTES)
    sp.finish()


def _bad_utf8(element: Element) -> int | None:
    """The absolute offset of the first byte of ``element`` that is not UTF-8, or None if it is all UTF-8."""
    try:
        element.raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return element.offset + exc.start
    return None


def _repair(value: Any) -> Any:
    """Replace lone surrogates (from ``\\ud800``-style escapes) with U+FFFD, recursively."""
    if isinstance(value, str):
        return _LONE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_repair(v) for v in value]
    if isinstance(value, dict):
        return {_repair(k): _repair(v) for k, v in value.items()}
    return value


def parse_element(element: Element, name: str) -> tuple[Any, bool]:
    """Decode one element; return (value, repaired) where ``repaired`` says lone surrogates were replaced."""
    try:
        return orjson.loads(element.raw), False
    except orjson.JSONDecodeError as exc:
        error = exc
    if "UTF-8" in error.msg and (bad := _bad_utf8(element)) is not None:
        raise FormatError(
            f"conversation {element.index} is not valid UTF-8 (byte {bad}); an export is UTF-8 JSON", location=name
        )
    try:
        value = json.loads(element.raw)
        return _repair(value), True
    except (ValueError, RecursionError):
        at = element.offset + max(0, int(getattr(error, "pos", 0) or 0))
        raise FormatError(
            f"conversation {element.index} is not valid JSON: {error.msg} (byte {at})", location=name
        ) from None
