"""``vexrun migrate``, ``export`` and ``import``: one-off recipes built from flags."""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any

import click

__all__ = ["COMMANDS"]


def _common(f: Any) -> Any:
    options = [
        click.option(
            "--embed",
            default=None,
            metavar="TYPE|JSON",
            help="Embed records that have no vector (or one from another model): a type such as local, or "
            'a JSON spec like \'{"type": "openai", "model": "text-embedding-3-small"}\'.',
        ),
        click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Records per batch."),
        click.option("--namespace", default=None, help="Set this namespace on records that have none."),
        click.option(
            "--print-recipe",
            is_flag=True,
            help="Print the recipe these flags make (to commit it) and exit without running.",
        ),
        click.option("--fresh", is_flag=True, help="Start over instead of resuming the same command's run."),
        click.option("--json", "as_json", is_flag=True, help="Print the run summary as JSON."),
        click.option(
            "--env-file",
            type=click.Path(dir_okay=False, path_type=str),
            default=None,
            help="Load variables for ${VAR} in option values from this dotenv file.",
        ),
        click.option(
            "--progress",
            type=click.Choice(["auto", "bar", "log", "none"]),
            default="auto",
            show_default=True,
            help="Progress bars on a terminal, log lines otherwise.",
        ),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _go(
    source: str,
    target: str,
    from_opt: tuple[str, ...],
    to_opt: tuple[str, ...],
    embed: str | None,
    batch_size: int | None,
    namespace: str | None,
    print_recipe: bool,
    fresh: bool,
    as_json: bool,
    env_file: str | None,
    progress: str,
    extra_source: dict[str, Any] | None = None,
    extra_target: dict[str, Any] | None = None,
) -> int:
    from pathlib import Path

    from ..api import run
    from ..migrate import build_recipe, parse_options, recipe_text, virtual_path
    from .render import run_table
    from .search import parse_embedder

    recipe = build_recipe(
        source=source,
        target=target,
        source_options={**parse_options(from_opt, "--from-opt"), **(extra_source or {})},
        target_options={**parse_options(to_opt, "--to-opt"), **(extra_target or {})},
        embed=parse_embedder(embed),
        batch_size=batch_size,
        namespace=namespace,
    )
    text = recipe_text(recipe)
    if print_recipe:
        click.echo(text, nl=False)
        return 0
    cwd = Path.cwd()
    path = virtual_path(recipe, cwd)
    from ..recipe.loader import load_recipe as load_text

    doc = load_text(path, text=text, base_dir=cwd, env_file=env_file)
    command = " ".join(shlex.quote(a) for a in ["vexrun", *sys.argv[1:]]) if sys.argv[1:] else None
    summary = run(doc, env_file=env_file, fresh=fresh, progress=progress, command=command)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        for line in run_table(summary):
            click.echo(line, err=True)
    else:
        click.echo("\n".join(run_table(summary)))
    return summary.exit_code


@click.command()
@click.option(
    "--from", "source", required=True, metavar="TYPE", help="Where records come from (see `vexrun connectors`)."
)
@click.option("--to", "target", required=True, metavar="TYPE", help="Where they go.")
@click.option(
    "-f",
    "--from-opt",
    multiple=True,
    metavar="KEY=VALUE",
    help="A source setting, repeatable: -f collection=mem -f url=http://127.0.0.1:8000. "
    "Secrets as -f 'api_key=${QDRANT_API_KEY}' (read from the environment, never written down).",
)
@click.option("-t", "--to-opt", multiple=True, metavar="KEY=VALUE", help="A target setting, repeatable.")
@_common
def migrate(source: str, target: str, from_opt: tuple[str, ...], to_opt: tuple[str, ...], **kw: Any) -> int:
    """Move every record from one store to another in one command, through the same resumable runner as a
    recipe: vexrun migrate --from chroma -f path=./chroma -f collection=mem --to pgvector -t dsn=embedded.

    Running the same command again resumes an interrupted migration (or, once it is complete, re-checks it:
    writes are upserts, nothing is duplicated). --print-recipe prints the equivalent recipe to commit
    (its relative paths are relative to the current directory).
    """
    return _go(source, target, from_opt, to_opt, **kw)


@click.command("export")
@click.option("--from", "source", required=True, metavar="TYPE", help="The store to export.")
@click.option("-f", "--from-opt", multiple=True, metavar="KEY=VALUE", help="A source setting, repeatable.")
@click.option(
    "-o",
    "--out",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The .vmig.jsonl (or .vmig.jsonl.gz) file to write.",
)
@_common
def export_cmd(source: str, from_opt: tuple[str, ...], output: str, **kw: Any) -> int:
    """Export a store to a .vmig.jsonl file (with its sidecar): vexrun export --from qdrant -f path=./q
    -f collection=mem -o memories.vmig.jsonl. Resumable like every run."""
    from ..migrate import default_output

    return _go(source, "vmig", from_opt, (), extra_target={"path": default_output(output)}, **kw)


@click.command("import")
@click.option(
    "-i",
    "--in",
    "input_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The .vmig.jsonl(.gz) file to import.",
)
@click.option("--to", "target", required=True, metavar="TYPE", help="The store to write.")
@click.option("-t", "--to-opt", multiple=True, metavar="KEY=VALUE", help="A target setting, repeatable.")
@_common
def import_cmd(input_file: str, target: str, to_opt: tuple[str, ...], **kw: Any) -> int:
    """Import a .vmig.jsonl file into a store: vexrun import -i memories.vmig.jsonl --to chroma
    -t url=http://127.0.0.1:8000 -t collection=mem. Resumable like every run."""
    return _go("vmig", target, (), to_opt, extra_source={"path": input_file}, **kw)


COMMANDS = [migrate, export_cmd, import_cmd]
