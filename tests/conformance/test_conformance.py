"""The same tests for every connector, through the CLI and real servers: round trip, idempotent re-write,
namespaces, ids the store cannot hold, resume of an interrupted import and export, batches split by the
store's limits, and one clear error for bad credentials and for a server that does not answer."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from conftest import run_cli
from vexrun.vmig import Record, VmigWriter, read_batches

from .conftest import Running

N = 10_000
DIMS = 64
NASTY_IDS = ["mem:1", "émoji-🙂", "x" * 300, "with space", "slash/and\\back", "0", "18446744073709551616", "-1"]


def _records(n: int, seed: int = 1) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = rng.standard_normal((n, DIMS)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    recs = []
    for i in range(n):
        rid = NASTY_IDS[i] if i < len(NASTY_IDS) else (str(uuid.UUID(int=i)) if i % 3 == 0 else f"mem-{i:06d}")
        meta: dict[str, Any] = {
            "source": "conformance",
            "turn": i,
            "weight": float(i) / 7.0,
            "pinned": i % 2 == 0,
            "tags": [f"t{i % 5}", f"t{i % 7}"],
            "mixed": [1, "two", 3.5, True],
            "empty": [],
            "note": None,
            "ünïcode-key": "välue ✓",
        }
        recs.append(
            Record(
                id=rid,
                text=f"record {i}: the quick brown fox number {i % 97}" + (" ✓" if i % 11 == 0 else ""),
                model="fake-64",
                namespace=("alpha", "beta")[i % 2],
                metadata=meta,
                created_at=f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}T10:00:00Z",
                source_store="conformance",
                modality="text",
                score=round(i / n, 6),
            )
        )
    return recs, vecs


def _write_input(path: Path, n: int = N) -> tuple[list[Record], np.ndarray]:
    recs, vecs = _records(n)
    with VmigWriter(path) as w:
        for start in range(0, n, 1000):
            for j in range(start, min(start + 1000, n)):
                w.write(recs[j], vecs[j])
    return recs, vecs


def _recipe(path: Path, source: dict[str, Any], target: dict[str, Any], batch: int = 500) -> Path:
    path.write_text(yaml.safe_dump({"version": 1, "source": source, "target": target, "run": {"batch_size": batch}}))
    return path


def _read(path: Path) -> dict[str, tuple[Record, np.ndarray | None]]:
    out: dict[str, tuple[Record, np.ndarray | None]] = {}
    for batch in read_batches(path):
        for rec, vec in batch:
            assert rec.id not in out, f"duplicate {rec.id}"
            out[rec.id] = (rec, None if vec is None else vec.copy())
    return out


def _assert_same(
    store: Running, got: dict[str, tuple[Record, np.ndarray | None]], recs: list[Record], vecs: np.ndarray
) -> None:
    assert sorted(got) == sorted(r.id for r in recs)
    for rec, vec in zip(recs, vecs, strict=True):
        back, bvec = got[rec.id]
        assert back.text == rec.text, rec.id
        assert back.namespace == rec.namespace, rec.id
        assert back.metadata == rec.metadata, (rec.id, back.metadata)
        assert back.created_at == rec.created_at
        assert back.score == rec.score and back.model == rec.model and back.source_store == rec.source_store
        assert bvec is not None
        if store.kit.exact_float32:
            assert np.array_equal(bvec.view(np.uint32), vec.view(np.uint32)), rec.id
        else:
            cos = float(np.dot(bvec, vec) / (np.linalg.norm(bvec) * np.linalg.norm(vec)))
            assert cos >= 1 - 1e-6, (rec.id, cos)


def _run(recipe: Path, store: Running, *extra: str) -> dict[str, Any]:
    res = run_cli("run", "--json", *extra, str(recipe), env=store.kit.env)
    assert res.code == 0, res.output
    return json.loads(res.out)


def test_round_trip_idempotent_and_namespaces(store: Running, tmp_path: Path) -> None:
    recs, vecs = _write_input(tmp_path / "in.vmig.jsonl")
    coll = f"rt_{uuid.uuid4().hex[:8]}"
    imported = _run(
        _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, store.target(coll)), store
    )
    assert imported["counts"]["source"]["read"] == N and imported["rejected"] == 0
    assert store.count(coll) == N
    exported = _run(
        _recipe(tmp_path / "export.yaml", store.source(coll), {"type": "vmig", "path": "out.vmig.jsonl"}), store
    )
    assert exported["counts"]["source"]["read"] == N
    _assert_same(store, _read(tmp_path / "out.vmig.jsonl"), recs, vecs)
    # writing the same collection again changes nothing
    _run(tmp_path / "import.yaml", store, "--fresh")
    assert store.count(coll) == N
    # one namespace only
    _recipe(tmp_path / "beta.yaml", store.source(coll, "beta"), {"type": "vmig", "path": "beta.vmig.jsonl"})
    _run(tmp_path / "beta.yaml", store)
    beta = _read(tmp_path / "beta.vmig.jsonl")
    assert sorted(beta) == sorted(r.id for r in recs if r.namespace == "beta")


def _kill_after_first_batch(recipe: Path, store: Running) -> None:
    import os

    env = {**os.environ, **store.kit.env}
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", str(recipe)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    events = recipe.parent / ".vexrun"
    while time.time() < deadline and proc.poll() is None:
        found = list(events.glob("state/*/events.jsonl"))
        if found and found[0].read_text().count('"event":"batch"') >= 2:
            break
        time.sleep(0.01)
    proc.kill()
    proc.wait()


def test_interrupted_import_and_export_resume(store: Running, tmp_path: Path) -> None:
    n = 3000
    recs, vecs = _write_input(tmp_path / "in.vmig.jsonl", n)
    coll = f"resume_{uuid.uuid4().hex[:8]}"
    imp = _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, store.target(coll), batch=100)
    _kill_after_first_batch(imp, store)
    resumed = run_cli("run", str(imp), env=store.kit.env)
    assert resumed.code == 0, resumed.output
    assert "Resuming run 1" in resumed.err
    assert store.count(coll) == n
    exp = _recipe(tmp_path / "export.yaml", store.source(coll), {"type": "vmig", "path": "out.vmig.jsonl"}, batch=100)
    _kill_after_first_batch(exp, store)
    again = run_cli("run", str(exp), env=store.kit.env)
    assert again.code == 0, again.output
    _assert_same(store, _read(tmp_path / "out.vmig.jsonl"), recs, vecs)


def test_large_batches_are_split(store: Running, tmp_path: Path) -> None:
    n = 2500
    recs = [Record(id=f"big-{i}", text=("lorem ipsum " * 400)[: 3000 + i % 50], namespace="alpha") for i in range(n)]
    rng = np.random.default_rng(3)
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for rec in recs:
            w.write(rec, rng.standard_normal(DIMS).astype(np.float32))
    coll = f"big_{uuid.uuid4().hex[:8]}"
    summary = _run(
        _recipe(tmp_path / "r.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, store.target(coll), batch=n), store
    )
    assert summary["batches"] == 1 and summary["rejected"] == 0
    assert store.count(coll) == n


def test_bad_credentials_and_unreachable_server(store: Running, tmp_path: Path) -> None:
    _write_input(tmp_path / "in.vmig.jsonl", 10)
    cases = []
    if store.kit.bad_credentials is not None:
        cases.append(("creds", store.kit.bad_credentials(store.handle, "x")))
    if store.kit.unreachable is not None:
        cases.append(("down", store.kit.unreachable("x")))
    for name, target in cases:
        recipe = _recipe(tmp_path / f"{name}.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, target)
        res = run_cli("run", str(recipe), env=store.kit.env)
        assert res.code == 1, (name, res.output)
        assert "Traceback" not in res.output and "internal error" not in res.output
        last = res.err.strip().splitlines()[-1]
        assert last.startswith("error: "), res.err
        for secret in store.kit.env.values():
            assert secret not in res.output
