"""Run a compiled plan: stream batches from its sources through its stages to its sinks, with checkpoints.

The plan is what runs: the runner builds the plan's sources, stages and sinks from their specs and loops
over exactly them. The rules that make a crash cost nothing but the time to re-run the same command:

- a batch is committed (cursor advanced, counts, stage and sink states) in ONE transaction, only after
  every sink acknowledged it;
- record ids are deterministic and sink writes are upserts (file sinks truncate back to their committed
  length), so re-sending the batch in flight changes nothing;
- embeddings go through the content-addressed cache, committed as soon as they are computed;
- a checkpoint made under another plan is never reused silently (:func:`vexrun.checkpoint.decide`).
"""

from __future__ import annotations

import os
import shlex
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import orjson

from .batchflow import BatchDone, prepare_args
from .batchloop import BatchLoop
from .build import Connectors, build_connectors, build_stage, close_quietly, run_context, stage_context
from .checkpoint import Checkpoint, EventLog, Progress, StateDir
from .connectors.base import Sink
from .errors import Interrupted, VexrunError
from .executor import Executor, executor_for
from .planner import Plan
from .progress import RunProgress, SourceMeter
from .rejects import RejectsFile
from .runlife import begin, empty_reason, stopped
from .stages.base import Rejected, Stage, StageContext, StageResult, tally
from .summary import RunSummary
from .verify import Ledger, open_ledger, verify_targets
from .vmig.batch import Batch

__all__ = ["RunOptions", "RunSummary", "Runner"]


@dataclass
class RunOptions:
    env_file: str | None = None
    fresh: bool = False
    #: "auto" (bars on a terminal, log lines otherwise), "bar", "log" or "none"
    progress: str = "auto"
    #: how the user invoked us, for the "resume with" hint
    command: str | None = None
    #: re-feed the records a completed run rejected after its source (extract/embed/store failures)
    retry_rejected: bool = False
    #: what runs the per-batch stages (default: the recipe's run.executor)
    executor: Executor | None = None


class _Stop:
    """First SIGINT/SIGTERM: finish the batch in flight, commit, exit. Second: exit at once."""

    def __init__(self, say: Any) -> None:
        self.signum = 0
        self.say = say

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum:
            os._exit(128 + signum)
        self.signum = signum
        self.say("Stopping after the batch in flight (press Ctrl-C again to stop at once)...")

    @contextmanager
    def installed(self) -> Iterator[_Stop]:
        main = threading.current_thread() is threading.main_thread()
        old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


