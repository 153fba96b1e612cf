"""Stream a ``.vmig.jsonl(.gz)`` file into a training or chat format, and check a file of such a format.

One pass, line by line: memory does not grow with the file. Output is written to ``<out>.partial`` and renamed
into place at the end (``.gz`` output when the name ends in ``.gz``), so an interrupted conversion never leaves
a half file under the final name. With ``split``, examples go to ``<stem>.train<ext>`` and
``<stem>.validation<ext>`` by a stable hash of the conversation id: a conversation never lands in both.
"""

from __future__ import annotations

import gc
import gzip
import hashlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import orjson

from ..errors import UsageError
from ..vmig.io import TOO_LONG, check_readable, iter_lines, open_data
from . import lean
from .dialogues import EXCHANGE_ROLES, DialogueAssembler, Drop
from .formats import Format, Options, exchange_template

__all__ = ["CheckReport", "ConvertReport", "check_file", "convert_file", "split_paths"]


@dataclass
class ConvertReport:
    source: str
    format: str
    records: int = 0
    written: dict[str, int] = field(default_factory=dict)  # path → examples
    dropped: Counter[str] = field(default_factory=Counter)
    merged_turns: int = 0

    @property
    def examples(self) -> int:
        return sum(self.written.values())

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "format": self.format,
            "records": self.records,
            "examples": self.examples,
            "written": self.written,
            "dropped": dict(sorted(self.dropped.items())),
            "merged_turns": self.merged_turns,
        }


@dataclass
class CheckReport:
    file: str
    format: str
    examples: int = 0
    problems: Counter[str] = field(default_factory=Counter)
    findings: list[str] = field(default_factory=list)  # FILE:LINE: error[code] message (the first ones)

    @property
    def ok(self) -> bool:
        return self.examples > 0 and not self.problems

    def to_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "valid": self.ok,
            "examples": self.examples,
            "problems": dict(sorted(self.problems.items())),
            "findings": self.findings,
        }


def split_paths(out: Path) -> tuple[Path, Path]:
    """``data.jsonl`` → ``data.train.jsonl``, ``data.validation.jsonl`` (``.jsonl.gz`` kept)."""
    name = out.name
    for ext in (".jsonl.gz", ".jsonl", ".json.gz", ".txt.gz", ".txt", ".gz"):
        if name.endswith(ext):
            stem = name[: -len(ext)]
            break
    else:
        stem, ext = name, ""
    return out.with_name(f"{stem}.train{ext}"), out.with_name(f"{stem}.validation{ext}")


def _in_train(key: str, fraction: float) -> bool:
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")
    return h < fraction * 2**64


class _Out:
    """A file written under ``<path>.partial`` and renamed into place by :meth:`publish`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.partial = path.with_name(path.name + ".partial")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            raw = open(self.partial, "wb", buffering=1 << 20)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise UsageError(f"{path}: cannot write ({exc.strerror or exc})") from None
        # gzip: the final name and no timestamp in the header, so the same input gives the same bytes
        self.fh: IO[bytes] | gzip.GzipFile = (
            gzip.GzipFile(path.name, mode="wb", compresslevel=6, fileobj=raw, mtime=0)
            if path.name.endswith(".gz")
            else raw
        )
        self.raw = raw
        self.count = 0

    def write(self, data: bytes) -> None:
        self.fh.write(data)
        self.count += 1

    def close(self) -> None:
        if self.fh is not self.raw:
            self.fh.close()
        self.raw.close()

    def publish(self) -> None:
        self.close()
        os.replace(self.partial, self.path)

    def discard(self) -> None:
        self.close()
        self.partial.unlink(missing_ok=True)


def _lines(path: Path, report: ConvertReport) -> Iterator[bytes]:
    """The lines of ``path`` that are not blank, each counted as a record; a line over the length limit is
    counted as ``bad_line`` and not yielded."""
    n = bad = 0
    with open_data(path) as fh:
        for line in iter_lines(fh):
            if line is TOO_LONG:
                n += 1
                bad += 1
                continue
            if line.isspace():
                continue
            n += 1
            yield line
    report.records += n
    if bad:
        report.dropped["bad_line"] += bad


def _loads(line: bytes, report: ConvertReport) -> dict[str, Any] | None:
    """A line decoded with ``orjson``; what is not a JSON object is counted as ``bad_line`` (None)."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        obj = None
    if obj.__class__ is not dict:
        report.dropped["bad_line"] += 1
        return None
    return obj


def _text_line(rec: dict[str, Any], opts: Options) -> bytes | None:
    text = rec.get("text")
    if not isinstance(text, str) or not text.strip():
        return None
    if opts.separator is None:
        return (" ".join(text.split()) + "\n").encode("utf-8")
    return (text + opts.separator).encode("utf-8")


def _qa(rec: dict[str, Any]) -> list[dict[str, Any]] | None:
    meta = rec.get("metadata") or {}
    text = rec.get("text")
    questions = meta.get("potential") if isinstance(meta, dict) else None
    if not isinstance(text, str) or not text.strip() or not isinstance(questions, list):
        return None
    out = [{"question": q, "answer": text, "id": rec.get("id")} for q in questions if isinstance(q, str) and q.strip()]
    return out or None


