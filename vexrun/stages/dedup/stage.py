"""The ``dedup`` stage: one fact per piece of knowledge, within each namespace.

::

    stage = DedupStage(DedupSettings(), state_dir / "dedup", embed=lambda b: embed_stage.embed(b)[0])
    stage.reset()                   # a fresh run; or stage.restore(checkpointed_state) when resuming
    result = stage.dedup(batch)     # facts (after score); stage.process(batch) is the StageResult
    result.batch    # the facts kept, with their vectors, then earlier facts that absorbed a duplicate (again)
    result.merged   # {dropped id: kept id}
    ... after the runner commits the batch: checkpoint stage.state()

In layers: an **exact** duplicate (the same text once lowercased, punctuation and extra spaces dropped) is
found by one hash lookup; the rest are embedded (through the runner's embed stage and its cache) and a
**near** duplicate is a fact whose cosine with a kept one — of this batch or of any earlier one in the same
namespace — is at or above ``threshold``. Earlier facts are searched in a :class:`~.index.CosineIndex` (exact
up to ``ann_above`` facts, IVF past it); facts of the same batch with blocked matrix products. No Python loop
runs over pairs.

Of two duplicates the more informative (more words and entities, more tags, higher importance) gives the
content; the id stays the first one's (so stores upsert in place). The kept fact records ``merged_ids``,
``merged_sources`` (source chunk ids), the union of ``source_message_ids`` and ``caused_by``, the highest
importance and score, ``duplicates`` and ``last_seen_at``. An earlier fact that absorbs a duplicate is sent
again with the batch (an upsert). Nothing is deleted: a duplicate is folded into the fact that stays.

State: the kept facts (SQLite) and each namespace's vectors (int8 files) live in the state directory; the
checkpointed :meth:`state` says how many rows are committed, and :meth:`restore` cuts back to it.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import msgspec
import numpy as np

from ...vmig.batch import Batch
from ...vmig.model import MetadataValue, Record, Scalar
from ..base import Stage, StageContext, StageResult, StageSpec
from ..settings_extract import DedupSettings
from .index import CosineIndex, normalise
from .store import FactStore, text_hash

__all__ = ["DedupCounts", "DedupResult", "DedupStage", "informativeness"]

_PAIR_BLOCK = 2048


@dataclass
class DedupCounts:
    seen: int = 0
    exact: int = 0
    semantic: int = 0
    kept: int = 0
    #: earlier facts sent again because they absorbed a duplicate
    updated: int = 0
    #: facts passed through without dedup (no vector to compare)
    unchecked: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class DedupResult:
    batch: Batch
    merged: dict[str, str] = field(default_factory=dict)
    updated: list[str] = field(default_factory=list)
    counts: DedupCounts = field(default_factory=DedupCounts)
    #: facts that were already kept (a repeated run without ``reset``): sent again as they are
    same: set[str] = field(default_factory=set)


def informativeness(rec: Record) -> float:
    meta = rec.metadata or {}
    ents, tags, imp = meta.get("entities"), meta.get("tags"), meta.get("importance")
    score = float(len((rec.text or "").split()))
    score += 2.0 * (len(ents) if isinstance(ents, list) else 0) + 0.5 * (len(tags) if isinstance(tags, list) else 0)
    if isinstance(imp, int | float) and not isinstance(imp, bool):
        score += float(imp)
    return score


def _union(*lists: Any, cap: int) -> list[Scalar]:
    out: dict[Scalar, None] = {}
    for values in lists:
        if isinstance(values, list):
            for v in values:
                if v is not None:
                    out.setdefault(v, None)
        elif values is not None:
            out.setdefault(values, None)
    return list(out)[:cap]


def merge(kept: Record, kept_info: float, dup: Record, dup_info: float, cap: int) -> tuple[Record, float, bool]:
    """``dup`` folded into ``kept``: the richer one's content under ``kept``'s id, provenance unioned. The flag
    says whether the content is ``dup``'s."""
    km, dm = kept.metadata or {}, dup.metadata or {}
    richer = dup_info > kept_info
    base = dup if richer else kept
    meta: dict[str, MetadataValue] = dict(base.metadata or {})
    ids = _union(km.get("merged_ids"), [dup.id], dm.get("merged_ids"), cap=cap)
    merged_ids: list[Scalar] = [i for i in ids if i != kept.id]
    meta["merged_ids"] = merged_ids
    sources = _union(
        km.get("merged_sources") or km.get("source_chunk_id"),
        dm.get("merged_sources") or dm.get("source_chunk_id"),
        cap=cap,
    )
    meta["merged_sources"] = sources
    meta["source_message_ids"] = _union(km.get("source_message_ids"), dm.get("source_message_ids"), cap=cap * 20)
    caused = _union(km.get("caused_by"), dm.get("caused_by"), cap=cap)
    caused = [c for c in caused if c != kept.id]
    if caused:
        meta["caused_by"] = caused
    imps = [m.get("importance") for m in (km, dm)]
    nums = [float(v) for v in imps if isinstance(v, int | float) and not isinstance(v, bool)]
    if nums:
        meta["importance"] = max(nums)
    meta["duplicates"] = len(merged_ids)
    times = sorted(t for t in (kept.created_at, dup.created_at, km.get("last_seen_at")) if isinstance(t, str))
    if times:
        meta["last_seen_at"] = times[-1]
    scores = [s for s in (kept.score, dup.score) if s is not None]
    created = min((t for t in (kept.created_at, dup.created_at) if t), default=None)
    rec = msgspec.structs.replace(
        base, id=kept.id, metadata=meta, score=max(scores) if scores else None, created_at=created
    )
    return rec, max(kept_info, dup_info), richer


