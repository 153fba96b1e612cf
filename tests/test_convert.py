"""``vexrun convert`` and ``vexrun adapters``: the sample exports imported in several chunk modes and converted
to every format match golden files (tests/data/convert/, rewritten with --update-goldens), every output passes
``--check``, corrupted examples are caught by ``--check``, ``--split`` keeps each conversation on one side,
``.gz`` works both ways, and what cannot become an example is counted, never written."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from conftest import DATA, ROOT, run_cli
from vexrun.convert import FORMATS, Options, resolve_format
from vexrun.vmig import Record, VmigWriter

GOLDEN = DATA / "convert"
EXPORTS = ROOT / "examples" / "exports"
CASES = [  # (export, chunk mode, format)
    ("claude", "conversation", "openai"),
    ("claude", "conversation", "anthropic"),
    ("claude", "exchange", "sharegpt"),
    ("claude", "exchange", "alpaca"),
    ("claude", "turn", "chat"),
    ("chatgpt", "turn", "openai"),
    ("chatgpt", "conversation", "anthropic"),
    ("chatgpt", "exchange", "text"),
]


def _import(tmp: Path, export: str, mode: str) -> Path:
    out = tmp / f"{export}-{mode}.vmig.jsonl"
    if out.exists():
        return out
    recipe = tmp / f"{export}-{mode}.yaml"
    source = f"{{type: {export}-export, path: {EXPORTS / export / 'conversations.json'}, chunk: {mode}}}"
    recipe.write_text(
        f"version: 1\nsource: {source}\nchunk: {{max_chars: 100000}}\n"
        f"target: {{type: vmig, path: {out.name}}}\nrun: {{state_dir: state-{export}-{mode}}}\n"
    )
    res = run_cli("run", str(recipe), cwd=tmp)
    assert res.code == 0, res.output
    return out


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("convert-imports")
    for export, mode, _ in CASES:
        _import(tmp, export, mode)
    return tmp


@pytest.mark.parametrize(("export", "mode", "fmt"), CASES, ids=["-".join(c) for c in CASES])
def test_golden(export: str, mode: str, fmt: str, imported: Path, tmp_path: Path, update_goldens: bool) -> None:
    src = imported / f"{export}-{mode}.vmig.jsonl"
    ext = "txt" if fmt == "text" else "jsonl"
    out = tmp_path / f"out.{ext}"
    res = run_cli("convert", str(src), "--to", fmt, "-o", str(out), "--system", "You are our memory.")
    assert res.code == 0, res.output
    golden = GOLDEN / f"{export}-{mode}.{fmt}.{ext}"
    if update_goldens:
        golden.parent.mkdir(exist_ok=True)
        golden.write_bytes(out.read_bytes())
    assert out.read_bytes() == golden.read_bytes()
    if fmt != "text":
        check = run_cli("convert", str(out), "--to", fmt, "--check")
        assert check.code == 0, check.output
        assert f"valid as {resolve_format(fmt).name}" in check.out


def test_turn_records_pair_a_user_turn_with_its_answer(imported: Path, tmp_path: Path) -> None:
    src = imported / "claude-turn.vmig.jsonl"
    out = tmp_path / "pairs.jsonl"
    res = run_cli("convert", str(src), "--to", "openai", "-o", str(out), "--json")
    assert res.code == 0, res.output
    report = json.loads(res.out)
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert report["examples"] == len(lines) == report["records"] // 2
    turns = [json.loads(x) for x in src.read_text().splitlines()]
    assert lines[0]["messages"] == [
        {"role": "user", "content": turns[0]["text"]},
        {"role": "assistant", "content": turns[1]["text"]},
    ]


def _write(path: Path, records: list[Record]) -> Path:
    with VmigWriter(path, source_store="test") as w:
        for r in records:
            w.write(r, None)
    return path


def _turn(i: int, role: str, conv: str, text: str) -> Record:
    meta = {"conversation_id": conv, "role": role, "roles": [role], "turn_index": i, "chunk_mode": "turn"}
    return Record(id=f"{conv}-{i}", text=text, metadata=meta)


def test_what_cannot_become_an_example_is_counted_not_written(tmp_path: Path) -> None:
    src = _write(
        tmp_path / "mixed.vmig.jsonl",
        [
            _turn(0, "assistant", "c1", "Hello, how can I help?"),  # no user turn before it
            _turn(1, "user", "c1", "What is HNSW?"),
            _turn(2, "assistant", "c1", "A graph index."),
            _turn(3, "user", "c1", "Thanks"),  # never answered
            Record(id="plain", text="The user prefers dark mode."),  # a memory, not a turn
            Record(
                id="part",
                text="User: a\n\nAssistant: b",
                metadata={"roles": ["user", "assistant"], "conversation_id": "c2", "parts": 2, "part": 1},
            ),
            Record(id="odd", text="Dana: hi\n\nAssistant: yo", metadata={"roles": ["user", "assistant"]}),
        ],
    )
    out = tmp_path / "out.jsonl"
    res = run_cli("convert", str(src), "--to", "anthropic", "-o", str(out), "--json")
    assert res.code == 0, res.output
    report = json.loads(res.out)
    assert report["examples"] == 1
    assert report["dropped"] == {
        "assistant_turn_without_user_turn": 1,
        "not_a_conversation_turn": 1,
        "split_by_chunk_stage": 1,
        "turns_do_not_match_roles": 1,
        "user_turn_without_answer": 1,
    }
    (line,) = out.read_text().splitlines()
    assert json.loads(line) == {
        "messages": [{"role": "user", "content": "What is HNSW?"}, {"role": "assistant", "content": "A graph index."}]
    }
    # nothing convertible at all: exit 1, and no file under the final name
    none = tmp_path / "none.jsonl"
    res = run_cli("convert", str(ROOT / "examples" / "memories.vmig.jsonl"), "--to", "openai", "-o", str(none))
    assert res.code == 1 and "not_a_conversation_turn" in res.out
    assert none.exists() and none.read_text() == ""


BAD_EXAMPLES = {
    "openai": [
        ('{"messages": [{"role": "human", "content": "hi"}, {"role": "assistant", "content": "yo"}]}', "unknown_role"),
        ('{"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "yo"}]}', "empty_content"),
        ('{"messages": [{"role": "user", "content": "hi"}]}', "no_assistant"),
        (
            '{"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "s"}, '
            '{"role": "assistant", "content": "yo"}]}',
            "misplaced_system",
        ),  # fmt: skip
        ('{"prompt": "hi", "completion": "yo"}', "no_messages"),
        ("{not json", "not_json"),
    ],
    "anthropic": [
        ('{"messages": [{"role": "assistant", "content": "yo"}, {"role": "user", "content": "hi"}]}', "first_role"),
        (
            '{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}, '
            '{"role": "assistant", "content": "c"}]}',
            "not_alternating",
        ),  # fmt: skip
        (
            '{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "hi"}, '
            '{"role": "assistant", "content": "yo"}]}',
            "unknown_role",
        ),  # fmt: skip
    ],
    "sharegpt": [
        ('{"conversations": [{"from": "gpt", "value": "yo"}, {"from": "human", "value": "hi"}]}', "first_role")
    ],
    "alpaca": [('{"instruction": "hi", "input": "", "output": " "}', "empty_content")],
}


@pytest.mark.parametrize("fmt", sorted(BAD_EXAMPLES))
def test_check_catches_corrupted_examples(fmt: str, tmp_path: Path) -> None:
    good = FORMATS[fmt].example
    bad = BAD_EXAMPLES[fmt]
    path = tmp_path / f"{fmt}.jsonl"
    path.write_text("\n".join([good] + [line for line, _ in bad] + [good]) + "\n")
    res = run_cli("convert", str(path), "--to", fmt, "--check")
    assert res.code == 1, res.output
    for n, (_, code) in enumerate(bad, 2):
        assert f"{path}:{n}: error[{code}]" in res.out, (code, res.out)
    assert f"{path}:1:" not in res.out and f"{path}:{len(bad) + 2}:" not in res.out


def test_check_enforces_the_token_limit(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    long = json.dumps({"messages": [{"role": "user", "content": "x " * 400}, {"role": "assistant", "content": "ok"}]})
    path.write_text(long + "\n" + FORMATS["openai"].example + "\n")
    res = run_cli("convert", str(path), "--to", "openai", "--check", "--max-tokens", "100")
    assert res.code == 1 and f"{path}:1: error[too_long]" in res.out and f"{path}:2:" not in res.out
    assert FORMATS["openai"].check is not None
    assert FORMATS["openai"].check(json.loads(long), Options(max_tokens=1000)) == []


def test_every_adapter_example_passes_its_own_check() -> None:
    res = run_cli("adapters")
    assert res.code == 0
    for f in FORMATS.values():
        assert f.name in res.out and f.example in res.out
        if f.check is not None:
            assert f.check(json.loads(f.example), Options()) == [], f.name
    for alias in ("mistral", "groq", "together"):
        assert resolve_format(alias).name == "chat"
    assert run_cli("convert", "x.vmig.jsonl", "--to", "llama", "-o", "y").code == 2


def test_split_keeps_each_conversation_on_one_side(tmp_path: Path) -> None:
    records = []
    for c in range(200):
        for i in range(4):
            records.append(_turn(i, ("user", "assistant")[i % 2], f"conv-{c:03d}", f"turn {i} of {c}"))
    src = _write(tmp_path / "many.vmig.jsonl", records)
    res = run_cli(
        "convert", str(src), "--to", "openai", "-o", str(tmp_path / "ft.jsonl.gz"), "--split", "0.8", "--json"
    )
    assert res.code == 0, res.output
    train, valid = tmp_path / "ft.train.jsonl.gz", tmp_path / "ft.validation.jsonl.gz"

    def convs(path: Path) -> set[str]:
        with gzip.open(path, "rt") as fh:
            return {json.loads(x)["messages"][0]["content"].split(" of ")[1] for x in fh}

    a, b = convs(train), convs(valid)
    assert not a & b and len(a | b) == 200
    assert 0.7 < len(a) / 200 < 0.9
    again = run_cli("convert", str(src), "--to", "openai", "-o", str(tmp_path / "again.jsonl.gz"), "--split", "0.8")
    assert again.code == 0 and convs(tmp_path / "again.train.jsonl.gz") == a  # stable


def test_gzip_in_and_text_separator(tmp_path: Path) -> None:
    src = _write(tmp_path / "m.vmig.jsonl.gz", [Record(id=f"m{i}", text=f"memory {i}\nsecond line") for i in range(5)])
    out = tmp_path / "m.txt"
    assert run_cli("convert", str(src), "--to", "text", "-o", str(out)).code == 0
    assert out.read_text().splitlines() == [f"memory {i} second line" for i in range(5)]
    sep = tmp_path / "sep.txt"
    assert run_cli("convert", str(src), "--to", "text", "-o", str(sep), "--separator", "\\n<|endoftext|>\\n").code == 0
    assert sep.read_text().count("<|endoftext|>") == 5 and "memory 0\nsecond line" in sep.read_text()


def test_qa_pairs_from_extracted_facts(tmp_path: Path) -> None:
    facts = [
        Record(
            id="f1",
            text="The team chose HNSW.",
            metadata={"type": "decision", "potential": ["Which index?", "Why HNSW?"]},
        ),
        Record(id="f2", text="A fact with no questions.", metadata={"type": "fact"}),
    ]
    src = _write(tmp_path / "facts.vmig.jsonl", facts)
    out = tmp_path / "qa.jsonl"
    res = run_cli("convert", str(src), "--to", "qa", "-o", str(out), "--check", "--json")
    assert res.code == 0, res.output
    assert json.loads(res.out)["dropped"] == {"no_questions": 1}
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert rows == [
        {"question": "Which index?", "answer": "The team chose HNSW.", "id": "f1"},
        {"question": "Why HNSW?", "answer": "The team chose HNSW.", "id": "f1"},
    ]
