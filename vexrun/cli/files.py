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
    import stat
    from pathlib import Path

    from ..vmig.io import is_gzip

    p = Path(path)
    try:
        st = p.stat()
        if not stat.S_ISREG(st.st_mode):
            return None  # never open a FIFO (it would block) or a device here: the command refuses it
        return None if is_gzip(p) else st.st_size
    except OSError:
        return 0


def _emit_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, ensure_ascii=False))


@click.command()
@click.argument("files", metavar="FILE...", nargs=-1, required=True, type=click.Path(dir_okay=True, path_type=str))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github", "gitlab"]),
    default="text",
    show_default=True,
    help="Output format: github prints workflow-command annotations (GitHub and Forgejo Actions), gitlab a "
    "Code Quality report.",
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
@click.option(
    "--allow-missing-secrets",
    is_flag=True,
    help="For a recipe: secrets referenced as ${VAR} may be unset (a laptop, a pull request from a fork, the "
    "pre-commit hook); every other check still runs.",
)
def validate(
    files: tuple[str, ...],
    fmt: str,
    as_json: bool,
    max_findings: int,
    strict: bool,
    jobs: str,
    max_line_bytes: int,
    env_file: str | None,
    allow_missing_secrets: bool,
) -> int:
    """Lint .vmig.jsonl(.gz) files in one streaming pass each, and check recipes (FILE.yaml) offline.

    Prints each finding as FILE:LINE: error[code] record 'ID': message, sorted by line, then a
    summary. Checks the SPEC rules, duplicate ids across the whole file, and the sidecar's record
    count and BLAKE3 checksum when a sidecar exists. A recipe is loaded and compiled without touching
    any source, target or provider; its findings read FILE:LINE:COL: error[code] path: message.
    Recipes and data files can be mixed (as pre-commit passes them). `--format github` prints one
    annotation per finding for GitHub and Forgejo Actions, `--format gitlab` a Code Quality report; with
    several files, `--format json` prints a list of reports.
    Exit 0 valid, 1 findings, 2 an unreadable file (the worst over all files; the others are still checked).
    """
    from ..errors import UsageError

    fmt = "json" if as_json else fmt
    n_jobs = _jobs(jobs)

    def check(file: str) -> Any:
        from .recipes import is_recipe_path, validate_recipe

        if is_recipe_path(file):
            return validate_recipe(file, env_file, allow_missing_secrets=allow_missing_secrets)
        from ..progress import byte_progress
        from ..vmig.validate import validate_file

        with byte_progress(_progress_total(file), "validate") as advance:
            return validate_file(
                file,
                jobs=n_jobs,
                max_findings=max_findings,
                max_line_bytes=max_line_bytes,
                strict=strict,
                progress=advance,
            )

    if len(files) == 1 and fmt in ("text", "json"):
        # One file: exactly the output of before (an unreadable file is a usage error, exit 2).
        report = check(files[0])
        if fmt == "json":
            _emit_json(report.to_json())
        else:
            _print_lines(_text_lines(report))
        return 0 if _ok(report) else 1

    worst = 0
    as_list: list[Any] = []
    for file in files:
        try:
            report = check(file)
        except UsageError as exc:
            worst = max(worst, exc.exit_code)
            _report_unreadable(fmt, file, str(exc), as_list)
            continue
        worst = max(worst, 0 if _ok(report) else 1)
        if fmt == "json":
            as_list.append(report.to_json())
        elif fmt == "gitlab":
            from .annotate import gitlab_item

            as_list.extend(gitlab_item(a) for a in _annotations(report))
        elif fmt == "github":
            from .annotate import github_annotation

            _print_lines([github_annotation(a) for a in _annotations(report)] + _summary_lines(report))
        else:
            _print_lines(_text_lines(report))
    if fmt in ("json", "gitlab"):
        _emit_json(as_list)
    return worst


def _ok(report: Any) -> bool:
    return bool(report.valid if hasattr(report, "valid") else report.ok)


def _is_recipe_report(report: Any) -> bool:
    return hasattr(report, "valid")


def _text_lines(report: Any) -> list[str]:
    """A file's text output: its findings, one per line, then (after any "and N more") its summary."""
    from .recipes import recipe_lines

    return recipe_lines(report) if _is_recipe_report(report) else list(report.lines())


def _summary_lines(report: Any) -> list[str]:
    """What follows the findings in a file's text output: any "and N more not shown", then the summary."""
    return _text_lines(report)[len(report.findings) :]


def _annotations(report: Any) -> list[Any]:
    from .annotate import recipe_annotation, vmig_annotation

    if _is_recipe_report(report):
        return [recipe_annotation(report.file, f) for f in report.findings]
    return [vmig_annotation(report.file, f) for f in report.findings]


def _report_unreadable(fmt: str, file: str, message: str, as_list: list[Any]) -> None:
    """An unreadable file among several: reported in the chosen format, and the next file is checked."""
    from ..redact import redact
    from .annotate import github_annotation, gitlab_item, unreadable_annotation

    if fmt == "json":
        as_list.append({"file": file, "valid": False, "exit_code": 2, "error": redact(message)})
    elif fmt == "gitlab":
        as_list.append(gitlab_item(unreadable_annotation(file, message)))
    elif fmt == "github":
        summary = f"{file}: UNREADABLE: {redact(message)}"
        _print_lines([github_annotation(unreadable_annotation(file, message)), summary])
    else:
        sys.stdout.flush()
        click.echo(f"error: {redact(message)}", err=True)


def _print_lines(lines: list[str]) -> None:
    out = sys.stdout
    for line in lines:
        out.write(line + "\n")


@click.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
@click.option(
    "--format", "fmt", type=click.Choice(["text", "json"]), default="text", help="Same as --json when 'json'."
)
@_jobs_option
@_line_option
@click.option(
    "--html",
    "html",
    is_flag=True,
    help="Also write the statistics and a map of the records (a seeded sample of at most 2,000 vectors, "
    "projected to 2-D, text on hover) as one self-contained HTML page.",
)
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Where to write the HTML page (implies --html; default: NAME-inspect.html in the current directory).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the map's sample (--html).")
def inspect(
    file: str,
    as_json: bool,
    fmt: str,
    jobs: str,
    max_line_bytes: int,
    html: bool,
    out: str | None,
    seed: int,
) -> int:
    """Show what a .vmig.jsonl(.gz) FILE holds before you migrate it.

    Record count, namespaces, dims, models, how many records carry text / a vector / both, metadata
    keys with their types and fill rate, the created_at range and the file size. `--html` also writes them
    as a page with a map of the records.
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
    if html or out is not None:
        from ..report import file_report
        from .report import echo_written

        echo_written(file_report(report, out=out, seed=seed), f"{report.stats.records:,} records")
    return 0


COMMANDS = [validate, inspect]
