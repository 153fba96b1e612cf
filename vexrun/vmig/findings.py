"""Findings: what ``validate`` (and the tolerant reader) say about a line or a file."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["CODES", "Finding", "display_id"]

#: Every finding code, with the severity it is reported at and what it means.
CODES: dict[str, tuple[str, str]] = {
    "bad-json": ("error", "the line is not valid JSON (truncated, a syntax error)"),
    "bad-encoding": ("error", "the line is not valid UTF-8, or a string holds an unpaired surrogate"),
    "bad-gzip": ("error", "the gzip stream is corrupt or truncated; lines after this point were not read"),
    "line-too-long": ("error", "the line is longer than the reader's limit (--max-line-bytes)"),
    "not-object": ("error", "the line is valid JSON but not an object"),
    "missing-id": ("error", "id is absent, null or empty"),
    "duplicate-id": ("error", "the id was already used on an earlier line"),
    "no-content": ("error", "both text and vector are null or absent"),
    "dims-mismatch": ("error", "dims differs from the number of vector values, or is not positive"),
    "non-finite": ("error", "the vector holds NaN, Infinity or a number out of range"),
    "bad-vector": ("error", "vector is not an array of numbers, or is empty"),
    "bad-metadata": ("error", "metadata is not an object of scalars and flat lists of scalars"),
    "bad-version": ("error", "vex_version is not a SemVer string"),
    "bad-timestamp": ("error", "created_at is not an ISO-8601 timestamp"),
    "bad-type": ("error", "a field has the wrong JSON type"),
    "checksum-mismatch": ("error", "the data file does not match the sidecar's checksum"),
    "count-mismatch": ("error", "the sidecar's record_count differs from the file"),
    "bad-sidecar": ("error", "the sidecar meta file cannot be read"),
    "unknown-field": ("warning", "a top-level field the SPEC does not define (kept on a round trip)"),
    "missing-version": ("warning", "vex_version is absent (vexrun stamps it when it writes)"),
    "comment-line": ("warning", "a line starting with '#': Vex skips it, other JSONL tools fail on it"),
    "bom": ("warning", "the file starts with a UTF-8 byte order mark"),
    "empty-file": ("warning", "the file holds no records"),
}


def display_id(value: object, limit: int = 60) -> str:
    """A record id as it is shown in messages: control characters escaped, long ids shortened."""
    text = value if isinstance(value, str) else repr(value)
    text = text.encode("unicode_escape", "backslashreplace").decode("ascii") if not text.isprintable() else text
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("'", "\\'")


@dataclass(frozen=True, slots=True)
class Finding:
    """One finding. ``line`` is 1-based; 0 means the whole file (sidecar, checksum)."""

    line: int
    code: str
    message: str
    record_id: str | None = None
    severity: str = "error"

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        who = f" record '{display_id(self.record_id)}'" if self.record_id is not None else ""
        return f"{where}: {self.severity}[{self.code}]{who}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {
            "line": self.line or None,
            "severity": self.severity,
            "code": self.code,
            "record_id": self.record_id,
            "message": self.message,
        }

    def shifted(self, offset: int) -> Finding:
        """The same finding with its line moved by ``offset`` (chunks count lines from 1)."""
        if not self.line or not offset:
            return self
        return Finding(self.line + offset, self.code, self.message, self.record_id, self.severity)


def make(line: int, code: str, message: str, record_id: str | None = None) -> Finding:
    """A finding at the severity its code is registered with."""
    return Finding(line, code, message, record_id, CODES[code][0])
