"""Every recipe in tests/data/recipes/good/ validates, and runs offline (fake embedder, loopback fake LLM, a key
made here) in a tmp copy to its expected exit code, leaving every target non-empty."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from good_recipes import GOOD, GOOD_RECIPES, LLM_KEY, GoodRecipe, prepared, target_count


def test_the_list_names_every_recipe_in_the_folder() -> None:
    assert sorted(g.name for g in GOOD_RECIPES) == sorted(p.stem for p in GOOD.glob("*.yaml"))


@pytest.mark.parametrize("good", GOOD_RECIPES, ids=lambda g: g.name)
def test_good_recipe_validates_and_runs(good: GoodRecipe, tmp_path: Path) -> None:
    with prepared(good.name, tmp_path) as p:
        assert p.recipe.read_text().startswith("# Covers:"), "each recipe says what it covers first"
        valid = p.run("validate")
        assert valid.code == 0, valid.output
        res = p.run("run", "--json")
        assert res.code == good.exit_code, res.output
        summary = json.loads(res.out)
        assert summary["status"] == "completed"
        for kind, path in p.targets():
            assert target_count(kind, path) > 0, f"{path} is empty"
        if good.exit_code == 3:
            assert summary["rejected"] > 0 and summary["rejects_file"]
        else:
            assert summary["rejected"] == 0
        if good.signing:
            sig = summary["counts"]["sign"]["signature"]
            assert sig.endswith(".sig") and (p.directory / "out" / "signed.vmig.jsonl.sig").exists()
        if good.llm:
            assert summary["counts"]["llm"]["total"]["calls"] > 0
            assert LLM_KEY not in res.output
        # nothing was written beside the recipe in the repository
        assert not (GOOD / "out").exists() and not (GOOD / ".vexrun").exists()
