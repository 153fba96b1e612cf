"""Benchmark of the Qdrant connector in local mode (qdrant-client's own engine: no Qdrant server runs here)
against the floors of the same SDK, measured in the same run:

- write floor: ``client.upsert`` of the records (pre-loaded before the clock) in the best batch size of a
  short probe, sequentially (local mode is not safe for concurrent writers);
- read floor: ``client.scroll`` of every point with payloads and vectors;
- and, for the file side, vexrun's own .vmig.jsonl reader and writer;
- ``vexrun run`` of a .vmig.jsonl → qdrant import and a qdrant → .vmig.jsonl export of the same data, each
  judged against the slower of its source's read floor and its sink's write floor.

    python bench/bench_qdrant.py                   # 100k records x 384-d
    python bench/bench_qdrant.py --records 20000

Each step runs in its own process (``vexrun.testing.rss.measure``): its peak RSS is its own. Local mode holds
the whole collection in the process, so its RSS is reported, not bounded. The target (issue 4): a migration
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
from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_QUIET = """
import warnings
warnings.filterwarnings("ignore", message="Local mode is not recommended")
"""

WRITE = (
    _QUIET
    + """
import json, sys, time, uuid
from qdrant_client import QdrantClient, models
from vexrun.vmig import read_batches
path, src, batch, limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
ids, vecs, payloads = [], [], []
for b in read_batches(src):
    for rec, vec in b:
        ids.append(str(uuid.uuid5(uuid.NAMESPACE_URL, rec.id)))
        vecs.append(vec.tolist())
        payloads.append({"text": rec.text, "namespace": rec.namespace, "metadata": rec.metadata,
                         "_vexrun": {"model": rec.model, "created_at": rec.created_at}})
    if len(ids) >= limit:
        break
ids, vecs, payloads = ids[:limit], vecs[:limit], payloads[:limit]
client = QdrantClient(path=path)
client.create_collection("mem", vectors_config=models.VectorParams(size=len(vecs[0]), distance=models.Distance.COSINE))
t = time.perf_counter()
for s in range(0, len(ids), batch):
    client.upsert("mem", points=models.Batch(ids=ids[s:s + batch], vectors=vecs[s:s + batch],
                                             payloads=payloads[s:s + batch]), wait=True)
el = time.perf_counter() - t
n = client.count("mem").count
client.close()
print(json.dumps({"s": el, "n": n}))
"""
)

READ = (
    _QUIET
    + """
import json, sys, time
from qdrant_client import QdrantClient
t = time.perf_counter()
client = QdrantClient(path=sys.argv[1])  # local mode loads the collection here: part of reading it
n, offset = 0, None
while True:
    points, offset = client.scroll("mem", limit=int(sys.argv[2]), offset=offset, with_payload=True, with_vectors=True)
    n += len(points)
    if offset is None:
        break
el = time.perf_counter() - t
client.close()
print(json.dumps({"s": el, "n": n}))
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


def vexrun(recipe: Path) -> tuple[float, float, dict[str, object]]:
    m = measure([PY, "-m", "vexrun", "run", "--json", "--fresh", str(recipe)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed:\n{m.err[-2000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


def line(label: str, n: int, seconds: float, rss: float, extra: str = "") -> None:
    print(f"{label:<38} {n / seconds:>9,.0f} rec/s  {seconds:7.2f} s  peak RSS {rss:6,.0f} MB{extra}")


def verdict(wall: float, *floors: float, target: float = 1.25) -> str:
    """``wall`` against the slower of ``floors``: the ratio, and PASS when it is at most ``target``."""
    ratio = wall / max(floors)
    return f"  {ratio:.2f}x the slower floor ({'PASS' if ratio <= target else 'FAIL'}; target {target}x)"


def bench(n: int, dims: int, work: Path, batch: int) -> None:
    data = work / "in.vmig.jsonl"
    child(GENERATE, data, n, dims)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields), qdrant local mode\n")
    probe_n = min(n, 5000)
    best, best_rate = 256, 0.0
    for size in (64, 256, 1024):
        shutil.rmtree(work / "probe", ignore_errors=True)
        r, _ = child(WRITE, work / "probe", data, size, probe_n)
        rate = probe_n / r["s"]
        print(f"probe: SDK upsert, batches of {size:<5}  {rate:>9,.0f} points/s")
        if rate > best_rate:
            best, best_rate = size, rate
    shutil.rmtree(work / "floor", ignore_errors=True)
    w, w_rss = child(WRITE, work / "floor", data, best, n)
    line(f"floor: SDK upsert (batch {best})", n, w["s"], w_rss)
    r, r_rss = child(READ, work / "floor", 1000)
    line("floor: SDK open + scroll (page 1000)", r["n"], r["s"], r_rss)
    v, v_rss = child(VMIG_READ, data)
    line("floor: .vmig.jsonl read", v["n"], v["s"], v_rss)
    vw, vw_rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
    line("floor: .vmig.jsonl write", int(vw["n"]), vw["s"], vw_rss)

    target = {"type": "qdrant", "path": "vx", "collection": "mem"}
    run = {"batch_size": batch}
    imp = work / "import.yaml"
    imp.write_text(
        yaml.safe_dump({"version": 1, "source": {"type": "vmig", "path": data.name}, "target": target, "run": run})
    )
    exp = work / "export.yaml"
    exp.write_text(
        yaml.safe_dump(
            {"version": 1, "source": target, "target": {"type": "vmig", "path": "out.vmig.jsonl"}, "run": run}
        )
    )
    shutil.rmtree(work / "vx", ignore_errors=True)
    t_imp, rss_imp, s_imp = vexrun(imp)
    line("vexrun import vmig -> qdrant", n, t_imp, rss_imp, verdict(t_imp, w["s"], v["s"]))
    t_exp, rss_exp, s_exp = vexrun(exp)
    line("vexrun export qdrant -> vmig", n, t_exp, rss_exp, verdict(t_exp, r["s"], vw["s"]))
    for name, summary in (("import", s_imp), ("export", s_exp)):
        counts = summary["counts"]
        assert isinstance(counts, dict) and counts["source"]["read"] == n, (name, counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1024, help="vexrun's run.batch_size")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-qdrant-", dir=args.dir))
    try:
        for n in args.records or [100_000]:
            bench(n, args.dims, work, args.batch)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
