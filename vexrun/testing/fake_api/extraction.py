"""The fake chat models' deterministic "extraction": an answer derived from the chunks in the prompt, so
end-to-end tests can assert on facts.

It reads the ``<chunk id="…">`` elements of the extraction prompt (``<observed_at>``, ``<transcript>``) and
makes one fact per sentence of the user's turns (questions, greetings and sentences under three words are
skipped): first-person pronouns become "the user", "yesterday" / "tomorrow" / "last week" become dates
counted from the observed date, "X because Y" becomes two facts linked by a causal relation. Type, importance,
entities (capitalised words), tags (content words) and three questions are derived from the sentence. A
prompt without chunk elements gets an answer with no facts.

:func:`apply_text_fault` breaks an answer's text the ways models do (fences, prose, cut JSON, schema errors).
"""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from typing import Any

from .faults import Fault

__all__ = ["apply_text_fault", "extraction_answer", "sentence_facts"]

_CHUNK = re.compile(r'<chunk id="([^"]+)">(.*?)</chunk>', re.DOTALL)
_OBSERVED = re.compile(r"<observed_at>(\d{4}-\d{2}-\d{2})")
_TRANSCRIPT = re.compile(r"<transcript>\n?(.*?)\n?</transcript>", re.DOTALL)
_SENTENCE = re.compile(r"[^.!?]+[.!?]?")
_STOP = set(
    "the a an and or but of to in on for with at by from that this these those is are was were be been have has had "
    "will would can could should about into over after before very really just also some more most then than there "
    "their they them what when where which while user user's because like love prefer decided going want".split()
)
_GREETINGS = ("hi", "hello", "hey", "thanks", "thank you", "ok", "okay", "great", "cool")


_MODAL = {"was", "will", "would", "can", "could", "should", "must", "might", "may", "did", "had", "also", "really"}
_MODAL |= set(
    "flew went bought met told said got made took saw ate left felt found gave knew thought wrote ran came chose "
    "began sold sent spent kept lost paid read built drove grew heard held won broke just never always".split()
)
_IRREGULAR = {"have": "has", "do": "does", "go": "goes"}


def _third_person(m: re.Match[str]) -> str:
    verb = m.group(1)
    low = verb.lower()
    if low in _MODAL or low.endswith("ed"):
        return f"the user {verb}"
    if low in _IRREGULAR:
        return f"the user {_IRREGULAR[low]}"
    if low.endswith(("s", "sh", "ch", "x", "o")):
        return f"the user {verb}es"
    if low.endswith("y") and low[-2:-1] not in "aeiou":
        return f"the user {verb[:-1]}ies"
    return f"the user {verb}s"


def _resolve(text: str, observed: date | None) -> str:
    text = re.sub(r"\bI am\b|\bI'm\b", "the user is", text)
    text = re.sub(r"\bI've\b", "the user has", text)
    text = re.sub(r"\bI ([a-z]+)\b", _third_person, text)
    text = re.sub(r"\bI\b", "the user", text)
    text = re.sub(r"\b[Mm]y\b", "the user's", text)
    text = re.sub(r"\b[Mm]e\b", "the user", text)
    if observed is not None:
        text = re.sub(r"\byesterday\b", f"on {(observed - timedelta(days=1)).isoformat()}", text)
        text = re.sub(r"\btomorrow\b", f"on {(observed + timedelta(days=1)).isoformat()}", text)
        text = re.sub(r"\blast week\b", f"in the week of {(observed - timedelta(days=7)).isoformat()}", text)
    text = text.strip().rstrip(".!") + "."
    return text[0].upper() + text[1:]


def _kind(s: str) -> str:
    low = s.lower()
    if re.search(r"\b(decided|chose|choose|picked|going with|will use|settled on)\b", low):
        return "decision"
    if re.search(r"\b(prefer|prefers|like|likes|love|loves|hate|hates|favou?rite)\b", low):
        return "preference"
    if re.search(r"\b(need to|needs to|will|plan|plans|going to|todo|must)\b", low):
        return "action"
    if re.search(r"\b(wife|husband|friend|colleague|manager|sister|brother|partner|works with|married)\b", low):
        return "relationship"
    return "fact"


