"""Benchmark of the Milvus connector against the floors of the same data on the same server, measured in the
same run.

    python bench/bench_milvus.py                         # 100k records × 384-d
    python bench/bench_milvus.py --records 20000         # another size (repeatable)
    python bench/bench_milvus.py --dir /big/disk         # where the data and the server go (~1 GB at 100k)

Floors (straight through pymilvus's ``MilvusClient``, best batch size and concurrency found):
- write: ``upsert`` of row dicts built before the clock starts, into a collection with vexrun's layout
  (id, float32 vector, text, namespace, metadata JSON, _vexrun JSON), then ``flush``; the batch size and the
  requests in flight are picked by a trial on a part of the data;
- read: ``query`` pages of 4096 and of the maximum size (16384) in primary-key order (``id > last``), every row
  materialised with its vector as float32, the next page fetched while the current one is consumed;
- and, for the file side, vexrun's own .vmig.jsonl reader and writer.
Then ``vexrun run`` (batches of 2000 records sent as 2 upserts in flight, and export pages of 4096: the
sizes that keep vexrun's peak RSS under 300 MB) of: vmig → milvus (import, ``index_type: none``: the vector
index is a separate step that the floor does not build either; its time is printed after), milvus → vmig
(export), and milvus → milvus (migration into another collection). Each run's wall time (the whole
``vexrun`` process) is compared with 1.25× the slower of its source's read floor and its sink's write floor
(issue 4's target); peak RSS is each process's own (``vexrun.testing.rss.measure``), with 300 MB as the
bound for server-based stores.

The server is the test service: Milvus 2.3.5 standalone from the ``milvus`` wheel, in a network namespace of
its own, reached through a loopback relay on 127.0.0.1 (floors and vexrun alike go through it).
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
from vexrun.testing.services import milvus as service

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
t = time.perf_counter()
n = sum(len(b) for b in read_batches(sys.argv[1], batch_size=1000))
print(json.dumps({"n": n, "s": time.perf_counter() - t}))
"""


# The write floor: MilvusClient.upsert of row dicts (built before the clock starts) in batches of `size` rows,
# `workers` requests in flight, then flush. With several (size, workers) pairs, each gets a fresh collection.
MV_WRITE = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from vexrun.connectors.milvus.common import sdk
from vexrun.vmig import read_batches
uri, coll, path, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
configs = [tuple(map(int, c.split("x"))) for c in sys.argv[5].split(",")]
pm = sdk()
dt = pm.DataType
client = pm.MilvusClient(uri=uri)
rows = []
for b in read_batches(path, batch_size=5000):
    for r, v in b:
        rows.append({"id": r.id, "vector": v, "text": r.text, "namespace": r.namespace, "metadata": r.metadata,
                     "_vexrun": {"model": r.model, "created_at": r.created_at, "source_store": r.source_store,
                                 "modality": r.modality}})
    if limit and len(rows) >= limit:
        break
rows = rows[:limit] if limit else rows
dims = len(rows[0]["vector"])
out = {}
for size, workers in configs:
    name = f"{coll}_{size}x{workers}"
    if client.has_collection(name):
        client.drop_collection(name)
    schema = pm.MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    schema.add_field("id", dt.VARCHAR, max_length=512, is_primary=True)
    schema.add_field("vector", dt.FLOAT_VECTOR, dim=dims)
    schema.add_field("text", dt.VARCHAR, max_length=65535)
    schema.add_field("namespace", dt.VARCHAR, max_length=65535)
    schema.add_field("metadata", dt.JSON)
    schema.add_field("_vexrun", dt.JSON)
    client.create_collection(name, schema=schema, consistency_level="Strong")
    chunks = [rows[i:i + size] for i in range(0, len(rows), size)]
    t = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda chunk: client.upsert(name, chunk), chunks))
    client.flush(name)
    out[f"{size}x{workers}"] = time.perf_counter() - t
    if len(configs) > 1:
        client.drop_collection(name)
