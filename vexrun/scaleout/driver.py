"""The driver of ``run.executor: ray``: partitions the sources, hands them to worker actors, commits each
partition's cursor after its batch was acknowledged, and runs the global stages and the one-writer targets
over the partitions in source order (see :mod:`vexrun.scaleout`).

Resume rule, as the local executor's: one checkpoint row, committed after every acknowledged batch, holds
every partition's cursor and spool length, the ordered replay's position, the counts, and the states of the
stages and targets the driver runs. A killed driver, then the same command, truncates each spool to its
committed length, replays what was spooled and not replayed, and sends only the unfinished partitions (from
their cursors) to the workers. Record ids are deterministic and writes are upserts, so a batch written twice
(by a worker killed before its acknowledgement was committed) changes nothing; embeddings and LLM answers go
through the work dir's content-addressed caches, so none is computed twice.
"""

from __future__ import annotations

import os
import pickle
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..batchflow import BatchDone, execute, merge_edges, prepare_args, write_sink
from ..build import close_quietly
from ..errors import UsageError, VexrunError
from ..stages.base import Stage, StageResult, StageSpec
from ..vmig.batch import Batch
from .layout import PER_WORKER, Layout, Partition, changes_records, plan_partitions, split_stages, worker_sink
from .runtime import started as runtime_started
from .worker import WorkerJob

if TYPE_CHECKING:
    from ..checkpoint import Checkpoint, Progress
    from ..runner import Runner

__all__ = ["RayExecutor"]

#: batches a worker may run ahead of the driver, per partition (Ray's streaming-generator backpressure)
AHEAD = 4


class RayExecutor:
    """``run.executor: ray``. The runner builds it, opens in its own process only the stages
    :meth:`driver_stages` names, and calls :meth:`run` instead of its own batch loop."""

    name = "ray"
    partitioned = True

    def process(self, stages: Sequence[Stage], batch: Batch, index: int) -> list[StageResult]:
        raise UsageError("the ray executor runs whole partitions, not single batches")

    @staticmethod
    def driver_stages(batch_stages: list[StageSpec]) -> list[StageSpec]:
        """The stages that run in the driver, in order: the first global stage and every stage after it."""
        return split_stages(batch_stages)[1]

    def run(self, runner: Runner, ck: Checkpoint, progress: Progress) -> str:
        from . import runtime

        state = Path(runner.state.path)
        ray = runtime.connect(runner.doc.model.run.ray, runner.say, state)
        try:
            return _Drive(runner, ck, progress, ray).loop()
        finally:
            runtime.disconnect(state)


