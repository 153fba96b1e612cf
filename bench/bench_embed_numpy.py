"""Benchmark of the local embedder's two engines on the same texts: ``engine: numpy`` (no torch) against
``engine: torch`` (sentence-transformers), in the same process, fed in the runner's batches of 256.

    python bench/bench_embed_numpy.py                       # 2,000 texts, best of 1, every core
    python bench/bench_embed_numpy.py --threads 1 --repeat 3

Texts come from bench_embed.py's generator (a third short, a third medium, a third long). Prints texts/s of
each engine, their ratio, and the largest difference between their vectors. ``--threads`` sets both engines'
``threads`` (torch's threads, numpy's BLAS threads); without it each uses its default.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_embed import chunks, make_texts  # noqa: E402

from vexrun.providers.embed.local import LocalEmbedder, LocalEmbedderConfig  # noqa: E402


def timed(embedder: LocalEmbedder, parts: list[list[str]], repeat: int) -> tuple[float, np.ndarray]:
    best, out = float("inf"), np.empty(0)
    for _ in range(repeat):
        start = time.perf_counter()
        out = np.concatenate([embedder.embed(p) for p in parts])
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=2000, help="how many texts (default 2000)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine, best kept (default 1)")
    ap.add_argument("--batch-size", type=int, default=16, help="the embedder's batch_size (default 16)")
    ap.add_argument("--threads", type=int, default=None, help="threads of both engines (default: theirs)")
    args = ap.parse_args()

    texts = make_texts(args.texts)
    parts = chunks(texts, 256)
    print(
        f"{len(texts)} texts, {sum(map(len, texts)) / len(texts):.0f} characters on average, "
        f"batch_size {args.batch_size}, threads {args.threads or 'default'}, {len(os.sched_getaffinity(0))} cores, "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    results: dict[str, np.ndarray] = {}
    rates: dict[str, float] = {}
    for engine in ("numpy", "torch"):
        cfg = LocalEmbedderConfig(engine=engine, batch_size=args.batch_size, threads=args.threads)
        embedder = LocalEmbedder(cfg)
        start = time.perf_counter()
        embedder.open()
        embedder.embed(texts[:8])  # warm up
        loaded = time.perf_counter() - start
        seconds, vectors = timed(embedder, parts, args.repeat)
        results[engine] = vectors
        rates[engine] = len(texts) / seconds
        print(f"{engine:>6}: {len(texts) / seconds:8.1f} texts/s  ({seconds:.1f} s; loaded in {loaded:.1f} s)")
        embedder.close()
    diff = float(np.abs(results["numpy"] - results["torch"]).max())
    cos = float((results["numpy"] * results["torch"]).sum(axis=1).min())
    print(
        f"numpy / torch: {rates['numpy'] / rates['torch']:.2f}x; largest difference {diff:.2e}, lowest cosine {cos:.7f}"
    )


if __name__ == "__main__":
    main()