def _entities(sentence: str) -> list[str]:
    words = re.findall(r"[A-Za-z][\w'-]*", sentence)
    found = [w for i, w in enumerate(words) if i > 0 and w[0].isupper() and w not in ("I", "I'm", "I've")]
    return list(dict.fromkeys(found))[:5]


def _tags(sentence: str) -> list[str]:
    words = [w.lower() for w in re.findall(r"[A-Za-z]+", sentence)]
    tags = [w for w in words if len(w) >= 4 and w not in _STOP]
    return list(dict.fromkeys(tags))[:3] or ["general"]


def sentence_facts(sentence: str, observed: date | None) -> list[tuple[str, dict[str, Any]]]:
    """The facts of one user sentence, each ``(role in a because-pair: "main" / "reason" / "", fact dict)``."""
    s = sentence.strip()
    if len(s.split()) < 3 or s.endswith("?") or s.lower().rstrip(".!") in _GREETINGS:
        return []
    parts = re.split(r"\s+because\s+", s, maxsplit=1)
    out: list[tuple[str, dict[str, Any]]] = []
    for n, part in enumerate(parts):
        fact = _resolve(part, observed)
        kind = _kind(part) if n == 0 else "fact"
        entities = _entities(part)
        tags = _tags(part)
        importance = min(1.0, 0.4 + 0.1 * min(4, len(entities)) + (0.2 if kind in ("decision", "preference") else 0))
        topic = entities[0] if entities else tags[0]
        out.append(
            (
                ("main" if n == 0 else "reason") if len(parts) == 2 else "",
                {
                    "fact": fact,
                    "type": kind,
                    "importance": round(importance, 2),
                    "entities": entities,
                    "tags": tags,
                    "potential": [
                        f"What does the user say about {topic}?",
                        f"What is known about the user's {tags[0]}?",
                        f"Why does {topic} matter to the user?",
                    ],
                    "attributed_to": "user",
                },
            )
        )
    return out


def _user_turns(transcript: str) -> list[str]:
    turns: list[tuple[str, str]] = []
    for para in transcript.split("\n\n"):
        m = re.match(r"^(User|Assistant|[A-Z][\w ]{0,30}):\s?(.*)$", para, re.DOTALL)
        if m and m.group(1) in ("User", "Assistant"):
            turns.append((m.group(1), m.group(2)))
        elif turns:
            turns[-1] = (turns[-1][0], turns[-1][1] + "\n\n" + para)
    return [text for role, text in turns if role == "User"]


def extraction_answer(prompt: str) -> dict[str, Any]:
    """The answer object (``facts`` and ``relations``) for an extraction prompt's user message."""
    facts: list[dict[str, Any]] = []
    relations: list[dict[str, str]] = []
    for label, body in _CHUNK.findall(prompt):
        m = _OBSERVED.search(body)
        observed = date.fromisoformat(m.group(1)) if m else None
        t = _TRANSCRIPT.search(body)
        if t is None:
            continue
        for turn in _user_turns(t.group(1)):
            for sentence in _SENTENCE.findall(turn.replace("\n", " ")):
                main_id = None
                for role, fact in sentence_facts(sentence, observed):
                    fid = f"f{len(facts) + 1}"
                    facts.append({"id": fid, "chunk": label, **fact})
                    if role == "main":
                        main_id = fid
                    elif role == "reason" and main_id is not None:
                        relations.append({"cause": fid, "effect": main_id})
    return {"facts": facts, "relations": relations}


def apply_text_fault(answer: dict[str, Any], fault: Fault | None) -> str:
    """The answer as a model would write it, broken the way ``fault`` says (or well-formed)."""
    if fault is not None and fault.kind == "schema_invalid":
        broken = json.loads(json.dumps(answer))
        for fact in broken["facts"]:
            fact["potential"] = fact["potential"][:1]
            fact["importance"] = "very"
            fact.pop("tags", None)
        if not broken["facts"]:
            broken = {"facts": [{"fact": ""}], "relations": []}
        return json.dumps(broken)
    text = json.dumps(answer, ensure_ascii=False)
    if fault is None:
        return text
    if fault.kind == "fenced":
        return "```json\n" + json.dumps(answer, indent=2, ensure_ascii=False) + "\n```"
    if fault.kind == "prose":
        return "Sure! Here are the facts I found:\n\n" + text + "\n\nLet me know if you need anything else."
    if fault.kind == "broken_json":
        return text[: max(1, len(text) // 2)]
    return text
