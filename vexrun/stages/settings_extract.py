"""Recipe settings of the extract-mode stages: ``extract``, ``score``, ``dedup`` and the fact graph (the LLM
cascade's ``llm:`` section is :class:`vexrun.providers.llm.settings.LLMSettings`)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..providers.llm.settings import LLMSettings

__all__ = ["DedupSettings", "ExtractSettings", "FactGraphSettings", "LLMSettings", "ScoreSettings"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExtractSettings(_Strict):
    """``extract:`` — how chunks become facts (one LLM call per chunk; small chunks share a call)."""

    pack_tokens: int = Field(
        default=1500,
        ge=0,
        le=100_000,
        description="Chunks are packed into one call while their estimated input stays under this many tokens "
        "(0: one call per chunk). A chunk larger than this goes alone.",
    )
    pack_max_chunks: int = Field(default=8, ge=1, le=64, description="Most chunks in one call.")
    max_output_tokens: int = Field(
        default=2048, ge=64, le=32_768, description="Longest answer a call may produce (max_tokens)."
    )
    max_facts_per_chunk: int = Field(
        default=20, ge=1, le=500, description="Most facts kept per chunk (the most important ones)."
    )
    min_importance: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Facts the model rates below this importance are left out."
    )
    attachments: bool = Field(
        default=False,
        description="Give the model the extracted text of the chunk's attachments, labelled as documents the "
        "user shared.",
    )
    attachment_chars: int = Field(
        default=4000, ge=100, le=200_000, description="Most characters of each attachment's text given."
    )
    custom_instructions: Literal["first", "all", "none"] = Field(
        default="first",
        description="ChatGPT's custom instructions (the user's own self-description), labelled as such: in the "
        "first chunk of each conversation, in every chunk, or never.",
    )
    instructions: str | None = Field(
        default=None, description="Extra guidance appended to the extraction prompt (e.g. what matters in your domain)."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="Sampling temperature of the calls.")


class ScoreSettings(_Strict):
    """``score:`` — ``score = importance_weight · importance + recency_weight · recency``, where recency halves
    every ``half_life_days`` of age before the reference time."""

    importance_weight: float = Field(default=0.7, ge=0.0, description="Weight of the fact's importance (0–1).")
    recency_weight: float = Field(default=0.3, ge=0.0, description="Weight of the recency (0–1).")
    half_life_days: float = Field(default=30.0, gt=0.0, le=36_500, description="Age at which recency is 0.5.")
    reference_time: datetime | None = Field(
        default=None,
        description="The time ages are measured from (ISO 8601). None: when the run started (kept on resume).",
    )
    default_importance: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Importance of a record that has none (not from extraction)."
    )
    undated_recency: float = Field(default=0.0, ge=0.0, le=1.0, description="Recency of a record without created_at.")

    @model_validator(mode="after")
    def _some_weight(self) -> ScoreSettings:
        if self.importance_weight + self.recency_weight <= 0:
            raise ValueError("importance_weight and recency_weight cannot both be 0")
        return self


class DedupSettings(_Strict):
    """``dedup:`` — exact duplicates (same normalised text), then near-duplicates (embedding cosine at or above
    ``threshold``) within a namespace; the more informative fact is kept, the merged ids and sources recorded."""

    exact: bool = Field(default=True, description="Merge facts whose normalised text is the same.")
    semantic: bool = Field(default=True, description="Merge facts whose embeddings are at least `threshold` alike.")
    threshold: float = Field(
        default=0.72, gt=0.0, le=1.0, description="Cosine similarity at or above which two facts are one (Vex: 0.72)."
    )
    ann_above: int = Field(
        default=20_000,
        ge=1000,
        description="Past this many facts in a namespace, search an inverted-file (IVF) index instead of all facts.",
    )
    nprobe: int = Field(default=16, ge=1, le=256, description="IVF cells searched per fact (more: better recall).")
    max_merged_ids: int = Field(
        default=100, ge=1, le=10_000, description="Most merged ids and sources recorded on one fact."
    )


class FactGraphSettings(_Strict):
    """``graph:`` in extract mode — typed, weighted edges between facts."""

    temporal: bool = Field(default=True, description="Link consecutive facts of a conversation.")
    tag: bool = Field(default=True, description="Link facts that share tags (weight: Jaccard overlap of the tags).")
    entity: bool = Field(default=True, description="Link facts that name the same entity.")
    causal: bool = Field(default=True, description="Link a cause to its effect, as the extraction reported them.")
    min_tag_weight: float = Field(
        default=0.25, ge=0.0, le=1.0, description="Tag edges lighter than this are not written."
    )
    links_per_key: int = Field(
        default=5, ge=1, le=100, description="A new fact is linked to at most this many recent facts per tag or entity."
    )
    memory_facts: int = Field(
        default=5000, ge=100, le=1_000_000, description="Recent facts remembered across batches to link new ones to."
    )
