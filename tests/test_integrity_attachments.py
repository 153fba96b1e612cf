"""IMPORT_CONTRACT T3 (issue 11): the attachment of a message dropped for having no text (an image or a file
alone) belongs to no turn. It used to be written into the next turn's `metadata.attachments` under the
dropped message's id; now it is kept in `metadata.unowned_attachments` of its conversation's first record and
counted as `unowned_attachments` in the run report (docs/import-contract.md says so)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import DATA, run_cli
from vexrun.connectors.exports import chatgpt, claude
from vexrun.connectors.exports.chunking import ChunkOptions, build_records

CLAUDE = DATA / "exports" / "claude" / "conversations.json"
CHATGPT = DATA / "exports" / "chatgpt" / "conversations.json"


def _decoded(values: object) -> list[dict[str, object]]:
    assert isinstance(values, list)
    return [json.loads(v) for v in values]


def test_a_dropped_claude_message_file_is_not_put_on_the_next_turn() -> None:
    (conv,) = [c for c in claude.iter_conversations(CLAUDE) if c.index == 0]
    for mode in ("turn", "exchange", "conversation", "smart"):
        records = build_records(conv, ChunkOptions(mode=mode), "claude-export")  # type: ignore[arg-type]
        for rec in records:
            owned = _decoded((rec.metadata or {}).get("attachments", []))
            assert all(a["owner_turn_index"] is not None for a in owned), mode
            assert "m8" not in {a["message_id"] for a in owned}, mode
        first = records[0].metadata or {}
        unowned = _decoded(first["unowned_attachments"])
        assert [(a["kind"], a["message_id"], a["owner_turn_index"], a["file_name"]) for a in unowned] == [
            ("file", "m8", None, "photo.jpg")
        ], mode
        assert all("unowned_attachments" not in (r.metadata or {}) for r in records[1:]), mode


def test_an_image_only_chatgpt_message_is_reported_without_an_owner() -> None:
    conv = next(c for c in chatgpt.iter_conversations(CHATGPT) if c.id == "conv-garden")
    records = build_records(conv, ChunkOptions(mode="turn"), "chatgpt-export")
    by_message = {str((r.metadata or {})["source_message_ids"][0]): r for r in records}  # type: ignore[index]
    u4 = _decoded((by_message["u4"].metadata or {})["attachments"])
    assert [(a["message_id"], a["owner_turn_index"]) for a in u4] == [("u4", 3)]  # not u3's image any more
    unowned = _decoded((records[0].metadata or {})["unowned_attachments"])
    assert [(a["kind"], a["message_id"], a["owner_turn_index"]) for a in unowned] == [("image", "u3", None)]
    assert unowned[0]["asset_pointer"] == "file-service://file-Abc123"  # byte-exact provider fields
    # a side that `sender` leaves out keeps its unowned attachments out too
    assistant_only = build_records(conv, ChunkOptions(mode="turn", sender="assistant"), "chatgpt-export")
    assert all("unowned_attachments" not in (r.metadata or {}) for r in assistant_only)


def test_the_run_report_counts_unowned_attachments(tmp_path: Path) -> None:
    shutil.copy(CLAUDE, tmp_path / "claude.json")
    shutil.copy(CHATGPT, tmp_path / "chatgpt.json")
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        """version: 1
sources:
  - {type: claude-export, path: claude.json, chunk: turn}
  - {type: chatgpt-export, path: chatgpt.json, chunk: turn}
target: {type: vmig, path: out.vmig.jsonl}
"""
    )
    res = run_cli("run", "--json", str(recipe))
    assert res.code == 0, res.output
    reports = json.loads(res.out)["counts"]["source_reports"]
    unowned = {name.split(":")[0]: report["unowned_attachments"] for name, report in reports.items()}
    assert unowned["claude-export"] >= 1 and unowned["chatgpt-export"] == 1
