"""``vexrun migrate``, ``export`` and ``import``: one-off recipes built from flags."""

from __future__ import annotations

import json
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


def _vex(f: Any) -> Any:
    """Vex's spellings (github.com/Vektor-Memory/Vex), mapped onto the recipe these commands build."""
    keys = [
        click.option(
            f"--{p}-key",
            default=None,
            metavar="KEYS",
            help=f"Vex: {p}'s API key(s), k1,k2 rotate (recipe: ${{{p.upper()}_API_KEYS}}). "
            "Prefer the environment variable: other users can read the command line.",
        )
        for p in ("groq", "openai", "anthropic", "mistral", "together")
    ]
    options = [
        click.option(
            "--file", default=None, metavar="PATH", help="Vex: the source file (the export's conversations.json)."
        ),
        click.option(
            "--db",
            default=None,
            metavar="PATH|URL",
            help="Vex: the sqlite store's file (--to/--from vektor), else the target's path, dsn or url.",
        ),
        click.option(
            "--mode",
            type=click.Choice(["raw", "extract", "smart"]),
            default=None,
            help="Vex: raw stores the chunks; extract / smart store LLM-extracted facts.",
        ),
        click.option(
            "--provider",
            default=None,
            metavar="auto|P1,P2",
            help="Vex: the LLM cascade, in order: groq, ollama, openai, anthropic, mistral, together, custom.",
        ),
        *keys,
        click.option("--ollama-url", default=None, metavar="URL", help="Vex: the Ollama server."),
        click.option(
            "--extract-url",
            default=None,
            metavar="URL",
            help="Vex: an OpenAI-compatible endpoint for extraction (provider 'custom').",
        ),
        click.option(
            "--extract-key",
            default=None,
            metavar="KEYS",
            help="Vex: the --extract-url endpoint's key(s) (recipe: ${EXTRACT_API_KEYS}).",
        ),
        click.option(
            "--extract-model",
            default=None,
            metavar="P:MODEL,…",
            help="Vex: the model per provider (groq:llama-3.3-70b-versatile,ollama:mistral), or one for all.",
        ),
        click.option(
            "--min-importance",
            type=click.FloatRange(0, 1),
            default=None,
            help="Vex: drop extracted facts less important than this.",
        ),
        click.option(
            "--chunk-mode",
            type=click.Choice(["turn", "exchange", "conversation", "smart"]),
            default=None,
            help="Vex: what one record of a conversation export holds (the source's chunk:).",
        ),
        click.option(
            "--sender",
            type=click.Choice(["both", "human", "user", "assistant"]),
            default=None,
            help="Vex: keep only one side of the conversations (human = user).",
        ),
        click.option(
            "--concurrency", type=click.IntRange(1, 256), default=None, help="Vex: LLM requests in flight at once."
        ),
        click.option(
            "--rate-limit",
            type=click.IntRange(min=0),
            default=None,
            metavar="MS",
            help="Vex: one request per MS milliseconds per key (each provider's rpm = 60000/MS; 0: no limit).",
        ),
        click.option(
            "--embed-model",
            default=None,
            metavar="MODEL",
            help="Vex: the embedding model (of --embed; else openai with --openai-key, ollama with --ollama-url, "
            "else local).",
        ),
        click.option(
            "--adapter",
            type=click.Choice(["project", "truncate", "reembed"]),
            is_flag=False,
            flag_value="project",
            default=None,
            help="Vex: fit vectors of another model to the target's (alone: project).",
        ),
        click.option("--adapter-model", default=None, metavar="MODEL", help="Vex: the target's model for --adapter."),
        click.option("--reembed", is_flag=True, help="Vex: embed records of another model again (adapt: reembed)."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def _vex_flags(kw: dict[str, Any]) -> Any:
    """Take the Vex options out of ``kw`` (the rest are the command's own)."""
    from ..vexflags import VexFlags

    keys = {p: kw.pop(f"{p}_key") for p in ("groq", "openai", "anthropic", "mistral", "together", "extract")}
    names = [n for n in VexFlags.__dataclass_fields__ if n != "keys"]
    values = {n: kw.pop(n) for n in names if n in kw}
    return VexFlags(
        keys={("custom" if p == "extract" else p): v for p, v in keys.items() if v is not None},
        **values,
    )


def _store(name: str, flag: str) -> str:
    from ..vexflags import store_name

    new, note = store_name(name, flag)
    if note:
        click.echo(note, err=True)
    return new


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
    vex: Any,
    db_sides: tuple[str, ...],
    extra_source: dict[str, Any] | None = None,
    extra_target: dict[str, Any] | None = None,
) -> int:
    import os
    from pathlib import Path

    from ..api import run
    from ..migrate import build_recipe, parse_options, recipe_text, virtual_path
    from ..vexflags import apply_vex, command_line
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
    recipe, needs = apply_vex(recipe, vex, db_sides=db_sides)
    for note in needs.notes:
        click.echo(note, err=True)
    text = recipe_text(recipe)
    if print_recipe:
        click.echo(text, nl=False)
        return 0
    cwd = Path.cwd()
    path = virtual_path(recipe, cwd)
    from ..recipe.loader import load_recipe as load_text

    env = {**os.environ, **needs.env} if needs.env else None
    doc = load_text(path, text=text, base_dir=cwd, env_file=env_file, env=env)
    command = command_line(sys.argv[1:]) if sys.argv[1:] else None
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
@_vex
def migrate(source: str, target: str, from_opt: tuple[str, ...], to_opt: tuple[str, ...], **kw: Any) -> int:
    """Move every record from one store to another in one command, through the same resumable runner as a
    recipe: vexrun migrate --from chroma -f path=./chroma -f collection=mem --to pgvector -t dsn=embedded.

    Running the same command again resumes an interrupted migration (or, once it is complete, re-checks it:
    writes are upserts, nothing is duplicated). --print-recipe prints the equivalent recipe to commit
    (its relative paths are relative to the current directory).

    Vex's flags work too (vexrun's README maps each): vexrun migrate --from claude-export --to sqlite
    --file conversations.json --db memory.db --mode extract --provider groq,ollama.
    """
    vex = _vex_flags(kw)
    source, target = _store(source, "--from"), _store(target, "--to")
    return _go(source, target, from_opt, to_opt, vex=vex, db_sides=("target", "source"), **kw)


@click.command("export")
@click.option("--from", "source", required=True, metavar="TYPE", help="The store to export.")
@click.option("-f", "--from-opt", multiple=True, metavar="KEY=VALUE", help="A source setting, repeatable.")
@click.option(
    "-o",
    "--out",
    "--output",
    "output",
    required=True,
    type=click.Path(dir_okay=False, path_type=str),
    help="The .vmig.jsonl (or .vmig.jsonl.gz) file to write.",
)
@_common
@_vex
def export_cmd(source: str, from_opt: tuple[str, ...], output: str, **kw: Any) -> int:
    """Export a store to a .vmig.jsonl file (with its sidecar): vexrun export --from qdrant -f path=./q
    -f collection=mem -o memories.vmig.jsonl. Resumable like every run."""
    from ..migrate import default_output

    vex = _vex_flags(kw)
    target = {"path": default_output(output)}
    return _go(_store(source, "--from"), "vmig", from_opt, (), vex=vex, db_sides=("source",), extra_target=target, **kw)


@click.command("import")
@click.option(
    "-i",
    "--in",
    "--from",
    "input_file",
    default=None,
    type=click.Path(dir_okay=False, path_type=str),
    help="The .vmig.jsonl(.gz) file to import (--from and --file are Vex's spellings).",
)
@click.option("--to", "target", required=True, metavar="TYPE", help="The store to write.")
@click.option("-t", "--to-opt", multiple=True, metavar="KEY=VALUE", help="A target setting, repeatable.")
@_common
@_vex
def import_cmd(input_file: str | None, target: str, to_opt: tuple[str, ...], **kw: Any) -> int:
    """Import a .vmig.jsonl file into a store: vexrun import -i memories.vmig.jsonl --to chroma
    -t url=http://127.0.0.1:8000 -t collection=mem. Resumable like every run."""
    from dataclasses import replace

    from ..errors import UsageError

    vex = _vex_flags(kw)
    if input_file and vex.file and input_file != vex.file:
        raise UsageError("-i/--from and --file name different files; give one")
    input_file = input_file or vex.file
    if not input_file:
        raise UsageError("give the file to import: -i FILE (Vex: --from FILE)")
    source = {"path": input_file}
    return _go(
        "vmig",
        _store(target, "--to"),
        (),
        to_opt,
        vex=replace(vex, file=None),
        db_sides=("target",),
        extra_source=source,
        **kw,
    )


COMMANDS = [migrate, export_cmd, import_cmd]
