"""Compile a recipe into a plan: the ordered stages with their resolved, redacted settings.

The plan is what a person reads before a run (``vexrun plan``), what the checkpoint is bound to (its
fingerprint: secrets excluded, the names of the variables they come from included), and what the runner
executes. Cross-field rules are checked here, each reported at the recipe line it is about.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import blake3
import orjson

from .errors import RecipeError
from .recipe.interpolate import Reference
from .recipe.loader import RecipeDoc, RecipeFinding, dotted
from .recipe.yamlpos import Path_
from .registry import resolve
from .stages.base import Role, StageSpec

__all__ = ["Plan", "StagePlan", "StageSpec", "compile_plan", "default_state_dir"]

#: Settings that change how a run goes, not what it produces: left out of the fingerprint.
_VOLATILE = {
    "batch_size",
    "concurrency",
    "timeout",
    "max_retries",
    "delay_ms",
    "log_file",
    "threads",
    "device",
    "engine",  # the local embedder's torch or numpy engine: the same vectors, the same cache
    "read_workers",
    "write_worker",  # a .vmig.jsonl target's writer process: the same bytes either way
    "max_member_bytes",
    "max_value_bytes",
}


#: The order the plan fingerprint lists its stages in: the order plans were printed in before the plan became
#: what runs, so a checkpoint made then still matches (stages that did not exist then are not fingerprinted).
_FINGERPRINT_ORDER = {
    n: i
    for i, n in enumerate(("source", "chunk", "adapt", "extract", "score", "dedup", "embed", "graph", "store", "sign"))
}
_FINGERPRINT_ORDER["sync"] = len(_FINGERPRINT_ORDER)

#: Kept for code that named the stage type of plans before the stage contract.
StagePlan = StageSpec


@dataclass
class Plan:
    """The compiled recipe: the stages in the order they run, each with its resolved settings."""

    doc: RecipeDoc
    mode: str
    stages: list[StageSpec]
    state_dir: Path
    secrets: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[RecipeFinding] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def stage_fingerprints(self) -> dict[str, str]:
        return {s.title: s.fingerprint for s in self.stages if s.fingerprint}

    def role(self, role: Role) -> list[StageSpec]:
        """The stages of one role (source, batch, store, publish), in order."""
        return [s for s in self.stages if s.role == role]

    @property
    def embed(self) -> StageSpec | None:
        return next((s for s in self.stages if s.name == "embed"), None)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.doc.display,
            "name": self.doc.name,
            "mode": self.mode,
            "fingerprint": self.fingerprint,
            "state_dir": str(self.state_dir),
            "stages": [
                {
                    "stage": s.name,
                    "title": s.title,
                    "settings": s.settings,
                    "capabilities": s.capabilities,
                    "fingerprint": s.fingerprint,
                }
                for s in self.stages
            ],
            "secrets": self.secrets,
            "warnings": [w.format(self.doc.display) for w in self.warnings],
            "run": self.doc.model.run.model_dump(mode="json"),
        }


def _ref_text(ref: Reference) -> str:
    return "${file:" + ref.name + "}" if ref.kind == "file" else "${" + ref.name + "}"


def _redacted(doc: RecipeDoc, base: Path_, value: Any) -> Any:
    """``value`` (a config model) dumped to JSON with every secret shown as the reference it came from."""
    data = value.model_dump(mode="json")
    for spath, refs in doc.secrets.items():
        if spath[: len(base)] != base:
            continue
        rel = spath[len(base) :]
        cur = data
        for part in rel[:-1]:
            cur = cur[part]
        last = rel[-1]
        present = (
            (0 <= last < len(cur)) if isinstance(cur, list) and isinstance(last, int) else cur.get(last) is not None
        )
        if refs:
            cur[last] = " ".join(_ref_text(r) for r in refs)
        elif present:
            cur[last] = "<literal in recipe>"
    return data


def _fingerprint(obj: Any) -> str:
    def strip(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in _VOLATILE}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v

    return blake3.blake3(orjson.dumps(strip(obj), option=orjson.OPT_SORT_KEYS)).hexdigest(16)


def default_state_dir(doc: RecipeDoc) -> Path:
    """``.vexrun/state/<name>-<hash of the recipe's real path>/`` beside the recipe, or ``run.state_dir``."""
    configured = doc.model.run.state_dir
    if configured:
        p = Path(configured).expanduser()
        return p if p.is_absolute() else doc.directory / p
    real = os.path.realpath(doc.path)
    digest = blake3.blake3(real.encode()).hexdigest(4)
    return doc.directory / ".vexrun" / "state" / f"{doc.name}-{digest}"