client.close()
print(json.dumps({"n": len(rows), "s": out}))
"""

# The read floor: MilvusClient.query pages of `size` in key order, rows materialised (vectors as float32), the
# next page in flight while the current one is consumed.
MV_READ = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from vexrun.connectors.milvus.common import sdk
uri, coll, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
client = sdk().MilvusClient(uri=uri)
fields = ["id", "vector", "text", "namespace", "metadata", "_vexrun"]
def page(after, strong):
    expr = "" if after is None else f"id > {json.dumps(after)}"
    return list(client.query(coll, filter=expr, limit=size, output_fields=fields, strict_float32=True,
                             consistency_level="Strong" if strong else "Eventually"))
n = 0
t = time.perf_counter()
with ThreadPoolExecutor(1) as pool:
    pending = pool.submit(page, None, True)
    while pending is not None:
        rows = pending.result()
        pending = pool.submit(page, rows[-1]["id"], False) if len(rows) == size else None
        if rows:
            vectors = np.stack([r["vector"] for r in rows])
            n += len(rows)
s = time.perf_counter() - t
client.close()
print(json.dumps({"n": n, "s": s}))
"""

INDEX = """
import json, sys, time
from vexrun.connectors.milvus.common import sdk
uri, coll, kind = sys.argv[1], sys.argv[2], sys.argv[3]
client = sdk().MilvusClient(uri=uri)
t = time.perf_counter()
params = client.prepare_index_params()
extra = {"M": 16, "efConstruction": 200} if kind == "HNSW" else {}
params.add_index(field_name="vector", index_type=kind, metric_type="COSINE", params=extra)
client.create_index(coll, params)
client.load_collection(coll)
s = time.perf_counter() - t
n = client.query(coll, filter="", output_fields=["count(*)"], consistency_level="Strong")[0]["count(*)"]
client.close()
print(json.dumps({"n": n, "s": s}))
"""


