"""Benchmark of extraction through the cascade against a fake Groq with per-key budgets: how much of the budget it
uses, how it scales with keys, and what a storm of 429s and 5xx costs.

    python bench/bench_extract.py                      # 500 chunks, what `make bench` runs (~10 min)
    python bench/bench_extract.py --chunks 120         # quicker

The fake answers after ``--latency`` (300 ms) and enforces ``--tpm`` tokens per minute per key (6,000, Groq's
free tier) with Groq's real 429s; the client is given the same budget. One minute of budget is ``--scale``
(default 10) times the tokens: at the literal 6,000 TPM, 500 chunks take about 50 minutes of waiting, so the
run uses 60,000 TPM per key with the same 300 ms latency (which makes latency weigh ten times more). Use
``--scale 1`` for the literal setting.

Cases, each over the same seeded chunks (fed in batches of ``--batch``, as the runner does, with a fresh cache):

1. one key: the budget sustained, from the fake's log of admitted requests: the tokens admitted after the
   initial burst (a full bucket lets one minute's budget through at once) divided by the time from the end of
   that burst to the last admission, against the key's rate. Target: at least 90%.
2. three keys: the same, in tokens per second, against case 1. Target: at least 2.7×.
3. storm, three keys: 30% of calls answered 429 ("Please try again in 1s"), 5% answered 503. Targets: zero
   chunks lost, and total time within 1.5× case 2.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from vexrun.providers.llm.cascade import Cascade
from vexrun.providers.llm.openai_compat import GroqConfig, GroqProvider
from vexrun.stages.extract import ExtractStage
from vexrun.stages.llm_cache import LLMCache
from vexrun.stages.settings_extract import ExtractSettings
from vexrun.testing.data import chat_chunks as make_chunks
from vexrun.testing.fake_api import Fault, KeyBudget, chat_server
from vexrun.testing.fake_api.limits import sustained
from vexrun.vmig import Batch, Record


@dataclass
class Run:
    keys: int
    elapsed: float
    #: tokens per second admitted after the initial burst (see above)
    sustained: float
    tokens: int
    requests: int
    limited: int
    failed: int
    facts: int
    chunks_with_facts: int
    retries: int


def run_case(chunks: list[Record], keys: int, args: argparse.Namespace, storm: bool = False) -> Run:
    tpm, rpm = args.tpm * args.scale, args.rpm * args.scale
    names = [f"gsk_bench_key_{i}" for i in range(keys)]
    with (
        chat_server(api_keys=names, budget=KeyBudget(tpm=tpm, rpm=rpm), style="groq", latency=args.latency) as srv,
        tempfile.TemporaryDirectory() as tmp,
    ):
        if storm:
            srv.fail(
                Fault.rate_limit(try_again_in=1.0, probability=0.30, times=None),
                Fault.server_error(503, probability=0.05 / 0.70, times=None),
            )
        cfg = GroqConfig(base_url=srv.url("/v1"), api_keys=names, tpm=tpm, rpm=rpm, retry_backoff=0.5, timeout=30)
        with LLMCache(Path(tmp) / "llm.sqlite") as cache, Cascade([GroqProvider(cfg)], cache=cache) as cascade:
            stage = ExtractStage(ExtractSettings(), cascade)
            failed, facts, sources = 0, 0, set()
            t0 = time.perf_counter()
            for a in range(0, len(chunks), args.batch):
                result = stage.extract(Batch(records=chunks[a : a + args.batch]))
                failed += len(result.failed)
                facts += len(result.facts)
                sources |= {str((f.metadata or {})["source_chunk_id"]) for f in result.facts.records}
            elapsed = time.perf_counter() - t0
            retries = int(cascade.usage()["total"]["retries"])
        limiter = srv.apps[0].limiter  # type: ignore[attr-defined]
        usage = limiter.total()
        assert not srv.violations, srv.violations[:3]
    return Run(
        keys,
        elapsed,
        sustained(limiter.log, tpm * keys),
        usage.input_tokens + usage.output_tokens,
        usage.calls,
        usage.limited,
        failed,
        facts,
        len(sources),
        retries,
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=500)
    ap.add_argument("--tpm", type=int, default=6000, help="tokens per minute per key (default 6000)")
    ap.add_argument("--rpm", type=int, default=30, help="requests per minute per key (default 30)")
    ap.add_argument("--scale", type=float, default=10.0, help="budget multiplier, see above (default 10)")
    ap.add_argument("--latency", type=float, default=0.3, help="seconds per answer (default 0.3)")
    ap.add_argument("--batch", type=int, default=100, help="chunks per stage call (default 100)")
    args = ap.parse_args()
    chunks = make_chunks(args.chunks)
    rate = args.tpm * args.scale / 60
    print(
        f"extract: {args.chunks} chunks, {args.tpm:,} TPM x {args.scale:g} = {args.tpm * args.scale:,.0f} tokens per "
        f"minute per key, {args.latency * 1000:.0f} ms latency, batches of {args.batch}"
    )

    one = run_case(chunks, 1, args)
    use = one.sustained / rate
    print(
        f"1 key : {one.elapsed:6.1f} s, {one.requests} calls, {one.tokens:,} tokens, {one.limited} 429s from the "
        f"budget; sustained {one.sustained:,.0f} tokens/s = {use:.1%} of the key's budget  "
        f"{'PASS' if use >= 0.9 else 'FAIL'}"
    )
    three = run_case(chunks, 3, args)
    speedup = three.sustained / max(one.sustained, 1e-9)
    print(
        f"3 keys: {three.elapsed:6.1f} s, {three.requests} calls, {three.limited} 429s from the budget; sustained "
        f"{three.sustained:,.0f} tokens/s = {speedup:.2f}x one key ({three.sustained / (3 * rate):.1%} of three "
        f"keys' budget)  {'PASS' if speedup >= 2.7 else 'FAIL'}"
    )
    storm = run_case(chunks, 3, args, storm=True)
    lost = args.chunks - storm.chunks_with_facts
    ratio = storm.elapsed / three.elapsed
    ok_storm = storm.failed == 0 and lost == 0 and ratio <= 1.5
    print(
        f"storm : {storm.elapsed:6.1f} s ({ratio:.2f}x the calm run), {storm.retries} retries, {storm.failed} chunks "
        f"failed, {lost} chunks without facts  {'PASS' if ok_storm else 'FAIL'}"
    )
    ok = use >= 0.9 and speedup >= 2.7 and ok_storm
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