def _caps(spec_caps: Any) -> dict[str, Any] | None:
    return dataclasses.asdict(spec_caps) if spec_caps is not None else None


def _other_models(doc: RecipeDoc, target_model: str) -> list[str]:
    """Models that made the sources' vectors, other than the embedder's, as far as the sources can tell
    without reading data (capability ``declares_models``: a file's sidecar)."""
    found: set[str] = set()
    for cfg in doc.sources:
        spec = resolve("source", cfg.type)
        if spec.capabilities is None or not spec.capabilities.declares_models or not spec.installed():
            continue
        for m in spec.implementation().declared_models(cfg, doc.directory):
            if m and target_model not in str(m):
                found.add(str(m))
    return sorted(found)


def _describe_llm(doc: RecipeDoc) -> Any:
    """The cascade as the plan shows it: providers in order, their models, budgets and how many keys are set
    (never the keys). Built without any network call."""
    from .providers.llm.cascade import describe_provider
    from .providers.llm.settings import LLMSettings, build_providers

    settings = doc.model.llm or LLMSettings()
    redacted = _redacted(doc, ("llm",), settings) if doc.model.llm is not None else {"providers": "auto"}
    try:
        providers = build_providers(settings, probe=False)
    except Exception as exc:  # noqa: BLE001 - the plan reports, the run fails with the real error
        return {**redacted, "problem": str(exc)}
    described = [describe_provider(p) for p in providers]  # key counts only, never a key
    return {**redacted, "cascade": described or "no provider has a key set (and Ollama is not probed by plan)"}


_STAGES = "vexrun.stages"


def _spec(name: str, title: str, settings: dict[str, Any], impl: str, config: Any) -> StageSpec:
    return StageSpec(name, title, settings, role="batch", impl=f"{_STAGES}.{impl}", config=config)


def _declared_dims(settings: dict[str, Any], config: Any) -> int | None:
    dims = settings.get("dims") or settings.get("dimensions")
    if dims is None and hasattr(config, "declared_dims"):
        dims = config.declared_dims()
    return int(dims) if dims else None


