"""The formats ``vexrun convert`` writes, each with the rules ``--check`` holds its examples to.

A format turns a :class:`~vexrun.convert.dialogues.Dialogue` (the chat formats) or a record (``text``, ``qa``)
into zero or more examples, and checks one decoded example, returning the problems (empty when it is valid).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from .dialogues import Dialogue, Turn

__all__ = ["FORMATS", "Format", "Options", "count_tokens", "exchange_template", "resolve_format"]


@dataclass(frozen=True)
class Options:
    system: str | None = None
    max_tokens: int = 65_536
    separator: str | None = None  # text: None = one memory per line (newlines inside folded to spaces)


_encoder: Any = None


def count_tokens(texts: list[str]) -> tuple[int, bool]:
    """Tokens of a chat example: with ``tiktoken`` and its ``o200k_base`` encoding available, counted; else
    estimated as ceil(characters / 4) per text. Plus 4 per message for the chat framing. Returns (tokens,
    counted)."""
    global _encoder
    if _encoder is None:
        try:
            import tiktoken  # type: ignore[import-not-found, unused-ignore]

            _encoder = tiktoken.get_encoding("o200k_base")
        except Exception:  # noqa: BLE001 - not installed, or its encoding not cached (it downloads it)
            _encoder = False
    if _encoder:
        return sum(len(_encoder.encode(t)) + 4 for t in texts), True
    return sum(math.ceil(len(t) / 4) + 4 for t in texts), False


# -- building -------------------------------------------------------------------------------------------------
def _messages(d: Dialogue, opts: Options) -> list[dict[str, str]]:
    head = [{"role": "system", "content": opts.system}] if opts.system else []
    return head + [{"role": t.role, "content": t.text} for t in d.turns]


def _openai(d: Dialogue, opts: Options) -> list[dict[str, Any]]:
    return [{"messages": _messages(d, opts)}]


def _anthropic(d: Dialogue, opts: Options) -> list[dict[str, Any]]:
    out: dict[str, Any] = {"system": opts.system} if opts.system else {}
    out["messages"] = [{"role": t.role, "content": t.text} for t in d.turns]
    return [out]


def _sharegpt(d: Dialogue, opts: Options) -> list[dict[str, Any]]:
    head = [{"from": "system", "value": opts.system}] if opts.system else []
    names = {"user": "human", "assistant": "gpt"}
    return [{"conversations": head + [{"from": names[t.role], "value": t.text} for t in d.turns]}]


def _alpaca(d: Dialogue, opts: Options) -> list[dict[str, Any]]:
    """One instruction / output pair per user turn and its answer (Alpaca has no history)."""
    t = d.turns
    return [{"instruction": t[i].text, "input": "", "output": t[i + 1].text} for i in range(0, len(t) - 1, 2)]


# -- checking -------------------------------------------------------------------------------------------------
def _nonempty(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _check_messages(obj: Any, opts: Options, *, system_inline: bool) -> list[str]:
    if not isinstance(obj, dict) or not isinstance(obj.get("messages"), list) or not obj["messages"]:
        return ["no_messages: the example has no non-empty 'messages' list"]
    problems: list[str] = []
    roles = []
    texts = []
    known = {"system", "user", "assistant"} if system_inline else {"user", "assistant"}
    for i, m in enumerate(obj["messages"]):
        role = m.get("role") if isinstance(m, dict) else None
        if role not in known:
            problems.append(f"unknown_role: messages[{i}] has role {role!r} (expected one of {sorted(known)})")
            continue
        content = m.get("content")
        if not _nonempty(content):
            problems.append(f"empty_content: messages[{i}] ({role}) has no content")
        else:
            texts.append(content)
        if role == "system" and i != 0:
            problems.append(f"misplaced_system: messages[{i}] is a system message after the first")
        roles.append(role)
    if "assistant" not in roles:
        problems.append("no_assistant: the example has no assistant message")
    if not system_inline:
        if "system" in obj:
            if not _nonempty(obj["system"]):
                problems.append("empty_system: 'system' is present but empty")
            else:
                texts.append(obj["system"])
        if roles and roles[0] != "user":
            problems.append(f"first_role: the first message is {roles[0]!r}, not 'user'")
        for i in range(1, len(roles)):
            if roles[i] == roles[i - 1]:
                problems.append(f"not_alternating: messages[{i - 1}] and messages[{i}] are both {roles[i]!r}")
                break
    tokens, counted = count_tokens(texts)
    if tokens > opts.max_tokens:
        how = "counted" if counted else "estimated"
        problems.append(f"too_long: {tokens:,} tokens ({how}) over --max-tokens {opts.max_tokens:,}")
    return problems


def _check_openai(obj: Any, opts: Options) -> list[str]:
    return _check_messages(obj, opts, system_inline=True)


def _check_anthropic(obj: Any, opts: Options) -> list[str]:
    return _check_messages(obj, opts, system_inline=False)


def _check_sharegpt(obj: Any, opts: Options) -> list[str]:
    conv = obj.get("conversations") if isinstance(obj, dict) else None
    if not isinstance(conv, list) or not conv:
        return ["no_conversations: the example has no non-empty 'conversations' list"]
    problems = []
    turns = []
    for i, m in enumerate(conv):
        who = m.get("from") if isinstance(m, dict) else None
        if who not in ("system", "human", "gpt"):
            problems.append(f"unknown_role: conversations[{i}] is from {who!r}")
            continue
        if not _nonempty(m.get("value")):
            problems.append(f"empty_content: conversations[{i}] ({who}) has no value")
        if who == "system" and i != 0:
            problems.append(f"misplaced_system: conversations[{i}] is a system turn after the first")
        if who != "system":
            turns.append(who)
    if turns and turns[0] != "human":
        problems.append("first_role: the first turn is not from 'human'")
    if any(a == b for a, b in zip(turns, turns[1:], strict=False)):
        problems.append("not_alternating: two turns in a row from the same side")
    if "gpt" not in turns:
        problems.append("no_assistant: no turn from 'gpt'")
    return problems


def _check_alpaca(obj: Any, opts: Options) -> list[str]:
    if not isinstance(obj, dict):
        return ["not_an_object: the example is not a JSON object"]
    problems = [
        f"empty_content: '{k}' is missing or empty" for k in ("instruction", "output") if not _nonempty(obj.get(k))
    ]
    if not isinstance(obj.get("input", ""), str):
        problems.append("bad_input: 'input' is not a string")
    return problems


def _check_qa(obj: Any, opts: Options) -> list[str]:
    if not isinstance(obj, dict):
        return ["not_an_object: the example is not a JSON object"]
    return [f"empty_content: '{k}' is missing or empty" for k in ("question", "answer") if not _nonempty(obj.get(k))]


@dataclass(frozen=True)
class Format:
    name: str
    summary: str
    example: str
    #: "dialogue": built from dialogues; "record": from each record (text, qa)
    kind: str
    build: Callable[[Any, Options], list[Any]] | None
    check: Callable[[Any, Options], list[str]] | None
    aliases: tuple[str, ...] = ()


FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        Format(
            "openai",
            "chat fine-tuning JSONL for OpenAI: {messages: [system?, user, assistant, …]} (--system TEXT)",
            '{"messages": [{"role": "user", "content": "What index?"}, {"role": "assistant", "content": "HNSW."}]}',
            "dialogue",
            _openai,
            _check_openai,
        ),
        Format(
            "anthropic",
            "Messages-shaped JSONL: {system?, messages: [user, assistant, …]}, alternating, starting with user",
            '{"system": "Be brief.", "messages": [{"role": "user", "content": "What index?"}, '
            '{"role": "assistant", "content": "HNSW."}]}',
            "dialogue",
            _anthropic,
            _check_anthropic,
        ),
        Format(
            "chat",
            "the generic {messages: [...]} chat JSONL Mistral, Groq and Together fine-tuning take",
            '{"messages": [{"role": "user", "content": "What index?"}, {"role": "assistant", "content": "HNSW."}]}',
            "dialogue",
            _openai,
            _check_openai,
            aliases=("mistral", "groq", "together"),
        ),
        Format(
            "sharegpt",
            "ShareGPT JSONL (axolotl, LLaMA-Factory, unsloth): {conversations: [{from: human|gpt, value}]}",
            '{"conversations": [{"from": "human", "value": "What index?"}, {"from": "gpt", "value": "HNSW."}]}',
            "dialogue",
            _sharegpt,
            _check_sharegpt,
        ),
        Format(
            "alpaca",
            "Alpaca JSONL: one {instruction, input, output} per user turn and its answer",
            '{"instruction": "What index?", "input": "", "output": "HNSW."}',
            "dialogue",
            _alpaca,
            _check_alpaca,
        ),
        Format(
            "text",
            "plain text, one memory per line (newlines inside folded to spaces), or --separator between memories",
            "We chose HNSW (m=16), built after the bulk load.",
            "record",
            None,
            None,
        ),
        Format(
            "qa",
            "from extracted facts (mode extract/smart): one {question, answer} per question the fact answers",
            '{"question": "Which index did the team choose?", "answer": "The team chose HNSW.", "id": "f1"}',
            "record",
            None,
            _check_qa,
        ),
    )
}


#: stand-ins for a user turn and its answer, two pairs: a template must hold each text verbatim, wherever it is
_PROBES = (("\x1fvexrun-user-a\x1f", "\x1fvexrun-answer-a\x1f"), ("\x1fvexrun-user-b\x1f", "\x1fvexrun-answer-b\x1f"))


def exchange_template(fmt: Format, opts: Options) -> tuple[bytes, bytes, bytes] | None:
    """The line ``fmt`` writes for a dialogue of one user turn and its answer, cut around the two texts: (head,
    middle, tail), so that ``head + dumps(user) + middle + dumps(answer) + tail`` is byte for byte
    ``orjson.dumps(example) + b"\\n"`` of the one example :attr:`Format.build` makes. Derived from ``build`` itself
    (no second copy of a format): None when the format does not make exactly one example holding each text
    verbatim, once, the user turn first."""
    if fmt.kind != "dialogue" or fmt.build is None:
        return None
    cuts = set()
    for user, answer in _PROBES:
        examples = fmt.build(Dialogue("k", [Turn("user", user), Turn("assistant", answer)]), opts)
        if len(examples) != 1:
            return None
        line = orjson.dumps(examples[0], option=orjson.OPT_APPEND_NEWLINE)
        u, a = orjson.dumps(user), orjson.dumps(answer)
        if line.count(u) != 1 or line.count(a) != 1 or line.index(u) > line.index(a):
            return None
        head, rest = line.split(u)
        middle, tail = rest.split(a)
        cuts.add((head, middle, tail))
    return cuts.pop() if len(cuts) == 1 else None


def resolve_format(name: str) -> Format:
    """The format called ``name`` (or an alias of it); ValueError naming the known ones."""
    key = name.strip().lower()
    for f in FORMATS.values():
        if key == f.name or key in f.aliases:
            return f
    known = ", ".join(sorted([*FORMATS, *(a for f in FORMATS.values() for a in f.aliases)]))
    raise ValueError(f"unknown format {name!r} (known: {known})")
