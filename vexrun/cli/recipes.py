"""Verbs on recipes: ``run`` (and ``vexrun RECIPE``), ``plan``, ``check``, ``status``, ``reset``, ``schema``."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

__all__ = ["COMMANDS", "is_recipe_path", "recipe_lines", "recipe_summary", "validate_recipe"]

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


def validate_recipe(path: str, env_file: str | None, *, allow_missing_secrets: bool = False) -> Any:
    """``vexrun validate RECIPE``: load and compile offline; the :class:`~vexrun.api.RecipeReport` with every
    finding. Raises :class:`~vexrun.errors.UsageError` when the file cannot be read."""
    from ..api import RecipeReport, validate

    report = validate(path, env_file=env_file, allow_missing_secrets=allow_missing_secrets)
    assert isinstance(report, RecipeReport)
    return report


def recipe_summary(report: Any) -> str:
    """The last line of ``vexrun validate RECIPE``: INVALID with the number of problems, or valid with the
    mode, the stages and the number of warnings."""
    path = report.file
    if not report.valid:
        n = len(report.findings)
        return f"{path}: INVALID: {n} problem{'s' if n != 1 else ''}"
    plan = report.plan
    assert plan is not None
    stages = " → ".join(s.name for s in plan.stages if s.name not in ("source",)) or "-"
    n = len(plan.warnings)
    return f"{path}: valid: mode {plan.mode}, stages source → {stages}, {n} warning{'s' if n != 1 else ''}"


def recipe_lines(report: Any) -> list[str]:
    """``vexrun validate RECIPE`` as text: each finding at FILE:LINE:COL, then the summary."""
    from ..redact import redact

    return [redact(f.format(report.file)) for f in report.findings] + [recipe_summary(report)]


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
    help="A bar on a terminal, otherwise a log line every 10 s (VEXRUN_PROGRESS_EVERY=SECONDS changes it): "
    "records read out of the total where the source can tell it (its record count, or bytes of its file), "
    "records/s, ETA and the slowest stage.",
)
@click.option(
    "--executor",
    type=click.Choice(["local", "ray"]),
    default=None,
    help="What runs the plan (default: the recipe's run.executor): 'ray' runs partitions of the sources on Ray "
    "(run.ray.address or RAY_ADDRESS, else a local Ray on this machine's cores).",
)
def run(
    recipe: str,
    env_file: str | None,
    fresh: bool,
    as_json: bool,
    retry_rejected: bool,
    progress: str,
    executor: str | None,
) -> int:
    """Run RECIPE: validate it, compile it to a plan and run it with resumable checkpoints.

    A killed or interrupted run resumes where it stopped when the same command is run again. Exit 0 when
    every record was written, 3 when some were rejected (they are in the rejects file), 4 when another
    run holds this recipe's lock, 130/143 when interrupted (the checkpoint is saved).
    """
    from ..api import run as run_recipe
    from .render import run_table

    parts = ["vexrun", "run", recipe] + (["--env-file", env_file] if env_file else [])
    if retry_rejected:
        parts.append("--retry-rejected")
    if executor:
        parts += ["--executor", executor]
    from ..executor import executor_for

    summary = run_recipe(
        recipe,
        env_file=env_file,
        fresh=fresh,
        progress=progress,
        command=" ".join(shlex.quote(p) for p in parts),
        retry_rejected=retry_rejected,
        executor=executor_for(executor) if executor else None,
    )
    if as_json:
        _emit_json(summary.to_json())
    for line in run_table(summary):
        click.echo(line, err=as_json)
    return summary.exit_code


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@_env_file
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown"]),
    default="text",
    show_default=True,
    help="Output format; markdown is for a bot to post on a pull request.",
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
def plan(recipe: str, env_file: str | None, fmt: str, as_json: bool) -> int:
    """Show the plan RECIPE compiles to, without running it.

    The stages with their resolved settings (secrets shown only as the variable they come from), the
    targets' declared capabilities, the secrets referenced (set or missing) and what a run would start
    from: a fresh start, a resume at batch N, or a refusal because the checkpoint belongs to another plan.
    `--format markdown` prints the same as a Markdown comment for a pull request.
    """
    from ..ops import plan_report
    from .render import plan_lines, plan_markdown

    report = plan_report(recipe, env_file=env_file)
    if as_json or fmt == "json":
        _emit_json(report.to_json())
    elif fmt == "markdown":
        click.echo("\n".join(plan_markdown(report)))
    else:
        click.echo("\n".join(plan_lines(report)))
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
@click.argument("recipe", type=click.Path(path_type=str))
@_env_file
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(recipe: str, env_file: str | None, as_json: bool) -> int:
    """Show where RECIPE's runs stand: the checkpoint, past runs with their counts, rejects and cache.

    Each run shows as running (a process holds the lock), completed, failed (with the error that stopped
    it) or interrupted (stopped by a signal, or killed: its lock is free); and what the next run does.
    A recipe that no longer validates is read from its state directory; RECIPE may also be that directory.
    """
    from ..status import recipe_status
    from .render import status_lines

    st = recipe_status(recipe, env_file=env_file)
    if as_json:
        _emit_json(st)
        return 0
    click.echo("\n".join(status_lines(st)))
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
