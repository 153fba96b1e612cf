"""Executors: what runs the plan's per-batch stages. The runner owns the sources, the sinks and the checkpoint;
an executor only turns a batch from a source into the batch the sinks write, through the compiled stages.

``run.executor: local`` (the default) runs them in the runner's process, one after the other. A partitioned
executor (``ray``, :mod:`vexrun.scaleout`) receives the same stage specs — they and the built, unopened stages
pickle — runs whole partitions in its workers instead of single batches (its ``run`` replaces the runner's batch
loop, ``driver_stages`` says which stages the runner opens in its own process), and must give the same results.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from .errors import UsageError
from .stages.base import Stage, StageResult
from .vmig.batch import Batch

__all__ = ["EXECUTORS", "Executor", "LocalExecutor", "executor_for"]


class Executor(Protocol):
    name: str

    def process(self, stages: Sequence[Stage], batch: Batch, index: int) -> list[StageResult]:
        """Run ``batch`` (the ``index``-th of the run, from 1) through ``stages`` in order: one result per stage,
        each stage fed the previous stage's batch."""
        ...


class LocalExecutor:
    """Every stage in this process, in plan order."""

    name = "local"

    def process(self, stages: Sequence[Stage], batch: Batch, index: int) -> list[StageResult]:
        from .batchflow import execute

        return execute(stages, batch)


#: name → "module:Class" (imported when used: Ray only for ``ray``)
EXECUTORS: dict[str, str] = {"local": "vexrun.executor:LocalExecutor", "ray": "vexrun.scaleout.driver:RayExecutor"}


def executor_for(name: str) -> Executor:
    import importlib

    try:
        module, _, cls = EXECUTORS[name].partition(":")
    except KeyError:
        raise UsageError(f"unknown executor '{name}' (known: {', '.join(sorted(EXECUTORS))})") from None
    executor: Executor = getattr(importlib.import_module(module), cls)()
    return executor
