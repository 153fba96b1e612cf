"""``run.executor: ray`` against ``run.executor: local``: the same recipe, the same targets.

Ray runs for real here (a local Ray started by the run), each run in a loopback-only network namespace with its
own PID namespace (``unshare -n -p -f``; see ../shared/notes/services.md): Ray binds the machine's external
address otherwise, and a ``kill -9`` of the driver — PID 1 of its namespace — takes every Ray process of the run
with it. PostgreSQL is reached over its unix socket from inside. If Ray cannot start, these tests fail.
"""

from __future__ import annotations

import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import ray  # noqa: F401 - not optional here: without Ray these tests fail, they never skip

from conftest import ROOT, run_cli
from vexrun.testing.services import postgres as service
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record
from vexrun.vmig.writer import VmigWriter

UNSHARE = shutil.which("unshare")


def _ns_command(*args: str) -> list[str]:
    assert UNSHARE, "unshare (util-linux) is needed to run Ray on loopback only"
    script = 'ip link set lo up && exec "$@"'
    return [UNSHARE, "-n", "-p", "-f", "--mount-proc", "bash", "-c", script, "ray-ns", sys.executable, "-m", "vexrun"]


def ns_run(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.run([*_ns_command(), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def write_input(path: Path, n: int, dims: int = 16) -> None:
    """``n`` records: unique texts, conversations of 7 records (temporal edges cross the partitions), tags."""
    rng = np.random.default_rng(7)
    with VmigWriter(path, source_store="test") as w:
        for start in range(0, n, 1000):
            m = min(1000, n - start)
            vecs = rng.standard_normal((m, dims), dtype=np.float32)
            records = [
                Record(
                    id=f"r{k:06d}",
                    text=f"memory number {k} about {('berlin', 'tea', 'deploy', 'budget')[k % 4]}",
                    model="m",
                    namespace=("work", "home")[k % 2],
                    metadata={"conversation_id": f"c{k // 7}", "tags": [f"t{k % 5}"], "turn": k % 7},
                    created_at=f"2026-01-{1 + k % 28:02d}T00:00:00Z",
                )
                for k in range(start, start + m)
            ]
            w.write_batch(Batch(records=records, vectors=vecs, has_vector=np.ones(m, dtype=bool)))


def recipe(
    path: Path, executor: str, *, dsn: str | None, table: str, extra_run: str = "", delay_ms: float = 0.0
) -> Path:
    pg = (
        f"""
  - type: pgvector
    dsn: "{dsn}"
    table: {table}"""
        if dsn
        else ""
    )
    path.write_text(
        f"""version: 1
name: {path.stem}
mode: raw
sources:
  - type: vmig
    path: in.vmig.jsonl
embed:
  type: fake
  dims: 24
  delay_ms: {delay_ms}
targets:
  - type: vmig
    path: out-{path.stem}/out.vmig.jsonl
  - type: sqlite
    path: out-{path.stem}/mem.db{pg}
run:
  batch_size: 150
  executor: {executor}
  ray:
    workers: 2
    partitions: 5
{extra_run}"""
    )
    return path


@pytest.fixture(scope="module")
def pg(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.Handle]:
    handle = service.start(tmp_path_factory.mktemp("pg"))
    try:
        yield handle
    finally:
        service.stop(handle)


def sqlite_dump(path: Path) -> tuple[list[Any], list[Any]]:
    db = sqlite3.connect(path)
    try:
        recs = db.execute("SELECT id, namespace, text, vector, metadata FROM records ORDER BY id").fetchall()
        edges = db.execute("SELECT src, dst, type, weight, metadata FROM edges ORDER BY 1, 2, 3").fetchall()
        return recs, edges
    finally:
        db.close()


def pg_dump(dsn: str, table: str) -> tuple[list[Any], list[Any]]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        recs = conn.execute(f"SELECT id, namespace, text, embedding::text FROM {table} ORDER BY id").fetchall()
        edges = conn.execute(f"SELECT src, dst, type, weight FROM {table}_edges ORDER BY src, dst, type").fetchall()
        return recs, edges


def assert_same_targets(work: Path, a: str, b: str, pg: service.Handle | None = None) -> None:
    out_a, out_b = work / f"out-{a}", work / f"out-{b}"
    assert (out_a / "out.vmig.jsonl").read_bytes() == (out_b / "out.vmig.jsonl").read_bytes()
    edges_a = (out_a / "out.vmig.jsonl.edges.jsonl").read_bytes()
    assert edges_a and edges_a == (out_b / "out.vmig.jsonl.edges.jsonl").read_bytes()
    recs_a, sedges_a = sqlite_dump(out_a / "mem.db")
    assert recs_a and (recs_a, sedges_a) == sqlite_dump(out_b / "mem.db")
    if pg is not None:
        dsn = pg.dsn(tcp=False)
        got_a, got_b = pg_dump(dsn, a.replace("-", "_")), pg_dump(dsn, b.replace("-", "_"))
        assert len(got_a[0]) == len(recs_a) and got_a == got_b


def test_ray_run_equals_local_run(tmp_path: Path, pg: service.Handle) -> None:
    write_input(tmp_path / "in.vmig.jsonl", 6000)
    dsn = pg.dsn(tcp=False)
    recipe(tmp_path / "local.yaml", "local", dsn=dsn, table="local")
    recipe(tmp_path / "ray.yaml", "ray", dsn=dsn, table="ray")
    assert run_cli("run", "local.yaml", cwd=tmp_path).code == 0

    plan = ns_run("plan", "ray.yaml", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr
    assert "executor ray · a local Ray on this machine's cores · 2 worker actor(s)" in plan.stdout
    assert "workers run   chunk, ids, adapt (reembed), embed (fake)" in plan.stdout
    assert "driver runs   graph (global: in source order)" in plan.stdout
    assert "targets[2] (pgvector) written by the workers" in plan.stdout
    assert "targets[0] (vmig) written by the driver, in source order" in plan.stdout
    assert "sources[0] (vmig): 5 partition(s): bytes 0-" in plan.stdout

    done = ns_run("run", "ray.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "5 partition(s), 5 to run, on 2 worker(s)" in done.stderr
    assert_same_targets(tmp_path, "local", "ray", pg)
    import orjson

    summary = orjson.loads(done.stdout)
    assert summary["counts"]["embed"]["computed"] == 6000
    assert summary["counts"]["source"]["read"] == 6000
    assert summary["counts"]["store"]["targets[2] (pgvector)"]["written"] == 6000


def test_kill_9_of_the_driver_then_the_same_command(tmp_path: Path, pg: service.Handle) -> None:
    """Five kill -9 of the driver at seeded random moments, then the same command to the end: the targets equal
    an uninterrupted local run's, and no embedding was computed twice (the cache counts every store)."""
    write_input(tmp_path / "in.vmig.jsonl", 20000)
    dsn = pg.dsn(tcp=False)
    recipe(tmp_path / "local-k.yaml", "local", dsn=dsn, table="local_k")
    # the Ray run's embedder sleeps 200 ms a call (at most 64 texts): 400 calls, ~40 s of sleep on 2 workers, so
    # five kills at most 7 s into each run cannot let it finish first, however fast the machine (the texts, and
    # so every target, are the same as the local run's)
    recipe(tmp_path / "ray-k.yaml", "ray", dsn=dsn, table="ray_k", delay_ms=200)
    assert run_cli("run", "local-k.yaml", cwd=tmp_path).code == 0
    rng = random.Random(14)
    env = {**os.environ, "NO_COLOR": "1"}
    killed = 0
    for _ in range(8):
        proc = subprocess.Popen(
            [*_ns_command(), "run", "ray-k.yaml", "--progress", "none"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(3.0, 7.0))
        driver = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
        if proc.poll() is None and driver:
            os.kill(int(driver[0]), 9)
            killed += 1
        proc.wait(timeout=60)
        if proc.returncode == 0 or killed >= 5:
            break
    assert killed >= 5, f"the run ended after {killed} kill(s): the kills must come before it can finish"
    done = ns_run("run", "ray-k.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert_same_targets(tmp_path, "local-k", "ray-k", pg)
    cache = sorted((tmp_path / ".vexrun" / "state").glob("ray-k-*/cache.sqlite"))
    assert cache, list((tmp_path / ".vexrun" / "state").iterdir())
    db = sqlite3.connect(cache[0])
    n, most = db.execute("SELECT count(*), max(puts) FROM embeddings").fetchone()
    db.close()
    assert (n, most) == (20000, 1)


def test_a_local_checkpoint_is_not_resumed_by_ray(tmp_path: Path) -> None:
    write_input(tmp_path / "in.vmig.jsonl", 3000)
    recipe(tmp_path / "mixed.yaml", "local", dsn=None, table="x", extra_run="  max_rejects: 0\n")
    # a local run interrupted: max_rejects 0 and a broken line stop it after its first batches
    lines = (tmp_path / "in.vmig.jsonl").read_bytes().splitlines(keepends=True)
    (tmp_path / "in.vmig.jsonl").write_bytes(b"".join(lines[:1000]) + b"{broken\n" + b"".join(lines[1000:]))
    first = run_cli("run", "mixed.yaml", cwd=tmp_path)
    assert first.code != 0
    again = ns_run("run", "mixed.yaml", "--executor", "ray", cwd=tmp_path)
    assert again.returncode == 2, again.stderr
    assert "this run was started by the local executor" in again.stderr
    assert "Traceback" not in again.stderr


def test_an_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    write_input(tmp_path / "in.vmig.jsonl", 100)
    recipe(tmp_path / "far.yaml", "ray", dsn=None, table="x", extra_run="    address: 127.0.0.1:1\n")
    done = ns_run("run", "far.yaml", cwd=tmp_path, timeout=180)
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and "executor ray: cannot join the cluster at 127.0.0.1:1" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


def ray_llm(d: Path, *args: str) -> dict[str, Any]:
    """An extract run against the loopback LLM fake, the fake and the run both inside the namespace."""
    import json

    cmd = _ns_command()[:-2] + ["-m", "vexrun.testing.ray_llm", "--dir", str(d), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["code"] == 0, out
    return out


def test_extract_on_ray_equals_local_and_shares_one_key_budget(tmp_path: Path) -> None:
    """mode extract: the LLM calls run in four workers on one key. Under a budget that does not bind, the facts
    equal a local run's, byte for byte; under one that binds (twice the tokens a minute of budget holds), the four
    workers keep to the key's budget together: the fake sends no 429."""
    fast = ["--chunks", "48", "--batch", "4", "--latency", "0.05", "--tpm", "10000000", "--rpm", "100000"]
    local = ray_llm(tmp_path / "local", *fast, "--executor", "local")
    ray_run = ray_llm(tmp_path / "ray", *fast, "--workers", "4")
    assert local["calls"] == ray_run["calls"] == 12
    facts = (tmp_path / "local" / "facts.vmig.jsonl").read_bytes()
    assert facts and facts == (tmp_path / "ray" / "facts.vmig.jsonl").read_bytes()

    budget = ray_llm(tmp_path / "tight", "--chunks", "48", "--batch", "4", "--latency", "0.05", "--tpm", "18000")
    assert budget["tokens"] > 18000 * 1.5  # the budget binds for most of the run
    assert budget["limited"] == 0, budget
    assert budget["sustained"] >= 0.85 * budget["rate"], budget


def test_kill_9_of_an_extract_run_computes_no_answer_twice(tmp_path: Path) -> None:
    """mode extract on Ray, the driver killed -9 five times at seeded random moments and then run through: the
    facts equal a local run's byte for byte, and no LLM answer was stored twice (the answer cache counts every
    store of an answer, from every worker)."""
    chunks = ["--chunks", "160", "--batch", "4", "--tpm", "10000000", "--rpm", "100000"]
    local = ray_llm(tmp_path / "local", *chunks, "--latency", "0.05", "--executor", "local")
    # 40 answers of 4 s each on 4 workers: ~40 s of waiting for the fake, more than the five kills' waits together
    # (4-10 s each, 36 s with this seed), so every kill comes before the run can finish, however fast the machine
    killed = ray_llm(
        tmp_path / "ray", *chunks, "--latency", "4.0", "--workers", "4", "--kills", "5", "--kill-after", "4,10"
    )
    assert local["code"] == 0 and local["answers"] == {"entries": 40, "max_puts": 1}, local
    assert killed["code"] == 0 and killed["kills"] == 5, killed
    assert killed["answers"] == {"entries": 40, "max_puts": 1}, killed
    facts = (tmp_path / "local" / "facts.vmig.jsonl").read_bytes()
    assert facts and facts == (tmp_path / "ray" / "facts.vmig.jsonl").read_bytes()


def _alive(pid: int, started: str) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode() == started
    except OSError:
        return False


def test_the_next_run_stops_what_a_killed_local_ray_left(tmp_path: Path) -> None:
    """Without a PID namespace a kill -9 of the driver leaves Ray processes behind; the next run of the recipe
    stops the ones the killed run recorded, and only those."""
    import json

    write_input(tmp_path / "in.vmig.jsonl", 20000)
    recipe(tmp_path / "orphan.yaml", "ray", dsn=None, table="x")
    env = {**os.environ, "NO_COLOR": "1"}
    script = 'ip link set lo up && exec "$@"'
    cmd = [UNSHARE or "unshare", "-n", "bash", "-c", script, "ray-ns", sys.executable, "-m", "vexrun"]
    proc = subprocess.Popen([*cmd, "run", "orphan.yaml"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    recorded: list[list[Any]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        found = list((tmp_path / ".vexrun" / "state").glob("orphan-*/ray-local-pids.json"))
        if found and (recorded := json.loads(found[0].read_text())) and len(recorded) >= 4:
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.kill(proc.pid, 9)  # unshare without -f execs: its PID is the driver's
    proc.wait(timeout=30)
    time.sleep(1)
    left = [(pid, t) for pid, t in recorded if _alive(pid, t)]
    try:
        assert left, "nothing was left behind: this test proves nothing"
        # in the same PID namespace as the killed run (a new one would not see its processes)
        done = subprocess.run([*cmd, "run", "orphan.yaml"], cwd=tmp_path, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert not [(pid, t) for pid, t in left if _alive(pid, t)]
    finally:
        for pid, t in left:
            if _alive(pid, t):
                os.kill(pid, 9)


def test_bad_lines_are_rejected_as_the_local_run_rejects_them(tmp_path: Path) -> None:
    """Broken input lines in several partitions: the same records written, the same rejects file (absolute line
    numbers), exit 3 from both executors."""
    write_input(tmp_path / "in.vmig.jsonl", 3000)
    lines = (tmp_path / "in.vmig.jsonl").read_bytes().splitlines(keepends=True)
    for at in (2400, 1500, 10):
        lines.insert(at, b'{"id": "broken", "text": \n')
    (tmp_path / "in.vmig.jsonl").write_bytes(b"".join(lines))
    recipe(tmp_path / "bad-local.yaml", "local", dsn=None, table="x")
    recipe(tmp_path / "bad-ray.yaml", "ray", dsn=None, table="x")
    assert run_cli("run", "bad-local.yaml", cwd=tmp_path).code == 3
    done = ns_run("run", "bad-ray.yaml", cwd=tmp_path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr
    assert_same_targets(tmp_path, "bad-local", "bad-ray")
    state = tmp_path / ".vexrun" / "state"
    local_rejects = next(state.glob("bad-local-*/rejects.vmig.jsonl")).read_bytes()
    ray_rejects = next(state.glob("bad-ray-*/rejects.vmig.jsonl")).read_bytes()
    assert local_rejects.count(b"\n") == 3 and ray_rejects == local_rejects


def test_a_pgvector_source_is_read_in_id_ranges(tmp_path: Path, pg: service.Handle) -> None:
    """pgvector → vmig: the source is cut into ranges of rows in id order (whole pages), read by two workers;
    the file equals the local executor's."""
    write_input(tmp_path / "in.vmig.jsonl", 5000)
    dsn = pg.dsn(tcp=False)
    recipe(tmp_path / "fill.yaml", "local", dsn=dsn, table="src_ranges")
    assert run_cli("run", "fill.yaml", cwd=tmp_path).code == 0
    for name, executor in (("pg-local", "local"), ("pg-ray", "ray")):
        (tmp_path / f"{name}.yaml").write_text(
            f"""version: 1
name: {name}
mode: raw
sources: [{{type: pgvector, dsn: "{dsn}", table: src_ranges}}]
targets: [{{type: vmig, path: out-{name}/out.vmig.jsonl}}]
run: {{batch_size: 300, executor: {executor}, ray: {{workers: 2, partitions: 4}}}}
"""
        )
    assert run_cli("run", "pg-local.yaml", cwd=tmp_path).code == 0
    plan = ns_run("plan", "pg-ray.yaml", cwd=tmp_path)
    assert "sources[0] (pgvector): 4 partition(s): rows 0-1200, rows 1200-2400, rows 2400-3600, … rows 3600-5000" in (
        plan.stdout
    ), plan.stdout
    done = ns_run("run", "pg-ray.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    local = (tmp_path / "out-pg-local" / "out.vmig.jsonl").read_bytes()
    assert local.count(b"\n") == 5000 and local == (tmp_path / "out-pg-ray" / "out.vmig.jsonl").read_bytes()


def from_a_store(tmp: Path, n: int, store: str, run: str) -> None:
    """``n`` records written into ``store`` (a YAML flow mapping of a target), then the recipes ``s-local`` and
    ``s-ray`` reading it into ``out-<name>/out.vmig.jsonl`` with the ``run`` settings (a flow mapping without its
    executor); the local one is run."""
    write_input(tmp / "in.vmig.jsonl", n)
    fill = f"version: 1\nname: fill\nmode: raw\nsources: [{{type: vmig, path: in.vmig.jsonl}}]\ntargets: [{store}]\n"
    (tmp / "fill.yaml").write_text(fill)
    assert run_cli("run", "fill.yaml", cwd=tmp).code == 0
    for name, executor in (("s-local", "local"), ("s-ray", "ray")):
        (tmp / f"{name}.yaml").write_text(
            f"version: 1\nname: {name}\nmode: raw\nsources: [{store}]\n"
            f"targets: [{{type: vmig, path: out-{name}/out.vmig.jsonl}}]\nrun: {{executor: {executor}, {run}}}\n"
        )
    assert run_cli("run", "s-local.yaml", cwd=tmp).code == 0


def test_a_lancedb_table_is_read_in_row_ranges(tmp_path: Path) -> None:
    """LanceDB → vmig: the table version the run reads is cut into row ranges (whole pages), read by two
    workers from the same directory; the file equals the local executor's."""
    store = "{type: lancedb, path: lance, table: mem}"
    from_a_store(tmp_path, 5000, store, "batch_size: 300, ray: {workers: 2, partitions: 4}")
    plan = ns_run("plan", "s-ray.yaml", cwd=tmp_path)
    assert "sources[0] (lancedb): 4 partition(s): rows 0-1200, rows 1200-2400, rows 2400-3600, … rows 3600-5000" in (
        plan.stdout
    ), plan.stdout
    done = ns_run("run", "s-ray.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    local = (tmp_path / "out-s-local" / "out.vmig.jsonl").read_bytes()
    assert local.count(b"\n") == 5000 and local == (tmp_path / "out-s-ray" / "out.vmig.jsonl").read_bytes()


def test_an_embedded_store_source_is_read_by_a_worker(tmp_path: Path) -> None:
    """Qdrant's local mode admits one process: the driver lets go of the source before a worker opens it, and the
    output equals the local executor's."""
    from_a_store(tmp_path, 2000, "{type: qdrant, path: q, collection: mem}", "ray: {workers: 2}")
    done = ns_run("run", "s-ray.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    local = (tmp_path / "out-s-local" / "out.vmig.jsonl").read_bytes()
    assert local.count(b"\n") == 2000 and local == (tmp_path / "out-s-ray" / "out.vmig.jsonl").read_bytes()


# Runs inside the loopback namespace: the fake store must listen where Ray runs. Fills the fake from in.vmig.jsonl,
# then reads it into out-<executor>/out.vmig.jsonl with each executor; prints the plan and the exit codes.
_FAKE_STORE_RUNS = r"""
import json, os, subprocess, sys
from pathlib import Path
kind, d = sys.argv[1], Path(sys.argv[2])
os.environ["STORE_KEY"] = key = "store-key-CANARY-3"
if kind == "pinecone":
    from vexrun.testing.pinecone import FakePinecone
    fake = FakePinecone(key).start()
    where = lambda name: f"api_key: '${{STORE_KEY}}', index: {name.lower()}, controller_host: '{fake.control_url}'"
    target = lambda name: f"{{type: pinecone, {where(name)}, create: {{cloud: aws, region: us-east-1}}}}"
elif kind == "weaviate":
    from vexrun.testing.fake_weaviate import FakeWeaviate
    fake = FakeWeaviate(key).start()
    at = f"url: '{fake.url}', grpc_port: {fake.grpc_port}, api_key: '${{STORE_KEY}}'"
    where = lambda name: f"{at}, collection: {name}"
    target = lambda name: f"{{type: weaviate, {where(name)}}}"
elif kind == "redis":  # a real Redis with RediSearch, started here
    from vexrun.testing.services import redis as service
    handle = service.start(d / "redis")
    os.environ["STORE_KEY"] = handle.password
    class fake:
        stop = staticmethod(lambda: service.stop(handle))
    where = lambda name: f"url: '{handle.url}', password: '${{STORE_KEY}}', collection: {name.lower()}"
    target = lambda name: f"{{type: redis, {where(name)}, index: flat}}"
else:  # a real Bolt server (ArcadeDB's), started here
    from vexrun.testing.services import neo4j as service
    handle = service.start(d / "arcade")
    os.environ["STORE_KEY"] = handle.password
    class fake:
        stop = staticmethod(lambda: service.stop(handle))
    where = lambda name: f"url: '{handle.url}', username: {handle.user}, password: '${{STORE_KEY}}', label: {name}"
    target = lambda name: f"{{type: neo4j, {where(name)}}}"
def run(recipe, text):
    (d / recipe).write_text("version: 1\nmode: raw\n" + text)
    done = subprocess.run([sys.executable, "-m", "vexrun", "run", recipe], cwd=d, capture_output=True, text=True)
    out[recipe] = (done.returncode, done.stderr[-2000:])
def settings(ex):
    return f"run: {{executor: {ex}, batch_size: 250, ray: {{workers: 2, partitions: 4}}}}\n"
out = {}
try:
    # read: one store filled, then read into a file by each executor
    run("fill.yaml", f"source: {{type: vmig, path: in.vmig.jsonl}}\ntarget: {target('Mem')}\n")
    for ex in ("local", "ray"):
        source = f"source: {{type: {kind}, {where('Mem')}}}\n"
        run(f"read-{ex}.yaml", source + f"target: {{type: vmig, path: out-{ex}/out.vmig.jsonl}}\n" + settings(ex))
    out["plan"] = subprocess.run(
        [sys.executable, "-m", "vexrun", "plan", "read-ray.yaml"], cwd=d, capture_output=True, text=True
    ).stdout
    # write: each executor fills a store of its own (Ray's workers write it), both read back the same way
    for ex in ("local", "ray"):
        name = "W" + ex
        run(f"write-{ex}.yaml", f"source: {{type: vmig, path: in.vmig.jsonl}}\ntarget: {target(name)}\n" + settings(ex))
        source = f"source: {{type: {kind}, {where(name)}}}\n"
        no_graph = "graph: {temporal: false, tag: false, entity: false, causal: false}\n"
        run(f"back-{ex}.yaml", source + f"target: {{type: vmig, path: back-{ex}/out.vmig.jsonl}}\n" + no_graph)
finally:
    fake.stop()
print(json.dumps(out))
"""


@pytest.mark.parametrize(
    ("kind", "parts"),
    [
        ("pinecone", "2 partition(s): namespace 'home', namespace 'work'"),
        ("weaviate", "2 partition(s): tenant home, tenant work"),
        ("neo4j", "4 partition(s): nodes 0-500, nodes 500-1000, nodes 1000-1500, … nodes 1500-2000"),
        ("redis", "1 partition(s): all"),
    ],
)
def test_a_server_store_is_read_and_written_in_partitions(tmp_path: Path, kind: str, parts: str) -> None:
    """Pinecone (namespaces, each partition paced at its share of the index's rates), Weaviate (tenants) and Neo4j
    (ranges of ids, with the relationships as edges), started in the loopback namespace: read into a file by two
    Ray workers, the file and its edges equal the local executor's byte for byte; written by two Ray workers (the
    graph's edges by the driver), the store reads back as the one the local executor wrote."""
    import json

    write_input(tmp_path / "in.vmig.jsonl", 2000)
    cmd = [*_ns_command()[:-2], "-c", _FAKE_STORE_RUNS, kind, str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    plan = out.pop("plan")
    failed = {recipe: err for recipe, (code, err) in out.items() if code != 0}
    assert not failed, failed
    assert f"source ({kind}): {parts}" in plan, plan
    data = (tmp_path / "out-local" / "out.vmig.jsonl").read_bytes()  # read by Ray
    assert data.count(b"\n") == 2000 and data == (tmp_path / "out-ray" / "out.vmig.jsonl").read_bytes()
    edges = (tmp_path / "out-local" / "out.vmig.jsonl.edges.jsonl").read_bytes()
    assert edges.count(b"\n") > 100 and edges == (tmp_path / "out-ray" / "out.vmig.jsonl.edges.jsonl").read_bytes()
    # written by Ray: the same records (and in a graph store the same relationships), in the store's read order
    for name, least in (("out.vmig.jsonl", 2000), ("out.vmig.jsonl.edges.jsonl", 100 if kind == "neo4j" else 0)):
        by_local, by_ray = (tmp_path / by / name for by in ("back-local", "back-ray"))
        lines = sorted(by_local.read_bytes().splitlines()) if by_local.exists() else []
        ray_lines = sorted(by_ray.read_bytes().splitlines()) if by_ray.exists() else []
        assert len(lines) >= least and lines == ray_lines, name
    assert "CANARY" not in done.stdout + done.stderr


# Runs inside the loopback namespace (the LLM fake must listen where Ray runs): for each executor, an extract run
# while the provider is down (every chunk rejected), then --retry-rejected once it is back.
_RETRY_RUNS = r"""
import json, os, shutil, subprocess, sys
from pathlib import Path
from vexrun.testing.fake_api import chat_server
from vexrun.testing.fake_api.faults import Fault
src, root = Path(sys.argv[1]), Path(sys.argv[2])
KEY = "gsk_retry_CANARY_9"
out = {}
for executor in ("local", "ray"):
    d = root / executor
    d.mkdir()
    shutil.copy(src, d / "conversations.json")
    with chat_server(api_keys=[KEY]) as srv:
        (d / "facts.yaml").write_text(f'''version: 1
mode: extract
source: {{type: claude-export, path: conversations.json, chunk: exchange}}
llm:
  providers:
    - {{type: groq, base_url: "{srv.url('/v1')}", api_keys: "${{GROQ_TEST_KEYS}}", max_retries: 1, retry_backoff: 0.01}}
embed: {{type: fake, dims: 32}}
targets:
  - {{type: sqlite, path: mem.db}}
  - {{type: vmig, path: facts.vmig.jsonl}}
run: {{batch_size: 2, executor: {executor}, ray: {{workers: 2}}}}
''')
        env = {**os.environ, "GROQ_TEST_KEYS": KEY, "NO_COLOR": "1"}
        def run(*a):
            p = subprocess.run([sys.executable, "-m", "vexrun", *a], cwd=d, env=env, capture_output=True, text=True)
            return p.returncode, json.loads(p.stdout) if p.stdout.strip().startswith("{") else {}, p.stderr[-2000:]
        srv.fail(Fault.server_error(503, times=10_000, key=KEY))  # the provider is down: every chunk is rejected
        code, summary, err = run("run", "--json", "facts.yaml")
        out[executor] = {"first": code, "rejected": summary.get("counts", {}).get("extract", {}).get("rejected")}
        srv.faults.clear()
        code, summary, err = run("run", "--retry-rejected", "--json", "facts.yaml")
        out[executor].update(retry=code, left=summary.get("counts", {}).get("extract", {}).get("rejected"), err=err)
print(json.dumps(out))
"""


def test_retry_rejected_on_ray_equals_local(tmp_path: Path) -> None:
    """An extract run whose every LLM call fails rejects every chunk (each Ray partition then gives no batch at
    all: the driver once failed on the spool file such a partition never wrote); ``--retry-rejected`` once the
    provider is back runs the rejects file in partitions, and its facts equal the local executor's byte for byte."""
    import json

    conversations = ROOT / "examples" / "exports" / "claude" / "conversations.json"
    cmd = [*_ns_command()[:-2], "-c", _RETRY_RUNS, str(conversations), str(tmp_path)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env={**os.environ, "NO_COLOR": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    for executor in ("local", "ray"):
        figures = {k: v for k, v in out[executor].items() if k != "err"}
        assert figures == {"first": 3, "rejected": 8, "retry": 0, "left": 0}, out[executor]
    local = (tmp_path / "local" / "facts.vmig.jsonl").read_bytes()
    assert local.count(b"\n") > 8 and local == (tmp_path / "ray" / "facts.vmig.jsonl").read_bytes()
    assert "CANARY" not in done.stdout + done.stderr
