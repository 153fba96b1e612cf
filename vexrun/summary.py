"""What a run reports: its status, and each stage of the plan with its counts, in the order the stages ran."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .stages.base import StageSpec

__all__ = ["RunSummary", "stage_rows"]


def _slot(counts: dict[str, Any], spec: StageSpec) -> dict[str, Any]:
    """The counts of one stage, in the stage row's terms (in / out / rejected, and the stage's own figures)."""
    if spec.role == "source":
        found = counts.get("sources", {}).get(spec.title)
        if found is None:  # a checkpoint from before per-source counts: the run's single source
            src = counts.get("source", {})
            found = {"in": src.get("read", 0), "out": src.get("passed", 0), "rejected": src.get("rejected", 0)}
        return dict(found)
    if spec.role == "store":
        st = dict(counts.get("store", {}).get(spec.title, {}))
        st["out"] = st.pop("written", 0)
        return st
    if spec.role == "publish":
        return dict(counts.get(spec.name) or {})
    return dict(counts.get(spec.name, {}))


def stage_rows(stages: list[StageSpec], counts: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per stage, in execution order: ``{"stage", "title", "in", "out", "rejected", ...}``."""
    rows = []
    for spec in stages:
        found = _slot(counts, spec)
        row: dict[str, Any] = {"stage": spec.name, "title": spec.title}
        for key in ("in", "out", "rejected"):
            row[key] = found.pop(key, 0)
        found.pop("note", None)  # written by runs before the stage contract; rendered from the counts now
        row.update(found)
        rows.append(row)
    return rows


@dataclass
class RunSummary:
    recipe: str
    run_id: int
    status: str
    state_dir: str
    resumed_at_batch: int | None
    batches: int
    elapsed_s: float
    counts: dict[str, Any]
    rejects: int
    rejects_file: str | None
    targets: list[str]
    exit_code: int
    #: the stages that ran, in order (the plan's, or the rejects file in place of the sources on a retry)
    stages: list[StageSpec] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    #: seconds this process spent in each part of the run, by stage title (reading, each stage, each target)
    seconds: dict[str, float] = field(default_factory=dict)
    #: why a completed run read or kept no record (None when it did)
    empty: str | None = None

    def slowest(self) -> tuple[str, float, float] | None:
        """(stage title, seconds, share of the time measured) of the part of the run that took longest."""
        total = sum(self.seconds.values())
        if not self.seconds or total <= 0:
            return None
        title, secs = max(self.seconds.items(), key=lambda kv: kv[1])
        return title, secs, secs / total

    def rows(self) -> list[dict[str, Any]]:
        return stage_rows(self.stages, self.counts)

    def duplicates(self) -> dict[str, Any]:
        """Records that replaced an earlier record of the same id (the rule of every target: the last write
        wins): those the ``ids`` stage dropped within a batch, plus the most any target counted across batches."""
        from .ids import DUPLICATES_RULE

        ids = self.counts.get("ids") or {}
        within = int(ids.get("duplicates", ids.get("skipped", 0)))
        targets = {title: int(st.get("duplicates", 0)) for title, st in (self.counts.get("store") or {}).items()}
        return {
            "rule": DUPLICATES_RULE,
            "count": within + max(targets.values(), default=0),
            "within_batches": within,
            "across_batches": targets,
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "run": self.run_id,
            "status": self.status,
            "state_dir": self.state_dir,
            "resumed_at_batch": self.resumed_at_batch,
            "batches": self.batches,
            "elapsed_s": round(self.elapsed_s, 3),
            "stages": self.rows(),
            #: the counts by stage name, as before the "stages" list (kept for one release)
            "counts": self.counts,
            "rejected": self.rejects,
            "rejects_file": self.rejects_file,
            "duplicates": self.duplicates(),
            #: why signing and sync did not happen (publish.on_rejects), when they did not
            "publish_skipped": (self.counts.get("publish") or {}).get("reason"),
            #: run.verify's reconciliation of each target: expected and held counts, what was read back
            "verify": self.counts.get("verify") or {},
            "targets": self.targets,
            "exit_code": self.exit_code,
            #: seconds spent per stage by the process that ran (this attempt, not earlier ones of a resumed run)
            "seconds": self.seconds,
            "why_empty": self.empty,
        }
