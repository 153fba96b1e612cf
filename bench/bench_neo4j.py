"""Benchmark of the Neo4j connector against a real Bolt server (ArcadeDB's Bolt plugin, the test service: no
Neo4j server runs on these machines) and the floors of the official ``neo4j`` driver, measured in the same run:

- write floor: a bare ``UNWIND $rows AS r CREATE (m:Label) SET m = r`` per batch (one managed write transaction
  each), rows of the same properties vexrun writes (id, text, namespace, embedding, created_at, the 3 metadata
  fields), built before the clock starts, at vexrun's batch size;
- read floor: one streamed ``MATCH (m:Label) RETURN properties(m)`` of every node (the driver's own paging);
- ``vexrun run`` of a .vmig.jsonl → neo4j import and a neo4j → .vmig.jsonl export of the same data.

    python bench/bench_neo4j.py                    # 100,000 records x 384-d (~2 minutes)
    python bench/bench_neo4j.py --records 10000
    python bench/bench_neo4j.py --repeat 2         # rounds, interleaved (the fastest of each counts)

Float lists cost most of the time over Bolt: the ``neo4j`` extra installs neo4j-rust-ext, Neo4j's Rust packstream
for the driver (without it the driver packs and unpacks them in pure Python: ~4 ms a 384-d record written here,
~0.35 ms with it), and both sides of each comparison use the same driver. vexrun's figures are whole processes
(start-up, imports, the plan: ~1 s here; the neo4j driver alone imports pandas) with ``run.verify: off``; the floors
time their loop only. Each step runs in its own process (``vexrun.testing.rss.measure``): its peak RSS is its own,
the server's is not counted. Target (issue 12): an
import or export takes at most 1.25x the slower of its source's read floor and its sink's write floor.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import yaml

from vexrun.testing.floors import VMIG_WRITE
from vexrun.testing.rss import measure
from vexrun.testing.services import neo4j as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET = 1.25

_CLIENT = """
import json, sys, time
import neo4j
driver = neo4j.GraphDatabase.driver(sys.argv[1], auth=("root", sys.argv[2]))
"""

WRITE = (
    _CLIENT
    + """
from vexrun.vmig import read_batches
label, src, batch = sys.argv[3], sys.argv[4], int(sys.argv[5])
rows = []
for b in read_batches(src):
    vecs = b.vectors.tolist()
    for i, rec in enumerate(b.records):
        rows.append({"id": rec.id, "text": rec.text, "namespace": rec.namespace, "embedding": vecs[i],
                     "created_at": rec.created_at, **rec.metadata})
query = f"UNWIND $rows AS r CREATE (m:`{label}`) SET m = r"
t = time.perf_counter()
for start in range(0, len(rows), batch):
    part = rows[start:start + batch]
    with driver.session() as session:
        session.execute_write(lambda tx: tx.run(query, rows=part).consume())
el = time.perf_counter() - t
n = driver.execute_query(f"MATCH (m:`{label}`) RETURN count(m) AS n").records[0]["n"]
print(json.dumps({"s": el, "n": n}))
"""
)

READ = (
    _CLIENT
    + """
label = sys.argv[3]
t = time.perf_counter()
n = 0
with driver.session() as session:
    for record in session.run(f"MATCH (m:`{label}`) RETURN properties(m) AS p"):
        n += 1
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""
)

VMIG_READ = """
import json, sys, time
from vexrun.vmig import read_batches
t = time.perf_counter()
n = sum(len(b) for b in read_batches(sys.argv[1]))
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), dims=int(sys.argv[3]), seed=7)
"""


def child(script: str, *args: object) -> tuple[dict[str, float], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-2000:]}")
    lines = m.out.strip().splitlines()
    return (json.loads(lines[-1]) if lines else {}), m.rss_mb


