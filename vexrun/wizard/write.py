"""Writing the recipe: rendered, validated, then moved into place (never a half-written or invalid file)."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import RecipeError, UsageError
from .recipe import Choices, render_recipe, secret_refs

__all__ = ["write_recipe"]

#: what an unset variable of the recipe stands for while the wizard validates it
_UNSET = "vexrun-init-unset-variable"


def write_recipe(choices: Choices, out: Path, *, force: bool = False, cwd: Path | None = None) -> Path:
    """Write the recipe for ``choices`` at ``out`` once it validates (unset ``${VAR}`` secrets allowed: they are
    set before running). Raises UsageError for an existing file without ``force``, RecipeError with every
    finding when the recipe does not validate (nothing is written then)."""
    from ..planner import compile_plan
    from ..recipe.loader import load_recipe

    if not out.name.endswith((".yaml", ".yml")):
        raise UsageError(f"{out}: a recipe's name ends in .yaml or .yml")
    if out.exists() and not force:
        raise UsageError(f"{out} exists (--force overwrites it)")
    out.parent.mkdir(parents=True, exist_ok=True)
    text = render_recipe(choices, out, cwd)
    partial = out.with_name(f".{out.name}.{os.getpid()}.partial.yaml")
    partial.write_text(text, encoding="utf-8")
    # the variables the recipe refers to need not be set yet (a list of keys, unset, would be a finding even
    # with lenient secrets): a stand-in value for each unset one
    env = {**{ref: _UNSET for ref in secret_refs(choices)}, **os.environ}
    try:
        try:
            compile_plan(load_recipe(partial, env=env, lenient_secrets=True))
        except RecipeError as exc:
            lines = [f.format(str(out)) for f in exc.details] or exc.findings
            raise RecipeError(f"{out}: the recipe would not validate; nothing written", findings=lines) from None
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
    return out
