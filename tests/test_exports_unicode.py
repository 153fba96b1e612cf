"""T4 text fidelity and G6's one-line ASCII file: every code point survives, in both export kinds, through
turns and through records."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from conftest import DATA
from vexrun.connectors.exports import chatgpt, claude
from vexrun.connectors.exports.chunking import ChunkOptions, build_records

#: What the escapes in the two ascii-oneline.json files encode (written here with Python escapes, so the
#: expectation does not come from the JSON decoder under test).
EXPECTED = [
    ("user", "Cafe\u0301 au lait, cre\u0300me bru\u0302le\u0301e"),
    ("assistant", "Team: \U0001f469\u200d\U0001f4bb\U0001f468\u200d\U0001f469\u200d\U0001f467\u200d\U0001f466"),
    ("user", "Flags \U0001f1f5\U0001f1f9 \U0001f1ef\U0001f1f5 \U0001f1e9\U0001f1ea"),
    ("assistant", "\u05e9\u05dc\u05d5\u05dd \u200fworld\u200f \u0645\u0631\u062d\u0628\u0627"),
    ("user", "Love \u2764\ufe0f and \u263a\ufe0f, text \u2764\ufe0e"),
    ("assistant", "\u6771\u4eac\u3067\u4f1a\u8b70\u3001\ud55c\uad6d\uc5b4, \u4e2d\u6587"),
    ("user", "Math \U0001d400\U0001d401 and emoji \U0001f600\U0001f680"),
]

FILES = [
    pytest.param(claude, DATA / "exports" / "claude" / "ascii-oneline.json", id="claude"),
    pytest.param(chatgpt, DATA / "exports" / "chatgpt" / "ascii-oneline.json", id="chatgpt"),
]
TITLES = {"claude": "Unicode \U0001f600", "chatgpt": "Unicode \u00e9\u00e8 \U0001f600"}


@pytest.mark.parametrize(("module", "path"), FILES)
def test_file_is_one_line_of_ascii_with_surrogate_escapes(module: object, path: Path) -> None:
    raw = path.read_bytes()
    assert raw.isascii() and b"\n" not in raw
    assert b"\\ud83d\\ude00" in raw and b"\\u0301" in raw


@pytest.mark.parametrize(("module", "path"), FILES)
def test_code_points_are_kept_exactly(module: object, path: Path) -> None:
    (conv,) = module.iter_conversations(path)  # type: ignore[attr-defined]
    assert [(t.role, t.text) for t in conv.turns] == EXPECTED
    decomposed = conv.turns[0].text
    assert decomposed != unicodedata.normalize("NFC", decomposed)  # not normalised
    assert "\u200f" in conv.turns[3].text and "\ufe0f" in conv.turns[4].text and "\ufe0e" in conv.turns[4].text
    assert conv.title == TITLES[path.parent.name]


@pytest.mark.parametrize(("module", "path"), FILES)
def test_records_keep_code_points_in_text_and_metadata(module: object, path: Path) -> None:
    (conv,) = module.iter_conversations(path)  # type: ignore[attr-defined]
    records = build_records(conv, ChunkOptions(mode="turn"), "x")
    assert [r.text for r in records] == [text for _, text in EXPECTED]
    multi = build_records(conv, ChunkOptions(mode="conversation"), "x")
    assert len(multi) == 1 and multi[0].text is not None
    for _, text in EXPECTED:
        assert text in multi[0].text
    # what a sink writes (orjson, UTF-8) reads back identical
    line = json.dumps(multi[0].text, ensure_ascii=False).encode("utf-8")
    assert json.loads(line) == multi[0].text


def test_escaped_and_utf8_files_give_the_same_records(tmp_path: Path) -> None:
    """G6: the same generated export, written as UTF-8 and as one line of ASCII escapes."""
    from vexrun.testing.exports import write_chatgpt_export

    utf8, escaped = tmp_path / "utf8.json", tmp_path / "ascii.json"
    write_chatgpt_export(utf8, 600_000, seed=4)
    write_chatgpt_export(escaped, 600_000, seed=4, ascii=True)
    raw = escaped.read_bytes()
    assert raw.isascii() and b"\n" not in raw and not utf8.read_bytes().isascii()

    def records(path: Path) -> list[list[tuple[str, str | None]]]:
        opts = ChunkOptions(mode="smart")
        return [[(r.id, r.text) for r in build_records(c, opts, "x")] for c in chatgpt.iter_conversations(path)]

    # escaping makes each conversation longer, so the escaped file stops earlier: compare what both hold
    a, b = records(utf8), records(escaped)
    assert len(b) >= 3 and a[: len(b)] == b