def compile_plan(doc: RecipeDoc) -> Plan:
    """Compile a loaded recipe into the stages that run, in order. Raises :class:`RecipeError` with every rule
    the recipe breaks."""
    from .stages.adapt import AdaptSettings

    model = doc.model
    findings: list[RecipeFinding] = []
    stages: list[StageSpec] = []

    facts = model.mode in ("extract", "smart")
    if facts and model.embed is None and model.dedup.semantic:
        findings.append(
            doc.finding(
                ("mode",),
                "needs-embedder",
                f"mode '{model.mode}' deduplicates facts by embedding: add an 'embed:' section "
                "(or set 'dedup: {semantic: false}')",
            )
        )

    for path, cfg in zip(doc.source_paths(), doc.effective_sources(), strict=True):
        spec = resolve("source", cfg.type)
        stages.append(
            StageSpec(
                "source",
                f"{dotted(path)} ({spec.name})",
                _redacted(doc, path, cfg),
                role="source",
                config=cfg,
                plugin=spec,
            )
        )

    stages.append(_spec("chunk", "chunk", model.chunk.model_dump(mode="json"), "chunk:ChunkStage", model.chunk))
    ids = _spec("ids", "ids", {"duplicates": "the last record of an id in a batch wins"}, "chunk:IdsStage", None)
    stages.append(ids)

    if facts:
        extract_settings = model.extract.model_dump(mode="json")
        extract_settings["llm"] = _describe_llm(doc)
        stages.append(
            _spec(
                "extract", "extract (LLM)", extract_settings, "extract.stage:ExtractStage", (model.extract, model.llm)
            )
        )
        stages.append(_spec("score", "score", model.score.model_dump(mode="json"), "score:ScoreStage", model.score))
        stages.append(
            _spec("dedup", "dedup", model.dedup.model_dump(mode="json"), "dedup.stage:DedupStage", model.dedup)
        )

    adapt = model.adapt
    if adapt is not None:
        if adapt.strategy in ("project", "reembed") and model.embed is None:
            findings.append(
                doc.finding(
                    ("adapt", "strategy"),
                    "needs-embedder",
                    f"adapt '{adapt.strategy}' needs the target model: add an 'embed:' section",
                )
            )
        if adapt.strategy == "truncate" and adapt.dims is None and model.embed is None:
            findings.append(
                doc.finding(("adapt",), "missing-field", "adapt 'truncate' needs 'dims' (or an 'embed:' section)")
            )
        stages.append(
            _spec("adapt", f"adapt ({adapt.strategy})", adapt.model_dump(mode="json"), "adapt:AdaptStage", adapt)
        )
    elif model.embed is not None:
        other = _other_models(doc, str(getattr(model.embed, "model", "") or ""))
        if other:
            because = {"strategy": "reembed", "because": f"the source vectors come from {', '.join(other)}"}
            stages.append(
                _spec("adapt", "adapt (reembed)", because, "adapt:AdaptStage", AdaptSettings(strategy="reembed"))
            )

    embed_dims: int | None = None
    if model.embed is not None:
        spec = resolve("embedder", model.embed.type)
        settings = _redacted(doc, ("embed",), model.embed)
        embed_dims = _declared_dims(settings, model.embed)
        embed = _spec("embed", f"embed ({spec.name})", settings, "embed:EmbedStage", model.embed)
        embed.plugin = spec
        stages.append(embed)

    graph_impl = "factgraph:FactGraphStage" if facts else "graph:GraphStage"
    stages.append(_spec("graph", "graph", model.graph.model_dump(mode="json"), graph_impl, model.graph))

    # Sources that never carry vectors (conversation exports) need an embedder before an ANN target; stores
    # and .vmig.jsonl files bring their own.
    vectorless = sorted(
        {
            spec.name
            for spec in (resolve("source", c.type) for c in doc.sources)
            if spec.capabilities is None or spec.capabilities.vectors == "none"
        }
    )
    file_outputs: list[Any] = []
    for path, cfg in zip(doc.target_paths(), doc.targets, strict=True):
        spec = resolve("sink", cfg.type)
        caps = spec.capabilities
        if caps is not None and caps.needs_vectors and model.embed is None and vectorless:
            findings.append(
                doc.finding(
                    path,
                    "needs-embedder",
                    f"the target '{spec.name}' stores vectors, and the source gives none: add an 'embed:' section",
                )
            )
        if caps is not None and caps.max_dims and embed_dims and embed_dims > caps.max_dims:
            findings.append(
                doc.finding(
                    ("embed",),
                    "dims-too-large",
                    f"the embedder makes {embed_dims}-d vectors; '{spec.name}' holds at most {caps.max_dims}",
                )
            )
        if caps is not None and caps.file_output:
            file_outputs.append(cfg)
        stages.append(
            StageSpec(
                "store",
                f"{dotted(path)} ({spec.name})",
                _redacted(doc, path, cfg),
                role="store",
                config=cfg,
                plugin=spec,
                capabilities=_caps(caps),
            )
        )

    for section in ("signing", "sync"):
        settings = getattr(model, section)
        if settings is None:
            continue
        if not file_outputs:
            findings.append(
                doc.finding(
                    (section,),
                    "needs-vmig-target",
                    f"'{section}' acts on the run's .vmig.jsonl output: add a target with 'type: vmig'",
                )
            )
            continue
        name = "sign" if section == "signing" else "sync"
        output = file_outputs[0].path
        stage = _spec(
            name,
            f"{name} ({output})",
            _redacted(doc, (section,), settings),
            f"publish:{name.title()}Stage",
            (settings, output),
        )
        stage.role = "publish"
        stages.append(stage)

    if findings:
        findings.sort(key=lambda f: (f.line, f.column))
        raise RecipeError(
            f"{doc.display}: {len(findings)} problem{'s' if len(findings) != 1 else ''} in the recipe",
            findings=[f.format(doc.display) for f in findings],
            details=findings,
        )

    for stage in stages:
        if stage is not ids:
            stage.fingerprint = _fingerprint({"stage": stage.name, "settings": stage.settings})
    plan = Plan(
        doc=doc,
        mode=model.mode,
        stages=stages,
        state_dir=default_state_dir(doc),
        warnings=list(doc.warnings),
    )
    legacy = sorted((s for s in stages if s.fingerprint), key=lambda s: _FINGERPRINT_ORDER[s.name])
    plan.fingerprint = _fingerprint({"mode": model.mode, "stages": [s.fingerprint for s in legacy]})
    for spath, refs in sorted(doc.secrets.items(), key=lambda kv: dotted(kv[0])):
        plan.secrets.append(
            {
                "field": dotted(spath),
                "refs": [
                    {
                        "kind": r.kind,
                        "name": r.name,
                        "set": r.resolved and not r.used_default,
                        "default": r.used_default,
                    }
                    for r in refs
                ],
                "literal": not refs,
            }
        )
    return plan
