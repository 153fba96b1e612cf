"""An extract run against the loopback LLM fake, for the tests and the benchmark of ``run.executor: ray``.

    python -m vexrun.testing.ray_llm --dir D --chunks 200 --tpm 60000 --workers 4 [--executor local]
    python -m vexrun.testing.ray_llm --dir D --kills 5 --kill-after 4,9    # kill -9 the run 5 times first

Writes ``--chunks`` seeded chat chunks to ``D/chunks.vmig.jsonl`` and an extract recipe whose one Groq key has
``--tpm`` tokens (and ``--rpm`` requests) per minute, starts the fake Groq with that same budget per key on
127.0.0.1 (run it where Ray runs: inside the loopback namespace), runs ``vexrun run`` on the recipe and prints one
JSON line: the run's exit code and elapsed seconds, and the fake's figures — calls answered, tokens admitted,
429s it sent, the budget it saw used after the initial burst (tokens per second) and the key's rate — and the
run's LLM answer cache (answers kept, the most times one was stored). With ``--kills N`` the run is started and
killed with SIGKILL ``N`` times at seeded random moments before the run that goes through (the fake keeps
running, as a real provider would).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from ..vmig.batch import Batch
from ..vmig.writer import VmigWriter
from .data import chat_chunks
from .fake_api import KeyBudget, chat_server
from .fake_api.limits import sustained

KEY = "gsk_ray_budget_CANARY_7"


def write_recipe(d: Path, url: str, args: argparse.Namespace) -> Path:
    recipe = d / "extract.yaml"
    recipe.write_text(
        f"""version: 1
name: ray-llm
mode: extract
source: {{type: vmig, path: chunks.vmig.jsonl}}
llm:
  providers:
    - type: groq
      base_url: {url}
      api_keys: "${{RAY_LLM_KEYS}}"
      tpm: {args.tpm}
      rpm: {args.rpm}
      max_retries: 3
      retry_backoff: 0.2
embed: {{type: fake, dims: 16}}
targets:
  - {{type: vmig, path: facts.vmig.jsonl}}
run:
  batch_size: {args.batch}
  executor: {args.executor}
  ray: {{workers: {args.workers}, partitions: {args.partitions or 2 * args.workers}}}
"""
    )
    return recipe


def kill_runs(cmd: list[str], env: dict[str, str], args: argparse.Namespace) -> int:
    """``--kills`` times: start the run and ``kill -9`` it after a seeded random wait within ``--kill-after``
    seconds (fewer when a run finishes first). Returns how many runs were killed."""
    rng = random.Random(args.kill_seed)
    low, high = (float(x) for x in args.kill_after.split(","))
    kills = 0
    while kills < args.kills:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(low, high))
        if proc.poll() is not None:
            break
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    return kills


def answer_counts(d: Path) -> dict[str, int]:
    """The run's LLM answer cache: answers kept, and the most times one answer was stored (1: none twice)."""
    found = sorted((d / ".vexrun" / "state").glob("ray-llm-*/llm-cache.sqlite"))
    if not found:
        return {"entries": 0, "max_puts": 0}
    db = sqlite3.connect(found[0])
    try:
        n, most = db.execute("SELECT COUNT(*), COALESCE(MAX(puts), 0) FROM answers").fetchone()
    finally:
        db.close()
    return {"entries": int(n), "max_puts": int(most)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dir", type=Path, required=True)
    ap.add_argument("--chunks", type=int, default=200)
    ap.add_argument("--tpm", type=int, default=60_000)
    ap.add_argument("--rpm", type=int, default=6_000)
    ap.add_argument("--latency", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--workers", type=int, default=4)
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--executor", default="ray", choices=["ray", "local"])
    ap.add_argument("--vexrun-arg", action="append", default=[], help="more arguments for vexrun run")
    ap.add_argument("--kills", type=int, default=0, help="kill -9 the run this many times before running it through")
    ap.add_argument("--kill-after", default="4,9", help="each kill after a random wait in this range (seconds)")
    ap.add_argument("--kill-seed", type=int, default=14)
    args = ap.parse_args(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    source = args.dir / "chunks.vmig.jsonl"
    if not source.exists():
        with VmigWriter(source, source_store="chat") as w:
            w.write_batch(Batch(records=chat_chunks(args.chunks)))
    budget = KeyBudget(tpm=args.tpm, rpm=args.rpm)
    with chat_server(api_keys=[KEY], budget=budget, style="groq", latency=args.latency) as srv:
        recipe = write_recipe(args.dir, srv.url("/v1"), args)
        env = {**os.environ, "RAY_LLM_KEYS": KEY, "NO_COLOR": "1"}
        t0 = time.perf_counter()
        cmd = [sys.executable, "-m", "vexrun", "run", str(recipe), "--progress", "none", *args.vexrun_arg]
        kills = kill_runs(cmd, env, args)
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        elapsed = time.perf_counter() - t0
        limiter = srv.apps[0].limiter  # type: ignore[attr-defined]
        usage = limiter.total()
        out = {
            "code": proc.returncode,
            "elapsed": round(elapsed, 2),
            "calls": usage.calls,
            "tokens": usage.input_tokens + usage.output_tokens,
            "limited": usage.limited,
            "sustained": round(sustained(limiter.log, args.tpm), 1),
            "rate": round(args.tpm / 60, 1),
            "violations": len(srv.violations),
            "stderr_tail": proc.stderr.strip().splitlines()[-3:],
            "kills": kills,
            "answers": answer_counts(args.dir),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
