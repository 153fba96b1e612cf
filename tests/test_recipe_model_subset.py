"""A recipe is validated by a model that knows only the plugins it names (importing every plugin's config costs
~70 ms of every command): the result is the full model's, and a recipe the small model refuses is reported by
the full model (the goldens of tests/data/recipes/bad/ check the messages)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from conftest import ROOT
from vexrun.recipe.model import recipe_model, used_plugins

RECIPES = sorted(
    [*ROOT.glob("recipes/*.yaml"), *ROOT.glob("tests/data/recipes/*/*.yaml"), *ROOT.glob("examples/**/*.yaml")]
)


def _validate(model: type, data: object) -> object:
    try:
        return model.model_validate(data).model_dump(mode="json")  # type: ignore[attr-defined]
    except ValidationError as exc:
        return [(e["type"], e["loc"]) for e in exc.errors(include_url=False)]


def test_every_recipe_is_validated_by_its_own_plugins_model_as_by_the_full_model() -> None:
    small = 0
    for path in RECIPES:
        try:
            data = yaml.safe_load(path.read_text())
        except yaml.YAMLError:
            continue  # the bad recipes' YAML errors: no model is involved
        used = used_plugins(data)
        if used is None:
            continue
        small += 1
        model = recipe_model(used)
        assert model is not recipe_model()
        assert _validate(model, data) == _validate(recipe_model(), data), path
    assert small >= 15, small


def test_names_and_aliases_are_canonical_and_anything_else_falls_back() -> None:
    used = used_plugins({"source": {"type": "claude"}, "targets": [{"type": "postgres"}, {"type": "vmig"}]})
    assert used == (frozenset({"claude-export"}), frozenset({"pgvector", "vmig"}), frozenset())
    assert used_plugins({"source": {"type": "no-such-store"}}) is None
    assert used_plugins({"source": "vmig"}) is None
    assert used_plugins({"targets": {"type": "vmig"}}) is None
    assert used_plugins({"source": {"type": 3}}) is None
    assert used_plugins(["not", "a", "mapping"]) is None


def test_loading_a_recipe_imports_no_other_connectors_config_or_code(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: pgvector, dsn: 'postgresql://u@127.0.0.1/db', table: t}\n"
        "target: {type: vmig, path: out.vmig.jsonl}\n"
    )
    code = (
        "import sys\nfrom vexrun.api import load_recipe\n"
        f"load_recipe({str(recipe)!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('vexrun.connectors.') and m.count('.') >= 3))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    # each package's ``plugin`` module (names, capabilities) is read to list the plugins; nothing else of theirs
    modules = [m for m in eval(out.stdout) if not m.endswith(".plugin")]  # noqa: S307 - our own printed list
    assert {m.rsplit(".", 1)[0] for m in modules} <= {"vexrun.connectors.pgvector", "vexrun.connectors.vmig"}, modules


@pytest.mark.parametrize("bad", ["unknown-type.yaml", "unknown-keys.yaml", "wrong-types.yaml"])
def test_a_recipe_the_small_model_refuses_is_reported_by_the_full_model(bad: str) -> None:
    from vexrun.api import load_recipe
    from vexrun.recipe.loader import RecipeError

    with pytest.raises(RecipeError) as caught:
        load_recipe(ROOT / "tests" / "data" / "recipes" / "bad" / bad)
    if bad == "unknown-type.yaml":  # every known type is listed, not only the recipe's
        listed = [f for f in caught.value.findings if "source.type" in f]
        assert listed and all("weaviate" in f and "pinecone" in f for f in listed), caught.value.findings
