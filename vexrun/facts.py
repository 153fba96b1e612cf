"""extract / smart mode inside a run: chunks → LLM facts → score → dedup, with the cascade, the LLM cache and
the stages' states kept in the checkpoint. The runner drives this between its chunk and embed stages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .connectors.base import Edge
from .providers.llm.cascade import Cascade
from .providers.llm.settings import LLMSettings, build_providers
from .stages.dedup import DedupStage
from .stages.dedup.stage import DedupCounts
from .stages.embed import EmbedStage
from .stages.extract import ExtractStage
from .stages.extract.stage import ExtractCounts
from .stages.factgraph import FactGraphStage
from .stages.llm_cache import LLMCache
from .stages.score import ScoreStage
from .vmig.batch import Batch
from .vmig.model import Record

__all__ = ["FactsPipeline", "FactsStep"]


@dataclass
class FactsStep:
    """What one batch of chunks became."""

    facts: Batch
    #: chunk id → (the chunk, why every provider failed on it)
    failed: dict[str, tuple[Record, str]] = field(default_factory=dict)
    #: facts sent again because they absorbed a duplicate (not linked again by the graph)
    updated: list[str] = field(default_factory=list)


class FactsPipeline:
    def __init__(
        self, model: Any, state_dir: Path, embed: EmbedStage | None, *, say: Callable[[str], None], retry: bool = False
    ) -> None:
        self.model = model
        self.state_dir = state_dir
        self.say = say
        self.cache = LLMCache(state_dir / "llm-cache.sqlite")
        settings: LLMSettings = model.llm or LLMSettings()
        providers = build_providers(settings, note=say)
        self.cascade = Cascade(
            providers,
            cache=self.cache,
            max_concurrency=settings.max_concurrency,
            max_rate_retries=settings.max_rate_retries,
            log_fn=say,
            reask_invalid=retry,
        )
        self.extract = ExtractStage(model.extract, self.cascade)
        self.score = ScoreStage(model.score, reference=datetime.now(UTC))
        embed_fn = (lambda b: embed.process(b)[0]) if embed is not None else None
        self.dedup = DedupStage(model.dedup, state_dir / "dedup", embed=embed_fn)
        self.graph = FactGraphStage(model.graph)
        self.last_extract = ExtractCounts()
        self.last_dedup = DedupCounts()

    def open(self, state: dict[str, Any] | None, usage: dict[str, Any] | None) -> None:
        """Connect the cascade; on a resume, restore the stages (``state``) and the accounting (``usage``)."""
        self.cascade.open()
        for line in self.cascade.describe():
            self.say(f"LLM {line.get('provider')}: {line.get('model')}, {line.get('keys')} key(s)")
        if state is None:
            self.dedup.reset()
            return
        self.score.restore(state.get("score", {}))
        self.dedup.restore(state.get("dedup", {}))
        self.graph.restore(state.get("factgraph", {}))
        self.extract.restore(state.get("extract", {}))
        if usage:
            self.cascade.restore_usage(usage)

    def process(self, batch: Batch) -> FactsStep:
        by_id = {r.id: r for r in batch.records}
        result = self.extract.process(batch)
        failed = {cid: (by_id[cid], reason) for cid, reason in result.failed.items() if cid in by_id}
        facts = self.score.process(result.facts)
        deduped = self.dedup.process(facts)
        self.last_extract = result.counts
        self.last_dedup = deduped.counts
        return FactsStep(facts=deduped.batch, failed=failed, updated=list(deduped.updated))

    def edges(self, batch: Batch, exclude: list[str]) -> list[Edge]:
        return self.graph.process(batch, exclude=set(exclude))

    def state(self) -> dict[str, Any]:
        return {
            "score": self.score.state(),
            "dedup": self.dedup.state(),
            "factgraph": self.graph.state(),
            "extract": self.extract.state(),
        }

    def usage(self) -> dict[str, Any]:
        return self.cascade.usage()

    def close(self) -> None:
        for closer in (self.cascade.close, self.dedup.close, self.cache.close):
            try:
                closer()
            except Exception:  # noqa: BLE001 - closing must not hide the run's own outcome
                pass
