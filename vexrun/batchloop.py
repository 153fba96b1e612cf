"""The local executor's batch loop: each batch from the sources through the stages to the sinks, committed in
order, with the sinks' writes *behind* the stages.

A batch's sink writes run in one background thread while the loop reads and processes the next batch, so
reading, the stages and the stores' work overlap (a store's client waits on its server; a file sink's write
and hash release the GIL). The commit rule does not change: a batch is committed (cursor, counts, stage and sink
states) only after every sink acknowledged it, batches are committed in order, and what the checkpoint stores
for a batch is what the stages and sinks said right after that batch (:func:`snapshot`), not after the next
one. At most one batch is written while the next is processed. A run with a sink that cannot be written from
another thread (an embedded store bound to the thread that opened it) writes in the loop's own thread.

A run whose one sink is *pipelined* (:attr:`~vexrun.connectors.base.Sink.pipelined`: a ``.vmig.jsonl`` target
with its writer process) goes one step further: the writer thread sends a batch to the sink and goes on to the
next, while an acknowledgement thread waits, in order, until each is durable; the batch's future (what the loop
commits on) is that acknowledgement. The sink's writer process then fills the next batch while it makes the one
before durable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from .batchflow import BatchDone, done_batch, send_sink, write_sink
from .build import decoded
from .prefetch import prefetch

if TYPE_CHECKING:
    from .checkpoint import Checkpoint, Progress
    from .connectors.base import Sink, Source
    from .runner import Runner
    from .stages.base import StageSpec
    from .vmig.batch import Batch

__all__ = ["BatchLoop", "WriteBehind", "can_write_behind", "reads_ahead", "snapshot"]

T = TypeVar("T")


class _Skipped(Exception):
    """A batch queued behind a failed write: never written, never committed."""


def snapshot(states: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``states`` that later batches cannot change (stages and sinks may return live dicts)."""
    return orjson.loads(orjson.dumps(states))  # type: ignore[no-any-return]


def reads_ahead(source: Source, sinks: Iterable[Sink]) -> bool:
    """True when the source's next batch is worth reading in a background thread (:func:`~vexrun.prefetch.prefetch`):
    the source's client releases the GIL while it waits, and some sink's writes wait too."""
    return source.prefetch and any(sink.overlaps_reading() for sink in sinks)


def can_write_behind(sinks: Iterable[Sink]) -> bool:
    """True when every sink may be written from a background thread (one call at a time, in batch order)."""
    found = list(sinks)
    return bool(found) and all(sink.io_bound or sink.write_behind for sink in found)


