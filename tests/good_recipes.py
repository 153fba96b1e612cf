"""Run the recipes of tests/data/recipes/good/ offline, each in a copy under a tmp directory.

``GOOD_RECIPES`` lists them with what a run needs (the loopback fake LLM, a signing key) and the exit code it
ends with; :func:`prepared` copies a recipe and its inputs, starts its fakes and yields the environment to run
it in; :func:`run_good_recipe` runs ``vexrun run --json`` on it in a child process. Outputs and the
``.vexrun/`` state land in the tmp copy, never in the repository.

    res = run_good_recipe("raw-vmig", tmp_path)
    assert res.code == 0

Set ``env={"PYTHONPATH": "/path/to/other/checkout"}`` to run another checkout's code on the same recipes.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import yaml

from conftest import DATA, CliResult, run_cli

__all__ = [
    "GOOD",
    "GOOD_RECIPES",
    "LLM_KEY",
    "GoodRecipe",
    "Prepared",
    "by_name",
    "prepared",
    "run_good_recipe",
    "target_count",
]

GOOD = DATA / "recipes" / "good"
#: the key the fake LLM accepts (a canary: it must never appear in any output)
LLM_KEY = "sk-good-recipes-CANARY-4b1d"


@dataclass(frozen=True)
class GoodRecipe:
    name: str
    #: the exit code of a run from scratch (3: the recipe is about rejected records)
    exit_code: int = 0
    #: the LLM at a loopback fake: sets VEXRUN_TEST_LLM_URL and VEXRUN_TEST_LLM_KEY
    llm: bool = False
    #: a signing key file made in the tmp directory: sets VEXRUN_TEST_SIGNING_KEY
    signing: bool = False

    @property
    def path(self) -> Path:
        return GOOD / f"{self.name}.yaml"


GOOD_RECIPES: list[GoodRecipe] = [
    GoodRecipe("raw-vmig"),
    GoodRecipe("reembed-sidecar"),
    GoodRecipe("adapt-truncate"),
    GoodRecipe("adapt-project"),
    GoodRecipe("exports-graph"),
    GoodRecipe("two-sources-two-targets"),
    GoodRecipe("rejects", exit_code=3),
    GoodRecipe("extract-fake-llm", llm=True),
    GoodRecipe("smart-fake-llm", llm=True),
    GoodRecipe("signed", signing=True),
]


def by_name(name: str) -> GoodRecipe:
    for good in GOOD_RECIPES:
        if good.name == name:
            return good
    raise KeyError(name)


@dataclass
class Prepared:
    recipe: Path
    #: the copy's directory (cwd of the run)
    directory: Path
    #: variables to add to the child's environment (None removes one)
    env: dict[str, str | None]

    def run(self, *args: str, env: dict[str, str | None] | None = None, timeout: float = 120) -> CliResult:
        """``vexrun ARGS RECIPE`` in the copy, with the fakes' environment (plus ``env``)."""
        return run_cli(*args, str(self.recipe), cwd=self.directory, env={**self.env, **(env or {})}, timeout=timeout)

    def targets(self) -> list[tuple[str, Path]]:
        """(type, path) of every target of the recipe, paths resolved in the copy."""
        doc = yaml.safe_load(self.recipe.read_text())
        found = doc.get("targets") or [doc["target"]]
        return [(t["type"], self.directory / t["path"]) for t in found]


def _signing_key(directory: Path) -> Path:
    from vexrun.crypto.keys import generate_key

    _, secret, _ = generate_key(passphrase=None, comment="good recipes", directory=directory)
    return secret


@contextmanager
def prepared(name: str, tmp_path: Path) -> Iterator[Prepared]:
    """Copy recipe ``name`` and its inputs to ``tmp_path/<name>/``, start the fakes it needs, and yield how to
    run it. The fakes stop when the block ends."""
    good = by_name(name)
    work = tmp_path / name
    work.mkdir(parents=True)
    shutil.copytree(GOOD / "inputs", work / "inputs", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (work / "out").mkdir()
    recipe = work / good.path.name
    shutil.copy(good.path, recipe)
    env: dict[str, str | None] = {
        "XDG_CONFIG_HOME": str(work / "xdg-config"),
        "XDG_STATE_HOME": str(work / "xdg-state"),
        "VEXRUN_TEST_LLM_URL": None,
        "VEXRUN_TEST_LLM_KEY": None,
        "VEXRUN_TEST_SIGNING_KEY": None,
    }
    with ExitStack() as stack:
        if good.llm:
            from vexrun.testing.fake_api import chat_server

            srv = stack.enter_context(chat_server(api_keys=[LLM_KEY]))
            env["VEXRUN_TEST_LLM_URL"] = srv.url("/v1")
            env["VEXRUN_TEST_LLM_KEY"] = LLM_KEY
        if good.signing:
            env["VEXRUN_TEST_SIGNING_KEY"] = str(_signing_key(work / "keys"))
        yield Prepared(recipe, work, env)


def run_good_recipe(
    name: str, tmp_path: Path, *extra_args: str, env: dict[str, str | None] | None = None, timeout: float = 120
) -> CliResult:
    """``vexrun run --json EXTRA_ARGS RECIPE`` on a fresh copy of good recipe ``name`` under ``tmp_path``, its
    fakes running."""
    with prepared(name, tmp_path) as p:
        return p.run("run", "--json", *extra_args, env=env, timeout=timeout)


def target_count(kind: str, path: Path) -> int:
    """How many records a target holds: lines of a vmig file, rows of the local store."""
    if kind == "vmig":
        return sum(1 for line in path.read_bytes().splitlines() if line.strip()) if path.exists() else 0
    if kind in ("sqlite", "local"):
        if not path.exists():
            return 0
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM records").fetchone()[0])
        finally:
            db.close()
    raise ValueError(f"no counter for targets of type {kind!r}")
