"""The library behind ``plan``, ``check``, ``status``, ``reset`` and ``connectors``."""

from __future__ import annotations

import dataclasses
import os
import shutil
import sqlite3
from dataclasses import dataclass
from typing import Any

import orjson

from .checkpoint import StateDir
from .connectors.base import Capabilities
from .errors import VexrunError
from .plan import Plan, compile_plan
from .recipe.loader import load_recipe
from .registry import Kind, plugins

__all__ = ["CheckResult", "PlanReport", "check_recipe", "list_plugins", "plan_report", "recipe_status", "reset_recipe"]


def _read_checkpoint(state: StateDir) -> tuple[str | None, dict[str, str], dict[str, Any] | None]:
    """(fingerprint, stage fingerprints, progress row) of a state dir, read-only and lock-free."""
    if not state.exists():
        return None, {}, None
    db = sqlite3.connect(f"file:{state.checkpoint_path}?mode=ro", uri=True)
    try:
        meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
        row = db.execute("SELECT run_id, status, batches, counts FROM progress WHERE id = 1").fetchone()
    except sqlite3.DatabaseError:
        return None, {}, None
    finally:
        db.close()
    progress = None
    if row is not None:
        counts = orjson.loads(row[3])
        progress = {
            "run": row[0],
            "status": row[1],
            "batches": row[2],
            "records": counts.get("source", {}).get("read", 0),
        }
    return meta.get("fingerprint"), orjson.loads(meta.get("stages", "{}")), progress


def resume_info(plan: Plan) -> dict[str, Any]:
    fingerprint, stages, progress = _read_checkpoint(StateDir(plan.state_dir))
    if fingerprint is None or progress is None:
        return {"action": "fresh", "detail": "no checkpoint: a run starts at the beginning"}
    if fingerprint != plan.fingerprint:
        now = plan.stage_fingerprints
        differ = sorted({t for t in set(stages) | set(now) if stages.get(t) != now.get(t)})
        return {
            "action": "refuse",
            "differ": differ,
            "detail": f"the checkpoint belongs to another plan (stages that differ: {', '.join(differ)}); "
            "a run refuses until you pass --fresh",
        }
    if progress["status"] == "completed":
        return {
            "action": "new-run",
            "detail": f"run {progress['run']} completed; a run starts a new one (cached work reused)",
        }
    return {
        "action": "resume",
        "batch": progress["batches"] + 1,
        "detail": f"resumes run {progress['run']} at batch {progress['batches'] + 1} "
        f"({progress['records']:,} records already done)",
    }


def _wrap(items: list[str], indent: int, width: int = 100) -> list[str]:
    lines: list[str] = []
    cur = ""
    for item in items:
        if cur and indent + len(cur) + 2 + len(item) > width:
            lines.append(" " * indent + cur)
            cur = item
        else:
            cur = f"{cur}, {item}" if cur else item
    if cur:
        lines.append(" " * indent + cur)
    return lines


