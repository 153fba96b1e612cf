"""Progress you can trust (issue 15 §4): `vexrun status` tells running / completed / failed / interrupted the way
they are (a kill -9 for real, an error for real), also for a recipe that no longer validates; a changed recipe
after a completed run starts a new run; a run of 0 records says why; progress shows a total, an ETA, the rate and
the slowest stage, as a bar on a real pseudo-terminal and as periodic log lines off one."""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import vexrun
from conftest import ROOT, CliResult, vx
from vexrun.checkpoint import Progress, StateDir, decide
from vexrun.executor import LocalExecutor
from vexrun.vmig import Record, VmigWriter


def _texts(path: Path, n: int, *, bad_lines: tuple[int, ...] = (), sidecar: bool = True) -> Path:
    with VmigWriter(path, source_store="test") as w:
        for i in range(n):
            w.write(Record(id=f"m{i:05d}", text=f"memory {i}: topic {i % 37} on day {i % 11}", namespace="ns"))
    if bad_lines:
        lines = path.read_bytes().splitlines(keepends=True)
        for n_line in bad_lines:
            lines[n_line - 1] = b'{"id": "broken", "text": \n'
        path.write_bytes(b"".join(lines))
    if bad_lines or not sidecar:
        path.with_name(path.name + ".meta.json").unlink()
    return path


def _recipe(
    tmp: Path, *, delay_ms: float = 0, batch: int = 100, dims: int = 8, extra: str = "", source: str = ""
) -> Path:
    recipe = tmp / "job.yaml"
    source = source or "source:\n  type: vmig\n  path: in.vmig.jsonl\n"
    recipe.write_text(
        f"""version: 1
{source}embed:
  type: fake
  dims: {dims}
  batch_size: 50
  delay_ms: {delay_ms}
targets:
  - type: vmig
    path: out.vmig.jsonl
run:
  batch_size: {batch}
{extra}"""
    )
    return recipe


def _vexrun(capsys: pytest.CaptureFixture[str], *args: str) -> CliResult:
    """``vexrun ARGS`` in this process (stderr is no terminal here: progress comes as log lines)."""
    return CliResult(*vx(capsys, *args))


def _status(capsys: pytest.CaptureFixture[str], target: Path) -> dict[str, Any]:
    code, out, err = vx(capsys, "status", "--json", str(target))
    assert code == 0, err
    return dict(json.loads(out))


def _wait_for_batch(tmp: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        found = list(tmp.glob(".vexrun/state/*/events.jsonl"))
        if found and '"event":"batch"' in found[0].read_text():
            return
        assert proc.poll() is None, "the run ended before its first batch"
        time.sleep(0.02)
    raise AssertionError("no batch committed in 60 s")


def test_a_killed_run_is_interrupted_also_when_the_recipe_no_longer_validates(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 400)
    recipe = _recipe(tmp_path, delay_ms=400, batch=50)  # 8 batches of 0.4 s: killed after the first
    before = _status(capsys, recipe)  # (and the status code is imported: the look while it runs is quick)
    assert before["exists"] is False and before["next"]["action"] == "fresh" and "checkpoint" not in before
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        _wait_for_batch(tmp_path, proc)
        live = _status(capsys, recipe)
        assert live["checkpoint"]["status"] == "running"
        assert f"pid {proc.pid}: vexrun run" in str(live["lock"])
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    st = _status(capsys, recipe)
    cp = st["checkpoint"]
    assert cp["status"] == "interrupted" and cp["recorded"] == "running"
    assert "without recording why (killed" in cp["reason"]
    assert st["runs"][0]["status"] == "interrupted" and "lock" not in st
    assert st["next"]["action"] == "resume"
    code, out, _ = vx(capsys, "status", str(recipe))
    assert re.search(r"checkpoint  run 1 interrupted after batch \d+", out), out

    good = recipe.read_text()
    recipe.write_text(good + "  bogus_setting: 1\n")  # no longer validates
    broken = _status(capsys, recipe)
    assert broken["valid"] is False and broken["checkpoint"]["status"] == "interrupted"
    code, out, _ = vx(capsys, "status", str(recipe))
    assert code == 0 and "INVALID: 1 problem" in out and "run 1 interrupted" in out
    assert "next run    none until the recipe validates again" in out
    by_dir = _status(capsys, Path(broken["state_dir"]))  # the state directory itself
    assert by_dir["checkpoint"]["status"] == "interrupted"
    (tmp_path / "elsewhere.yaml").write_text("version: [\n")  # invalid, and no state: the validation error
    code, _, err = vx(capsys, "status", str(tmp_path / "elsewhere.yaml"))
    assert code == 1 and "yaml-syntax" in err

    recipe.write_text(good)
    resumed = _vexrun(capsys, "run", str(recipe))
    assert resumed.code == 0, resumed.output
    assert "Resuming run 1 of job at batch" in resumed.err
    assert _status(capsys, recipe)["checkpoint"]["status"] == "completed"


class _Boom(LocalExecutor):
    def process(self, stages: Any, batch: Any, index: int) -> Any:
        if index == 2:
            raise RuntimeError("boom in batch 2")
        return super().process(stages, batch, index)


def test_a_run_ending_on_an_error_is_failed_with_its_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 200, bad_lines=(150,))
    recipe = _recipe(tmp_path, batch=50, extra="  on_error: fail\n")
    res = _vexrun(capsys, "run", str(recipe))
    assert res.code == 1 and "run.on_error is 'fail'" in res.err
    st = _status(capsys, recipe)
    cp = st["checkpoint"]
    assert cp["status"] == "failed" and cp["batches"] == 2
    assert "1 input record(s) rejected (bad-json" in cp["reason"] and "\n" not in cp["reason"]
    assert st["runs"][0]["status"] == "failed"
    assert st["next"]["detail"].startswith("resumes run 1 at batch 3")
    state = StateDir(Path(st["state_dir"]))
    events = [json.loads(line) for line in state.events_path.read_text().splitlines()]
    assert events[-1]["event"] == "failed" and "on_error" in events[-1]["error"]
    assert json.loads((state.path / "runs" / "0001.json").read_text())["status"] == "failed"
    code, out, _ = vx(capsys, "status", str(recipe))
    assert "checkpoint  run 1 failed after batch 2 (100 records read)" in out and "run.on_error is 'fail'" in out

    # an internal error (not a vexrun error) is recorded too, as its type and message; the resume carries on
    other = tmp_path / "other"
    other.mkdir()
    _texts(other / "in.vmig.jsonl", 200)
    job = _recipe(other, batch=50)
    with pytest.raises(RuntimeError):
        vexrun.run(job, executor=_Boom())
    cp = _status(capsys, job)["checkpoint"]
    assert cp["status"] == "failed" and cp["reason"] == "RuntimeError: boom in batch 2"
    again = vexrun.run(job)
    assert again.status == "completed" and again.resumed_at_batch == 1