def _dialogues(
    path: Path,
    fmt: Format,
    opts: Options,
    split: float | None,
    check: bool,
    outs: list[_Out],
    report: ConvertReport,
    emit: Callable[[list[Any], str], None],
) -> None:
    """The chat formats. The hot path is a file of exchange records: each line is decoded lean (its vector and
    other unread fields skipped, see :mod:`.lean`), and the example line is the format's own line for a user turn
    and its answer (:func:`~.formats.exchange_template`) with the two texts put in: no record dict, no example
    dict. Every other record goes through the :class:`DialogueAssembler` as a dict; with ``check``, every example
    does (the rules read the example)."""
    assert fmt.build is not None
    asm = DialogueAssembler()
    build, feed, dropped, decode, dumps = fmt.build, asm.feed, report.dropped, lean.decode, orjson.dumps
    turns = asm.exchange_turns
    template = None if check else exchange_template(fmt, opts)
    head, middle, tail = template or (b"", b"", b"")
    write, n = outs[0].fh.write, 0
    for line in _lines(path, report):
        try:
            lean_rec = decode(line)
        except ValueError:  # not JSON, or not the shape of a well-formed record: the old way
            rec = _loads(line, report)
            if rec is None:
                continue
        else:
            meta, text = lean_rec.metadata, lean_rec.text
            if template is not None and meta is not None and text is not None:
                if meta.roles == EXCHANGE_ROLES and not meta.parts:
                    pair = turns(text)
                    if pair is not None:
                        example = head + dumps(pair[0]) + middle + dumps(pair[1]) + tail
                        if split is None:
                            write(example)
                            n += 1
                        else:
                            conv = meta.conversation_id
                            key = lean_rec.id if conv is None else conv
                            outs[0 if _in_train(key, split) else 1].write(example)
                        continue
            rec = lean_rec.as_dict()
        for item in feed(rec):
            if item.__class__ is Drop:
                dropped[item.reason] += 1
            else:
                emit(build(item, opts), item.key)  # type: ignore[union-attr]
    outs[0].count += n
    for item in asm.close():
        dropped[item.reason] += 1  # type: ignore[union-attr]
    report.merged_turns = asm.merged


def convert_file(
    src: str | os.PathLike[str],
    fmt: Format,
    out: str | os.PathLike[str],
    *,
    opts: Options | None = None,
    split: float | None = None,
    check: bool = False,
) -> ConvertReport:
    """Convert ``src`` to ``fmt`` at ``out`` (or its train/validation pair with ``split``). With ``check``, every
    example is held to the format's rules before it is written; one that fails is dropped and counted under
    ``check:<problem>``. Records that cannot become an example are counted under their reason."""
    opts = opts or Options()
    path = check_readable(src)
    if split is not None and not 0 < split < 1:
        raise UsageError(f"--split {split}: must be between 0 and 1 (the share of conversations for training)")
    report = ConvertReport(str(src), fmt.name)
    out_path = Path(out)
    outs = [_Out(p) for p in split_paths(out_path)] if split is not None else [_Out(out_path)]
    newline = orjson.OPT_APPEND_NEWLINE
    # The loop makes millions of short-lived dicts and lists and no reference cycles: the cyclic collector would
    # only rescan them (about 10% of the time), so it is paused for the conversion and restored after.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:

        def emit(examples: list[Any], key: str) -> None:
            target = outs[0] if split is None or _in_train(key, split) else outs[1]
            for ex in examples:
                if check and fmt.check is not None:
                    problems = fmt.check(ex, opts)
                    if problems:
                        report.dropped["check:" + problems[0].split(":", 1)[0]] += 1
                        continue
                target.write(orjson.dumps(ex, option=newline))

        if fmt.kind == "record":
            for line in _lines(path, report):
                rec = _loads(line, report)
                if rec is None:
                    continue
                key = str((rec.get("metadata") or {}).get("conversation_id") or rec.get("id", ""))
                if fmt.name == "text":
                    data = _text_line(rec, opts)
                    if data is None:
                        report.dropped["no_text"] += 1
                        continue
                    target = outs[0] if split is None or _in_train(key, split) else outs[1]
                    target.write(data)
                else:
                    qa = _qa(rec)
                    if qa is None:
                        report.dropped["no_questions"] += 1
                        continue
                    emit(qa, key)
        else:
            _dialogues(path, fmt, opts, split, check, outs, report, emit)
    except BaseException:
        for o in outs:
            o.discard()
        raise
    finally:
        if gc_was_enabled:
            gc.enable()
    for o in outs:
        o.publish()
        report.written[str(o.path)] = o.count
    return report


def check_file(
    path: str | os.PathLike[str], fmt: Format, *, opts: Options | None = None, max_findings: int = 50
) -> CheckReport:
    """Hold every example of an existing ``fmt`` file to the format's rules."""
    opts = opts or Options()
    p = check_readable(path)
    report = CheckReport(str(path), fmt.name)
    with open_data(p) as fh:
        for n, line in enumerate(iter_lines(fh), 1):
            if fmt.name == "text":
                report.examples += 1
                if line is TOO_LONG or not line.strip():
                    report.problems["empty_line" if line is not TOO_LONG else "line_too_long"] += 1
                    if len(report.findings) < max_findings:
                        report.findings.append(f"{path}:{n}: error[empty_line] an empty memory")
                continue
            if not line.strip():
                continue
            report.examples += 1
            try:
                obj = None if line is TOO_LONG else orjson.loads(line)
                problems = fmt.check(obj, opts) if fmt.check else []
            except orjson.JSONDecodeError as exc:
                problems = [f"not_json: {exc}"]
            if obj is None and not problems:
                problems = ["line_too_long: the line is over the line limit"]
            for problem in problems:
                code, _, message = problem.partition(": ")
                report.problems[code] += 1
                if len(report.findings) < max_findings:
                    report.findings.append(f"{path}:{n}: error[{code}] {message}")
    return report
