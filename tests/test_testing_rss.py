"""``vexrun.testing.rss.measure``: the benches' CPU figure counts every process a command started, also those
it left behind (as a forkserver and its workers)."""

from __future__ import annotations

import sys
import textwrap

from vexrun.testing.rss import measure

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}:\n    pass\n"


def test_cpu_counts_the_command_and_the_processes_it_leaves_behind() -> None:
    script = textwrap.dedent(f"""
        import subprocess, sys
        subprocess.Popen([sys.executable, "-c", {BURN.format(s=0.6)!r}])  # never waited for: outlives its parent
        exec({BURN.format(s=0.3)!r})
    """)
    m = measure([sys.executable, "-c", script])
    assert m.code == 0, m.err
    assert m.cpu_s is not None
    # 0.3 s of the command, 0.6 s of the orphan, plus two interpreters' start
    assert 0.85 <= m.cpu_s < 3.0, m.cpu_s
    assert m.wall < m.cpu_s + 1.0


def test_cpu_of_a_quiet_command_is_small() -> None:
    m = measure([sys.executable, "-c", "import time; time.sleep(0.5)"])
    assert m.code == 0
    assert m.cpu_s is not None and m.cpu_s < 0.4, m.cpu_s
    assert m.wall >= 0.5


def test_tree_cpu_counts_children_that_exited() -> None:
    import os
    import subprocess

    from vexrun.testing.rss import tree_cpu_s

    before = tree_cpu_s(os.getpid())
    subprocess.run([sys.executable, "-c", BURN.format(s=0.4)], check=True)
    after = tree_cpu_s(os.getpid())
    assert 0.35 <= after - before < 2.0, after - before