def child(script: str, *args: object) -> tuple[dict[str, object], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed:\n{m.err[-3000:]}")
    return json.loads(m.out.strip().splitlines()[-1]), m.rss_mb


def vexrun_run(recipe: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    m = measure([PY, "-m", "vexrun", "run", "--json", "--progress", "none", str(recipe)], cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed ({m.code}):\n{(m.out + m.err)[-3000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


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


def verdict(name: str, wall: float, floor: float, rss: float, bounded: bool) -> bool:
    ratio = wall / (TARGET * floor)
    ok = ratio <= 1.0 and (rss < RSS_MB or not bounded)
    rss_note = f"(bound {RSS_MB:.0f} MB)" if bounded else "(reported)"
    print(
        f"    {name}: {wall / floor:4.2f}× the slower floor = {ratio:4.2f}× the target (1.25×); "
        f"peak RSS {rss:5.0f} MB {rss_note}  {'PASS' if ok else 'FAIL'}"
    )
    return ok


def bench(n: int, dims: int, work: Path, handle: service.MilvusHandle, trial: int, batch: int, page: int) -> bool:
    print(f"\n## {n:,} records × {dims}-d (text + vector + 3 metadata fields)")
    data = work / f"in-{n}.vmig.jsonl"
    if not data.exists():
        m = measure([PY, "-c", GENERATE, str(data), str(n), str(dims)], cwd=str(ROOT))
        if m.code != 0:
            raise SystemExit(m.err[-2000:])
    uri = handle.uri
    env = {**os.environ, "NO_COLOR": "1"}

    print("floors (through pymilvus MilvusClient, best batch size and concurrency)")
    vr, rss = child(VMIG_READ, data)
    vmig_read = float(vr["s"])  # type: ignore[arg-type]
    print(f"  vmig read (vexrun's reader)        {rate(n, vmig_read)}  peak RSS {rss:5.0f} MB")
    vw, rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    vmig_write = float(vw["s"])  # type: ignore[arg-type]
    print(f"  vmig write (vexrun's writer)       {rate(n, vmig_write)}  peak RSS {rss:5.0f} MB")
    grid = "1000x2,2000x1,2000x2,5000x1,5000x2,5000x3,10000x3"
    m = min(n, trial)
    tried, _ = child(MV_WRITE, uri, "trial", data, m, grid)
    times: dict[str, float] = tried["s"]  # type: ignore[assignment]
    print(f"  upsert trial on {m:,} records: " + ", ".join(f"{k} {m / v:,.0f}/s" for k, v in times.items()))
    best = min(times, key=lambda k: times[k])
    size, workers = map(int, best.split("x"))
    w, rss = child(MV_WRITE, uri, "floor", data, 0, best)
    mv_write = float(w["s"][best])  # type: ignore[index]
    print(f"  milvus upsert {size} × {workers} in flight + flush {rate(n, mv_write)}  peak RSS {rss:5.0f} MB")
    r, _ = child(INDEX, uri, f"floor_{best}", "FLAT")  # Milvus reads loaded collections only
    assert r["n"] == n, r
    reads = {}
    for size_ in (4096, 16384):
        r, rss = child(MV_READ, uri, f"floor_{best}", size_)
        assert r["n"] == n, r
        reads[size_] = float(r["s"])  # type: ignore[arg-type]
        print(f"  milvus query pages of {size_:>5}        {rate(n, reads[size_])}  peak RSS {rss:5.0f} MB")
    mv_read = min(reads.values())
    print(f"  → write floor {n / mv_write:,.0f} rec/s ({size} × {workers}); read floor {n / mv_read:,.0f} rec/s")

    print("vexrun")
    ok = True
    coll = f"imported_{n}"
    target = {
        "type": "milvus",
        "uri": uri,
        "collection": coll,
        "index_type": "none",
        "replace": True,
        "concurrency": 2,
    }
    imp = write_recipe(work / "import.yaml", {"type": "vmig", "path": data.name}, target, batch)
    wall, rss, summary = vexrun_run(imp, env)
    assert summary["counts"]["store"]["target (milvus)"]["written"] == n, summary  # type: ignore[index]
    print(f"  import vmig → milvus    (batch {batch}, 2 in flight) {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    ok &= verdict("import", wall, max(vmig_read, mv_write), rss, bounded=False)
    r, _ = child(INDEX, uri, coll, "FLAT")
    assert r["n"] == n, r
    print(f"  (index FLAT + load, the same for any writer: {float(r['s']):.2f} s)")  # type: ignore[arg-type]
    source = {"type": "milvus", "uri": uri, "collection": coll}
    exp = write_recipe(work / "export.yaml", source, {"type": "vmig", "path": "out.vmig.jsonl"}, page)
    wall, rss, summary = vexrun_run(exp, env)
    assert summary["counts"]["source"]["read"] == n, summary  # type: ignore[index]
    print(f"  export milvus → vmig    (pages of {page})      {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    ok &= verdict("export", wall, max(mv_read, vmig_write), rss, bounded=False)
    target = {**target, "collection": f"migrated_{n}"}
    mig = write_recipe(work / "migrate.yaml", source, target, batch)
    refused = plan_refuses(mig, env)
    if refused:
        print(f"  migrate milvus → milvus  not run: {refused}")
        return ok
    wall, rss, summary = vexrun_run(mig, env)
    assert summary["counts"]["store"]["target (milvus)"]["written"] == n, summary  # type: ignore[index]
    print(f"  migrate milvus → milvus (batch {batch}, 2 in flight) {rate(n, wall)}  peak RSS {rss:5.0f} MB")
    ok &= verdict("migrate", wall, max(mv_read, mv_write), rss, bounded=True)
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=2000, help="run.batch_size of the imports and migrations")
    parser.add_argument("--page", type=int, default=4096, help="run.batch_size (= query page) of the exports")
    parser.add_argument("--trial", type=int, default=30_000, help="records of the batch-size / concurrency trial")
    parser.add_argument("--dir", type=Path, default=None, help="where data and the server go (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-milvus-", dir=args.dir))
    handle = service.start(work / "server")
    print(f"Milvus 2.3.5 test server up in {handle.startup_s:.1f} s (launcher pid {handle.pid}, {handle.uri})")
    ok = True
    try:
        for n in args.records or [100_000]:
            ok &= bench(n, args.dims, work, handle, args.trial, args.batch, args.page)
    finally:
        service.stop(handle)
        shutil.rmtree(work, ignore_errors=True)
    print("\nPASS" if ok else "\nFAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