def test_decide_refuses_only_over_an_unfinished_run() -> None:
    same, other = ("fp1", {"embed (fake)": "a"}), ("fp2", {"embed (fake)": "b"})

    def progress(status: str, batches: int = 3) -> Progress:
        return Progress(run_id=7, status=status, batches=batches)

    assert decide((None, {}), None, same).action == "fresh"
    assert decide(same, progress("completed"), same).action == "new-run"
    changed = decide(same, progress("completed"), other)
    assert changed.action == "new-run" and changed.differ == ["embed (fake)"]
    assert "completed; a run starts a new one under the changed plan" in changed.detail()
    for status in ("running", "interrupted", "failed", "too-many-rejects"):
        assert decide(same, progress(status), same).action == "resume"
        refused = decide(same, progress(status), other)
        assert refused.action == "refuse" and "refuses until you pass --fresh" in refused.detail()
        assert decide(same, progress(status), other, fresh=True).action == "restart"
        assert decide(same, progress(status, batches=0), other).action == "new-run"  # nothing to resume


def test_a_changed_recipe_after_a_completed_run_starts_a_new_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 120)
    recipe = _recipe(tmp_path)
    assert _vexrun(capsys, "run", str(recipe)).code == 0
    recipe.write_text(recipe.read_text().replace("dims: 8", "dims: 12"))
    res = _vexrun(capsys, "run", "--json", str(recipe))
    assert res.code == 0, res.output
    assert "Run 1 of this recipe completed; the recipe changed since (embed (fake)): starting a new run" in res.err
    summary = json.loads(res.out)
    assert summary["run"] == 2 and summary["status"] == "completed" and summary["resumed_at_batch"] is None
    assert summary["counts"]["store"]["targets[0] (vmig)"]["written"] == 120


def test_a_run_of_no_records_prints_the_whole_table_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in.vmig.jsonl").write_bytes(b"")
    recipe = _recipe(tmp_path)
    res = _vexrun(capsys, "run", str(recipe))
    assert res.code == 0, res.output
    rows = [line.split("  ")[0] for line in res.out.splitlines()[1:7]]
    assert rows == ["source (vmig)", "chunk", "ids", "embed (fake)", "graph", "targets[0] (vmig)"]
    assert "the source yielded no records: in.vmig.jsonl is empty (0 bytes)" in res.out

    (tmp_path / "conversations.json").write_text("[]")
    export = "source:\n  type: claude-export\n  path: conversations.json\n"
    res = _vexrun(capsys, "run", "--fresh", "--json", str(_recipe(tmp_path, source=export)))
    assert res.code == 0, res.output
    why = "the source yielded no records: conversations.json holds 0 conversations"
    assert json.loads(res.out)["why_empty"] == why and why in res.err

    _texts(tmp_path / "in.vmig.jsonl", 2, bad_lines=(1, 2))
    res = _vexrun(capsys, "run", "--fresh", str(_recipe(tmp_path)))
    assert res.code == 3
    assert "all 2 records read were rejected by the source (see " in res.out


