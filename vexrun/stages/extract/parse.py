"""Reading a model's answer: tolerant JSON extraction, then validation against the extraction schema.

Models wrap JSON in code fences, put prose before or after it, leave trailing commas, or answer with a bare
list. :func:`find_json` finds the value anyway. :func:`validate` then checks each fact; what can be fixed
without guessing is fixed (case, whitespace, more than 4 tags or 3 questions, a 1–10 importance scale, a
single string where a list belongs), what cannot raises :class:`InvalidAnswer` with a short list of the
problems — the text the repair request shows the model.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ...providers.llm.cascade import InvalidAnswer
from .prompt import FACT_TYPES

__all__ = ["ParsedAnswer", "ParsedFact", "find_json", "validate"]

_FENCE = re.compile(r"```[ \t]*(?:json|JSON|javascript)?[ \t]*\n?(.*?)```", re.DOTALL)
_TRAILING_COMMA = re.compile(r",\s*([}\]])")
_TYPE_ALIASES = {"decisions": "decision", "preferences": "preference", "facts": "fact", "entities": "entity"}
_TYPE_ALIASES |= {"actions": "action", "relationships": "relationship", "relation": "relationship", "task": "action"}
_TYPE_ALIASES |= {"plan": "action", "todo": "action", "person": "entity"}
_MAX_PROBLEMS = 8


@dataclass
class ParsedFact:
    local_id: str
    chunk: str
    fact: str
    type: str
    importance: float
    entities: list[str]
    tags: list[str]
    potential: list[str]
    attributed_to: str
    order: int


@dataclass
class ParsedAnswer:
    facts: list[ParsedFact] = field(default_factory=list)
    #: (cause local id, effect local id)
    relations: list[tuple[str, str]] = field(default_factory=list)


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        fixed = _TRAILING_COMMA.sub(r"\1", text)
        if fixed != text:
            return json.loads(fixed)
        raise


def _balanced(text: str, start: int) -> int | None:
    """The end (exclusive) of the JSON object or array opening at ``start``, or None."""
    opener = text[start]
    closer = "}" if opener == "{" else "]"
    depth, in_str, esc = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_str:
            if esc:
                esc = False
            elif c == "\\":
                esc = True
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
            if depth == 0:
                return i + 1 if c == closer else None
    return None


def find_json(text: str) -> Any:
    """The JSON value in an answer: all of it, inside a code fence, or the first complete object (or array)
    with prose around it. Raises :class:`InvalidAnswer`."""
    s = text.strip()
    if not s:
        raise InvalidAnswer("the answer was empty")
    try:
        return _loads(s)
    except ValueError:
        pass
    for m in _FENCE.finditer(s):
        try:
            return _loads(m.group(1).strip())
        except ValueError:
            continue
    tries = 0
    for m in re.finditer(r"[{\[]", s):
        end = _balanced(s, m.start())
        if end is None:
            continue
        try:
            return _loads(s[m.start() : end])
        except ValueError:
            tries += 1
            if tries >= 20:
                break
    snippet = " ".join(s[:80].split())
    raise InvalidAnswer(f"the answer is not valid JSON (it starts: {snippet!r})")


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        return None
    out = [" ".join(str(v).split()) for v in value if isinstance(v, str | int | float) and str(v).strip()]
    return list(dict.fromkeys(out))


def _importance(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.strip().rstrip("%"))
        except ValueError:
            return {"high": 0.8, "medium": 0.5, "low": 0.2}.get(value.strip().lower())
    if not isinstance(value, int | float) or value != value:
        return None
    v = float(value)
    if 1.0 < v <= 10.0:
        v /= 10.0
    elif 10.0 < v <= 100.0:
        v /= 100.0
    return min(1.0, max(0.0, v))


def validate(obj: Any, labels: list[str]) -> ParsedAnswer:
    """Check an answer against the schema; fix what is unambiguous, else raise :class:`InvalidAnswer`."""
    if isinstance(obj, list):
        obj = {"facts": obj, "relations": []}
    if not isinstance(obj, dict) or not isinstance(obj.get("facts"), list):
        raise InvalidAnswer('the answer must be a JSON object with a "facts" list (and a "relations" list)')
    problems: list[str] = []
    out = ParsedAnswer()
    known = set(labels)
    for i, raw in enumerate(obj["facts"]):
        where = f"facts[{i}]"
        if not isinstance(raw, dict):
            problems.append(f"{where} is not an object")
            continue
        text = raw.get("fact")
        if not isinstance(text, str) or not text.strip():
            problems.append(f'{where} has no "fact" text')
            continue
        chunk = raw.get("chunk")
        if chunk is None and len(labels) == 1:
            chunk = labels[0]
        if not isinstance(chunk, str) or chunk.strip() not in known:
            problems.append(f"{where}.chunk must be one of {', '.join(labels)} (got {chunk!r})")
            continue
        kind = str(raw.get("type") or "").strip().lower()
        kind = _TYPE_ALIASES.get(kind, kind)
        if kind not in FACT_TYPES:
            problems.append(f"{where}.type must be one of {', '.join(FACT_TYPES)} (got {raw.get('type')!r})")
        importance = _importance(raw.get("importance"))
        if importance is None:
            problems.append(f"{where}.importance must be a number from 0 to 1")
        entities = _strings(raw.get("entities", [])) or []
        tags = [t.lower() for t in (_strings(raw.get("tags")) or [])]
        tags = list(dict.fromkeys(t for t in tags if t))[:4]
        if not tags:
            problems.append(f"{where}.tags must hold 1 to 4 keywords")
        potential = (_strings(raw.get("potential")) or [])[:3]
        if len(potential) < 3:
            problems.append(f"{where}.potential must hold exactly 3 questions (got {len(potential)})")
        who = str(raw.get("attributed_to") or "").strip().lower()
        if who not in ("user", "assistant"):
            problems.append(f'{where}.attributed_to must be "user" or "assistant"')
        if problems and problems[-1].startswith(where):
            continue
        assert importance is not None
        local = raw.get("id")
        out.facts.append(
            ParsedFact(
                local_id=str(local) if isinstance(local, str | int) and str(local) else f"f{i + 1}",
                chunk=chunk.strip(),
                fact=" ".join(text.split()),
                type=kind,
                importance=round(importance, 4),
                entities=entities,
                tags=tags,
                potential=potential,
                attributed_to=who,
                order=i,
            )
        )
    if problems:
        more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
        raise InvalidAnswer("; ".join(problems[:_MAX_PROBLEMS]) + more)
    ids = {f.local_id for f in out.facts}
    relations = obj.get("relations")
    if isinstance(relations, list):
        for rel in relations:
            if not isinstance(rel, dict):
                continue
            cause = rel.get("cause", rel.get("from"))
            effect = rel.get("effect", rel.get("to"))
            if (
                isinstance(cause, str)
                and isinstance(effect, str)
                and cause in ids
                and effect in ids
                and cause != effect
            ):
                out.relations.append((cause, effect))
    return out