def vexrun(recipe: Path, password: str) -> tuple[float, float, dict[str, object]]:
    env = {**os.environ, "VEXRUN_BENCH_NEO4J_PASSWORD": password}
    m = measure([PY, "-m", "vexrun", "run", "--json", "--fresh", str(recipe)], cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed:\n{m.err[-2000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


def line(label: str, n: int, seconds: float, rss: float, extra: str = "") -> None:
    print(f"{label:<44} {n / seconds:>9,.0f} rec/s  {seconds:7.2f} s  peak RSS {rss:6,.0f} MB{extra}")


def verdict(seconds: float, floor: float) -> str:
    ratio = seconds / floor
    return f"  {ratio:.2f}x the floor: {'PASS' if ratio <= TARGET else 'FAIL'} (target {TARGET}x)"


def recipes(work: Path, data: Path, server: service.Neo4jHandle, label: str, batch: int) -> tuple[Path, Path]:
    target = {
        "type": "neo4j",
        "url": server.url,
        "username": server.user,
        "password": "${VEXRUN_BENCH_NEO4J_PASSWORD}",
        "label": label,
    }
    run = {"batch_size": batch, "verify": "off"}  # the floors read nothing back either
    imp, exp = work / f"import-{label}.yaml", work / f"export-{label}.yaml"
    imp.write_text(
        yaml.safe_dump({"version": 1, "source": {"type": "vmig", "path": data.name}, "target": target, "run": run})
    )
    out = {"type": "vmig", "path": "out.vmig.jsonl"}
    exp.write_text(yaml.safe_dump({"version": 1, "source": target, "target": out, "run": run}))
    return imp, exp


def bench(n: int, dims: int, work: Path, batch: int, server: service.Neo4jHandle, rounds: int) -> None:
    """``rounds`` rounds of: floor write, vexrun import (each into a label of its own), floor read, vexrun export,
    so that the database growing and the machine's load drifting weigh on both sides; the fastest of each counts."""
    data = work / "in.vmig.jsonl"
    child(GENERATE, data, n, dims)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields), batches of {batch:,}, {server.url}\n")
    v, v_rss = child(VMIG_READ, data)
    vw, vw_rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
    got: dict[str, list[tuple[float, float]]] = {"write": [], "import": [], "read": [], "export": []}
    for i in range(rounds):
        w, w_rss = child(WRITE, server.url, server.password, f"Floor{i}", data, batch)
        got["write"].append((w["s"], w_rss))
        imp, exp = recipes(work, data, server, f"Vexrun{i}", batch)
        t, rss, summary = vexrun(imp, server.password)
        assert summary["counts"]["source"]["read"] == n, summary  # type: ignore[index]
        got["import"].append((t, rss))
        r, r_rss = child(READ, server.url, server.password, f"Floor{i}")
        got["read"].append((r["s"], r_rss))
        t, rss, summary = vexrun(exp, server.password)
        assert summary["counts"]["source"]["read"] == n, summary  # type: ignore[index]
        got["export"].append((t, rss))
    best = {k: min(runs) for k, runs in got.items()}
    line(f"floor: UNWIND ... CREATE ({batch:,} per transaction)", n, *best["write"])
    line("floor: one streamed MATCH ... RETURN properties(m)", n, *best["read"])
    line("floor: .vmig.jsonl read", n, v["s"], v_rss)
    line("floor: .vmig.jsonl write", n, vw["s"], vw_rss)
    line("vexrun import vmig -> neo4j", n, *best["import"], verdict(best["import"][0], max(best["write"][0], v["s"])))
    line("vexrun export neo4j -> vmig", n, *best["export"], verdict(best["export"][0], max(best["read"][0], vw["s"])))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=500, help="vexrun's run.batch_size, and the floor's batch")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of measurements (the fastest of each counts)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-neo4j-", dir=args.dir))
    for n in args.records or [100_000]:
        server = service.start(work / f"server-{n}", heap="2g")
        print(f"ArcadeDB (Bolt): ready in {server.startup_s:.2f} s")
        try:
            bench(n, args.dims, work, args.batch, server, max(1, args.repeat))
        finally:
            service.stop(server)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
