"""Run a command and report its peak RSS, with the processes it starts (reader workers, a forkserver).

Linux carries a process's ``ru_maxrss`` across ``fork``/``exec``: a child started from a big process
(pytest, a benchmark that read a file) reports the parent's size. So the command is started from a small
intermediate Python process, whose children start clean, and ``wait4`` gives the command's own peak. The
memory of the command and all its descendants together (their proportional set sizes, so that libraries
they share count once) is sampled every 50 ms; ``rss_mb`` is the larger of the two, ``own_mb`` the
command's own peak.

A sample reads each process's resident size (``statm``, a counter) and reads its PSS (``smaps_rollup``, a walk of
its page tables) only when the total could exceed the peak seen so far, or every tenth sample. Reading every PSS
at every sample cost 6.7 ms of CPU a sample on a 100k LanceDB import (0.4 CPU-s a run, on a machine of two
cores); now a quarter of that. Measured against unmeasured runs, five interleaved each, the wall time's median
moved by less than the runs' spread either way (3.33 s before, 3.29 s now, 3.28 s unmeasured), and the peak is
the same as with every PSS read at every sample.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["Measured", "cpu_budget", "measure", "tree_cpu_s"]

_RUNNER = r"""
import ctypes, json, os, resource, subprocess, sys, threading, time
PAGE = os.sysconf("SC_PAGE_SIZE")
try:  # PR_SET_CHILD_SUBREAPER: processes the command leaves behind come back to this one, not to init
    subreaper = ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0
except (OSError, AttributeError):
    subreaper = False

ppid_of = {}  # pid -> parent pid, read once per process (a pid gone from /proc is forgotten)
def tree(root):
    kids, seen = {}, set()
    for d in os.listdir("/proc"):
        if d.isdigit():
            pid = int(d)
            seen.add(pid)
            ppid = ppid_of.get(pid)
            if ppid is None:
                try:
                    with open(f"/proc/{d}/stat", "rb") as f:
                        ppid = ppid_of[pid] = int(f.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
            kids.setdefault(ppid, []).append(pid)
    for gone in ppid_of.keys() - seen:
        del ppid_of[gone]
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, ()))
    return out

def resident(pid):
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return None

PF_EXITING = 0x4

# A process exiting (or a zombie) unmaps while it and its siblings are read, at moments that do not add up: a read
# then counts pages another read counts too (a fork's 150 MB counted as 412). Its last reading stands.
def exiting(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0] in (b"Z", b"X", b"x") or bool(int(fields[6]) & PF_EXITING)
    except (OSError, ValueError, IndexError):
        return True

def pss(pid):
    try:  # proportional set size: pages shared between the processes (libraries) count once in all
        with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
            return next(int(ln.split()[1]) * 1024 for ln in f if ln.startswith(b"Pss:"))
    except (OSError, ValueError, IndexError, StopIteration):
        return None

# Reading smaps_rollup walks a process's page tables under its mmap lock: milliseconds each, and it slows the
# process's own page faults. So a process's PSS is read again when the tree's total could be above the peak seen
# so far (a process's PSS grows by at most what its resident size, a counter in statm, grows), at least every
# REFRESH samples (a copy-on-write break after a fork raises PSS with no resident size changing anywhere), and for
# every process when one appears (a fork lowers the others' PSS).
REFRESH = 10
last = {}  # pid -> (pss, resident when it was read, sample number when it was read)
reads = [0]
def tree_pss(root, now):
    pids = [(pid, resident(pid)) for pid in tree(root)]
    pids = [(pid, r) for pid, r in pids if r is not None]
    for gone in last.keys() - {pid for pid, _ in pids}:
        del last[gone]
    def total():
        return sum(last[pid][0] + max(0, r - last[pid][1]) if pid in last else r for pid, r in pids)
    above = total() > peak[0]
    # a process that appeared (a fork) shares pages with the others: their PSS fell without any counter moving,
    # and their last reads would count the shared pages again
    born = any(pid not in last for pid, _ in pids)
    for pid, r in pids:
        seen = last.get(pid)
        if seen is None or born or now - seen[2] >= REFRESH or (above and r != seen[1]):
            if seen is not None and exiting(pid):
                continue
            p_ = pss(pid)
            reads[0] += 1
            last[pid] = (p_ if p_ is not None else r, r, now)
    return total()

t0 = time.perf_counter()
peak = [0]
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
done = threading.Event()
samples = [0]
def sample():
    while not done.is_set():
        peak[0] = max(peak[0], tree_pss(p.pid, samples[0]))
        samples[0] += 1
        done.wait(0.05)
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
with p.stdout, p.stderr:
    chunks = {}
    def drain(name, f):
        chunks[name] = f.read()
    ts = [threading.Thread(target=drain, args=(n, f)) for n, f in (("out", p.stdout), ("err", p.stderr))]
    for t in ts: t.start()
    for t in ts: t.join()
