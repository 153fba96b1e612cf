"""Benchmark of the LanceDB connector against the floors of the same data through lancedb itself, measured in
the same run.

    python bench/bench_lancedb.py                          # 100k records × 384-d
    python bench/bench_lancedb.py --records 100000 --records 1000000 --dir /tmp
                                                           # RSS flat from 100k to 1M (1M: ~3 GB of disk)
    python3.11 -m venv /tmp/lean && /tmp/lean/bin/pip install -e '.[lancedb]'
    python bench/bench_lancedb.py --python /tmp/lean/bin/python
                                                           # what a user with only the lancedb extra runs

Floors (each in its own process, data prepared before the clock starts):
- write: bare ``tbl.add()`` of Arrow tables in vexrun's layout (id, float32 fixed-size-list vector, text,
  namespace, metadata JSON, created_at, model, source_store, modality, score, vex_version, extra), one per
  batch of ``--batch`` records, into a new table in the file format vexrun writes (Lance's ``legacy``: it was
  also 1.4-1.8× faster to append to than ``stable`` here): what a hand-written loader does (no compaction, no
  index);
- read: a bare scan of the table (``tbl.search().to_batches()``), every Arrow batch touched;
- and, for the file side, vexrun's own .vmig.jsonl reader and writer.

Then ``vexrun run`` of vmig → lancedb (import, into a new table: appends, then ``finalize`` compacts the
table and builds the BTREE index on id; the time of that step alone is printed after) and lancedb → vmig
(export). Each run's wall time (the whole ``vexrun`` process, start-up included) is compared with 1.25× the
slower of its source's read floor and its sink's write floor (issue 12's target), and its peak RSS
(``vexrun.testing.rss.measure``: the process and its reader workers) with 300 MB; across sizes the RSS should
stay flat.

``--python``: the interpreter every step runs with (default: this one). In an environment with every extra,
pandas is installed (pymilvus requires it) and pyarrow imports it on its first conversion (+35-49 MB in the run's
process); an environment with only ``vexrun[lancedb]`` has no pandas.
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
from vexrun.testing.rss import cpu_budget, measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET = 1.25
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


# The write floor: the .vmig.jsonl file read and turned into Arrow tables first, then only tbl.add() is timed.
LANCE_WRITE = """
import json, os, sys, time
os.environ.setdefault("LANCEDB_LOG", "error")
import lancedb, orjson, pyarrow as pa
from vexrun.vmig import read_batches
db_path, src, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
S = pa.utf8()
tables = []
for b in read_batches(src, batch_size=batch):
    recs, d = b.records, b.vectors.shape[1]
    vec = pa.FixedSizeListArray.from_arrays(pa.array(b.vectors.reshape(-1)), d)
    cols = {
        "id": pa.array([r.id for r in recs], S), "vector": vec, "text": pa.array([r.text for r in recs], S),
        "namespace": pa.array([r.namespace for r in recs], S),
        "metadata": pa.array([orjson.dumps(r.metadata).decode() for r in recs], S),
        "created_at": pa.array([r.created_at for r in recs], S), "model": pa.array([r.model for r in recs], S),
        "source_store": pa.array([r.source_store for r in recs], S),
        "modality": pa.array([r.modality for r in recs], S), "score": pa.array([r.score for r in recs], pa.float64()),
        "vex_version": pa.array([r.vex_version for r in recs], S), "extra": pa.array([None] * len(recs), S),
    }
    tables.append(pa.table(cols))
db = lancedb.connect(db_path)
t, c = time.perf_counter(), time.process_time()
tbl = db.create_table("floor", schema=tables[0].schema, storage_options={"new_table_data_storage_version": "legacy"})
for table in tables:
    tbl.add(table)
s, cpu = time.perf_counter() - t, time.process_time() - c
print(json.dumps({"n": tbl.count_rows(), "s": s, "cpu": cpu}))
"""

LANCE_READ = """
import json, os, sys, time
os.environ.setdefault("LANCEDB_LOG", "error")
import lancedb
t, c = time.perf_counter(), time.process_time()
tbl = lancedb.connect(sys.argv[1]).open_table(sys.argv[2])
n = 0
for b in tbl.search().to_batches(int(sys.argv[3])):
    n += b.num_rows
