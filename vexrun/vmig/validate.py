"""``vexrun validate FILE``: lint every record of a ``.vmig.jsonl`` file in one streaming pass."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .findings import Finding, make
from .io import DEFAULT_MAX_LINE_BYTES, check_readable
from .scan import ProgressFn, ScanOptions, ScanResult, scan_file
from .sidecar import file_checksum, read_meta

__all__ = ["ValidationReport", "validate_file"]


@dataclass
class ValidationReport:
    """The outcome of :func:`validate_file`. ``ok`` is True when there is no error (warnings allowed,
    unless ``strict``)."""

    file: str
    scan: ScanResult
    strict: bool = False
    sidecar: Path | None = None
    checksum: str | None = None  # "verified", "mismatch", "not-checked (…)" or None without sidecar

    @property
    def errors(self) -> int:
        return self.scan.errors

    @property
    def warnings(self) -> int:
        return self.scan.warnings

    @property
    def findings(self) -> list[Finding]:
        return self.scan.findings

    @property
    def ok(self) -> bool:
        return self.errors == 0 and not (self.strict and self.warnings)

    def summary(self) -> str:
        s = self.scan
        verdict = "valid" if self.ok else "INVALID"
        parts = [f"{s.records:,} record{'s' if s.records != 1 else ''}"]
        parts.append(f"{s.errors:,} error{'s' if s.errors != 1 else ''}")
        parts.append(f"{s.warnings:,} warning{'s' if s.warnings != 1 else ''}")
        if s.duplicates:
            parts.append(f"{s.duplicates:,} duplicate id{'s' if s.duplicates != 1 else ''}")
        if self.checksum:
            parts.append(f"checksum {self.checksum}")
        return f"{self.file}: {verdict}: {', '.join(parts)}"

    def lines(self) -> list[str]:
        out = [f.format(self.file) for f in self.findings]
        if self.scan.not_shown:
            n = self.scan.not_shown
            out.append(f"... and {n:,} more finding{'s' if n != 1 else ''} not shown (--max-findings)")
        out.append(self.summary())
        return out

    def to_json(self) -> dict[str, Any]:
        s = self.scan
        return {
            "file": self.file,
            "valid": self.ok,
            "records": s.records,
            "lines": s.lines,
            "errors": s.errors,
            "warnings": s.warnings,
            "duplicates": s.duplicates,
            "checksum": self.checksum,
            "sidecar": str(self.sidecar) if self.sidecar else None,
            "findings": [f.to_json() for f in self.findings],
            "not_shown": s.not_shown,
            "elapsed_s": round(s.elapsed, 3),
            "jobs": s.jobs,
        }


def validate_file(
    path: str | os.PathLike[str],
    *,
    jobs: int | None = None,
    max_findings: int = 200,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
    strict: bool = False,
    progress: ProgressFn | None = None,
) -> ValidationReport:
    """Check every line of ``path`` against the SPEC, duplicate ids across the file, and the sidecar
    (record count and BLAKE3 checksum) when there is one. Raises :class:`~vexrun.errors.UsageError` if
    the file cannot be read at all; everything else is a finding."""
    p = check_readable(path)
    display = os.fspath(path)
    meta = read_meta(p)
    sidecar_findings: list[Finding] = []
    digest: dict[str, str] = {}
    hasher: threading.Thread | None = None
    expected: str | None = None
    if meta is not None:
        meta_file, obj, err = meta
        if err is not None or obj is None:
            sidecar_findings.append(make(0, "bad-sidecar", f"{meta_file.name}: {err}"))
        else:
            checksum = obj.get("checksum")
            if isinstance(checksum, str) and checksum.startswith("blake3:"):
                expected = checksum

                def run() -> None:
                    digest["value"] = file_checksum(p)

                # BLAKE3 releases the GIL: the hash runs beside the parse, not after it.
                hasher = threading.Thread(target=run, name="vexrun-checksum", daemon=True)
                hasher.start()

    scan = scan_file(
        p,
        ScanOptions(max_findings=max_findings, max_line_bytes=max_line_bytes),
        jobs=jobs,
        progress=progress,
    )
    report = ValidationReport(file=display, scan=scan, strict=strict)
    if meta is not None:
        meta_file, obj, _ = meta
        report.sidecar = meta_file
        if obj is not None:
            count = obj.get("record_count")
            if isinstance(count, int) and not isinstance(count, bool) and count != scan.records:
                msg = f"{meta_file.name} says record_count {count:,} but the file holds {scan.records:,} records"
                sidecar_findings.append(make(0, "count-mismatch", msg))
            checksum = obj.get("checksum")
            if hasher is not None and expected is not None:
                hasher.join()
                if digest.get("value") == expected:
                    report.checksum = "verified"
                else:
                    report.checksum = "mismatch"
                    msg = f"the file's BLAKE3 checksum differs from {meta_file.name}: it changed after it was written"
                    sidecar_findings.append(make(0, "checksum-mismatch", msg))
            elif isinstance(checksum, str) and checksum:
                report.checksum = f"not checked ({checksum.split(':', 1)[0]} record checksum from Vex)"
    for f in sidecar_findings:
        scan.add_finding(f)
    if sidecar_findings:
        scan.findings.sort(key=lambda f: f.line)
    return report
