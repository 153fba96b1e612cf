"""What a run's verification costs: the same migration with ``run.verify: off``, ``count``, ``sample`` and
``full``, in the same run, and the time of ``full`` against a bare read of the target.

    python bench/bench_verify.py                      # 100k records, vmig → sqlite (the local store)
    python bench/bench_verify.py --records 30000 --repeat 3
    python bench/bench_verify.py --target lancedb     # or pgvector (starts the test PostgreSQL server)

Targets (issue 12): ``sample`` adds at most 5% to a 100k migration; ``full`` verification takes at most 1.3× a
bare read of the target (its own source export of everything).
"""

from __future__ import annotations

import argparse
import json
import os
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
import json, os, sys, time
from vexrun.build import build_source, decoded
from vexrun.connectors.base import RunContext
from vexrun.registry import resolve
from vexrun.stages.base import StageSpec
from pathlib import Path
kind, options = sys.argv[1], json.loads(sys.argv[2])
options = {k: os.path.expandvars(v) if isinstance(v, str) else v for k, v in options.items()}
spec = resolve("source", kind)
cfg = spec.config_model()(**options)
st = StageSpec("source", "bench", {}, role="source", config=cfg, plugin=spec)
src = build_source(st, RunContext(state_dir=Path(sys.argv[3]), recipe_dir=Path(sys.argv[3])))
src.open()
t = time.perf_counter()
n = sum(len(b) for b, _ in decoded(st, src.batches(None, 1000)))
print(n, time.perf_counter() - t)
"""

RECIPE = """version: 1
source: {{type: vmig, path: {src}}}
target: {target}
run: {{batch_size: 1000, verify: {mode}}}
"""


def target_of(kind: str, mode: str, dsn: str | None) -> tuple[dict[str, object], dict[str, object]]:
    """The recipe's target for ``mode`` and the same store as a source (for the bare read)."""
    if kind == "sqlite":
        return {"type": "sqlite", "path": f"{mode}.db"}, {"path": f"{mode}.db"}
    if kind == "lancedb":
        return {"type": "lancedb", "uri": f"{mode}.lance", "table": "mem"}, {"uri": f"{mode}.lance", "table": "mem"}
    assert dsn is not None
    table = {"dsn": dsn, "table": f"verify_{mode}"}
    return {"type": "pgvector", **table, "index": "none", "replace": True}, table


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=4, help="rounds (each starts at another mode); the best counts")
    ap.add_argument("--target", choices=("sqlite", "lancedb", "pgvector"), default="sqlite")
    args = ap.parse_args()
    n, kind = args.records, args.target
    work = Path(tempfile.mkdtemp(prefix="vexrun-bench-verify-"))
    env = {**os.environ, "NO_COLOR": "1"}
    handle = None
    dsn = None
    if kind == "pgvector":
        from vexrun.testing.services import postgres

        handle = postgres.start(work / "server")
        env["BENCH_PG_PASSWORD"] = handle.password
        dsn = f"postgresql://postgres:${{BENCH_PG_PASSWORD}}@127.0.0.1:{handle.port}/postgres"
    try:
        src = work / "in.vmig.jsonl"
        print(f"vexrun verification benchmark: {n:,} records × 384, vmig → {kind}, batch 1000", flush=True)
        measure([PY, "-c", GENERATE, str(src), str(n)])
        walls: dict[str, float] = {}
        #: CPU time of the run's process tree: steadier than the wall time on a shared machine
        cpus: dict[str, float] = {}
        seconds: dict[str, float] = {}
        modes = ("off", "count", "sample", "full")
        for r in range(args.repeat):
            # each repeat starts at another mode: a run after full's long read finds a server (or a disk) that
            # has flushed the previous run's writes, which made the first mode the fastest
            for mode in modes[r % 4 :] + modes[: r % 4]:
                target, _ = target_of(kind, mode, dsn)
                (work / f"{mode}.db").unlink(missing_ok=True)
                shutil.rmtree(work / f"{mode}.lance", ignore_errors=True)
                shutil.rmtree(work / ".vexrun", ignore_errors=True)
                recipe = work / f"{mode}.yaml"
                recipe.write_text(RECIPE.format(src=src.name, target=json.dumps(target), mode=mode))
                res = measure(
                    [PY, "-m", "vexrun", "run", "--json", "--progress", "none", str(recipe)], cwd=str(work), env=env
                )
                if res.code != 0:
                    raise SystemExit(f"{mode}: run failed ({res.code}): {res.err[-800:]}")
                walls[mode] = min(walls.get(mode, float("inf")), res.wall)
                cpus[mode] = min(cpus.get(mode, float("inf")), res.cpu_s if res.cpu_s is not None else float("nan"))
                fig = next(iter(json.loads(res.out)["verify"].values()), {}) if mode != "off" else {}
                seconds[mode] = min(seconds.get(mode, float("inf")), float(fig.get("seconds", 0.0)))
        _, options = target_of(kind, "full", dsn)
        bare_read = min(
            float(
                measure(
                    [PY, "-c", BARE_READ, kind, json.dumps(options), str(work)], cwd=str(work), env=env
                ).out.split()[1]
            )
            for _ in range(args.repeat)
        )
        base = walls["off"]
        print(f"  run.verify: off     {base:7.2f} s  ({n / base:,.0f} records/s; CPU {cpus['off']:.2f} s)")
        for mode in ("count", "sample", "full"):
            print(
                f"  run.verify: {mode:<7} {walls[mode]:7.2f} s  (+{walls[mode] / base - 1:.1%} of the run; "
                f"the check itself {seconds[mode]:.2f} s; CPU {cpus[mode]:.2f} s, {cpus[mode] / cpus['off'] - 1:+.1%})"
            )
        print(f"  bare read of the target ({kind} source, every record): {bare_read:.2f} s")
        extra = walls["sample"] / base - 1
        print("Targets")
        print(f"  sample adds {extra:.1%} to the migration (≤ 5%): {'PASS' if extra <= 0.05 else 'FAIL'}")
        ratio = seconds["full"] / bare_read
        print(f"  full check {ratio:.2f}× a bare read of the target (≤ 1.3×): {'PASS' if ratio <= 1.3 else 'FAIL'}")
        print("  (the machine is shared and noisy: ±10-20% between runs; --repeat keeps the best of each)")
    finally:
        if handle is not None:
            postgres.stop(handle)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
