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


HOLD = "import time\nb = bytearray({mb} << 20)\nb[::4096] = b'x' * len(b[::4096])\ntime.sleep({s})\n"


def test_peak_counts_a_child_process() -> None:
    script = f"import subprocess, sys\nsubprocess.run([sys.executable, '-c', {HOLD.format(mb=200, s=0.5)!r}])\n"
    m = measure([sys.executable, "-c", script])
    assert m.code == 0, m.err
    assert 200 <= m.rss_mb < 260, m.rss_mb


def test_pages_shared_by_forked_children_count_once() -> None:
    script = textwrap.dedent("""
        import os, time
        b = bytearray(150 << 20)
        b[::4096] = b"x" * len(b[::4096])
        kids = [os.fork() for _ in range(2)]
        if 0 in kids:
            time.sleep(0.6)
            os._exit(0)
        for k in kids:
            os.waitpid(k, 0)
    """)
    m = measure([sys.executable, "-c", script])
    assert m.code == 0, m.err
    # three processes each map the 150 MB: counted by resident size that would be 450 MB and more
    assert 150 <= m.rss_mb < 225, m.rss_mb


def test_a_later_higher_peak_is_found_and_a_steady_process_is_not_walked_at_every_sample() -> None:
    script = textwrap.dedent("""
        import time
        b = bytearray(100 << 20); b[::4096] = b"x" * len(b[::4096]); time.sleep(0.6)
        del b
        time.sleep(0.3)
        b = bytearray(180 << 20); b[::4096] = b"x" * len(b[::4096]); time.sleep(2.5)
    """)
    m = measure([sys.executable, "-c", script])
    assert m.code == 0, m.err
    assert 180 <= m.rss_mb < 230, m.rss_mb
    assert m.samples >= 40, m.samples
    # PSS is read while the total could pass the peak (start, the two allocations), not in the steady parts: the
    # 3.4 s of sleeps are ~68 samples on a quiet machine, of which one in ten reads. Start-up and the allocations
    # take longer on a busy machine (every sample of them may read), so the bound is on the samples saved.
    assert m.pss_reads <= m.samples - 30, (m.pss_reads, m.samples)
