"""From a conversation's turns to records: the ``turn``, ``exchange``, ``conversation`` and ``smart`` modes.

- ``turn``: one record per turn; the text is the turn's text exactly.
- ``exchange``: a run of user turns with the run of assistant turns that answers it. Assistant turns before
  the first user turn form a record of their own, and so do user turns left unanswered at the end.
  Exchange boundaries are found on all the turns, then ``sender`` keeps one side of each exchange, so
  ``sender: assistant`` gives one record per answer rather than one record of every answer.
- ``conversation``: the kept turns as one record while they fit in a window (``window_turns`` turns and
  ``window_chars`` characters); longer conversations become consecutive windows that share
  ``window_overlap`` turns. A single turn longer than the window is a window of its own (the ``chunk``
  stage splits it later).
- ``smart``: ``exchange`` for conversations of fewer than ``smart_max_turns`` turns, ``conversation``
  windows for longer ones (``metadata.chunk_mode`` says which was used).

Multi-turn modes say who said what: each turn is ``"<label>: <text>"``, turns separated by a blank line,
with labels ``User`` / ``Assistant`` unless configured (``Dana: …`` lets an extractor attribute facts).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from ...ids import content_hash, record_id
from ...vmig.model import MetadataValue, Record
from .common import Attachment, Conversation, Turn

__all__ = ["ChunkOptions", "build_records", "chunk_turns", "unowned_attachments"]

ChunkMode = Literal["turn", "exchange", "conversation", "smart"]
TURN_SEPARATOR = "\n\n"


@dataclass(frozen=True, slots=True)
class ChunkOptions:
    mode: ChunkMode = "smart"
    sender: Literal["both", "user", "assistant"] = "both"
    namespace: str | None = None
    smart_max_turns: int = 20
    window_turns: int = 12
    window_overlap: int = 2
    window_chars: int = 12_000
    user_label: str = "User"
    assistant_label: str = "Assistant"
    conversation_metadata: Literal["all", "first"] = "all"

    def keeps(self, role: str) -> bool:
        return self.sender == "both" or self.sender == role

    def render(self, turn: Turn) -> str:
        label = self.user_label if turn.role == "user" else self.assistant_label
        return f"{label}: {turn.text}"


@dataclass(frozen=True, slots=True)
class Chunk:
    mode: Literal["turn", "exchange", "conversation"]
    turns: list[Turn]
    text: str


def _exchanges(turns: list[Turn]) -> Iterator[list[Turn]]:
    """Split at every assistant → user transition: [users…, assistants…] groups."""
    group: list[Turn] = []
    for turn in turns:
        if group and turn.role == "user" and group[-1].role == "assistant":
            yield group
            group = []
        group.append(turn)
    if group:
        yield group


def _windows(turns: list[Turn], opts: ChunkOptions) -> Iterator[list[Turn]]:
    """Consecutive windows sharing ``window_overlap`` turns. A window that would hold nothing new (the
    overlap left no room for the next turn) starts without overlap instead."""
    sizes = [len(opts.render(t)) for t in turns]

    def end_of(start: int) -> int:
        end, size = start + 1, sizes[start]
        while end < len(turns) and end - start < opts.window_turns:
            grown = size + len(TURN_SEPARATOR) + sizes[end]
            if grown > opts.window_chars:
                break
            size, end = grown, end + 1
        return end

    start, done = 0, 0
    while done < len(turns):
        end = end_of(start)
        if end <= done:
            start = done
            end = end_of(start)
        yield turns[start:end]
        done = end
        start = max(end - opts.window_overlap, start + 1)


def chunk_turns(conv: Conversation, opts: ChunkOptions) -> list[Chunk]:
    """The chunks of one conversation, in order. A conversation without turns has none (T6)."""
    mode = opts.mode
    if mode == "smart":
        mode = "exchange" if len(conv.turns) < opts.smart_max_turns else "conversation"
    if mode == "turn":
        return [Chunk("turn", [t], t.text) for t in conv.turns if opts.keeps(t.role)]
    groups: Iterator[list[Turn]]
    if mode == "exchange":
        groups = ([t for t in g if opts.keeps(t.role)] for g in _exchanges(conv.turns))
    else:
        groups = _windows([t for t in conv.turns if opts.keeps(t.role)], opts)
    return [Chunk(mode, g, TURN_SEPARATOR.join(opts.render(t) for t in g)) for g in groups if g]


def unowned_attachments(conv: Conversation, opts: ChunkOptions) -> list[Attachment]:
    """The attachments of dropped messages (T3: ``owner_turn_index`` null), of the sides ``sender`` keeps. They
    belong to no turn, so they are never put in another message's ``attachments``."""
    return [a for a in conv.attachments if a.owner_turn_index is None and opts.keeps(a.role)]


def build_records(conv: Conversation, opts: ChunkOptions, source_store: str) -> list[Record]:
    """The records of one conversation. Ids are ``record_id(namespace, source_store, conversation id,
    message ids of the chunk, content hash)``: the same export gives the same ids, wherever the file is.

    ``created_at`` is the first turn's time. Metadata (scalars and flat lists only): ``conversation_id``,
    ``conversation_title`` (may be null), ``conversation_created_at``, ``export_format`` (claude.ai,
    anthropic-api, chatgpt), ``role`` (user, assistant or mixed), ``roles`` and ``source_message_ids`` (one
    per turn), ``turn_index`` (of the first turn among the conversation's turns), ``turn_count``,
    ``chunk_mode`` (the mode actually used), ``chunk_index``; ``created_at_fallback: true`` when the first
    turn had no time of its own; ``attachments`` (JSON strings, see :meth:`Attachment.encode`) when the
    chunk's messages have any; on the conversation's first record only, ``unowned_attachments`` (the same
    JSON strings, ``owner_turn_index`` null) when messages dropped for having no text had attachments (T3);
    and the conversation's ``summary`` / ``system`` / ``user_editable_context`` strings."""
    chunks = chunk_turns(conv, opts)
    unowned = unowned_attachments(conv, opts) if conv.attachments and chunks else []
    records: list[Record] = []
    for j, chunk in enumerate(chunks):
        first = chunk.turns[0]
        ids = [t.message_id for t in chunk.turns]
        roles: list[str] = [t.role for t in chunk.turns]
        meta: dict[str, MetadataValue] = {
            "conversation_id": conv.id,
            "conversation_title": conv.title,
            "conversation_created_at": conv.created_at,
            "export_format": conv.shape,
            "role": roles[0] if len(set(roles)) == 1 else "mixed",
            "roles": list(roles),
            "turn_index": first.index,
            "turn_count": len(chunk.turns),
            "source_message_ids": list(ids),
            "chunk_mode": chunk.mode,
            "chunk_index": j,
        }
        if first.created_at_fallback:
            meta["created_at_fallback"] = True
        attachments = [a for t in chunk.turns for a in t.attachments]
        if attachments:
            meta["attachments"] = [a.encode() for a in attachments]
        if j == 0 and unowned:
            meta["unowned_attachments"] = [a.encode() for a in unowned]
        if j == 0 or opts.conversation_metadata == "all":
            for key, value in conv.extras.items():
                meta[key] = value
        records.append(
            Record(
                id=record_id(opts.namespace, source_store, conv.id, ",".join(ids), content_hash(chunk.text)),
                text=chunk.text,
                namespace=opts.namespace,
                metadata=meta,
                created_at=first.created_at,
                source_store=source_store,
                modality="text",
            )
        )
    return records
