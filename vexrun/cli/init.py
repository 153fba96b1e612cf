"""``vexrun init`` (and ``vexrun`` alone on a terminal): write a recipe, by a wizard or from flags."""

from __future__ import annotations

import sys

import click

__all__ = ["COMMANDS", "interactive_terminal", "wizard_available"]


def interactive_terminal() -> bool:
    """Whether a person is at the keyboard: stdin and stdout are both terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()


def wizard_available() -> bool:
    """Whether ``vexrun`` alone opens the wizard: a terminal, and questionary installed (``vexrun[wizard]``);
    otherwise it prints the help."""
    import importlib.util

    return interactive_terminal() and importlib.util.find_spec("questionary") is not None


@click.command()
@click.option("--from", "source", metavar="TYPE", help="The source type (see `vexrun connectors`).")
@click.option("-f", "--from-opt", multiple=True, metavar="KEY=VALUE", help="A setting of the source, repeatable.")
@click.option("--to", "target", metavar="TYPE", help="The target type.")
@click.option("-t", "--to-opt", multiple=True, metavar="KEY=VALUE", help="A setting of the target, repeatable.")
@click.option(
    "--mode",
    type=click.Choice(["raw", "extract", "smart"]),
    default="raw",
    show_default=True,
    help="raw: chunks become memories; extract / smart: LLM facts, scored and deduplicated.",
)
@click.option(
    "--embedder", metavar="TYPE", help="The embedder, or 'none' (default: local for exports, none for vectors)."
)
@click.option("-e", "--embed-opt", multiple=True, metavar="KEY=VALUE", help="A setting of the embedder, repeatable.")
@click.option(
    "--provider",
    "providers",
    default="auto",
    show_default=True,
    metavar="auto|NAME,…",
    help="extract / smart: the LLM providers in order (groq,ollama,…), or auto.",
)
@click.option(
    "--key-env",
    multiple=True,
    metavar="PROVIDER=VARIABLE",
    help="The variable a provider's keys come from (default <NAME>_API_KEYS); the recipe holds only ${VARIABLE}.",
)
@click.option("--copy", metavar="PATH", help="Also write a .vmig.jsonl copy here (what --sign and --sync-url publish).")
@click.option("--sign", is_flag=True, help="Sign the .vmig.jsonl output after each run.")
@click.option("--sync-url", metavar="URL", help="Push the .vmig.jsonl output to this encrypted git backup.")
@click.option("--name", help="The job's name (default: the file name).")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Where to write the recipe (default recipe.yaml; the wizard asks).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing recipe.")
def init(
    source: str | None,
    from_opt: tuple[str, ...],
    target: str | None,
    to_opt: tuple[str, ...],
    mode: str,
    embedder: str | None,
    embed_opt: tuple[str, ...],
    providers: str,
    key_env: tuple[str, ...],
    copy: str | None,
    sign: bool,
    sync_url: str | None,
    name: str | None,
    output: str | None,
    force: bool,
) -> int:
    """Write a recipe: a wizard on a terminal, or from flags for scripts. `vexrun` alone on a terminal runs it.

    The wizard picks a source and a target (with their install state), asks their settings and checks each
    answer as it is typed (paths exist, DSNs parse, the connector's own validation), can run `check`, then
    asks the mode, the LLM providers, the embedder, signing and sync; it writes a commented recipe, shows
    its plan and offers to run it. Keys, tokens and passwords are only ever `${VARIABLE}` references: an
    answer that looks like a key is refused.

    With --from and --to (or without a terminal) nothing is asked:

    \b
      vexrun init --from claude-export -f path=conversations.json \\
                  --to sqlite -t path=memory.db -o memory.yaml
    """
    from pathlib import Path

    from ..errors import UsageError
    from ..wizard import choices_from_flags, secret_refs, write_recipe

    out = Path(output) if output else None
    if source is None and target is None and interactive_terminal():
        return _wizard(out, force)
    if source is None or target is None:
        raise UsageError("give --from TYPE and --to TYPE (without a terminal there is no wizard to ask)")
    choices = choices_from_flags(
        source=source,
        target=target,
        from_settings=from_opt,
        to_settings=to_opt,
        mode=mode,
        embedder=embedder,
        embed_settings=embed_opt,
        providers=providers,
        key_envs=key_env,
        copy=copy,
        sign=sign,
        sync_url=sync_url,
        name=name,
    )
    path = write_recipe(choices, out or Path("recipe.yaml"), force=force)
    click.echo(f"wrote {path}")
    refs = secret_refs(choices)
    if refs:
        click.echo(f"set {', '.join(refs)} before running it")
    click.echo(f"next: vexrun plan {path}   then: vexrun {path}")
    return 0


def _wizard(out: object, force: bool) -> int:
    """The wizard, then the plan of what it wrote and, if asked, the run."""
    from ..api import run as run_recipe
    from ..errors import VexrunError
    from ..ops import plan_report
    from ..wizard.interactive import Prompter, run_wizard
    from .render import plan_lines, run_table

    prompter = Prompter()
    path = run_wizard(out, force=force, prompter=prompter)  # type: ignore[arg-type]
    click.echo("")
    try:
        click.echo("\n".join(plan_lines(plan_report(str(path)))))
    except VexrunError as exc:
        # the recipe is written; what stops the plan (a variable to set, a server to start) is the next step
        for line in getattr(exc, "findings", []):
            click.echo(line)
        click.echo(f"no plan yet: {exc}")
        click.echo(f"once that is fixed: vexrun plan {path}, then vexrun {path}")
        return 0
    click.echo("")
    if not prompter.confirm("Run it now?", default=True):
        click.echo(f"run it later with: vexrun {path}")
        return 0
    summary = run_recipe(str(path), progress="auto", command=f"vexrun run {path}")
    for line in run_table(summary):
        click.echo(line)
    return summary.exit_code


COMMANDS = [init]
