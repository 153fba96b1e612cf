"""The library: what every ``vexrun`` verb calls. ::

    import vexrun

    report = vexrun.validate("recipes/quickstart.yaml")     # a recipe, or a .vmig.jsonl file
    assert report.valid, report.findings
    plan = vexrun.plan("recipes/quickstart.yaml")
    print([s.title for s in plan.stages])                    # the stages, in the order they run
    summary = vexrun.run("recipes/quickstart.yaml")          # resumes if a checkpoint is there
    print(summary.status, summary.to_json()["stages"])

Failures raise :class:`vexrun.VexrunError` subclasses, each with the exit code the CLI uses.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .executor import Executor
    from .planner import Plan
    from .recipe.loader import RecipeDoc, RecipeFinding
    from .summary import RunSummary
    from .vmig.validate import ValidationReport

__all__ = ["RecipeReport", "load_recipe", "plan", "run", "validate"]

PathLike = str | os.PathLike[str]


def load_recipe(path: PathLike, *, env_file: str | None = None, lenient_secrets: bool = False) -> RecipeDoc:
    """Read and validate a recipe: YAML, ``${VAR}`` interpolation, the model. Raises
    :class:`~vexrun.errors.RecipeError` with every finding at ``file:line:col``."""
    from .recipe.loader import load_recipe as _load

    return _load(path, env_file=env_file, lenient_secrets=lenient_secrets)


def plan(recipe: PathLike | RecipeDoc, *, env_file: str | None = None) -> Plan:
    """Compile a recipe (a path or a loaded recipe) into its plan: the stages in the order they run. Secrets may
    be unset (a plan shows where they come from, never their values)."""
    from .planner import compile_plan
    from .recipe.loader import RecipeDoc

    doc = recipe if isinstance(recipe, RecipeDoc) else load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    return compile_plan(doc)


@dataclass
class RecipeReport:
    """What :func:`validate` says of a recipe."""

    file: str
    valid: bool
    #: errors (invalid) or warnings (valid), sorted by line
    findings: list[RecipeFinding] = field(default_factory=list)
    plan: Plan | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "file": self.file,
            "valid": self.valid,
            "findings": [f.to_json(self.file) for f in self.findings],
        }
        if self.plan is not None:
            out["fingerprint"] = self.plan.fingerprint
        return out


def validate(
    path: PathLike, *, env_file: str | None = None, allow_missing_secrets: bool = False
) -> RecipeReport | ValidationReport:
    """Check a recipe (``.yaml``/``.yml``: loaded and compiled offline) or a ``.vmig.jsonl(.gz)`` file (every
    record, streamed). Returns a report; raises only for what is not a finding (a missing file).
    ``allow_missing_secrets``: a secret field's unset ``${VAR}`` is not a finding (where secrets are absent by
    design: a developer's machine, a pre-commit hook)."""
    from .errors import RecipeError

    name = os.fspath(path)
    if not name.endswith((".yaml", ".yml")):
        from .vmig import validate_file

        return validate_file(name)
    try:
        compiled = plan(load_recipe(name, env_file=env_file, lenient_secrets=allow_missing_secrets))
    except RecipeError as exc:
        return RecipeReport(name, False, list(exc.details or []))
    return RecipeReport(name, True, list(compiled.warnings), compiled)


def run(
    recipe: PathLike | RecipeDoc,
    *,
    env_file: str | None = None,
    fresh: bool = False,
    retry_rejected: bool = False,
    progress: str = "none",
    executor: Executor | None = None,
    command: str | None = None,
) -> RunSummary:
    """Run a recipe with resumable checkpoints: the same call after a failure or a kill resumes where the last
    committed batch ended. ``fresh`` starts over (the embedding cache is kept); ``retry_rejected`` re-runs the
    records a completed run rejected after reading them; ``progress``: "auto", "bar", "log" or "none";
    ``executor``: what runs the stages (default: the recipe's ``run.executor``). Raises
    :class:`~vexrun.errors.Interrupted` after saving the checkpoint when a signal stops the run."""
    from .planner import compile_plan
    from .recipe.loader import RecipeDoc
    from .runner import Runner, RunOptions

    doc = recipe if isinstance(recipe, RecipeDoc) else load_recipe(recipe, env_file=env_file)
    options = RunOptions(
        env_file=env_file,
        fresh=fresh,
        progress=progress,
        command=command,
        retry_rejected=retry_rejected,
        executor=executor,
    )
    return Runner(compile_plan(doc), options).run()
