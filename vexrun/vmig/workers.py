"""The context vexrun's worker processes start from: a forkserver that has imported what they run.

Reader workers (:mod:`vexrun.procread`), the ``.vmig.jsonl`` writer process (:mod:`vexrun.vmig.encproc`) and
``validate``'s scanners (:mod:`vexrun.vmig.scan`) each imported numpy, msgspec and vexrun's reader after they
were forked, 0.12-0.15 CPU-s apiece. Forked from a server that imported them once, they start with them: two
reader workers over 100k records used 3.14-3.26 CPU-s instead of 3.35-3.38. ``__main__`` stays first, as
multiprocessing's own default has it (the forkserver imports the main script once, not each child). Last, the
server freezes what it imported (:mod:`vexrun.vmig.forkfreeze`): a reader worker's own collections then leave
those pages shared, and each reader of a 1M-record import held 18-24 MB of private memory instead of 29.
"""

from __future__ import annotations

import multiprocessing
from multiprocessing.context import ForkServerContext

__all__ = ["PRELOAD", "forkserver", "release"]

#: imported by the forkserver before it forks the first worker (names only: nothing is imported here)
PRELOAD = [
    "__main__",
    "vexrun.procread",
    "vexrun.vmig.reader",
    "vexrun.vmig.encproc",
    "vexrun.vmig.scan",
    "vexrun.vmig.forkfreeze",
]


def forkserver() -> ForkServerContext:
    """The ``forkserver`` context, with :data:`PRELOAD` (it takes effect when the server starts, the first time a
    worker is started in this process)."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def release() -> None:
    """Stop the forkserver when no process started from it is alive (a ``.vmig.jsonl`` source read to its end):
    the run's end (an import's compaction and index builds, its verification) then goes on without an idle server
    of 17-23 MB (PSS), which was part of a 1M-record LanceDB import's peak. The next worker starts a new one.
    Uses multiprocessing's own stop (``ForkServer._stop``, what its tests call); nothing happens where it has
    none. multiprocessing's resource tracker stays: it unregisters the queues' semaphores when they are freed."""
    from multiprocessing import active_children
    from multiprocessing import forkserver as fs

    server = getattr(fs, "_forkserver", None)
    stop = getattr(server, "_stop", None)
    if stop is None or getattr(server, "_forkserver_pid", None) is None or active_children():
        return
    stop()
