"""The plan is what runs: `vexrun plan` and `vexrun run` list the same stages in the same order; stages pickle
(another executor can build them in a worker); the library API; and a failure injected at every (batch, stage)
boundary, then the same call again, ends with the target of an uninterrupted run without computing any
embedding twice."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

import vexrun
from conftest import ROOT, run_cli
from good_recipes import GOOD_RECIPES, prepared
from vexrun.executor import LocalExecutor
from vexrun.stages.base import Stage, StageResult
from vexrun.testing import memory
from vexrun.vmig import Batch, Record, VmigWriter


def _pairs(stages: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(s["stage"], s["title"]) for s in stages]


@pytest.mark.parametrize("name", [g.name for g in GOOD_RECIPES])
def test_plan_stages_are_the_stages_a_run_reports(tmp_path: Path, name: str) -> None:
    with prepared(name, tmp_path) as p:
        plan = p.run("plan", "--json")
        assert plan.code == 0, plan.output
        res = p.run("run", "--json")
    assert res.code in (0, 3), res.output
    planned = _pairs(json.loads(plan.out)["stages"])
    ran = json.loads(res.out)["stages"]
    assert _pairs(ran) == planned
    assert [s for s, _ in planned][:3] == ["source", "chunk", "ids"] or planned[1][0] == "source"
    assert all({"in", "out", "rejected"} <= set(row) for row in ran)


def _fake_llm_block(url: str, key: str) -> str:
    return f"llm:\n  providers:\n    - {{type: openai, base_url: '{url}', api_keys: '{key}', model: fake}}\n"


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "recipes").glob("*.yaml")))
def test_the_shipped_recipes_run_the_stages_they_plan(tmp_path: Path, name: str) -> None:
    """recipes/ in a copy (their outputs land there); claude-smart's providers are pointed at a loopback fake
    (the stages a plan lists do not depend on which provider answers)."""
    from vexrun.testing.fake_api import chat_server

    for folder in ("recipes", "examples"):
        shutil.copytree(ROOT / folder, tmp_path / folder, ignore=shutil.ignore_patterns(".vexrun", "out"))
    recipe = tmp_path / "recipes" / name
    with chat_server(api_keys=["sk-plan-runs-test-key-0001"]) as srv:
        text = recipe.read_text()
        if "\nllm:" in text:
            block = re.search(r"\nllm:\n(?:  .*\n)+", text)
            assert block is not None
            text = text.replace(block.group(0), "\n" + _fake_llm_block(srv.url("/v1"), "sk-plan-runs-test-key-0001"))
            recipe.write_text(text)
        plan = run_cli("plan", "--json", str(recipe), cwd=tmp_path)
        assert plan.code == 0, plan.output
        res = run_cli("run", "--json", str(recipe), cwd=tmp_path, timeout=900)
    # the generic fake answers a few of claude-smart's packed chunks with facts it cannot map (exit 3): what
    # this test is about is the list of stages, which a rejected chunk does not change
    assert res.code in (0, 3), res.output
    assert json.loads(res.out)["status"] == "completed"
    assert _pairs(json.loads(res.out)["stages"]) == _pairs(json.loads(plan.out)["stages"])


def _texts(path: Path, n: int = 60) -> None:
    with VmigWriter(path) as w:
        for i in range(n):
            text = f"note {i}: the user said something about topic {i % 9}"
            if i % 17 == 4:
                text = " ".join([text] * 50)  # split by the chunk stage
            w.write(Record(id=f"n{i:03d}", text=text, namespace="ns", metadata={"conversation_id": f"c{i // 6}"}))


def _recipe(tmp: Path, store: str, faults: str = "[]") -> Path:
    _texts(tmp / "in.vmig.jsonl")
    recipe = tmp / "job.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\nembed: {type: fake, dims: 8}\n"
        f"target: {{type: memory, name: {store}, faults: {faults}}}\nrun: {{batch_size: 10}}\n"
    )
    return recipe


def test_library_api(tmp_path: Path) -> None:
    assert {"load_recipe", "plan", "run", "validate"} <= set(vexrun.__all__)
    recipe = _recipe(tmp_path, "api")
    memory.reset("api")
    report = vexrun.validate(recipe)
    assert report.valid and not report.findings
    plan = vexrun.plan(recipe)
    assert [s.name for s in plan.stages] == ["source", "chunk", "ids", "embed", "graph", "store"]
    summary = vexrun.run(recipe)
    assert summary.status == "completed" and summary.exit_code == 0
    assert [(r["stage"], r["title"]) for r in summary.rows()] == [(s.name, s.title) for s in plan.stages]
    assert len(memory.contents("api")) == summary.rows()[-1]["out"] > 60
    broken = tmp_path / "bad.yaml"
    broken.write_text("version: 1\nsource: {type: vmig, paht: x}\n")
    bad = vexrun.validate(broken)
    assert not bad.valid and any(f.code == "unknown-field" for f in bad.findings)


class _CrashAt(LocalExecutor):
    """Dies before stage ``stage`` of batch ``batch`` (``stage == len(stages)``: after the last, before store)."""

    def __init__(self, batch: int, stage: int) -> None:
        self.at = (batch, stage)

    def process(self, stages: Sequence[Stage], batch: Batch, index: int) -> list[StageResult]:
        results = []
        for i, stage in enumerate([*stages, None]):
            if (index, i) == self.at:
                raise memory.SimulatedCrash(f"crash before stage {i} of batch {index}")
            if stage is not None:
                results.append(stage.process(batch))
                batch = results[-1].batch
        return results


def _target(name: str) -> tuple[dict[str, tuple[object, bytes | None]], set[object]]:
    return dict(memory.contents(name)), set(memory.edges(name))


def _max_puts(tmp: Path) -> int:
    (state,) = (tmp / ".vexrun" / "state").iterdir()
    db = sqlite3.connect(state / "cache.sqlite")
    try:
        return int(db.execute("SELECT MAX(puts) FROM embeddings").fetchone()[0])
    finally:
        db.close()


def test_a_failure_at_every_batch_and_stage_boundary_resumes_to_the_same_target(tmp_path: Path) -> None:
    memory.reset("baseline")
    base_dir = tmp_path / "baseline"
    base_dir.mkdir()
    summary = vexrun.run(_recipe(base_dir, "baseline"))
    expected = _target("baseline")
    n_batches = summary.batches
    n_stages = len(vexrun.plan(base_dir / "job.yaml").role("batch"))
    assert n_batches == 6 and n_stages == 4 and len(expected[0]) > 60 and expected[1]
    cases = 0
    for b in range(1, n_batches + 1):
        for k in range(n_stages + 1):
            name = f"crash-{b}-{k}"
            memory.reset(name)
            work = tmp_path / name
            work.mkdir()
            recipe = _recipe(work, name)
            with pytest.raises(memory.SimulatedCrash):
                vexrun.run(recipe, executor=_CrashAt(b, k))
            again = vexrun.run(recipe)
            assert again.status == "completed" and again.resumed_at_batch == b - 1, name
            assert _target(name) == expected, name
            assert _max_puts(work) == 1, name  # no embedding was computed twice
            cases += 1
    assert cases == n_batches * (n_stages + 1)


@pytest.mark.parametrize(
    "point,when",
    [(p, w) for p in ("prepare", "write", "write_edges") for w in ("before", "after")] + [("finalize", "before")],
)
@pytest.mark.parametrize("action", ["crash", "raise"])
def test_a_failing_sink_resumes_to_the_same_target(tmp_path: Path, point: str, when: str, action: str) -> None:
    memory.reset("sink-baseline")
    base = tmp_path / "baseline"
    base.mkdir()
    vexrun.run(_recipe(base, "sink-baseline"))
    expected = _target("sink-baseline")
    name = f"sink-{point}-{when}-{action}"
    memory.reset(name)
    work = tmp_path / "faulty"
    work.mkdir()
    batch = 1 if point == "prepare" else (3 if point != "finalize" else 1)
    recipe = _recipe(work, name, f"[{{point: {point}, when: {when}, batch: {batch}, action: {action}}}]")
    with pytest.raises((memory.SimulatedCrash, vexrun.VexrunError)):
        vexrun.run(recipe)
    assert vexrun.run(recipe).status == "completed"
    assert _target(name) == expected
    assert _max_puts(work) == 1


def test_built_stages_pickle_and_give_the_same_results(tmp_path: Path) -> None:
    from vexrun.build import run_context, stage_context
    from vexrun.stages.base import build_stage

    recipe = _recipe(tmp_path, "pickle")
    plan = vexrun.plan(recipe)
    plan.state_dir.mkdir(parents=True)
    ctx = stage_context(plan, run_context(plan))
    built = [build_stage(spec, ctx) for spec in plan.role("batch")]
    copies = pickle.loads(pickle.dumps((ctx, built)))[1]
    assert [type(s) for s in copies] == [type(s) for s in built]
    batch = Batch(records=[Record(id=f"r{i}", text=f"text {i} " * (i * 60 + 1)) for i in range(5)])
    outs = []
    for stages in (built, copies):
        for stage in stages:
            stage.open(None)
        results = LocalExecutor().process(stages, batch, 1)
        outs.append(results[-1].batch)
        for stage in stages:
            stage.close()
        if stages[0].ctx is not None:
            stages[0].ctx.close()
    assert [r.id for r in outs[0].records] == [r.id for r in outs[1].records]
    assert outs[0].vectors is not None and outs[1].vectors is not None
    assert np.array_equal(outs[0].vectors, outs[1].vectors)
    # every good recipe's stages pickle before they open
    for good in GOOD_RECIPES:
        with prepared(good.name, tmp_path / "good") as p:
            for key, value in p.env.items():
                if value is not None:
                    import os

                    os.environ[key] = value
            try:
                gplan = vexrun.plan(p.recipe)
                gctx = stage_context(gplan, run_context(gplan))
                stages = [build_stage(s, gctx) for s in gplan.role("batch") + gplan.role("publish")]
                assert len(pickle.loads(pickle.dumps(stages))) == len(stages)
            finally:
                for key in p.env:
                    os.environ.pop(key, None)


def test_every_stage_is_built_the_way_contributing_says(tmp_path: Path) -> None:
    """CONTRIBUTING.md's "Adding a stage", followed for every stage of every good recipe's plan."""
    import importlib
    import inspect

    guide = (ROOT / "CONTRIBUTING.md").read_text()
    for named in ("vexrun/stages/<stage>.py", "from_spec(spec, ctx)", "process(batch) -> StageResult", "planner.py"):
        assert named in guide, f"CONTRIBUTING.md no longer says {named}"
    seen: set[str] = set()
    for good in GOOD_RECIPES:
        with prepared(good.name, tmp_path / "plans") as p:
            plan = vexrun.plan(p.recipe)
        for spec in plan.role("batch") + plan.role("publish"):
            assert spec.impl is not None and spec.impl.startswith("vexrun.stages."), spec.title
            module, _, name = spec.impl.partition(":")
            cls = getattr(importlib.import_module(module), name)
            assert issubclass(cls, Stage) and cls.name == spec.name, spec.impl
            assert cls.from_spec.__func__ is not Stage.from_spec.__func__, f"{spec.impl} has no from_spec"
            assert inspect.signature(cls.process).return_annotation in ("StageResult", StageResult), spec.impl
            seen.add(spec.name)
    assert {"chunk", "ids", "extract", "score", "dedup", "adapt", "embed", "graph", "sign"} <= seen


def test_every_embedder_is_built_the_way_contributing_says() -> None:
    from vexrun.connectors.base import PluginConfig
    from vexrun.providers.base import Embedder
    from vexrun.providers.embed.plugin import PLUGINS
    from vexrun.registry import plugins

    guide = (ROOT / "CONTRIBUTING.md").read_text()
    assert "vexrun/providers/embed/plugin.py" in guide and "declared_dims()" in guide
    own = {s.name for s in PLUGINS}
    assert {"local", "openai", "ollama"} <= own <= set(plugins("embedder"))
    for spec in PLUGINS:
        assert spec.impl.startswith("vexrun.providers.embed."), spec
        assert issubclass(spec.config_model(), PluginConfig), spec
        if spec.installed():
            assert issubclass(spec.implementation(), Embedder), spec
