"""The ``chunk`` stage: split texts too long for one embedding into overlapping parts."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from ..ids import record_id
from ..recipe.model import ChunkSettings
from ..vmig.batch import Batch
from ..vmig.model import Record

__all__ = ["ChunkStage", "split_text"]

_BREAK = re.compile(r"\n\n|\n|(?<=[.!?])\s|\s")


def split_text(text: str, max_chars: int, overlap: int) -> list[str]:
    """Parts of at most ``max_chars`` characters, cut at the best break (paragraph, line, sentence,
    space) in the last fifth of the window, consecutive parts sharing about ``overlap`` characters."""
    if len(text) <= max_chars:
        return [text]
    parts: list[str] = []
    start = 0
    overlap = min(overlap, max_chars // 2)
    while start < len(text):
        end = min(start + max_chars, len(text))
        if end < len(text):
            window = text[start + max_chars * 4 // 5 : end]
            best = None
            for m in _BREAK.finditer(window):
                best = m
            if best is not None:
                end = start + max_chars * 4 // 5 + best.end()
        parts.append(text[start:end])
        if end >= len(text):
            break
        start = max(end - overlap, start + 1)
    return parts


class ChunkStage:
    name = "chunk"

    def __init__(self, settings: ChunkSettings) -> None:
        self.max_chars = settings.max_chars
        self.overlap = settings.overlap_chars

    def process(self, batch: Batch) -> Batch:
        limit = self.max_chars
        long = {i for i, rec in enumerate(batch.records) if rec.text is not None and len(rec.text) > limit}
        if long and batch.has_vector is not None:
            long = {i for i in long if not batch.has_vector[i]}  # a record with a vector is never split
        if not long:
            return batch
        records: list[Record] = []
        rows: list[int] = []
        for i, rec in enumerate(batch.records):
            if i not in long:
                records.append(rec)
                rows.append(i)
                continue
            assert rec.text is not None
            parts = split_text(rec.text, self.max_chars, self.overlap)
            for n, part in enumerate(parts):
                meta: dict[str, Any] = dict(rec.metadata or {})
                meta.update({"parent_id": rec.id, "part": n + 1, "parts": len(parts)})
                records.append(
                    Record(
                        id=record_id(rec.namespace, "chunk", rec.id, str(n)),
                        text=part,
                        model=rec.model,
                        namespace=rec.namespace,
                        metadata=meta,
                        created_at=rec.created_at,
                        source_store=rec.source_store,
                        modality=rec.modality,
                        score=rec.score,
                        vex_version=rec.vex_version,
                        extra=rec.extra,
                    )
                )
                rows.append(i)
        out = Batch(records=records, rejects=batch.rejects, warnings=batch.warnings, cursor=batch.cursor)
        if batch.vectors is not None and batch.has_vector is not None:
            # Only records without a vector are split, so every part keeps "no vector".
            idx = np.asarray(rows)
            out.vectors = batch.vectors[idx]
            out.has_vector = batch.has_vector[idx]
        return out

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        pass
