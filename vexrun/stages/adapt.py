"""The ``adapt`` stage: make vectors from another model (or of other dims) fit the target.

- ``reembed``: embed the text again with the target model (the embed stage does it; records without text are
  rejected there);
- ``project``: a linear map from the source space to the target space, fitted by ridge regression on a sample
  of records whose existing vectors are paired with their texts embedded by the target model; the fit is
  saved beside the checkpoint (so a resumed run uses the same map) and its quality reported as the mean
  cosine between projected and true target vectors on a held-back part of the sample;
- ``truncate``: keep the first ``dims`` components and renormalise (for Matryoshka-trained models).

Records that still do not fit are rejected with the reason, never written wrongly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from ..errors import VexrunError
from ..vmig.batch import Batch
from ..vmig.model import Record
from .base import Stage, StageContext, StageResult, StageSpec, rejected_from

__all__ = ["AdaptCounts", "AdaptSettings", "AdaptStage", "fit_projection"]


class AdaptSettings(BaseModel):
    """``adapt:`` — how vectors from another model are made to fit the target."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["reembed", "project", "truncate"] = Field(
        default="reembed",
        description="reembed: embed the text again with the target model; project: a fitted linear map; "
        "truncate: keep the first `dims` components (Matryoshka models) and renormalise.",
    )
    dims: int | None = Field(default=None, ge=1, description="truncate: the dims to keep (default: the embedder's).")
    model: str | None = Field(
        default=None, description="truncate without an embedder: the model name recorded on truncated vectors."
    )
    sample: int = Field(default=2000, ge=16, le=200_000, description="project: records used to fit the map.")
    holdout: float = Field(default=0.2, gt=0, lt=0.9, description="project: share of the sample kept back to score it.")
    ridge: float = Field(default=1e-3, ge=0, description="project: ridge regularisation of the least squares fit.")


@dataclass
class AdaptCounts:
    adapted: int = 0
    rejected: dict[str, str] = field(default_factory=dict)


def fit_projection(
    x: np.ndarray, y: np.ndarray, *, holdout: float, ridge: float, seed: int = 0
) -> tuple[np.ndarray, dict[str, Any]]:
    """Fit ``W`` (source dims × target dims) so that ``x @ W ≈ y``; score it on a held-back part."""
    n = len(x)
    order = np.random.default_rng(seed).permutation(n)
    cut = max(1, int(round(n * (1 - holdout))))
    train, test = order[:cut], order[cut:]
    xt, yt = x[train].astype(np.float64), y[train].astype(np.float64)
    gram = xt.T @ xt + ridge * len(xt) * np.eye(x.shape[1])
    w = np.linalg.solve(gram, xt.T @ yt)
    report: dict[str, Any] = {"sample": n, "train": len(train), "holdout": len(test)}
    if len(test):
        pred = x[test].astype(np.float64) @ w
        true = y[test].astype(np.float64)
        cos = np.sum(pred * true, axis=1) / (np.linalg.norm(pred, axis=1) * np.linalg.norm(true, axis=1) + 1e-12)
        report["mean_cosine"] = round(float(cos.mean()), 4)
        report["min_cosine"] = round(float(cos.min()), 4)
    return w.astype(np.float32), report


