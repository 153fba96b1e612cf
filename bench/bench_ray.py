"""Benchmark of ``run.executor: ray`` on this machine, against ``run.executor: local`` in the same run.

    python bench/bench_ray.py                          # 100k records, MiniLM: ~30 min on 2 cores
    python bench/bench_ray.py --records 20000 --rss-records 100000,300000 --llm-chunks 0

1. CPU-bound: ``--records`` synthetic texts (20 words) from a ``.vmig.jsonl`` through the local MiniLM embedder
   into a ``.vmig.jsonl``, each case with a cold embedding cache. Cases: ``local`` (the embedder's threads on
   every core); ``ray`` with 1 worker holding every core (``worker_cpus`` = the cores); ``ray`` with 1 worker of
   1 CPU; ``ray`` with 2 workers of 1 CPU. Targets: ray, 1 worker of every core, within 1.15x of local; 2 workers
   at least 1.7x one worker of 1 CPU. The outputs are compared byte for byte with local's.
2. The driver's peak RSS (the ``vexrun`` process alone, not its Ray workers) for a raw vmig → vmig run with the
   fake embedder at each of ``--rss-records`` (2 workers): flat from 100k to 1M.
3. LLM budget: ``--llm-chunks`` chat chunks through mode extract on 4 workers against the loopback fake with one
   key of ``--tpm`` tokens per minute (:mod:`vexrun.testing.ray_llm`): the share of the key's budget used after the
   initial burst (target at least 90%) and the fake's 429s (target 0), next to the local executor.

Ray binds the machine's external address unless it runs in a loopback-only network namespace: the benchmark
re-runs itself in one (``unshare -n -p -f``; root or user namespaces needed).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from vexrun.testing.data import WORDS
from vexrun.testing.rss import measure
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record
from vexrun.vmig.writer import VmigWriter

INSIDE = "VEXRUN_BENCH_RAY_INSIDE"


def write_texts(path: Path, n: int, seed: int = 3) -> None:
    rng = np.random.default_rng(seed)
    vocab = np.array(WORDS)
    with VmigWriter(path, source_store="bench") as w:
        for start in range(0, n, 5000):
            m = min(5000, n - start)
            picks = rng.integers(0, len(vocab), size=(m, 20))
            recs = [Record(id=f"t{start + i:08d}", text=" ".join(vocab[picks[i]].tolist())) for i in range(m)]
            w.write_batch(Batch(records=recs))


def recipe(d: Path, name: str, embed: str, executor: str, workers: int = 1, cpus: int | None = None) -> Path:
    ray = f"\n  ray: {{workers: {workers}" + (f", worker_cpus: {cpus}" if cpus else "") + "}"
    path = d / f"{name}.yaml"
    path.write_text(
        f"""version: 1
name: {name}
mode: raw
sources: [{{type: vmig, path: in.vmig.jsonl}}]
embed: {embed}
targets: [{{type: vmig, path: out-{name}.vmig.jsonl}}]
run:
  batch_size: 256
  verify: count
  executor: {executor}{ray if executor == "ray" else ""}
