"""The runner through the CLI: resume, interruption, kill -9, locks, plan changes, rejects, counts."""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import run_cli
from vexrun.checkpoint import StateDir
from vexrun.vmig import Record, VmigWriter, read_batches

N = 1200


def _texts_file(path: Path, n: int = N, *, bad_lines: tuple[int, ...] = ()) -> Path:
    """Records with text only (the run must embed them), a few long enough to be chunked."""
    with VmigWriter(path, source_store="test") as w:
        for i in range(n):
            text = f"memory {i}: the user mentioned topic {i % 37} on day {i % 11}"
            if i % 250 == 7:
                text = " ".join([text] * 60)  # ~3,500 characters: split by the chunk stage
            w.write(Record(id=f"m{i:05d}", text=text, namespace="ns", metadata={"conversation_id": f"c{i // 10}"}))
    if bad_lines:
        lines = path.read_bytes().splitlines(keepends=True)
        for n_line in bad_lines:
            lines[n_line - 1] = b'{"id": "broken", "text": \n'
        path.write_bytes(b"".join(lines))
        path.with_name(path.name + ".meta.json").unlink()
    return path


def _recipe(
    tmp: Path,
    *,
    delay_ms: float = 0,
    batch: int = 100,
    extra: str = "",
    log: bool = True,
    sqlite: bool = False,
    read_workers: int | None = None,
    write_worker: bool | None = None,
) -> Path:
    """``read_workers``: parse the source in that many worker processes (None: the default, none for files
    this small); ``write_worker``: the vmig target's setting (None: the default, none for files this small)."""
    recipe = tmp / "job.yaml"
    workers_line = f"\n  read_workers: {read_workers}" if read_workers is not None else ""
    log_line = f"\n  log_file: {tmp / 'computed.log'}" if log else ""
    sqlite_target = "\n  - type: sqlite\n    path: out.db" if sqlite else ""
    writer_line = f"\n    write_worker: {str(write_worker).lower()}" if write_worker is not None else ""
    recipe.write_text(
        f"""# yaml-language-server: $schema=../schemas/recipe.schema.json
version: 1
source:
  type: vmig
  path: in.vmig.jsonl{workers_line}
embed:
  type: fake
  dims: 32
  batch_size: 50
  delay_ms: {delay_ms}{log_line}
targets:
  - type: vmig
    path: out.vmig.jsonl{writer_line}{sqlite_target}
run:
  batch_size: {batch}
{extra}"""
    )
    return recipe


def _output(path: Path) -> dict[str, tuple[str | None, bytes]]:
    out: dict[str, tuple[str | None, bytes]] = {}
    for batch in read_batches(path):
        for rec, vec in batch:
            assert rec.id not in out, f"duplicate id {rec.id}"
            out[rec.id] = (rec.text, b"" if vec is None else vec.tobytes())
    return out


def _store(path: Path) -> dict[str, tuple[str | None, bytes, str]]:
    db = sqlite3.connect(path)
    rows = db.execute("SELECT id, text, vector, metadata FROM records").fetchall()
    edges = db.execute("SELECT COUNT(*) FROM edges").fetchone()[0]
    db.close()
    out = {r[0]: (r[1], bytes(r[2]), r[3]) for r in rows}
    assert len(out) == len(rows)
    out["__edges__"] = (None, b"", str(edges))
    return out


def _state(tmp: Path) -> StateDir:
    dirs = list((tmp / ".vexrun" / "state").iterdir())
    assert len(dirs) == 1
    return StateDir(dirs[0])


