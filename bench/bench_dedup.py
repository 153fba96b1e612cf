"""Benchmark of the dedup stage: N facts × 384-d in ONE namespace, fed in batches the way the runner sends them,
measured in a child process for its own wall time and peak RSS (``vexrun.testing.rss.measure``).

    python bench/bench_dedup.py                         # 100k and 1M facts (what `make bench` runs)
    python bench/bench_dedup.py --sizes 20000,100000    # quicker

The facts are seeded: 2,000 topics (facts of one topic have cosine ~0.3, of different topics ~0), 10% planted
near-duplicates of an earlier fact (cosine 0.78–0.96 with it), 2% exact repeats of an earlier fact's text. The
truth is known, so the run also reports recall (planted duplicates merged into their original) and false merges
(facts merged into a fact of another origin). Target at 1M: under 10 minutes and 2 GB RSS on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TIME_LIMIT_S = 600.0
RSS_LIMIT_MB = 2048.0


class Facts:
    """Seeded facts whose vectors are regenerated on demand (so the generator holds no vectors)."""

    def __init__(self, n: int, dims: int, seed: int, topics: int = 2000, dup: float = 0.10, exact: float = 0.02):
        from vexrun.testing.data import WORDS

        self.n, self.dims, self.seed = n, dims, seed
        rng = np.random.default_rng(seed)
        self.centers = rng.standard_normal((topics, dims)).astype(np.float32)
        self.centers /= np.linalg.norm(self.centers, axis=1, keepdims=True)
        kind = rng.random(n)
        self.origin = np.full(n, -1, dtype=np.int64)
        self.exact = np.zeros(n, dtype=bool)
        idx = np.arange(n)
        back = np.minimum(idx, rng.integers(1, 200_000, size=n))
        planted = (kind < dup + exact) & (idx > 100)
        self.origin[planted] = idx[planted] - back[planted]
        self.exact[planted & (kind < exact)] = True
        self.topic = rng.integers(0, topics, size=n).astype(np.int32)
        self.sigma = rng.uniform(0.3, 0.8, size=n).astype(np.float32)
        for i in np.flatnonzero(planted):  # a planted fact belongs to its origin's topic
            self.topic[i] = self.topic[self.origin[i]]
        self.root = idx.copy()
        for i in np.flatnonzero(planted):
            self.root[i] = self.root[self.origin[i]]
        self.words = np.array(WORDS)
        self.planted = int(planted.sum())

    def vector(self, i: int) -> np.ndarray:
        noise = np.random.default_rng([self.seed, i]).standard_normal(self.dims).astype(np.float32)
        noise /= np.linalg.norm(noise)
        o = int(self.origin[i])
        if o < 0:
            v = 0.55 * self.centers[self.topic[i]] + 0.835 * noise
        elif self.exact[i]:
            return self.vector(o)
        else:
            v = self.vector(o) + self.sigma[i] * noise
        out: np.ndarray = v / np.linalg.norm(v)
        return out

    def text(self, i: int) -> str:
        o = int(self.origin[i])
        if o >= 0 and self.exact[i]:
            return self.text(o)
        rng = np.random.default_rng([self.seed, i, 1])
        words = " ".join(self.words[rng.integers(0, len(self.words), size=12)].tolist())
        return f"Fact {i}: the user {words}."

    def batch(self, start: int, end: int):  # noqa: ANN201 - a Batch
        from vexrun.vmig import Batch, Record

        records = []
        for i in range(start, end):
            records.append(
                Record(
                    id=f"f{i}",
                    text=self.text(i),
                    namespace="bench",
                    metadata={"importance": 0.5, "tags": ["bench"], "entities": [], "source_chunk_id": f"c{i}"},
                    created_at="2025-01-01T00:00:00Z",
                )
            )
        return Batch(records=records)

    def embed(self, batch):  # noqa: ANN001, ANN201 - Batch -> Batch
        from vexrun.vmig import Batch

        vecs = np.stack([self.vector(int(r.id[1:])) for r in batch.records])
        return Batch(records=batch.records, vectors=vecs, has_vector=np.ones(len(vecs), dtype=bool))


def child(n: int, batch_size: int, dims: int, seed: int) -> None:
    from vexrun.stages.dedup import DedupStage
    from vexrun.stages.settings_extract import DedupSettings

    t0 = time.perf_counter()
    facts = Facts(n, dims, seed)
    embed_s = [0.0]

    def embed(b):  # noqa: ANN001, ANN202
        t = time.perf_counter()
        out = facts.embed(b)
        embed_s[0] += time.perf_counter() - t
        return out

    merged: dict[str, str] = {}
    counts: dict[str, int] = {}
    build_s = 0.0
    with tempfile.TemporaryDirectory(prefix="bench-dedup-") as tmp:
        stage = DedupStage(DedupSettings(), Path(tmp), embed=embed)
        stage.reset()
        dedup_s = 0.0
        for start in range(0, n, batch_size):
            t = time.perf_counter()
            batch = facts.batch(start, min(n, start + batch_size))
            build_s += time.perf_counter() - t
            t = time.perf_counter()
            res = stage.dedup(batch)
            stage.state()
            dedup_s += time.perf_counter() - t
            merged.update(res.merged)
            for k, v in res.counts.as_dict().items():
                counts[k] = counts.get(k, 0) + v
        stats = next(iter(stage.indexes.values())).stats()
        disk = sum(f.stat().st_size for f in Path(tmp).iterdir())
        stage.close()
    correct = sum(1 for d, k in merged.items() if facts.root[int(d[1:])] == facts.root[int(k[1:])])
    import resource

    ru = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "n": n,
        "batch": batch_size,
        "wall_s": time.perf_counter() - t0,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "dedup_s": dedup_s - embed_s[0],
        "embed_s": embed_s[0],
        "build_s": build_s,
        "planted": facts.planted,
        "merged": len(merged),
        "correct": correct,
        "false": len(merged) - correct,
        "counts": counts,
        "index": stats,
        "disk_mb": disk / 1e6,
    }
    print(json.dumps(result))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,1000000", help="fact counts to run (default 100000,1000000)")
    ap.add_argument("--batch", type=int, default=2000, help="facts per batch (default 2000)")
    ap.add_argument("--dims", type=int, default=384)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.batch, args.dims, args.seed)
        return

    from vexrun.testing.rss import measure

    ok = True
    print(f"dedup: facts x {args.dims}-d in one namespace, batches of {args.batch:,}, {os.cpu_count()} cores")
    for n in (int(x) for x in args.sizes.split(",")):
        cmd = [sys.executable, __file__, "--child", str(n), "--batch", str(args.batch), "--dims", str(args.dims)]
        cmd += ["--seed", str(args.seed)]
        m = measure(cmd)
        if m.code != 0:
            print(m.err[-2000:])
            raise SystemExit(f"the run with {n:,} facts failed (exit {m.code})")
        r = json.loads(m.out.strip().splitlines()[-1])
        recall = r["correct"] / r["planted"] if r["planted"] else 1.0
        passed = m.wall <= TIME_LIMIT_S and m.rss_mb <= RSS_LIMIT_MB
        ok = ok and passed
        ix = r["index"]
        print(
            f"{n:>9,} facts: {m.wall:7.1f} s wall, {r['cpu_s']:.0f} s CPU ({r['dedup_s']:.1f} s in dedup, "
            f"{r['embed_s']:.1f} s making vectors, "
            f"{r['build_s']:.1f} s making records), peak RSS {m.rss_mb:,.0f} MB, {n / max(r['dedup_s'], 1e-9):,.0f} "
            f"facts/s in dedup"
        )
        print(
            f"{'':>16} merged {r['merged']:,} (exact {r['counts'].get('exact', 0):,}, near "
            f"{r['counts'].get('semantic', 0):,}); planted {r['planted']:,}: recall {recall:.3f}, false merges "
            f"{r['false']:,}; index {ix['mode']} with {ix['cells']:,} cells (largest {ix['largest_cell']:,}); "
            f"state on disk {r['disk_mb']:,.0f} MB   {'PASS' if passed else 'FAIL'}"
        )
    print("PASS" if ok else "FAIL")
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
