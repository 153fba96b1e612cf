"""One-off recipes built from flags: ``vexrun migrate``, ``vexrun export`` and ``vexrun import``.

The flags become an ordinary recipe (printable with ``--print-recipe``, so it can be committed), which runs
through the same runner, checkpoint and cache as any other: the same command run again resumes. The recipe
is never written to disk (a literal secret in a flag would otherwise land there); its state lives in
``.vexrun/state/`` of the working directory, under a name derived from the recipe's content.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import blake3
import yaml

from .errors import UsageError
from .registry import resolve

__all__ = ["build_recipe", "parse_options", "recipe_text"]


def parse_options(pairs: tuple[str, ...] | list[str], flag: str) -> dict[str, Any]:
    """``KEY=VALUE`` flags to a dict; values are YAML scalars (``5`` is a number, ``true`` a boolean) or flow
    lists of scalars (``namespace_prefix=[memories,alice]``), ``${VAR}`` is kept for interpolation, dotted keys
    nest (``index.m=16``)."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"{flag} {pair!r}: expected KEY=VALUE")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        if value is None and raw.strip() not in ("null", "~"):
            value = raw
        scalars = isinstance(value, list) and all(not isinstance(v, dict | list) for v in value)
        if (isinstance(value, dict | list) and not scalars) or (isinstance(value, str) and "${" in raw):
            value = raw
        cur = out
        parts = key.split(".")
        for part in parts[:-1]:
            cur = cur.setdefault(part, {})
            if not isinstance(cur, dict):
                raise UsageError(f"{flag} {pair!r}: '{part}' is set twice")
        cur[parts[-1]] = value
    return out


def build_recipe(
    *,
    source: str,
    target: str,
    source_options: dict[str, Any],
    target_options: dict[str, Any],
    embed: dict[str, Any] | None = None,
    batch_size: int | None = None,
    namespace: str | None = None,
    name: str | None = None,
) -> dict[str, Any]:
    """The recipe (as data) that moves everything from ``source`` to ``target``."""
    src_spec = resolve("source", source)
    dst_spec = resolve("sink", target)
    src: dict[str, Any] = {"type": source, **source_options}
    dst: dict[str, Any] = {"type": target, **target_options}
    if namespace is not None:
        src.setdefault("namespace", namespace)
    recipe: dict[str, Any] = {
        "version": 1,
        "name": name or f"{src_spec.name}-to-{dst_spec.name}",
        "description": f"Move every record from {src_spec.name} to {dst_spec.name}.",
        "source": src,
    }
    if embed:
        recipe["embed"] = embed
    recipe["target"] = dst
    if batch_size:
        recipe["run"] = {"batch_size": batch_size}
    return recipe


def recipe_text(recipe: dict[str, Any]) -> str:
    head = "# yaml-language-server: $schema=https://vexrun.dev/schemas/recipe.schema.json\n"
    return head + yaml.safe_dump(recipe, sort_keys=False, allow_unicode=True, width=120)


def virtual_path(recipe: dict[str, Any], cwd: Path) -> Path:
    """A stable name for a flag-built recipe: the same flags in the same directory resume the same run."""
    digest = blake3.blake3(recipe_text(recipe).encode()).hexdigest(4)
    return cwd / ".vexrun" / "adhoc" / f"{recipe['name']}-{digest}.yaml"


def default_output(path: str) -> str:
    if not path.endswith((".vmig.jsonl", ".vmig.jsonl.gz")):
        raise UsageError(f"{path}: the output of `vexrun export` is a .vmig.jsonl (or .vmig.jsonl.gz) file")
    return os.fspath(path)