class DedupStage(Stage):
    name = "dedup"
    ordered = True

    def __init__(
        self,
        settings: DedupSettings,
        state_dir: Path | str,
        embed: Callable[[Batch], Batch] | None = None,
        *,
        lazy: bool = False,
    ) -> None:
        if settings.semantic and embed is None and not lazy:
            raise ValueError("semantic dedup needs an embed callable")
        self.settings = settings
        self.dir = Path(state_dir)
        self.embed = embed
        #: namespace → its index (semantic) and row count
        self.indexes: dict[str, CosineIndex] = {}
        self.rows: dict[str, int] = {}
        self.store: FactStore
        if not lazy:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.store = FactStore(self.dir / "facts.sqlite")

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config, ctx.state_dir / "dedup", lazy=True)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        """A fresh run forgets every fact; a resumed one cuts back to the checkpointed state."""
        ctx = self.ctx
        if self.settings.semantic and self.embed is None and ctx is not None:
            resources = ctx.resources
            self.embed = lambda b: resources.embedding().process(b).batch
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = FactStore(self.dir / "facts.sqlite")
        if state is None:
            self.reset()
        else:
            self.restore(state)

    # --- lifecycle ------------------------------------------------------------------------------------------

    def _index_path(self, ns: str) -> Path:
        return self.dir / f"vectors-{blake3.blake3(ns.encode('utf-8', 'surrogatepass')).hexdigest(8)}.i8"

    def reset(self) -> None:
        """Forget every fact (a fresh run)."""
        self.close()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.store = FactStore(self.dir / "facts.sqlite")
        self.indexes, self.rows = {}, {}

    def close(self) -> None:
        for index in self.indexes.values():
            index.close()
        if hasattr(self, "store"):
            self.store.close()

    def state(self) -> dict[str, Any]:
        """What the checkpoint keeps: per namespace, the committed rows, dims and when the cells were made."""
        for index in self.indexes.values():
            index.sync()
        spaces = {}
        for ns, n in self.rows.items():
            found = self.indexes.get(ns)
            spaces[ns] = {
                "rows": n,
                "vectors": found.n if found is not None else 0,
                "dims": found.dims if found is not None else None,
                "trained_at": found.trained_at if found is not None else 0,
            }
        return {"spaces": spaces}

    def restore(self, state: dict[str, Any]) -> None:
        """Cut back to a checkpointed :meth:`state` (dropping what an uncommitted batch added)."""
        for index in self.indexes.values():
            index.close()
        self.indexes, self.rows = {}, {}
        spaces = state.get("spaces") or {}
        for ns in set(self.store.namespaces()) - set(spaces):
            self.store.truncate(ns, 0)
        for ns, info in spaces.items():
            rows = int(info.get("rows", 0))
            self.store.truncate(ns, rows)
            self.rows[ns] = rows
            dims = info.get("dims")
            if dims:
                index = self._new_index(ns, int(dims))
                index.load(int(info.get("vectors", rows)), int(info.get("trained_at", 0)))
                self.indexes[ns] = index

    def _new_index(self, ns: str, dims: int) -> CosineIndex:
        s = self.settings
        return CosineIndex(dims, self._index_path(ns), ann_above=s.ann_above, nprobe=s.nprobe)

    # --- the stage ------------------------------------------------------------------------------------------

    def process(self, batch: Batch) -> StageResult:
        """Facts in, one per piece of knowledge out; earlier facts that absorbed a duplicate are sent again
        (``batch.resent``: the graph has linked them already)."""
        res = self.dedup(batch)
        out = res.batch
        out.resent = frozenset(res.updated)
        c = res.counts
        merged = c.exact + c.semantic
        counts = {
            "in": len(batch),
            "out": len(out) - len(res.updated),
            "skipped": merged,
            "exact": c.exact,
            "semantic": c.semantic,
        }
        return StageResult(out, counts)

    def dedup(self, batch: Batch) -> DedupResult:
        counts = DedupCounts(seen=len(batch))
        result = DedupResult(batch=Batch(records=[], cursor=batch.cursor), counts=counts)
        if not len(batch):
            return result
        if self.settings.semantic:
            assert self.embed is not None
            batch = self.embed(batch)
        groups: dict[str, list[int]] = {}
        for i, rec in enumerate(batch.records):
            groups.setdefault(rec.namespace or "", []).append(i)
        out: list[tuple[Record, np.ndarray | None]] = []
        for ns, idx in groups.items():
            out.extend(self._space(ns, batch, idx, result))
        self._finish(out, result)
        return result

    def _space(self, ns: str, batch: Batch, idx: list[int], result: DedupResult) -> list[tuple[Record, Any]]:
        s, counts = self.settings, result.counts
        recs = [batch.records[i] for i in idx]
        vecs: list[np.ndarray | None] = [batch.vector(i) for i in idx]
        m = len(recs)
        checked = [not s.semantic or v is not None for v in vecs]
        passthrough = [(recs[j], vecs[j]) for j in range(m) if not checked[j]]
        counts.unchecked += len(passthrough)
        hashes = [text_hash(r.text or "") for r in recs]
        #: None: the fact stays; ("new", k): folded into fact k of this batch; ("old", row): into a stored fact
        target: list[tuple[str, int] | None] = [None] * m
        #: the facts merged for being alike (not the same text): their vectors join the index as aliases
        near_dup = [False] * m
        if s.exact:
            known = self.store.find_hashes(ns, (h for h, ok in zip(hashes, checked, strict=True) if ok))
            first: dict[int, int] = {}
            for j, h in enumerate(hashes):
                if not checked[j]:
                    continue
                if h in known:
                    target[j] = ("old", known[h])
                elif h in first:
                    target[j] = ("new", first[h])
                else:
                    first[h] = j
            counts.exact += sum(1 for t in target if t is not None)
        index = self.indexes.get(ns)
        cand: list[int] = []
        if s.semantic:
            cand = [j for j in range(m) if checked[j] and target[j] is None]
            if cand:
                q = normalise(np.stack([vecs[j] for j in cand]))  # type: ignore[misc]
                if index is None:
                    if not self.rows.get(ns):
                        self._index_path(ns).unlink(missing_ok=True)  # left by a run that was never committed
                    index = self.indexes[ns] = self._new_index(ns, q.shape[1])
                rows, sims = index.search(q)
                best_i, best_s = _earlier_best(q)
                for t, j in enumerate(cand):
                    choice, top = None, -1.0
                    if rows[t] >= 0 and sims[t] >= s.threshold:
                        choice, top = ("old", int(rows[t])), float(sims[t])
                    if best_i[t] >= 0 and best_s[t] >= s.threshold and best_s[t] > top:
                        i = cand[int(best_i[t])]
                        choice = target[i] or ("new", i)
                    target[j] = choice
                    if choice is not None:
                        counts.semantic += 1
                        near_dup[j] = True
        for j in range(m):  # point every duplicate at the fact that stays (its target may have moved on)
            tj = target[j]
            if tj is not None and tj[0] == "new" and target[tj[1]] is not None:
                target[j] = target[tj[1]]
        queried = {j: t for t, j in enumerate(cand)}
        return passthrough + self._apply(ns, recs, vecs, hashes, checked, target, near_dup, index, queried, result)

    def _apply(
        self,
        ns: str,
        recs: list[Record],
        vecs: list[np.ndarray | None],
        hashes: list[int],
        checked: list[bool],
        target: list[tuple[str, int] | None],
        near_dup: list[bool],
        index: CosineIndex | None,
        queried: dict[int, int],
        result: DedupResult,
    ) -> list[tuple[Record, Any]]:
        cap = self.settings.max_merged_ids
        infos = [informativeness(r) for r in recs]
        vsrc = list(range(len(recs)))  # whose vector goes with the content a kept fact ends up with (output)
        olds = self.store.records(ns, {t[1] for t in target if t is not None and t[0] == "old"})
        touched: set[int] = set()
        for j, t in enumerate(target):
            if t is None:
                continue
            dup = recs[j]
            if t[0] == "new":
                k = t[1]
                recs[k], infos[k], took = merge(recs[k], infos[k], dup, infos[j], cap)
                if took:
                    vsrc[k] = j
                result.merged[dup.id] = recs[k].id
            else:
                rec, info = olds[t[1]]
                touched.add(t[1])
                if rec.id != dup.id:  # the very same fact again (a re-run) is not its own duplicate
                    merged, merged_info, _ = merge(rec, info, dup, infos[j], cap)
                    olds[t[1]] = (merged, merged_info)
                    result.merged[dup.id] = rec.id
                else:
                    result.same.add(dup.id)
        roots = [j for j in range(len(recs)) if checked[j] and target[j] is None]
        start = self.rows.get(ns, 0)
        row_of = {j: start + n for n, j in enumerate(roots)}
        self.rows[ns] = start + len(roots)
        if index is not None:
            # each new fact's vector, and the vectors of near-duplicates as aliases of the fact they joined
            # (so a paraphrase of a paraphrase still finds it)
            owned = [(j, row_of[j]) for j in roots]
            for j, t in enumerate(target):
                if t is not None and near_dup[j] and recs[j].id not in result.same:
                    owned.append((j, row_of[t[1]] if t[0] == "new" else t[1]))
            if owned:
                near = index.last_nearest
                hint = None
                if near is not None:  # the cells the search already found for these vectors
                    hint = np.array([near[queried[j]] if j in queried else -1 for j, _ in owned])
                vectors = normalise(np.stack([vecs[j] for j, _ in owned]))  # type: ignore[misc]
                index.add(vectors, np.array([o for _, o in owned], dtype=np.int64), hint)
        hash_rows = [(hashes[j], row_of[j]) for j in roots]
        for j, t in enumerate(target):
            if t is not None:
                hash_rows.append((hashes[j], row_of[t[1]] if t[0] == "new" else t[1]))
        self.store.write(
            ns,
            [(row_of[j], recs[j], infos[j]) for j in roots],
            [(r, *olds[r]) for r in sorted(touched)],
            hash_rows,
        )
        result.counts.kept += len(roots)
        result.counts.updated += len(touched)
        result.updated.extend(olds[r][0].id for r in sorted(touched))
        out: list[tuple[Record, Any]] = [(recs[j], vecs[vsrc[j]]) for j in roots]
        out += [(olds[r][0], None) for r in sorted(touched)]
        return out

    def _finish(self, out: list[tuple[Record, Any]], result: DedupResult) -> None:
        """Remap causes to the facts that stayed, give earlier facts their vectors again, build the batch."""
        for rec, _ in out:
            caused = (rec.metadata or {}).get("caused_by")
            if isinstance(caused, list) and rec.metadata is not None:
                mapped = _union([result.merged.get(str(c), c) for c in caused], cap=len(caused))
                rec.metadata["caused_by"] = [c for c in mapped if c != rec.id]
        need = [i for i, (_, v) in enumerate(out) if v is None]
        if self.settings.semantic and need and self.embed is not None:
            again = self.embed(Batch(records=[out[i][0] for i in need]))
            by_id = {r.id: (r, again.vector(n)) for n, r in enumerate(again.records)}
            for i in need:
                rec = out[i][0]
                if rec.id in by_id:
                    out[i] = by_id[rec.id]
        records = [r for r, _ in out]
        result.batch.records = records
        dims = next((len(v) for _, v in out if v is not None), None)
        if dims is not None:
            mat = np.zeros((len(out), dims), dtype=np.float32)
            has = np.zeros(len(out), dtype=bool)
            for i, (_, v) in enumerate(out):
                if v is not None and len(v) == dims:
                    mat[i] = v
                    has[i] = True
            result.batch.vectors, result.batch.has_vector = mat, has


def _earlier_best(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each row j of ``q``: the most similar row i < j and its cosine. Where no earlier row is similar at
    all the cosine reported is 0 (the caller's threshold is positive)."""
    m = len(q)
    best_i = np.full(m, -1, dtype=np.int64)
    best_s = np.full(m, -np.inf, dtype=np.float32)
    cols = np.arange(m)
    for a in range(0, m - 1, _PAIR_BLOCK):
        b = min(m, a + _PAIR_BLOCK)
        sims = np.triu(q[a:b] @ q.T, k=a + 1)  # row r is fact a + r; only columns j > a + r stay
        top = np.argmax(sims, axis=0)
        val = sims[top, cols]
        better = val > best_s
        best_s[better] = val[better]
        best_i[better] = top[better] + a
    return best_i, best_s
