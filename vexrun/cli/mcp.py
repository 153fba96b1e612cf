"""``vexrun mcp``: serve a store to AI agents (Claude Desktop, Claude Code, ...) as an MCP server over stdio."""

from __future__ import annotations

import click

from .search import parse_embedder

__all__ = ["COMMANDS"]


@click.command("mcp")
@click.argument("store", type=click.Path(path_type=str))
@click.option(
    "--target",
    "target_index",
    type=click.IntRange(min=0),
    default=None,
    help="With a recipe: serve its targets[N] (default: the first target that can be searched).",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=str), default=None, help="With a recipe.")
@click.option(
    "--embedder",
    metavar="NAME|JSON",
    default=None,
    help="Embed queries and new memories with this embedder instead of the store's or recipe's, "
    'e.g. local or \'{"type": "local", "model": "all-MiniLM-L6-v2"}\'.',
)
@click.option("--read-only", is_flag=True, help="Offer search_memory and get_memory only (no add_memory).")
@click.option(
    "-n",
    "--namespace",
    default=None,
    help="The namespace a tool call that names none uses: add_memory writes there and search_memory "
    "searches only there (without it, searches cover every namespace).",
)
def mcp(
    store: str,
    target_index: int | None,
    env_file: str | None,
    embedder: str | None,
    read_only: bool,
    namespace: str | None,
) -> int:
    """Serve STORE as an MCP server on stdin/stdout, for agents such as Claude Desktop and Claude Code.

    STORE is a local store file (sqlite/local), or RECIPE.yaml to serve that recipe's target, in whatever
    store it is, with the recipe's embedder. Tools: search_memory(query, k, namespace), get_memory(id) and,
    unless --read-only, add_memory(text, namespace, metadata), whose id follows from the text and namespace,
    so adding the same memory twice keeps one copy.

    With --embedder, a local store file that does not exist yet is created (not with --read-only).

    Only the protocol goes to stdout; logs go to stderr. A store that cannot be opened, or an embedder that
    cannot be loaded, ends the command with one line on stderr (exit 1, or 2 for a missing file) before
    anything is served. The server stops when the client closes its stdin (exit 0) or sends SIGTERM (exit
    143); either way what add_memory wrote is kept.

    \b
    Claude Code:  claude mcp add vexrun -- vexrun mcp out/quickstart/memory.db
    """
    from ..errors import UsageError
    from ..integrations.mcp_server import serve

    if target_index is not None and not store.endswith((".yaml", ".yml")):
        raise UsageError(f"{store}: --target applies to a recipe, not to a store file")
    serve(
        store,
        target=target_index,
        embedder=parse_embedder(embedder),
        env_file=env_file,
        namespace=namespace,
        read_only=read_only,
    )
    return 0


COMMANDS = [mcp]
