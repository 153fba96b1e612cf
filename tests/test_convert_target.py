"""The ``convert`` target (issue 13): a recipe writes fine-tuning examples straight from a run.

Its output is byte for byte what ``vexrun convert`` writes from the ``.vmig.jsonl`` file a ``vmig`` target of the
same run holds (every chunk mode, ``split``, ``.gz``, ids written twice, records no format can use), it passes
``vexrun convert --check``, the run report says what was dropped and why, a run killed with ``kill -9`` and run
again writes the same bytes, and options that do nothing for the format are refused by ``vexrun validate``."""

from __future__ import annotations

import copy
import gzip
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, run_cli, vx
from vexrun.connectors.base import RunContext
from vexrun.connectors.convert import ConvertSink, ConvertSinkConfig
from vexrun.vmig import Record
from vexrun.vmig.batch import Batch

EXPORT = ROOT / "examples" / "exports" / "claude" / "conversations.json"
MEMORIES = ROOT / "examples" / "memories.vmig.jsonl"


def _recipe(tmp: Path, sources: str, target: str, *, chunk: str = "turn", extra: str = "") -> Path:
    recipe = tmp / "job.yaml"
    recipe.write_text(
        f"version: 1\nsources:\n{sources}\nsplit: {{max_chars: 100000}}\n"
        f"targets:\n  - {{type: vmig, path: out/all.vmig.jsonl}}\n  - {target}\n{extra}"
    )
    return recipe


def _claude(path: Path, chunk: str) -> str:
    return f"  - {{type: claude-export, path: {path}, chunk: {chunk}}}\n"