@dataclass
class PlanReport:
    plan: Plan
    resume: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {**self.plan.to_json(), "resume": self.resume}

    def lines(self) -> list[str]:
        p = self.plan
        out = [f"plan for {p.doc.display} ({p.doc.name}) · mode {p.mode} · fingerprint {p.fingerprint}"]
        out.append("stages")
        for i, stage in enumerate(p.stages, start=1):
            out.append(f"  {i}. {stage.title}")
            pairs = [
                f"{key}: {value if isinstance(value, str) else orjson.dumps(value).decode()}"
                for key, value in stage.settings.items()
                if key not in ("type", "llm") and value is not None
            ]
            out.extend(_wrap(pairs, indent=7))
            llm = stage.settings.get("llm")
            if isinstance(llm, dict):
                cascade = llm.get("cascade")
                if isinstance(cascade, list):
                    out.append("       cascade (in order):")
                    for c in cascade:
                        budget = ", ".join(
                            f"{c[k]:,} {k.upper().replace('_', ' ')}" for k in ("tpm", "rpm", "output_tpm") if c.get(k)
                        )
                        price = c.get("price_per_1m")
                        cost = f", ${price['input']}/${price['output']} per 1M tokens" if price else ""
                        keys = "no key needed" if c.get("type") == "ollama" else f"{c['keys']} key(s) set"
                        out.append(
                            f"         {c['provider']}: {c['model']} at {c['url']}, {keys}"
                            f"{', ' + budget + ' per key' if budget else ''}{cost}"
                        )
                else:
                    out.append(f"       cascade: {cascade or llm.get('problem') or llm.get('providers')}")
            if stage.capabilities:
                c = stage.capabilities
                flags = [f"ids {c['ids']}", f"metadata {c['metadata']}", f"vectors {c['vectors']}"]
                if c.get("max_dims"):
                    flags.append(f"max dims {c['max_dims']}")
                if c.get("max_batch_records"):
                    flags.append(f"≤{c['max_batch_records']} records/batch")
                flags += [n for n in ("search", "edges", "namespaces") if c.get(n)]
                out.append(f"       capabilities: {' · '.join(flags)}")
        if p.secrets:
            out.append("secrets")
            for s in p.secrets:
                if s["literal"]:
                    out.append(f"  {s['field']}  written into the recipe (warning: use ${{VAR}})")
                for ref in s["refs"]:
                    shown = f"${{file:{ref['name']}}}" if ref["kind"] == "file" else f"${{{ref['name']}}}"
                    state = (
                        "set" if ref["set"] else ("not set: the default applies" if ref.get("default") else "MISSING")
                    )
                    out.append(f"  {s['field']}  {shown} ({state})")
        run = p.doc.model.run
        out.append(f"state    {p.state_dir}")
        out.append(f"resume   {self.resume['detail']}")
        out.append(f"run      batch_size {run.batch_size}, on_error {run.on_error}")
        for w in p.warnings:
            out.append(w.format(p.doc.display))
        return out


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
    from .runner import Runner, RunOptions

    doc = load_recipe(recipe, env_file=env_file)
    plan = compile_plan(doc)
    runner = Runner(plan, RunOptions(env_file=env_file, progress="none"))
    ctx = runner._context()
    results: list[CheckResult] = []
    parts: list[tuple[str, Any]] = []
    try:
        runner._build(ctx)
    except VexrunError as exc:
        return [CheckResult("recipe", False, str(exc))]
    for stage, source in zip([s for s in plan.stages if s.name == "source"], runner.sources, strict=True):
        parts.append((stage.title, source))
    for title, sink in runner.sinks:
        parts.append((title, sink))
    if runner.embedder is not None:
        parts.append((f"embed ({runner.embedder.model_id})", runner.embedder))
    for title, part in parts:
        try:
            detail = part.check()
            results.append(CheckResult(title, True, detail))
        except VexrunError as exc:
            results.append(CheckResult(title, False, str(exc)))
        finally:
            try:
                part.close()
            except Exception:  # noqa: BLE001 - a failed close must not hide the check result
                pass
    return results


def recipe_status(recipe: str, *, env_file: str | None = None) -> dict[str, Any]:
    doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    plan = compile_plan(doc)
    state = StateDir(plan.state_dir)
    out: dict[str, Any] = {"recipe": doc.display, "state_dir": str(state.path), "exists": state.exists()}
    fingerprint, _, progress = _read_checkpoint(state)
    if progress is not None:
        out["checkpoint"] = progress
        out["plan_changed"] = fingerprint != plan.fingerprint
    if state.exists():
        db = sqlite3.connect(f"file:{state.checkpoint_path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT id, started_at, finished_at, status, attempts, summary FROM runs ORDER BY id")
            out["runs"] = [
                {
                    "run": r[0],
                    "started_at": r[1],
                    "finished_at": r[2],
                    "status": r[3],
                    "attempts": r[4],
                    "summary": orjson.loads(r[5]) if r[5] else None,
                }
                for r in rows.fetchall()
            ]
        finally:
            db.close()
    if state.cache_path.exists():
        db = sqlite3.connect(f"file:{state.cache_path}?mode=ro", uri=True)
        try:
            out["cache"] = {"entries": db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]}
        finally:
            db.close()
    if state.rejects_path.exists() and state.rejects_path.stat().st_size:
        out["rejects"] = str(state.rejects_path)
    return out


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
    from .runner import Runner, RunOptions

    doc = load_recipe(recipe, env_file=env_file)
    plan = compile_plan(doc)
    runner = Runner(plan, RunOptions(env_file=env_file, progress="none"))
    runner._build(runner._context())
    try:
        candidates = [
            (title, sink)
            for i, (title, sink) in enumerate(runner.sinks)
            if (target is None or i == target) and (runner.sink_caps.get(title) or _NO_CAPS).search
        ]
        if not candidates:
            raise UsageError(
                f"{doc.display}: no target of this recipe can be searched"
                + (f" (targets[{target}])" if target is not None else "")
            )
        title, sink = candidates[0]
        vector = None
        if runner.embedder is not None and sink.name != "sqlite":  # the local store embeds the query itself
            runner.embedder.open()
            vector = runner.embedder.embed([query])[0]
        sink.connect()
        return list(sink.search(vector, query, k, namespace))
    finally:
        runner._close()


_NO_CAPS = Capabilities()
