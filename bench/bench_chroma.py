"""Benchmark of the Chroma connector against a real ``chroma run`` server and the floors of chromadb's own
client, measured in the same run:

- write floor: ``collection.upsert`` of the records (pre-loaded before the clock) in the best batch size and
  number of parallel requests of a short probe;
- read floor: ``collection.get(limit, offset, include=[embeddings, documents, metadatas])`` page by page;
- ``vexrun run`` of a .vmig.jsonl → chroma import and a chroma → .vmig.jsonl export of the same data.

    python bench/bench_chroma.py                   # 100k records x 384-d
    python bench/bench_chroma.py --records 20000
    python bench/bench_chroma.py --to-qdrant       # also chroma → qdrant (local mode) against its floors

With ``--to-qdrant`` the run also times Qdrant's write floor (``bench_qdrant.py``'s bare ``client.upsert``) and
``vexrun run`` of the collection into a Qdrant local-mode collection: a move between two stores, judged against
1.4x the slower of Chroma's read floor and Qdrant's write floor (issue 14).

Each step runs in its own process (``vexrun.testing.rss.measure``), so its peak RSS is its own; the server's
memory is not counted. Target (issue 4): a migration takes at most 1.25x the slower of the source's read floor
and the sink's write floor, and vexrun stays under 300 MB RSS against a server store.
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
from vexrun.testing.services import chroma as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

_CLIENT = """
import os, sys, json, time
os.environ["ANONYMIZED_TELEMETRY"] = "False"
import chromadb
from chromadb.config import Settings
client = chromadb.HttpClient(host="127.0.0.1", port=int(sys.argv[1]), settings=Settings(anonymized_telemetry=False))
"""

WRITE = (
    _CLIENT
    + """
from concurrent.futures import ThreadPoolExecutor
import numpy as np
from vexrun.vmig import read_batches
name, src, batch, threads, limit = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
ids, vecs, docs, metas = [], [], [], []
for b in read_batches(src):
    for rec, vec in b:
        ids.append(rec.id); vecs.append(vec); docs.append(rec.text)
        metas.append({**rec.metadata, "namespace": rec.namespace, "_vexrun": json.dumps({"model": rec.model})})
    if len(ids) >= limit:
        break
ids, docs, metas = ids[:limit], docs[:limit], metas[:limit]
mat = np.asarray(vecs[:limit], dtype=np.float32)
coll = client.create_collection(name, embedding_function=None, configuration={"hnsw": {"space": "cosine"}})
def put(s):
    coll.upsert(ids=ids[s:s + batch], embeddings=mat[s:s + batch], documents=docs[s:s + batch],
                metadatas=metas[s:s + batch])
t = time.perf_counter()
with ThreadPoolExecutor(threads) as pool:
    list(pool.map(put, range(0, len(ids), batch)))
el = time.perf_counter() - t
print(json.dumps({"s": el, "n": coll.count()}))
"""
)

READ = (
    _CLIENT
    + """
coll = client.get_collection(sys.argv[2], embedding_function=None)
page = int(sys.argv[3])
t = time.perf_counter()
n = 0
while True:
    got = coll.get(limit=page, offset=n, include=["embeddings", "documents", "metadatas"])
    n += len(got["ids"])
    if len(got["ids"]) < page:
        break
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


def vexrun(recipe: Path) -> tuple[float, float, dict[str, object]]:
    m = measure([PY, "-m", "vexrun", "run", "--json", "--fresh", str(recipe)], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"vexrun run {recipe.name} failed:\n{m.err[-2000:]}")
    return m.wall, m.rss_mb, json.loads(m.out)


def line(label: str, n: int, seconds: float, rss: float, extra: str = "") -> None:
    print(f"{label:<40} {n / seconds:>9,.0f} rec/s  {seconds:7.2f} s  peak RSS {rss:6,.0f} MB{extra}")