def test_run_writes_output_and_second_run_is_cached(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path)
    first = run_cli("run", "--json", str(recipe))
    assert first.code == 0, first.output
    summary = json.loads(first.out)
    assert summary["status"] == "completed"
    c = summary["counts"]
    assert c["source"]["read"] == N
    assert c["chunk"]["split"] > 0
    total = c["chunk"]["out"]
    assert c["embed"]["computed"] == total and c["embed"]["cached"] == 0
    assert c["store"]["targets[0] (vmig)"] == {"in": total, "written": total, "rejected": 0}
    out = _output(tmp_path / "out.vmig.jsonl")
    assert len(out) == total
    assert run_cli("validate", str(tmp_path / "out.vmig.jsonl")).code == 0

    again = run_cli("job.yaml", "--json", cwd=tmp_path)  # `vexrun RECIPE` is `vexrun run RECIPE`
    assert again.code == 0, again.output
    c2 = json.loads(again.out)["counts"]
    assert c2["embed"]["computed"] == 0 and c2["embed"]["cached"] == total
    assert _output(tmp_path / "out.vmig.jsonl") == out
    assert "computed" in again.err  # the table goes to stderr with --json


@pytest.mark.parametrize(
    ("read_workers", "write_worker"),
    [(None, None), (2, None), (None, True)],
    ids=["in-process", "worker-processes", "writer-process"],
)
def test_sigint_finishes_the_batch_and_resumes(
    tmp_path: Path, read_workers: int | None, write_worker: bool | None
) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path, delay_ms=40, read_workers=read_workers, write_worker=write_worker)
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    _texts_file(ref_dir / "in.vmig.jsonl")
    assert run_cli("run", str(_recipe(ref_dir, log=False))).code == 0
    reference = _output(ref_dir / "out.vmig.jsonl")

    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", "--progress", "log", str(recipe)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    events = tmp_path / ".vexrun"
    deadline = time.time() + 60
    while time.time() < deadline:
        found = list(events.glob("state/*/events.jsonl"))
        if found and '"event":"batch"' in found[0].read_text():
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Stopping after the batch in flight" in err
    assert f"resume with: vexrun run {recipe}" in err
    assert "Traceback" not in err
    resumed = run_cli("run", str(recipe))
    assert resumed.code == 0, resumed.output
    assert "Resuming run 1 of job at batch" in resumed.err
    assert _output(tmp_path / "out.vmig.jsonl") == reference


