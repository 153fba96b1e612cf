"""``vexrun report`` on a 1M-record run: wall time, page size and peak RSS, against the issue's targets
(under 10 s and under 5 MB), with ``vexrun inspect --html`` of the same file for comparison.

    python bench/bench_report.py                   # 1M records of 128-d
    python bench/bench_report.py --records 100000 --dims 384

The run is real: a seeded ``.vmig.jsonl`` file (with 5,000 invalid lines, so the report has rejects to group)
through ``vexrun run`` into the local SQLite store, ``run.verify: sample`` (the default: the run's ledger
holds every id written). The report then reads the run's summary, its events, its rejects file, samples 2,000
ids from the ledger and reads them back from the store. Each step runs in its own process
(``vexrun.testing.rss.measure``).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

PY = sys.executable

GENERATE = """
import sys
from vexrun.testing.data import write_synthetic
path, n, dims = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
write_synthetic(path, n, dims=dims, seed=17)
with open(path, "a") as fh:
    for i in range(5000):
        fh.write('{"id": "bad-%d", "text": %d}\\n' % (i, i) if i % 2 else 'not json %d\\n' % i)
"""

#: ``vexrun ARGS``, with the report command registered even before vexrun.cli lists it
VEXRUN = """
import sys
from vexrun.cli import cli, main
from vexrun.cli.report import report
if "report" not in cli.commands:
    cli.add_command(report)
main(sys.argv[1:])
"""

RECIPE = """version: 1
name: bench-report
source: {{type: vmig, path: {src}}}
target: {{type: sqlite, path: memory.db}}
run: {{batch_size: 1000}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--dims", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dir", default=None, help="keep the data here (and reuse it on the next run)")
    args = ap.parse_args()
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="vexrun-bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    n = args.records
    print(f"vexrun report benchmark: {n:,} records of {args.dims}-d, vmig → sqlite run, then report")
    try:
        src = work / f"in-{n}-{args.dims}.vmig.jsonl"
        if not src.exists():
            print(f"  generating {n:,} records ...", flush=True)
            measure([PY, "-c", GENERATE, str(src), str(n), str(args.dims)])
        recipe = work / "bench-report.yaml"
        recipe.write_text(RECIPE.format(src=src.name))
        if not (work / "memory.db").exists():
            print("  running the recipe ...", flush=True)
            shutil.rmtree(work / ".vexrun", ignore_errors=True)
            run = measure([PY, "-m", "vexrun", "run", "--progress", "none", str(recipe)], cwd=str(work))
            if run.code not in (0, 3):
                raise SystemExit(f"run failed ({run.code}): {run.err[-800:]}")
            print(f"  run: {run.wall:.1f} s ({n / run.wall:,.0f} records/s), peak RSS {run.rss_mb:.0f} MB")
        best = float("inf")
        rss = 0.0
        page = work / "report.html"
        for _ in range(args.repeat):
            res = measure([PY, "-c", VEXRUN, "report", str(recipe), "-o", str(page)], cwd=str(work))
            if res.code != 0:
                raise SystemExit(f"report failed ({res.code}): {res.err[-800:]}")
            best, rss = min(best, res.wall), max(rss, res.rss_mb)
        size = page.stat().st_size
        print(f"  report: {best:.2f} s (best of {args.repeat}), {size / 1e6:.2f} MB, peak RSS {rss:.0f} MB")
        print(f"    {res.err.strip().splitlines()[0]}")
        ins = measure(
            [PY, "-m", "vexrun", "inspect", str(src), "--html", "-o", str(work / "inspect.html")], cwd=str(work)
        )
        if ins.code != 0:
            raise SystemExit(f"inspect failed ({ins.code}): {ins.err[-800:]}")
        isize = (work / "inspect.html").stat().st_size
        print(
            f"  inspect --html (whole-file scan + sample): {ins.wall:.2f} s, {isize / 1e6:.2f} MB, "
            f"RSS {ins.rss_mb:.0f} MB"
        )
        print("Targets")
        print(f"  report writes in {best:.2f} s (target < 10 s): {'PASS' if best < 10 else 'FAIL'}")
        print(f"  page of {size / 1e6:.2f} MB (target < 5 MB): {'PASS' if size < 5e6 else 'FAIL'}")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
