"""What runs where under ``run.executor: ray`` (no Ray needed): which stages run in the workers and which in
the driver, which targets the workers write, and the partitions of the sources, kept in the checkpoint."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..connectors.base import Cursor, Sink, Source
from ..stages.base import StageSpec, stage_class

__all__ = ["Layout", "Partition", "plan_partitions", "split_stages", "worker_sink"]

#: partitions per worker when run.ray.partitions is not set: a slow partition does not leave a core idle
PER_WORKER = 4


@dataclass
class Partition:
    """A range of one source: its name says the range, never a task index."""

    source: int
    name: str
    start: Cursor | None

    @property
    def key(self) -> str:
        return f"{self.source}:{self.name}"

    def to_json(self) -> list[Any]:
        return [self.source, self.name, self.start]


def split_stages(batch_stages: list[StageSpec]) -> tuple[list[StageSpec], list[StageSpec]]:
    """(the per-batch stages the workers run, the stages from the first global one on, run in the driver)."""
    for i, spec in enumerate(batch_stages):
        if stage_class(spec).ordered:
            return batch_stages[:i], batch_stages[i:]
    return list(batch_stages), []


def changes_records(suffix: list[StageSpec]) -> bool:
    """True if a driver-side stage changes the records (then every target is written in the driver)."""
    return any(not stage_class(spec).edges_only for spec in suffix)


def worker_sink(sink: Sink) -> bool:
    """True if the workers may write this target at the same time (a server store); files and embedded stores
    have one writer, the driver."""
    return bool(getattr(sink, "concurrent_writers", False))


def plan_partitions(
    sources: list[tuple[StageSpec, Source]], per_source: int, batch_size: int, parallel: int
) -> list[Partition]:
    """Every source's partitions; ``parallel`` of them run at once (the workers)."""
    out: list[Partition] = []
    for index, (_, source) in enumerate(sources):
        source.ctx.parallel = max(1, parallel)
        out.extend(Partition(index, name, start) for name, start in source.partitions(per_source, batch_size))
    return out


@dataclass
class Layout:
    """The driver's view of a distributed run, saved in the checkpoint (``stage_state["ray"]``) with every
    commit: the partitions, each one's committed cursor, its spool length, whether it is done, and how far
    the ordered replay (global stages, driver-written targets) has come."""

    partitions: list[Partition]
    cursors: dict[str, Cursor | None]
    done: set[str]
    spool: dict[str, int]
    #: (index of the partition being replayed, bytes of its spool replayed)
    replay: tuple[int, int] = (0, 0)

    @classmethod
    def new(cls, partitions: list[Partition]) -> Layout:
        return cls(partitions, {p.key: p.start for p in partitions}, set(), {p.key: 0 for p in partitions})

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        parts = [Partition(int(s), str(n), c) for s, n, c in data["partitions"]]
        return cls(
            parts,
            dict(data["cursors"]),
            set(data["done"]),
            {k: int(v) for k, v in data["spool"].items()},
            (int(data["replay"][0]), int(data["replay"][1])),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "partitions": [p.to_json() for p in self.partitions],
            "cursors": self.cursors,
            "done": sorted(self.done),
            "spool": self.spool,
            "replay": list(self.replay),
        }


def describe(plan: Any) -> list[str]:
    """``vexrun plan`` lines for ``run.executor: ray``: workers, what runs where, each source's partitions
    (the sources are opened to cut them; nothing is read but what cutting needs)."""
    import os

    from ..build import build_connectors, close_quietly, run_context

    settings = plan.doc.model.run.ray
    where = settings.address or os.environ.get("RAY_ADDRESS") or "a local Ray on this machine's cores"
    workers = settings.workers or (None if settings.address or os.environ.get("RAY_ADDRESS") else os.cpu_count())
    shown = f"{workers} worker actor(s)" if workers else "one worker actor per CPU of the cluster"
    prefix, suffix = split_stages(plan.role("batch"))
    lines = [f"executor ray · {where} · {shown}"]
    lines.append("  workers run   " + (", ".join(s.title for s in prefix) or "(no per-batch stage)"))
    if suffix:
        lines.append("  driver runs   " + ", ".join(s.title for s in suffix) + " (global: in source order)")
    per_source = settings.partitions or PER_WORKER * (workers or 1)
    try:
        parts = build_connectors(plan, run_context(plan))
    except Exception as exc:  # noqa: BLE001 - the plan is shown anyway
        return [*lines, f"  partitions    unknown: {str(exc).splitlines()[0]}"]
    try:
        rewrite = changes_records(suffix)
        for spec, sink in parts.sinks:
            by = "workers" if worker_sink(sink) and not rewrite else "driver, in source order"
            lines.append(f"  {spec.title} written by the {by}")
        for spec, source in parts.sources:
            try:
                source.open()
                source.ctx.parallel = workers or per_source  # a cluster's size is known when it runs
                cut = source.partitions(per_source, plan.doc.model.run.batch_size)
            except Exception as exc:  # noqa: BLE001
                lines.append(f"  {spec.title}: partitions unknown ({str(exc).splitlines()[0]})")
                continue
            names = [name for name, _ in cut]
            more = f", … {names[-1]}" if len(names) > 3 else ""
            lines.append(f"  {spec.title}: {len(names)} partition(s): {', '.join(names[:3])}{more}")
    finally:
        close_quietly(*(s for _, s in parts.sources), *(s for _, s in parts.sinks))
    return lines
