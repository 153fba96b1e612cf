"""vexrun's worker processes start from a forkserver that imported what they run (``vexrun.vmig.workers``)."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT

CHILD = """
from vexrun.vmig.workers import forkserver
ctx = forkserver()
with ctx.Pool(1) as pool:
    found = pool.apply(eval, ("sorted(m for m in __import__('sys').modules if m.startswith('vexrun.vmig.'))",))
print("vexrun.vmig.reader" in found, "vexrun.vmig.encproc" in found, "vexrun.vmig.scan" in found)
"""


def test_a_worker_starts_with_the_readers_and_writers_modules_imported() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["True", "True", "True"], out.stdout + out.stderr
