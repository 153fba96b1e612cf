"""``.vmig.jsonl`` files as a source, and the file helpers the sink (:mod:`.sink`) shares with it.

The sink appends to a partial file beside the target (``.<name>.partial``); the checkpoint stores its
committed length with every batch, so a resumed run truncates away whatever a killed run wrote after its
last commit, and the finished file is renamed into place (with its sidecar) only when the run completes.
Edges, when a run produces them, go to ``<file>.edges.jsonl`` the same way. While it is open the sink holds
``<file>.lock`` (:class:`~vexrun.appendfile.OutputLock`): a second run writing the same file is refused.

An id written again in the same run replaces the earlier record (last write wins, as in every target). The
sink appends anyway and remembers each id it wrote in an :class:`~vexrun.ids.IdIndex` (16 bytes a record);
when the run completes with repeated ids, the partial file is copied into place without the lines that
were replaced, each confirmed by comparing the real ids (a hash collision keeps both lines). On resume the
index is rebuilt from the partial file itself, so a resumed run publishes the same bytes as an uninterrupted
one.
"""

from __future__ import annotations

import os
import threading
import zlib
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Literal

import numpy as np
import orjson
from pydantic import Field

from ...errors import UsageError
from ...vmig.batch import Batch
from ...vmig.reader import read_batches
from ..base import Cursor, PluginConfig, RunContext, Source

__all__ = ["VmigSource", "VmigSourceConfig", "edges_path"]


class VmigSourceConfig(PluginConfig):
    """``type: vmig`` — read a ``.vmig.jsonl`` or ``.vmig.jsonl.gz`` file."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The file, relative to the recipe.")
    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    read_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes that parse the file while the run writes (default: 2 for a file of 48 MB "
        "or more on a machine with 2 cores or more, else 0: parse in the run's own process).",
    )


def edges_path(data: Path) -> Path:
    return data.with_name(data.name + ".edges.jsonl")


class VmigSource(Source):
    name = "vmig"

    def __init__(self, config: VmigSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.counts: Counter[str] = Counter()
        #: worker processes started by prime() for (start, batch_size), taken by the next batches()
        self._primed: tuple[tuple[int, int], int, Future[Any]] | None = None

    @property
    def workers(self) -> int:
        """How many worker processes parse the file (see :mod:`vexrun.procread`); 0: none."""
        from ...procread import MIN_BYTES
        from ...vmig.scan import default_jobs

        if self.cfg.read_workers is not None:
            return self.cfg.read_workers
        try:
            big = self.path.stat().st_size >= MIN_BYTES
        except OSError:
            return 0
        return 2 if big and default_jobs() >= 2 else 0

    @property
    def prefetch(self) -> bool:  # type: ignore[override]
        # Worker processes already read ahead; a thread on top of them only competes for the GIL.
        return self.workers == 0

    def open(self) -> None:
        from ...errors import FormatError
        from ...vmig.io import check_readable, sniff

        if not os.path.lexists(self.path):
            raise UsageError(f"{self.cfg.path}: no such file")
        # one line naming the file for a directory, a device or FIFO, no permission; then refuse what is
        # clearly no .vmig.jsonl file (an export, a zip, binary data) before every line of it is rejected
        problem = sniff(check_readable(self.path))
        if problem:
            raise FormatError(f"not a .vmig.jsonl file: this is {problem}", location=self.cfg.path)

    def identity(self) -> str:
        return f"vmig:{self.path.name}"

    def estimate(self) -> int | None:
        from ...vmig.sidecar import read_meta

        meta = read_meta(self.path)
        if meta and meta[1] and isinstance(meta[1].get("record_count"), int):
            return int(meta[1]["record_count"])
        return None

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Byte ranges of about equal size, named ``bytes A-B``, each starting at a line where a serial read's
        batch starts (every ``batch_size`` lines: a file with rejected or blank lines, or a batch cut early,
        shifts that, and the batches then differ near the cuts, not the records). A gzip file cannot be cut: one
        partition. Each start cursor carries the range's first line number and its ``end``."""
        size = self.path.stat().st_size
        if n <= 1 or size == 0 or self.path.name.endswith(".gz"):
            return [("all", None)]
        marks = _batch_starts(self.path, batch_size)  # (offset, line) of every batch_size-th line start
        cuts: list[tuple[int, int]] = [(0, 0)]
        for k in range(1, n):
            want = size * k // n
            found = next((m for m in marks if m[0] >= want and m[0] > cuts[-1][0]), None)
            if found is not None and found[0] < size:
                cuts.append(found)
        bounds = [*cuts, (size, -1)]
        return [
            (f"bytes {lo}-{hi}", {"offset": lo, "line": line, "end": hi})
            for (lo, line), (hi, _) in zip(bounds, bounds[1:], strict=False)
        ]

    def prime(self, cursor: Cursor | None, batch_size: int) -> None:
        """Start the worker processes (the file's parsing overlaps the opening of the sinks). They are started
        from a thread: the first start waits ~0.1 s for the forkserver to import the readers' modules, while this
        thread goes on to open the sinks (importing their SDKs)."""
        if (cursor and cursor.get("end") is not None) or not self.workers or self._primed is not None:
            return
        from ... import procread

        start = (int(cursor["offset"]), int(cursor["line"])) if cursor else (0, 0)
        started: Future[Any] = Future()
        path, jobs = self.path, self.workers

        def begin() -> None:
            try:
                started.set_result(procread.ProcessReader(path, batch_size=batch_size, start=start, jobs=jobs))
            except BaseException as exc:  # noqa: BLE001 - raised where the batches are read
                started.set_exception(exc)

        threading.Thread(target=begin, name="vexrun-reader-start", daemon=True).start()
        self._primed = (start, batch_size, started)

    def close(self) -> None:
        if self._primed is not None:
            started, self._primed = self._primed[2], None
            if started.exception() is None:  # waits for the start: what it started is stopped here
                started.result().close()

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        start = (int(cursor["offset"]), int(cursor["line"])) if cursor else (0, 0)
        end = cursor.get("end") if cursor else None
        primed, self._primed = self._primed, None
        reader = None
        if primed is not None:
            reader = primed[2].result()
            if primed[:2] != (start, batch_size):
                reader.close()
                reader = None
        bound: dict[str, int] = {}
        if end is not None:  # one partition of a distributed run, parsed in this process
            from ...vmig.reader import read_range

            bound = {"end": int(end)}
            batches: Iterator[Batch] = read_range(self.path, batch_size=batch_size, start=start, end=int(end))
        elif reader is not None:
            batches = iter(reader)
        elif workers := self.workers:
            from ... import procread

            # parse on the other cores while the runner encodes and writes the batches before
            batches = procread.read_batches_in_process(self.path, batch_size=batch_size, start=start, jobs=workers)
        else:
            batches = read_batches(self.path, batch_size=batch_size, start=start)
        for batch in batches:
            if self.cfg.namespace is not None:
                for rec in batch.records:
                    if rec.namespace is None:
                        rec.namespace = self.cfg.namespace
            self.counts["warnings"] += len(batch.warnings)
            assert batch.cursor is not None
            yield batch, {"offset": batch.cursor[0], "line": batch.cursor[1], **bound}

    @classmethod
    def declared_models(cls, config: Any, base_dir: Any) -> list[str]:
        """The models the file's sidecar names (no record is read)."""
        from ...vmig.sidecar import read_meta

        path = Path(base_dir) / config.path
        meta = read_meta(path) if path.is_file() else None
        models = meta[1].get("models") if meta and meta[1] else None
        return [str(m) for m in models if m] if isinstance(models, list) else []

    def report(self) -> dict[str, Any]:
        return dict(self.counts)


