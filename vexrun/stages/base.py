"""The stage contract: what every step between a source and its sinks speaks.

::

    stage = build_stage(spec, ctx)      # from the plan's StageSpec (resolved settings) and the run's context
    stage.open(state)                   # None on a fresh run, else what state() returned at the last commit
    result = stage.process(batch)       # -> StageResult
    result.batch, result.counts, result.rejected, result.edges
    ... after the sinks acknowledged the batch, the runner checkpoints stage.state()
    stage.close()

A stage is built from its :class:`StageSpec` alone (settings, fingerprint, resolved plugin), so a built but
unopened stage pickles: an executor can build it again in a worker process. What is expensive or not
picklable (a model, an HTTP client, a database connection) is created in :meth:`Stage.open`, through the
context's shared :class:`Resources` (one embedder and one embedding cache per process, whichever stages use
them). Global stages (dedup, the graph) keep their cross-batch memory behind ``state()`` / ``open(state)``.

Counts are additive (``in``, ``out``, ``rejected`` and stage-specific figures such as ``computed``);
``figures`` are snapshots that replace the previous value (the LLM usage). :func:`tally` is the one place
they are added up.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    import numpy as np

    from ..cache import EmbedCache
    from ..connectors.base import Edge, RunContext
    from ..providers.base import Embedder
    from ..registry import PluginSpec
    from ..vmig.batch import Batch
    from ..vmig.model import Record

__all__ = [
    "Rejected",
    "Resources",
    "Role",
    "Stage",
    "StageContext",
    "StageResult",
    "StageSpec",
    "build_stage",
    "stage_class",
    "rejected_from",
    "tally",
]

_log = logging.getLogger("vexrun.run")

#: source: read by the runner; batch: a per-batch stage the executor runs; store: a sink; publish: after the run
Role = Literal["source", "batch", "store", "publish"]


@dataclass
class StageSpec:
    """One stage of a compiled plan: everything needed to build it, nothing that is not picklable."""

    name: str
    title: str
    #: the settings as ``vexrun plan`` shows them (secrets as the reference they come from)
    settings: dict[str, Any]
    role: Role = "batch"
    #: "module:Class" of the stage (batch and publish stages)
    impl: str | None = None
    #: the resolved settings model the stage is built from (may hold secrets: never printed or stored)
    config: Any = None
    #: the registry entry of a source, sink or embedder, already resolved
    plugin: PluginSpec | None = None
    capabilities: dict[str, Any] | None = None
    fingerprint: str = ""

    @property
    def key(self) -> str:
        """Where the stage's counts and state live in the checkpoint (by name; stores and sources by title)."""
        return self.title if self.role in ("source", "store") else self.name


@dataclass
class Rejected:
    """A record a stage could not carry on with: it goes to the rejects file, re-feedable later."""

    reason: str
    record: Record | None = None
    vector: np.ndarray | None = None
    #: for input lines that never became records
    raw: bytes | None = None
    line: int | None = None


@dataclass
class StageResult:
    batch: Batch
    #: additive counts: in, out, rejected, and figures of the stage (computed, cached, split, ...)
    counts: dict[str, int] = field(default_factory=dict)
    #: snapshots that replace the previous value in the run's counts (top-level keys, e.g. "llm")
    figures: dict[str, Any] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    @classmethod
    def passed(cls, batch: Batch, n_in: int | None = None, **counts: int) -> StageResult:
        """A result whose batch is the stage's output: ``in`` defaults to ``out``."""
        return cls(batch, {"in": len(batch) if n_in is None else n_in, "out": len(batch), **counts})


def tally(dst: dict[str, Any], counts: Mapping[str, int | float]) -> dict[str, Any]:
    """Add ``counts`` into ``dst`` (the one helper every count goes through). Returns ``dst``."""
    for key, value in counts.items():
        dst[key] = dst.get(key, 0) + value
    return dst


def _say(message: str) -> None:
    _log.info(message)


