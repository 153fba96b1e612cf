"""One streaming pass over a ``.vmig.jsonl`` file, on one core or several.

``validate`` and ``inspect`` are both a :func:`scan_file`. A plain file is cut into byte ranges that end
on line boundaries; each range is checked on its own (in worker processes when ``jobs > 1``) and the
results are merged in file order, so line numbers, the findings cap and duplicate detection come out the
same whatever the number of jobs. A gzip file is read as one stream. Memory is bounded by the range size,
the findings cap and the duplicate detector's spill threshold, not by the file.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .checks import Checker
from .dupes import DupDetector, hash_ids
from .findings import Finding, make
from .io import DECOMPRESS_ERRORS, DEFAULT_MAX_LINE_BYTES, check_readable, is_gzip, iter_lines, open_data
from .stats import Stats
from .workers import forkserver

__all__ = ["ScanOptions", "ScanResult", "default_jobs", "scan_file", "scan_range"]

_BOM = b"\xef\xbb\xbf"
#: Byte size of the ranges a plain file is cut into.
CHUNK_BYTES = 32 * 1024 * 1024
#: Below this size a file is scanned in-process even when more jobs are allowed.
PARALLEL_MIN_BYTES = 64 * 1024 * 1024
_FLUSH_IDS = 65536
_PROGRESS_BYTES = 4 * 1024 * 1024

ProgressFn = Callable[[int], None]


@dataclass(frozen=True)
class ScanOptions:
    max_findings: int = 200
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    collect_stats: bool = False
    check_duplicates: bool = True


@dataclass
class ChunkResult:
    """What one range produced. Line numbers are relative to the range (first line = 1)."""

    lines: int = 0
    records: int = 0
    invalid: int = 0
    errors: int = 0
    warnings: int = 0
    nbytes: int = 0
    findings: list[Finding] = field(default_factory=list)
    dropped: int = 0
    hashes: np.ndarray | None = None
    hash_lines: np.ndarray | None = None
    stats: Stats | None = None


@dataclass
class ScanResult:
    path: Path
    size: int
    gzip: bool
    jobs: int
    lines: int = 0
    records: int = 0
    invalid: int = 0
    errors: int = 0
    warnings: int = 0
    duplicates: int = 0
    findings: list[Finding] = field(default_factory=list)
    not_shown: int = 0
    stats: Stats | None = None
    elapsed: float = 0.0

    def add_finding(self, f: Finding) -> None:
        if f.severity == "error":
            self.errors += 1
        else:
            self.warnings += 1
        self.findings.append(f)


class _Collector:
    """Per-range state of the hot loop."""

    def __init__(self, res: ChunkResult, cap: int) -> None:
        self.res = res
        self.cap = cap

    def add(self, fs: list[Finding]) -> bool:
        """Record findings; return True if any is an error."""
        res = self.res
        bad = False
        for f in fs:
            if f.severity == "error":
                res.errors += 1
                bad = True
            else:
                res.warnings += 1
            if len(res.findings) < self.cap:
                res.findings.append(f)
            else:
                res.dropped += 1
        if bad:
            res.invalid += 1
        return bad


def scan_range(
    path: str,
    start: int,
    end: int | None,
    opts: ScanOptions,
    on_hashes: Callable[[np.ndarray, np.ndarray], None] | None = None,
    progress: ProgressFn | None = None,
) -> ChunkResult:
    """Check the lines in ``[start, end)`` of ``path`` (``end=None``: to the end of the stream).
    ``start`` must be 0 or the first byte of a line."""
    res = ChunkResult(stats=Stats() if opts.collect_stats else None)
    col = _Collector(res, opts.max_findings)
    checker = Checker()
    decode = checker.decode
    check_fast = checker.check_fast
    stats = res.stats
    dup = opts.check_duplicates
    ids: list[str] = []
    id_lines: list[int] = []

    def flush_ids() -> None:
        if not ids:
            return
        h, ln = hash_ids(ids), np.asarray(id_lines, dtype=np.int64)
        ids.clear()
        id_lines.clear()
        if on_hashes is not None:
            on_hashes(h, ln)
        else:
            res.hashes = h if res.hashes is None else np.concatenate((res.hashes, h))
            res.hash_lines = ln if res.hash_lines is None else np.concatenate((res.hash_lines, ln))

    p = Path(path)
    fh = open_data(p)
    lineno = 0
    nbytes = 0
    reported = 0
    try:
        if start:
            fh.seek(start)
        limit = None if end is None else end - start
        for raw in iter_lines(fh, limit=limit, max_line_bytes=opts.max_line_bytes):
            lineno += 1
            if not raw:  # TOO_LONG
                res.records += 1
                msg = f"line is longer than {opts.max_line_bytes:,} bytes; skipped (see --max-line-bytes)"
                col.add([make(lineno, "line-too-long", msg)])
                continue
            nbytes += len(raw)
            if progress is not None and nbytes - reported >= _PROGRESS_BYTES:
                progress(nbytes - reported)
                reported = nbytes
            try:
                rec = decode(raw)
            except ValueError:  # msgspec.DecodeError, or UnicodeDecodeError on bad UTF-8
                pass
            else:
                res.records += 1
                fs = check_fast(rec, lineno)
                bad = fs is not None and col.add(fs)
                if stats is not None and not bad:
                    vec = rec.vector
                    stats.add(
                        rec.text,
                        None if vec is None else len(vec),
                        rec.dims,
                        rec.namespace,
                        rec.model,
                        rec.source_store,
                        rec.modality,
                        rec.vex_version,
                        rec.metadata,
                        rec.created_at,
                    )
                if dup:
                    ids.append(rec.id)
                    id_lines.append(lineno)
                    if len(ids) >= _FLUSH_IDS:
                        flush_ids()
                continue

            # The tolerant path: blank lines, comments, a BOM, and every line with a problem.
            stripped = raw.strip()
            if not stripped:
                continue
            if stripped.startswith(b"#"):
                col.add([make(lineno, "comment-line", "line starts with '#'; Vex skips it, other tools fail")])
                continue
            if lineno == 1 and start == 0 and raw.startswith(_BOM):
                col.add([make(lineno, "bom", "the file starts with a UTF-8 byte order mark")])
                raw = raw[len(_BOM) :]
            res.records += 1
            obj, fs = checker.diagnose(raw, lineno, at_eof=True)
            bad = col.add(fs)
            if obj is None:
                continue
            rid = obj.get("id")
            if dup and isinstance(rid, str) and rid:
                ids.append(rid)
                id_lines.append(lineno)
            if stats is not None and not bad:
                vec = obj.get("vector")
                stats.add(
                    obj.get("text"),
                    None if vec is None else len(vec),
                    obj.get("dims"),
                    obj.get("namespace"),
                    obj.get("model"),
                    obj.get("source_store"),
                    obj.get("modality"),
                    obj.get("vex_version"),
                    obj.get("metadata"),
                    obj.get("created_at"),
                )
    except DECOMPRESS_ERRORS as exc:
        res.records += 1
        col.add(
            [make(lineno + 1, "bad-gzip", f"the gzip stream is corrupt or truncated ({exc}); reading stopped here")]
        )
    finally:
        fh.close()
    flush_ids()
    if progress is not None and nbytes > reported:
        progress(nbytes - reported)
    res.lines = lineno
    res.nbytes = nbytes
    return res


def default_jobs() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _ranges(path: Path, size: int, chunk: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of about ``chunk`` bytes that start and end on line boundaries."""
    start = 0
    with open(path, "rb") as fh:
        while start < size:
            cut = start + chunk
            if cut >= size:
                yield start, size
                return
            fh.seek(cut)
            # Find the end of the line the cut falls into, in bounded blocks.
            while True:
                block = fh.read(1 << 16)
                if not block:
                    cut = size
                    break
                nl = block.find(b"\n")
                if nl >= 0:
                    cut += nl + 1
                    break
                cut += len(block)
            yield start, cut
            start = cut


