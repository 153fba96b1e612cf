"""Floors the benchmarks share, as scripts to run in a process of their own (``vexrun.testing.rss.measure``).

``VMIG_WRITE``: vexrun's ``.vmig.jsonl`` writer, in one process, writing ``n`` synthetic records of ``dims``
dimensions (made before the clock starts) to a file: ``python -c VMIG_WRITE <path> <n> <dims>`` prints
``{"n", "s", "cpu"}``. An export to a ``.vmig.jsonl`` file cannot be faster than this; the benches judge an
export against the slower of it and the store's own read floor.
"""

from __future__ import annotations

__all__ = ["VMIG_WRITE"]

VMIG_WRITE = """
import json, sys, time
from vexrun.testing.data import synthetic_batches
from vexrun.vmig import VmigWriter
batches = list(synthetic_batches(int(sys.argv[2]), dims=int(sys.argv[3]), seed=7))
t, c = time.perf_counter(), time.process_time()
with VmigWriter(sys.argv[1], source_store="synthetic") as w:
    for b in batches:
        w.write_batch(b)
print(json.dumps({"n": sum(len(b) for b in batches), "s": time.perf_counter() - t, "cpu": time.process_time() - c}))
"""