_, status, usage = os.wait4(p.pid, 0)
wall = time.perf_counter() - t0
done.set()
sampler.join()
p.returncode = os.waitstatus_to_exitcode(status)
own = usage.ru_maxrss / 1024
# the command's processes left behind (a forkserver, workers) were handed to this process: reap them, so that
# the CPU time of every process the command started is in RUSAGE_CHILDREN
deadline, reaped_all = time.monotonic() + 5.0, subreaper
while subreaper:
    try:
        if os.waitpid(-1, os.WNOHANG)[0] == 0:
            if time.monotonic() > deadline:
                reaped_all = False
                break
            time.sleep(0.01)
    except ChildProcessError:
        break
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = kids.ru_utime + kids.ru_stime if reaped_all else None
sys.stdout.write(json.dumps({"code": p.returncode, "wall": wall, "cpu_s": cpu,
                             "rss_mb": max(own, peak[0] / 2**20), "own_mb": own,
                             "samples": samples[0], "pss_reads": reads[0],
                             "out": chunks["out"].decode("utf-8", "replace"),
                             "err": chunks["err"].decode("utf-8", "replace")}))
"""


@dataclass
class Measured:
    code: int
    wall: float
    #: peak RSS of the command and the processes it started, together (MB)
    rss_mb: float
    out: str
    err: str
    #: peak RSS of the command alone (MB)
    own_mb: float = 0.0
    #: CPU seconds (user + system) of the command and every process it started, on all cores; None where
    #: they could not all be counted (not Linux, or a process it started outlived it by 5 s)
    cpu_s: float | None = None
    #: memory samples taken (every 50 ms), and how many of them read a process's page tables for its PSS
    samples: int = 0
    pss_reads: int = 0


def measure(cmd: list[str], *, cwd: str | None = None, env: dict[str, str] | None = None) -> Measured:
    """Run ``cmd``; return its exit code, wall time, peak RSS (MB, with its child processes), CPU time and output.
    The disk's write-back is done first (``os.sync``, not timed), so that no step is timed while the gigabytes
    the previous one wrote are still being flushed (the 1M LanceDB bench writes 6.5 GB of floors before its
    import)."""
    if hasattr(os, "sync"):
        os.sync()
    proc = subprocess.run([sys.executable, "-c", _RUNNER, *cmd], capture_output=True, cwd=cwd, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"measuring {cmd[:3]} failed: {proc.stderr.decode(errors='replace')[-500:]}")
    data = json.loads(proc.stdout)
    return Measured(
        data["code"],
        data["wall"],
        data["rss_mb"],
        data["out"],
        data["err"],
        data["own_mb"],
        data["cpu_s"],
        data["samples"],
        data["pss_reads"],
    )


def tree_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) that the process ``pid`` and its descendants have used so far, those that
    exited and were reaped included (a server's finished backends): the difference of two readings is what a
    server did in between. Linux only."""
    tick = os.sysconf("SC_CLK_TCK")
    kids: dict[int, list[int]] = {}
    stats: dict[int, list[bytes]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    fields = f.read().rsplit(b")", 1)[1].split()
            except (OSError, IndexError):
                continue
            stats[int(d)] = fields
            kids.setdefault(int(fields[1]), []).append(int(d))
    total, todo = 0, [pid]
    while todo:
        at = todo.pop()
        mine = stats.get(at)
        if mine is not None:  # utime, stime, cutime, cstime: fields 14-17 of stat, 11-14 after the name
            total += sum(int(x) for x in mine[11:15])
        todo.extend(kids.get(at, ()))
    return total / tick


def cpu_budget(
    floor_s: float, floors_cpu_s: float, target: float, run_cpu_s: float | None, server_cpu_s: float = 0.0
) -> str:
    """What this machine's cores allow a run against its floors, in words for a benchmark's output.

    A run does at least the floors' work (the same parsing, encoding, the server's side), and on ``cores`` cores
    that takes at least ``floors_cpu_s / cores`` seconds even when every part overlaps perfectly: when that is
    above ``target`` times the slower floor (``floor_s``), no run doing the floors' work meets the target here.
    The run's own CPU time (its processes', and the server's when there is one) shows what it adds."""
    cores = os.cpu_count() or 1
    bound = max(floor_s, floors_cpu_s / cores)
    reach = "within reach" if bound <= target * floor_s else "NOT reachable on this machine"
    used = "(not counted)"
    if run_cpu_s is not None:
        used = f"{run_cpu_s + server_cpu_s:.2f} CPU-s"
        if server_cpu_s:
            used += f" ({run_cpu_s:.2f} in vexrun's processes, {server_cpu_s:.2f} in the server's)"
    return (
        f"the floors' work is {floors_cpu_s:.2f} CPU-s: on {cores} core(s) at least {bound:.2f} s = "
        f"{bound / floor_s:.2f}× the slower floor, so the target ({target}×, {target * floor_s:.2f} s) is {reach}; "
        f"the run used {used}"
    )
