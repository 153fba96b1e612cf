"""Verbs on recipes: ``run`` (and ``vexrun RECIPE``), ``plan``, ``check``, ``status``, ``reset``, ``schema``."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

__all__ = ["COMMANDS", "is_recipe_path", "validate_recipe"]

_env_file = click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Load variables from this dotenv file for ${VAR} interpolation (.env is never read implicitly).",
)


def is_recipe_path(path: str) -> bool:
    return path.endswith((".yaml", ".yml"))


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


def validate_recipe(path: str, env_file: str | None, fmt: str) -> int:
    """``vexrun validate RECIPE``: load and compile offline; print every finding."""
    from ..errors import RecipeError
    from ..plan import compile_plan
    from ..recipe.loader import load_recipe

    try:
        doc = load_recipe(path, env_file=env_file)
        plan = compile_plan(doc)
    except RecipeError as exc:
        if fmt == "json":
            _emit_json({"file": path, "valid": False, "findings": [f.to_json(path) for f in exc.details]})
        else:
            for line in exc.findings:
                click.echo(line)
            click.echo(f"{path}: INVALID: {len(exc.findings)} problem{'s' if len(exc.findings) != 1 else ''}")
        return 1
    if fmt == "json":
        _emit_json(
            {
                "file": path,
                "valid": True,
                "findings": [w.to_json(path) for w in plan.warnings],
                "fingerprint": plan.fingerprint,
            }
        )
    else:
        for w in plan.warnings:
            click.echo(w.format(path))
        stages = " → ".join(s.name for s in plan.stages if s.name not in ("source",)) or "-"
        n = len(plan.warnings)
        click.echo(f"{path}: valid: mode {plan.mode}, stages source → {stages}, {n} warning{'s' if n != 1 else ''}")
    return 0


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option("--fresh", is_flag=True, help="Start over instead of resuming (the embedding cache is kept).")
@click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON on stdout.")
@click.option(
    "--retry-rejected",
    is_flag=True,
    help="Re-run exactly the records the last (completed) run rejected after reading them, e.g. chunks every "
    "LLM provider failed on; bad input lines stay rejected.",
)
@click.option(
    "--progress",
    type=click.Choice(["auto", "bar", "log", "none"]),
    default="auto",
    show_default=True,
    help="Progress bars on a terminal, periodic log lines otherwise.",
)
def run(recipe: str, env_file: str | None, fresh: bool, as_json: bool, retry_rejected: bool, progress: str) -> int:
    """Run RECIPE: validate it, compile it to a plan and run it with resumable checkpoints.

    A killed or interrupted run resumes where it stopped when the same command is run again. Exit 0 when
    every record was written, 3 when some were rejected (they are in the rejects file), 4 when another
    run holds this recipe's lock, 130/143 when interrupted (the checkpoint is saved).
    """
    from ..runner import RunOptions
    from ..runner import run as run_recipe

    parts = ["vexrun", "run", recipe] + (["--env-file", env_file] if env_file else [])
    if retry_rejected:
        parts.append("--retry-rejected")
    options = RunOptions(
        env_file=env_file,
        fresh=fresh,
        progress=progress,
        command=" ".join(shlex.quote(p) for p in parts),
        retry_rejected=retry_rejected,
    )
    summary = run_recipe(recipe, options)
    if as_json:
        _emit_json(summary.to_json())
        for line in summary.table():
            click.echo(line, err=True)
    else:
        for line in summary.table():
            click.echo(line)
    return summary.exit_code


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Output format.")
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def plan(recipe: str, env_file: str | None, fmt: str, as_json: bool) -> int:
    """Show the plan RECIPE compiles to, without running it.

    The stages with their resolved settings (secrets shown only as the variable they come from), the
    targets' declared capabilities, the secrets referenced (set or missing) and what a run would start
    from: a fresh start, a resume at batch N, or a refusal because the checkpoint belongs to another plan.
    """
    from ..ops import plan_report

    report = plan_report(recipe, env_file=env_file)
    if as_json or fmt == "json":
        _emit_json(report.to_json())
    else:
        click.echo("\n".join(report.lines()))
    return 0


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def check(recipe: str, env_file: str | None, as_json: bool) -> int:
    """Connect to RECIPE's sources, targets and embedder and report what answers; writes nothing."""
    from ..ops import check_recipe

    results = check_recipe(recipe, env_file=env_file)
    if as_json:
        _emit_json([r.__dict__ for r in results])
    else:
        width = max(len(r.part) for r in results)
        for r in results:
            click.echo(f"{'ok  ' if r.ok else 'FAIL'}  {r.part:<{width}}  {r.detail}")
    return 0 if all(r.ok for r in results) else 1


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(recipe: str, env_file: str | None, as_json: bool) -> int:
    """Show where RECIPE's runs stand: the checkpoint, past runs with their counts, rejects and cache."""
    from ..ops import recipe_status

    st = recipe_status(recipe, env_file=env_file)
    if as_json:
        _emit_json(st)
        return 0
    click.echo(f"recipe      {st['recipe']}")
    click.echo(f"state       {st['state_dir']}{'' if st['exists'] else ' (no runs yet)'}")
    if st.get("checkpoint"):
        cp = st["checkpoint"]
        click.echo(
            f"checkpoint  run {cp['run']} {cp['status']} after batch {cp['batches']:,} "
            f"({cp['records']:,} records read){'; plan changed since' if st.get('plan_changed') else ''}"
        )
    for r in st.get("runs", []):
        s = r.get("summary") or {}
        click.echo(
            f"run {r['run']:<4}    {r['status']:<12} started {r['started_at']}  attempts {r['attempts']}"
            f"  rejected {s.get('rejected', 0):,}"
        )
    last = next((r.get("summary") for r in reversed(st.get("runs", [])) if r.get("summary")), None)
    llm = (last or {}).get("counts", {}).get("llm")
    if llm:
        total = llm.get("total", {})
        cost = f", ${total['cost_usd']:.4f} estimated" if "cost_usd" in total else ""
        click.echo(
            f"llm         {total.get('calls', 0):,} calls ({total.get('cached', 0):,} cached), "
            f"{total.get('input_tokens', 0):,} in / {total.get('output_tokens', 0):,} out tokens, "
            f"{total.get('retries', 0):,} retries{cost}"
        )
        for name, p in llm.get("providers", {}).items():
            pc = f", ${p['cost_usd']:.4f}" if "cost_usd" in p else ""
            click.echo(
                f"  {name:<10}{p.get('calls', 0):,} calls, {p.get('input_tokens', 0):,} in / "
                f"{p.get('output_tokens', 0):,} out, {p.get('retries', 0):,} retries{pc}"
            )
            for key, k in (p.get("keys") or {}).items():
                click.echo(
                    f"    {key:<8}{k.get('calls', 0):,} calls, {k.get('input_tokens', 0):,} in / "
                    f"{k.get('output_tokens', 0):,} out, {k.get('retries', 0):,} retries"
                )
    if st.get("cache"):
        click.echo(f"cache       {st['cache']['entries']:,} embeddings")
    if st.get("rejects"):
        click.echo(f"rejects     {st['rejects']}")
    return 0


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option("--all", "everything", is_flag=True, help="Also delete the embedding cache and past run summaries.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset(recipe: str, env_file: str | None, everything: bool, yes: bool) -> int:
    """Forget RECIPE's checkpoint so the next run starts over (the embedding cache is kept unless --all)."""
    from ..ops import reset_recipe

    if not yes and sys.stdin.isatty():
        what = "the checkpoint, cache and run history" if everything else "the checkpoint"
        click.confirm(f"Delete {what} of {recipe}?", abort=True)
    removed = reset_recipe(recipe, env_file=env_file, everything=everything)
    click.echo(f"removed {', '.join(removed) if removed else 'nothing (no state yet)'}")
    return 0


@click.command()
@click.argument("name", type=click.Choice(["recipe", "vmig-record"]), default="recipe")
def schema(name: str) -> int:
    """Print a JSON Schema: the recipe format (default) or one .vmig.jsonl record.

    Editors complete recipes that start with
    `# yaml-language-server: $schema=<path or URL of schemas/recipe.schema.json>`.
    """
    from ..schemas import render

    click.echo(render(f"{name}.schema.json"), nl=False)
    return 0


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def connectors(as_json: bool) -> int:
    """List the sources, targets and embedders vexrun knows, with their capabilities and install state."""
    from ..ops import list_plugins

    rows = list_plugins()
    if as_json:
        _emit_json(rows)
        return 0
    for kind in ("source", "sink", "embedder"):
        items = [r for r in rows if r["kind"] == kind]
        click.echo({"source": "Sources", "sink": "Targets", "embedder": "Embedders"}[kind])
        width = max(len(r["name"]) for r in items) if items else 0
        for r in items:
            state = "installed" if r["installed"] else f"pip install 'vexrun[{r['extra']}]'"
            aliases = f" (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
            click.echo(f"  {r['name']:<{width}}  {state:<12}  {r['summary']}{aliases}")
            if r.get("capabilities"):
                c = r["capabilities"]
                click.echo(
                    f"  {'':<{width}}  {'':<12}  ids {c['ids']}, metadata {c['metadata']}, vectors {c['vectors']}"
                    f"{', search' if c['search'] else ''}{', edges' if c['edges'] else ''}"
                )
    return 0


COMMANDS = [run, plan, check, status, reset, schema, connectors]
