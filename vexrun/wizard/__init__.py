"""``vexrun init``: a recipe from a few answers (a terminal wizard) or from flags (scripts).

::

    choices = choices_from_flags(source="claude-export", target="sqlite",
                                 from_settings=["path=conversations.json"], to_settings=["path=memory.db"])
    write_recipe(choices, Path("memory.yaml"))        # a commented recipe; validated before it is kept
    path = run_wizard(None)                           # the same, asked on a terminal (needs questionary)

The wizard never writes a secret: a key, token or password is only ever the ``${NAME}`` of the environment
variable that holds it, and an answer that looks like a key is refused. The interactive part
(:mod:`vexrun.wizard.interactive`) imports questionary (prompt_toolkit) only when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .flags import choices_from_flags
from .recipe import Choices, Part, render_recipe, secret_refs
from .write import write_recipe

__all__ = ["Choices", "Part", "choices_from_flags", "render_recipe", "run_wizard", "secret_refs", "write_recipe"]


def run_wizard(out: Path | None, *, force: bool = False, **kwargs: Any) -> Path:
    """Ask on the terminal, write the recipe and return its path (see :mod:`vexrun.wizard.interactive`)."""
    from .interactive import run_wizard as ask

    return ask(out, force=force, **kwargs)
