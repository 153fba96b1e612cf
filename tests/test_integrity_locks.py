"""Outputs are locked, not only recipes (issue 11): two recipes writing the same `.vmig.jsonl` file or local
store at the same time used to publish a corrupt file (its own sidecar checksum failed) and crash the other run
with a FileNotFoundError. Now the second run exits 4 at once, with one line naming the output and the PID that
holds it, and the first one finishes a valid file. Real processes: locks are about processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import run_cli
from vexrun.appendfile import OutputLock
from vexrun.errors import LockHeld
from vexrun.vmig import Record, VmigWriter


def _input(path: Path, n: int = 40) -> None:
    with VmigWriter(path, source_store="test") as w:
        for i in range(n):
            w.write(Record(id=f"r{i:03d}", text=f"memory {i} about the shared output"))


def _recipe(tmp: Path, name: str, targets: str, *, delay_ms: int = 0) -> Path:
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(
        f"""version: 1
source: {{type: vmig, path: in.vmig.jsonl}}
embed: {{type: fake, dims: 8, batch_size: 4, delay_ms: {delay_ms}}}
targets:
{targets}
run: {{batch_size: 4}}
"""
    )
    return recipe


VMIG = "  - {type: vmig, path: out/shared.vmig.jsonl}\n"
SQLITE = "  - {type: sqlite, path: out/shared.db}\n"


def _wait_for_lock(lock: Path, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 60
    while time.time() < deadline:
        if lock.exists() and lock.read_text().startswith("pid "):
            return
        assert proc.poll() is None, "the first run ended before it took the lock"
        time.sleep(0.02)
    raise AssertionError(f"{lock} never appeared")


def test_a_second_run_on_the_same_outputs_exits_4_naming_the_output_and_pid(tmp_path: Path) -> None:
    _input(tmp_path / "in.vmig.jsonl")
    first = _recipe(tmp_path, "first", VMIG + SQLITE, delay_ms=800)  # 10 batches of ~0.8 s
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", str(first)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        _wait_for_lock(tmp_path / "out" / "shared.vmig.jsonl.lock", proc)
        _wait_for_lock(tmp_path / "out" / "shared.db.lock", proc)
        for name, target, output in (("second", VMIG, "shared.vmig.jsonl"), ("third", SQLITE, "shared.db")):
            started = time.time()
            res = run_cli("run", str(_recipe(tmp_path, name, target)))
            assert res.code == 4, res.output
            assert time.time() - started < 30
            errors = [line for line in res.err.splitlines() if line.startswith("error")]
            assert len(errors) == 1, res.err
            assert str(tmp_path / "out" / output) in errors[0] and f"pid {proc.pid}" in errors[0]
            assert "Traceback" not in res.output
        assert proc.poll() is None, "the refused runs must not have disturbed the first one"
    finally:
        out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()
    # the first run published a whole, valid file, and released its locks
    valid = run_cli("validate", str(tmp_path / "out" / "shared.vmig.jsonl"))
    assert valid.code == 0, valid.output
    assert not (tmp_path / "out" / "shared.vmig.jsonl.lock").exists()
    assert not (tmp_path / "out" / "shared.db.lock").exists()
    # and another recipe can write the same outputs now
    later = run_cli("run", str(_recipe(tmp_path, "fourth", VMIG + SQLITE)))
    assert later.code == 0, later.output


def test_a_killed_holder_leaves_no_lock_behind(tmp_path: Path) -> None:
    """`kill -9` drops an flock: a stale lock file never blocks the next run, which resumes."""
    _input(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path, "job", VMIG, delay_ms=300)
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "run", str(recipe)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _wait_for_lock(tmp_path / "out" / "shared.vmig.jsonl.lock", proc)
    proc.kill()
    proc.wait()
    assert (tmp_path / "out" / "shared.vmig.jsonl.lock").exists()  # the file stays; its lock went with the process
    resumed = run_cli("run", str(recipe))
    assert resumed.code == 0, resumed.output
    assert run_cli("validate", str(tmp_path / "out" / "shared.vmig.jsonl")).code == 0


def test_output_lock_in_one_process_refuses_a_second_holder(tmp_path: Path) -> None:
    """The lock itself, held by another process (a plain child holding it with the same class)."""
    output = tmp_path / "x.vmig.jsonl"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, pathlib; from vexrun.appendfile import OutputLock; "
            f"OutputLock(pathlib.Path({str(output)!r})).acquire(); print('held', flush=True); sys.stdin.read()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"held"
        with pytest.raises(LockHeld) as err:
            OutputLock(output).acquire()
        assert str(output) in str(err.value) and f"pid {holder.pid}" in str(err.value)
        assert err.value.exit_code == 4
    finally:
        holder.communicate(b"", timeout=30)
    lock = OutputLock(output).acquire()  # free again once the holder is gone
    lock.release()
    assert not lock.path.exists()
