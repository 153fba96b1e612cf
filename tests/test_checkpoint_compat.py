"""A run checkpointed by an older vexrun resumes with this one (tests/data/checkpoints/: state dirs made by the
code before the executable-plan refactor, each stopped after its 3rd batch; see the README there).

Resuming the fixture must continue at batch 4 under the same plan fingerprint, end with exactly the target an
uninterrupted run of the same recipe makes (vmig bytes, local store rows and edges), and compute no embedding
the fixture's cache already holds. To run this against another checkout's code, set PYTHONPATH for pytest: the
children inherit it.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA, CliResult, run_cli

CHECKPOINTS = DATA / "checkpoints"
#: fixtures that exist (the extract one is optional: made only where its fixed port was free)
FIXTURES = [p.name for p in sorted(CHECKPOINTS.iterdir()) if (p / "recipe.yaml").exists()]
#: what the extract fixture was made against (see make_checkpoint.py)
LLM_PORT = 47391
LLM_KEY = "sk-checkpoint-fixture-key"


def _copy(name: str, dest: Path, *, with_state: bool) -> Path:
    shutil.copytree(CHECKPOINTS / name, dest)
    if not with_state:
        shutil.rmtree(dest / "state")
        shutil.rmtree(dest / "out")
        (dest / "out").mkdir()
    return dest


def _start_on_port(srv: Any, port: int) -> None:
    """Start a fake API server on a fixed loopback port (``start()`` binds an ephemeral one); the same code as in
    make_checkpoint.py."""
    import threading

    from vexrun.testing.fake_api import server as mod

    srv._stopping.clear()
    srv._httpd = mod._HTTPServer(("127.0.0.1", port), mod._Handler)
    srv._httpd.fake = srv
    srv._port = port
    srv._thread = threading.Thread(target=srv._httpd.serve_forever, args=(0.02,), name="fake-api", daemon=True)
    srv._thread.start()


@contextmanager
def _fakes(name: str) -> Iterator[dict[str, str | None]]:
    """The environment a fixture's recipe needs, with its fakes running."""
    if not name.startswith("extract"):
        yield {}
        return
    from vexrun.testing.fake_api import chat_server

    srv = chat_server(api_keys=[LLM_KEY])
    _start_on_port(srv, LLM_PORT)
    try:
        yield {"VEXRUN_TEST_LLM_URL": srv.url("/v1"), "VEXRUN_TEST_LLM_KEY": LLM_KEY}
    finally:
        srv.stop()


def _run(directory: Path, env: dict[str, str | None]) -> CliResult:
    return run_cli("run", "--json", "recipe.yaml", cwd=directory, env=env, timeout=300)


def _cache(state: Path, file: str = "cache.sqlite", table: str = "embeddings") -> dict[bytes, int]:
    """key -> how many times it was stored, of the embedding cache (or the LLM's answers)."""
    db = sqlite3.connect(f"file:{state / file}?mode=ro", uri=True)
    try:
        return {bytes(k): int(p) for k, p in db.execute(f"SELECT key, puts FROM {table}")}
    finally:
        db.close()


def _store(path: Path) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The local store's records and edges, without its row numbers and write times."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        records = db.execute(
            "SELECT id, namespace, dims, model, created_at, source_store, modality, score, vex_version, metadata, "
            "extra, text, vector FROM records ORDER BY id"
        ).fetchall()
        edges = db.execute("SELECT src, dst, type, weight, metadata FROM edges ORDER BY src, dst, type").fetchall()
    finally:
        db.close()
    return records, edges


def _outputs(directory: Path) -> dict[str, bytes]:
    """The finished files of the run (no partial files, no sidecars: those carry the time they were written)."""
    out = directory / "out"
    return {
        p.name: p.read_bytes()
        for p in sorted(out.iterdir())
        if p.is_file() and not p.name.startswith(".") and not p.name.endswith((".meta.json", ".db", "-wal", "-shm"))
    }


@pytest.mark.parametrize("name", FIXTURES)
def test_an_old_checkpoint_resumes_to_the_same_target(name: str, tmp_path: Path) -> None:
    resumed_dir = _copy(name, tmp_path / "resumed", with_state=True)
    fresh_dir = _copy(name, tmp_path / "fresh", with_state=False)
    before = _cache(resumed_dir / "state")
    llm = (resumed_dir / "state" / "llm-cache.sqlite").exists()
    answered = _cache(resumed_dir / "state", "llm-cache.sqlite", "answers") if llm else {}
    ck = sqlite3.connect(f"file:{resumed_dir / 'state' / 'checkpoint.sqlite'}?mode=ro", uri=True)
    batches, counts = ck.execute("SELECT batches, counts FROM progress").fetchone()
    fingerprint = ck.execute("SELECT value FROM meta WHERE key = 'fingerprint'").fetchone()[0]
    ck.close()
    assert batches == 3 and before, "the fixture is a run stopped after batch 3 with embeddings cached"

    with _fakes(name) as env:
        plan = run_cli("plan", "--json", "recipe.yaml", cwd=resumed_dir, env=env)
        assert plan.code == 0, plan.output
        assert json.loads(plan.out)["fingerprint"] == fingerprint, "the plan's fingerprint changed"
        resumed = _run(resumed_dir, env)
        fresh = _run(fresh_dir, env)
    assert resumed.code == 0, resumed.output
    assert fresh.code == 0, fresh.output
    assert re.search(r"Resuming run 1 of \S+ at batch 4\b", resumed.err), resumed.err
    summary, baseline = json.loads(resumed.out), json.loads(fresh.out)
    assert summary["status"] == "completed" and summary["resumed_at_batch"] == 3
    assert summary["batches"] == baseline["batches"]

    # the same target as an uninterrupted run
    files = _outputs(resumed_dir)
    assert files and files == _outputs(fresh_dir)
    assert not [p.name for p in (resumed_dir / "out").iterdir() if p.name.endswith(".partial")]
    for db in (resumed_dir / "out").glob("*.db"):
        records, edges = _store(db)
        assert records and (records, edges) == _store(fresh_dir / "out" / db.name)

    # no embedding the fixture had cached was computed again; nothing was stored twice
    after = _cache(resumed_dir / "state")
    assert all(after[k] == 1 for k in before), "an embedding cached before the interruption was computed again"
    assert all(p == 1 for p in after.values())
    assert after.keys() == _cache(fresh_dir / "state").keys()
    # counts of a resumed run carry on from the checkpoint: in total, as many computed as the fresh run
    assert summary["counts"]["embed"]["computed"] == baseline["counts"]["embed"]["computed"]
    if not llm:  # (extract mode: the facts are embedded inside dedup, where the old code counted nothing)
        assert json.loads(counts)["embed"]["computed"] == len(before)
        assert len(after) == baseline["counts"]["embed"]["computed"]
    if llm:  # extract: no LLM call answered before the interruption was made again
        assert answered, "the extract fixture holds answers"
        after = _cache(resumed_dir / "state", "llm-cache.sqlite", "answers")
        assert all(after[k] == 1 for k in answered) and all(p == 1 for p in after.values())
        assert after.keys() == _cache(fresh_dir / "state", "llm-cache.sqlite", "answers").keys()
        total, fresh_total = summary["counts"]["llm"]["total"], baseline["counts"]["llm"]["total"]
        assert total["calls"] == fresh_total["calls"] and total["input_tokens"] == fresh_total["input_tokens"]
