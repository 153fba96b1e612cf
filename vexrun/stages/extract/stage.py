"""The ``extract`` stage: chunks in, facts out, through the LLM cascade.

::

    stage = ExtractStage(ExtractSettings(), cascade)          # cascade: opened, with its LLMCache
    result = stage.process(batch)                              # batch of chunk records
    result.facts      # Batch of fact records (no vectors yet)
    result.failed     # {chunk id: reason} — every provider failed for these chunks; nothing was dropped
    result.relations  # [(cause fact id, effect fact id)] — also in each effect's metadata.caused_by
    result.counts     # chunks, calls, cached, repaired, facts, … for the run report

A record with text is a chunk. Chunks are packed into calls in batch order (see ``pack_tokens``); each call's
answer maps facts back to their chunk by its label. A fact becomes a :class:`Record` with a deterministic id
(``record_id(namespace, "extract", chunk id, hash of the fact)``), the fact as its text, the chunk's
``created_at``, ``namespace`` and ``source_store``, and metadata: ``type``, ``importance``, ``entities``,
``tags``, ``potential``, ``attributed_to``, ``source_chunk_id``, ``source_message_ids`` (all messages of the
chunk), ``conversation_id``, ``conversation_title``, ``turn_index``, ``fact_index`` (order in the chunk),
``extracted_by`` (``provider:model``), ``prompt_version`` and, for an effect, ``caused_by`` (fact ids).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from ...errors import VexrunError
from ...ids import content_hash, record_id
from ...providers.llm.base import ChatRequest, estimate_tokens
from ...providers.llm.cascade import Cascade, Outcome
from ...vmig.batch import Batch
from ...vmig.model import MetadataValue, Record
from ..base import Rejected, Stage, StageContext, StageResult, StageSpec
from ..settings_extract import ExtractSettings
from .parse import ParsedAnswer, ParsedFact, find_json, validate
from .prompt import PROMPT_VERSION, ChunkView, build_request, observed_date, user_context_text

__all__ = ["ExtractCounts", "ExtractResult", "ExtractStage"]

SOURCE = "extract"


@dataclass
class ExtractCounts:
    chunks: int = 0
    #: requests made of the cascade (one per chunk or pack)
    requests: int = 0
    #: HTTP calls answered (repairs included), and requests answered from the cache without any call
    calls: int = 0
    cached: int = 0
    repaired: int = 0
    facts: int = 0
    below_importance: int = 0
    over_limit: int = 0
    #: chunks without text (nothing to extract)
    skipped: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class ExtractResult:
    facts: Batch
    failed: dict[str, str] = field(default_factory=dict)
    relations: list[tuple[str, str]] = field(default_factory=list)
    counts: ExtractCounts = field(default_factory=ExtractCounts)


@dataclass
class _Unit:
    chunks: list[Record]
    labels: list[str]
    request: ChatRequest


class ExtractStage(Stage):
    """Built from a plan (:meth:`from_spec`), the stage owns its cascade: :meth:`open` builds the providers
    and the LLM cache in the state directory and restores the usage accounting of a resumed run."""

    name = "extract"

    def __init__(
        self,
        settings: ExtractSettings,
        cascade: Cascade | None,
        *,
        on_progress: Callable[[int, int], None] | None = None,
        llm: Any = None,
    ) -> None:
        self.settings = settings
        self.cascade: Cascade = cascade  # type: ignore[assignment]  # built by open() when None
        self._owned: list[Any] = []
        #: the recipe's `llm:` settings (None: auto), when the stage builds its own cascade
        self.llm = llm
        #: called (from worker threads) as each request finishes: (requests done, requests in the batch)
        self.on_progress = on_progress
        self._retries = 0

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        extract, llm = spec.config
        return cls(extract, None, llm=llm)._bind(spec, ctx)

    def open(self, state: dict[str, Any] | None) -> None:
        ctx = self.ctx
        if self.cascade is None and ctx is not None:
            from ...providers.llm.settings import LLMSettings, build_providers
            from ..llm_cache import LLMCache

            settings: LLMSettings = self.llm or LLMSettings()
            cache = LLMCache(ctx.state_dir / "llm-cache.sqlite")
            self._owned.append(cache)
            self.cascade = Cascade(
                build_providers(settings, note=ctx.say),
                cache=cache,
                max_concurrency=settings.max_concurrency,
                max_rate_retries=settings.max_rate_retries,
                log_fn=ctx.say,
                reask_invalid=ctx.retry,
            )
            self.cascade.open()
            self._owned.insert(0, self.cascade)
            for line in self.cascade.describe():
                ctx.say(f"LLM {line.get('provider')}: {line.get('model')}, {line.get('keys')} key(s)")
        if state and state.get("usage"):
            self.cascade.restore_usage(state["usage"])
        self._retries = self._total_retries()

    def __getstate__(self) -> dict[str, Any]:
        if self._owned:
            raise TypeError("an opened extract stage does not pickle; pickle it before open()")
        return dict(self.__dict__)

    def close(self) -> None:
        for res in self._owned:
            try:
                res.close()
            except Exception:  # noqa: BLE001 - closing must not hide the run's own outcome
                pass
        self._owned = []

    def _total_retries(self) -> int:
        return int(self.cascade.usage()["total"].get("retries", 0)) if self.cascade is not None else 0

    # --- prompts ----------------------------------------------------------------------------------------------

    def view(self, record: Record, label: str) -> ChunkView:
        meta = record.metadata or {}
        title = meta.get("conversation_title")
        context = None
        raw_ctx = meta.get("user_editable_context")
        if isinstance(raw_ctx, str) and raw_ctx.strip():
            mode = self.settings.custom_instructions
            if mode == "all" or (mode == "first" and meta.get("chunk_index", 0) in (0, None)):
                context = user_context_text(raw_ctx)
        attachments: list[tuple[str, str]] = []
        if self.settings.attachments:
            found = meta.get("attachments")
            for item in found if isinstance(found, list) else []:
                parsed = _attachment(item, self.settings.attachment_chars)
                if parsed is not None:
                    attachments.append(parsed)
        return ChunkView(
            label=label,
            title=title if isinstance(title, str) else None,
            observed=observed_date(record),
            transcript=record.text or "",
            context=context,
            attachments=tuple(attachments),
        )

    def units(self, records: list[Record]) -> list[_Unit]:
        """Chunks packed into calls, in order: consecutive small chunks share a call while the estimated input
        stays under ``pack_tokens`` and ``pack_max_chunks``."""
        s = self.settings
        units: list[_Unit] = []
        pack: list[tuple[Record, ChunkView]] = []
        cost = 0

        def flush() -> None:
            nonlocal pack, cost
            if pack:
                views = [v for _, v in pack]
                out_budget = min(s.max_output_tokens * len(views), 16_384)
                request = build_request(views, s.instructions, out_budget, s.temperature)
                units.append(_Unit([r for r, _ in pack], [v.label for v in views], request))
            pack, cost = [], 0

        for rec in records:
            view = self.view(rec, f"c{len(pack) + 1}")
            size = estimate_tokens(view.render())
            if pack and (cost + size > s.pack_tokens or len(pack) >= s.pack_max_chunks):
                flush()
                view = self.view(rec, "c1")
            pack.append((rec, view))
            cost += size
            if size >= s.pack_tokens:
                flush()
        flush()
        return units

    # --- the stage --------------------------------------------------------------------------------------------

    def process(self, batch: Batch) -> StageResult:
        """Chunks in, facts out. Chunks every provider failed on are rejected (stage extract), from where
        ``--retry-rejected`` takes them again."""
        by_id = {r.id: r for r in batch.records}
        result = self.extract(batch)
        usage = self.cascade.usage()
        retries = int(usage["total"].get("retries", 0))
        counts = {
            "in": len(batch),
            "out": result.counts.facts,
            "rejected": len(result.failed),
            "skipped": result.counts.skipped,
            "retries": retries - self._retries,
        }
        self._retries = retries
        out = StageResult(result.facts, counts, figures={"llm": usage})
        out.rejected = [Rejected(reason, by_id[cid]) for cid, reason in result.failed.items() if cid in by_id]
        if result.failed and self.ctx is not None and self.ctx.on_error == "fail":
            first = next(iter(result.failed.values()))
            raise VexrunError(
                f"{len(result.failed)} chunk(s) failed on every LLM provider ({first}) and run.on_error is 'fail'",
                hint=f"resume with: {self.ctx.resume}",
            )
        return out

    def extract(self, batch: Batch) -> ExtractResult:
        counts = ExtractCounts(chunks=len(batch))
        chunks = [r for r in batch.records if r.text and r.text.strip()]
        counts.skipped = len(batch) - len(chunks)
        units = self.units(chunks)
        counts.requests = len(units)
        done = [0]
        lock = threading.Lock()

        def progress(i: int, outcome: Outcome[ParsedAnswer]) -> None:
            if self.on_progress is not None:
                with lock:
                    done[0] += 1
                    n = done[0]
                self.on_progress(n, len(units))

        items = [(u.request, _parser(u.labels)) for u in units]
        outcomes = self.cascade.complete_many(items, on_done=progress if self.on_progress else None)
        records: list[Record] = []
        result = ExtractResult(facts=Batch(records=records, cursor=batch.cursor), counts=counts)
        seen: set[str] = set()
        counted: set[int] = set()
        for unit, outcome in zip(units, outcomes, strict=True):
            if id(outcome) not in counted:  # identical requests share one outcome
                counted.add(id(outcome))
                counts.calls += outcome.calls
                counts.cached += int(outcome.cached)
                counts.repaired += int(outcome.repaired)
            if not outcome.ok or outcome.value is None:
                for rec in unit.chunks:
                    result.failed[rec.id] = f"extract: {outcome.reason or 'no answer'}"
                continue
            self._facts(unit, outcome, result, seen)
        counts.failed = len(result.failed)
        counts.facts = len(records)
        return result

    def _facts(self, unit: _Unit, outcome: Outcome[ParsedAnswer], result: ExtractResult, seen: set[str]) -> None:
        assert outcome.value is not None
        s = self.settings
        by_label: dict[str, list[ParsedFact]] = {label: [] for label in unit.labels}
        for f in outcome.value.facts:
            by_label[f.chunk].append(f)
        ids: dict[str, str] = {}
        made: dict[str, Record] = {}
        for rec, label in zip(unit.chunks, unit.labels, strict=True):
            facts = by_label[label]
            kept = [f for f in facts if f.importance >= s.min_importance]
            result.counts.below_importance += len(facts) - len(kept)
            if len(kept) > s.max_facts_per_chunk:
                top = sorted(kept, key=lambda f: (-f.importance, f.order))[: s.max_facts_per_chunk]
                result.counts.over_limit += len(kept) - len(top)
                kept = sorted(top, key=lambda f: f.order)
            for n, f in enumerate(kept):
                fid = record_id(rec.namespace, SOURCE, rec.id, content_hash(f.fact))
                ids.setdefault(f.local_id, fid)
                if fid in seen:
                    continue
                seen.add(fid)
                fact = self._record(rec, f, fid, n, f"{outcome.provider}:{outcome.model}")
                made[fid] = fact
                result.facts.records.append(fact)
        for cause, effect in outcome.value.relations:
            if cause in ids and effect in ids and ids[cause] != ids[effect] and ids[effect] in made:
                pair = (ids[cause], ids[effect])
                result.relations.append(pair)
                meta = made[pair[1]].metadata
                assert meta is not None
                caused = meta.setdefault("caused_by", [])
                assert isinstance(caused, list)
                if pair[0] not in caused:
                    caused.append(pair[0])

    def _record(self, chunk: Record, f: ParsedFact, fid: str, n: int, by: str) -> Record:
        cm = chunk.metadata or {}
        msg_ids = cm.get("source_message_ids")
        meta: dict[str, MetadataValue] = {
            "type": f.type,
            "importance": f.importance,
            "entities": list(f.entities),
            "tags": list(f.tags),
            "potential": list(f.potential),
            "attributed_to": f.attributed_to,
            "source_chunk_id": chunk.id,
            "source_message_ids": list(msg_ids) if isinstance(msg_ids, list) else [],
            "conversation_id": _scalar(cm.get("conversation_id")),
            "conversation_title": _scalar(cm.get("conversation_title")),
            "turn_index": _scalar(cm.get("turn_index")),
            "fact_index": n,
            "extracted_by": by,
            "prompt_version": PROMPT_VERSION,
        }
        return Record(
            id=fid,
            text=f.fact,
            namespace=chunk.namespace,
            metadata=meta,
            created_at=chunk.created_at,
            source_store=chunk.source_store,
            modality="text",
        )

    def state(self) -> dict[str, Any]:
        return {"usage": self.cascade.usage()} if self.cascade is not None else {}


def _parser(labels: list[str]) -> Callable[[str], ParsedAnswer]:
    def parse(text: str) -> ParsedAnswer:
        return validate(find_json(text), labels)

    return parse


def _scalar(value: Any) -> MetadataValue:
    return value if value is None or isinstance(value, str | int | float | bool) else str(value)


def _attachment(item: Any, limit: int) -> tuple[str, str] | None:
    """(name, text) of an attachment that carries extracted text (Claude's ``extracted_content``)."""
    try:
        data = orjson.loads(item) if isinstance(item, str) else item
    except orjson.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    data = data.get("original", data) if "extracted_content" not in data else data
    text = data.get("extracted_content") if isinstance(data, dict) else None
    if not isinstance(text, str) or not text.strip():
        return None
    name = str(data.get("file_name") or "pasted text")
    return name, text if len(text) <= limit else text[:limit] + "\n[… cut]"