class _Drive:
    def __init__(self, runner: Runner, ck: Checkpoint, progress: Progress, ray: Any) -> None:
        from . import runtime

        self.r, self.ck, self.progress, self.ray = runner, ck, progress, ray
        plan = runner.plan
        settings = plan.doc.model.run.ray
        self.prefix, self.suffix = split_stages(plan.role("batch"))
        sinks = runner.parts.sinks
        rewrite = changes_records(self.suffix)
        self.wsinks = [] if rewrite else [(s, k) for s, k in sinks if worker_sink(k)]
        titles = {s.title for s, _ in self.wsinks}
        self.dsinks = [(s, k) for s, k in sinks if s.title not in titles]
        self.spooling = bool(self.suffix or self.dsinks)
        self.cpus = runtime.cpus()
        self.workers_n = settings.workers or self.cpus
        saved = progress.stage_state.get("ray")
        if saved is None and progress.batches:
            raise UsageError(
                "this run was started by the local executor: resume it with run.executor: local, "
                "or start over with --fresh"
            )
        per_source = settings.partitions or PER_WORKER * self.workers_n
        self.layout = (
            Layout.from_json(saved)
            if saved
            else Layout.new(
                plan_partitions(runner.parts.sources, per_source, plan.doc.model.run.batch_size, self.workers_n)
            )
        )
        self.identities = [source.identity() for _, source in runner.parts.sources]
        # the workers read the sources: an embedded store (Qdrant's local mode, Milvus Lite) admits one process
        close_quietly(*(source for _, source in runner.parts.sources))
        self.spool_dir = Path(runner.state.path) / "ray-spool"
        self.prepared: set[str] = set()
        self.figures: dict[str, dict[str, Any]] = {}

    # -- the loop ------------------------------------------------------------------------------------
    def loop(self) -> str:
        ray, r, layout = self.ray, self.r, self.layout
        self._open_spools()
        n_parts = len(layout.partitions)
        left = [p for p in layout.partitions if p.key not in layout.done]
        r.say(
            f"executor ray: {n_parts} partition(s), {len(left)} to run, on {self.workers_n} worker(s)"
            + (f"; {', '.join(s.title for s, _ in self.dsinks)} written in source order" if self.dsinks else "")
        )
        from .runtime import actor_classes

        worker_cls, coord_cls, budget_cls = actor_classes()
        coord = coord_cls.remote()
        self.coord = coord
        job = self._job()
        job.budget = budget_cls.remote()
        share = self.r.doc.model.run.ray.worker_cpus or self.cpus / self.workers_n
        if share * self.workers_n > self.cpus + 1e-9:
            raise UsageError(
                f"run.ray: {self.workers_n} workers of {share:g} CPUs need {share * self.workers_n:g} CPUs; "
                f"the cluster has {self.cpus}"
            )
        idle = [
            worker_cls.options(num_cpus=share).remote(job, coord, k, max(1, int(share)))
            for k in range(min(self.workers_n, max(1, len(left))))
        ]
        self.actors = list(idle)
        if runtime_started():
            from .runtime import remember

            ray.get([w.ready.remote() for w in idle])  # their processes exist: record them too
            remember(Path(r.state.path))
        todo = deque(left)
        live: dict[Any, tuple[Any, Partition]] = {}
        stop = r._stop
        with stop.installed(), r.reporter.live(r.meter, self.progress.counts["source"].get("read", 0), 0, None):
            if self._replay() == "stop":
                return "too-many-rejects"
            while todo or live:
                while idle and todo:
                    w, p = idle.pop(), todo.popleft()
                    gen = w.run.options(num_returns="streaming", _generator_backpressure_num_objects=AHEAD).remote(
                        p.key, p.source, layout.cursors[p.key]
                    )
                    live[gen] = (w, p)
                if stop.signum:
                    return "interrupted"
                ready, _ = ray.wait(list(live), num_returns=1, timeout=0.5)
                if not ready:
                    continue
                gen = ready[0]
                w, p = live[gen]
                try:
                    ref = next(gen)
                except StopIteration:
                    del live[gen]
                    idle.append(w)
                    layout.done.add(p.key)
                    self._commit()
                    if self._replay() == "stop":
                        return "too-many-rejects"
                    continue
                if self._message(p, _unwrap(ray, ref)) == "stop":
                    return "too-many-rejects"
        ray.get([w.close.remote() for w in self.actors])
        return "completed"

    def _message(self, p: Partition, msg: tuple[Any, ...]) -> str | None:
        kind = msg[0]
        if kind == "error":
            raise msg[1]
        if kind == "prepare":
            for title, dims in msg[1].items():
                self._prepare(title, dims)
                self.coord.mark.remote(title)
            return None
        _, after, done, worker, figures = msg
        if figures:
            self.figures[worker] = figures
        if self.spooling:
            blob = pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL)
            with open(self._spool(p), "ab") as fh:
                fh.write(len(blob).to_bytes(8, "little") + blob)
            self.layout.spool[p.key] += 8 + len(blob)
        else:
            self._take(done, p)
        self.layout.cursors[p.key] = after
        self._commit()
        return "stop" if self._too_many() else None

    # -- the ordered part: global stages, one-writer targets ---------------------------------------
    def _replay(self) -> str | None:
        """Run the global stages and write the one-writer targets over the done partitions, in order."""
        layout = self.layout
        while layout.replay[0] < len(layout.partitions):
            p = layout.partitions[layout.replay[0]]
            if p.key not in layout.done:
                return None
            if self.spooling and layout.spool.get(p.key, 0) == 0:
                self._spool(p).unlink(missing_ok=True)  # the partition gave no batch: nothing was spooled
            elif self.spooling:
                path = self._spool(p)
                with open(path, "rb") as fh:
                    fh.seek(layout.replay[1])
                    while fh.tell() < layout.spool[p.key]:
                        done = pickle.loads(fh.read(int.from_bytes(fh.read(8), "little")))
                        self._ordered(done, p)
                        layout.replay = (layout.replay[0], fh.tell())
                        self._commit()
                        if self._too_many():
                            return "stop"
                path.unlink(missing_ok=True)
            layout.replay = (layout.replay[0] + 1, 0)
            self._commit()
        return None

    def _ordered(self, done: BatchDone, p: Partition) -> None:
        r = self.r
        tail = execute(r.timed, done.out) if self.suffix else []
        own = {(e.src, e.dst, e.type) for e in done.edges}
        edges = merge_edges(done.edges, tail)
        done.results = [*done.results, *tail]
        if tail:
            done.out = tail[-1].batch
        done.edges = edges
        for spec, sink in self.dsinks:
            with r.reporter.clock.time(spec.title):
                done.writes.append(write_sink(spec, sink, done.out, edges, self._preparer(spec, sink)))
        derived = [e for e in edges if (e.src, e.dst, e.type) not in own]
        if derived:
            for spec, sink in self.wsinks:
                write_sink(spec, sink, Batch(records=[]), derived)
        self._take(done, p)
        for stage in r.stages:
            self.progress.stage_state[stage.name] = stage.state()
        self.progress.sink_state = {s.title: k.state() for s, k in self.dsinks}

    def _preparer(self, spec: StageSpec, sink: Any) -> Any:
        def prepare(batch: Batch) -> None:
            if spec.title not in self.prepared and len(batch):
                self._prepare(spec.title, prepare_args(batch))

        return prepare

    def _prepare(self, title: str, dims: tuple[int | None, str | None]) -> None:
        if title in self.prepared:
            return
        sink = next(k for s, k in self.r.parts.sinks if s.title == title)
        sink.prepare(*dims)
        self.prepared.add(title)

    # -- bookkeeping -------------------------------------------------------------------------------
    def _take(self, done: BatchDone, p: Partition) -> None:
        r, progress = self.r, self.progress
        spec = r.parts.sources[p.source][0]
        r.take(done, self.identities[p.source], spec.title, progress)
        for key, value in _summed(self.figures).items():
            progress.counts[key] = value
        if r.events is not None:
            r.events.emit("batch", run=progress.run_id, batch=progress.batches, records=len(done.out), partition=p.name)
        r.reporter.update(progress.counts, progress.batches, p.source, None)

    def _too_many(self) -> bool:
        limit = self.r.doc.model.run.max_rejects
        return limit is not None and self.progress.counts.get("rejected", 0) > limit

    def _commit(self) -> None:
        self.progress.stage_state["ray"] = self.layout.to_json()
        self.progress.stage_state["ray_figures"] = self.figures
        self.ck.commit(self.progress)

    def _spool(self, p: Partition) -> Path:
        import blake3

        return self.spool_dir / f"{blake3.blake3(p.key.encode()).hexdigest()[:16]}.spool"

    def _open_spools(self) -> None:
        """Cut every spool back to its committed length (a killed run may have appended after its commit)."""
        self.figures = dict(self.progress.stage_state.get("ray_figures") or {})
        if not self.spooling:
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        for p in self.layout.partitions:
            path = self._spool(p)
            if path.exists():
                os.truncate(path, self.layout.spool[p.key])

    def _job(self) -> WorkerJob:
        r = self.r
        assert r.ctx is not None
        states = {s.title: k.state() for s, k in self.wsinks}
        return WorkerJob(
            sources=[s for s, _ in r.parts.sources],
            stages=self.prefix,
            sinks=[s for s, _ in self.wsinks],
            sink_states=states,
            ctx=r.ctx,
            batch_size=r.doc.model.run.batch_size,
        )


def _unwrap(ray: Any, ref: Any) -> tuple[Any, ...]:
    """The worker's message; a worker that crashed becomes one line."""
    try:
        msg: tuple[Any, ...] = ray.get(ref)
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause
        if isinstance(cause, VexrunError):
            raise cause from None
        raise VexrunError(f"a Ray worker failed: {type(cause).__name__}: {cause}") from None
    except ray.exceptions.RayActorError as exc:
        raise VexrunError(f"a Ray worker died: {str(exc).splitlines()[0]}") from None
    return msg


def _summed(figures: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The stages' figures of every worker added up (each worker's are its own running totals)."""
    out: dict[str, Any] = {}
    for per_part in figures.values():
        for key, value in per_part.items():
            out[key] = _add(out.get(key), value)
    return out


def _add(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, dict) and isinstance(b, dict):
        return {k: _add(a.get(k), b.get(k)) if k in a and k in b else a.get(k, b.get(k)) for k in {*a, *b}}
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return a + b
    return b