class Runner:
    def __init__(self, plan: Plan, options: RunOptions | None = None) -> None:
        self.plan = plan
        self.doc = plan.doc
        self.options = options or RunOptions()
        self.executor = self.options.executor or executor_for(self.doc.model.run.executor)
        self.state = StateDir(plan.state_dir)
        self.reporter = RunProgress(self.options.progress)
        self.say = self.reporter.say
        self.parts = Connectors()
        self.ctx: StageContext | None = None
        self.stages: list[Stage] = []
        self.publish: list[Stage] = []
        self.events: EventLog | None = None
        self.rejects: RejectsFile | None = None
        self.ledger: Ledger | None = None
        self.meter = SourceMeter()
        self.timed: list[Any] = []
        #: the run once it started, until its end is recorded (an exception before then records it failed)
        self.progress: Progress | None = None
        self._stop = _Stop(self.say)

    def resume_command(self) -> str:
        if self.options.command:
            return self.options.command
        parts = ["vexrun", "run", self.doc.display]
        if self.options.env_file:
            parts += ["--env-file", self.options.env_file]
        return " ".join(shlex.quote(p) for p in parts)

    # -- set-up ------------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        self.state.ensure()
        with self.state.lock(self.resume_command()):
            ck = self.state.open_checkpoint()
            try:
                return self._run_locked(ck, t0)
            except BaseException as exc:
                if self.progress is not None:
                    stopped(ck, self.state, self.events, self.progress.run_id, exc)
                raise
            finally:
                self._close()
                ck.close()

    def _close(self) -> None:
        self.parts.close()
        close_quietly(*self.stages, *self.publish, self.ctx, self.events, self.rejects, self.ledger)

    def _open(self, progress: Progress, resumed: bool) -> None:
        """Build and open the sources, sinks and stages of the plan, from the checkpoint when resuming."""
        rc = run_context(self.plan, self.say)
        self.parts = build_connectors(self.plan, rc, progress.stage_state.get("retry_file"))
        self.ctx = stage_context(
            self.plan, rc, log=self.say, resume=self.resume_command(), retry=self.options.retry_rejected
        )
        for _, source in self.parts.sources:
            source.open()
        sources = self.parts.sources
        if not getattr(self.executor, "partitioned", False) and progress.source_index < len(sources):
            # the first batches are read while the sinks open (their SDKs' imports take up to a second)
            sources[progress.source_index][1].prime(progress.cursor, self.doc.model.run.batch_size)
        for spec, sink in self.parts.sinks:
            sink.open(progress.sink_state.get(spec.title) if resumed else None)
        specs = self.plan.role("batch")
        if getattr(self.executor, "partitioned", False):  # its workers open the others
            specs = self.executor.driver_stages(specs)  # type: ignore[attr-defined]
        for spec in specs:
            stage = build_stage(spec, self.ctx)
            self.stages.append(stage)
            stage.open(progress.stage_state.get(spec.key, {}) if resumed else None)
        self.timed = self.reporter.clock.wrap(self.stages, [spec.title for spec in specs])
        self.publish = [build_stage(spec, self.ctx) for spec in self.plan.role("publish")]

    # -- the run -----------------------------------------------------------------------------------
    def _run_locked(self, ck: Checkpoint, t0: float) -> RunSummary:
        o = self.options
        progress, resumed_at = begin(
            ck,
            self.plan,
            self.state,
            fresh=o.fresh,
            retry_rejected=o.retry_rejected,
            command=self.resume_command(),
            say=self.say,
        )
        self.progress = progress
        self.state.write_plan(orjson.dumps(self.plan.to_json(), option=orjson.OPT_INDENT_2))
        self.events = EventLog(self.state.events_path)
        retry_file = progress.stage_state.get("retry_file")
        fresh_rejects = resumed_at is None and not retry_file
        self.rejects = RejectsFile(self.state.rejects_path, None if fresh_rejects else progress.rejects_bytes)
        self._open(progress, resumed_at is not None)
        self.meter = SourceMeter.measure(self.parts.sources)
        run = self.doc.model.run
        self.ledger = open_ledger(
            self.state.path, run.verify, run.verify_sample, progress.run_id, resumed_at, self.meter.records
        )
        counts = progress.counts
        counts.setdefault("source", {})
        if resumed_at is not None:
            records = self.meter.records
            of = f"/{max(1, -(-records // run.batch_size))}" if records else ""
            done = counts["source"].get("read", 0)
            self.say(
                f"Resuming run {progress.run_id} of {self.doc.name} at batch {resumed_at + 1}{of} "
                f"({done:,} records already done)"
            )
            self.events.emit("resumed", run=progress.run_id, batch=resumed_at)
        else:
            self.events.emit("started", run=progress.run_id, fingerprint=self.plan.fingerprint)
        status = self._loop(ck, progress)
        if status == "completed":
            for spec, sink in self.parts.sinks:
                sink.finalize()
                if report := sink.report():
                    counts.setdefault("sink_reports", {})[spec.title] = report
            if self._verify(counts):
                self._publish(counts)
        return self._finish(ck, progress, status, resumed_at, t0)

    def _verify(self, counts: dict[str, Any]) -> bool:
        """Reconcile every target with what the run wrote (``run.verify``); False when one differs."""
        run, events = self.doc.model.run, self.events
        counts["verify"], ok = verify_targets(self.parts.sinks, self.ledger, run.verify, run.verify_sample, self.say)
        if not ok and events is not None:
            events.emit("verify_failed", targets=[t for t, f in counts["verify"].items() if f.get("missing")])
        return ok

    def _publish(self, counts: dict[str, Any]) -> None:
        """Sign and push the output, unless the run rejected records and ``publish.on_rejects`` is 'skip': a
        run whose every LLM call failed must not become the backup's newest generation."""
        assert self.events is not None
        counts.pop("publish", None)
        if not self.publish:
            return
        rejected = int(counts.get("rejected", 0))
        steps = " and ".join(stage.name for stage in self.publish)
        reason = None
        if self.options.retry_rejected:
            # the file targets of a retry run hold the retried records only: never a backup generation
            reason = (
                f"not published ({steps} skipped): a --retry-rejected run writes only the retried records; "
                f"run `{self.resume_command().replace(' --retry-rejected', '')}` to publish the whole output"
            )
        elif rejected and self.doc.model.publish.on_rejects == "skip":
            reason = (
                f"not published ({steps} skipped): {rejected:,} record(s) rejected and publish.on_rejects is "
                "'skip'; fix the cause and run the recipe again (answers already paid for are cached), or set "
                "publish: {on_rejects: publish}"
            )
        if reason is not None:
            counts["publish"] = {"skipped": [stage.name for stage in self.publish], "reason": reason}
            self.say(reason)
            self.events.emit("publish_skipped", rejected=rejected, stages=counts["publish"]["skipped"])
            return
        for stage in self.publish:
            result = stage.finish()
            if result is not None:
                counts.update(result.figures)
                self.events.emit(getattr(stage, "event", stage.name), **result.figures.get(stage.name, {}))

    def _loop(self, ck: Checkpoint, progress: Progress) -> str:
        if getattr(self.executor, "partitioned", False):
            status: str = self.executor.run(self, ck, progress)  # type: ignore[attr-defined]
            return status
        return BatchLoop(self, ck, progress).run()

    @staticmethod
    def _preparer(sink: Sink, prepared: set[str]) -> Any:
        """Prepare the sink (create its collection or table) before its first write of the run."""

        def prepare(batch: Batch) -> None:
            key = f"{id(sink)}"
            if key not in prepared:
                sink.prepare(*prepare_args(batch))
                prepared.add(key)

        return prepare

    def take(self, done: BatchDone, src_id: str, source_title: str, progress: Progress) -> None:
        """Count a processed batch into ``progress``: the source's, the stages' and the sinks' figures, the
        rejects file and the verification ledger. Raises when run.on_error is 'fail' and records were rejected."""
        assert self.rejects is not None
        counts = progress.counts
        read = done.read
        tally(counts.setdefault("sources", {}).setdefault(source_title, {}), read)
        legacy = {"read": read["in"], "passed": read["out"], "rejected": read["rejected"], "warnings": read["warnings"]}
        tally(counts["source"], legacy)
        self.rejects.write("source", src_id, done.source_rejects)
        rejected = len(done.source_rejects)
        for name, result in zip(self.stage_names, done.results, strict=True):
            rejected += self._account(name, counts.setdefault(name, {}), result, src_id)
            counts.update(result.figures)
            if name == "ids":
                tally(counts, {"skipped": result.counts.get("duplicates", 0)})
        batch = done.out
        for w in done.writes:
            store = counts.setdefault("store", {}).setdefault(w.title, {})
            tally(store, {"in": len(batch), "written": w.written})
            tally(store, {"rejected": len(w.refused), **({"duplicates": w.duplicates} if w.duplicates else {})})
            if self.ledger is not None:
                self.ledger.add(w.title, progress.batches + 1, batch, set(w.refused))
            if w.refused:
                rejects = [
                    Rejected(f"{w.title}: {w.refused[r.id]}", r, batch.vector(i))
                    for i, r in enumerate(batch.records)
                    if r.id in w.refused
                ]
                self.rejects.write("store", src_id, rejects)
            rejected += len(w.refused)
        if read["rejected"] and self.doc.model.run.on_error == "fail":
            raise VexrunError(
                f"{read['rejected']} input record(s) rejected ({done.source_rejects[0].reason}) and run.on_error "
                "is 'fail'",
                hint=f"fix the input, then resume with: {self.resume_command()}",
            )
        self.rejects.sync()
        tally(counts, {"rejected": rejected})
        progress.batches += 1
        progress.rejects_bytes = self.rejects.size

    @property
    def stage_names(self) -> list[str]:
        return [spec.name for spec in self.plan.role("batch")]

    def _account(self, stage: str, slot: dict[str, Any], result: StageResult, src_id: str) -> int:
        assert self.rejects is not None
        tally(slot, result.counts)
        self.rejects.write(stage, src_id, result.rejected)
        return len(result.rejected)

    def _finish(self, ck: Checkpoint, progress: Progress, status: str, resumed_at: int | None, t0: float) -> RunSummary:
        assert self.events is not None
        counts = progress.counts
        for title, st in counts.get("store", {}).items():
            if st.get("in", 0) != st.get("written", 0) + st.get("rejected", 0):
                self.say(
                    f"warning: {title} received {st.get('in', 0):,} records but reports "
                    f"{st.get('written', 0):,} written and {st.get('rejected', 0):,} rejected"
                )
                counts["count_mismatch"] = True
        rejected = int(counts.get("rejected", 0))
        signum = self._stop.signum or 2
        exit_code = {"completed": 3 if rejected else 0, "interrupted": 128 + signum}.get(status, 1)
        if status == "completed" and any(
            v.get("missing") or v.get("changed") for v in counts.get("verify", {}).values()
        ):
            exit_code = 5
        stages = [s for s, _ in self.parts.sources] + self.plan.role("batch") + self.plan.role("store")
        summary = RunSummary(
            recipe=self.doc.display,
            run_id=progress.run_id,
            status=status,
            state_dir=str(self.state.path),
            resumed_at_batch=resumed_at,
            batches=progress.batches,
            elapsed_s=time.perf_counter() - t0,
            counts=counts,
            rejects=rejected,
            rejects_file=str(self.state.rejects_path) if rejected else None,
            targets=[s.identity() for _, s in self.parts.sinks],
            exit_code=exit_code,
            stages=stages + self.plan.role("publish"),
            seconds=self.reporter.clock.to_json(),
            empty=empty_reason(self.parts.sources, counts, self.state.rejects_path) if status == "completed" else None,
        )
        ck.finish(progress, status, summary.to_json())
        self.progress = None  # its end is recorded
        self.state.write_summary(progress.run_id, summary.to_json())
        self.events.emit("finished", run=progress.run_id, status=status, counts=counts)
        if status == "interrupted":
            raise Interrupted(
                f"interrupted after batch {progress.batches}; the checkpoint is saved",
                signum=signum,
                hint=f"resume with: {self.resume_command()}",
            )
        if status == "too-many-rejects":
            raise VexrunError(
                f"stopped: {rejected:,} records rejected (run.max_rejects is {self.doc.model.run.max_rejects}); "
                f"see {self.state.rejects_path}",
                hint=f"fix the input, then resume with: {self.resume_command()}",
            )
        return summary
