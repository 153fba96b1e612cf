"""Benchmark of the embedded local store: sink writes, an identical re-write (what a resumed run does),
source reads, search latency per mode, and ``replace: true`` over the store (against dropping its tables).

    python bench/bench_sqlite.py                         # 10k and 100k records at 384-d
    python bench/bench_sqlite.py --records 100000 --dims 768
    python bench/bench_sqlite.py --dir /big/disk

Each measurement runs in its own process, so peak RSS is that process's own (``wait4``). Records come from
:func:`vexrun.testing.data.synthetic_batches` (seeded unit vectors, ~20-word texts, 3 metadata fields);
the batches are generated before the clock starts. Queries are embedded by the fake embedder, so the
search figures are the store's own cost (SQL + numpy), not a model's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

WRITE = """
import json, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
from vexrun.testing.data import synthetic_batches
path, n, dims, sync, batch = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], int(sys.argv[5])
batches = list(synthetic_batches(n, dims=dims, batch_size=batch, seed=7))
ctx = RunContext(state_dir=path.parent, recipe_dir=path.parent, embedder_spec={"type": "fake", "dims": dims})
sink = SqliteSink(SqliteSinkConfig(path=path.name, synchronous=sync), ctx)
sink.open(None)
sink.prepare(dims, f"fake-{dims}")
t = time.perf_counter()
for b in batches:
    sink.write(b)
wrote = time.perf_counter() - t
t = time.perf_counter()
sink.finalize()
fin = time.perf_counter() - t
sink.close()
print(json.dumps({"write_s": wrote, "finalize_s": fin, "bytes": path.stat().st_size}))
"""

READ = """
import json, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite_store import SqliteSource, SqliteSourceConfig
path = Path(sys.argv[1])
src = SqliteSource(SqliteSourceConfig(path=path.name), RunContext(state_dir=path.parent, recipe_dir=path.parent))
src.open()
t = time.perf_counter()
n = sum(len(b) for b, _ in src.batches(None, 1000))
el = time.perf_counter() - t
src.close()
print(json.dumps({"read_s": el, "n": n}))
"""

SEARCH = """
import json, statistics, sys, time
from vexrun.connectors.sqlite.search import LocalStore
from vexrun.testing.data import WORDS
path, mode, reps = sys.argv[1], sys.argv[2], int(sys.argv[3])
queries = [" ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(4)) for i in range(reps)]
with LocalStore(path) as store:
    store.search("warm up", mode=mode, k=10)
    times = []
    for q in queries:
        t = time.perf_counter()
        store.search(q, mode=mode, k=10)
        times.append(time.perf_counter() - t)
print(json.dumps({"median_ms": statistics.median(times) * 1000, "max_ms": max(times) * 1000}))
"""

REPLACE = """
import json, sqlite3, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
path, dims, how = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
if how == "drop":  # the baseline: what replace: true did before, every table dropped in one transaction
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    for table in ("records_fts", "records", "edges", "meta"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute("COMMIT")
    conn.close()
else:
    ctx = RunContext(state_dir=path.parent, recipe_dir=path.parent)
    sink = SqliteSink(SqliteSinkConfig(path=path.name, replace=True), ctx)
    sink.open(None)
    sink.prepare(dims, f"other-{dims}")
    sink.close()
print(json.dumps({"s": time.perf_counter() - t}))
"""


def child(script: str, *args: object) -> tuple[dict[str, float], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-2000:]}")
    return json.loads(m.out), m.rss_mb


def bench(n: int, dims: int, workdir: Path, batch: int, reps: int) -> None:
    path = workdir / f"store-{n}.db"
    print(f"\n## {n:,} records, {dims}-d, batches of {batch}")
    for sync in ("full", "normal"):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        w, rss = child(WRITE, path, n, dims, sync, batch)
        print(
            f"write (synchronous={sync}): {n / w['write_s']:>9,.0f} rows/s  {w['write_s']:6.2f} s  "
            f"finalize {w['finalize_s']:.2f} s  {w['bytes'] / 1e6:,.0f} MB  peak RSS {rss:,.0f} MB"
        )
    w, rss = child(WRITE, path, n, dims, "full", batch)
    print(f"identical re-write:        {n / w['write_s']:>9,.0f} rows/s  {w['write_s']:6.2f} s  peak RSS {rss:,.0f} MB")
    r, rss = child(READ, path)
    print(
        f"source read:               {r['n'] / r['read_s']:>9,.0f} rows/s  {r['read_s']:6.2f} s  peak RSS {rss:,.0f} MB"
    )
    for mode in ("bm25", "vector", "hybrid"):
        s, rss = child(SEARCH, path, mode, reps)
        print(
            f"search {mode:<7} k=10: median {s['median_ms']:7.1f} ms  max {s['max_ms']:7.1f} ms  peak RSS {rss:,.0f} MB"
        )
    copy = workdir / "copy.db"
    shutil.copyfile(path, copy)
    d, drop_rss = child(REPLACE, copy, dims, "drop")
    copy.unlink()
    r, rss = child(REPLACE, path, dims, "sink")
    print(
        f"replace: true (prepare):   {r['s']:6.2f} s  peak RSS {rss:,.0f} MB   "
        f"(baseline, the tables dropped in one transaction: {d['s']:.2f} s, peak RSS {drop_rss:,.0f} MB)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="store size (repeatable)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--reps", type=int, default=20, help="queries per search mode")
    parser.add_argument("--dir", type=Path, default=None, help="where the stores go (default: a temp dir)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vexrun-bench-", dir=args.dir))
    try:
        for n in args.records or [10_000, 100_000]:
            bench(n, args.dims, workdir, args.batch, args.reps)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