def bench(n: int, dims: int, work: Path, batch: int, server: service.ChromaHandle, probe: bool, to_qdrant: int) -> None:
    data = work / "in.vmig.jsonl"
    child(GENERATE, data, n, dims)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields), chroma server (chroma run)\n")
    port = server.port
    probe_n = min(n, 10_000)
    best, best_rate = (5000, 1), 0.0
    for size in (1000, 5000) if probe else ():
        for threads in (1, 2):
            r, _ = child(WRITE, port, f"probe-{size}-{threads}", data, size, threads, probe_n)
            rate = probe_n / r["s"]
            print(f"probe: SDK upsert, batches of {size:<5} x {threads} in flight  {rate:>9,.0f} records/s")
            if rate > best_rate:
                best, best_rate = (size, threads), rate
    w, w_rss = child(WRITE, port, "floor", data, best[0], best[1], n)
    line(f"floor: SDK upsert ({best[0]} x {best[1]})", n, w["s"], w_rss)
    r, r_rss = child(READ, port, "floor", 1000)
    line("floor: SDK get by offset (page 1000)", r["n"], r["s"], r_rss)
    v, v_rss = child(VMIG_READ, data)
    line("floor: .vmig.jsonl read", v["n"], v["s"], v_rss)
    vw, vw_rss = child(VMIG_WRITE, work / "floor-out.vmig.jsonl", n, dims)
    (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
    line("floor: .vmig.jsonl write", int(vw["n"]), vw["s"], vw_rss)

    target = {"type": "chroma", "url": server.url, "collection": "vexrun-bench"}
    if best[1] > 1:
        target["parallel"] = best[1]
    run = {"batch_size": batch}
    imp = work / "import.yaml"
    imp.write_text(
        yaml.safe_dump({"version": 1, "source": {"type": "vmig", "path": data.name}, "target": target, "run": run})
    )
    source = {k: v for k, v in target.items() if k != "parallel"}
    exp = work / "export.yaml"
    exp.write_text(
        yaml.safe_dump(
            {"version": 1, "source": source, "target": {"type": "vmig", "path": "out.vmig.jsonl"}, "run": run}
        )
    )
    t_imp, rss_imp, s_imp = vexrun(imp)
    floor_imp = max(w["s"], v["s"])
    line("vexrun import vmig -> chroma", n, t_imp, rss_imp, f"  ratio {t_imp / (1.25 * floor_imp):.2f} of 1.25x floor")
    t_exp, rss_exp, s_exp = vexrun(exp)
    floor_exp = max(r["s"], vw["s"])  # the export's sink is vexrun's .vmig.jsonl writer, as in the other benches
    ratio = t_exp / floor_exp
    verdict = (
        f"  {ratio:.2f}x the slower floor ({'PASS' if ratio <= 1.25 else 'FAIL'}; {t_exp / r['s']:.2f}x the read floor)"
    )
    line("vexrun export chroma -> vmig", n, t_exp, rss_exp, verdict)
    summaries = [("import", s_imp), ("export", s_exp)]
    if to_qdrant:
        from bench_qdrant import WRITE as QDRANT_WRITE  # a script beside this one

        q, q_rss = child(QDRANT_WRITE, work / "qdrant-floor", data, to_qdrant, n)
        shutil.rmtree(work / "qdrant-floor", ignore_errors=True)
        line(f"floor: qdrant SDK upsert (batch {to_qdrant})", n, q["s"], q_rss)
        mig = work / "migrate.yaml"
        qdrant = {"type": "qdrant", "path": "qdrant-vx", "collection": "mem"}
        mig.write_text(yaml.safe_dump({"version": 1, "source": source, "target": qdrant, "run": run}))
        t_mig, rss_mig, s_mig = vexrun(mig)
        ratio = t_mig / max(r["s"], q["s"])
        verdict = f"  {ratio:.2f}x the slower floor ({'PASS' if ratio <= 1.4 else 'FAIL'}; target 1.4x)"
        line("vexrun migrate chroma -> qdrant", n, t_mig, rss_mig, verdict)
        summaries.append(("migrate", s_mig))
    for name, summary in summaries:
        counts = summary["counts"]
        assert isinstance(counts, dict) and counts["source"]["read"] == n, (name, counts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=5000, help="vexrun's run.batch_size")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument(
        "--no-probe", action="store_true", help="skip the batch-size probe (use 5,000 x 1, the best measured here)"
    )
    parser.add_argument(
        "--to-qdrant",
        type=int,
        nargs="?",
        const=256,
        default=0,
        metavar="BATCH",
        help="also time chroma -> qdrant (local mode) and Qdrant's write floor at BATCH points per upsert (256)",
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-chroma-", dir=args.dir))
    for n in args.records or [100_000]:
        server = service.start(work / f"server-{n}")
        print(f"chroma run: ready in {server.startup_s:.2f} s")
        try:
            bench(n, args.dims, work, args.batch, server, not args.no_probe, args.to_qdrant)
        finally:
            service.stop(server)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
