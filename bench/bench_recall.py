"""Benchmark of recall from agents: search latency through LangGraph's ``VexrunStore`` and ``Memory.search`` over a
100k-record local store, against the raw ``sink.search`` call they stand on (same store, same query vectors).

    python bench/bench_recall.py                          # 100k records, 200 queries, the local MiniLM embedder
    python bench/bench_recall.py --records 20000 --embedder fake

The store is built from :func:`vexrun.testing.data.synthetic_batches` (seeded unit vectors, three namespaces) with
20-word texts drawn from a 30,000-word vocabulary with Zipf's word frequencies (as in natural language, so BM25
matches are selective; the 60-word vocabulary of the synthetic texts makes every record match every query), and
records the embedder the queries are embedded with: ``local`` (all-MiniLM-L6-v2, the realistic query cost) or
``fake``. The embedder is loaded and warmed before any clock starts. Each query is four random content words,
searched in one namespace (about a third of the store), k=10:

- ``sink.search``: the baseline, with the query vector precomputed (BM25 + brute-force cosine, fused);
- ``Memory.search(vector=...)``: the facade's own overhead over it;
- ``Memory.search(query)``: plus embedding the query;
- ``VexrunStore.search``: LangGraph's ``store.search(("work",), query=...)``, everything included.

Target: ``VexrunStore.search`` p95 < 50 ms. The search runs in its own process (peak RSS is its own).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET_P95_MS = 50.0

BUILD = """
import json, sys, time
import numpy as np
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
from vexrun.testing.data import synthetic_batches
path, n, dims, spec = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
VOCAB = 30_000
model = "all-MiniLM-L6-v2" if spec["type"] == "local" else f"fake-{dims}"
ctx = RunContext(state_dir=path.parent, recipe_dir=path.parent, embedder_spec=spec)
sink = SqliteSink(SqliteSinkConfig(path=path.name, synchronous="normal"), ctx)
sink.open(None)
sink.prepare(dims, model)
rng = np.random.default_rng(11)
t = time.perf_counter()
for batch in synthetic_batches(n, dims=dims, seed=11, batch_size=5000):
    ranks = rng.zipf(1.3, size=(len(batch), 20)) % VOCAB  # word frequencies as in natural language
    for rec, row in zip(batch.records, ranks):
        rec.model = model
        rec.text = " ".join(f"w{r}" for r in row)
    sink.write(batch)
sink.finalize()
sink.close()
print(json.dumps({"build_s": time.perf_counter() - t, "bytes": path.stat().st_size}))
"""

SEARCH = """
import json, random, sys, time
import numpy as np
from vexrun.integrations.langgraph import VexrunStore
from vexrun.recall import Memory
path, reps = sys.argv[1], int(sys.argv[2])
rng = random.Random(5)
# four content words each (not the few very frequent ones, as a stop-word list would drop them)
queries = [" ".join(f"w{rng.randrange(100, 5000)}" for _ in range(4)) for _ in range(reps)]

def timed(fn, items):
    out = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        out.append((time.perf_counter() - t) * 1000)
    return out

with Memory.open(path) as memory:
    store = VexrunStore(memory)
    memory.embed(["warm up the model"])                       # loaded and warmed before any clock
    t = time.perf_counter()
    vectors = [memory.embed([q])[0] for q in queries]
    embed_ms = [(time.perf_counter() - t) * 1000 / len(queries)] * len(queries)
    sink = memory._store()                                   # the sink the facade searches through
    pairs = list(zip(queries, vectors))
    for q, v in pairs[:5]:                                   # warm the page cache for every path
        sink.search(v, q, 10, "work")
    rows = {
        "embed one query": embed_ms,
        "sink.search (baseline)": timed(lambda p: sink.search(p[1], p[0], 10, "work"), pairs),
        "Memory.search(vector=...)": timed(lambda p: memory.search(p[0], vector=p[1], k=10, namespace="work"), pairs),
        "Memory.search(query)": timed(lambda q: memory.search(q, k=10, namespace="work"), queries),
        "VexrunStore.search": timed(lambda q: store.search(("work",), query=q, limit=10), queries),
    }
    found = store.search(("work",), query=queries[0], limit=10)
    assert len(found) == 10 and all(i.namespace == ("work",) for i in found), found
print(json.dumps({name: [float(np.percentile(ms, 50)), float(np.percentile(ms, 95))] for name, ms in rows.items()}))
"""


def child(script: str, *args: object) -> tuple[dict[str, object], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-2000:]}")
    return json.loads(m.out), m.rss_mb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--embedder", choices=["local", "fake"], default="local")
    parser.add_argument("--dir", type=Path, default=None, help="where the store goes (default: a temp dir)")
    args = parser.parse_args()
    dims = 384
    local = {"type": "local", "model": "all-MiniLM-L6-v2"}
    spec = local if args.embedder == "local" else {"type": "fake", "dims": dims}
    workdir = Path(tempfile.mkdtemp(prefix="vexrun-bench-recall-", dir=args.dir))
    try:
        path = workdir / "memory.db"
        built, _ = child(BUILD, path, args.records, dims, json.dumps(spec))
        print(
            f"## {args.records:,} records, {dims}-d, embedder {args.embedder}; {args.queries} queries in one namespace "
            f"(~{args.records // 3:,} records), k=10\nstore built in {built['build_s']:.1f} s, "
            f"{int(built['bytes']) / 1e6:,.0f} MB"  # type: ignore[call-overload]
        )
        load = os.getloadavg()[0]
        rows, rss = child(SEARCH, path, args.queries)
        print(f"load average {load:.1f} before the searches, {os.getloadavg()[0]:.1f} after ({os.cpu_count()} cores)")
        base = rows["sink.search (baseline)"][1]  # type: ignore[index]
        print(f"{'':28}{'p50 ms':>9}{'p95 ms':>9}{'p95 / baseline':>16}")
        for name, (p50, p95) in rows.items():  # type: ignore[misc, union-attr]
            ratio = "" if name == "embed one query" else f"{p95 / base:15.2f}x"
            print(f"{name:<28}{p50:9.1f}{p95:9.1f} {ratio}")
        p95 = rows["VexrunStore.search"][1]  # type: ignore[index]
        verdict = "PASS" if p95 < TARGET_P95_MS else "FAIL"
        print(f"peak RSS of the search process {rss:,.0f} MB")
        print(f"{verdict}: VexrunStore.search p95 {p95:.1f} ms (target < {TARGET_P95_MS:.0f} ms)")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
