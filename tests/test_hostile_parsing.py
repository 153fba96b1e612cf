"""The bounds behind the hostile-input corpus, in-process: YAML aliases, ``${…}`` nesting and file reads, the
export reader's limits, the ``.vmig.jsonl`` sniffing, and the missing-source warning (issue 11)."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from conftest import run_cli
from vexrun.connectors.exports import claude
from vexrun.connectors.exports.stream import Element, iter_elements, locate, parse_element
from vexrun.errors import FormatError
from vexrun.recipe.interpolate import MAX_FILE_REF_BYTES, interpolate
from vexrun.recipe.yamlpos import MAX_ALIAS_NODES, load_yaml
from vexrun.vmig.io import sniff

QUIET: dict[str, str | None] = {"GITHUB_ACTIONS": None, "VEXRUN_ANNOTATE": None}

# -- YAML ----------------------------------------------------------------------------------------------------------


def _codes(text: str) -> list[tuple[int, int, str]]:
    return [(line, col, code) for line, col, code, _, _ in load_yaml(text).problems]


def test_anchors_and_merge_keys_still_work() -> None:
    text = "base: &b {x: 1, y: [1, 2]}\none: *b\ntwo: {<<: *b, y: 3}\nlist: [*b, *b]\n"
    loaded = load_yaml(text)
    assert not loaded.problems
    assert loaded.data["one"] == {"x": 1, "y": [1, 2]}
    assert loaded.data["two"] == {"x": 1, "y": 3}
    assert loaded.data["list"] == [{"x": 1, "y": [1, 2]}] * 2


def test_recursive_aliases_are_refused_with_their_position() -> None:
    assert _codes("a: 1\nx: &a [*a]\n") == [(2, 1, "yaml-alias")]
    assert _codes("x: &m {k: 1, <<: *m}\n") == [(1, 1, "yaml-alias")]
    assert [(line, code) for line, _, code in _codes("x: &a {y: [1, {z: *a}]}\n")] == [(1, "yaml-alias")]


def test_alias_expansion_is_capped() -> None:
    lines = ["a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
    for prev, cur in zip("abcdefg", "bcdefgh", strict=True):
        lines.append(f"{cur}: &{cur} [{', '.join(['*' + prev] * 10)}]")
    problems = load_yaml("\n".join(lines)).problems
    assert [(p[0], p[2]) for p in problems] == [(4, "yaml-alias")]
    assert f"more than {MAX_ALIAS_NODES:,} values" in problems[0][4]
    # a legitimate reuse well under the cap
    ok = "\n".join(lines[:3]) + "\nuse: [" + ", ".join(["*c"] * 7) + "]\n"
    assert not load_yaml(ok).problems


def test_deep_nesting_is_refused() -> None:
    assert [(line, code) for line, _, code in _codes("x: " + "[" * 200 + "]" * 200)] == [(1, "yaml-depth")]
    assert not load_yaml("x: " + "[" * 60 + "]" * 60).problems


# -- interpolation -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("${A:-${B}}", {"B": "bee"}, "bee"),
        ("${A:-${B}}", {"A": "ay", "B": "bee"}, "ay"),
        ("${A:-${B:-${C:-deep}}}", {}, "deep"),
        ("x-${A:-${B}-y}-z", {"B": "b"}, "x-b-y-z"),
        ("${A:-$$}", {}, "$"),
        ("${A:-}", {}, ""),
        ("$${A}", {"A": "no"}, "${A}"),
        ("cost $5 and ${A:-a}", {}, "cost $5 and a"),
    ],
)
def test_nested_references(text: str, env: dict[str, str], expected: str) -> None:
    result = interpolate({"v": text}, env, Path("."))
    assert result.problems == [] and result.data == {"v": expected}


def test_nested_references_are_resolved_lazily_and_reported() -> None:
    # B unset is an error only when the default is used
    assert interpolate({"v": "${A:-${B}}"}, {"A": "set"}, Path(".")).problems == []
    result = interpolate({"v": "${A:-${B}}"}, {}, Path("."))
    assert result.problems == [(("v",), "missing-env", "B is not set")]
    # a value that came from the environment through a default is known (for redaction)
    result = interpolate({"v": "${A:-${B}}"}, {"B": "secret-value"}, Path("."))
    assert result.values == {("v",): ["secret-value"]}
    assert [r.name for r in result.refs[("v",)]] == ["A", "B"]


def test_unclosed_and_too_deep_references() -> None:
    result = interpolate({"v": "${A:-${B}"}, {}, Path("."))
    assert [p[1] for p in result.problems] == ["bad-interpolation"]
    deep = "${A:-" * 12 + "x" + "}" * 12
    assert [p[1] for p in interpolate({"v": deep}, {}, Path(".")).problems] == ["bad-interpolation"]
    result = interpolate({"v": "${file:${DIR}/key}"}, {"DIR": "/tmp"}, Path("."))
    assert [p[1] for p in result.problems] == ["bad-interpolation"]


def test_file_references_read_only_small_regular_files(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("k" * (MAX_FILE_REF_BYTES - 1) + "\n")
    (tmp_path / "big").write_bytes(b"k" * (MAX_FILE_REF_BYTES + 2))
    (tmp_path / "dir").mkdir()
    os.mkfifo(tmp_path / "fifo")
    result = interpolate({"a": "${file:key}"}, {}, tmp_path)
    assert result.problems == [] and result.data == {"a": "k" * (MAX_FILE_REF_BYTES - 1)}
    for name, words in (("big", "larger than 64 KiB"), ("dir", "a directory"), ("fifo", "a FIFO")):
        problems = interpolate({"a": "${file:" + name + "}"}, {}, tmp_path).problems
        assert len(problems) == 1 and problems[0][1] == "bad-file" and words in problems[0][2], problems
        assert problems[0][2].startswith("${file:" + name + "}")
    problems = interpolate({"a": "${file:/dev/zero}"}, {}, tmp_path).problems
    assert problems[0][1] == "bad-file" and "character device" in problems[0][2]


# -- recipes: missing source, size ---------------------------------------------------------------------------------


def test_a_missing_source_file_is_a_warning_with_its_line(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource:\n  type: vmig\n  path: data/gone.vmig.jsonl\ntarget: {type: vmig, path: out.vmig.jsonl}\n"
    )
    res = run_cli("validate", str(recipe), env=QUIET)
    assert res.code == 0, res.output
    assert f"{recipe}:4:3: warning[missing-source] source.path: data/gone.vmig.jsonl does not exist (yet)" in res.out
    assert res.out.strip().endswith("1 warning")
    run = run_cli("run", str(recipe), env=QUIET)
    assert run.code == 2 and run.err.strip().splitlines()[-1] == "error: data/gone.vmig.jsonl: no such file"
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "gone.vmig.jsonl").write_text('{"id": "a", "text": "t", "vex_version": "1.0.0"}\n')
    again = run_cli("validate", str(recipe), env=QUIET)
    assert again.code == 0 and "missing-source" not in again.out


# -- exports -------------------------------------------------------------------------------------------------------


def test_a_conversation_over_max_value_bytes_is_refused_before_it_is_parsed() -> None:
    big = b'[{"uuid": "a", "chat_messages": []}, {"uuid": "b", "x": "' + b"y" * 100_000 + b'"}]'
    elements = iter_elements(io.BytesIO(big), "f.json", max_value_bytes=65536)
    assert next(elements).index == 0
    with pytest.raises(FormatError) as err:
        next(elements)
    assert str(err.value).startswith(
        "f.json: conversation 1 is larger than max_value_bytes (64 KiB); refused (byte 37)"
    )
    assert "raise max_value_bytes on the source" in str(err.value)
    assert [e.index for e in iter_elements(io.BytesIO(big), "f.json")] == [0, 1]  # the default is 64 MiB


def test_invalid_utf8_names_the_real_byte() -> None:
    element = Element(3, 1000, b'{"uuid": "a", "name": "ok \xc3\xa9 then \xff"}')
    with pytest.raises(FormatError) as err:
        parse_element(element, "x.json")
    assert str(err.value) == "x.json: conversation 3 is not valid UTF-8 (byte 1034); an export is UTF-8 JSON"
    # a lone surrogate escape is still repaired, not refused
    value, repaired = parse_element(Element(0, 0, b'{"t": "a\\ud800b"}'), "x.json")
    assert repaired and value == {"t": "a\ufffdb"}


def test_zip_limits_and_damage_name_the_member(tmp_path: Path) -> None:
    payload = b'[{"uuid": "c0", "chat_messages": []}]' + b" " * 3_000_000
    archive = tmp_path / "e.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("export/conversations.json", payload)
    with pytest.raises(FormatError) as err:
        locate(archive, "e.zip", max_member_bytes=1 << 20)
    assert str(err.value).startswith("e.zip!export/conversations.json: the member inflates to 2.86 MiB, more than")
    assert [c.id for c in claude.iter_conversations(archive)] == ["c0"]
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(FormatError) as err:
        locate(cut, "cut.zip")
    assert str(err.value) == (
        "cut.zip: a truncated or damaged zip archive: it has no end record (central directory); "
        "its first member is 'export/conversations.json'"
    )


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"PK\x03\x04rest", "a zip archive"),
        (b'[{"uuid": "c", "chat_messages": []}]', "`type: claude-export`"),
        (b'[{"id": "c", "messages": []}]', "`type: claude-export`"),
        (b'[{"title": "t", "mapping": {}}]', "`type: chatgpt-export`"),
        (b"[1, 2]", "a JSON array, not JSON lines"),
        (b"\x00\x01\x02binary", "binary data (a NUL byte at byte 0)"),
        (b"abc\xff\xfe and more text\n", "binary data (not UTF-8 at byte 3)"),
    ],
)
def test_sniff_tells_what_a_file_is_instead(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "f.vmig.jsonl"
    path.write_bytes(content)
    problem = sniff(path)
    assert problem is not None and words in problem


@pytest.mark.parametrize(
    "content",
    [b'{"id": "a", "text": "t"}\n', b"\xef\xbb\xbf  \n{}", b"", b"not json but text\n", b'{"id": "\xff"}\n'],
)
def test_sniff_leaves_json_lines_and_text_to_the_line_checks(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "f.vmig.jsonl"
    path.write_bytes(content)
    assert sniff(path) is None
