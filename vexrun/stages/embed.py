"""The ``embed`` stage: give every record a vector from the recipe's embedder, through the cache.

A record keeps its vector when it was made by the same model; otherwise (no vector, or a vector from
another model) its text is embedded. Identical texts are computed once per batch, cached texts are not
computed at all, and fresh results are committed to the cache the moment they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..cache import EmbedCache
from ..errors import VexrunError
from ..providers.base import Embedder
from ..vmig.batch import Batch
from .base import Stage, StageContext, StageResult, StageSpec, rejected_from

__all__ = ["EmbedCounts", "EmbedStage"]


@dataclass
class EmbedCounts:
    kept: int = 0
    cached: int = 0
    computed: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


class EmbedStage(Stage):
    name = "embed"

    def __init__(
        self,
        embedder: Embedder | None,
        cache: EmbedCache | None,
        *,
        settings_key: str = "",
        commit_every: int | None = None,
    ) -> None:
        self.settings_key = settings_key
        self.commit_every_setting = commit_every
        #: retries the embedder reported up to the last batch (counts carry the difference)
        self._retries = 0
        self.embedder: Embedder
        self.cache: EmbedCache
        if embedder is not None and cache is not None:
            self._attach(embedder, cache)

    def _attach(self, embedder: Embedder, cache: EmbedCache) -> None:
        self.embedder = embedder
        self.cache = cache
        self.model_id = embedder.model_id
        #: the cache is keyed by the model and the settings that change its output (normalisation, …)
        key = self.settings_key
        self.cache_model = f"{self.model_id}#{key}" if key else self.model_id
        cfg = getattr(embedder, "config", None)
        per_call = int(getattr(cfg, "batch_size", 0) or 256) * int(getattr(cfg, "concurrency", 1) or 1)
        #: texts per embedder call, each call's results committed to the cache before the next
        self.commit_every = self.commit_every_setting or per_call

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(None, None, settings_key=spec.fingerprint)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        assert self.ctx is not None
        res = self.ctx.resources
        self._attach(res.embedder(), res.cache())
        self._retries = self._embedder_retries()

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("embedder", "cache"):
            state.pop(key, None)
        return state

    def _embedder_retries(self) -> int:
        usage = getattr(self.embedder, "usage", None)
        return int(usage.get("retries", 0)) if isinstance(usage, dict) else 0

    def process(self, batch: Batch) -> StageResult:
        out, ec = self.embed(batch)
        retries = self._embedder_retries()
        counts = {
            "in": len(batch),
            "out": len(out),
            "computed": ec.computed,
            "cached": ec.cached,
            "kept": ec.kept,
            "rejected": len(ec.rejected),
            "retries": retries - self._retries,
        }
        self._retries = retries
        result = StageResult(out, counts, rejected=rejected_from(batch, ec.rejected))
        if ec.rejected and self.ctx is not None and self.ctx.on_error == "fail":
            raise VexrunError(
                f"a record failed terminally ({next(iter(ec.rejected.values()))}) and run.on_error is 'fail'",
                hint=f"fix it, then resume with: {self.ctx.resume}",
            )
        return result

    def embed(self, batch: Batch) -> tuple[Batch, EmbedCounts]:
        """The batch with a vector for every record that has one or a text, and what it took."""
        counts = EmbedCounts()
        n = len(batch)
        if n == 0:
            return batch, counts
        model_id = self.model_id
        keep_rows: list[int] = []
        embed_rows: list[int] = []
        for i, rec in enumerate(batch.records):
            if batch.vector(i) is not None and rec.model == model_id:
                keep_rows.append(i)
            elif rec.text:
                embed_rows.append(i)
            else:
                why = "has no vector" if batch.vector(i) is None else f"has a vector from '{rec.model}'"
                counts.rejected[rec.id] = f"embed: the record {why} and no text to embed with {model_id}"
        texts = [batch.records[i].text or "" for i in embed_rows]
        keys, found = self.cache.get_many(self.cache_model, texts)
        todo: dict[bytes, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in found and key not in todo:
                todo[key] = text
        # Longest first, so each call holds texts of similar length (little padding in a batched model),
        # whatever the order the records came in.
        todo_keys = sorted(todo, key=lambda k: len(todo[k]), reverse=True)
        for start in range(0, len(todo_keys), self.commit_every):
            # Commit each slice to the cache as soon as it is computed: a crash loses at most one slice.
            part = todo_keys[start : start + self.commit_every]
            vecs = np.asarray(self.embedder.embed([todo[k] for k in part]), dtype=np.float32)
            if vecs.ndim != 2 or vecs.shape[0] != len(part) or not np.isfinite(vecs).all():
                raise VexrunError(
                    f"the embedder {model_id} returned {vecs.shape} for {len(part)} texts (or non-finite values)"
                )
            self.cache.put_many(self.cache_model, part, vecs)
            for j, key in enumerate(part):
                found[key] = vecs[j]
        counts.computed = len(todo)
        counts.cached = len(embed_rows) - sum(1 for k in keys if k in todo)
        counts.kept = len(keep_rows)

        dims = None
        if embed_rows:
            dims = int(found[keys[0]].shape[0])
        elif keep_rows and batch.vectors is not None:
            dims = int(batch.vectors.shape[1])
        rows = sorted(keep_rows + embed_rows)
        out = batch.select(rows)
        records = out.records
        out.vectors = out.has_vector = None
        if dims is None:
            return out, counts
        mat = np.zeros((len(rows), dims), dtype=np.float32)
        pos = {r: j for j, r in enumerate(rows)}
        if keep_rows:
            assert batch.vectors is not None
            if batch.vectors.shape[1] != dims:
                raise VexrunError(f"records made by {model_id} have {batch.vectors.shape[1]} dims, not {dims}")
            mat[[pos[r] for r in keep_rows]] = batch.vectors[keep_rows]
        for r, key in zip(embed_rows, keys, strict=True):
            mat[pos[r]] = found[key]
        out.vectors = mat
        out.has_vector = np.ones(len(rows), dtype=bool)
        for rec in records:
            rec.model = model_id
            rec.dims = dims
        return out, counts
