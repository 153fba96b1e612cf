"""Build what a compiled plan names: its sources and sinks (connectors), its stages, its embedder.

The runner and the other verbs (``check``, ``search``) build through here, from the plan's stage specs, whose
registry entries the compiler already resolved: nothing here looks a plugin up by name.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .connectors.base import Capabilities, RunContext, Sink, Source
from .connectors.encoding import from_store
from .stages.base import build_stage

if TYPE_CHECKING:
    import numpy as np

    from .planner import Plan
    from .providers.base import Embedder
    from .stages.base import StageContext, StageSpec

__all__ = [
    "Connectors",
    "build_connectors",
    "build_embedder",
    "build_sink",
    "build_source",
    "build_stage",
    "capabilities",
    "close_quietly",
    "embedder_spec",
    "run_context",
    "sample_sources",
    "stage_context",
]


def close_quietly(*parts: Any) -> None:
    """Close each part, ignoring failures (closing after a failure must not hide the failure)."""
    for part in parts:
        if part is None:
            continue
        try:
            part.close()
        except Exception:  # noqa: BLE001
            pass


def embedder_spec(plan: Plan) -> dict[str, Any] | None:
    """The run's embedder as ``{"type": ..., non-secret settings}``, recorded by stores with their vectors."""
    embed = plan.embed
    if embed is None:
        return None
    spec = {k: v for k, v in embed.config.model_dump(mode="json").items() if v is not None}
    for spath in plan.doc.secrets:
        if spath[:1] == ("embed",) and len(spath) == 2:
            spec.pop(str(spath[1]), None)
    return spec


def run_context(plan: Plan, log: Any = None) -> RunContext:
    """The connectors' view of a run: where state lives, where relative paths start, how to report."""
    return RunContext(
        state_dir=plan.state_dir,
        recipe_dir=plan.doc.directory.resolve(),
        log=log,
        embedder_spec=embedder_spec(plan),
    )


def stage_context(
    plan: Plan,
    run: RunContext,
    *,
    log: Any = None,
    resume: str = "",
    retry: bool = False,
) -> StageContext:
    from .stages.base import StageContext

    return StageContext(
        state_dir=plan.state_dir,
        recipe_dir=plan.doc.directory.resolve(),
        on_error=plan.doc.model.run.on_error,
        resume=resume,
        retry=retry,
        embed=plan.embed,
        sources=plan.role("source"),
        run=run,
        log=log,
    )


def capabilities(spec: StageSpec) -> Capabilities | None:
    assert spec.plugin is not None
    return spec.plugin.capabilities


def build_source(spec: StageSpec, rc: RunContext) -> Source:
    assert spec.plugin is not None
    source: Source = spec.plugin.implementation()(spec.config, rc)
    return source


def build_sink(spec: StageSpec, rc: RunContext) -> Sink:
    assert spec.plugin is not None
    sink: Sink = spec.plugin.implementation()(spec.config, rc)
    return sink


def build_embedder(spec: StageSpec) -> Embedder:
    assert spec.plugin is not None
    embedder: Embedder = spec.plugin.implementation()(spec.config)
    return embedder


@dataclass
class Connectors:
    """The sources and sinks of a run, each with the spec it was built from."""

    sources: list[tuple[StageSpec, Source]] = field(default_factory=list)
    sinks: list[tuple[StageSpec, Sink]] = field(default_factory=list)

    def close(self) -> None:
        close_quietly(*(s for _, s in self.sinks), *(s for _, s in self.sources))


def build_connectors(plan: Plan, rc: RunContext, retry_file: str | None = None) -> Connectors:
    """Every source and sink of the plan. ``retry_file``: read that rejects file instead of the sources
    (``--retry-rejected``)."""
    out = Connectors()
    try:
        if retry_file is not None:
            from .registry import resolve
            from .stages.base import StageSpec

            vmig = resolve("source", "vmig")
            config = vmig.config_model()(path=retry_file)
            spec = StageSpec("source", f"retry ({retry_file})", {}, role="source", config=config, plugin=vmig)
            out.sources.append((spec, build_source(spec, rc)))
        else:
            out.sources.extend((spec, build_source(spec, rc)) for spec in plan.role("source"))
        out.sinks.extend((spec, build_sink(spec, rc)) for spec in plan.role("store"))
    except BaseException:
        out.close()
        raise
    return out


def decoded(spec: StageSpec, batches: Iterator[Any]) -> Iterator[Any]:
    """A source's (batch, cursor) pairs with store-encoded records decoded (sources whose capabilities say so)."""
    caps = spec.plugin.capabilities if spec.plugin is not None else None
    if caps is None or not caps.encoded:
        yield from batches
        return
    for batch, cursor in batches:
        yield from_store(batch), cursor


@contextmanager
def opened(source: Source) -> Iterator[Source]:
    source.open()
    try:
        yield source
    finally:
        close_quietly(source)


def sample_sources(ctx: StageContext, limit: int) -> tuple[list[np.ndarray], list[str]]:
    """Records that have both a vector and a text, from the start of the sources (a read of its own)."""
    xs: list[np.ndarray] = []
    texts: list[str] = []
    assert ctx.run is not None
    for spec in ctx.sources:
        with opened(build_source(spec, ctx.run)) as source:
            for batch, _ in decoded(spec, source.batches(None, 500)):
                for i, rec in enumerate(batch.records):
                    vec = batch.vector(i)
                    if vec is not None and rec.text:
                        xs.append(vec.copy())
                        texts.append(rec.text)
                        if len(texts) >= limit:
                            return xs, texts
    return xs, texts