class WriteBehind:
    """One writer thread (``enabled``), or the caller's own thread: :meth:`submit` returns a future either
    way; without the thread the work is done (and its exception raised) before it returns."""

    def __init__(self, enabled: bool) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vexrun-write") if enabled else None
        #: waits for what a pipelined sink was sent (:meth:`submit_sent`), in order
        self.acker: ThreadPoolExecutor | None = None
        #: batches that may be in flight once the next one is submitted
        self.depth = 1 if enabled else 0
        #: a write failed: the writes queued after it are not done (nothing is written past a failure)
        self.failed = False

    def submit(self, fn: Callable[[], T]) -> Future[T]:
        if self.pool is not None:
            return self.pool.submit(self._guarded, fn)
        done: Future[T] = Future()
        done.set_result(fn())
        return done

    def _guarded(self, fn: Callable[[], T]) -> T:
        if self.failed:
            raise _Skipped("not written: an earlier batch's write failed")
        try:
            return fn()
        except BaseException:
            self.failed = True
            raise

    def submit_sent(self, send: Callable[[], Callable[[], T]]) -> Future[T]:
        """``send`` runs in the writer thread, in order, and returns a function that waits for what it sent:
        that runs in the acknowledgement thread, in order, and the future returned here is its result. The
        future always ends (with ``send``'s error, or :class:`_Skipped` after an earlier failure)."""
        assert self.pool is not None
        if self.acker is None:
            self.acker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vexrun-ack")
        acker = self.acker
        acked: Future[T] = Future()

        def sent() -> None:
            if self.failed:
                acked.set_exception(_Skipped("not written: an earlier batch's write failed"))
                return
            try:
                wait = send()
            except BaseException as exc:
                self.failed = True
                acked.set_exception(exc)
                return
            acker.submit(self._acknowledged, wait, acked)

        self.pool.submit(sent)
        return acked

    def _acknowledged(self, wait: Callable[[], T], acked: Future[T]) -> None:
        try:
            acked.set_result(wait())
        except BaseException as exc:
            self.failed = True
            acked.set_exception(exc)

    def close(self) -> None:
        """Wait for the write in flight, and its acknowledgement (a sink must not be closed under them)."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)
        if self.acker is not None:
            self.acker.shutdown(wait=True)


@dataclass
class _Pending:
    """A batch processed and handed to the sinks, not yet committed."""

    #: the sinks' states, once every sink acknowledged the batch
    written: Future[dict[str, Any]]
    done: BatchDone
    spec: StageSpec
    index: int
    cursor: Any
    stage_state: dict[str, Any]


class BatchLoop:
    """The batch loop of one run of ``runner`` (which owns the parts, the stages and the counting)."""

    def __init__(self, runner: Runner, ck: Checkpoint, progress: Progress) -> None:
        self.runner = runner
        self.ck = ck
        self.progress = progress
        self.prepared: set[str] = set()
        self.pending: deque[_Pending] = deque()
        #: settling a batch failed: nothing after it is committed
        self.broken = False

    def run(self) -> str:
        """'completed', or why the loop stopped early ('interrupted', 'too-many-rejects')."""
        r, progress = self.runner, self.progress
        sources, sinks = r.parts.sources, [sink for _, sink in r.parts.sinks]
        batch_size = r.doc.model.run.batch_size
        read = progress.counts["source"].get("read", 0)
        writer = WriteBehind(can_write_behind(sinks))
        timed = r.reporter.clock.timed
        try:
            with r._stop.installed(), r.reporter.live(r.meter, read, progress.source_index, progress.cursor):
                for index in range(progress.source_index, len(sources)):
                    spec, source = sources[index]
                    cursor = progress.cursor if index == progress.source_index else None
                    batches = decoded(spec, source.batches(cursor, batch_size))
                    ahead = reads_ahead(source, sinks)
                    for batch, next_cursor in timed(prefetch(batches) if ahead else batches, spec.title):
                        number = progress.batches + len(self.pending) + 1
                        self.pending.append(self._submit(writer, batch, spec, index, next_cursor, number))
                        while len(self.pending) > writer.depth:
                            self._settle(self.pending.popleft())
                        if status := self._should_stop():
                            self._settle_all()
                            return status
                    self._settle_all()
                    progress.source_index, progress.cursor = index + 1, None
                    progress.counts.setdefault("source_reports", {})[source.identity()] = source.report()
                    self.ck.commit(progress)
        except BaseException:
            self._settle_acknowledged()
            raise
        finally:
            writer.close()
        return "completed"

    def _should_stop(self) -> str | None:
        if self.runner._stop.signum:
            return "interrupted"
        limit = self.runner.doc.model.run.max_rejects
        if limit is not None and self.progress.counts.get("rejected", 0) > limit:
            return "too-many-rejects"
        return None

    def _submit(
        self, writer: WriteBehind, batch: Batch, spec: StageSpec, index: int, cursor: Any, number: int
    ) -> _Pending:
        """One batch through the stages (here), then to every sink (in the writer thread, when there is one)."""
        r = self.runner
        done = done_batch(batch, r.executor.process(r.timed, batch, number))
        stage_state = snapshot({stage.name: stage.state() for stage in r.stages})
        if writer.pool is not None and len(r.parts.sinks) == 1 and r.parts.sinks[0][1].pipelined:
            return _Pending(writer.submit_sent(self._sender(done)), done, spec, index, cursor, stage_state)

        def write() -> dict[str, Any]:
            for sink_spec, sink in r.parts.sinks:
                with r.reporter.clock.time(sink_spec.title):
                    prepare = r._preparer(sink, self.prepared)
                    done.writes.append(write_sink(sink_spec, sink, done.out, done.edges, prepare))
            return snapshot({s.title: sink.state() for s, sink in r.parts.sinks})

        return _Pending(writer.submit(write), done, spec, index, cursor, stage_state)

    def _sender(self, done: BatchDone) -> Callable[[], Callable[[], dict[str, Any]]]:
        """The writer thread's part of a batch for the run's one pipelined sink: send it; the function it returns
        waits until the sink acknowledged it, and gives the sink's state after it."""
        r = self.runner
        sink_spec, sink = r.parts.sinks[0]

        def send() -> Callable[[], dict[str, Any]]:
            with r.reporter.clock.time(sink_spec.title):
                prepare = r._preparer(sink, self.prepared)
                wait = send_sink(sink_spec, sink, done.out, done.edges, prepare)

            def acknowledged() -> dict[str, Any]:
                done.writes.append(wait())
                return snapshot({sink_spec.title: sink.state()})

            return acknowledged

        return send

    def _settle(self, p: _Pending) -> None:
        """A batch every sink acknowledged: count it and commit it with its cursor and states. Once settling
        one batch failed, no later batch is ever committed (batches are committed in order or not at all)."""
        if self.broken:
            raise RuntimeError("a batch after one that was not committed")  # not reached: the run is failing
        try:
            self._commit(p)
        except BaseException:
            self.broken = True
            raise

    def _commit(self, p: _Pending) -> None:
        r, progress = self.runner, self.progress
        assert r.events is not None
        sink_state = p.written.result()
        r.take(p.done, r.parts.sources[p.index][1].identity(), p.spec.title, progress)
        retry_file = progress.stage_state.get("retry_file")
        progress.stage_state = p.stage_state
        if retry_file:
            progress.stage_state["retry_file"] = retry_file
        progress.sink_state = sink_state
        progress.source_index, progress.cursor = p.index, p.cursor
        self.ck.commit(progress)
        r.events.emit("batch", run=progress.run_id, batch=progress.batches, records=len(p.done.out))
        r.reporter.update(progress.counts, progress.batches, p.index, p.cursor)

    def _settle_all(self) -> None:
        while self.pending:
            self._settle(self.pending.popleft())

    def _settle_acknowledged(self) -> None:
        """The run is failing: still commit the batches the sinks acknowledged, in order, up to the first that
        failed (its error, or the one already being raised, is what the user sees)."""
        while self.pending and not self.broken:
            try:
                self._settle(self.pending.popleft())
            except BaseException:  # noqa: BLE001, S110 - the error already on its way out is the one reported
                pass
        self.pending.clear()
