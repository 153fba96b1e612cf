"""The library behind ``plan``, ``check``, ``status``, ``reset`` and ``connectors``."""

from __future__ import annotations

import dataclasses
import os
import shutil
from dataclasses import dataclass
from typing import Any

from .build import build_connectors, build_embedder, close_quietly, run_context
from .checkpoint import StateDir, decide
from .connectors.base import Capabilities
from .errors import VexrunError
from .planner import Plan, compile_plan
from .recipe.loader import load_recipe
from .registry import Kind, plugins
from .status import recipe_status

__all__ = [
    "CheckResult",
    "PlanReport",
    "check_recipe",
    "list_plugins",
    "plan_report",
    "recipe_status",
    "reset_recipe",
    "resume_info",
    "search_recipe",
]


def resume_info(plan: Plan) -> dict[str, Any]:
    """What a run of ``plan`` would do with the checkpoint it finds (read without the lock)."""
    stored, progress, _ = StateDir(plan.state_dir).peek()
    decision = decide(stored, progress, (plan.fingerprint, plan.stage_fingerprints))
    info: dict[str, Any] = {"action": decision.action, "detail": decision.detail()}
    if decision.action == "refuse":
        info["differ"] = decision.differ
    if decision.action == "resume" and progress is not None:
        info["batch"] = progress.batches + 1
    return info


@dataclass
class PlanReport:
    plan: Plan
    resume: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "resume": self.resume}


def plan_report(recipe: str, *, env_file: str | None = None) -> PlanReport:
    """The plan of ``recipe`` and what a run would do with the checkpoint. Secrets may be unset."""
    doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    plan = compile_plan(doc)
    return PlanReport(plan=plan, resume=resume_info(plan))


@dataclass
class CheckResult:
    part: str
    ok: bool
    detail: str


def check_recipe(recipe: str, *, env_file: str | None = None) -> list[CheckResult]:
    """Open every source, target and the embedder; report what answers. Nothing is written."""
    doc = load_recipe(recipe, env_file=env_file)
    plan = compile_plan(doc)
    results: list[CheckResult] = []
    parts: list[tuple[str, Any]] = []
    try:
        built = build_connectors(plan, run_context(plan))
        parts = [(spec.title, part) for spec, part in [*built.sources, *built.sinks]]
        if plan.embed is not None:
            embedder = build_embedder(plan.embed)
            parts.append((f"embed ({embedder.model_id})", embedder))
    except VexrunError as exc:
        close_quietly(*(part for _, part in parts))
        return [CheckResult("recipe", False, str(exc))]
    for title, part in parts:
        try:
            detail = part.check()
            results.append(CheckResult(title, True, detail))
        except VexrunError as exc:
            results.append(CheckResult(title, False, str(exc)))
        finally:
            close_quietly(part)
    return results


def reset_recipe(recipe: str, *, env_file: str | None = None, everything: bool = False) -> list[str]:
    """Delete the checkpoint (and with ``everything`` the whole state dir). Holds the lock while doing it."""
    doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    plan = compile_plan(doc)
    state = StateDir(plan.state_dir)
    if not state.path.exists():
        return []
    removed: list[str] = []
    with state.lock("vexrun reset"):
        if everything:
            for child in sorted(state.path.iterdir()):
                if child.name == "lock":
                    continue
                removed.append(child.name)
                shutil.rmtree(child) if child.is_dir() else child.unlink()
        else:
            for name in (
                "checkpoint.sqlite",
                "checkpoint.sqlite-wal",
                "checkpoint.sqlite-shm",
                "plan.json",
                "rejects.vmig.jsonl",
            ):
                path = state.path / name
                if path.exists():
                    path.unlink()
                    removed.append(name)
    if everything:
        try:
            os.unlink(state.path / "lock")
            state.path.rmdir()
        except OSError:
            pass
    return removed


def list_plugins() -> list[dict[str, Any]]:
    rows = []
    kinds: tuple[Kind, ...] = ("source", "sink", "embedder")
    for kind in kinds:
        for spec in plugins(kind).values():
            rows.append(
                {
                    "kind": kind,
                    "name": spec.name,
                    "aliases": list(spec.aliases),
                    "summary": spec.summary,
                    "extra": spec.extra,
                    "installed": spec.installed(),
                    "capabilities": dataclasses.asdict(spec.capabilities) if spec.capabilities else None,
                }
            )
    return rows


def search_recipe(
    recipe: str,
    query: str,
    *,
    k: int = 10,
    namespace: str | None = None,
    target: int | None = None,
    env_file: str | None = None,
) -> list[Any]:
    """Search a recipe's target (the first searchable one, or ``targets[target]``) with the recipe's embedder."""
    from .errors import UsageError

    doc = load_recipe(recipe, env_file=env_file)
    plan = compile_plan(doc)
    built = build_connectors(plan, run_context(plan))
    embedder = None
    try:
        candidates = [
            sink
            for i, (spec, sink) in enumerate(built.sinks)
            if (target is None or i == target) and (spec.plugin and spec.plugin.capabilities or _NO_CAPS).search
        ]
        if not candidates:
            raise UsageError(
                f"{doc.display}: no target of this recipe can be searched"
                + (f" (targets[{target}])" if target is not None else "")
            )
        sink = candidates[0]
        vector = None
        if plan.embed is not None and sink.name != "sqlite":  # the local store embeds the query itself
            embedder = build_embedder(plan.embed)
            embedder.open()
            vector = embedder.embed([query])[0]
        sink.connect()
        return list(sink.search(vector, query, k, namespace))
    finally:
        built.close()
        close_quietly(embedder)


_NO_CAPS = Capabilities()
