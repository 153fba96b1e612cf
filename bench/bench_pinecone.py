"""Benchmark of the Pinecone connector against the wire-level fake (``vexrun.testing.pinecone`` in its own
process, at Pinecone's limits: 100 upsert requests per second per namespace, 2 MB and 1,000 records per
request, 100 fetch and 200 list requests per second per index) and the floors of the ``pinecone`` SDK itself,
measured in the same run:

- write floor: ``index.upsert(vectors, namespace, batch_size=B, max_concurrency=C)`` of the records
  (pre-loaded before the clock, values as ``tolist()``), one call per namespace, in the best (B, C) of a short
  probe; B is the largest batch under 2 MB (at 384-d a 1,000-record batch is ~8 MB and is refused);
- read floor: ``list_paginated(limit=100)`` + ``fetch`` of 1,000 ids, namespace by namespace;
- ``vexrun run`` of a .vmig.jsonl → pinecone import and a pinecone → .vmig.jsonl export of the same data,
  and the 429s the fake answered per 10k records (target: the sink keeps the rate limit busy without a storm of
  429s).

    python bench/bench_pinecone.py                   # 100k records x 384-d
    python bench/bench_pinecone.py --records 20000
    python bench/bench_pinecone.py --records 20000 --rate 2   # a rate limit that binds on this machine

Each step runs in its own process (``vexrun.testing.rss.measure``): its peak RSS is its own; the fake's is not
counted. The fake parses every request in one Python process: at this size it, not the rate limit, is often the
limit for both the floor and vexrun (its CPU is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

from vexrun.testing.floors import VMIG_WRITE
from vexrun.testing.rss import measure
from vexrun.testing.services import pinecone as service

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

WRITE = """
import json, os, sys, time
from collections import defaultdict
from pinecone import Pinecone, ServerlessSpec
from vexrun.vmig import read_batches
control, name, src = sys.argv[1:4]
batch, threads, limit = map(int, sys.argv[4:7])
by_ns = defaultdict(list)
n = 0
for b in read_batches(src):
    for rec, vec in b:
        own = json.dumps({"model": rec.model, "created_at": rec.created_at})
        meta = {**rec.metadata, "text": rec.text, "_vexrun": own}
        by_ns[rec.namespace or ""].append({"id": rec.id, "values": vec.tolist(), "metadata": meta})
        n += 1
        if n >= limit:
            break
    if n >= limit:
        break
pc = Pinecone(api_key=os.environ["PINECONE_API_KEY"], host=control)
model = pc.create_index(name=name, dimension=len(next(iter(by_ns.values()))[0]["values"]), metric="cosine",
                        spec=ServerlessSpec(cloud="aws", region="us-east-1"))
index = pc.Index(host=model.host)
from concurrent.futures import ThreadPoolExecutor
t = time.perf_counter()
def put(ns):
    res = index.upsert(vectors=by_ns[ns], namespace=ns, batch_size=batch, max_concurrency=threads, show_progress=False)
    return res.failed_item_count
with ThreadPoolExecutor(len(by_ns)) as pool:
    failed = sum(pool.map(put, list(by_ns)))
el = time.perf_counter() - t
print(json.dumps({"s": el, "n": n, "failed": failed}))
"""

READ = """
import json, os, sys, time
from pinecone import Pinecone
control, name = sys.argv[1], sys.argv[2]
pc = Pinecone(api_key=os.environ["PINECONE_API_KEY"], host=control)
index = pc.Index(host=pc.describe_index(name).host)
t = time.perf_counter()
n = 0
for ns in sorted(index.describe_index_stats().namespaces):
    token = None
    while True:
        ids = []
        while len(ids) < 1000:
            page = index.list_paginated(namespace=ns, limit=100, pagination_token=token)
            ids += [v.id for v in page.vectors]
            token = page.pagination.next if page.pagination else None
            if not token:
                break
        if ids:
            got = index.fetch(ids=ids, namespace=ns)
            n += sum(1 for v in got.vectors.values() if v.values)
        if not token:
            break
print(json.dumps({"s": time.perf_counter() - t, "n": n}))
"""

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


def child(script: str, env: dict[str, str], *args: object) -> tuple[dict[str, float], float]:
    m = measure([PY, "-c", script, *map(str, args)], cwd=str(ROOT), env=env)
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


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Fake:
    """The fake's counters and CPU between two points."""

    def __init__(self, handle: service.PineconeHandle) -> None:
        self.handle = handle
        self.mark()

    def mark(self) -> None:
        self.stats = service.stats(self.handle)
        self.cpu = cpu_s(self.handle.pid)

    def since(self) -> tuple[int, int, float]:
        """(429s, upsert requests, fake CPU seconds) since the last mark."""
        now = service.stats(self.handle)
        out = (
            now["throttled_total"] - self.stats["throttled_total"],
            now["upsert_requests"] - self.stats["upsert_requests"],
            cpu_s(self.handle.pid) - self.cpu,
        )
        self.mark()
        return out


