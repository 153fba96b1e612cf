"""One batch from its source through the per-batch stages to the sinks, split into what can run anywhere
(:func:`execute`, :func:`write_sink`: a worker of a distributed executor runs them) and what the runner does
with the outcome in its own process (counting, rejects, the verification ledger, the checkpoint).
:class:`BatchDone` is that outcome: it pickles, so a worker can send it to the runner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .connectors.base import Capabilities, Edge, Sink, WriteResult
from .connectors.encoding import split_for, store_id, to_store
from .stages.base import Rejected, Stage, StageResult, StageSpec
from .vmig.batch import Batch

__all__ = ["BatchDone", "SinkWrite", "done_batch", "merge_edges", "prepare_args", "send_sink", "write_sink"]


@dataclass
class SinkWrite:
    """What one sink did with a batch: records written, duplicates, and the ids it refused with the reason
    (the records' own ids, not the ids the store was given)."""

    title: str
    written: int = 0
    duplicates: int = 0
    refused: dict[str, str] = field(default_factory=dict)


@dataclass
class BatchDone:
    """A batch after the per-batch stages and the sinks written where it was processed."""

    #: the source's figures for the batch: in, out, rejected, warnings
    read: dict[str, int]
    #: input lines or records the source could not read
    source_rejects: list[Rejected]
    #: the stages' results (their batches dropped but the last one's: ``out``)
    results: list[StageResult]
    #: the batch the sinks receive
    out: Batch
    #: the source's own edges and the stages', deduplicated
    edges: list[Edge]
    writes: list[SinkWrite] = field(default_factory=list)


def done_batch(batch: Batch, results: list[StageResult]) -> BatchDone:
    """The outcome of ``batch`` through stages that gave ``results`` (no sink written yet)."""
    read = {
        "in": len(batch) + len(batch.rejects),
        "out": len(batch),
        "rejected": len(batch.rejects),
        "warnings": len(batch.warnings),
    }
    rejects = [Rejected(r.reason, raw=r.raw, line=r.line) for r in batch.rejects]
    out = results[-1].batch if results else batch
    return BatchDone(read, rejects, results, out, merge_edges(batch.edges, results))


def merge_edges(source_edges: Sequence[Edge], results: Sequence[StageResult]) -> list[Edge]:
    """A graph store's own relationships first, then the stages'; an edge the graph stage derives again is the
    source's (the first of each key)."""
    edges: list[Edge] = list(source_edges)
    for result in results:
        edges.extend(result.edges)
    if source_edges:
        edges = list({(e.src, e.dst, e.type): e for e in reversed(edges)}.values())[::-1]
    return edges


def prepare_args(batch: Batch) -> tuple[int | None, str | None]:
    """What ``Sink.prepare`` is given for a target whose first write is ``batch``: its dims and model."""
    dims = batch.dims
    return dims, (batch.records[0].model if batch.records and dims else None)


def execute(stages: Sequence[Stage], batch: Batch) -> list[StageResult]:
    """``batch`` through ``stages`` in order: one result per stage."""
    results: list[StageResult] = []
    for stage in stages:
        result = stage.process(batch)
        results.append(result)
        batch = result.batch
    return results


def send_sink(
    spec: StageSpec, sink: Sink, batch: Batch, edges: list[Edge], prepare: Callable[[Batch], Any] | None = None
) -> Callable[[], SinkWrite]:
    """:func:`write_sink` for a pipelined sink (:attr:`Sink.pipelined`): the edges are written, and the
    batch's parts sent (:meth:`Sink.send`), here; the function returned waits until the parts are durable."""
    if prepare is not None:
        prepare(batch)
    caps = spec.plugin.capabilities if spec.plugin is not None else None
    if edges:
        sink.write_edges(_store_edges(edges, caps))  # first: the sink's state for this batch then counts them
    stored = to_store(batch, caps)
    waits = [sink.send(part) for part in split_for(stored, caps)] if len(stored) else []
    return lambda: _tally(spec, [wait() for wait in waits], stored, batch)


def write_sink(
    spec: StageSpec, sink: Sink, batch: Batch, edges: list[Edge], prepare: Callable[[Batch], Any] | None = None
) -> SinkWrite:
    """Write ``batch`` and ``edges`` to one sink, encoded and split as the sink's capabilities say. ``prepare``
    is called first with the batch (the caller prepares each sink once, before its first write)."""
    if prepare is not None:
        prepare(batch)
    caps = spec.plugin.capabilities if spec.plugin is not None else None
    stored = to_store(batch, caps)
    results = [sink.write(part) for part in split_for(stored, caps)] if len(stored) else []
    if edges:
        sink.write_edges(_store_edges(edges, caps))
    return _tally(spec, results, stored, batch)


def _store_edges(edges: list[Edge], caps: Capabilities | None) -> list[Edge]:
    """``edges`` with their ends as the store holds the records' ids."""
    if caps is None or caps.ids == "any":
        return edges
    return [Edge(store_id(e.src, caps), store_id(e.dst, caps), e.type, e.weight, e.metadata) for e in edges]


def _tally(spec: StageSpec, results: list[WriteResult], stored: Batch, batch: Batch) -> SinkWrite:
    """What a sink said of a batch's parts, its refusals under the records' own ids."""
    out = SinkWrite(spec.title)
    for result in results:
        out.written += result.written
        out.duplicates += result.duplicates
        out.refused.update(result.rejected)
    if out.refused:  # the store's ids back to the records' own
        by_store = {s.id: r.id for s, r in zip(stored.records, batch.records, strict=True)}
        out.refused = {by_store.get(sid, sid): reason for sid, reason in out.refused.items()}
    return out