_BLOCK = 1 << 22


def _batch_starts(path: Path, every: int) -> list[tuple[int, int]]:
    """(byte offset, line number before it) of the start of every ``every``-th line after the first, in one
    pass over the file."""
    out: list[tuple[int, int]] = []
    lines, base = 0, 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            ends = np.flatnonzero(np.frombuffer(block, dtype=np.uint8) == 10)  # newline positions
            # the line numbers these newlines end are lines + 1 … lines + len(ends)
            first = (every - 1 - lines) % every  # the first of them ending a line number divisible by `every`
            for i in range(first, len(ends), every):
                out.append((base + int(ends[i]) + 1, lines + i + 1))
            lines += len(ends)
            base += len(block)
    return out


def _members(fh: Any, size: int) -> Iterator[bytes]:
    """The uncompressed bytes of each gzip member in the first ``size`` bytes of ``fh`` (one per batch)."""
    left = size
    d = zlib.decompressobj(31)
    out: list[bytes] = []
    pending = b""
    while True:
        if not pending:
            if not left:
                break
            pending = fh.read(min(_BLOCK, left))
            if not pending:
                break
            left -= len(pending)
        out.append(d.decompress(pending))
        pending = b""
        if d.eof:
            pending = d.unused_data
            yield b"".join(out)
            out = []
            d = zlib.decompressobj(31)
    if out:
        yield b"".join(out) + d.flush()


def _blobs(path: Path, size: int, compressed: bool) -> Iterator[bytes]:
    """The first ``size`` bytes of a partial file, uncompressed, as runs of whole lines: one per gzip member
    (a batch), or blocks of about 4 MiB cut after a newline."""
    with open(path, "rb") as fh:
        if compressed:
            yield from _members(fh, size)
            return
        carry = bytearray()
        left = size
        while left:
            chunk = fh.read(min(_BLOCK, left))
            if not chunk:
                break
            left -= len(chunk)
            cut = chunk.rfind(b"\n") + 1
            if not cut:
                carry += chunk
                continue
            yield bytes(carry) + chunk[:cut]
            carry = bytearray(chunk[cut:])
        if carry:
            yield bytes(carry)


def _lines(blob: bytes) -> list[bytes]:
    lines = blob.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()
    return lines


def _id_json(line: bytes) -> bytes:
    """The id of a record line as the JSON string it is written as.
    ``encode_record`` writes ``{"id":"…","text":…`` and a JSON string holds no unescaped quote, so the
    first ``","text":`` ends the id; anything else is parsed."""
    if line.startswith(b'{"id":"'):
        end = line.find(b'","text":', 7)
        if end > 0:
            return line[6 : end + 1]
    try:
        value = orjson.loads(line).get("id")
    except (orjson.JSONDecodeError, AttributeError):
        value = None
    return orjson.dumps(value)


def _id_key(line: bytes) -> bytes:
    """What the index hashes for a record line: its id's UTF-8 bytes, as :func:`_hash_ids` has them."""
    found = _id_json(line)
    value = orjson.loads(found)
    return value.encode("utf-8", "surrogatepass") if isinstance(value, str) else found