_LOG = re.compile(
    r"^\[vexrun\] (?P<read>[\d,]+)(?:/(?P<total>~?[\d,]+))? records(?: \((?P<pct>\d+)%\))?"
    r"(?: · (?P<bytes>[\d.]+/[\d.]+ kB) \(\d+%\))? · (?P<rate>[\d,]+) records/s(?: · ETA (?P<eta>\S+))? · "
    r"batch (?P<batch>\d+) · written [\d,]+ · embedded [\d,]+ \(cached \d+\) · slowest: (?P<slow>.+), \d+% of the time$"
)


@pytest.mark.parametrize("sidecar", [True, False], ids=["records-from-the-sidecar", "bytes-of-the-file"])
def test_off_a_terminal_progress_is_a_line_every_interval(
    tmp_path: Path, sidecar: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 1000, sidecar=sidecar)
    recipe = _recipe(tmp_path, delay_ms=25, batch=100)
    t0 = time.monotonic()
    monkeypatch.setenv("VEXRUN_PROGRESS_EVERY", "0.3")
    res = _vexrun(capsys, "run", str(recipe))  # stderr is no terminal: log lines
    elapsed = time.monotonic() - t0
    assert res.code == 0, res.output
    lines = [line for line in res.err.splitlines() if line.startswith("[vexrun] ") and "in all:" not in line]
    found = [_LOG.match(line) for line in lines]
    assert lines and all(found), lines
    first = found[0]
    assert first is not None and first["batch"] == "1"  # the first line comes after the first batch
    assert all(m is not None and m["slow"] == "embed (fake)" for m in found)  # 20 ms a call: embedding is slow
    if sidecar:
        assert all(m is not None and m["total"] == "1,000" for m in found)
    else:
        # the records are extrapolated from the bytes read (~), until the file is read to its end
        assert all(m is not None and m["bytes"] and (m["total"] or "~").startswith("~") for m in found)
    assert any(m is not None and m["eta"] for m in found)
    assert 2 <= len(lines) <= elapsed / 0.3 + 2  # periodic, not one a batch
    assert re.search(r"^\[vexrun\] in all: 1,000(/1,000)? records.* · 10 batches · ", res.err, re.M), res.err


def test_a_store_source_counts_its_records_for_the_total(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 300)
    first = _recipe(tmp_path, batch=100)
    first.write_text(
        first.read_text().replace("type: vmig\n    path: out.vmig.jsonl", "type: sqlite\n    path: store.db")
    )
    assert _vexrun(capsys, "run", str(first)).code == 0
    again = tmp_path / "again"
    again.mkdir()
    store = f"source:\n  type: sqlite\n  path: {tmp_path / 'store.db'}\n"
    res = _vexrun(capsys, "run", "--progress", "log", str(_recipe(again, batch=100, source=store)))
    assert res.code == 0, res.output
    assert re.search(r"^\[vexrun\] 100/300 records \(33%\) · ", res.err, re.M), res.err


def test_on_a_terminal_the_bar_shows_total_eta_rate_and_the_slowest_stage(tmp_path: Path) -> None:
    _texts(tmp_path / "in.vmig.jsonl", 1000)
    recipe = _recipe(tmp_path, delay_ms=25, batch=100)
    master, slave = pty.openpty()
    import fcntl
    import struct
    import termios

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "160", "NO_COLOR": "1"}
    env.pop("VEXRUN_PROGRESS_EVERY", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", str(recipe)], stdout=subprocess.PIPE, stderr=slave, cwd=ROOT, env=env
    )
    os.close(slave)
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    out, _ = proc.communicate(timeout=120)
    reader.join(timeout=10)
    os.close(master)
    assert proc.returncode == 0
    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", b"".join(chunks).decode("utf-8", "replace"))
    assert "━" in screen  # a bar was drawn
    assert re.search(r"run .*[\d,]+/1,000 records \(\d+%\) · [\d,]+ records/s · ETA \d+s", screen), screen[-2000:]
    assert re.search(r"batch \d+ · written [\d,]+ · .*slowest: embed \(fake\), \d+% of the time", screen)
    assert "1,000/1,000 records (100%)" in screen
    assert "completed: run 1, 10 batches" in out.decode()
