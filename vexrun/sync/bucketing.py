"""Cut a ``.vmig.jsonl`` file into deterministic buckets of records, with flat memory.

* **Pass 1** streams the file in 8 MiB blocks: the whole-file BLAKE3, and for every line its offset,
  length and bucket ``BLAKE3-keyed(K_id, record id) mod B`` (about 20 bytes of index per line).
* **Pass 2** reads one bucket at a time back with ``pread``, sorts its lines by (id, bytes) and yields the
  concatenation, cut into parts of at most ``max_part`` bytes. An unchanged bucket has identical bytes,
  so the same object id: it is neither re-encrypted nor pushed.
* The **order** object records, for each line of the file, its position in the bucket-sorted stream
  (uint32 little-endian), so a restore writes back the original file byte for byte.

A line that is not a JSON object with a string ``id`` (blank, comment, malformed) keeps its bytes and is
bucketed under the empty id. A file that does not end in a newline is restored without one.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "BucketPart",
    "FileIndex",
    "choose_bucket_count",
    "extract_id",
    "index_file",
    "iter_buckets",
    "order_bytes",
]

BLOCK = 8 * 1024 * 1024
_FAST = b'{"id":"'


def extract_id(line: bytes) -> bytes:
    """The record id (UTF-8) of a line, fast for lines written by vexrun, parsed otherwise; b"" if none."""
    if line.startswith(_FAST):
        end = line.find(b'"', 7)
        if end > 0 and b"\\" not in line[7:end]:
            return line[7:end]
    import orjson

    text = line[3:] if line.startswith(b"\xef\xbb\xbf") else line
    try:
        obj = orjson.loads(text)
    except orjson.JSONDecodeError:
        return b""
    rid = obj.get("id") if isinstance(obj, dict) else None
    return rid.encode("utf-8") if isinstance(rid, str) else b""


def choose_bucket_count(size: int, target: int, previous: int | None = None) -> int:
    """Buckets of about ``target`` plaintext bytes; keep ``previous`` while it stays within 4× of that, so
    a growing file does not re-bucket (and re-upload) everything on every push."""
    if previous and target // 4 <= size / previous <= target * 4:
        return previous
    want = max(1, -(-size // max(1, target)))
    return 1 << (want - 1).bit_length()


@dataclass
class FileIndex:
    path: Path
    size: int
    blake3: str
    final_newline: bool
    buckets: int
    offsets: np.ndarray
    lengths: np.ndarray
    bucket_of: np.ndarray
    #: filled by :func:`iter_buckets`: each line's position in the bucket-sorted stream
    order: np.ndarray | None = None

    @property
    def lines(self) -> int:
        return int(self.offsets.shape[0])


def index_file(path: Path, k_id: bytes, buckets: int) -> FileIndex:
    """Pass 1."""
    import blake3

    hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
    offsets = array("q")
    lengths = array("q")
    bucket_of = array("q")
    carry = b""
    file_pos = 0  # offset of block[0] in the file
    last_byte = b"\n"

    def add(line_start: int, line: bytes) -> None:
        rid = extract_id(line)
        digest = blake3.blake3(rid, key=k_id).digest(length=8)
        offsets.append(line_start)
        lengths.append(len(line))
        bucket_of.append(int.from_bytes(digest, "little") % buckets)

    with open(path, "rb") as fh:
        while block := fh.read(BLOCK):
            hasher.update(block)
            last_byte = block[-1:]
            start = 0
            if carry:
                nl = block.find(b"\n")
                if nl < 0:
                    carry += block
                    file_pos += len(block)
                    continue
                line = carry + block[: nl + 1]
                add(file_pos - len(carry), line)
                carry = b""
                start = nl + 1
            find = block.find
            while True:
                nl = find(b"\n", start)
                if nl < 0:
                    carry = block[start:]
                    break
                add(file_pos + start, block[start : nl + 1])
                start = nl + 1
            file_pos += len(block)
        if carry:
            add(file_pos - len(carry), carry)
    return FileIndex(
        path=path,
        size=file_pos,
        blake3=hasher.hexdigest(),
        final_newline=last_byte == b"\n",
        buckets=buckets,
        offsets=np.frombuffer(offsets, dtype=np.int64) if offsets else np.zeros(0, np.int64),
        lengths=np.frombuffer(lengths, dtype=np.int64) if lengths else np.zeros(0, np.int64),
        bucket_of=np.frombuffer(bucket_of, dtype=np.int64) if bucket_of else np.zeros(0, np.int64),
    )


@dataclass
class BucketPart:
    bucket: int
    part: int
    data: bytes
    records: int


def iter_buckets(index: FileIndex, max_part: int) -> Iterator[BucketPart]:
    """Pass 2: the parts of every non-empty bucket, in (bucket, part) order. ``order()`` is ready after."""
    n = index.lines
    order = np.empty(n, dtype=np.uint32)
    index.order = order
    if n == 0:
        return
    by_bucket = np.argsort(index.bucket_of, kind="stable")
    counts = np.bincount(index.bucket_of, minlength=index.buckets)
    last_line = n - 1
    fd = os.open(index.path, os.O_RDONLY)
    try:
        base = 0
        pos = 0
        for bucket in range(index.buckets):
            count = int(counts[bucket])
            if not count:
                continue
            idx = by_bucket[pos : pos + count].tolist()
            pos += count
            offs = index.offsets[idx].tolist()
            lens = index.lengths[idx].tolist()
            lines = [os.pread(fd, ln, off) for off, ln in zip(offs, lens, strict=True)]
            if not index.final_newline and idx[-1] == last_line:
                lines[-1] += b"\n"
            keyed = sorted(range(count), key=lambda i: (extract_id(lines[i]), lines[i]))
            order[np.asarray(idx, dtype=np.int64)[keyed]] = np.arange(base, base + count, dtype=np.uint32)
            base += count
            part = 0
            chunk: list[bytes] = []
            size = 0
            for i in keyed:
                line = lines[i]
                if chunk and size + len(line) > max_part:
                    yield BucketPart(bucket, part, b"".join(chunk), len(chunk))
                    part += 1
                    chunk, size = [], 0
                chunk.append(line)
                size += len(line)
            yield BucketPart(bucket, part, b"".join(chunk), len(chunk))
    finally:
        os.close(fd)


def order_bytes(index: FileIndex) -> bytes:
    """The order object's plaintext (after :func:`iter_buckets` has run)."""
    if index.order is None:
        raise RuntimeError("iter_buckets() has not run")
    return index.order.astype("<u4").tobytes()
