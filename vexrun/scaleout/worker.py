"""The worker side of ``run.executor: ray``: an actor that holds the plan's per-batch stages (its embedder,
its LLM clients) and the connections of the targets it writes, and runs partitions from a cursor.

:meth:`PartitionWorker.run` is a streaming generator; what it yields, in order, for each batch:

- ``("prepare", {title: (dims, model)})`` before its first write of a target: the driver prepares the target
  once for the run (creates the table, with ``replace: true`` empties it) and says so through the
  :class:`Coordinator`; the worker then prepares its own connection as a resumed run does (create if missing);
- ``("batch", cursor after the batch, BatchDone, the stages' figures)`` once every target it writes
  acknowledged the batch;
- ``("error", exception)`` for an error the user can act on (one line, no traceback), then it stops.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from ..batchflow import BatchDone, done_batch, execute, prepare_args, write_sink
from ..build import build_sink, build_source, close_quietly, decoded
from ..connectors.base import Sink, Source
from ..errors import VexrunError
from ..stages.base import Stage, StageContext, StageResult, StageSpec, build_stage
from ..vmig.batch import Batch

__all__ = ["Coordinator", "PartitionWorker", "WorkerJob"]


@dataclass
class WorkerJob:
    """Everything a worker builds its parts from (it pickles: specs, settings, the stage context)."""

    sources: list[StageSpec]
    stages: list[StageSpec]
    sinks: list[StageSpec]
    #: each target's state as the driver opened it: a worker's connection opens as a resumed run's would
    sink_states: dict[str, dict[str, Any]]
    ctx: StageContext
    batch_size: int
    #: the run's GlobalBudget actor: every provider key's rate budget, shared by all workers
    budget: Any = None
    stage_states: dict[str, Any] = field(default_factory=dict)


class Coordinator:
    """The targets the driver has prepared for this run (a Ray actor: one per run)."""

    def __init__(self) -> None:
        self.ready: set[str] = set()

    def mark(self, title: str) -> None:
        self.ready.add(title)

    def all_ready(self, titles: list[str]) -> bool:
        return all(t in self.ready for t in titles)


class PartitionWorker:
    """One worker actor: built once, runs partition after partition."""

    def __init__(self, job: WorkerJob, coordinator: Any, index: int = 0, cpus: int | None = None) -> None:
        self.job = job
        self.coord = coordinator
        _pin(index, cpus)
        self.sources: dict[int, Source] = {}
        self.stages: list[Stage] | None = None
        self.sinks: list[tuple[StageSpec, Sink]] = []
        self.prepared: set[str] = set()
        #: names this worker's running totals (the LLM usage) apart from every other worker's, resumed runs' too
        self.wid = uuid.uuid4().hex

    def _setup(self) -> list[Stage]:
        if self.stages is None:
            job = self.job
            if job.budget is not None:
                from .budget import install

                install(job.budget)
            stages = [build_stage(spec, job.ctx) for spec in job.stages]
            for stage in stages:
                stage.open(job.stage_states.get(stage.name))
            self.stages = stages
            assert job.ctx.run is not None
            # opened once the driver prepared them (a connection that looked at the store before would not
            # see the table the driver created)
            self.sinks = [(spec, build_sink(spec, job.ctx.run)) for spec in job.sinks]
        return self.stages

    def _source(self, index: int) -> Source:
        if index not in self.sources:
            assert self.job.ctx.run is not None
            source = build_source(self.job.sources[index], self.job.ctx.run)
            source.open()
            self.sources[index] = source
        return self.sources[index]

    def run(self, key: str, index: int, cursor: dict[str, Any] | None) -> Iterator[tuple[Any, ...]]:
        """The batches of one partition from ``cursor`` (see the module docstring for what is yielded)."""
        from ..procread import _portable

        try:
            stages = self._setup()
            spec = self.job.sources[index]
            batches = decoded(spec, self._source(index).batches(cursor, self.job.batch_size))
            for batch, after in batches:
                done = done_batch(batch, execute(stages, batch))
                wanted = {s.title: done.out for s, _ in self.sinks if s.title not in self.prepared}
                if wanted and len(done.out):
                    dims = {t: prepare_args(b) for t, b in wanted.items()}
                    yield ("prepare", dims)
                    self._prepare(dims)
                if len(done.out):
                    for sink_spec, sink in self.sinks:
                        done.writes.append(write_sink(sink_spec, sink, done.out, done.edges))
                yield ("batch", after, _slim(done), self.wid, _figures(done.results))
        except VexrunError as exc:
            yield ("error", _portable(exc))

    def _prepare(self, dims: dict[str, tuple[int | None, str | None]]) -> None:
        """Once the driver prepared the targets: prepare this worker's connections (create if missing)."""
        import ray

        while not ray.get(self.coord.all_ready.remote(list(dims))):
            time.sleep(0.02)
        for spec, sink in self.sinks:
            if spec.title in dims:
                sink.open(self.job.sink_states.get(spec.title, {}))
                sink.prepare(*dims[spec.title])
                self.prepared.add(spec.title)

    def ready(self) -> bool:
        return True

    def close(self) -> None:
        opened = [s for spec, s in self.sinks if spec.title in self.prepared]
        close_quietly(*(self.stages or []), *self.sources.values(), *opened, self.job.ctx)


def _pin(index: int, cpus: int | None) -> None:
    """Run this worker on its share of the machine's cores (worker ``index`` of those that share it), so that
    models sized by the usable cores (torch's threads) use its share and the workers do not fight over cores."""
    try:
        usable = sorted(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return
    if cpus is None or cpus >= len(usable):
        return
    mine = {usable[(index * cpus + j) % len(usable)] for j in range(cpus)}
    try:
        os.sched_setaffinity(0, mine)
    except OSError:
        pass


def _slim(done: BatchDone) -> BatchDone:
    """The outcome without the stages' intermediate batches (the last one is ``out``)."""
    empty = Batch(records=[])
    done.results = [StageResult(empty, r.counts, r.figures, r.rejected, r.edges) for r in done.results]
    return done


def _figures(results: list[StageResult]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for result in results:
        out.update(result.figures)
    return out
