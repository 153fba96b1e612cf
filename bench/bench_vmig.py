"""Benchmark of the format layer: validate, inspect and a read→write round trip against the bare parse
ceiling (an ``orjson.loads`` loop over the same file's lines), measured in the same run.

    python bench/bench_vmig.py                      # 100k and 1M records (about 0.5 GB and 5 GB)
    python bench/bench_vmig.py --records 100000     # one size
    python bench/bench_vmig.py --dir /big/disk      # where the generated files go

Each measurement runs in its own process, so peak RSS is that process's own (``wait4``). Files are
generated from a seed: 384-d unit vectors, ~20-word texts, 3 metadata fields.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
VEXRUN = [PY, "-m", "vexrun"]

CEILING = """
import sys, orjson
n = 0
with open(sys.argv[1], "rb") as fh:
    for line in fh:
        orjson.loads(line)
        n += 1
print(n)
"""

ROUND_TRIP = """
import sys
from vexrun.vmig import VmigWriter, read_batches
n = 0
with VmigWriter(sys.argv[2], source_store="synthetic") as w:
    for batch in read_batches(sys.argv[1]):
        w.write_batch(batch)
        n += len(batch)
print(n)
"""

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
write_synthetic(sys.argv[1], int(sys.argv[2]), seed=7)
"""


def run(cmd: list[str]) -> tuple[float, float, str]:
    """Run ``cmd``; return (wall seconds, the process's own peak RSS in MB, stdout)."""
    m = measure(cmd, cwd=str(ROOT))
    if m.code not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed ({m.code}):\n{m.err}")
    return m.wall, m.rss_mb, m.out


def warm(path: Path) -> None:
    with open(path, "rb") as fh:
        while fh.read(1 << 24):
            pass


def bench_size(n: int, workdir: Path, repeat: int) -> dict[str, tuple[float, float, float]]:
    data = workdir / f"bench-{n}.vmig.jsonl"
    copy = workdir / f"bench-{n}-copy.vmig.jsonl"
    if not data.exists():
        print(f"  generating {n:,} records ...", flush=True)
        run([PY, "-c", GENERATE, str(data), str(n)])
    size_mb = data.stat().st_size / 1e6
    warm(data)
    cases = {
        "orjson.loads loop (ceiling)": [PY, "-c", CEILING, str(data)],
        "validate --jobs 1": [*VEXRUN, "validate", "--jobs", "1", str(data)],
        "validate --jobs auto": [*VEXRUN, "validate", str(data)],
        "inspect --jobs 1": [*VEXRUN, "inspect", "--jobs", "1", str(data)],
        "inspect --jobs auto": [*VEXRUN, "inspect", str(data)],
        "read→write round trip": [PY, "-c", ROUND_TRIP, str(data), str(copy)],
    }
    results: dict[str, tuple[float, float, float]] = {}
    best: dict[str, tuple[float, float]] = {}
    for _ in range(repeat):
        # Interleave the cases so that noise from the shared machine hits them alike.
        for name, cmd in cases.items():
            wall, rss, out = run(cmd)
            if name.startswith("validate") and "valid:" not in out:
                raise SystemExit(f"unexpected validate output: {out[-300:]}")
            prev = best.get(name)
            if prev is None or wall < prev[0]:
                best[name] = (wall, rss)
    for name, (wall, rss) in best.items():
        results[name] = (n / wall, size_mb / wall, rss)
    identical = _same_file(data, copy)
    results["_identical"] = (1.0 if identical else 0.0, 0.0, 0.0)
    copy.unlink(missing_ok=True)
    for sidecar in workdir.glob(f"bench-{n}-copy*"):
        sidecar.unlink()
    return results


def _same_file(a: Path, b: Path) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 24), fb.read(1 << 24)
            if x != y:
                return False
            if not x:
                return True


def startup() -> float:
    times = []
    for _ in range(7):
        t0 = time.perf_counter()
        subprocess.run([PY, "-m", "vexrun", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", default="100000,1000000", help="comma-separated record counts")
    ap.add_argument("--dir", default=None, help="where to write the generated files (default: a temp dir)")
    ap.add_argument("--repeat", type=int, default=0, help="runs per case, best kept (default: 2, 1 above 200k)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    args = ap.parse_args()
    sizes = [int(x) for x in args.records.split(",") if x]
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="vexrun-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"vexrun format-layer benchmark  (python {sys.version.split()[0]}, {os.cpu_count()} cores)")
    t_help = startup()
    print(f"`vexrun --help` start-up: {t_help * 1000:.0f} ms (median of 7; target < 300 ms)\n")
    rss_validate: dict[int, float] = {}
    verdicts: list[str] = []
    try:
        for n in sizes:
            print(f"{n:,} records", flush=True)
            repeat = args.repeat or (2 if n <= 200_000 else 1)
            res = bench_size(n, workdir, repeat)
            ceiling = res["orjson.loads loop (ceiling)"][0]
            print(f"  {'case':32} {'records/s':>11} {'MB/s':>8} {'peak RSS':>9} {'vs ceiling':>10}")
            for name, (rps, mbps, rss) in res.items():
                if name.startswith("_"):
                    continue
                print(f"  {name:32} {rps:>11,.0f} {mbps:>8,.0f} {rss:>7,.0f} MB {rps / ceiling:>9.0%}")
            print(f"  round-trip output byte-identical to its input: {'yes' if res['_identical'][0] else 'NO'}\n")
            v1 = res["validate --jobs 1"][0] / ceiling
            v2 = res["validate --jobs auto"][0] / ceiling
            rss_validate[n] = max(res["validate --jobs 1"][2], res["validate --jobs auto"][2])
            verdicts.append(
                f"{n:,}: validate single-threaded {v1:.0%} of ceiling (target ≥ 80%): {'PASS' if v1 >= 0.8 else 'FAIL'}"
            )
            verdicts.append(
                f"{n:,}: validate on all cores {v2:.0%} of ceiling (target > 100%): {'PASS' if v2 > 1 else 'FAIL'}"
            )
            if not res["_identical"][0]:
                verdicts.append(f"{n:,}: round trip changed the file: FAIL")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)
    for n, rss in rss_validate.items():
        verdicts.append(f"{n:,}: validate peak RSS {rss:.0f} MB (target < 200 MB): {'PASS' if rss < 200 else 'FAIL'}")
    if len(rss_validate) >= 2:
        lo, hi = min(rss_validate), max(rss_validate)
        growth = rss_validate[hi] - rss_validate[lo]
        flat = growth < 0.1 * rss_validate[lo] + 10
        verdicts.append(
            f"validate RSS {lo:,} → {hi:,} records: {growth:+.0f} MB ({'flat: PASS' if flat else 'grows: FAIL'})"
        )
    verdicts.append(f"`vexrun --help` {t_help * 1000:.0f} ms (target < 300 ms): {'PASS' if t_help < 0.3 else 'FAIL'}")
    print("Targets")
    for v in verdicts:
        print(f"  {v}")


if __name__ == "__main__":
    main()