class AdaptStage(Stage):
    """``reembed`` does nothing here (the embed stage embeds records from another model again); ``truncate``
    and ``project`` change the vectors of records from another model."""

    name = "adapt"

    def __init__(self, settings: AdaptSettings, *, target_model: str | None, target_dims: int | None) -> None:
        self.settings = settings
        self.target_model = target_model
        self.target_dims = settings.dims or target_dims
        self.w: np.ndarray | None = None
        self.report: dict[str, Any] = {}
        #: a fit made when the stage opened, reported with the first batch
        self._fitted: dict[str, Any] | None = None

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        return cls(spec.config, target_model=None, target_dims=None)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        ctx = self.ctx
        assert ctx is not None
        if self.settings.strategy == "reembed" or ctx.embed is None:
            return
        embedder = ctx.resources.embedder()
        self.target_model = embedder.model_id
        self.target_dims = self.settings.dims or embedder.dims
        if self.settings.strategy != "project":
            return
        if state is not None and self.load(ctx.state_dir):
            return
        sample = self.settings.sample
        ctx.say(f"Fitting the projection on up to {sample:,} records ...")
        from ..build import sample_sources

        xs, texts = sample_sources(ctx, sample)
        if len(texts) < 16:
            raise VexrunError(
                f"adapt 'project' needs records with both a vector and a text to fit the map; found {len(texts)}"
            )
        embed = ctx.resources.embedding()
        fit = Batch(records=[Record(id=f"fit-{i}", text=t) for i, t in enumerate(texts)])
        ys = embed.process(fit).batch.vectors
        assert ys is not None
        report = self.fit(np.stack(xs), ys, ctx.state_dir)
        self._fitted = report
        ctx.say(
            f"Projection {len(xs[0])}-d → {ys.shape[1]}-d fitted on {report['train']:,} records; mean cosine "
            f"{report.get('mean_cosine', float('nan')):.3f} on {report['holdout']:,} held back"
        )

    # -- projection fit, persisted beside the checkpoint --------------------------------------------
    def load(self, state_dir: Path) -> bool:
        path = state_dir / "adapt-projection.npy"
        if not path.exists():
            return False
        self.w = np.load(path)
        meta = state_dir / "adapt-projection.json"
        self.report = json.loads(meta.read_text()) if meta.exists() else {}
        return True

    def fit(self, x: np.ndarray, y: np.ndarray, state_dir: Path) -> dict[str, Any]:
        s = self.settings
        self.w, self.report = fit_projection(x, y, holdout=s.holdout, ridge=s.ridge)
        tmp = state_dir / "adapt-projection.tmp.npy"
        np.save(tmp, self.w)
        tmp.replace(state_dir / "adapt-projection.npy")
        (state_dir / "adapt-projection.json").write_text(json.dumps(self.report))
        return self.report

    # -- per batch -----------------------------------------------------------------------------------
    def process(self, batch: Batch) -> StageResult:
        before = Batch(records=list(batch.records), vectors=batch.vectors, has_vector=batch.has_vector)
        out, ac = self.adapt(batch)
        result = StageResult.passed(out, len(before), adapted=ac.adapted, rejected=len(ac.rejected))
        result.rejected = rejected_from(before, ac.rejected)
        if self._fitted is not None:
            result.figures["adapt_fit"], self._fitted = self._fitted, None
        return result

    def adapt(self, batch: Batch) -> tuple[Batch, AdaptCounts]:
        counts = AdaptCounts()
        s = self.settings
        if s.strategy == "reembed" or batch.vectors is None or batch.has_vector is None:
            return batch, counts
        model = self.target_model or s.model
        todo = [
            i for i, rec in enumerate(batch.records) if batch.has_vector[i] and (model is None or rec.model != model)
        ]
        if not todo:
            return batch, counts
        src = batch.vectors[todo]
        if s.strategy == "truncate":
            dims = self.target_dims
            if dims is None:
                raise ValueError("adapt truncate needs dims")
            if src.shape[1] < dims:
                for i in todo:
                    counts.rejected[batch.records[i].id] = (
                        f"adapt: a {src.shape[1]}-d vector cannot be truncated to {dims} dims"
                    )
                return self._drop(batch, counts), counts
            out = src[:, :dims]
        else:
            assert self.w is not None, "the projection is fitted before the first batch"
            if src.shape[1] != self.w.shape[0]:
                for i in todo:
                    counts.rejected[batch.records[i].id] = (
                        f"adapt: the projection maps {self.w.shape[0]}-d vectors; this one has {src.shape[1]}"
                    )
                return self._drop(batch, counts), counts
            out = src @ self.w
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = (out / np.where(norms == 0, 1, norms)).astype(np.float32)
        dims = out.shape[1]
        n = len(batch)
        mat = np.zeros((n, dims), dtype=np.float32)
        keep = np.zeros(n, dtype=bool)
        mat[todo] = out
        keep[todo] = True
        others = [i for i in range(n) if batch.has_vector[i] and i not in set(todo)]
        for i in others:
            if batch.vectors.shape[1] == dims:
                mat[i] = batch.vectors[i]
                keep[i] = True
        for i in todo:
            rec = batch.records[i]
            rec.model = model or f"{rec.model}@{dims}"
            rec.dims = dims
        batch.vectors, batch.has_vector = mat, keep
        counts.adapted = len(todo)
        return batch, counts

    def _drop(self, batch: Batch, counts: AdaptCounts) -> Batch:
        out = batch.select([i for i, r in enumerate(batch.records) if r.id not in counts.rejected])
        out.lines = []
        return out
