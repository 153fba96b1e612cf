"""The export sources as the runner uses them: batches, cursors that resume at every batch boundary, the
run report, identity, and one-line errors for paths and files that are not exports."""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA
from vexrun.connectors.base import RunContext
from vexrun.connectors.exports.chatgpt import ChatGPTExportConfig, ChatGPTExportSource
from vexrun.connectors.exports.claude import ClaudeExportConfig, ClaudeExportSource
from vexrun.connectors.exports.source import ExportSource
from vexrun.errors import FormatError, UsageError
from vexrun.testing.exports import write_chatgpt_export
from vexrun.vmig.model import Record

EXPORTS = DATA / "exports"


def source(kind: str, path: str, recipe_dir: Path = EXPORTS, **options: Any) -> ExportSource:
    ctx = RunContext(state_dir=recipe_dir, recipe_dir=recipe_dir)
    if kind == "claude":
        return ClaudeExportSource(ClaudeExportConfig(type="claude-export", path=path, **options), ctx)
    return ChatGPTExportSource(ChatGPTExportConfig(type="chatgpt-export", path=path, **options), ctx)


def read_all(src: ExportSource, batch_size: int, cursor: dict[str, Any] | None = None) -> list[Record]:
    src.open()
    records = [r for batch, _ in src.batches(cursor, batch_size) for r in batch.records]
    src.close()
    return records


def key(records: list[Record]) -> list[tuple[Any, ...]]:
    return [(r.id, r.text, r.created_at, json.dumps(r.metadata, sort_keys=True)) for r in records]


def test_turn_mode_report_counts_everything() -> None:
    """T6 and the report: conversations (empty ones too), turns, records, dropped by reason."""
    src = source("chatgpt", "chatgpt/conversations.json", chunk="turn")
    records = read_all(src, 4)
    assert len(records) == 8
    assert src.report() == {
        "conversations": 3,
        "empty_conversations": 1,
        "turns": 8,
        "records": 8,
        "attachments": 3,
        "unowned_attachments": 1,
        "dropped": {
            "content_type_code": 1,
            "content_type_reasoning_recap": 1,
            "content_type_thoughts": 1,
            "empty_after_extraction": 1,
            "not_on_current_path": 3,
            "null_message": 3,
            "recipient_python": 1,
            "recipient_web.run": 1,
            "role_tool": 2,
            "visually_hidden": 3,
        },
    }
    assert all(r.source_store == "chatgpt-export" and r.modality == "text" for r in records)
    assert {(r.metadata or {})["conversation_id"] for r in records} == {"conv-garden", "conv-nocurrent"}


@pytest.mark.parametrize(
    ("kind", "path"),
    [("claude", "claude/conversations.json"), ("claude", "claude/api.json"), ("chatgpt", "chatgpt/conversations.json")],
)
@pytest.mark.parametrize("mode", ["turn", "exchange", "conversation", "smart"])
def test_resume_at_every_batch_boundary(kind: str, path: str, mode: str) -> None:
    """Cursor after batch k, read again from it: exactly the records after it, never one twice; the
    resumed report covers the whole file once."""
    whole_src = source(kind, path, chunk=mode, window_turns=3, window_overlap=1)
    whole = read_all(whole_src, 1000)
    assert whole
    for batch_size in (1, 2, 3):
        src = source(kind, path, chunk=mode, window_turns=3, window_overlap=1)
        src.open()
        pairs = list(src.batches(None, batch_size))
        assert key([r for b, _ in pairs for r in b.records]) == key(whole)
        assert all(0 < len(b) <= batch_size for b, _ in pairs)
        seen = 0
        for batch, cursor in pairs:
            seen += len(batch)
            cursor = json.loads(json.dumps(cursor))  # it must survive a checkpoint file
            resumed_src = source(kind, path, chunk=mode, window_turns=3, window_overlap=1)
            rest = read_all(resumed_src, batch_size, cursor)
            assert key(rest) == key(whole[seen:])
            assert resumed_src.report() == whole_src.report()


def test_resume_in_a_zip_skips_without_seeking(tmp_path: Path) -> None:
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.write(EXPORTS / "claude" / "conversations.json", "conversations.json")
    whole = read_all(source("claude", "export.zip", tmp_path, chunk="turn"), 100)
    src = source("claude", "export.zip", tmp_path, chunk="turn")
    src.open()
    for batch, cursor in src.batches(None, 2):
        index = whole.index(next(r for r in whole if r.id == batch.records[-1].id))
        assert key(read_all(source("claude", "export.zip", tmp_path, chunk="turn"), 2, cursor)) == key(
            whole[index + 1 :]
        )


def test_resume_on_a_generated_export_seeks(tmp_path: Path) -> None:
    """A bigger file: resuming from the middle gives the tail and reads only from the cursor's offset on."""
    path = tmp_path / "conversations.json"
    count = write_chatgpt_export(path, 400_000, seed=3)
    src = source("chatgpt", str(path), tmp_path)
    src.open()
    pairs = list(src.batches(None, 64))
    whole = [r for b, _ in pairs for r in b.records]
    assert src.report()["conversations"] == count
    middle = len(pairs) // 2
    cursor = pairs[middle][1]
    assert cursor["offset"] > 0 and cursor["conversation"] > 0
    done = sum(len(b) for b, _ in pairs[: middle + 1])
    # a file whose bytes before the cursor are garbage still resumes: nothing before the offset is read
    blob = bytearray(path.read_bytes())
    blob[: cursor["offset"]] = b"x" * cursor["offset"]
    path.write_bytes(bytes(blob))
    assert key(read_all(source("chatgpt", str(path), tmp_path), 64, cursor)) == key(whole[done:])


