"""The score stage: importance and recency (exponential decay by age) against a reference time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from vexrun.stages.score import ScoreStage, parse_time
from vexrun.stages.settings_extract import ScoreSettings
from vexrun.vmig import Batch, Record

REF = datetime(2025, 1, 31, tzinfo=UTC)


def rec(i: int, importance: object = None, age_days: float | None = None) -> Record:
    meta = {} if importance is None else {"importance": importance}
    created = None if age_days is None else (REF - timedelta(days=age_days)).isoformat().replace("+00:00", "Z")
    return Record(id=f"r{i}", text="x", metadata=meta, created_at=created)


def test_score_is_weighted_importance_plus_recency() -> None:
    stage = ScoreStage(ScoreSettings(), reference=REF)
    batch = Batch(records=[rec(0, 1.0, 0), rec(1, 0.5, 30), rec(2, 0.2, 60), rec(3, 0.0, 3000)])
    stage.apply(batch)
    scores = [r.score for r in batch.records]
    assert scores == pytest.approx([0.7 + 0.3, 0.35 + 0.15, 0.14 + 0.075, 0.0], abs=1e-6)


def test_half_life_weights_and_defaults_are_settings() -> None:
    s = ScoreSettings(importance_weight=0.0, recency_weight=1.0, half_life_days=7, default_importance=0.9)
    stage = ScoreStage(s, reference=REF)
    batch = Batch(records=[rec(0, None, 7), rec(1, None, 14), rec(2, None, None), rec(3, None, -5)])
    stage.apply(batch)
    assert [r.score for r in batch.records] == pytest.approx([0.5, 0.25, 0.0, 1.0])  # a future time is age 0
    only_importance = ScoreStage(ScoreSettings(importance_weight=1, recency_weight=0, default_importance=0.9), REF)
    b2 = Batch(records=[rec(0, None, 1), rec(1, "high", 1), rec(2, True, 1), rec(3, 7.0, 1)])
    only_importance.apply(b2)
    assert [r.score for r in b2.records] == pytest.approx([0.9, 0.9, 0.9, 1.0])  # not numbers: the default; clipped


def test_reference_time_from_the_recipe_wins_and_survives_resume() -> None:
    fixed = datetime(2024, 1, 1, tzinfo=UTC)
    assert ScoreStage(ScoreSettings(reference_time=fixed), reference=REF).reference == fixed
    first = ScoreStage(ScoreSettings(), reference=REF)
    resumed = ScoreStage(ScoreSettings(), reference=REF + timedelta(days=3))
    resumed.restore(first.state())
    assert resumed.reference == REF
    naive = ScoreStage(ScoreSettings(reference_time=datetime(2024, 1, 1)))
    assert naive.reference.tzinfo is not None


def test_timestamps_are_read_as_instants() -> None:
    assert parse_time("2025-01-31T00:00:00Z") == parse_time("2025-01-31T00:00:00+00:00") == REF.timestamp()
    assert parse_time("2025-01-31T00:00:00") == REF.timestamp()  # naive is UTC
    assert parse_time("yesterday") is None and parse_time(None) is None


def test_settings_are_strict() -> None:
    with pytest.raises(ValidationError):
        ScoreSettings(importance_weight=0, recency_weight=0)
    with pytest.raises(ValidationError):
        ScoreSettings(half_life=3)  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        ScoreSettings(half_life_days=0)


def test_an_empty_batch_is_fine() -> None:
    assert len(ScoreStage(ScoreSettings(), REF).apply(Batch(records=[]))) == 0
