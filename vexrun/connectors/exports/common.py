"""What a conversation export becomes before chunking: conversations of turns, with what was dropped.

These are the shapes of IMPORT_CONTRACT.md's 'turn' mode. The Claude and ChatGPT parsers produce them; the
chunker (:mod:`.chunking`) turns them into records. They are plain dataclasses so tests can check the
contract on them directly (``iter_conversations`` in each export module).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import orjson

__all__ = [
    "Attachment",
    "AttachmentKind",
    "Conversation",
    "Dropped",
    "Role",
    "Turn",
    "iso_time",
    "join_texts",
]

Role = Literal["user", "assistant"]
AttachmentKind = Literal["attachment", "file", "image", "document", "part"]

#: How the text blocks / parts of one message are joined into the turn text (T5).
PART_SEPARATOR = "\n\n"


@dataclass(slots=True)
class Attachment:
    """An attachment, file reference, image pointer or API document/image block of one message, kept
    byte-exact (``data`` is the provider's object as it was in the file). ``owner_turn_index`` is the index
    of the turn made from that message, or None when the message was dropped (T3)."""

    kind: AttachmentKind
    message_id: str
    owner_turn_index: int | None
    data: dict[str, Any]
    #: the role of the message it came from, and how many turns preceded that message (so an attachment of
    #: a dropped message can travel with the record of the turn that follows it)
    role: Role
    position: int

    def encode(self) -> str:
        """The JSON string stored in a record's ``metadata.attachments`` list: ``kind``, ``message_id`` and
        ``owner_turn_index``, then the provider's own fields unchanged (nested under ``original`` only if
        one of its keys would clash with ours)."""
        ours: dict[str, Any] = {
            "kind": self.kind,
            "message_id": self.message_id,
            "owner_turn_index": self.owner_turn_index,
        }
        if ours.keys() & self.data.keys():
            ours["original"] = self.data
        else:
            ours.update(self.data)
        return orjson.dumps(ours).decode("utf-8")


@dataclass(slots=True)
class Turn:
    """One surviving message (T1): its role, its text and where it came from."""

    index: int  # position among the conversation's surviving turns
    role: Role
    text: str
    message_id: str
    created_at: str | None  # ISO-8601 UTC; the conversation's time when the message had none (T7)
    created_at_fallback: bool = False
    attachments: list[Attachment] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Dropped:
    """A message that produced no turn, with its reason code (``role_tool``, ``visually_hidden``, …)."""

    message_id: str
    reason: str


@dataclass(slots=True)
class Conversation:
    """One conversation of the file, in 'turn' mode."""

    index: int  # position in the file's top-level array
    offset: int  # byte offset of the conversation in the (uncompressed) file
    id: str
    title: str | None
    created_at: str | None
    shape: Literal["claude.ai", "anthropic-api", "chatgpt"]
    turns: list[Turn] = field(default_factory=list)
    dropped: list[Dropped] = field(default_factory=list)
    #: attachments of every message, surviving or dropped, in message order
    attachments: list[Attachment] = field(default_factory=list)
    #: conversation-level strings kept as metadata, never as turns (``summary``, ``system``,
    #: ``user_editable_context``)
    extras: dict[str, str] = field(default_factory=dict)
    #: lone surrogate escapes in the file were replaced by U+FFFD
    repaired: bool = False

    def drop(self, message_id: str, reason: str) -> None:
        self.dropped.append(Dropped(message_id, reason))

    def add_turn(
        self,
        role: Role,
        text: str,
        message_id: str,
        time: str | None,
        attachments: list[tuple[AttachmentKind, dict[str, Any]]],
    ) -> None:
        """Add a message: a turn when its text is not blank, else a drop (T3). Its attachments are kept
        either way, owned by the turn or by nobody."""
        keep = bool(text.strip())
        at = len(self.turns)
        found = [Attachment(kind, message_id, at if keep else None, data, role, at) for kind, data in attachments]
        self.attachments.extend(found)
        if not keep:
            self.drop(message_id, "empty_after_extraction")
            return
        fallback = time is None and self.created_at is not None
        self.turns.append(
            Turn(
                index=len(self.turns),
                role=role,
                text=text,
                message_id=message_id,
                created_at=time if time is not None else self.created_at,
                created_at_fallback=fallback,
                attachments=found,
            )
        )


def join_texts(parts: list[str]) -> str:
    """Join the text parts of one message (T5): a blank line between them, each kept as it is (T4)."""
    return PART_SEPARATOR.join(parts)


def iso_time(value: Any) -> str | None:
    """An ISO-8601 UTC timestamp (``…Z``, microseconds) from an epoch number or an ISO-8601 string; None
    for null or anything unreadable (the caller then falls back to the conversation's time, T7)."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        if isinstance(value, int | float):
            if not math.isfinite(value):
                return None
            dt = datetime.fromtimestamp(value, tz=UTC)
        elif isinstance(value, str) and value.strip():
            dt = _parse_iso(value.strip())
        else:
            return None
    except (ValueError, OverflowError, OSError):
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def _parse_iso(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    # more than six fractional digits (nanoseconds) or a lower-case 'z'
    head, dot, rest = text.partition(".")
    if dot:
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = head + "." + rest[: min(digits, 6)] + rest[digits:]
    return datetime.fromisoformat(text.replace("z", "Z"))
