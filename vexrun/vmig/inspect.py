"""``vexrun inspect FILE``: what is in a ``.vmig.jsonl`` file, before you migrate it."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..errors import FormatError
from .io import DEFAULT_MAX_LINE_BYTES, check_readable, sniff
from .scan import ProgressFn, ScanOptions, ScanResult, scan_file
from .sidecar import read_meta
from .stats import Stats

__all__ = ["InspectReport", "inspect_file"]


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def _name(value: object) -> str:
    return "(none)" if value is None else str(value)


def _counts(counter: Counter[Any]) -> list[dict[str, Any]]:
    return [{"value": k, "count": v} for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))]


@dataclass
class InspectReport:
    file: str
    scan: ScanResult
    sidecar: str | None = None

    @property
    def stats(self) -> Stats:
        return self.scan.stats or Stats()

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        n = s.records
        return {
            "file": self.file,
            "bytes": self.scan.size,
            "gzip": self.scan.gzip,
            "sidecar": self.sidecar,
            "records": n,
            "lines": self.scan.lines,
            "invalid_lines": self.scan.invalid,
            "duplicate_ids": self.scan.duplicates,
            "with_text": s.with_text,
            "with_vector": s.with_vector,
            "with_both": s.with_both,
            "text_only": s.with_text - s.with_both,
            "vector_only": s.with_vector - s.with_both,
            "mean_text_chars": round(s.text_chars / s.with_text, 1) if s.with_text else None,
            "namespaces": _counts(s.namespaces),
            "dims": _counts(s.dims),
            "models": _counts(s.models),
            "source_stores": _counts(s.source_stores),
            "modalities": _counts(s.modalities),
            "vex_versions": _counts(s.versions),
            "metadata": [
                {
                    "key": key,
                    "types": dict(sorted(types.items(), key=lambda kv: -kv[1])),
                    "count": sum(types.values()),
                    "fill_rate": round(sum(types.values()) / n, 4) if n else 0.0,
                }
                for key, types in sorted(s.metadata.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
            ],
            "created_at": {
                "min": s.created_min[1] if s.created_min else None,
                "max": s.created_max[1] if s.created_max else None,
            },
            "elapsed_s": round(self.scan.elapsed, 3),
        }

    def lines(self) -> list[str]:
        s = self.stats
        n = s.records
        gz = ", gzip" if self.scan.gzip else ""
        out = [f"{self.file}  ({_size(self.scan.size)}{gz})"]
        out.append(f"  records      {n:,}")
        if n:

            def pct(k: int) -> str:
                return f"{k:,} ({100 * k / n:.0f}%)"

            out.append(
                f"  content      text {pct(s.with_text)} · vector {pct(s.with_vector)} · both {pct(s.with_both)}"
            )
            if s.with_text:
                out.append(f"  text length  {s.text_chars / s.with_text:,.0f} characters on average")
        if self.scan.invalid or self.scan.duplicates:
            out.append(
                f"  problems     {self.scan.invalid:,} invalid line(s), {self.scan.duplicates:,} duplicate id(s)"
                " (run `vexrun validate` for details)"
            )

        def block(title: str, counter: Counter[Any], fmt: Any = _name) -> None:
            items = sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))[:20]
            if not items:
                return
            width = max(len(fmt(k)) for k, _ in items)
            cwidth = max(len(f"{v:,}") for _, v in items)
            out.append(f"  {title}")
            for k, v in items:
                out.append(f"    {fmt(k):<{width}}  {v:>{cwidth},}")
            if len(counter) > 20:
                out.append(f"    ... {len(counter) - 20:,} more")

        block("namespaces", s.namespaces)
        block("dims", s.dims, lambda d: f"{d}-d")
        block("models", s.models)
        block("source stores", s.source_stores)
        block("modalities", s.modalities)
        block("vex_version", s.versions)
        if s.metadata:
            keys = sorted(s.metadata.items(), key=lambda kv: (-sum(kv[1].values()), kv[0]))
            width = max(len(k) for k, _ in keys[:40])
            out.append("  metadata keys (types, fill rate)")
            for key, types in keys[:40]:
                filled = sum(types.values())
                kinds = ", ".join(t if len(types) == 1 else f"{t} {c:,}" for t, c in types.most_common())
                out.append(f"    {key:<{width}}  {100 * filled / n:5.1f}%  {kinds}")
            if len(keys) > 40:
                out.append(f"    ... {len(keys) - 40:,} more keys")
        if s.created_min and s.created_max:
            out.append(f"  created_at   {s.created_min[1]} … {s.created_max[1]}")
        if self.sidecar:
            out.append(f"  sidecar      {self.sidecar}")
        return out


def inspect_file(
    path: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    progress: ProgressFn | None = None,
) -> InspectReport:
    """Gather the statistics of a file in one streaming pass. Invalid lines are counted, not fatal, unless no
    line at all is a record: then it is not a ``.vmig.jsonl`` file, and :class:`FormatError` says so (naming the
    source ``type:`` to use for a conversation export), as it does at once for a zip or binary data."""
    display = os.fspath(path)
    problem = sniff(check_readable(path))
    if problem:
        raise FormatError(f"not a .vmig.jsonl file: this is {problem}", location=display)
    scan = scan_file(
        path,
        ScanOptions(max_findings=1, max_line_bytes=max_line_bytes, collect_stats=True),
        jobs=jobs,
        progress=progress,
    )
    if scan.invalid and not (scan.stats and scan.stats.records):
        first = next((f for f in scan.findings if f.severity == "error"), None)
        where = f"{display}:{first.line}" if first and first.line else display
        n = scan.invalid
        detail = f"; the first: {first.message}" if first else ""
        raise FormatError(
            f"not a .vmig.jsonl file: none of its {n:,} non-blank line{'s' if n != 1 else ''} is a record{detail}",
            location=where,
            hint=f"`vexrun validate {display}` lists the problems",
        )
    meta = read_meta(scan.path)
    return InspectReport(file=os.fspath(path), scan=scan, sidecar=str(meta[0]) if meta else None)
