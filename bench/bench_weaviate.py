"""Benchmark of the Weaviate connector against the wire-level fake (:mod:`vexrun.testing.fake_weaviate`, in its
own process: no Weaviate server can run here) and the floors of weaviate-client v4 itself, measured in the same
run:

- write floor: ``collection.with_tenant(t).data.insert_many`` (gRPC BatchObjects) of the same objects vexrun
  writes (the record's text, its 3 metadata fields, created_at and the id as properties, its vector, a tenant
  per namespace), pre-built before the clock, in the best batch size and number of requests in flight of a
  short probe;
- read floor: ``collection.with_tenant(t).iterator(include_vector=True, cache_size=1000)`` over every tenant;
- ``vexrun run`` of a .vmig.jsonl → weaviate import and a weaviate → .vmig.jsonl export of the same data, with
  the probe's batch size and parallelism.

    python bench/bench_weaviate.py                 # 100k records x 384-d (the issue's size: the fake has no index)
    python bench/bench_weaviate.py --records 30000

Each step runs in its own process (``vexrun.testing.rss.measure``): its peak RSS is its own; the fake's is not
counted. Both sides pay the same fake server, so the ratio compares the clients. Target (issue 4): a migration
takes at most 1.25x the slower of the source's read floor and the sink's write floor.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from vexrun.testing.floors import VMIG_WRITE
from vexrun.testing.rss import cpu_budget, measure, tree_cpu_s
from vexrun.testing.services import weaviate as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_CLIENT = """
import json, os, sys, time
from vexrun.testing.fake_weaviate import connect
client = connect(int(sys.argv[1]), int(sys.argv[2]), os.environ.get("WEAVIATE_API_KEY"))
"""

WRITE = (
    _CLIENT
    + """
from concurrent.futures import ThreadPoolExecutor
from weaviate.classes.config import Configure, VectorDistances
from weaviate.classes.data import DataObject
from vexrun.ids import uuid_for
from vexrun.vmig import read_batches
name, src, batch, threads, limit = sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
groups = {}
n = 0
for b in read_batches(src):
    for rec, vec in b:
        props = {"text": rec.text, "vexrun_id": rec.id, "created_at": rec.created_at, **rec.metadata,
                 "vexrun": json.dumps({"model": rec.model, "source_store": rec.source_store})}
        groups.setdefault(rec.namespace, []).append(
            DataObject(properties=props, uuid=uuid_for(rec.id), vector=vec.tolist()))
        n += 1
        if n >= limit:
            break
    if n >= limit:
        break
coll = client.collections.create(name, multi_tenancy_config=Configure.multi_tenancy(enabled=True),
    vector_config=Configure.Vectors.self_provided(vector_index_config=Configure.VectorIndex.hnsw(
        distance_metric=VectorDistances.COSINE)))
coll.tenants.create(sorted(groups))
jobs = [(t, objs[s:s + batch]) for t, objs in groups.items() for s in range(0, len(objs), batch)]
def put(job):
    res = coll.with_tenant(job[0]).data.insert_many(job[1])
    assert not res.errors, res.errors
t, c = time.perf_counter(), time.process_time()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(put, jobs))
el, cpu = time.perf_counter() - t, time.process_time() - c
total = sum(coll.with_tenant(t).aggregate.over_all(total_count=True).total_count for t in groups)
client.close()
print(json.dumps({"s": el, "n": total, "cpu": cpu}))
"""
)

READ = (
    _CLIENT
    + """
coll = client.collections.use(sys.argv[3])
t, c = time.perf_counter(), time.process_time()
n = 0
for tenant in sorted(coll.tenants.get()):
    for obj in coll.with_tenant(tenant).iterator(include_vector=True, cache_size=1000):
        n += 1
el, cpu = time.perf_counter() - t, time.process_time() - c
client.close()
print(json.dumps({"s": el, "n": n, "cpu": cpu}))
"""
)

VMIG_READ = """
import json, sys, time
from vexrun.vmig import read_batches
t, c = time.perf_counter(), time.process_time()
n = sum(len(b) for b in read_batches(sys.argv[1]))
print(json.dumps({"s": time.perf_counter() - t, "n": n, "cpu": time.process_time() - c}))
"""

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), dims=int(sys.argv[3]), seed=7)
"""


#: the fake's pid: its CPU time is read around each step (set in main)
SERVER_PID = 0


def child(script: str, env: dict[str, str], *args: object) -> tuple[dict[str, float], float]:
    """Run a measuring script: its figures (with ``server_cpu``, the CPU seconds the fake spent meanwhile, which
    for the write floor includes counting the objects after the clock stopped: a small part) and peak RSS."""
    before = tree_cpu_s(SERVER_PID)
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-2000:]}")
    lines = m.out.strip().splitlines()
    out: dict[str, float] = json.loads(lines[-1]) if lines else {}
    out["server_cpu"] = tree_cpu_s(SERVER_PID) - before
    return out, m.rss_mb


