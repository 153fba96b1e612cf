"""The recipe model: one pydantic tree, built from the registered plugins.

Every pluggable part (source, target, embedder) is a discriminated union on ``type:`` over the config
models the registry knows, so a third-party connector's options are validated (and appear in the JSON
Schema) exactly like the built-ins'. Unknown keys are errors everywhere (``extra="forbid"``).
"""

import sys
from functools import cache
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..crypto.settings import SigningSettings
from ..pluginspec import PluginSpec
from ..providers.llm.settings import LLMSettings
from ..registry import Kind, plugins
from ..stages.adapt import AdaptSettings
from ..stages.chunk import ChunkSettings
from ..stages.settings_extract import DedupSettings, ExtractSettings, FactGraphSettings, ScoreSettings
from ..sync.settings import SyncSettings

__all__ = ["PublishSettings", "RunSettings", "Strict", "Used", "plugin_union", "recipe_model", "used_plugins"]


#: plugins whose config model could not be imported: "kind name" -> error
BROKEN: dict[str, str] = {}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RaySettings(Strict):
    """``run.ray``: where and how wide ``run.executor: ray`` runs."""

    address: str | None = Field(
        default=None,
        description="The Ray cluster to join (as ray.init(address=...)); default: RAY_ADDRESS, else a local Ray "
        "started with this machine's cores (dashboard and usage statistics off).",
    )
    workers: int | None = Field(
        default=None,
        ge=1,
        le=4096,
        description="Worker actors, each holding the plan's per-batch stages (its embedder, its LLM clients) and "
        "the store connections (default: the cluster's CPUs).",
    )
    worker_cpus: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPUs each worker reserves and runs its models on (default: the cluster's CPUs divided by the "
        "workers, at least 1): a local embedder's threads follow it.",
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=100_000,
        description="Partitions per source (default: 4 per worker). Fixed at a run's start: a resumed run keeps "
        "the partitions it started with.",
    )


class RunSettings(Strict):
    """How the runner works: batching, where state lives, what a terminal record error does."""

    batch_size: int = Field(default=256, ge=1, le=100_000, description="Records per batch.")
    state_dir: str | None = Field(
        default=None, description="Where the checkpoint, cache, events and rejects live (default .vexrun/state/…)."
    )
    on_error: Literal["quarantine", "fail"] = Field(
        default="quarantine",
        description="A record that fails terminally: 'quarantine' writes it to the rejects file and goes on; "
        "'fail' stops the run (resumable).",
    )
    max_rejects: int | None = Field(
        default=None, ge=0, description="Stop the run once this many records were rejected (None: no limit)."
    )
    executor: Literal["local", "ray"] = Field(
        default="local",
        description="What runs the plan's stages: 'local' (this process, batch after batch) or 'ray' (partitions "
        "of the sources on a Ray cluster, or a local Ray on this machine's cores; the extra vexrun[ray]).",
    )
    ray: RaySettings = Field(
        default_factory=lambda: RaySettings(), description="How run.executor: ray runs (ignored by 'local')."
    )
    verify: Literal["sample", "count", "full", "off"] = Field(
        default="sample",
        description="After the run, check that each target holds what was written: 'count' compares the number "
        "of records per namespace, 'sample' also reads back a seeded sample and compares it (text, vector, "
        "metadata), 'full' reads back every record, 'off' skips the check. A difference exits 5.",
    )

    @field_validator("verify", mode="before")
    @classmethod
    def _yaml_off(cls, value: Any) -> Any:
        # YAML 1.1 reads an unquoted `off` as false: `verify: off` means the word
        return "off" if value is False else value

    verify_sample: int = Field(
        default=1000,
        ge=1,
        le=10_000_000,
        description="Records read back by run.verify: sample (or 1% of the records written, whichever is more).",
    )


