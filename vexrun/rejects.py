"""The rejects file of a run: every record a stage could not carry on with, as a ``.vmig.jsonl`` line with a
``reject`` object (stage, reason, source, line), so the file can be read, fixed and fed again.

``--retry-rejected`` splits it: what failed after the source (an LLM or embedder failure, a store refusal)
becomes the input of a new run; bad input lines stay rejected.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson

from .appendfile import AppendFile
from .stages.base import Rejected
from .vmig.writer import encode_record

__all__ = ["RejectsFile", "reject_line", "split_for_retry"]


def reject_line(stage: str, source: str, rej: Rejected) -> bytes:
    info = {"stage": stage, "reason": rej.reason, "source": source, "line": rej.line}
    if rej.record is not None:
        obj = orjson.loads(encode_record(rej.record, rej.vector))
    else:
        text = (rej.raw or b"").decode("utf-8", "replace").rstrip("\n")
        obj = {"id": f"{source}:line-{rej.line}", "text": text}
    obj["reject"] = info
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


class RejectsFile:
    """Append-only; cut back to its committed size when a run resumes (like every resumable output)."""

    def __init__(self, path: Path, committed: int | None) -> None:
        self.path = path
        self.file = AppendFile(path, committed)

    def write(self, stage: str, source: str, rejected: list[Rejected]) -> None:
        for rej in rejected:
            self.file.write(reject_line(stage, source, rej))

    @property
    def size(self) -> int:
        return self.file.size

    def sync(self) -> None:
        self.file.sync()

    def close(self) -> None:
        self.file.close()


def split_for_retry(path: Path, retry_file: Path) -> tuple[int, int, int]:
    """Move the retryable rejects of ``path`` into ``retry_file`` (without their ``reject`` object), keep the
    rest in ``path``. Returns (records to retry, lines kept, bytes kept)."""
    retry: list[bytes] = []
    keep: list[bytes] = []
    for line in path.read_bytes().splitlines(keepends=True) if path.exists() else []:
        try:
            obj: dict[str, Any] = orjson.loads(line)
        except orjson.JSONDecodeError:
            keep.append(line)
            continue
        if (obj.get("reject") or {}).get("stage") in (None, "source"):
            keep.append(line)
            continue
        obj.pop("reject", None)
        retry.append(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
    retry_file.write_bytes(b"".join(retry))
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(b"".join(keep))
    os.replace(tmp, path)
    return len(retry), len(keep), sum(len(x) for x in keep)
