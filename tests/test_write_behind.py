"""When the batch loop reads a source ahead (:func:`vexrun.batchloop.reads_ahead`), and its writer for a
pipelined sink (:meth:`vexrun.batchloop.WriteBehind.submit_sent`): sends run in order in the writer thread, their
acknowledgements in order in another, a batch is sent before the one before it is acknowledged, and every future
ends, also after a failure."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from vexrun.batchloop import WriteBehind, _Skipped, reads_ahead


def _sender(
    log: list[str], name: str, gate: threading.Event | None = None, fail: str = ""
) -> Callable[[], Callable[[], str]]:
    def send() -> Callable[[], str]:
        log.append(f"send {name}")
        if fail == "send":
            raise OSError(f"{name}: no space")

        def wait() -> str:
            if gate is not None:
                assert gate.wait(10)
            log.append(f"ack {name}")
            if fail == "ack":
                raise OSError(f"{name}: lost")
            return name

        return wait

    return send


def test_the_next_batch_is_sent_while_the_one_before_waits_for_its_acknowledgement() -> None:
    writer = WriteBehind(True)
    log: list[str] = []
    gate = threading.Event()
    try:
        first = writer.submit_sent(_sender(log, "1", gate))
        second = writer.submit_sent(_sender(log, "2"))
        for _ in range(1000):  # the second send does not wait for the first acknowledgement
            if "send 2" in log:
                break
            threading.Event().wait(0.01)
        assert log == ["send 1", "send 2"] and not first.done() and not second.done()
        gate.set()
        assert first.result(10) == "1" and second.result(10) == "2"
        assert log == ["send 1", "send 2", "ack 1", "ack 2"]
    finally:
        gate.set()
        writer.close()


@pytest.mark.parametrize("fail", ["send", "ack"])
def test_after_a_failure_every_future_ends_and_nothing_more_is_sent(fail: str) -> None:
    writer = WriteBehind(True)
    log: list[str] = []
    try:
        ok = writer.submit_sent(_sender(log, "1"))
        assert ok.result(10) == "1"
        bad = writer.submit_sent(_sender(log, "2", fail=fail))
        with pytest.raises(OSError, match="2: "):
            bad.result(10)
        later = writer.submit_sent(_sender(log, "3"))
        with pytest.raises(_Skipped):
            later.result(10)
        assert "send 3" not in log
    finally:
        writer.close()


def test_a_store_source_reads_ahead_when_the_vmig_target_writes_through_its_writer_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ``.vmig.jsonl`` target's writes wait on its writer process, so a source whose client waits too (a
    store) reads its next page meanwhile; a target written in the run's own process gains nothing from it."""
    from vexrun.connectors.base import RunContext, Source
    from vexrun.connectors.vmig import VmigSink, VmigSinkConfig

    class Store(Source):
        prefetch = True

    class File(Source):
        prefetch = False

    monkeypatch.setattr("vexrun.vmig.scan.default_jobs", lambda: 2)
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path)

    def sink(write_worker: bool | None) -> VmigSink:
        return VmigSink(VmigSinkConfig(path="out.vmig.jsonl", write_worker=write_worker), ctx)

    store, file = Store(None, ctx), File(None, ctx)
    assert reads_ahead(store, [sink(None)]) and reads_ahead(store, [sink(True)])
    assert not reads_ahead(store, [sink(False)])
    assert not reads_ahead(file, [sink(True)])
    monkeypatch.setattr("vexrun.vmig.scan.default_jobs", lambda: 1)  # one core: no writer process by default
    assert not reads_ahead(store, [sink(None)])
