"""The top-level section that splits long texts is `split:` (issue 11): its old name `chunk:` was easy to take for
a source's `chunk:` mode, and `max_chars` (default 2000) splits long turns even in `turn` mode, which the README
never said. `chunk:` keeps working (same plan, same fingerprint); both at once is a finding at `split:`."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import ROOT, run_cli
from vexrun.vmig import Record, VmigWriter, read_batches

LONG = " ".join(f"Sentence number {i} of a long answer." for i in range(150))  # ~5,000 characters


def _recipe(tmp: Path, section: str, name: str = "r") -> Path:
    with VmigWriter(tmp / "in.vmig.jsonl") as w:
        w.write(Record(id="long", text=LONG))
        w.write(Record(id="short", text="a short one"))
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(
        f"""version: 1
source: {{type: vmig, path: in.vmig.jsonl}}
{section}
target: {{type: vmig, path: {name}.vmig.jsonl}}
"""
    )
    return recipe


def _texts(path: Path) -> list[tuple[str, str | None, object]]:
    return [(r.id, r.text, (r.metadata or {}).get("part")) for b in read_batches(path) for r, _ in b]


def test_split_and_its_old_name_chunk_are_the_same_plan_and_output(tmp_path: Path) -> None:
    recipes = []
    for name in ("split", "chunk"):
        (tmp_path / name).mkdir()
        recipes.append(_recipe(tmp_path / name, f"{name}: {{max_chars: 600, overlap_chars: 50}}"))
    plans = [json.loads(run_cli("plan", "--json", str(r)).out) for r in recipes]
    assert plans[0]["fingerprint"] == plans[1]["fingerprint"]
    chunk = next(s for s in plans[0]["stages"] if s["stage"] == "chunk")
    assert chunk["settings"] == {"max_chars": 600, "overlap_chars": 50}
    for recipe in recipes:
        assert run_cli("run", str(recipe)).code == 0
    new, old = (_texts(tmp_path / name / "r.vmig.jsonl") for name in ("split", "chunk"))
    assert new == old
    parts = [t for t in new if t[2] is not None]
    assert len(parts) >= 8 and all(len(text or "") <= 600 for _, text, _ in parts)


def test_the_plan_says_what_the_section_does(tmp_path: Path) -> None:
    plan = run_cli("plan", str(_recipe(tmp_path, "")))
    assert plan.code == 0, plan.output
    assert "recipe section 'split:' (old name 'chunk:'): splits any text over max_chars" in plan.out
    assert "max_chars: 2000" in plan.out


def test_split_and_chunk_together_is_a_finding_at_split(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "chunk: {max_chars: 600}\nsplit: {max_chars: 800}")
    res = run_cli("validate", str(recipe))
    assert res.code == 1
    assert "r.yaml:4:1: error[bad-value] split: give either 'split:' or 'chunk:' (its old name), not both" in res.out


def test_a_bad_value_under_split_is_reported_at_its_line(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "split:\n  max_chars: 10")
    res = run_cli("validate", str(recipe))
    assert res.code == 1
    assert "r.yaml:4:3: error[bad-value] split.max_chars:" in res.out


def test_turn_mode_turns_longer_than_max_chars_are_split(tmp_path: Path) -> None:
    """What the README now says next to the chunk modes: `turn` gives one record per turn, then `split:` cuts
    any text over max_chars (2000 by default) into parts."""
    export = [
        {
            "uuid": "c1",
            "name": "long",
            "created_at": "2025-01-01T00:00:00Z",
            "chat_messages": [
                {"uuid": "m1", "sender": "human", "text": "tell me", "content": [{"type": "text", "text": "tell me"}]},
                {"uuid": "m2", "sender": "assistant", "text": LONG, "content": [{"type": "text", "text": LONG}]},
            ],
        }
    ]
    (tmp_path / "conversations.json").write_text(json.dumps(export))
    recipe = tmp_path / "turns.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: claude-export, path: conversations.json, chunk: turn}\n"
        "target: {type: vmig, path: out.vmig.jsonl}\n"
    )
    assert run_cli("run", str(recipe)).code == 0
    records = [r for b in read_batches(tmp_path / "out.vmig.jsonl") for r, _ in b]
    assert len(records) > 2
    parts = [r for r in records if (r.metadata or {}).get("parts")]
    assert {(r.metadata or {})["source_message_ids"][0] for r in parts} == {"m2"}  # type: ignore[index]
    kept = tmp_path / "whole.yaml"
    kept.write_text(recipe.read_text() + "split: {max_chars: 100000}\n")
    kept.write_text(kept.read_text().replace("out.vmig.jsonl", "whole.vmig.jsonl"))
    assert run_cli("run", str(kept)).code == 0
    assert len([r for b in read_batches(tmp_path / "whole.vmig.jsonl") for r, _ in b]) == 2


def test_the_schema_has_split_and_chunk() -> None:
    schema = json.loads((ROOT / "schemas" / "recipe.schema.json").read_text())
    assert "turn" in schema["properties"]["split"]["description"]
    assert "old name" in schema["properties"]["chunk"]["description"]
    assert json.loads(run_cli("schema").out)["properties"].keys() >= {"split", "chunk", "publish"}