def test_sigterm_exits_143(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path, delay_ms=40)
    proc = subprocess.Popen([sys.executable, "-m", "vexrun", "run", str(recipe)], stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while time.time() < deadline and not list(tmp_path.glob(".vexrun/state/*/events.jsonl")):
        time.sleep(0.02)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert "checkpoint is saved" in err


@pytest.mark.parametrize(
    ("read_workers", "write_worker", "sqlite"),
    [(None, None, True), (2, None, True), (None, True, True), (None, True, False)],
    ids=["in-process", "worker-processes", "writer-process", "writer-process-pipelined"],
)
def test_kill_9_at_random_moments_gives_the_uninterrupted_result(
    tmp_path: Path, read_workers: int | None, write_worker: bool | None, sqlite: bool
) -> None:
    """``writer-process-pipelined``: the ``.vmig.jsonl`` target alone, so the batch loop sends each batch to its
    writer process and commits it once acknowledged, with the next batch already sent."""
    ref_dir = tmp_path / "ref"
    ref_dir.mkdir()
    _texts_file(ref_dir / "in.vmig.jsonl")
    assert run_cli("run", str(_recipe(ref_dir, log=False, sqlite=sqlite))).code == 0
    reference = _output(ref_dir / "out.vmig.jsonl")
    reference_store = _store(ref_dir / "out.db") if sqlite else None
    assert reference_store is None or len(reference_store) == len(reference) + 1

    work = tmp_path / "work"
    work.mkdir()
    _texts_file(work / "in.vmig.jsonl")
    # About 7.5 s of embedding in all (25 calls of 50 texts × 300 ms), more than the ten waits below add up to
    # (5.7 s with this seed): every kill lands before the end, however fast the machine.
    recipe = _recipe(work, delay_ms=300, batch=60, sqlite=sqlite, read_workers=read_workers, write_worker=write_worker)
    rng = random.Random(20261125)
    kills = 0
    for _ in range(10):
        proc = subprocess.Popen(
            [sys.executable, "-m", "vexrun", "run", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        time.sleep(rng.uniform(0.3, 0.9))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
    final = run_cli("run", "--json", str(recipe))
    assert final.code == 0, final.output
    assert kills == 10  # every attempt was killed before the run could finish
    assert _output(work / "out.vmig.jsonl") == reference
    assert (work / "out.vmig.jsonl").read_bytes() == (ref_dir / "out.vmig.jsonl").read_bytes()
    assert reference_store is None or _store(work / "out.db") == reference_store
    # No embedding was computed twice to completion: every cached text was stored exactly once...
    state = _state(work)
    db = sqlite3.connect(state.cache_path)
    entries, max_puts = db.execute("SELECT COUNT(*), MAX(puts) FROM embeddings").fetchone()
    db.close()
    assert entries == len(reference)
    assert max_puts == 1
    # ...and the embedder itself recomputed at most the slice in flight at each kill (50 texts).
    computed = (work / "computed.log").read_text().split()
    assert len(set(computed)) == len(reference)
    assert len(computed) - len(reference) <= 50 * kills


def test_another_run_holding_the_lock_exits_4(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 10)
    recipe = _recipe(tmp_path)
    assert run_cli("run", str(recipe)).code == 0
    state = _state(tmp_path)
    with state.lock("a test holding the lock"):
        res = run_cli("run", str(recipe))
    assert res.code == 4
    assert "another run holds this recipe's lock (pid" in res.err and "a test holding the lock" in res.err


def test_changed_plan_is_refused_then_fresh_starts_over(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 300)
    recipe = _recipe(tmp_path, delay_ms=30, batch=50)
    proc = subprocess.Popen([sys.executable, "-m", "vexrun", "run", str(recipe)], stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline:
        found = list(tmp_path.glob(".vexrun/state/*/events.jsonl"))
        if found and '"event":"batch"' in found[0].read_text():
            break
        time.sleep(0.02)
    proc.kill()
    proc.wait()
    recipe.write_text(recipe.read_text().replace("dims: 32", "dims: 24").replace("max_chars", "max_chars"))
    refused = run_cli("run", str(recipe))
    assert refused.code == 1
    assert "the checkpoint was made under another plan; stages that differ: embed (fake)" in refused.err
    assert "--fresh" in refused.err
    plan = run_cli("plan", str(recipe))
    assert "refuses until you pass --fresh" in plan.out
    fresh = run_cli("run", "--fresh", "--json", str(recipe))
    assert fresh.code == 0, fresh.output
    out = _output(tmp_path / "out.vmig.jsonl")
    assert {len(v) for _, v in out.values()} == {24 * 4}


def test_rejected_records_exit_3_and_are_refeedable(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 200, bad_lines=(5, 77))
    recipe = _recipe(tmp_path)
    res = run_cli("run", "--json", str(recipe))
    assert res.code == 3, res.output
    summary = json.loads(res.out)
    assert summary["rejected"] == 2
    assert summary["counts"]["source"] == {"read": 200, "passed": 198, "rejected": 2, "warnings": 0}
    rejects = Path(summary["rejects_file"])
    rows = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert [r["reject"]["line"] for r in rows] == [5, 77]
    assert all(r["reject"]["stage"] == "source" and "bad-json" in r["reject"]["reason"] for r in rows)
    assert rows[0]["text"] == '{"id": "broken", "text": '
    check = run_cli("validate", str(rejects))
    assert "unknown-field" in check.out  # re-feedable: valid records with a `reject` note
    assert "rejected" in res.err


def test_on_error_fail_stops_and_resumes_after_the_fix(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 200, bad_lines=(150,))
    recipe = _recipe(tmp_path, extra="  on_error: fail\n", batch=50)
    res = run_cli("run", str(recipe))
    assert res.code == 1
    assert "input record(s) rejected" in res.err and "resume with: vexrun run" in res.err
    lines = (tmp_path / "in.vmig.jsonl").read_bytes().splitlines(keepends=True)
    lines[149] = b'{"id": "fixed", "text": "repaired line"}\n'
    (tmp_path / "in.vmig.jsonl").write_bytes(b"".join(lines))
    again = run_cli("run", str(recipe))
    assert again.code == 0, again.output
    assert "Resuming run 1 of job at batch 3 (100 records already done)" in again.err
    assert "fixed" in _output(tmp_path / "out.vmig.jsonl")


def test_status_reset_and_schema(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 50)
    recipe = _recipe(tmp_path)
    before = run_cli("status", str(recipe))
    assert before.code == 0 and "(no runs yet)" in before.out
    assert run_cli("run", str(recipe)).code == 0
    st = json.loads(run_cli("status", "--json", str(recipe)).out)
    assert st["checkpoint"]["status"] == "completed" and st["runs"][0]["status"] == "completed"
    assert st["cache"]["entries"] > 0
    res = run_cli("reset", "--yes", str(recipe))
    assert res.code == 0 and "checkpoint.sqlite" in res.out
    assert "no checkpoint" in run_cli("plan", str(recipe)).out
    again = json.loads(run_cli("run", "--json", str(recipe)).out)
    assert again["counts"]["embed"]["computed"] == 0  # reset keeps the cache
    run_cli("reset", "--yes", "--all", str(recipe))
    assert not (tmp_path / ".vexrun" / "state").exists() or not any((tmp_path / ".vexrun" / "state").iterdir())
    schema = json.loads(run_cli("schema").out)
    assert schema["title"] == "vexrun recipe" and "source" in schema["properties"]


def test_check_writes_nothing(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 20)
    recipe = _recipe(tmp_path, log=False)
    before = sorted(p.name for p in tmp_path.iterdir())
    res = run_cli("check", str(recipe))
    assert res.code == 0, res.output
    assert "ok    source (vmig)" in res.out and "ok    embed (fake-32)" in res.out
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    (tmp_path / "in.vmig.jsonl").unlink()
    bad = run_cli("check", str(recipe))
    assert bad.code == 1 and "FAIL  source (vmig)" in bad.out


def test_output_directories_are_made_and_bad_ones_are_one_clear_line(tmp_path: Path) -> None:
    _texts_file(tmp_path / "in.vmig.jsonl", 20)
    recipe = _recipe(tmp_path)
    recipe.write_text(recipe.read_text().replace("path: out.vmig.jsonl", "path: new/dir/out.vmig.jsonl"))
    assert run_cli("run", str(recipe)).code == 0
    assert (tmp_path / "new" / "dir" / "out.vmig.jsonl").exists()
    (tmp_path / "afile").write_text("x")
    recipe.write_text(recipe.read_text().replace("path: new/dir/out.vmig.jsonl", "path: afile/out.vmig.jsonl"))
    res = run_cli("run", "--fresh", str(recipe))
    assert res.code == 2
    assert res.err.strip().splitlines()[-1].startswith("error:") and "cannot create the output directory" in res.err
    assert "Traceback" not in res.err


@pytest.mark.parametrize("dims", [8, 384])
def test_vectors_from_the_source_are_kept_when_the_model_matches(tmp_path: Path, dims: int) -> None:
    from vexrun.testing.fake_embedder import fake_vector

    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(30):
            text = f"t{i}"
            vec = fake_vector(text, dims) if i % 2 else np.ones(dims, dtype=np.float32)
            w.write(Record(id=f"r{i}", text=text, model=f"fake-{dims}" if i % 2 else "other"), vec)
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"version: 1\nsource: {{type: vmig, path: in.vmig.jsonl}}\nembed: {{type: fake, dims: {dims}}}\n"
        "target: {type: vmig, path: out.vmig.jsonl}\n"
    )
    res = run_cli("run", "--json", str(recipe))
    em = json.loads(res.out)["counts"]["embed"]
    assert (em["kept"], em["computed"]) == (15, 15)
    out = _output(tmp_path / "out.vmig.jsonl")
    for i in range(30):
        assert out[f"r{i}"][1] == fake_vector(f"t{i}", dims).tobytes()
