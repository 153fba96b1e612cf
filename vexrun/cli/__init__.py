"""The ``vexrun`` command line: parse, call the library, print, map errors to exit codes.

Command modules import only click at module level; each command imports the library when it runs, so
``vexrun --help`` stays instant.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from typing import NoReturn

import click

from .._version import __version__
from ..errors import RecipeError, VexrunError
from ..redact import redact

__all__ = ["cli", "main"]

EXIT_CODES = """\b
Exit codes:
  0        success
  1        handled failure: invalid recipe or file, failed connection, a run
           stopped with a resumable checkpoint, a plan that no longer matches
           its checkpoint, a signature that does not verify
  2        usage error: bad flags, missing file
  3        run finished, but some records were rejected (see its rejects file)
  4        another run holds the lock for this recipe's state
  70       internal error (traceback only with --debug)
  130/143  interrupted; the checkpoint was flushed first
  `vexrun verify` and `vexrun sync` have codes of their own: see their --help.
"""


class _Group(click.Group):
    """``vexrun RECIPE.yaml`` is ``vexrun run RECIPE.yaml``."""

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        if args and args[0] not in self.commands and args[0].endswith((".yaml", ".yml")):
            return "run", self.commands["run"], args
        return super().resolve_command(ctx, args)


@click.group(
    cls=_Group,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog=EXIT_CODES,
)
@click.version_option(__version__, "-V", "--version", prog_name="vexrun")
@click.option("--debug", is_flag=True, envvar="VEXRUN_DEBUG", help="Show tracebacks of internal errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """vexrun moves AI-agent memory between conversation exports, .vmig.jsonl files and vector
    stores, driven by version-controlled YAML recipes.

    `vexrun RECIPE.yaml` is short for `vexrun run RECIPE.yaml`. `vexrun` alone on a terminal starts the
    wizard that writes a recipe (`vexrun init`)."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


#: Modules under vexrun.cli that define ``COMMANDS``; each imports only click at module level.
COMMAND_MODULES = (
    "files",
    "recipes",
    "search",
    "keys",
    "sync",
    "migrate",
    "convert",
    "compare",
    "mcp",
    "init",
    "report",
)


def _register() -> None:
    import importlib

    for name in COMMAND_MODULES:
        module = importlib.import_module(f"{__name__}.{name}")
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


class _RedactingHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Library warnings (retries, fallbacks) on stderr, with every registered secret masked."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def _setup_logging(debug: bool) -> None:
    """One redacting handler on the current stderr (``main()`` may run several times in one process, as in
    tests: the handler of an earlier call, bound to an earlier stderr, is replaced, not added to)."""
    handler = _RedactingHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("vexrun")
    for old in [h for h in root.handlers if isinstance(h, _RedactingHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


def _verb(args: list[str]) -> str:
    """``vexrun VERB`` (``vexrun sync push`` for a group) as the title of an annotation."""
    words = [a for a in args if not a.startswith("-")]
    if not words:
        return "vexrun"
    name = words[0]
    if name not in cli.commands:
        return "vexrun run" if name.endswith((".yaml", ".yml")) else "vexrun"
    command = cli.commands[name]
    if isinstance(command, click.Group) and len(words) > 1 and words[1] in command.commands:
        return f"vexrun {name} {words[1]}"
    return f"vexrun {name}"


def _annotate(args: list[str], message: str, exc: BaseException | None = None) -> None:
    """Under GitHub or Forgejo Actions: the failure again as workflow-command annotations, after the normal
    ``error:`` lines. A RecipeError gives one annotation per finding, on the recipe's line and column.

    They go to stderr with the rest of the error. GitHub's documentation says workflow commands are read
    from stdout, but both runners parse stderr too: actions/runner hands stdout and stderr each to an
    ``OutputManager`` that processes ``::`` commands (``ScriptHandler.cs``), and act, which the Forgejo
    runner is built on, sends a step's stderr through the same command handler as its stdout."""
    from . import annotate

    if not annotate.enabled() or isinstance(exc, getattr(click.exceptions, "NoArgsIsHelpError", ())):
        return
    verb = _verb(args)
    lines: list[str] = []
    try:
        if isinstance(exc, RecipeError):
            # the recipe as given on the command line: what precedes ":LINE:COL: ..." in each formatted finding
            recipe = str(exc).rsplit(": ", 1)[0]
            for finding in exc.details:
                suffix = finding.format("")
                file = next((f[: -len(suffix)] for f in exc.findings if f.endswith(suffix)), recipe)
                a = annotate.recipe_annotation(file, finding)
                lines.append(
                    annotate.github_line(
                        a.severity, a.message, file=a.file, line=a.line, col=a.col, title=f"{verb} [{a.code}]"
                    )
                )
    except Exception:  # noqa: BLE001 - an annotation must never hide the error it annotates
        lines = []
    for line in lines or [annotate.github_line("error", message, title=verb)]:
        click.echo(line, err=True)


def main(argv: list[str] | None = None) -> NoReturn:
    """Entry point of the ``vexrun`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        from .init import wizard_available

        if wizard_available():
            args = ["init"]  # a person at a terminal: the wizard; anywhere else, the help as before
    debug = "--debug" in args or os.environ.get("VEXRUN_DEBUG", "") not in ("", "0")
    _setup_logging(debug)
    try:
        rv = cli.main(args=args, prog_name="vexrun", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        code = 130
    except click.ClickException as exc:
        exc.show()
        _annotate(args, redact(exc.format_message()), exc)
        code = exc.exit_code
    except RecipeError as exc:
        for line in exc.findings:
            click.echo(redact(line), err=True)
        click.echo(f"error: {redact(str(exc))}", err=True)
        _annotate(args, redact(str(exc)), exc)
        code = exc.exit_code
    except VexrunError as exc:
        click.echo(f"error: {redact(str(exc))}", err=True)
        _annotate(args, redact(str(exc)), exc)
        code = exc.exit_code
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        code = 130
    except BrokenPipeError:
        # `vexrun validate big.vmig.jsonl | head`: stop quietly.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 0
    except Exception as exc:  # noqa: BLE001 - the last line of defence: no traceback unless --debug
        if debug:
            traceback.print_exc()
        message = (
            f"internal error: {type(exc).__name__}: {redact(str(exc))} "
            "(this is a bug in vexrun; run again with --debug for the traceback and report it)"
        )
        click.echo(message, err=True)
        _annotate(args, message)
        code = 70
    sys.exit(code)
