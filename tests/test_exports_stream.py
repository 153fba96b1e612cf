"""The streaming splitter: the same elements and offsets whatever the chunk size, exact one-line errors
for files that are not exports, and the places an export can be (file, folder, zip)."""

from __future__ import annotations

import io
import json
import random
import zipfile
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA
from vexrun.connectors.exports import chatgpt, claude, stream
from vexrun.connectors.exports.stream import Element, iter_elements, locate, parse_element
from vexrun.errors import FormatError, UsageError

BAD = DATA / "exports" / "bad"


def split(blob: bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> list[Element]:
    monkeypatch.setattr(stream, "CHUNK_BYTES", chunk)
    return list(iter_elements(io.BytesIO(blob), "f.json"))


def _random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.random()
    if depth > 3 or pick < 0.35:
        return rng.choice(['a"b', "\\", "{[", "]}", "\u00e9\U0001f600", '\\"', "x\\\\", "\\\\\\", 1, None, 2.5, True])
    if pick < 0.65:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {str(_random_value(rng, depth + 1)): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 64, 1 << 20])
def test_split_matches_a_full_parse(chunk: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Escaped quotes, backslash runs and brackets inside strings, cut at every possible chunk boundary."""
    rng = random.Random(chunk)
    for _ in range(60):
        value = [{"k": _random_value(rng), "v": _random_value(rng)} for _ in range(rng.randint(0, 5))]
        blob = json.dumps(value, ensure_ascii=rng.random() < 0.5, indent=rng.choice([None, 1])).encode("utf-8")
        elements = split(blob, chunk, monkeypatch)
        assert [json.loads(e.raw) for e in elements] == value
        assert [e.index for e in elements] == list(range(len(value)))
        for e in elements:
            assert blob[e.offset : e.offset + len(e.raw)] == e.raw


def test_bom_whitespace_and_empty_array(monkeypatch: pytest.MonkeyPatch) -> None:
    assert split(b"\xef\xbb\xbf \n[ ]\n", 16, monkeypatch) == []
    (only,) = split(b'\xef\xbb\xbf[\n {"a": 1}\n]', 16, monkeypatch)
    assert only.offset == 6 and only.raw == b'{"a": 1}'


def test_resume_at_an_offset_reads_from_there(tmp_path: Path) -> None:
    blob = b'[{"n": 0}, {"n": 1},\n {"n": 2}]'
    with io.BytesIO(blob) as fh:
        offsets = [e.offset for e in iter_elements(fh, "f")]
    with io.BytesIO(blob) as fh:
        fh.seek(offsets[1])
        rest = list(iter_elements(fh, "f", start=(1, offsets[1])))
    assert [(e.index, json.loads(e.raw)["n"]) for e in rest] == [(1, 1), (2, 2)]
    with io.BytesIO(blob) as fh, pytest.raises(FormatError, match="cannot resume: no conversation starts at byte 3"):
        fh.seek(3)
        list(iter_elements(fh, "f", start=(1, 3)))


@pytest.mark.parametrize(
    ("blob", "message"),
    [
        (b"", "empty file: expected a JSON array of conversations"),
        (b"  \n ", "empty file: expected a JSON array of conversations"),
        (b"hello", "not JSON: expected '[' at byte 0"),
        (b'{"a": 1}', "the file is one JSON object; an export is a JSON array of conversations (byte 0)"),
        (b"\xff\xfe[\x00]\x00", "the file is UTF-16; an export is UTF-8 JSON"),
        (b'[{"a": 1}', "the file ends before the array of conversations is closed (truncated?) (byte 9)"),
        (b'[{"a": [1, 2', "the file ends inside conversation 0 (truncated?) (byte 12)"),
        (b'[{"a": 1},]', "invalid JSON: a trailing ',' before ']' (byte 10)"),
        (b'[{"a": 1} {"b": 2}]', "invalid JSON: expected ',' between conversations (byte 10)"),
        (b'[{"a": 1},, {"b": 2}]', "invalid JSON: unexpected ',' (byte 10)"),
        (b'[, {"b": 2}]', "invalid JSON: unexpected ',' (byte 1)"),
        (b"[1]", "conversation 0 is not a JSON object (byte 1)"),
        (b'[{"a": 1}, "x"]', "conversation 1 is not a JSON object (byte 11)"),
        (b'[{"a": 1}, [2]]', "conversation 1 is not a JSON object (byte 11)"),
        (b'[{"a": 1}] trailing', "unexpected data after the array of conversations (byte 11)"),
        (b'[{"a": 1}]]', "unexpected data after the array of conversations (byte 10)"),
    ],
)
def test_not_an_export_is_one_clear_line(blob: bytes, message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for chunk in (1, 5, 1 << 20):
        with pytest.raises(FormatError) as err:
            split(blob, chunk, monkeypatch)
        assert str(err.value) == f"f.json: {message}"
        assert "\n" not in str(err.value)


def test_invalid_json_inside_a_conversation_names_its_index_and_byte() -> None:
    element = Element(4, 1000, b'{"a": 1, "b": }')
    with pytest.raises(FormatError) as err:
        parse_element(element, "x.json")
    assert str(err.value).startswith("x.json: conversation 4 is not valid JSON: ")
    assert str(err.value).endswith("(byte 1014)")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("bad-json.json", "conversation 1 is not valid JSON: unexpected character, expected ',' or '}' (byte 117)"),
        ("empty.json", "empty file: expected a JSON array of conversations"),
        ("not-json.json", "not JSON: expected '[' at byte 0"),
        ("not-object.json", "conversation 1 is not a JSON object (byte 38)"),
        ("object.json", "the file is one JSON object; an export is a JSON array of conversations (byte 0)"),
        ("truncated.json", "the file ends inside conversation 1 (truncated?) (byte 146)"),
        (
            "wrong-shape.json",
            "conversation 1 (byte 38): not a Claude conversation: it has neither 'chat_messages' "
            "(claude.ai export) nor 'messages' (Anthropic API shape)",
        ),
    ],
)
def test_bad_files(name: str, message: str) -> None:
    path = BAD / name
    with pytest.raises(FormatError) as err:
        list(claude.iter_conversations(path))
    assert str(err.value) == f"{path}: {message}"


def test_conversations_before_an_error_are_still_read() -> None:
    """Valid work already done is kept: conversation 0 arrives before the error in conversation 1."""
    got: list[str] = []
    with pytest.raises(FormatError):
        for conv in claude.iter_conversations(BAD / "truncated.json"):
            got.append(conv.id)
    assert got == ["c0"]


def test_missing_file_folder_and_zip(tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        locate(tmp_path / "nope.json", "nope.json")
    assert str(err.value) == "nope.json: no such file" and err.value.exit_code == 2
    with pytest.raises(UsageError, match="^empty: no conversations.json in this folder$"):
        (tmp_path / "empty").mkdir()
        locate(tmp_path / "empty", "empty")
    source = DATA / "exports" / "chatgpt" / "conversations.json"
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "conversations.json").write_bytes(source.read_bytes())
    archive = tmp_path / "export.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("export-2024/chat.html", "<html></html>")
        zf.writestr("export-2024/conversations.json", source.read_bytes())
    assert locate(archive, "export.zip").member == "export-2024/conversations.json"
    expected = [(c.id, [t.text for t in c.turns]) for c in chatgpt.iter_conversations(source)]
    for where in (folder, archive):
        assert [(c.id, [t.text for t in c.turns]) for c in chatgpt.iter_conversations(where)] == expected
    empty_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(empty_zip, "w") as zf:
        zf.writestr("users.json", "[]")
    with pytest.raises(FormatError, match="other.zip: the archive holds no conversations.json$"):
        locate(empty_zip, str(empty_zip))


_WEIRD: list[Any] = [None, 1, 2.5, "s", "", [], {}, [None], [1, "x"], {"a": None}, True, -1e308, "2024-13-45"]


def _mutate(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            pick = rng.random()
            if pick < 0.1:
                continue
            out[k] = rng.choice(_WEIRD) if pick < 0.25 else _mutate(v, rng)
        return out
    if isinstance(value, list):
        return [rng.choice(_WEIRD) if rng.random() < 0.1 else _mutate(v, rng) for v in value]
    return value


@pytest.mark.parametrize(
    ("module", "path"),
    [
        (claude, DATA / "exports" / "claude" / "conversations.json"),
        (claude, DATA / "exports" / "claude" / "api.json"),
        (chatgpt, DATA / "exports" / "chatgpt" / "conversations.json"),
    ],
)
def test_malformed_conversations_never_crash(module: Any, path: Path) -> None:
    """G6: wrong types anywhere in a conversation (seeded mutations of the test exports) end in turns or in a
    FormatError, never in another exception."""
    from vexrun.connectors.exports.chunking import ChunkOptions, build_records

    data = json.loads(path.read_text(encoding="utf-8"))
    rng = random.Random(path.name)
    outcomes = {"parsed": 0, "refused": 0}
    for _ in range(300):
        for value in _mutate(data, rng):
            try:
                conv = module.parse_conversation(value, Element(0, 0, b""), "f.json")
            except FormatError:
                outcomes["refused"] += 1
                continue
            build_records(conv, ChunkOptions(mode="smart", window_turns=2, window_overlap=1), "x")
            outcomes["parsed"] += 1
    assert outcomes["parsed"] > 100 and outcomes["refused"] > 10
