"""What a run's verification costs: the same migration with ``run.verify: off``, ``count``, ``sample`` and
``full``, in the same run, and the time of ``full`` against a bare read of the target.

    python bench/bench_verify.py                      # 100k records, vmig → sqlite (the local store)
    python bench/bench_verify.py --records 30000 --repeat 3

Targets (issue 12): ``sample`` adds at most 5% to a 100k migration; ``full`` verification takes at most 1.3× a
bare read of the target (its own source export of everything).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

PY = sys.executable

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), seed=5)
"""

BARE_READ = """
import sys, time
from vexrun.build import build_source, decoded
from vexrun.connectors.base import RunContext
from vexrun.registry import resolve
from vexrun.stages.base import StageSpec
from pathlib import Path
spec = resolve("source", "sqlite")
cfg = spec.config_model()(path=sys.argv[1])
st = StageSpec("source", "bench", {}, role="source", config=cfg, plugin=spec)
src = build_source(st, RunContext(state_dir=Path(sys.argv[2]), recipe_dir=Path(sys.argv[2])))
src.open()
t = time.perf_counter()
n = sum(len(b) for b, _ in decoded(st, src.batches(None, 1000)))
print(n, time.perf_counter() - t)
"""

RECIPE = """version: 1
source: {{type: vmig, path: {src}}}
target: {{type: sqlite, path: {dst}}}
run: {{batch_size: 1000, verify: {mode}}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    n = args.records
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-verify-"))
    try:
        src = work / "in.vmig.jsonl"
        print(f"vexrun verification benchmark: {n:,} records × 384, vmig → sqlite, batch 1000", flush=True)
        measure([PY, "-c", GENERATE, str(src), str(n)])
        walls: dict[str, float] = {}
        seconds: dict[str, float] = {}
        for _ in range(args.repeat):
            for mode in ("off", "count", "sample", "full"):
                dst = work / f"{mode}.db"
                dst.unlink(missing_ok=True)
                shutil.rmtree(work / ".vexrun", ignore_errors=True)
                recipe = work / f"{mode}.yaml"
                recipe.write_text(RECIPE.format(src=src.name, dst=dst.name, mode=mode))
                res = measure([PY, "-m", "vexrun", "run", "--json", "--progress", "none", str(recipe)], cwd=str(work))
                if res.code != 0:
                    raise SystemExit(f"{mode}: run failed ({res.code}): {res.err[-800:]}")
                walls[mode] = min(walls.get(mode, float("inf")), res.wall)
                fig = next(iter(json.loads(res.out)["verify"].values()), {}) if mode != "off" else {}
                seconds[mode] = min(seconds.get(mode, float("inf")), float(fig.get("seconds", 0.0)))
        out = measure([PY, "-c", BARE_READ, str(work / "full.db"), str(work)])
        bare_read = float(out.out.split()[1])
        base = walls["off"]
        print(f"  run.verify: off     {base:7.2f} s  ({n / base:,.0f} records/s)")
        for mode in ("count", "sample", "full"):
            print(
                f"  run.verify: {mode:<7} {walls[mode]:7.2f} s  (+{walls[mode] / base - 1:.1%} of the run; "
                f"the check itself {seconds[mode]:.2f} s)"
            )
        print(f"  bare read of the target (sqlite source, every record): {bare_read:.2f} s")
        extra = walls["sample"] / base - 1
        print("Targets")
        print(f"  sample adds {extra:.1%} to the migration (≤ 5%): {'PASS' if extra <= 0.05 else 'FAIL'}")
        ratio = seconds["full"] / bare_read
        print(f"  full check {ratio:.2f}× a bare read of the target (≤ 1.3×): {'PASS' if ratio <= 1.3 else 'FAIL'}")
        print("  (the machine is shared and noisy: ±10-20% between runs; --repeat keeps the best of each)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
