"""The ``graph`` stage (raw mode): ``temporal`` edges between consecutive records of a conversation."""

from __future__ import annotations

from typing import Any

from ..connectors.base import Edge
from ..vmig.batch import Batch
from .base import Stage, StageContext, StageResult, StageSpec
from .settings_extract import FactGraphSettings

__all__ = ["GraphStage"]

_MAX_OPEN = 64  # conversations remembered across batches (sources stream them one after another)


class GraphStage(Stage):
    name = "graph"
    ordered = True
    edges_only = True

    def __init__(self, settings: FactGraphSettings) -> None:
        self.temporal = settings.temporal
        #: conversation id → id of its last record seen (insertion-ordered, bounded)
        self.last: dict[str, str] = {}

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.restore(state)

    def process(self, batch: Batch) -> StageResult:
        edges = self.link(batch)
        return StageResult(batch, {"in": len(batch), "out": len(batch), "edges": len(edges)}, edges=edges)

    def link(self, batch: Batch) -> list[Edge]:
        if not self.temporal:
            return []
        edges: list[Edge] = []
        for rec in batch.records:
            conv = (rec.metadata or {}).get("conversation_id")
            if not isinstance(conv, str):
                continue
            key = f"{rec.namespace or ''}\x1f{conv}"
            prev = self.last.pop(key, None)
            if prev is not None and prev != rec.id:
                edges.append(Edge(prev, rec.id, "temporal", 1.0))
            self.last[key] = rec.id
            if len(self.last) > _MAX_OPEN:
                self.last.pop(next(iter(self.last)))
        return edges

    def state(self) -> dict[str, Any]:
        return {"last": self.last}

    def restore(self, state: dict[str, Any]) -> None:
        self.last = dict(state.get("last", {}))
