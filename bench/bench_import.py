"""Benchmark of the conversation-export import: a seeded ~200 MB ChatGPT-shaped ``conversations.json`` read
through the real ``chatgpt-export`` source, against the ceilings measured on the same file in the same run
(the boundary split alone, and the split plus ``orjson`` parsing each conversation).

    python bench/bench_import.py                    # ~200 MB, chunk modes turn and smart
    python bench/bench_import.py --mb 50            # another size
    python bench/bench_import.py --dir /big/disk    # where the generated file goes

Each measurement runs in its own process (``vexrun.testing.rss.measure``), so its peak RSS is its own.
The target is a peak RSS under 500 MB for the whole file; the script prints PASS or FAIL and exits 1 on FAIL.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
TARGET_RSS_MB = 500.0

SPLIT = """
import json, sys, time, orjson
from vexrun.connectors.exports.stream import iter_elements
parse = sys.argv[2] == "parse"
t0 = time.perf_counter()
n = 0
with open(sys.argv[1], "rb") as fh:
    for element in iter_elements(fh, sys.argv[1]):
        if parse:
            orjson.loads(element.raw)
        n += 1
print(json.dumps({"conversations": n, "seconds": time.perf_counter() - t0}))
"""

IMPORT = """
import json, sys, time
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.exports.chatgpt import ChatGPTExportConfig, ChatGPTExportSource
cfg = ChatGPTExportConfig(type="chatgpt-export", path=sys.argv[1], chunk=sys.argv[2])
src = ChatGPTExportSource(cfg, RunContext(state_dir=Path("."), recipe_dir=Path(".")))
t0 = time.perf_counter()
src.open()
records = sum(len(batch) for batch, _ in src.batches(None, 256))
print(json.dumps({"records": records, "seconds": time.perf_counter() - t0, "report": src.report()}))
"""

GENERATE = """
import sys
from vexrun.testing.exports import write_chatgpt_export
print(write_chatgpt_export(sys.argv[1], int(sys.argv[2]), seed=int(sys.argv[3])))
"""


def run(code: str, *args: str) -> tuple[dict[str, object], float, float]:
    """Run a snippet in its own process; return (its JSON output, wall seconds, its peak RSS in MB)."""
    m = measure([PY, "-c", code, *args], cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"benchmark step failed ({m.code}):\n{m.err[-3000:]}")
    return json.loads(m.out.strip().splitlines()[-1]), m.wall, m.rss_mb


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="size of the generated export in MB (default 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--dir", type=Path, default=None, help="where to write the generated export")
    ap.add_argument("--modes", default="turn,smart", help="chunk modes to measure (comma-separated)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / "conversations.json"
        t0 = time.perf_counter()
        out, _, _ = run(GENERATE, str(path), str(int(args.mb * 1e6)), str(args.seed))
        size_mb = path.stat().st_size / 1e6
        print(f"generated {size_mb:.0f} MB, {out} conversations (seed {args.seed}) in {time.perf_counter() - t0:.1f}s")
        with open(path, "rb") as fh:  # warm the page cache so the first measurement is not the disk's
            while fh.read(1 << 24):
                pass

        rows: list[tuple[str, float, str, float]] = []
        for label, code, extra in (("split only", SPLIT, "split"), ("split + orjson", SPLIT, "parse")):
            res, _, rss = run(code, str(path), extra)
            secs = float(res["seconds"])  # type: ignore[arg-type]
            rows.append((label, secs, f"{res['conversations']} conversations", rss))
        peak = 0.0
        for mode in args.modes.split(","):
            res, _, rss = run(IMPORT, str(path), mode)
            secs = float(res["seconds"])  # type: ignore[arg-type]
            records = int(res["records"])  # type: ignore[call-overload]
            rows.append((f"import chunk={mode}", secs, f"{records:,} records, {records / secs:,.0f} records/s", rss))
            peak = max(peak, rss)
            report = res["report"]

    print(f"\n{'step':<22}{'seconds':>9}{'MB/s':>9}{'peak RSS':>11}  output")
    for label, secs, what, rss in rows:
        print(f"{label:<22}{secs:>9.2f}{size_mb / secs:>9.0f}{rss:>8.0f} MB  {what}")
    print(f"\nlast report: {json.dumps(report)}")
    ok = peak < TARGET_RSS_MB
    print(f"\npeak RSS of the import {peak:.0f} MB (target < {TARGET_RSS_MB:.0f} MB): {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
