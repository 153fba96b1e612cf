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

from ..vmig.batch import Batch

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


class AdaptStage:
    name = "adapt"

    def __init__(self, settings: AdaptSettings, *, target_model: str | None, target_dims: int | None) -> None:
        self.settings = settings
        self.target_model = target_model
        self.target_dims = settings.dims or target_dims
        self.w: np.ndarray | None = None
        self.report: dict[str, Any] = {}

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
    def process(self, batch: Batch) -> tuple[Batch, AdaptCounts]:
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
        keep = [i for i, r in enumerate(batch.records) if r.id not in counts.rejected]
        out = Batch(
            records=[batch.records[i] for i in keep],
            rejects=batch.rejects,
            warnings=batch.warnings,
            cursor=batch.cursor,
        )
        if batch.vectors is not None and batch.has_vector is not None:
            out.vectors = batch.vectors[keep]
            out.has_vector = batch.has_vector[keep]
        return out