def _by_line(f: Finding) -> int:
    return f.line


def _merge(total: ScanResult, r: ChunkResult, dup: DupDetector | None, cap: int) -> None:
    offset = total.lines
    total.lines += r.lines
    total.records += r.records
    total.invalid += r.invalid
    total.errors += r.errors
    total.warnings += r.warnings
    total.not_shown += r.dropped
    total.findings.extend(f.shifted(offset) for f in r.findings)
    if len(total.findings) > 2 * cap:
        total.findings.sort(key=_by_line)
        total.not_shown += len(total.findings) - cap
        del total.findings[cap:]
    if dup is not None and r.hashes is not None and r.hash_lines is not None:
        dup.add(r.hashes, r.hash_lines + offset)
    if r.stats is not None:
        if total.stats is None:
            total.stats = r.stats
        else:
            total.stats.merge(r.stats)


def _confirm_duplicates(path: Path, groups: list[np.ndarray], opts: ScanOptions) -> list[Finding]:
    """Read the candidate lines again and report the ones whose ids really repeat an earlier line."""
    wanted = np.unique(np.concatenate(groups))
    ids: dict[int, str] = {}
    checker = Checker()
    i = 0
    with open_data(path) as fh, contextlib.suppress(*DECOMPRESS_ERRORS):
        for lineno, raw in enumerate(iter_lines(fh, max_line_bytes=opts.max_line_bytes), start=1):
            if lineno != wanted[i]:
                continue
            try:
                ids[lineno] = checker.decode(raw).id
            except ValueError:  # msgspec.DecodeError, or UnicodeDecodeError on bad UTF-8
                obj, _ = checker.diagnose(raw.lstrip(_BOM) if lineno == 1 else raw, lineno)
                if obj is not None and isinstance(obj.get("id"), str):
                    ids[lineno] = obj["id"]
            i += 1
            if i == len(wanted):
                break
    out: list[Finding] = []
    for group in groups:
        by_id: dict[str, list[int]] = defaultdict(list)
        for line in group.tolist():
            if line in ids:
                by_id[ids[line]].append(line)
        for rid, lines in by_id.items():
            for line in lines[1:]:
                out.append(make(line, "duplicate-id", f"id already used on line {lines[0]}", rid))
    return out


