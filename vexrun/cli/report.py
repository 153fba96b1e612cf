"""``vexrun report``: a run as one HTML page to look at."""

from __future__ import annotations

import json

import click

__all__ = ["COMMANDS", "echo_written"]


def echo_written(written: object, what: str) -> None:
    """One line on stderr: the page written, its size, and a note for each section left out or partial."""
    path, size, points, notes = (getattr(written, k) for k in ("path", "bytes", "points", "notes"))
    dots = f", {points:,} points on the map" if points else ""
    click.echo(f"wrote {path} ({size / 1024:,.0f} KB): {what}{dots}", err=True)
    for section, note in notes.items():
        click.echo(f"note: {section}: {note}", err=True)


@click.command()
@click.argument("recipe", type=click.Path(dir_okay=False, path_type=str))
@click.option(
    "-o",
    "--output",
    "out",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Where to write the page (default: NAME-report.html in the current directory).",
)
@click.option(
    "--run", "run_id", type=click.IntRange(min=1), default=None, help="Report this run (default: the latest)."
)
@click.option(
    "--points",
    type=click.IntRange(0, 2000),
    default=2000,
    show_default=True,
    help="Memories on the map: a seeded sample of the target (0: no map).",
)
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Load variables from this dotenv file.",
)
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def report(recipe: str, out: str | None, run_id: int | None, points: int, env_file: str | None, as_json: bool) -> int:
    """Write a run of RECIPE as one self-contained HTML page (no server, no network).

    The page shows the stage funnel (what each stage read, wrote, skipped and rejected), throughput over time,
    the rejected records by reason with examples, LLM calls, tokens and cost per provider and key (keys by
    position, never by value), and for a searchable target a map of the memories: a seeded sample of at most
    2,000 vectors projected to 2-D, coloured by namespace, with the text on hover. Open it in any browser.
    """
    from ..report import run_report

    written = run_report(recipe, out=out, run=run_id, points=points, env_file=env_file)
    if as_json:
        click.echo(json.dumps(written.to_json(), indent=2))
    echo_written(written, f"run {written.run} ({written.status})")
    return 0


COMMANDS = [report]
