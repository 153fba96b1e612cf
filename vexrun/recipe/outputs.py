"""The files a recipe writes: what ``vexrun sign|verify|sync push --from-recipe RECIPE`` act on."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import UsageError
from ..registry import resolve
from .loader import load_recipe

__all__ = ["file_outputs"]


def file_outputs(recipe: str | os.PathLike[str], *, env_file: str | None = None) -> list[Path]:
    """The output file of every target of ``recipe`` whose sink declares ``file_output`` (``type: vmig``), in
    recipe order, resolved the way the sink resolves it (relative to the recipe's directory). Raises
    :class:`~vexrun.errors.UsageError` when there is none. Secrets may be unset: nothing is opened."""
    doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    out: list[Path] = []
    for target in doc.targets:
        caps = resolve("sink", target.type).capabilities
        if caps is not None and caps.file_output:
            path = Path(str(target.path)).expanduser()
            out.append((path if path.is_absolute() else doc.directory / path).resolve())
    if not out:
        raise UsageError(f"{doc.display}: the recipe has no .vmig.jsonl target (type: vmig)")
    return out
