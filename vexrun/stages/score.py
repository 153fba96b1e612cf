"""The ``score`` stage: ``score = w_i · importance + w_r · recency``, written to each record's ``score``.

``importance`` is the fact's ``metadata.importance`` (0–1; ``default_importance`` when absent); ``recency`` is
``0.5 ** (age / half_life)``, the age measured from the record's ``created_at`` to the run's reference time
(a future ``created_at`` counts as age 0; no ``created_at`` gives ``undated_recency``). The reference time is
``reference_time`` from the recipe, else the run's start, kept in the stage state so a resumed run scores
like the uninterrupted one. Vectorised over the batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from ..vmig.batch import Batch
from .base import Stage, StageContext, StageResult, StageSpec
from .settings_extract import ScoreSettings

__all__ = ["ScoreStage", "parse_time"]

_DAY = 86400.0


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 time (naive times are UTC), or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


class ScoreStage(Stage):
    name = "score"
    ordered = True  # one reference time for the whole run

    def __init__(self, settings: ScoreSettings, reference: datetime | None = None) -> None:
        self.settings = settings
        ref = settings.reference_time or reference or datetime.now(UTC)
        if ref.tzinfo is None:
            ref = ref.replace(tzinfo=UTC)
        self.reference = ref

    def scores(self, batch: Batch) -> np.ndarray:
        s = self.settings
        n = len(batch)
        importance = np.full(n, s.default_importance, dtype=np.float64)
        created = np.full(n, np.nan, dtype=np.float64)
        for i, rec in enumerate(batch.records):
            value = (rec.metadata or {}).get("importance")
            if isinstance(value, int | float) and not isinstance(value, bool) and value == value:
                importance[i] = value
            t = parse_time(rec.created_at)
            if t is not None:
                created[i] = t
        importance = np.clip(importance, 0.0, 1.0)
        age_days = np.maximum(0.0, (self.reference.timestamp() - created) / _DAY)
        recency = np.where(np.isnan(created), s.undated_recency, np.power(0.5, age_days / s.half_life_days))
        scores: np.ndarray = s.importance_weight * importance + s.recency_weight * recency
        return scores

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        if state:
            self.restore(state)

    def process(self, batch: Batch) -> StageResult:
        return StageResult.passed(self.apply(batch))

    def apply(self, batch: Batch) -> Batch:
        """Set ``score`` on every record (in place) and return the batch."""
        if len(batch):
            for rec, value in zip(batch.records, self.scores(batch).tolist(), strict=True):
                rec.score = round(float(value), 6)
        return batch

    def state(self) -> dict[str, Any]:
        return {"reference": self.reference.isoformat()}

    def restore(self, state: dict[str, Any]) -> None:
        ref = state.get("reference")
        if isinstance(ref, str) and self.settings.reference_time is None:
            self.reference = datetime.fromisoformat(ref)
