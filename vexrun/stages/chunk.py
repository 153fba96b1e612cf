"""The ``chunk`` stage: split texts too long for one embedding into overlapping parts."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..ids import record_id
from ..vmig.batch import Batch
from ..vmig.model import Record
from .base import Stage, StageContext, StageResult, StageSpec

__all__ = ["ChunkSettings", "ChunkStage", "IdsStage", "split_text"]


class ChunkSettings(BaseModel):
    """The recipe's ``split:`` section (its old name ``chunk:`` still works), the settings of the ``chunk``
    stage: every text longer than ``max_chars`` is split into overlapping parts, whatever a source's own
    ``chunk:`` mode made the records (``turn`` included). Each part becomes its own record with
    ``metadata.part`` / ``metadata.parts`` and the parent id; a record that already has a vector is never
    split."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_chars: int = Field(
        default=2000,
        ge=200,
        description="Longest text kept as one record; longer texts are split into parts, in every source chunk "
        "mode ('turn' included).",
    )
    overlap_chars: int = Field(default=200, ge=0, description="Characters shared by consecutive parts.")


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


class ChunkStage(Stage):
    name = "chunk"

    def __init__(self, settings: ChunkSettings) -> None:
        self.max_chars = settings.max_chars
        self.overlap = settings.overlap_chars

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config)._bind(spec, ctx)

    def process(self, batch: Batch) -> StageResult:
        out = self.split(batch)
        return StageResult.passed(out, len(batch), split=len(out) - len(batch))

    def split(self, batch: Batch) -> Batch:
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
        # Only records without a vector are split, so every part keeps "no vector".
        out = batch.select(rows)
        out.records = records
        out.lines = []
        return out


class IdsStage(Stage):
    """One record per id in a batch, by the rule every target follows for an id written twice in a run: the
    last write wins. An earlier record whose id repeats later in the same batch is dropped, as the upsert of
    the later one would replace it anyway; counted as ``duplicates`` (and ``skipped``, the run table's
    column). Repeats across batches reach the targets, which apply the same rule and count them."""

    name = "ids"

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls()._bind(spec, ctx)

    def process(self, batch: Batch) -> StageResult:
        seen: dict[str, int] = {}
        for i, rec in enumerate(batch.records):
            seen[rec.id] = i
        if len(seen) == len(batch.records):
            return StageResult.passed(batch, skipped=0, duplicates=0)
        out = batch.select(sorted(seen.values()))
        out.lines = []
        repeated = len(batch) - len(out)
        return StageResult.passed(out, len(batch), skipped=repeated, duplicates=repeated)