def scan_file(
    path: str | os.PathLike[str],
    opts: ScanOptions | None = None,
    *,
    jobs: int | None = None,
    progress: ProgressFn | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> ScanResult:
    """Check every line of a file. ``jobs=None`` uses every core for files over 64 MB."""
    opts = opts or ScanOptions()
    t0 = time.perf_counter()
    p = check_readable(path)
    size = p.stat().st_size
    gz = is_gzip(p)
    if gz:
        jobs = 1
    elif jobs is None:
        jobs = default_jobs() if size >= PARALLEL_MIN_BYTES else 1
    jobs = max(1, jobs)
    total = ScanResult(path=p, size=size, gzip=gz, jobs=jobs)
    dup = DupDetector() if opts.check_duplicates else None

    if gz or jobs == 1:
        ranges: list[tuple[int, int | None]] = [(0, None)] if gz else list(_ranges(p, size, chunk_bytes))
        for start, end in ranges:
            offset = total.lines

            def sink(h: np.ndarray, ln: np.ndarray, offset: int = offset) -> None:
                assert dup is not None
                dup.add(h, ln + offset)

            r = scan_range(str(p), start, end, opts, on_hashes=sink if dup is not None else None, progress=progress)
            _merge(total, r, dup, opts.max_findings)
    else:
        ctx = forkserver()
        with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
            pending: deque[tuple[Future[ChunkResult], int]] = deque()
            try:
                for start, end in _ranges(p, size, chunk_bytes):
                    pending.append((pool.submit(scan_range, str(p), start, end, opts), end - start))
                    while len(pending) > 2 * jobs:
                        fut, n = pending.popleft()
                        _merge(total, fut.result(), dup, opts.max_findings)
                        if progress:
                            progress(n)
                while pending:
                    fut, n = pending.popleft()
                    _merge(total, fut.result(), dup, opts.max_findings)
                    if progress:
                        progress(n)
            except BaseException:
                for fut, _ in pending:
                    fut.cancel()
                raise

    if dup is not None:
        groups = list(dup.candidates())
        if groups:
            for f in _confirm_duplicates(p, groups, opts):
                total.duplicates += 1
                total.add_finding(f)
    if total.records == 0:
        total.add_finding(make(0, "empty-file", "the file holds no records"))
    total.findings.sort(key=_by_line)
    if len(total.findings) > opts.max_findings:
        total.not_shown += len(total.findings) - opts.max_findings
        del total.findings[opts.max_findings :]
    total.elapsed = time.perf_counter() - t0
    return total
