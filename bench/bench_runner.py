"""Runner overhead: a ``vmig`` → ``vmig`` pass-through run against the bare read+write throughput of the
format layer (``read_batches`` → ``VmigWriter``), measured in the same run, with peak RSS at each size.

    python bench/bench_runner.py                     # 100k and 1M records
    python bench/bench_runner.py --records 100000

The pass-through run goes through everything a real run does: recipe, plan, lock, chunk / graph stages,
the resumable sink (fsync per batch), a checkpoint commit per batch, events, the summary.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

BARE = """
import sys
from vexrun.vmig import VmigWriter, read_batches
with VmigWriter(sys.argv[2]) as w:
    for batch in read_batches(sys.argv[1], batch_size=int(sys.argv[3])):
        w.write_batch(batch)
"""

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), seed=11)
"""

RECIPE = """version: 1
source: {{type: vmig, path: {src}}}
target: {{type: vmig, path: {dst}}}
run: {{batch_size: {batch}}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="100000,1000000")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--dir", default=None)
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="vexrun-bench-runner-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"vexrun runner benchmark: vmig → vmig pass-through, batch {args.batch}")
    rss: dict[int, float] = {}
    verdicts = []
    try:
        for n in [int(x) for x in args.records.split(",") if x]:
            src = work / f"in-{n}.vmig.jsonl"
            if not src.exists():
                print(f"  generating {n:,} records ...", flush=True)
                measure([PY, "-c", GENERATE, str(src), str(n)])
            recipe = work / f"pass-{n}.yaml"
            recipe.write_text(RECIPE.format(src=src.name, dst=f"out-{n}.vmig.jsonl", batch=args.batch))
            best_bare = best_run = float("inf")
            run_rss = 0.0
            for _ in range(args.repeat if n <= 200_000 else 1):
                bare = measure([PY, "-c", BARE, str(src), str(work / "bare.vmig.jsonl"), str(args.batch)])
                best_bare = min(best_bare, bare.wall)
                shutil.rmtree(work / ".vexrun", ignore_errors=True)
                res = measure([PY, "-m", "vexrun", "run", "--progress", "none", str(recipe)], cwd=str(work))
                if res.code != 0:
                    raise SystemExit(f"run failed ({res.code}): {res.err[-800:]}")
                best_run = min(best_run, res.wall)
                run_rss = max(run_rss, res.rss_mb)
            same = (
                (work / "bare.vmig.jsonl").read_bytes() == (work / f"out-{n}.vmig.jsonl").read_bytes()
                if n <= 200_000
                else None
            )
            rss[n] = run_rss
            ratio = best_bare / best_run
            print(f"{n:,} records")
            print(f"  bare read+write (format layer)  {n / best_bare:>10,.0f} records/s")
            print(
                f"  vexrun run (pass-through)       {n / best_run:>10,.0f} records/s  "
                f"{ratio:.0%} of bare, peak RSS {run_rss:.0f} MB"
            )
            if same is not None:
                print(f"  output identical to the bare copy: {'yes' if same else 'NO'}")
            verdicts.append(
                f"{n:,}: run reaches {ratio:.0%} of bare read+write (target ≥ 70%): "
                f"{'PASS' if ratio >= 0.7 else 'FAIL'}"
            )
            for f in work.glob("out-*"):
                f.unlink()
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    if len(rss) >= 2:
        lo, hi = min(rss), max(rss)
        growth = rss[hi] - rss[lo]
        ok = growth < 0.1 * rss[lo] + 10
        verdicts.append(
            f"peak RSS {rss[lo]:.0f} MB at {lo:,} → {rss[hi]:.0f} MB at {hi:,}: {'flat: PASS' if ok else 'grows: FAIL'}"
        )
    print("Targets")
    for v in verdicts:
        print(f"  {v}")


if __name__ == "__main__":
    main()