"""
    )
    return path


def run(d: Path, path: Path) -> float:
    env = {**os.environ, "NO_COLOR": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "vexrun", "run", path.name, "--progress", "none"], cwd=d, env=env, capture_output=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{path.name} failed: {proc.stderr.decode(errors='replace')[-800:]}")
    return wall


def cpu_bound(args: argparse.Namespace, d: Path) -> None:
    write_texts(d / "in.vmig.jsonl", args.records)
    cores = len(os.sched_getaffinity(0))
    minilm = "{type: local, model: all-MiniLM-L6-v2}"
    cases = [
        ("local", recipe(d, "local", minilm, "local")),
        ("ray, 1 worker of every core", recipe(d, "ray1all", minilm, "ray", 1, cores)),
        ("ray, 1 worker of 1 CPU", recipe(d, "ray1", minilm, "ray", 1, 1)),
        ("ray, 2 workers of 1 CPU", recipe(d, "ray2", minilm, "ray", 2, 1)),
    ]
    print(f"1. CPU-bound: {args.records:,} texts through MiniLM into a .vmig.jsonl ({cores} cores)")
    walls = {}
    for label, path in cases:
        walls[path.stem] = run(d, path)
        same = (d / f"out-{path.stem}.vmig.jsonl").read_bytes() == (d / "out-local.vmig.jsonl").read_bytes()
        rate = args.records / walls[path.stem]
        print(f"   {label:30s} {walls[path.stem]:7.1f} s  {rate:7.0f} records/s  output equal to local: {same}")
    over = walls["ray1all"] / walls["local"]
    speedup = walls["ray1"] / walls["ray2"]
    print(f"   ray 1 worker / local: {over:.2f}x (target <= 1.15x: {'met' if over <= 1.15 else 'NOT met'})")
    print(f"   2 workers / 1 worker: {speedup:.2f}x faster (target >= 1.7x: {'met' if speedup >= 1.7 else 'NOT met'})")


def driver_rss(args: argparse.Namespace, d: Path) -> None:
    print("2. driver peak RSS, raw vmig -> vmig, fake embedder, 2 workers")
    for n in [int(x) for x in args.rss_records.split(",") if x]:
        sub = d / f"rss{n}"
        sub.mkdir()
        write_texts(sub / "in.vmig.jsonl", n)
        path = recipe(sub, "rss", "{type: fake, dims: 64}", "ray", 2)
        env = {**os.environ, "NO_COLOR": "1"}
        got = measure([sys.executable, "-m", "vexrun", "run", path.name, "--progress", "none"], cwd=str(sub), env=env)
        if got.code != 0:
            raise SystemExit(f"rss run failed: {got.err[-800:]}")
        print(f"   {n:>9,} records: {got.wall:6.1f} s, driver peak RSS {got.own_mb:6.0f} MB")
        shutil.rmtree(sub)


def llm_budget(args: argparse.Namespace, d: Path) -> None:
    print(f"3. extract on one key of {args.tpm:,} TPM, {args.llm_chunks} chunks, fake latency 300 ms")
    for label, extra in (("local", ["--executor", "local"]), ("ray, 4 workers", ["--workers", "4"])):
        cmd = [sys.executable, "-m", "vexrun.testing.ray_llm", "--dir", str(d / label.split(",")[0])]
        cmd += ["--chunks", str(args.llm_chunks), "--tpm", str(args.tpm), *extra]
        out = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        share = out["sustained"] / out["rate"]
        print(
            f"   {label:15s} {out['elapsed']:6.1f} s  {out['calls']} calls  {out['tokens']:,} tokens  "
            f"budget used after the burst {share:.1%}  429s {out['limited']}"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=100_000, help="texts of the CPU-bound case (0: skip it)")
    ap.add_argument("--rss-records", default="100000,1000000", help="record counts of the RSS case ('': skip)")
    ap.add_argument("--llm-chunks", type=int, default=120, help="chunks of the LLM budget case (0: skip it)")
    ap.add_argument("--tpm", type=int, default=20_000, help="the key's tokens per minute in the LLM case")
    args = ap.parse_args()
    if not os.environ.get(INSIDE):
        script = 'ip link set lo up && exec "$@"'
        cmd = ["unshare", "-n", "-p", "-f", "--mount-proc", "bash", "-c", script, "bench", sys.executable, *sys.argv]
        raise SystemExit(subprocess.call(cmd, env={**os.environ, INSIDE: "1"}))
    with tempfile.TemporaryDirectory(prefix="bench-ray-") as tmp:
        d = Path(tmp)
        if args.records:
            cpu_bound(args, d)
        if args.rss_records:
            driver_rss(args, d)
        if args.llm_chunks:
            llm_budget(args, d)


if __name__ == "__main__":
    main()
