"""Verbs that take memory out to where it is used: ``convert`` and ``adapters``."""

from __future__ import annotations

import json

import click

__all__ = ["COMMANDS"]


def _format(name: str) -> object:
    from ..convert import resolve_format

    try:
        return resolve_format(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--to") from None


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=str))
@click.option("--to", "to", required=True, metavar="FORMAT", help="The format (see `vexrun adapters`).")
@click.option(
    "-o", "--out", type=click.Path(dir_okay=False, path_type=str), default=None, help="Where to write (.gz: gzip)."
)
@click.option("--system", default=None, help="A system prompt for every example (openai, anthropic, chat, sharegpt).")
@click.option(
    "--check",
    is_flag=True,
    help="With -o: hold every example to the format's rules and drop (and count) what fails. Without -o: check "
    "FILE, an existing file of that format, and list what breaks the rules.",
)
@click.option(
    "--max-tokens",
    type=click.IntRange(min=1),
    default=65_536,
    show_default=True,
    help="With --check: the longest example (tiktoken's o200k_base where installed, else ~4 characters a token).",
)
@click.option(
    "--split",
    type=click.FloatRange(min=0, max=1, min_open=True, max_open=True),
    default=None,
    help="Write OUT's .train and .validation files, this share of the conversations for training (a stable "
    "hash of the conversation id: no conversation lands in both).",
)
@click.option("--separator", default=None, help="text: put this between memories instead of one memory per line.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def convert(
    file: str,
    to: str,
    out: str | None,
    system: str | None,
    check: bool,
    max_tokens: int,
    split: float | None,
    separator: str | None,
    as_json: bool,
) -> int:
    """Convert a .vmig.jsonl(.gz) FILE to a fine-tuning or chat format (streamed, any size).

    Chat formats are built from conversation records: a multi-turn record (chunk modes exchange,
    conversation, window, smart) becomes one example in turn order; turn records are paired, a user turn
    with the answer that follows it. What cannot become an example (a plain memory, a record the chunk
    stage split, an assistant turn with no user turn) is counted by reason, never written malformed.
    Exit 0 when examples were written (or FILE passes --check), 1 when none could be (or --check found
    problems), 2 on a usage error.
    """
    from ..convert import Format, Options, check_file, convert_file

    fmt = _format(to)
    assert isinstance(fmt, Format)
    opts = Options(
        system=system,
        max_tokens=max_tokens,
        separator=None if separator is None else separator.encode().decode("unicode_escape"),
    )
    if out is None:
        if not check:
            raise click.UsageError("give -o OUT (or --check to check FILE as a file of that format)")
        rep = check_file(file, fmt, opts=opts)
        if as_json:
            click.echo(json.dumps(rep.to_json(), indent=2, ensure_ascii=False))
        else:
            for line in rep.findings:
                click.echo(line)
            bad = sum(rep.problems.values())
            verdict = "valid" if rep.ok else "INVALID"
            why = ", ".join(f"{k} {v}" for k, v in sorted(rep.problems.items()))
            click.echo(
                f"{file}: {verdict} as {fmt.name}: {rep.examples:,} examples, {bad:,} problems"
                + (f" ({why})" if why else "")
            )
        return 0 if rep.ok else 1
    report = convert_file(file, fmt, out, opts=opts, split=split, check=check)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        for path, n in report.written.items():
            noun = "memories (text)" if fmt.name == "text" else f"{fmt.name} examples"
            click.echo(f"wrote {n:,} {noun} to {path}")
        dropped = sum(report.dropped.values())
        click.echo(f"read {report.records:,} records; dropped {dropped:,}")
        for reason, n in sorted(report.dropped.items()):
            click.echo(f"  {reason}: {n:,}")
        if report.merged_turns:
            click.echo(f"  consecutive turns of one role merged: {report.merged_turns:,}")
    return 0 if report.examples else 1


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def adapters(as_json: bool) -> int:
    """List the formats `vexrun convert --to` writes, with an example line each."""
    from ..convert import FORMATS

    if as_json:
        rows = [
            {"name": f.name, "aliases": list(f.aliases), "summary": f.summary, "example": f.example}
            for f in FORMATS.values()
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for f in FORMATS.values():
        alias = f" (also {', '.join(f.aliases)})" if f.aliases else ""
        click.echo(f"{f.name}{alias}: {f.summary}")
        click.echo(f"    {f.example}")
    return 0


COMMANDS = [convert, adapters]
