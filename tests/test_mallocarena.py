"""The malloc arena cap a LanceDB run sets (``vexrun.mallocarena``): counted in glibc's own report
(``malloc_info``) after eight threads allocated, each in a fresh process."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

# Eight threads allocate and hold small blocks (each thread that allocates gets an arena of its own, up to
# glibc's cap), then glibc's XML report of its arenas is counted.
_COUNT = r"""
import ctypes, re, sys, tempfile, threading
setup = sys.argv[1]
if setup == "limit":
    from vexrun.mallocarena import limit_arenas
    print("cap", limit_arenas())
elif setup == "lancedb":
    from vexrun.connectors.lancedb.client import sdk
    sdk()
libc = ctypes.CDLL(None)
ready, go = threading.Barrier(9), threading.Event()
def work():
    keep = [b"x" * 2000 for _ in range(500)]
    ready.wait()
    go.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
ready.wait()
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile() as f:
    fp = ctypes.c_void_p(libc.fopen(f.name.encode(), b"w"))
    libc.malloc_info(0, fp)
    libc.fclose(fp)
    report = open(f.name).read()
go.set()
for t in threads:
    t.join()
print("arenas", len(re.findall(r"<heap nr=", report)))
"""

GLIBC = platform.libc_ver()[0] == "glibc"


def _run(setup: str, **env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    out = subprocess.run(
        [sys.executable, "-c", _COUNT, setup], capture_output=True, text=True, env={**base, **env}, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines())


def _cap() -> int:
    return max(1, (os.cpu_count() or 1) // 2)


def test_the_cap_holds_where_glibc_would_give_each_thread_an_arena() -> None:
    if not GLIBC:  # another libc: nothing is done
        assert _run("limit")["cap"] == "None"
        return
    assert int(_run("none")["arenas"]) > _cap()  # the default: the threads got arenas of their own
    got = _run("limit")
    assert got["cap"] == str(_cap())
    assert int(got["arenas"]) <= _cap()


def test_opening_lancedb_caps_the_arenas() -> None:
    arenas = int(_run("lancedb")["arenas"])
    assert arenas <= _cap() if GLIBC else arenas >= 0


def test_the_users_setting_wins_and_other_libcs_are_left_alone() -> None:
    got = _run("limit", MALLOC_ARENA_MAX="3")
    assert got["cap"] == "None"
    if GLIBC:
        assert int(got["arenas"]) == 3