def bench(n: int, dims: int, work: Path, batch: int, probe: bool, rate: float) -> None:
    data = work / "in.vmig.jsonl"
    env = {**os.environ}
    child(GENERATE, env, data, n, dims)
    handle = service.start(work, upserts_per_second=rate)
    env["PINECONE_API_KEY"] = handle.api_key
    fake = Fake(handle)
    print(f"\n## {n:,} records x {dims}-d (text + vector + 3 metadata fields, 3 namespaces), fake Pinecone")
    print(
        f"fake: ready in {handle.startup_s:.2f} s, {rate:g} upserts/s per namespace, 2 MB / 1,000 records a request\n"
    )
    try:
        probe_n = min(n, 10_000)
        best, best_rate = (200, 4), 0.0
        for size, threads in ((100, 4), (200, 4), (200, 8)) if probe else ():
            r, _ = child(WRITE, env, handle.control_url, f"probe-{size}-{threads}", data, size, threads, probe_n)
            throttled, _, _ = fake.since()
            speed = probe_n / r["s"]  # not `rate`: that is the fake's limit, which the sink is told below
            print(
                f"probe: SDK upsert, batch {size:<4} x {threads} in flight per ns {speed:>9,.0f} rec/s 429s {throttled}"
            )
            if speed > best_rate and not r["failed"]:
                best, best_rate = (size, threads), speed
        w, w_rss = child(WRITE, env, handle.control_url, "floor", data, best[0], best[1], n)
        throttled, reqs, cpu = fake.since()
        line(f"floor: SDK upsert ({best[0]} x {best[1]} per namespace)", n, w["s"], w_rss)
        print(
            f"{'':<44} {reqs:,} requests, {throttled:,} 429s ({throttled * 10_000 / n:.1f} per 10k), "
            f"fake CPU {cpu:.1f} s" + (f", {w['failed']:,} records NOT written" if w["failed"] else "")
        )
        r, r_rss = child(READ, env, handle.control_url, "floor")
        fake.since()
        line("floor: SDK list (100) + fetch (1,000)", r["n"], r["s"], r_rss)
        v, v_rss = child(VMIG_READ, env, data)
        line("floor: .vmig.jsonl read", v["n"], v["s"], v_rss)
        vw, vw_rss = child(VMIG_WRITE, env, work / "floor-out.vmig.jsonl", n, dims)
        (work / "floor-out.vmig.jsonl").unlink(missing_ok=True)
        line("floor: .vmig.jsonl write", vw["n"], vw["s"], vw_rss)

        target: dict[str, object] = {"type": "pinecone", "index": "vexrun-bench", "controller_host": handle.control_url}
        target["api_key"] = "${PINECONE_API_KEY}"
        run = {"batch_size": batch}
        imp = work / "import.yaml"
        source = {"type": "vmig", "path": data.name}
        sink = {**target, "create": {}, "upserts_per_second": rate}
        imp.write_text(yaml.safe_dump({"version": 1, "source": source, "target": sink, "run": run}))
        exp = work / "export.yaml"
        out = {"type": "vmig", "path": "out.vmig.jsonl"}
        exp.write_text(yaml.safe_dump({"version": 1, "source": target, "target": out, "run": run}))
        t_imp, rss_imp, s_imp = vexrun(imp, env)
        throttled, reqs, cpu = fake.since()
        floor_imp = max(w["s"], v["s"])
        ratio = t_imp / floor_imp
        line(
            "vexrun import vmig -> pinecone",
            n,
            t_imp,
            rss_imp,
            f"  {ratio:.2f}x floor ({'PASS' if ratio <= 1.25 else 'FAIL'})",
        )
        print(
            f"{'':<44} {reqs:,} requests ({reqs / t_imp / 3:.1f}/s per namespace of {rate:g} allowed), "
            f"{throttled:,} 429s ({throttled * 10_000 / n:.1f} per 10k), fake CPU {cpu:.1f} s"
        )
        t_exp, rss_exp, s_exp = vexrun(exp, env)
        fake.since()
        ratio = t_exp / max(r["s"], vw["s"])
        line(
            "vexrun export pinecone -> vmig",
            n,
            t_exp,
            rss_exp,
            f"  {ratio:.2f}x floor ({'PASS' if ratio <= 1.25 else 'FAIL'}; {t_exp / r['s']:.2f}x the read floor)",
        )
        for name, summary in (("import", s_imp), ("export", s_exp)):
            counts = summary["counts"]
            assert isinstance(counts, dict) and counts["source"]["read"] == n, (name, counts)
    finally:
        service.stop(handle)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, action="append", help="records (repeatable; default 100000)")
    parser.add_argument("--dims", type=int, default=384)
    parser.add_argument("--batch", type=int, default=1000, help="vexrun's run.batch_size")
    parser.add_argument("--dir", type=Path, default=None, help="where the data goes (default: a temp dir)")
    parser.add_argument("--no-probe", action="store_true", help="skip the batch-size probe (use 200 x 4)")
    parser.add_argument(
        "--rate", type=float, default=100.0, help="the fake's upserts per second per namespace (Pinecone: 100)"
    )
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-pinecone-", dir=args.dir))
    t0 = time.monotonic()
    for n in args.records or [100_000]:
        bench(n, args.dims, work, args.batch, not args.no_probe, args.rate)
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