class PublishSettings(Strict):
    """Whether a finished run publishes its output (``signing:``, then ``sync:``)."""

    on_rejects: Literal["skip", "publish"] = Field(
        default="skip",
        description="A run that rejected records (exit 3): 'skip' signs and pushes nothing, so a failed run "
        "(every LLM call refused, say) never becomes the backup's newest generation; 'publish' publishes anyway.",
    )


class _BothSplitNames:
    """``split:`` and ``chunk:`` (its old name) both given: reported at ``split:``."""

    def __init__(self, value: Any) -> None:
        self.value = value


def plugin_union(kind: Kind, only: frozenset[str] | None = None) -> Any:
    """``Annotated[Union[ConfigA, ConfigB, ...], Field(discriminator="type")]`` over a kind's plugins, or over
    those named in ``only`` (canonical names) and one more, so that the union stays a tagged union."""
    found: list[Any] = []
    specs = list(plugins(kind).values())
    if only is not None:  # the one more: one whose config is loaded already (the test store's), else the file's
        others = sorted((spec for spec in specs if spec.name not in only), key=_import_cost)
        extra = others[0] if others else None
        specs = [spec for spec in specs if spec.name in only or (len(only) < 2 and spec is extra)]
    for spec in specs:
        try:
            found.append(spec.config_model())
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not take the others down with it
            BROKEN[f"{kind} {spec.name}"] = f"{type(exc).__name__}: {exc}"
    models = tuple(found)
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]  # noqa: UP007 - a runtime tuple of types


def _import_cost(spec: PluginSpec) -> tuple[bool, bool]:
    """Sorts the plugins whose config module is imported already first, then the ``.vmig.jsonl`` file's."""
    module, _, name = spec.config.partition(":")
    return name not in vars(sys.modules.get(module, sys)), spec.name != "vmig"


#: the recipe's keys that hold plugin configs: key, kind, whether it holds a list of them
_PLUGIN_KEYS: tuple[tuple[str, Kind, bool], ...] = (
    ("source", "source", False),
    ("sources", "source", True),
    ("embed", "embedder", False),
    ("target", "sink", False),
    ("targets", "sink", True),
)

#: the plugins of a recipe, by kind (source, sink, embedder): see :func:`used_plugins`
Used = tuple[frozenset[str], frozenset[str], frozenset[str]]


def used_plugins(data: Any) -> Used | None:
    """The canonical names of the sources, targets and embedder a recipe (as parsed, before validation) names,
    or None when one of them is not a mapping with the ``type`` of a registered plugin (the full model then
    reports it, listing every known type). Importing a plugin's config module costs 1-10 ms; a recipe names
    two or three of the ~30."""
    if not isinstance(data, dict):
        return None
    found: dict[str, set[str]] = {"source": set(), "sink": set(), "embedder": set()}
    for key, kind, many in _PLUGIN_KEYS:
        value = data.get(key)
        if value is None:
            continue
        items = value if many else [value]
        if not isinstance(items, list):
            return None
        for item in items:
            name = item.get("type") if isinstance(item, dict) else None
            spec = next(
                (s for s in plugins(kind).values() if isinstance(name, str) and name in (s.name, *s.aliases)), None
            )
            if spec is None:
                return None
            found[kind].add(spec.name)
    return frozenset(found["source"]), frozenset(found["sink"]), frozenset(found["embedder"])


