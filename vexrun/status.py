"""``vexrun status``: where a recipe's runs stand, told the way they really are.

A run's row says ``running`` from its start until it records how it ended (``completed``, ``failed`` with the
error, ``interrupted`` by a signal). A process killed outright (``kill -9``, a lost machine) records nothing: its
row still says ``running`` while no process holds the state lock, and it is shown as ``interrupted``.

The state directory is found from the recipe's plan; a recipe that no longer validates (a typo, a variable no
longer set) is still looked up, from its state directory: the one ``run.state_dir`` names, or the
``.vexrun/state/<name>-<hash of the recipe's path>/`` beside it. A state directory may also be given itself.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .checkpoint import Progress, StateDir, decide
from .errors import InvalidInput
from .planner import Plan, compile_plan
from .recipe.loader import load_recipe

__all__ = ["recipe_status", "run_state", "state_candidates"]


def run_state(recorded: str, holder: str | None) -> str:
    """The status to show for a run recorded as ``recorded`` while ``holder`` holds the lock (None: nobody)."""
    if recorded == "running":
        return "running" if holder else "interrupted"
    if recorded == "too-many-rejects":
        return "failed"
    return recorded


def _reason(recorded: str, holder: str | None, summary: dict[str, Any] | None, progress: Progress | None) -> str:
    error = (summary or {}).get("error")
    if error:
        return str(error)
    if recorded == "running":
        if holder:
            return f"in progress ({holder})"
        at = f" after batch {progress.batches:,}" if progress is not None else ""
        return f"the process stopped{at} without recording why (killed, or the machine went down)"
    if recorded == "too-many-rejects":
        return "stopped: more records rejected than run.max_rejects allows"
    if recorded == "interrupted":
        return "stopped by a signal; the checkpoint is saved"
    return ""


def state_candidates(recipe: Path) -> list[Path]:
    """Where the state of ``recipe`` may be without a valid plan, most likely first: the directory its
    ``run.state_dir`` names (when the YAML still parses and the value holds no variable), then every
    ``.vexrun/state/*-<hash>`` beside it (the hash is of the recipe's real path, the name part may have changed),
    newest first. Mirrors :func:`vexrun.planner.default_state_dir`."""
    import blake3

    from .recipe.yamlpos import load_yaml

    directory = recipe.parent
    out: list[Path] = []
    try:
        data = load_yaml(recipe.read_text(encoding="utf-8", errors="replace")).data
    except (OSError, ValueError):
        data = None
    run = data.get("run") if isinstance(data, dict) else None
    configured = run.get("state_dir") if isinstance(run, dict) else None
    if isinstance(configured, str) and configured and "${" not in configured:
        p = Path(configured).expanduser()
        out.append(p if p.is_absolute() else directory / p)
    digest = blake3.blake3(os.path.realpath(recipe).encode()).hexdigest(4)

    def age(p: Path) -> float:
        try:
            return (p / "checkpoint.sqlite").stat().st_mtime
        except OSError:
            return 0.0

    out += sorted((directory / ".vexrun" / "state").glob(f"*-{digest}"), key=age, reverse=True)
    return [p for p in out if (p / "checkpoint.sqlite").is_file()]


def _locate(recipe: str, env_file: str | None) -> tuple[str, StateDir, Plan | None, InvalidInput | None]:
    """(how to name it, its state, its plan or None, why the recipe does not validate or None)."""
    path = Path(recipe)
    if path.is_dir():
        return recipe, StateDir(path), None, None
    try:
        doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
        plan = compile_plan(doc)
    except InvalidInput as exc:
        found = state_candidates(path)
        if not found:
            raise
        return recipe, StateDir(found[0]), None, exc
    return doc.display, StateDir(plan.state_dir), plan, None


def recipe_status(recipe: str, *, env_file: str | None = None) -> dict[str, Any]:
    """Where the runs of ``recipe`` (a recipe file, or a state directory) stand: the checkpoint with its real
    status and why, every run, what the next ``vexrun run`` does, cache and rejects. A recipe that no longer
    validates is reported from its state directory; without one, its validation error is raised."""
    display, state, plan, problem = _locate(recipe, env_file)
    out: dict[str, Any] = {"recipe": display, "state_dir": str(state.path), "exists": state.exists()}
    out["valid"] = problem is None
    if problem is not None:
        out["problem"] = str(problem)
        out["problems"] = len(getattr(problem, "findings", []) or []) or 1
    stored, progress, runs = state.peek()
    holder = state.holder()
    if holder:
        out["lock"] = holder
    summaries = {r["run"]: r.get("summary") for r in runs}
    if progress is not None:
        status = run_state(progress.status, holder)
        out["checkpoint"] = {
            "run": progress.run_id,
            "status": status,
            "recorded": progress.status,
            "reason": _reason(progress.status, holder, summaries.get(progress.run_id), progress),
            "batches": progress.batches,
            "records": progress.counts.get("source", {}).get("read", 0),
        }
    if plan is not None:
        if progress is not None:
            out["plan_changed"] = stored[0] != plan.fingerprint
        decision = decide(stored, progress, (plan.fingerprint, plan.stage_fingerprints))
        out["next"] = {"action": decision.action, "detail": decision.detail()}
    if state.exists():
        current = progress.run_id if progress is not None else None
        shown = []
        for r in runs:
            row = dict(r)
            live = holder if r["run"] == current else None
            row["recorded"] = r["status"]
            row["status"] = run_state(r["status"], live)
            reason = _reason(r["status"], live, r.get("summary"), progress if r["run"] == current else None)
            if reason and row["status"] != "completed":
                row["reason"] = reason
            shown.append(row)
        out["runs"] = shown
    entries = state.cache_entries()
    if entries is not None:
        out["cache"] = {"entries": entries}
    if state.rejects_path.exists() and state.rejects_path.stat().st_size:
        out["rejects"] = str(state.rejects_path)
    return out
