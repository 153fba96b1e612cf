"""The extraction prompt (version ``extract-v1``) and the answer's JSON schema.

One call covers one chunk or a pack of small ones. Each chunk is given in its own ``<chunk id="c1">`` element
with the conversation's title, the date it was observed (so the model can turn "last week" into a date), any
labelled extra input (the user's custom instructions, attachments' text) and the transcript, where every turn
starts with who said it (``User:`` / ``Assistant:``). The model answers one JSON object: facts, each naming
the chunk it came from, and causal relations between facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from ...providers.llm.base import ChatMessage, ChatRequest
from ...vmig.model import Record

__all__ = ["FACT_TYPES", "PROMPT_VERSION", "SCHEMA", "SYSTEM", "ChunkView", "build_request", "observed_date"]

PROMPT_VERSION = "extract-v1"
FACT_TYPES = ("decision", "preference", "fact", "entity", "action", "relationship")

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "facts": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "description": "f1, f2, … unique in this answer"},
                    "chunk": {"type": "string", "description": "the id of the chunk the fact comes from"},
                    "fact": {"type": "string", "description": "one atomic, self-contained statement"},
                    "type": {"type": "string", "enum": list(FACT_TYPES)},
                    "importance": {"type": "number", "description": "0 (trivia) to 1 (essential)"},
                    "entities": {"type": "array", "items": {"type": "string"}},
                    "tags": {"type": "array", "items": {"type": "string"}, "description": "1 to 4 keywords"},
                    "potential": {
                        "type": "array",
                        "items": {"type": "string"},
                        "description": "exactly 3 questions the fact answers",
                    },
                    "attributed_to": {"type": "string", "enum": ["user", "assistant"]},
                },
                "required": [
                    "id",
                    "chunk",
                    "fact",
                    "type",
                    "importance",
                    "entities",
                    "tags",
                    "potential",
                    "attributed_to",
                ],
                "additionalProperties": False,
            },
        },
        "relations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "cause": {"type": "string", "description": "id of the fact that is the reason"},
                    "effect": {"type": "string", "description": "id of the fact it explains"},
                },
                "required": ["cause", "effect"],
                "additionalProperties": False,
            },
        },
    },
    "required": ["facts", "relations"],
    "additionalProperties": False,
}

SYSTEM = """You turn chat history into long-term memory. You read chunks of conversations between a user and an \
AI assistant and write down the facts worth remembering about the user: who they are, their work and projects, \
the people, organisations, places and things in their life, their decisions, preferences, plans and \
relationships.

Rules:
- Each fact is atomic (one piece of information) and self-contained: it makes sense on its own, months later. \
Resolve pronouns: name people, projects and things ("Dana prefers PostgreSQL over MySQL", not "She prefers it"). \
Call the user "the user" unless their name is known.
- Turn relative times ("yesterday", "last week", "next Friday") into absolute dates, counting from the chunk's \
observed_at date.
- attributed_to is "user" when the user said or confirmed it, "assistant" when only the assistant said it.
- type is one of: decision, preference, fact, entity, action, relationship.
- importance is a number from 0 to 1: 1 = essential, lasting knowledge about the user; 0.1 = trivia.
- entities lists the named people, organisations, products, places and projects in the fact (may be empty).
- tags holds 1 to 4 short lowercase keywords.
- potential holds exactly 3 natural-language questions this fact answers.
- chunk is the id of the chunk the fact comes from; id is f1, f2, … in order.
- relations lists causal links between your facts: {"cause": "f2", "effect": "f1"} when f2 is the reason for \
f1 (for example a decision and why it was made). Leave it empty when there are none.
- Skip greetings, small talk, and general knowledge the assistant explains that says nothing about the user. \
A chunk with nothing worth remembering gets no facts.
- Text in <user_custom_instructions> is the user's own description of themselves; text in <attachment> is a \
document the user shared. Use them as context and extract facts from them only when they are about the user.

Answer with ONE JSON object and nothing else, following this JSON schema:
"""


def _system() -> str:
    return SYSTEM + orjson.dumps(SCHEMA).decode("utf-8")


_SYSTEM_TEXT = _system()


@dataclass(frozen=True)
class ChunkView:
    """What the prompt shows of one chunk."""

    label: str
    title: str | None
    observed: str
    transcript: str
    context: str | None = None
    attachments: tuple[tuple[str, str], ...] = ()

    def render(self) -> str:
        parts = [f'<chunk id="{self.label}">']
        parts.append(f"<conversation_title>{_esc(self.title or 'untitled')}</conversation_title>")
        parts.append(f"<observed_at>{self.observed}</observed_at>")
        if self.context:
            parts.append(f"<user_custom_instructions>\n{_esc(self.context)}\n</user_custom_instructions>")
        for name, text in self.attachments:
            parts.append(f'<attachment name="{_esc_attr(name)}" shared_by="user">\n{_esc(text)}\n</attachment>')
        parts.append(f"<transcript>\n{_esc(self.transcript)}\n</transcript>")
        parts.append("</chunk>")
        return "\n".join(parts)


def _esc(text: str) -> str:
    """Keep the chunk's own text from closing our elements."""
    for tag in ("chunk", "transcript", "attachment", "user_custom_instructions", "conversation_title"):
        text = text.replace(f"</{tag}>", f"</ {tag}>")
    return text


def _esc_attr(text: str) -> str:
    return text.replace('"', "'").replace("\n", " ")[:200]


def observed_date(record: Record) -> str:
    """``2024-05-03 (Friday)`` from the record's time (or its conversation's), else ``unknown``."""
    meta = record.metadata or {}
    for value in (record.created_at, meta.get("conversation_created_at")):
        if isinstance(value, str) and value:
            try:
                when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return f"{when.date().isoformat()} ({when.strftime('%A')})"
    return "unknown"


def user_context_text(raw: str) -> str:
    """ChatGPT's ``user_editable_context`` (a JSON object of strings) as readable lines."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return raw
    if not isinstance(obj, dict):
        return raw
    lines = [f"{k}: {v}" for k, v in obj.items() if isinstance(v, str) and v.strip()]
    return "\n".join(lines)


def build_request(
    views: list[ChunkView], settings_instructions: str | None, max_tokens: float, temperature: float
) -> ChatRequest:
    intro = (
        "Extract the memory facts from this chunk."
        if len(views) == 1
        else f"Extract the memory facts from these {len(views)} chunks (each fact names its chunk)."
    )
    body = intro + "\n\n" + "\n\n".join(v.render() for v in views)
    system = _SYSTEM_TEXT
    if settings_instructions:
        system = system + "\n\nAdditional guidance:\n" + settings_instructions.strip()
    return ChatRequest(
        system=system,
        messages=(ChatMessage("user", body),),
        schema=SCHEMA,
        schema_name="record_facts",
        version=PROMPT_VERSION,
        max_tokens=int(max_tokens),
        temperature=temperature,
    )