CASES = {  # name: (sources, chunk, convert target options, `vexrun convert` flags, files written)
    "conversation-openai": (
        "claude",
        "conversation",
        "format: openai, path: out/ft.jsonl, system: 'You are our memory.'",
        ["--to", "openai", "--system", "You are our memory."],
        ["ft.jsonl"],
    ),
    "turn-chat-split": (
        "claude",
        "turn",
        "format: mistral, path: out/ft.jsonl, split: 0.5",
        ["--to", "mistral", "--split", "0.5"],
        ["ft.train.jsonl", "ft.validation.jsonl"],
    ),
    "exchange-sharegpt-gz-with-memories": (
        "claude+memories",
        "exchange",
        "format: sharegpt, path: out/ft.jsonl.gz",
        ["--to", "sharegpt"],
        ["ft.jsonl.gz"],
    ),
    "ids-written-twice-anthropic-check": (
        "claude+claude",
        "turn",
        "format: anthropic, path: out/ft.jsonl, check: true, max_tokens: 60",
        ["--to", "anthropic", "--check", "--max-tokens", "60"],
        ["ft.jsonl"],
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_writes_what_vexrun_convert_writes_from_the_runs_vmig(case: str, tmp_path: Path) -> None:
    kind, chunk, options, flags, names = CASES[case]
    sources = _claude(EXPORT, chunk)
    if kind == "claude+memories":
        sources += f"  - {{type: vmig, path: {MEMORIES}}}\n"
    elif kind == "claude+claude":
        sources += _claude(EXPORT, chunk)  # every id again, in later batches: the last write wins
    recipe = _recipe(tmp_path, sources, f"{{type: convert, {options}}}", extra="run: {batch_size: 5}\n")
    run = run_cli("run", "--json", str(recipe), cwd=tmp_path)
    assert run.code == 0, run.output
    summary = json.loads(run.out)

    cli = tmp_path / "cli"  # the same file names in another directory: a gzip header names its file
    out = options.split("path: out/")[1].split(",")[0]
    res = run_cli("convert", str(tmp_path / "out" / "all.vmig.jsonl"), "-o", str(cli / out), *flags, "--json")
    assert res.code == 0, res.output
    by_cli = json.loads(res.out)
    assert sorted(Path(p).name for p in by_cli["written"]) == sorted(names)
    for name in names:
        ours, theirs = tmp_path / "out" / name, cli / name
        assert ours.read_bytes() == theirs.read_bytes(), name
        check = run_cli("convert", str(ours), *flags[:2], "--check")
        assert check.code == 0 and "valid as" in check.out, check.output
    assert not list((tmp_path / "out").glob("*.partial")) and not list((tmp_path / "out").glob("*.lock"))

    # the run report: what was written and what was dropped, by reason, as `vexrun convert` counts it
    (title,) = [t for t in summary["counts"]["store"] if "(convert)" in t]
    report = summary["counts"]["sink_reports"][title]
    assert report["dropped"] == by_cli["dropped"]
    assert report["examples"] == by_cli["examples"] > 0
    assert sorted(Path(p).name for p in report["written"]) == sorted(names)
    if kind == "claude+memories":
        assert report["dropped"] == {"not_a_conversation_turn": 22}  # the memories are no conversation
    if kind == "claude+claude":
        assert summary["duplicates"]["across_batches"][title] > 0
        assert report["records"] == by_cli["records"]  # each id once
        assert set(report["dropped"]) == {"check:too_long"}
    assert "examples" in run.err and "dropped" in run.err  # and one line in the log


def _bigger_export(path: Path, copies: int) -> None:
    """The sample export ``copies`` times over, each copy with its own uuids and texts (so its own record ids, and
    its own embeddings to compute)."""
    base = json.loads(EXPORT.read_text())

    def renamed(value: object, k: int) -> object:
        if isinstance(value, dict):
            out = {}
            for key, v in value.items():
                if key.endswith("uuid") and isinstance(v, str) and not v.startswith("0000"):
                    out[key] = f"{k:04x}{v[4:]}"
                elif key == "text" and isinstance(v, str) and v:
                    out[key] = f"{v} (copy {k})"
                else:
                    out[key] = renamed(v, k)
            return out
        if isinstance(value, list):
            return [renamed(v, k) for v in value]
        return value

    path.write_text(json.dumps([renamed(copy.deepcopy(c), k) for k in range(copies) for c in base]))


def _kill_recipe(work: Path, delay_ms: int) -> Path:
    target = "{type: convert, format: openai, path: out/train.jsonl, system: 'Be brief.', split: 0.8}"
    embed = f"embed: {{type: fake, dims: 8, batch_size: 6, delay_ms: {delay_ms}}}\n"
    return _recipe(work, _claude(work / "conversations.json", "turn"), target, extra=embed + "run: {batch_size: 6}\n")


def _spooled(work: Path) -> int:
    """Bytes in the convert target's spool (in the run's state directory) so far."""
    return sum(p.stat().st_size for p in work.glob(".vexrun/state/*/convert/.*.partial"))


def test_kill_9_mid_run_then_the_same_command_writes_the_same_bytes(tmp_path: Path) -> None:
    ref, work = tmp_path / "ref", tmp_path / "work"
    for d in (ref, work):
        d.mkdir()
        _bigger_export(d / "conversations.json", 12)  # 204 turn records: 34 batches
    assert run_cli("run", str(_kill_recipe(ref, 0)), cwd=ref).code == 0
    names = ("train.train.jsonl", "train.validation.jsonl")
    reference = {n: (ref / "out" / n).read_bytes() for n in names}
    assert all(reference.values())

    # 34 batches of 100 ms each, about 3.5 s of work. Each attempt is killed once it has written at least one more
    # batch to the spool (whatever the machine's load), at a random moment after that.
    recipe = _kill_recipe(work, 100)
    rng = random.Random(13)
    kills = 0
    for _ in range(3):
        before = _spooled(work)
        proc = subprocess.Popen(
            [sys.executable, "-m", "vexrun", "run", str(recipe)],
            cwd=work,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while _spooled(work) <= before and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))
        if proc.poll() is None:
            proc.kill()
            kills += 1
        proc.wait()
    assert kills == 3  # no attempt finished: the run below is a resumed one
    final = run_cli("run", "--json", str(recipe), cwd=work)
    assert final.code == 0, final.output
    assert json.loads(final.out)["resumed_at_batch"] is not None
    for name in names:
        assert (work / "out" / name).read_bytes() == reference[name], name
    assert (work / "out" / "all.vmig.jsonl").read_bytes() == (ref / "out" / "all.vmig.jsonl").read_bytes()
    assert not list((work / "out").glob("*.partial")) and not list((work / ".vexrun").rglob("*.vmig.jsonl.partial"))
    check = run_cli("convert", str(work / "out" / names[0]), "--to", "openai", "--check")
    assert check.code == 0, check.output


def _sink(tmp: Path, **options: object) -> ConvertSink:
    ctx = RunContext(state_dir=tmp / "state", recipe_dir=tmp)
    (tmp / "state").mkdir(exist_ok=True)
    return ConvertSink(ConvertSinkConfig(format="alpaca", path="ft.jsonl.gz", **options), ctx)  # type: ignore[arg-type]


def _turn(i: int, role: str) -> Record:
    meta = {"conversation_id": "c1", "role": role, "roles": [role], "chunk_mode": "turn"}
    return Record(id=f"t{i}", text=f"{role} turn {i}", metadata=meta)  # type: ignore[arg-type]


def test_a_pair_of_turns_across_batches_and_a_resume_after_publishing(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.open(None)
    sink.write(Batch(records=[_turn(0, "user")]))  # the answer comes in the next batch
    sink.write(Batch(records=[_turn(1, "assistant"), Record(id="m", text="a plain memory")]))
    sink.finalize()
    state = sink.state()
    sink.close()
    out = tmp_path / "ft.jsonl.gz"
    published = out.read_bytes()
    assert [json.loads(x) for x in gzip.decompress(published).splitlines()] == [
        {"instruction": "user turn 0", "input": "", "output": "assistant turn 1"}
    ]
    assert sink.report()["dropped"] == {"not_a_conversation_turn": 1}
    left = [p.name for p in (tmp_path / "state" / "convert").iterdir()]
    assert len(left) == 1 and left[0].endswith(".report.json")  # the spool is gone, its report kept

    # killed after the examples were published, before the run was marked complete: the same command resumes
    # with the last committed state, finds them in place and leaves them as they are
    again = _sink(tmp_path)
    again.open(state)
    again.finalize()
    assert again.state() == state and again.report() == sink.report()
    again.close()
    assert out.read_bytes() == published


def test_options_that_do_nothing_for_the_format_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(
        f"version: 1\nsource: {{type: claude-export, path: {EXPORT}}}\ntargets:\n"
        "  - {type: convert, format: llama, path: a.jsonl}\n"
        "  - {type: convert, format: openai, path: b.jsonl, separator: '--'}\n"
        "  - {type: convert, format: alpaca, path: c.jsonl, system: hi}\n"
        "  - {type: convert, format: chat, path: d.jsonl, max_tokens: 100}\n"
        "  - {type: convert, format: qa, path: e.jsonl, split: 1.5}\n"
    )
    code, out, err = vx(capsys, "validate", str(recipe))
    assert code == 1
    text = out + err
    assert "bad.yaml:4:21: error[bad-value] targets[0].format: must be 'openai'" in text
    assert "targets[1]: separator: only the text format takes one" in text
    assert "targets[2]: system: the alpaca format has no system prompt" in text
    assert "targets[3]: max_tokens: applies to examples held to the rules: set check: true" in text
    assert "targets[4].split" in text
