"""``vexrun compare``: are two stores or files the same, record by record?"""

from __future__ import annotations

import json
from typing import Any

import click

__all__ = ["COMMANDS"]


@click.command()
@click.option("--from", "source", required=True, metavar="TYPE", help="The reference side (see `vexrun connectors`).")
@click.option(
    "-f", "--from-opt", multiple=True, metavar="KEY=VALUE", help="A setting of the reference side, repeatable."
)
@click.option("--to", "target", required=True, metavar="TYPE", help="The side checked against it.")
@click.option("-t", "--to-opt", multiple=True, metavar="KEY=VALUE", help="A setting of the checked side, repeatable.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True, help="Records per read.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Load variables for ${VAR} in option values from this dotenv file.",
)
def compare(
    source: str,
    from_opt: tuple[str, ...],
    target: str,
    to_opt: tuple[str, ...],
    batch_size: int,
    as_json: bool,
    env_file: str | None,
) -> int:
    """Compare every record of one store or file with another, with the same options as `vexrun migrate`:
    vexrun compare --from vmig -f path=mem.vmig.jsonl --to pgvector -t dsn=... -t table=mem.

    Records are equal when text, namespace and metadata are identical and vectors equal within the store's
    precision. Exit 0 when the sides are equal, 5 when records are missing, extra or changed (the first ids of
    each are named), 1 when a side cannot be read.
    """
    from ..migrate import parse_options
    from ..verify.compare import compare_stores

    result = compare_stores(
        source,
        parse_options(from_opt, "--from-opt"),
        target,
        parse_options(to_opt, "--to-opt"),
        env_file=env_file,
        batch_size=batch_size,
    )
    doc: dict[str, Any] = result.to_json()
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        click.echo("\n".join(result.lines()))
    return 0 if result.ok else 5


COMMANDS = [compare]
