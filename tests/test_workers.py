"""vexrun's worker processes start from a forkserver that imported what they run (``vexrun.vmig.workers``)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import ROOT

CHILD = """
from vexrun.vmig.workers import forkserver
ctx = forkserver()
with ctx.Pool(1) as pool:
    found = pool.apply(eval, ("sorted(m for m in __import__('sys').modules if m.startswith('vexrun.vmig.'))",))
    frozen = pool.apply(eval, ("__import__('gc').get_freeze_count()",))
print("vexrun.vmig.reader" in found, "vexrun.vmig.encproc" in found, "vexrun.vmig.scan" in found, frozen > 10000)
"""


def test_a_worker_starts_with_the_readers_and_writers_modules_imported() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=ROOT)
    # and with what the server imported frozen (gc.freeze): a worker's collections leave those pages shared
    assert out.stdout.split() == ["True", "True", "True", "True"], out.stdout + out.stderr


RELEASE = """
import multiprocessing.forkserver as fs, os, sys, time
from vexrun.procread import ProcessReader
from vexrun.vmig.workers import forkserver, release
path = sys.argv[1]
batches = sum(1 for _ in ProcessReader(path, batch_size=100, jobs=2))
stopped = fs._forkserver._forkserver_pid is None
# a worker still alive keeps the server (it reports its exit code through it)
ctx = forkserver()
p = ctx.Process(target=time.sleep, args=(1.0,))
p.start()
pid = fs._forkserver._forkserver_pid
release()
kept = fs._forkserver._forkserver_pid == pid
p.join()
print(batches, stopped, kept, p.exitcode)
"""


def test_the_forkserver_stops_when_a_file_is_read_and_no_worker_is_left(tmp_path: Path) -> None:
    """Read to its end, a ``.vmig.jsonl`` source leaves no idle forkserver behind (the run's end does not carry
    it); a worker still alive keeps it, and its exit code still comes back."""
    import numpy as np

    from vexrun.vmig import Record, VmigWriter

    path = tmp_path / "in.vmig.jsonl"
    with VmigWriter(path) as w:
        for i in range(1000):
            w.write(Record(id=f"m{i}", text="x" * 200), np.full(8, i, dtype=np.float32))
    out = subprocess.run(
        [sys.executable, "-c", RELEASE, str(path)], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.split() == ["10", "True", "True", "0"], out.stdout + out.stderr
