"""``vexrun search``: query the embedded local memory store."""

from __future__ import annotations

import json
import shutil
import time
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..connectors.base import Hit

__all__ = ["COMMANDS", "format_hits", "parse_embedder"]


def parse_embedder(value: str | None) -> dict[str, Any] | None:
    """``--embedder``: a plugin name (``fake``) or a JSON spec (``{"type": "fake", "dims": 16}``)."""
    if value is None:
        return None
    text = value.strip()
    if not text.startswith("{"):
        return {"type": text}
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(spec, dict) or not isinstance(spec.get("type"), str):
        raise click.BadParameter('a JSON spec needs a "type", e.g. {"type": "local", "model": "all-MiniLM-L6-v2"}')
    return spec


def _snippet(text: str | None, width: int) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= width else flat[: max(width - 1, 0)] + "…"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def format_hits(hits: list[Hit], *, width: int = 100) -> list[str]:
    """The hits as an aligned plain-text table: rank, score, cosine, bm25, namespace, text, id."""
    head = ("#", "score", "cosine", "bm25", "namespace", "text", "id")
    cells = [
        (
            str(h.rank),
            f"{h.score:.4f}",
            _num(h.cosine, 3),
            _num(h.bm25, 2),
            _snippet(h.namespace or "-", 16),
            h.text,
            h.id if len(h.id) <= 12 else h.id[:8] + "…",  # --json has the full ids
        )
        for h in hits
    ]
    fixed = [max([len(head[i]), *(len(str(c[i])) for c in cells)]) for i in range(5)]
    used = sum(fixed) + 2 * 6
    id_width = max([len(head[6]), *(len(c[6]) for c in cells)])
    text_width = max(40, min(90, width - used - min(id_width, 40)))
    out = []
    for row in [head, *cells]:
        left = [str(row[0]).rjust(fixed[0]), *(str(row[i]).rjust(fixed[i]) for i in (1, 2, 3))]
        text = row[5] if row is head else _snippet(row[5], text_width)
        out.append("  ".join([*left, str(row[4]).ljust(fixed[4]), (text or "").ljust(text_width), row[6]]).rstrip())
    return out


@click.command()
@click.argument("store", type=click.Path(path_type=str))
@click.argument("query", nargs=-1, required=True)
@click.option(
    "-k",
    "--top",
    "k",
    type=click.IntRange(min=1, max=10_000),
    default=10,
    show_default=True,
    help="How many hits to show.",
)
@click.option(
    "--mode",
    type=click.Choice(["hybrid", "bm25", "vector"]),
    default="hybrid",
    show_default=True,
    help="bm25: full-text; vector: cosine over the embeddings; hybrid: both, fused by reciprocal rank.",
)
@click.option("-n", "--namespace", default=None, help="Search only this namespace.")
@click.option(
    "--embedder",
    metavar="NAME|JSON",
    default=None,
    help="Embed the query with this embedder instead of the one recorded in the store, "
    'e.g. local or \'{"type": "local", "model": "all-MiniLM-L6-v2"}\'.',
)
@click.option("--json", "as_json", is_flag=True, help="Print the hits as JSON.")
@click.option(
    "--target",
    "target_index",
    type=click.IntRange(min=0),
    default=None,
    help="With a recipe: search its targets[N] (default: the first target that can be searched).",
)
@click.option("--env-file", type=click.Path(dir_okay=False, path_type=str), default=None, help="With a recipe.")
def search(
    store: str,
    query: tuple[str, ...],
    k: int,
    mode: str,
    namespace: str | None,
    embedder: str | None,
    as_json: bool,
    target_index: int | None,
    env_file: str | None,
) -> int:
    """Search STORE for QUERY: a local store file (sqlite/local), or RECIPE.yaml to search that recipe's
    target in whatever store it is (pgvector, Qdrant, Chroma, Milvus, …) with the recipe's embedder.

    A local store embeds the query with the embedder recorded in it, so it matches the vectors the store
    holds; --mode bm25 needs no embedder. Words of the query are matched as plain text (no FTS syntax).
    Exit 0 with or without hits, 1 for a file that is not a store or an empty store, 2 for a missing file.
    """
    from ..connectors.sqlite.search import LocalStore

    spec = parse_embedder(embedder)
    text = " ".join(query)
    started = time.perf_counter()
    if store.endswith((".yaml", ".yml")):
        from ..ops import search_recipe

        hits = search_recipe(store, text, k=k, namespace=namespace, target=target_index, env_file=env_file)
    else:
        with LocalStore(store, embedder=spec) as local:
            hits = local.search(text, k=k, mode=mode, namespace=namespace)
    elapsed_ms = (time.perf_counter() - started) * 1000
    if as_json:
        doc = {"store": store, "query": text, "mode": mode, "namespace": namespace, "hits": [h.to_json() for h in hits]}
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return 0
    if not hits:
        click.echo(f"no matches for {text!r}")
        return 0
    width = shutil.get_terminal_size((100, 24)).columns
    click.echo("\n".join(format_hits(hits, width=width)))
    click.echo(f"{len(hits)} hits ({mode}) in {elapsed_ms:.0f} ms", err=True)
    return 0


COMMANDS = [search]
