"""Dimension adaptation: truncate (Matryoshka), project (a fitted linear map, with its fit quality), reembed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conftest import run_cli
from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig import Record, VmigWriter, read_batches


def _vectors(path: Path) -> dict[str, tuple[np.ndarray, str | None]]:
    out = {}
    for batch in read_batches(path):
        for rec, vec in batch:
            assert vec is not None
            out[rec.id] = (vec.copy(), rec.model)
    return out


def _recipe(tmp: Path, body: str) -> Path:
    path = tmp / "r.yaml"
    path.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: vmig, path: out.vmig.jsonl}\n" + body
    )
    return path


def test_truncate_keeps_the_first_dims_and_renormalises(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((50, 64)).astype(np.float32)
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(50):
            w.write(Record(id=f"r{i}", text=f"t{i}", model="mrl-64"), vecs[i])
    res = run_cli("run", "--json", str(_recipe(tmp_path, "adapt: {strategy: truncate, dims: 32}\n")))
    assert res.code == 0, res.output
    assert json.loads(res.out)["counts"]["adapt"]["adapted"] == 50
    out = _vectors(tmp_path / "out.vmig.jsonl")
    for i in range(50):
        vec, model = out[f"r{i}"]
        expect = vecs[i, :32] / np.linalg.norm(vecs[i, :32])
        assert vec.shape == (32,) and np.allclose(vec, expect, atol=1e-6) and model == "mrl-64@32"
    too_many = run_cli("run", "--fresh", "--json", str(_recipe(tmp_path, "adapt: {strategy: truncate, dims: 128}\n")))
    assert too_many.code == 3
    summary = json.loads(too_many.out)
    assert summary["counts"]["adapt"]["rejected"] == 50
    rejects = Path(summary["rejects_file"]).read_text().splitlines()
    assert "cannot be truncated to 128 dims" in json.loads(rejects[0])["reject"]["reason"]


def test_project_fits_a_linear_map_and_reports_its_quality(tmp_path: Path) -> None:
    # The source space is a fixed linear image of the target model's space, so a perfect map exists.
    mix = np.random.default_rng(1).standard_normal((32, 48)).astype(np.float32)
    n = 400
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(n):
            text = f"memory {i} about project adaptation"
            w.write(Record(id=f"r{i}", text=text, model="old-48"), fake_vector(text, 32) @ mix)
    recipe = _recipe(
        tmp_path, "embed: {type: fake, dims: 32}\nadapt: {strategy: project, sample: 300, ridge: 0.0000001}\n"
    )
    plan = run_cli("plan", str(recipe))
    assert "adapt (project)" in plan.out
    res = run_cli("run", "--json", str(recipe))
    assert res.code == 0, res.output
    counts = json.loads(res.out)["counts"]
    assert counts["adapt"]["adapted"] == n
    assert counts["adapt_fit"]["train"] == 240 and counts["adapt_fit"]["holdout"] == 60
    assert counts["adapt_fit"]["mean_cosine"] > 0.999
    assert "fit mean cosine" in res.err
    assert counts["embed"]["kept"] == n and counts["embed"]["computed"] == 0  # nothing embedded after the fit
    out = _vectors(tmp_path / "out.vmig.jsonl")
    for i in range(n):
        vec, model = out[f"r{i}"]
        true = fake_vector(f"memory {i} about project adaptation", 32)
        assert model == "fake-32" and float(vec @ true) > 0.999
    assert (next((tmp_path / ".vexrun" / "state").iterdir()) / "adapt-projection.npy").exists()


def test_reembed_is_inserted_when_the_sidecar_names_another_model(tmp_path: Path) -> None:
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(10):
            w.write(Record(id=f"r{i}", text=f"t{i}", model="text-embedding-3-small"), np.ones(8, dtype=np.float32))
    recipe = _recipe(tmp_path, "embed: {type: fake, dims: 16}\n")
    plan = run_cli("plan", str(recipe))
    assert "adapt (reembed)" in plan.out and "the source vectors come from text-embedding-3-small" in plan.out
    res = run_cli("run", "--json", str(recipe))
    assert json.loads(res.out)["counts"]["embed"]["computed"] == 10
    bad = _recipe(tmp_path, "adapt: {strategy: project}\n")
    res = run_cli("validate", str(bad))
    assert res.code == 1 and "error[needs-embedder] adapt.strategy: adapt 'project' needs the target model" in res.out