def test_records_are_the_same_on_a_second_read() -> None:
    """Determinism: ids and everything else, across two independent reads."""
    first = read_all(source("claude", "claude/conversations.json"), 5)
    second = read_all(source("claude", "claude/conversations.json"), 7)
    assert key(first) == key(second)


def test_identity_names_the_file_not_the_folder() -> None:
    assert source("claude", "claude/conversations.json").identity() == "claude-export:conversations.json"
    assert source("chatgpt", "chatgpt/ascii-oneline.json").identity() == "chatgpt-export:ascii-oneline.json"


def test_relative_paths_resolve_against_the_recipe(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    shutil.copy(EXPORTS / "claude" / "api.json", tmp_path / "in" / "conversations.json")
    assert len(read_all(source("claude", "in", tmp_path, chunk="turn"), 10)) == 6


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    src = source("claude", "nowhere/conversations.json", tmp_path)
    with pytest.raises(UsageError) as err:
        src.open()
    assert str(err.value) == "nowhere/conversations.json: no such file"


@pytest.mark.parametrize("kind", ["claude", "chatgpt"])
def test_not_an_export_is_a_format_error_without_traceback(kind: str, tmp_path: Path) -> None:
    (tmp_path / "x.vmig.jsonl").write_text('{"id": "a", "text": "t"}\n{"id": "b", "text": "u"}\n')
    src = source(kind, "x.vmig.jsonl", tmp_path)
    src.open()
    with pytest.raises(FormatError) as err:
        list(src.batches(None, 10))
    message = str(err.value)
    expected = "the file is one JSON object; an export is a JSON array of conversations (byte 0)"
    assert message == f"{tmp_path / 'x.vmig.jsonl'}: {expected}"
    assert err.value.exit_code == 1 and err.value.__cause__ is None and err.value.__context__ is None


def test_a_bad_cursor_is_reported(tmp_path: Path) -> None:
    src = source("claude", "claude/api.json")
    src.open()
    with pytest.raises(FormatError, match="not a cursor of this source"):
        list(src.batches({"line": 3}, 10))


def test_estimate_is_none_and_batches_have_no_vectors() -> None:
    src = source("claude", "claude/api.json")
    src.open()
    assert src.estimate() is None
    for batch, _ in src.batches(None, 2):
        assert batch.vectors is None and batch.has_vector is None


def _recipe(tmp_path: Path, export: Path, kind: str = "claude-export") -> Path:
    recipe = tmp_path / "import.yaml"
    recipe.write_text(
        f"version: 1\nsource:\n  type: {kind}\n  path: {export}\n  chunk: exchange\n"
        "embed:\n  type: fake\ntarget:\n  type: vmig\n  path: out.vmig.jsonl\n",
        encoding="utf-8",
    )
    return recipe


def test_through_the_cli(tmp_path: Path) -> None:
    """A recipe reads an export end to end; a broken export and a missing one end in one line, no traceback."""
    from conftest import run_cli

    good = _recipe(tmp_path, EXPORTS / "claude" / "conversations.json")
    result = run_cli("run", str(good), cwd=tmp_path)
    assert result.code == 0, result.output
    lines = (tmp_path / "out.vmig.jsonl").read_text(encoding="utf-8").splitlines()
    expected = read_all(source("claude", "claude/conversations.json", chunk="exchange"), 100)
    assert [json.loads(line)["text"] for line in lines] == [r.text for r in expected]

    for export, code, message in (
        (EXPORTS / "bad" / "truncated.json", 1, "the file ends inside conversation 1 (truncated?) (byte 146)"),
        (tmp_path / "missing.json", 2, "no such file"),
    ):
        shutil.rmtree(tmp_path / ".vexrun", ignore_errors=True)
        result = run_cli("run", str(_recipe(tmp_path, export)), cwd=tmp_path)
        assert result.code == code, result.output
        assert "Traceback" not in result.output
        errors = [line for line in result.err.splitlines() if line.startswith("error:")]
        assert errors == [f"error: {export}: {message}"]


@pytest.mark.parametrize("kind", ["claude", "chatgpt"])
def test_the_example_exports(kind: str) -> None:
    """The sample exports `make demo` reads: every conversation counted, the empty one without records, and
    none of the hidden or tool text in any record."""
    src = source(kind, str(Path(__file__).parent.parent / "examples" / "exports" / kind / "conversations.json"))
    records = read_all(src, 8)
    report = src.report()
    assert report["conversations"] == 5 and report["empty_conversations"] == 1
    assert report["records"] == len(records) > 0 and report["attachments"] >= 2
    text = "\n".join(r.text or "" for r in records)
    hidden = ("quietly think", "search(", "print(total", "Thought for", "Apple Watch", "```\nThis block", "IVFFlat")
    for words in hidden:
        assert words not in text
    kept = {
        "claude": ("Priya", "Tomás", "Adébáyọ̀", "No mushrooms", "Tuesday intervals", "halfvec"),
        "chatgpt": ("Coros Pace 3", "Tomás covers the hotel", "€550", "Monstera", "early April", "🌿"),
    }
    for words in kept[kind]:
        assert words in text


def test_close_releases_a_read_stopped_part_way() -> None:
    src = source("chatgpt", "chatgpt/conversations.json", chunk="turn")
    src.open()
    batches = src.batches(None, 1)
    next(batches)
    (reading,) = src._reading
    assert reading.gi_frame is not None  # type: ignore[attr-defined]
    src.close()  # the export file is closed now, not at garbage collection
    assert reading.gi_frame is None and src._reading == []  # type: ignore[attr-defined]
