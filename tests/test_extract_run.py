"""mode: extract through the CLI against the loopback LLM fakes: valid scored, deduplicated facts with edges in
the local store and the .vmig.jsonl output; the plan shows the cascade without keys; a dead key is dropped with
one warning; chunks every provider failed on are rejected and `--retry-rejected` recovers them; a killed run
resumes without asking again what was already answered."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, run_cli
from vexrun.stages.extract import FACT_TYPES
from vexrun.testing.fake_api import Fault, chat_server
from vexrun.vmig import read_batches

KEY = "gsk_extract_run_CANARY_1"
BAD_KEY = "gsk_extract_run_WRONG_2"


def _recipe(tmp: Path, base_url: str, *, keys: str = "${GROQ_TEST_KEYS}", extra_llm: str = "", run: str = "") -> Path:
    shutil.copy(ROOT / "examples" / "exports" / "claude" / "conversations.json", tmp / "conversations.json")
    recipe = tmp / "facts.yaml"
    recipe.write_text(
        f"""version: 1
mode: extract
source: {{type: claude-export, path: conversations.json, chunk: exchange}}
llm:
  providers:
    - type: groq
      base_url: {base_url}
      api_keys: "{keys}"
      max_retries: 1
      retry_backoff: 0.01{extra_llm}
embed: {{type: fake, dims: 32}}
targets:
  - {{type: sqlite, path: mem.db}}
  - {{type: vmig, path: facts.vmig.jsonl}}
run: {{batch_size: 4{run}}}
"""
    )
    return recipe


def _facts(path: Path) -> list[tuple[object, object]]:
    out = []
    for batch in read_batches(path):
        out.extend(batch)
    return out


def test_extract_run_end_to_end(tmp_path: Path) -> None:
    with chat_server(api_keys=[KEY]) as srv:
        recipe = _recipe(tmp_path, srv.url("/v1"))
        env = {"GROQ_TEST_KEYS": KEY}
        plan = run_cli("plan", "--json", str(recipe), env=env)
        assert plan.code == 0, plan.output
        extract = next(s for s in json.loads(plan.out)["stages"] if s["stage"] == "extract")
        cascade = extract["settings"]["llm"]["cascade"]
        assert cascade[0]["type"] == "groq" and cascade[0]["keys"] == 1 and cascade[0]["tpm"] == 6000
        assert [s["stage"] for s in json.loads(plan.out)["stages"]] == [
            "source",
            "chunk",
            "ids",
            "extract",
            "score",
            "dedup",
            "embed",
            "graph",
            "store",
            "store",
        ]
        res = run_cli("run", "--json", str(recipe), env=env)
        assert res.code == 0, res.output
        assert not srv.violations
    summary = json.loads(res.out)
    counts = summary["counts"]
    assert counts["extract"]["in"] > 0 and counts["extract"]["out"] > 0 and counts["extract"]["rejected"] == 0
    assert counts["llm"]["total"]["calls"] > 0 and counts["llm"]["total"]["input_tokens"] > 0
    facts = _facts(tmp_path / "facts.vmig.jsonl")
    assert len(facts) == counts["dedup"]["out"]
    for rec, vec in facts:
        m = rec.metadata
        assert m["type"] in FACT_TYPES and 0 <= m["importance"] <= 1
        assert 1 <= len(m["tags"]) <= 4 and len(m["potential"]) == 3
        assert m["attributed_to"] in ("user", "assistant") and m["source_message_ids"]
        assert rec.score is not None and vec is not None and rec.model == "fake-32"
    edges = [json.loads(x) for x in (tmp_path / "facts.vmig.jsonl.edges.jsonl").read_text().splitlines()]
    assert {"temporal", "tag"} <= {e["type"] for e in edges}
    db = sqlite3.connect(tmp_path / "mem.db")
    assert db.execute("SELECT COUNT(*) FROM records").fetchone()[0] == len(facts)
    assert db.execute("SELECT COUNT(*) FROM edges").fetchone()[0] > 0
    db.close()
    for out in (plan.output, res.output):
        assert KEY not in out


def test_dead_key_is_dropped_and_failed_chunks_are_retried(tmp_path: Path) -> None:
    with chat_server(api_keys=[KEY]) as srv:
        recipe = _recipe(tmp_path, srv.url("/v1"), keys="${GROQ_TEST_KEYS}")
        env = {"GROQ_TEST_KEYS": f"{BAD_KEY},{KEY}"}
        # the good key's first four calls fail with a 503: two packs of chunks exhaust the only provider
        srv.fail(Fault.server_error(503, times=4, key=KEY))
        first = run_cli("run", "--json", str(recipe), env=env)
        assert first.code == 3, first.output
        summary = json.loads(first.out)
        assert summary["counts"]["extract"]["rejected"] > 0
        assert first.err.count("was refused and is dropped for this run") == 1  # one clear warning
        rejects = [json.loads(x) for x in Path(summary["rejects_file"]).read_text().splitlines()]
        assert rejects and all(r["reject"]["stage"] == "extract" for r in rejects)
        before = len(_facts(tmp_path / "facts.vmig.jsonl"))
        retry = run_cli("run", "--retry-rejected", "--json", str(recipe), env=env)
        assert retry.code == 0, retry.output
        assert "Retrying" in retry.err
        assert json.loads(retry.out)["counts"]["extract"]["rejected"] == 0
        assert len(_facts(tmp_path / "facts.vmig.jsonl")) >= 1
        assert Path(summary["rejects_file"]).read_text() == ""  # nothing left rejected
    assert before >= 0
    for out in (first.output, retry.output):
        assert KEY not in out and BAD_KEY not in out


def test_kill_during_extraction_repeats_no_answered_call(tmp_path: Path) -> None:
    with chat_server(api_keys=[KEY], latency=0.25) as srv:
        recipe = _recipe(tmp_path, srv.url("/v1"), extra_llm="\n  max_concurrency: 1")
        # one call per chunk (no packing), one request in flight at a time
        recipe.write_text(recipe.read_text() + "extract: {pack_tokens: 0}\n")
        env = {**os.environ, "GROQ_TEST_KEYS": KEY}
        proc = subprocess.Popen(
            [sys.executable, "-m", "vexrun", "run", str(recipe)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        cache = None
        deadline = time.time() + 120
        while time.time() < deadline:
            found = list(tmp_path.glob(".vexrun/state/*/llm-cache.sqlite"))
            if found:
                cache = found[0]
                try:
                    db = sqlite3.connect(f"file:{cache}?mode=ro", uri=True)
                    n = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
                    db.close()
                except sqlite3.Error:
                    n = 0
                if n >= 3:
                    break
            if proc.poll() is not None:
                break
            time.sleep(0.02)
        proc.kill()
        proc.wait()
        before = srv.stats.requests
        assert cache is not None and before >= 3
        resumed = run_cli("run", "--json", str(recipe), env={"GROQ_TEST_KEYS": KEY})
        assert resumed.code == 0, resumed.output
        total = srv.stats.requests
    db = sqlite3.connect(cache)
    answered = db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    db.close()
    # every answer was asked for once, except at most the one request in flight when the process died
    assert total - answered <= 1, (total, answered)
