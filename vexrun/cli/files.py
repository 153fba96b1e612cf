"""Verbs on ``.vmig.jsonl`` files: ``validate`` and ``inspect``."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

__all__ = ["COMMANDS"]


def _jobs(value: str) -> int | None:
    if value == "auto":
        return None
    try:
        jobs = int(value)
    except ValueError:
        raise click.BadParameter("must be a number or 'auto'") from None
    if jobs < 1:
        raise click.BadParameter("must be at least 1")
    return jobs


_jobs_option = click.option(
    "-j",
    "--jobs",
    default="auto",
    show_default=True,
    metavar="N|auto",
    help="Worker processes; 'auto' uses every core for files over 64 MB.",
)
_line_option = click.option(
    "--max-line-bytes",
    type=click.IntRange(min=1024),
    default=64 * 1024 * 1024,
    show_default=True,
    help="Longer lines are reported as line-too-long and skipped.",
)


def _progress_total(path: str) -> int | None:
    from pathlib import Path

    from ..vmig.io import is_gzip

    p = Path(path)
    try:
        return None if is_gzip(p) else p.stat().st_size
    except OSError:
        return 0


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Output format."
)
@click.option("--json", "as_json", is_flag=True, help="Same as --format json.")
@click.option(
    "--max-findings",
    type=click.IntRange(min=0),
    default=200,
    show_default=True,
    help="Show at most this many findings (the rest are counted).",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@_jobs_option
@_line_option
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="For a recipe: load variables from this dotenv file.",
)
def validate(
    file: str,
    fmt: str,
    as_json: bool,
    max_findings: int,
    strict: bool,
    jobs: str,
    max_line_bytes: int,
    env_file: str | None,
) -> int:
    """Lint a .vmig.jsonl(.gz) FILE in one streaming pass, or check a recipe (FILE.yaml) offline.

    Prints each finding as FILE:LINE: error[code] record 'ID': message, sorted by line, then a
    summary. Checks the SPEC rules, duplicate ids across the whole file, and the sidecar's record
    count and BLAKE3 checksum when a sidecar exists. A recipe is loaded and compiled without touching
    any source, target or provider; its findings read FILE:LINE:COL: error[code] path: message.
    Exit 0 valid, 1 findings, 2 unreadable file.
    """
    from .recipes import is_recipe_path, validate_recipe

    if is_recipe_path(file):
        return validate_recipe(file, env_file, "json" if as_json else fmt)

    from ..progress import byte_progress
    from ..vmig.validate import validate_file

    n_jobs = _jobs(jobs)
    with byte_progress(_progress_total(file), "validate") as advance:
        report = validate_file(
            file, jobs=n_jobs, max_findings=max_findings, max_line_bytes=max_line_bytes, strict=strict, progress=advance
        )
    if as_json or fmt == "json":
        _emit_json(report.to_json())
    else:
        out = sys.stdout
        for line in report.lines():
            out.write(line + "\n")
    return 0 if report.ok else 1


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Same as --json when 'json'."
)
@_jobs_option
@_line_option
def inspect(file: str, as_json: bool, fmt: str, jobs: str, max_line_bytes: int) -> int:
    """Show what a .vmig.jsonl(.gz) FILE holds before you migrate it.

    Record count, namespaces, dims, models, how many records carry text / a vector / both, metadata
    keys with their types and fill rate, the created_at range and the file size.
    """
    from ..progress import byte_progress
    from ..vmig.inspect import inspect_file

    n_jobs = _jobs(jobs)
    with byte_progress(_progress_total(file), "inspect") as advance:
        report = inspect_file(file, jobs=n_jobs, max_line_bytes=max_line_bytes, progress=advance)
    if as_json or fmt == "json":
        _emit_json(report.to_json())
    else:
        click.echo("\n".join(report.lines()))
    return 0


COMMANDS = [validate, inspect]
