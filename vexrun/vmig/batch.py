"""A batch: records plus their vectors as one float32 matrix."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .findings import Finding
from .model import Record

__all__ = ["Batch", "Reject"]


@dataclass(slots=True)
class Reject:
    """A line the reader could not turn into a record: where, why, and its raw bytes."""

    line: int
    findings: list[Finding]
    raw: bytes

    @property
    def reason(self) -> str:
        errors = [f for f in self.findings if f.severity == "error"] or self.findings
        return "; ".join(f"{f.code}: {f.message}" for f in errors)


@dataclass(slots=True)
class Batch:
    """``records[i]`` has the vector ``vectors[i]`` when ``has_vector[i]``. All vectors of a batch have
    the same dimension; rows of records without a vector are zeros. ``lines`` gives the source line of
    each record when the batch was read from a file; ``rejects`` the lines that were not records."""

    records: list[Record]
    vectors: np.ndarray | None = None
    has_vector: np.ndarray | None = None
    lines: list[int] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)
    #: Where the next batch starts in the source: (byte offset in the uncompressed stream, line number).
    cursor: tuple[int, int] | None = None
    #: ids of records sent again in this batch (facts that absorbed a duplicate): already linked by the graph
    resent: frozenset[str] = frozenset()
    #: edges a source read with these records (``connectors.base.Edge``; a graph store's relationships whose
    #: ends it has yielded by now), handed to the sinks with the batch, before the graph stage's own
    edges: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def dims(self) -> int | None:
        return None if self.vectors is None else int(self.vectors.shape[1])

    def vector(self, i: int) -> np.ndarray | None:
        if self.vectors is None or self.has_vector is None or not self.has_vector[i]:
            return None
        row: np.ndarray = self.vectors[i]
        return row

    def __iter__(self) -> Iterator[tuple[Record, np.ndarray | None]]:
        for i, rec in enumerate(self.records):
            yield rec, self.vector(i)

    def select(self, rows: Sequence[int]) -> Batch:
        """A batch of these rows (in this order), keeping everything else the batch carries."""
        out = Batch(
            records=[self.records[i] for i in rows],
            rejects=self.rejects,
            warnings=self.warnings,
            cursor=self.cursor,
            resent=self.resent,
        )
        if self.lines:
            out.lines = [self.lines[i] for i in rows]
        if self.vectors is not None and self.has_vector is not None:
            idx = np.asarray(rows, dtype=np.intp)
            out.vectors = self.vectors[idx]
            out.has_vector = self.has_vector[idx]
        return out

    @classmethod
    def from_records(
        cls, records: Sequence[Record], vectors: Sequence[Sequence[float] | np.ndarray | None] | None = None
    ) -> Batch:
        """Build a batch from records and optional per-record vectors (all of one dimension)."""
        recs = list(records)
        if vectors is None or all(v is None for v in vectors):
            return cls(records=recs)
        if len(vectors) != len(recs):
            raise ValueError(f"{len(recs)} records but {len(vectors)} vectors")
        dims = {len(v) for v in vectors if v is not None}
        if len(dims) != 1:
            raise ValueError(f"a batch holds vectors of one dimension, got {sorted(dims)}")
        (d,) = dims
        mat = np.zeros((len(recs), d), dtype=np.float32)
        mask = np.zeros(len(recs), dtype=bool)
        for i, v in enumerate(vectors):
            if v is not None:
                mat[i] = np.asarray(v, dtype=np.float32)
                mask[i] = True
        return cls(records=recs, vectors=mat, has_vector=mask)
