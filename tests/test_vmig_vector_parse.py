"""The reader's fast path for vectors (msgspec with the vector as raw JSON, simdjson reading the numbers into a
float64 buffer) gives the same records, the same float32 bits and the same verdicts as the reference path (msgspec
decoding the vector into Python floats), whatever the line holds."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vexrun.floatjson as floatjson
import vexrun.vmig.checks as checks
from vexrun.vmig import read_batches


def _line(i: int, vector_json: str | None, **extra: Any) -> str:
    head = {"id": f"r{i}", "text": f"t{i}", "vex_version": "1.0.0", **extra}
    body = json.dumps(head)[:-1]
    return body + ("" if vector_json is None else f', "vector": {vector_json}') + "}\n"


def _tricky_numbers(rng: np.random.Generator) -> list[str]:
    """Number spellings where a careless parser rounds differently from a correct one."""
    f32 = rng.standard_normal(64).astype(np.float32)
    out = [repr(float(x)) for x in f32]  # what vexrun writes: float32's shortest decimals
    out += [f"{x:.20e}" for x in rng.standard_normal(32)]  # more digits than a double holds
    out += [f"{x:.9g}" for x in rng.uniform(-1e-3, 1e-3, 16)]
    out += ["0", "-0", "-0.0", "1", "12345678901234567", "9223372036854775807", "-9223372036854775808"]
    out += ["18446744073709551615", "1e-310", "4.9e-324", "2.2250738585072014e-308", "1E5", "1e+5", "-2.5E-3"]
    out += ["3.4028234663852886e38", "3.4028235e38", "0.1", "0.30000000000000004", "1.00000000000000011102230246"]
    return out


def _spy(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """For each line decoded, whether simdjson read its vector (by :meth:`Checker.split`, or after msgspec by
    :meth:`Checker.vector`)."""
    taken: list[bool] = []
    vector, split = checks.Checker.vector, checks.Checker.split

    def spy_vector(self: checks.Checker, raw: Any) -> Any:
        got = vector(self, raw)
        taken.append(got is not None and got[0] is not None)
        return got

    def spy_split(self: checks.Checker, line: bytes) -> Any:
        got = split(self, line)
        if got is not None:
            taken.append(True)
        return got

    monkeypatch.setattr(checks.Checker, "vector", spy_vector)
    monkeypatch.setattr(checks.Checker, "split", spy_split)
    return taken


def _read(path: Path) -> tuple[list[Any], list[Any], list[Any]]:
    records, vectors, verdicts = [], [], []
    for b in read_batches(path, batch_size=7):
        records += [(r, ln) for r, ln in zip(b.records, b.lines, strict=True)]
        if b.vectors is not None:
            vectors += [(row.tobytes(), bool(has)) for row, has in zip(b.vectors, b.has_vector, strict=True)]
        else:
            vectors += [(None, False)] * len(b.records)
        verdicts += [(r.line, [(f.code, f.message) for f in r.findings]) for r in b.rejects]
        verdicts += [(w.line, w.code, w.message) for w in b.warnings]
    return records, vectors, verdicts


@pytest.fixture
def tricky_file(tmp_path: Path) -> Path:
    rng = np.random.default_rng(11)
    nums = _tricky_numbers(rng)
    lines = []
    for i, start in enumerate(range(0, len(nums), 4)):
        lines.append(_line(i, "[" + ", ".join(nums[start : start + 4]) + "]"))
    lines += [
        _line(100, "null"),
        _line(101, None),
        _line(102, "[]"),  # empty: refused
        _line(103, "[[1.0], [2.0], [3.0], [4.0]]"),  # nested, same count as a flat one: refused
        _line(104, "[1.0, [2.0], 3.0, 4.0]"),
        _line(105, "[true, 1.0, 2.0, 3.0]"),
        _line(106, "[null, 1.0, 2.0, 3.0]"),
        _line(107, '["1", 1.0, 2.0, 3.0]'),
        _line(108, '{"a": 1}'),
        _line(109, '"1,2,3,4"'),
        _line(110, "4"),
        _line(111, "[1e400, 1.0, 2.0, 3.0]"),  # finite in no double: refused as non-finite
        _line(112, "[3.5e38, 1.0, 2.0, 3.0]"),  # a double, but out of float32's range: refused
        _line(113, "[1, 2, 3, 123456789012345678901234567890]"),  # beyond 64 bits
        _line(114, "[1.0, 2.0, 3.0, 4.0]", dims=5),  # dims mismatch
        _line(115, "[1.0, 2.0, 3.0]"),  # another dimension: a new batch
        _line(116, "[1.0, 2.0, 3.0]", unknown_field=1),  # kept with a warning
        _line(117, "[NaN, 1.0, 2.0]"),
        '{"id": "r118", "text": "t", "vex_version": "1.0.0", "vector": [1.0, 2.0, 3.0,]}\n',
        '{"id": "r119", "text": "t", "vex_version": "1.0.0", "vector": [1.0,\t2.0 ,\n',  # broken line
        _line(120, "[ 1.0 ,2.0,\t3.0 ]"),
        _line(121, '["[", 2.0, 3.0]'),
    ]
    path = tmp_path / "tricky.vmig.jsonl"
    path.write_text("".join(lines))
    return path


def test_fast_path_equals_the_reference_decoder(tricky_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    taken = _spy(monkeypatch)
    fast = _read(tricky_file)
    monkeypatch.setattr(floatjson, "simdjson", None)
    reference = _read(tricky_file)
    assert fast[1] == reference[1]  # the float32 bits of every vector
    assert fast[0] == reference[0]  # records (dims included) and their line numbers
    assert fast[2] == reference[2]  # rejects and warnings, with their messages
    # the numbers' lines and the four other well-formed vectors (r112, r114, r115, r120) took the fast path; the
    # rest went to the reference decoder (r116's unknown field sends its line to the tolerant path before)
    numbers = len(_tricky_numbers(np.random.default_rng(11)))
    assert sum(taken) == -(-numbers // 4) + 4, taken
    kept = [r.id for r, _ in reference[0]]
    assert kept == [f"r{i}" for i in range(-(-numbers // 4))] + ["r100", "r101", "r113", "r115", "r116", "r120"]
    assert len(reference[2]) == 16 + 1  # 16 lines refused, one warning (r116's unknown field)


def test_fast_path_reads_what_vexrun_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vexrun.testing.data import write_synthetic

    path = tmp_path / "s.vmig.jsonl"
    write_synthetic(path, 3000, dims=48, seed=3)
    fast = _read(path)
    monkeypatch.setattr(floatjson, "simdjson", None)
    assert fast == _read(path)
    assert len(fast[0]) == 3000 and not fast[2]


def test_split_reads_only_the_records_own_vector(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """:meth:`Checker.split` finds the vector by its key's text: a key of that name elsewhere, a duplicate key, a
    key spelt with an escape or the words in the text must not make it read the wrong array."""
    vec = "[0.5, -1.25, 3.0]"
    lines = [
        _line(0, vec),  # the plain case, "vector": [ with a space
        '{"id":"r1","text":"t","vector":[0.5,-1.25,3.0],"vex_version":"1.0.0"}\n',  # vexrun's and Vex's spacing
        _line(2, vec, metadata={"vector": [9.0, 9.0]}),  # a metadata key "vector" before the record's own
        _line(3, None, metadata={"vector": [9.0, 9.0]}),  # ... and no vector of its own: text only
        _line(4, None, metadata={"vector": 5}),
        '{"id":"r5","text":"t","vex_version":"1.0.0","vector":[1.0,2.0,3.0],"vector":[4.0,5.0,6.0]}\n',
        '{"id":"r6","text":"t","vex_version":"1.0.0","vector":[1.0,2.0,3.0],"vec\\u0074or":[4.0,5.0,6.0]}\n',
        '{"id":"r7","text":"t","vex_version":"1.0.0","vec\\u0074or":[4.0,5.0,6.0],"vector":[1.0,2.0,3.0]}\n',
        _line(8, vec, text='say "vector": [1.0, 2.0, 3.0] twice'),
        _line(9, None, text='"vector":[1.0, 2.0, 3.0]'),
        _line(10, vec, dims=4),  # the other fields are checked as on the whole line
        _line(11, vec, score="high"),
        _line(12, vec, extra_key=1),
        '{"id":"r13","text":"t","vex_version":"1.0.0","vector":[1.0,2.0,3.0]} trailing\n',
        '{"id":"r14","text":"t","vex_version":"1.0.0","vector":[1.0,2.0,3.0]\n',
        '{"id":"r15","text":"t","vex_version":"1.0.0","vector":[1.0,2.0,3.0],"model":"\xff"}\n',
        _line(16, '[1.0, 2.0, "3.0"]'),
    ]
    path = tmp_path / "keys.vmig.jsonl"
    path.write_bytes("".join(lines).encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    taken: list[tuple[int, bool]] = []
    split = checks.Checker.split

    def spy(self: checks.Checker, line: bytes) -> Any:
        got = split(self, line)
        taken.append((int(json.loads(line[: line.index(b",")] + b"}")["id"][1:]), got is not None))
        return got

    monkeypatch.setattr(checks.Checker, "split", spy)
    fast = _read(path)
    monkeypatch.setattr(floatjson, "simdjson", None)
    reference = _read(path)
    assert fast == reference
    # r7: the escaped key comes first, so the plain one is the vector; r10 is then refused by the rules (dims)
    assert [i for i, hit in taken if hit] == [0, 1, 7, 8, 10]
    vectors = {r.id: v for (r, _), v in zip(fast[0], fast[1], strict=True)}

    def floats(rid: str) -> list[float] | None:
        data, has = vectors[rid]
        return np.frombuffer(data, dtype=np.float32).tolist() if has else None

    assert floats("r2") == [0.5, -1.25, 3.0] and floats("r3") is None and floats("r9") is None
    assert floats("r5") == floats("r6") == [4.0, 5.0, 6.0]  # the last key wins, escaped or not
    assert floats("r7") == [1.0, 2.0, 3.0]
    refused = sorted(v[0] for v in fast[2] if len(v) == 2)
    assert refused == [11, 12, 14, 15, 16, 17], fast[2]  # r10, r11, r13-r16 (lines count from 1)
