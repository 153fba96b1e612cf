"""The ``graph`` stage of extract mode: typed, weighted edges between facts.

- ``temporal`` (weight 1): each fact to the next fact of the same conversation, in conversation order;
- ``tag``: a new fact to recent facts sharing a tag, weighted by the Jaccard overlap of their tag sets
  (edges lighter than ``min_tag_weight`` are not made);
- ``entity``: a new fact to recent facts naming the same entity (case-insensitive), weighted by the Jaccard
  overlap of their entity sets, the shared entities in the edge's metadata;
- ``causal`` (weight 1): cause → effect, from each fact's ``metadata.caused_by`` (the extraction's relations,
  remapped by dedup to the facts that stayed).

Edges go from the older fact to the newer. Memory is bounded: the last ``memory_facts`` facts (their tags and
entities) and the last fact of the most recent conversations, kept in :meth:`state` for the checkpoint; a new
fact is linked to at most ``links_per_key`` recent facts per tag or entity, so a common tag cannot make a
quadratic number of edges.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Collection
from typing import Any

from ..connectors.base import Edge
from ..vmig.batch import Batch
from ..vmig.model import Record
from .base import Stage, StageContext, StageResult, StageSpec
from .settings_extract import FactGraphSettings

__all__ = ["FactGraphStage"]

_MAX_CONVERSATIONS = 256


def _keys(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(dict.fromkeys(" ".join(str(v).lower().split()) for v in value if isinstance(v, str) and v.strip()))


class FactGraphStage(Stage):
    name = "graph"
    ordered = True
    edges_only = True

    def __init__(self, settings: FactGraphSettings) -> None:
        self.settings = settings
        #: fact id → (tags, entities), oldest first
        self.recent: OrderedDict[str, tuple[tuple[str, ...], tuple[str, ...]]] = OrderedDict()
        #: conversation → last fact id
        self.last: OrderedDict[str, str] = OrderedDict()
        self._by_tag: dict[str, deque[str]] = {}
        self._by_entity: dict[str, deque[str]] = {}

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        if state is not None:
            self.restore(state)

    def process(self, batch: Batch) -> StageResult:
        edges = self.link(batch, exclude=batch.resent)
        return StageResult(batch, {"in": len(batch), "out": len(batch), "edges": len(edges)}, edges=edges)

    def link(self, batch: Batch, exclude: Collection[str] = ()) -> list[Edge]:
        """The edges of this batch's facts. ``exclude``: ids of facts sent again (dedup's ``updated``), which
        already have their edges."""
        s = self.settings
        edges: dict[tuple[str, str, str], Edge] = {}

        def add(edge: Edge) -> None:
            if edge.src != edge.dst:
                edges.setdefault((edge.src, edge.dst, edge.type), edge)

        for rec in batch.records:
            if rec.id in exclude:
                continue
            meta = rec.metadata or {}
            if s.temporal:
                self._temporal(rec, add)
            tags, ents = _keys(meta.get("tags")), _keys(meta.get("entities"))
            if s.tag and tags:
                for other, w, _ in self._overlaps(rec.id, tags, self._by_tag, 0):
                    if w >= s.min_tag_weight:
                        add(Edge(other, rec.id, "tag", round(w, 4)))
            if s.entity and ents:
                for other, w, shared in self._overlaps(rec.id, ents, self._by_entity, 1):
                    add(Edge(other, rec.id, "entity", round(w, 4), {"entities": shared}))
            causes = meta.get("caused_by")
            if s.causal and isinstance(causes, list):
                for cause in causes:
                    if isinstance(cause, str):
                        add(Edge(cause, rec.id, "causal", 1.0, {"relation": "because"}))
            self._remember(rec.id, tags, ents)
        return list(edges.values())

    def _temporal(self, rec: Record, add: Any) -> None:
        meta = rec.metadata or {}
        conv = meta.get("conversation_id") or meta.get("source_chunk_id")
        if not isinstance(conv, str):
            return
        key = f"{rec.namespace or ''}\x1f{conv}"
        prev = self.last.pop(key, None)
        if prev is not None:
            add(Edge(prev, rec.id, "temporal", 1.0))
        self.last[key] = rec.id
        while len(self.last) > _MAX_CONVERSATIONS:
            self.last.popitem(last=False)

    def _overlaps(
        self, fid: str, keys: tuple[str, ...], index: dict[str, deque[str]], part: int
    ) -> list[tuple[str, float, list[str]]]:
        """Recent facts sharing a key: (id, Jaccard overlap, shared keys)."""
        mine = set(keys)
        seen: set[str] = set()
        out = []
        for k in keys:
            for other in index.get(k, ()):
                if other == fid or other in seen or other not in self.recent:
                    continue
                seen.add(other)
                theirs = set(self.recent[other][part])
                shared = mine & theirs
                if shared:
                    out.append((other, len(shared) / len(mine | theirs), sorted(shared)))
        return out

    def _remember(self, fid: str, tags: tuple[str, ...], ents: tuple[str, ...]) -> None:
        self.recent.pop(fid, None)
        self.recent[fid] = (tags, ents)
        n = self.settings.links_per_key
        for keys, index in ((tags, self._by_tag), (ents, self._by_entity)):
            for k in keys:
                q = index.get(k)
                if q is None:
                    q = index[k] = deque(maxlen=n)
                if fid not in q:
                    q.append(fid)
        while len(self.recent) > self.settings.memory_facts:
            old, (old_tags, old_ents) = self.recent.popitem(last=False)
            for keys, index in ((old_tags, self._by_tag), (old_ents, self._by_entity)):
                for k in keys:
                    q = index.get(k)
                    if q is not None and all(x not in self.recent for x in q):
                        del index[k]

    def state(self) -> dict[str, Any]:
        return {
            "recent": [[fid, list(t), list(e)] for fid, (t, e) in self.recent.items()],
            "last": dict(self.last),
        }

    def restore(self, state: dict[str, Any]) -> None:
        self.recent, self.last = OrderedDict(), OrderedDict(state.get("last") or {})
        self._by_tag, self._by_entity = {}, {}
        for fid, tags, ents in state.get("recent") or []:
            self._remember(str(fid), tuple(tags), tuple(ents))