def vexrun(recipe: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    before = tree_cpu_s(SERVER_PID)
    m = measure([PY, "-m", "vexrun", "run", "--json", "--fresh", str(recipe)], cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed:\n{m.err[-2000:]}")
    return m.wall, m.rss_mb, {**json.loads(m.out), "cpu": m.cpu_s, "server_cpu": tree_cpu_s(SERVER_PID) - before}


def line(label: str, n: int, seconds: float, rss: float, extra: str = "") -> None:
    print(f"{label:<44} {n / seconds:>9,.0f} rec/s  {seconds:7.2f} s  peak RSS {rss:6,.0f} MB{extra}")


def budget(name: str, floor: float, floors_cpu: float, summary: dict[str, object]) -> None:
    """Whether 2 cores allow the target, from the floors' CPU work (the fake's included: it runs on the same
    cores), and what the run used (vexrun's processes, from its start, and the fake's)."""
    run_cpu, server = summary.get("cpu"), float(summary["server_cpu"])  # type: ignore[arg-type]
    print(f"    {name}: {cpu_budget(floor, floors_cpu, 1.25, run_cpu, server)}")  # type: ignore[arg-type]


def bench(n: int, dims: int, work: Path, batch: int, server: service.WeaviateHandle, probe: bool) -> None:
    import os

    env = {**os.environ, "WEAVIATE_API_KEY": server.api_key or ""}
    data = work / "in.vmig.jsonl"
    child(GENERATE, env, data, n, dims)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields), fake Weaviate (own process)\n")
    ports = (server.http_port, server.grpc_port)
    probe_n = min(n, 6_000)
    best, best_rate = (500, 2), 0.0
    for size in (200, 500, 1000) if probe else ():
        for threads in (1, 2):
            r, _ = child(WRITE, env, *ports, f"Probe_{size}_{threads}", data, size, threads, probe_n)
            rate = probe_n / r["s"]
            print(f"probe: SDK insert_many, batches of {size:<5} x {threads} in flight  {rate:>9,.0f} records/s")
            if rate > best_rate:
                best, best_rate = (size, threads), rate
    w, w_rss = child(WRITE, env, *ports, "Floor", data, best[0], best[1], n)
    line(f"floor: SDK insert_many ({best[0]} x {best[1]})", n, w["s"], w_rss)
    r, r_rss = child(READ, env, *ports, "Floor")
    line("floor: SDK iterator (page 1000)", int(r["n"]), r["s"], r_rss)
    v, v_rss = child(VMIG_READ, env, data)
    line("floor: .vmig.jsonl read", int(v["n"]), v["s"], v_rss)
    vw, vw_rss = child(VMIG_WRITE, env, work / "floor-out.vmig.jsonl", n, dims)
    (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
    line("floor: .vmig.jsonl write", int(vw["n"]), vw["s"], vw_rss)

    source = {"type": "weaviate", "url": server.url, "grpc_port": server.grpc_port, "collection": "VexrunBench"}
    source["api_key"] = "${WEAVIATE_API_KEY}"
    target = {**source, "chunk": best[0], "parallel": best[1]}
    run = {"batch_size": max(batch, best[0])}
    imp = work / "import.yaml"
    imp.write_text(
        yaml.safe_dump({"version": 1, "source": {"type": "vmig", "path": data.name}, "target": target, "run": run})
    )
    exp = work / "export.yaml"
    exp.write_text(
        yaml.safe_dump(
            {"version": 1, "source": source, "target": {"type": "vmig", "path": "out.vmig.jsonl"}, "run": run}
        )
    )
    # the run's own time (``elapsed_s``): the process start (importing weaviate-client takes seconds) is not the
    # connector's; the wall time with it is printed too
    t_imp, rss_imp, s_imp = vexrun(imp, env)
    floor_imp = max(w["s"], v["s"])
    run_imp = float(s_imp["elapsed_s"])  # type: ignore[arg-type]
    line(
        "vexrun import vmig -> weaviate",
        n,
        run_imp,
        rss_imp,
        f"  {run_imp / floor_imp:.2f}x floor (wall {t_imp:.1f} s)",
    )
    budget("import", floor_imp, w["cpu"] + w["server_cpu"] + v["cpu"], s_imp)
    t_exp, rss_exp, s_exp = vexrun(exp, env)
    run_exp = float(s_exp["elapsed_s"])  # type: ignore[arg-type]
    floor_exp = max(r["s"], vw["s"])
    line(
        "vexrun export weaviate -> vmig",
        n,
        run_exp,
        rss_exp,
        f"  {run_exp / floor_exp:.2f}x floor (wall {t_exp:.1f} s; {run_exp / r['s']:.2f}x the read floor)",
    )
    budget("export", floor_exp, r["cpu"] + r["server_cpu"] + vw["cpu"], s_exp)
    for name, summary in (("import", s_imp), ("export", s_exp)):
        counts = summary["counts"]
        assert isinstance(counts, dict) and counts["source"]["read"] == n, (name, counts)


def main() -> None:
    global SERVER_PID
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=5000, help="vexrun's run.batch_size")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument("--no-probe", action="store_true", help="skip the probe (use batches of 500 x 2 in flight)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-weaviate-", dir=args.dir))
    for n in args.records or [100_000]:
        server = service.start(work / f"server-{n}")
        SERVER_PID = server.pid
        print(f"fake Weaviate: ready in {server.startup_s:.2f} s")
        try:
            bench(n, args.dims, work, args.batch, server, not args.no_probe)
        finally:
            service.stop(server)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