class Resources:
    """What several stages share in one process, created on first use: the embedder and the embedding cache."""

    def __init__(self, ctx: StageContext) -> None:
        self.ctx = ctx
        self._embedder: Embedder | None = None
        self._cache: EmbedCache | None = None
        self._embedding: Any = None

    def embedder(self) -> Embedder:
        if self._embedder is None:
            spec = self.ctx.embed
            if spec is None or spec.plugin is None:
                raise ValueError("this plan has no embedder")
            embedder: Embedder = spec.plugin.implementation()(spec.config)
            self.ctx.say(f"Loading embedder {embedder.model_id} ...")
            embedder.open()
            self._embedder = embedder
        return self._embedder

    def cache(self) -> EmbedCache:
        if self._cache is None:
            from ..cache import EmbedCache

            self._cache = EmbedCache(self.ctx.state_dir / "cache.sqlite")
        return self._cache

    def embedding(self) -> Stage:
        """An embed stage (the plan's settings, the shared embedder and cache) for stages that embed on the
        side: semantic dedup, fitting a projection."""
        if self._embedding is None:
            assert self.ctx.embed is not None
            stage = build_stage(self.ctx.embed, self.ctx)
            stage.open(None)
            self._embedding = stage
        stage_: Stage = self._embedding
        return stage_

    def close(self) -> None:
        for res in (self._embedder, self._cache):
            if res is not None:
                try:
                    res.close()
                except Exception:  # noqa: BLE001 - closing must not hide the run's own outcome
                    pass
        self._embedder = self._cache = self._embedding = None


@dataclass
class StageContext:
    """What a stage may use while it runs. Picklable: the log function and the open resources stay behind."""

    state_dir: Path
    recipe_dir: Path
    #: run.on_error: 'fail' makes a stage that rejects a record stop the run (resumable)
    on_error: str = "quarantine"
    #: the command that resumes this run, for error hints
    resume: str = ""
    #: --retry-rejected: re-ask providers for answers that failed validation
    retry: bool = False
    #: the plan's embed stage, for stages that embed on the side (None when the recipe has no embedder)
    embed: StageSpec | None = None
    #: the plan's sources, for stages that sample them before the run (adapt: project)
    sources: list[StageSpec] = field(default_factory=list)
    #: the connectors' view of the run (state dir, recipe dir, embedder spec)
    run: RunContext | None = None
    log: Callable[[str], None] | None = None
    resources: Resources = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.resources = Resources(self)

    def say(self, message: str) -> None:
        (self.log or _say)(message)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("resources", None)
        state["log"] = None
        if state.get("run") is not None:
            import dataclasses

            state["run"] = dataclasses.replace(state["run"], log=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.resources = Resources(self)

    def close(self) -> None:
        self.resources.close()


class Stage:
    """A step of the plan. Subclasses set ``name`` and implement :meth:`process` (and, if they remember
    anything across batches, :meth:`state` and :meth:`open`)."""

    name: ClassVar[str] = "stage"
    #: True for a global stage: it needs every batch before this one, in source order (dedup, the graph), so a
    #: distributed executor runs it in one place, in order, after the partitions (a barrier)
    ordered: ClassVar[bool] = False
    #: True if the stage only adds edges and passes its batch on unchanged
    edges_only: ClassVar[bool] = False
    spec: StageSpec | None = None
    ctx: StageContext | None = None

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        """Build the stage from its resolved settings; open nothing yet."""
        raise NotImplementedError

    def _bind(self, spec: StageSpec, ctx: StageContext) -> Stage:
        self.spec, self.ctx = spec, ctx
        return self

    @property
    def title(self) -> str:
        return self.spec.title if self.spec is not None else self.name

    def open(self, state: dict[str, Any] | None) -> None:
        """Acquire what the stage needs; ``state`` is what :meth:`state` returned at the last committed batch
        (None on a fresh run)."""

    def process(self, batch: Batch) -> StageResult:
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        """What the checkpoint keeps with each committed batch."""
        return {}

    def finish(self) -> StageResult | None:
        """After the last batch of a complete run (publish stages sign and push here)."""
        return None

    def close(self) -> None:
        """Release what :meth:`open` acquired (also after a failure)."""


def rejected_from(batch: Batch, reasons: Mapping[str, str]) -> list[Rejected]:
    """:class:`Rejected` entries for the records of ``batch`` whose ids are in ``reasons`` (with their vectors)."""
    out = []
    for i, rec in enumerate(batch.records):
        reason = reasons.get(rec.id)
        if reason is not None:
            out.append(Rejected(reason, rec, batch.vector(i)))
    return out


def stage_class(spec: StageSpec) -> type[Stage]:
    """The class a spec names (``impl``), imported, nothing built."""
    assert spec.impl is not None, f"the stage {spec.title} is not built by a stage class"
    module, _, name = spec.impl.partition(":")
    cls: type[Stage] = getattr(importlib.import_module(module), name)
    return cls


def build_stage(spec: StageSpec, ctx: StageContext) -> Stage:
    """The stage a spec names (``impl``), built from its settings; nothing is opened yet."""
    return stage_class(spec).from_spec(spec, ctx)