print(json.dumps({"n": n, "s": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""

FINALIZE = """
import json, os, sys, time
os.environ.setdefault("LANCEDB_LOG", "error")
import lancedb
from lancedb.index import BTree
tbl = lancedb.connect(sys.argv[1]).open_table(sys.argv[2])
t, c = time.perf_counter(), time.process_time()
tbl.optimize()
tbl.create_index("id", config=BTree())
print(json.dumps({"n": tbl.count_rows(), "s": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""


def child(script: str, *args: object) -> tuple[dict[str, float], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-3000:]}")
    return json.loads(m.out.strip().splitlines()[-1]), m.rss_mb


def vexrun_run(recipe: Path) -> tuple[float, float, dict[str, object]]:
    env = {**os.environ, "NO_COLOR": "1"}
    cmd = [PY, "-m", "vexrun", "run", "--json", "--fresh", "--progress", "none", str(recipe)]
    m = measure(cmd, cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed ({m.code}):\n{(m.out + m.err)[-3000:]}")
    return m.wall, m.rss_mb, {**json.loads(m.out), "cpu": m.cpu_s}


def write_recipe(path: Path, source: dict[str, object], target: dict[str, object], batch: int) -> Path:
    doc = {"version": 1, "name": path.stem, "source": source, "target": target, "run": {"batch_size": batch}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rate(n: int, s: float) -> str:
    return f"{n / s:>9,.0f} rec/s {s:7.2f} s"


def verdict(name: str, wall: float, floor: float, rss: float) -> bool:
    ratio = wall / (TARGET * floor)
    ok = ratio <= 1.0 and rss < RSS_MB
    print(
        f"    {name}: {wall / floor:4.2f}× the slower floor = {ratio:4.2f}× the target (1.25×); "
        f"peak RSS {rss:5.0f} MB (bound {RSS_MB:.0f} MB)  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def bench(n: int, dims: int, work: Path, batch: int) -> tuple[bool, float, float]:
    print(f"\n## {n:,} records × {dims}-d (text + vector + 3 metadata fields), batches of {batch:,}")
    data = work / f"in-{n}.vmig.jsonl"
    m = measure([PY, "-c", GENERATE, str(data), str(n), str(dims)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(m.err[-2000:])
    db = work / "db"
    shutil.rmtree(db, ignore_errors=True)

    print("floors")
    vr, rss = child(VMIG_READ, data)
    print(f"  vmig read (vexrun's reader)          {rate(n, vr['s'])}  peak RSS {rss:5.0f} MB")
    vw, rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
    print(f"  vmig write (vexrun's writer)         {rate(n, vw['s'])}  peak RSS {rss:5.0f} MB")
    w, rss = child(LANCE_WRITE, db, data, batch)
    assert w["n"] == n, w
    print(f"  lancedb tbl.add() of Arrow batches   {rate(n, w['s'])}  peak RSS {rss:5.0f} MB")
    r, rss = child(LANCE_READ, db, "floor", batch)
    assert r["n"] == n, r
    print(f"  lancedb scan (to_batches)            {rate(n, r['s'])}  peak RSS {rss:5.0f} MB")
    f, _ = child(FINALIZE, db, "floor")
    print(f"  (optimize + BTREE on id of the floor table: {f['s']:.2f} s, not part of the floor)")

    print("vexrun")
    ok = True
    target = {"type": "lancedb", "path": str(db), "table": "imported", "replace": True}
    imp = write_recipe(work / "import.yaml", {"type": "vmig", "path": data.name}, target, batch)
    wall, rss_imp, summary = vexrun_run(imp)
    assert summary["counts"]["source"]["read"] == n, summary  # type: ignore[index]
    print(f"  import vmig → lancedb (+ finalize)   {rate(n, wall)}  peak RSS {rss_imp:5.0f} MB")
    ok &= verdict("import", wall, max(vr["s"], w["s"]), rss_imp)
    print(f"    import: {cpu_budget(max(vr['s'], w['s']), vr['cpu'] + w['cpu'], TARGET, summary['cpu'])}")  # type: ignore[arg-type]
    source = {"type": "lancedb", "path": str(db), "table": "imported"}
    exp = write_recipe(work / "export.yaml", source, {"type": "vmig", "path": "out.vmig.jsonl"}, batch)
    wall, rss_exp, summary = vexrun_run(exp)
    assert summary["counts"]["source"]["read"] == n, summary  # type: ignore[index]
    (work / "out.vmig.jsonl").unlink(missing_ok=True)
    print(f"  export lancedb → vmig                {rate(n, wall)}  peak RSS {rss_exp:5.0f} MB")
    ok &= verdict("export", wall, max(r["s"], vw["s"]), rss_exp)
    print(f"    export: {cpu_budget(max(r['s'], vw['s']), r['cpu'] + vw['cpu'], TARGET, summary['cpu'])}")  # type: ignore[arg-type]
    data.unlink(missing_ok=True)
    shutil.rmtree(db, ignore_errors=True)
    return ok, rss_imp, rss_exp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=2000, help="run.batch_size, and the floor's batch size")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to run every step with")
    parser.add_argument("--dir", type=Path, default=None, help="where the data and the tables go (default: a temp dir)")
    args = parser.parse_args()
    global PY
    PY = args.python
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-lancedb-", dir=args.dir))
    ok = True
    peaks: list[tuple[int, float, float]] = []
    try:
        for n in args.records or [100_000]:
            passed, rss_imp, rss_exp = bench(n, args.dims, work, args.batch)
            ok &= passed
            peaks.append((n, rss_imp, rss_exp))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if len(peaks) > 1:
        (n0, i0, e0), (n1, i1, e1) = peaks[0], peaks[-1]
        flat = i1 <= 1.2 * i0 + 10 and e1 <= 1.2 * e0 + 10
        print(
            f"\npeak RSS {n0:,} → {n1:,} records: import {i0:.0f} → {i1:.0f} MB, export {e0:.0f} → {e1:.0f} MB "
            f"({'flat' if flat else 'NOT flat'})"
        )
        ok &= flat
    print("\nPASS" if ok else "\nFAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