@cache
def recipe_model(used: Used | None = None) -> type[BaseModel]:
    """The Recipe model class (built once per process from the registered plugins), or one that knows only
    the plugins in ``used`` (:func:`used_plugins`): it validates a recipe naming only those exactly as the
    full model does."""
    # No `from __future__ import annotations` in this module: these unions are used as annotations below
    # and must be evaluated right here, where they are in scope.
    SourceT = plugin_union("source", None if used is None else used[0])  # noqa: N806
    SinkT = plugin_union("sink", None if used is None else used[1])  # noqa: N806
    EmbedderT = plugin_union("embedder", None if used is None else used[2])  # noqa: N806

    class Recipe(Strict):
        """A vexrun recipe (version 1)."""

        model_config = ConfigDict(extra="forbid", frozen=True, title="vexrun recipe")

        version: Literal[1] = Field(description="Recipe format version; always 1.")
        name: str | None = Field(default=None, description="A name for the job (default: the file name).")
        description: str | None = Field(default=None, description="What the job is for.")
        requires_vexrun: str | None = Field(
            default=None, description="A version specifier the running vexrun must satisfy, e.g. '>=0.1,<1'."
        )
        mode: Literal["raw", "extract", "smart"] = Field(
            default="raw",
            description="raw: chunk, embed, graph, store. extract / smart: LLM fact extraction, scoring and dedup "
            "before embedding.",
        )
        source: SourceT | None = Field(default=None, description="Where records come from.")  # type: ignore[valid-type]
        sources: list[SourceT] | None = Field(  # type: ignore[valid-type]
            default=None, description="Several sources, read one after the other."
        )
        embed: EmbedderT | None = Field(  # type: ignore[valid-type]
            default=None, description="The embedding model for records without a (matching) vector."
        )
        split: ChunkSettings | None = Field(
            default=None,
            description="Split texts longer than max_chars (default 2000) into overlapping parts, in every source "
            "chunk mode ('turn' included). Not a source's 'chunk:' mode, which says what makes one record.",
        )
        chunk: ChunkSettings = Field(
            default_factory=ChunkSettings,
            description="The old name of 'split:' (still read; give one of the two).",
        )
        llm: LLMSettings | None = Field(
            default=None,
            description="extract / smart mode: the LLM providers to call, in order (default: auto — those whose "
            "keys are set, plus a local Ollama that answers).",
        )
        extract: ExtractSettings = Field(default_factory=ExtractSettings)
        score: ScoreSettings = Field(default_factory=ScoreSettings)
        dedup: DedupSettings = Field(default_factory=DedupSettings)
        adapt: AdaptSettings | None = Field(
            default=None,
            description="How vectors from another model fit the target: reembed (the default when `embed` is "
            "set), project (a fitted linear map) or truncate (Matryoshka models).",
        )
        graph: FactGraphSettings = Field(
            default_factory=FactGraphSettings,
            description="Edges between records. raw mode: temporal edges only; extract / smart: temporal, tag, "
            "entity and causal.",
        )
        target: SinkT | None = Field(default=None, description="Where records go.")  # type: ignore[valid-type]
        targets: list[SinkT] | None = Field(  # type: ignore[valid-type]
            default=None, description="Several targets, all written with every batch."
        )
        run: RunSettings = Field(default_factory=RunSettings)
        signing: SigningSettings | None = Field(
            default=None, description="Sign the run's .vmig.jsonl output (a detached <file>.sig) after the run."
        )
        sync: SyncSettings | None = Field(
            default=None,
            description="Push the run's .vmig.jsonl output (after signing) to the encrypted git-backed backup.",
        )
        publish: PublishSettings = Field(
            default_factory=PublishSettings,
            description="When signing and sync happen: not after a run that rejected records, unless told.",
        )

        @model_validator(mode="before")
        @classmethod
        def _one_split_name(cls, data: Any) -> Any:
            if isinstance(data, dict) and data.get("split") is not None and data.get("chunk") is not None:
                return {**data, "split": _BothSplitNames(data["split"])}
            return data

        @field_validator("split", mode="before")
        @classmethod
        def _not_both(cls, value: Any) -> Any:
            if isinstance(value, _BothSplitNames):
                raise ValueError("give either 'split:' or 'chunk:' (its old name), not both")
            return value

        @model_validator(mode="after")
        def _split_is_chunk(self) -> Any:
            # one place holds the settings whichever name the recipe used: the plan reads `chunk`
            if self.split is not None:
                object.__setattr__(self, "chunk", self.split)
            return self

    return Recipe
