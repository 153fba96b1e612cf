"""Benchmark of ``vexrun convert`` against a bare ``orjson`` read+write loop over the same file, same run.

    python bench/bench_convert.py                    # 1M records (~0.6 GB)
    python bench/bench_convert.py --records 200000   # a smaller size

The file is generated from a seed: exchange-mode records as a conversation export becomes them (a user turn
and its answer, ~70 words, with the importer's metadata), no vectors. The baseline reads every line with
``orjson.loads`` and writes ``orjson.dumps`` of it back; vexrun converts to the ``openai`` format. Each case runs
in its own process (peak RSS is that process's own). Target: convert ≥ 0.7× the baseline, RSS flat.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from vexrun.testing.rss import measure

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable

GENERATE = """
import random, sys, orjson
rng = random.Random(7)
words = ("memory agent prefers dark mode python postgres decided meeting tuesday deploy release travel lisbon "
         "index hnsw vector backup").split()
n = int(sys.argv[2])
with open(sys.argv[1], "wb") as fh:
    for i in range(n):
        q = " ".join(rng.choice(words) for _ in range(20)) + "?"
        a = " ".join(rng.choice(words) for _ in range(50)) + "."
        conv = f"conv-{i // 6:07d}"
        rec = {"id": f"ex-{i:08d}", "text": f"User: {q}\\n\\nAssistant: {a}", "vector": None, "model": None,
               "dims": None, "namespace": "claude",
               "metadata": {"conversation_id": conv, "conversation_title": "t", "role": "mixed",
                            "roles": ["user", "assistant"], "turn_index": (i % 6) * 2, "turn_count": 2,
                            "source_message_ids": [f"{conv}-{i}-u", f"{conv}-{i}-a"], "chunk_mode": "exchange",
                            "chunk_index": 0},
               "created_at": "2026-03-01T10:00:00Z"}
        fh.write(orjson.dumps(rec) + b"\\n")
"""

BARE = """
import sys, orjson
loads, dumps = orjson.loads, orjson.dumps
with open(sys.argv[1], "rb") as fi, open(sys.argv[2], "wb", buffering=1 << 20) as fo:
    for line in fi:
        fo.write(dumps(loads(line)) + b"\\n")
"""


def run(cmd: list[str]) -> tuple[float, float]:
    m = measure(cmd, cwd=str(ROOT))
    if m.code != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({m.code}):\n{m.err}")
    return m.wall, m.rss_mb


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", default="1000000", help="comma-separated record counts")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case, best kept")
    args = ap.parse_args()
    verdicts = []
    with tempfile.TemporaryDirectory(prefix="bench-convert-") as tmp:
        work = Path(tmp)
        print("vexrun convert benchmark: exchange records → openai chat JSONL")
        print(f"  {'records':>9}  {'case':<28} {'records/s':>10} {'peak RSS':>9}")
        for n in (int(x) for x in args.records.split(",")):
            data = work / f"in-{n}.vmig.jsonl"
            run([PY, "-c", GENERATE, str(data), str(n)])
            cases = {
                "bare orjson read+write": [PY, "-c", BARE, str(data), str(work / "bare.jsonl")],
                "vexrun convert --to openai": [
                    PY,
                    "-m",
                    "vexrun",
                    "convert",
                    str(data),
                    "--to",
                    "openai",
                    "-o",
                    str(work / "out.jsonl"),
                ],  # fmt: skip
            }
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.repeat):
                for name, cmd in cases.items():  # interleaved: noise hits both alike
                    wall, rss = run(cmd)
                    if name not in best or wall < best[name][0]:
                        best[name] = (wall, rss)
            for name, (wall, rss) in best.items():
                print(f"  {n:>9,}  {name:<28} {n / wall:>10,.0f} {rss:>6.0f} MB")
            ratio = best["bare orjson read+write"][0] / best["vexrun convert --to openai"][0]
            ok = "PASS" if ratio >= 0.7 else "FAIL"
            verdicts.append(f"{n:,}: convert at {ratio:.2f}× the bare loop (target ≥ 0.70×): {ok}")
            verdicts.append(f"{n:,}: convert peak RSS {best['vexrun convert --to openai'][1]:.0f} MB")
            data.unlink()
    print("Targets")
    for v in verdicts:
        print("  " + v)


if __name__ == "__main__":
    main()
