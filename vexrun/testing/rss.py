"""Run a command and report its own peak RSS.

Linux carries a process's ``ru_maxrss`` across ``fork``/``exec``: a child started from a big process
(pytest, a benchmark that read a file) reports the parent's size. So the command is started from a small
intermediate Python process, whose children start clean, and ``wait4`` gives the command's own peak.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Measured", "measure"]

_RUNNER = r"""
import json, os, subprocess, sys, time
t0 = time.perf_counter()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
with p.stdout, p.stderr:
    import threading
    chunks = {}
    def drain(name, f):
        chunks[name] = f.read()
    ts = [threading.Thread(target=drain, args=(n, f)) for n, f in (("out", p.stdout), ("err", p.stderr))]
    for t in ts: t.start()
    for t in ts: t.join()
_, status, usage = os.wait4(p.pid, 0)
p.returncode = os.waitstatus_to_exitcode(status)
sys.stdout.write(json.dumps({"code": p.returncode, "wall": time.perf_counter() - t0,
                             "rss_mb": usage.ru_maxrss / 1024,
                             "out": chunks["out"].decode("utf-8", "replace"),
                             "err": chunks["err"].decode("utf-8", "replace")}))
"""


@dataclass
class Measured:
    code: int
    wall: float
    rss_mb: float
    out: str
    err: str


def measure(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd``; return its exit code, wall time, own peak RSS (MB) and output."""
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *cmd], capture_output=True, cwd=cwd, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {cmd[:3]} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    data = json.loads(proc.stdout)
    return Measured(data["code"], data["wall"], data["rss_mb"], data["out"], data["err"])
