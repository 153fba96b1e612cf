"""What the Claude and ChatGPT export sources share: the config fields, streaming, batching and resume.

The cursor after a batch is ``{"conversation": i, "record": j, "offset": o, "counts": {...}}``: ``i`` is the
index in the file of the conversation the next record comes from, ``j`` how many of its records were already
emitted, ``o`` its byte offset (a resumed plain file seeks straight there; a zip is re-split from the start,
which is cheap because skipped conversations are not parsed). ``counts`` are the report's counts up to that
point, so the report of a resumed run covers the whole file once.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from ...errors import FormatError
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import Cursor, PluginConfig, RunContext, Source
from .chunking import ChunkOptions, build_records
from .common import Conversation
from .stream import (
    DEFAULT_MAX_MEMBER_BYTES,
    DEFAULT_MAX_VALUE_BYTES,
    Element,
    ExportFile,
    iter_elements,
    locate,
    open_export,
    parse_element,
)

__all__ = ["ExportConfig", "ExportSource", "read_conversations"]


class ExportConfig(PluginConfig):
    """Options shared by the conversation-export sources."""

    path: str = Field(
        description="The export's conversations.json, the unpacked export folder that holds it, or the export's "
        ".zip; relative to the recipe."
    )
    chunk: Literal["turn", "exchange", "conversation", "smart"] = Field(
        default="smart",
        description="What one record holds: 'turn' one message; 'exchange' a user message with the answer(s) "
        "that follow; 'conversation' the whole conversation (long ones in overlapping windows); 'smart' "
        "exchange below smart_max_turns turns, conversation windows above.",
    )
    sender: Literal["both", "user", "assistant"] = Field(
        default="both",
        description="Keep only the user's or only the assistant's turns ('user' keeps what the person wrote).",
    )
    namespace: str | None = Field(default=None, description="The namespace of every record (part of its id).")
    smart_max_turns: int = Field(
        default=20, ge=1, description="smart: conversations with fewer turns are chunked by exchange."
    )
    window_turns: int = Field(default=12, ge=1, description="conversation/smart: most turns in one window.")
    window_overlap: int = Field(
        default=2, ge=0, description="conversation/smart: turns shared by consecutive windows (< window_turns)."
    )
    window_chars: int = Field(
        default=12_000,
        ge=200,
        description="conversation/smart: most characters in one window (a single longer turn is its own window).",
    )
    user_label: str = Field(
        default="User", min_length=1, description="Speaker label of user turns in multi-turn records."
    )
    assistant_label: str = Field(
        default="Assistant", min_length=1, description="Speaker label of assistant turns in multi-turn records."
    )
    conversation_metadata: Literal["all", "first"] = Field(
        default="all",
        description="Put conversation-level metadata (summary, system prompt, custom instructions) on every "
        "record of the conversation, or only on its first (for stores with small metadata limits).",
    )
    include_attachments: bool = Field(
        default=False,
        description="Hand attachments (kept byte-exact in metadata.attachments either way) to extraction as a "
        "second, clearly labelled input.",
    )
    max_member_bytes: int = Field(
        default=DEFAULT_MAX_MEMBER_BYTES,
        ge=1024 * 1024,
        description="A .zip export: refuse a conversations.json that inflates to more than this many bytes "
        "(default 4 GiB; a zip-bomb guard). Raise it for a genuine larger export.",
    )
    max_value_bytes: int = Field(
        default=DEFAULT_MAX_VALUE_BYTES,
        ge=64 * 1024,
        description="Refuse a single conversation of more than this many bytes of JSON (default 64 MiB): one "
        "conversation is held in memory whole. Raise it for a genuine larger one.",
    )

    @field_validator("window_overlap")
    @classmethod
    def _overlap_below_window(cls, value: int, info: ValidationInfo) -> int:
        turns = info.data.get("window_turns")
        if isinstance(turns, int) and value >= turns:
            raise ValueError(f"window_overlap must be smaller than window_turns ({turns})")
        return value

    def chunk_options(self) -> ChunkOptions:
        return ChunkOptions(
            mode=self.chunk,
            sender=self.sender,
            namespace=self.namespace,
            smart_max_turns=self.smart_max_turns,
            window_turns=self.window_turns,
            window_overlap=self.window_overlap,
            window_chars=self.window_chars,
            user_label=self.user_label,
            assistant_label=self.assistant_label,
            conversation_metadata=self.conversation_metadata,
        )


class _Counts:
    """The report's counts; they travel in the cursor so a resumed run reports the whole file."""

    def __init__(self, saved: dict[str, Any] | None = None) -> None:
        saved = saved or {}
        self.conversations = int(saved.get("conversations", 0))
        self.empty = int(saved.get("empty_conversations", 0))
        self.turns = int(saved.get("turns", 0))
        self.records = int(saved.get("records", 0))
        self.attachments = int(saved.get("attachments", 0))
        self.unowned = int(saved.get("unowned_attachments", 0))
        self.repaired = int(saved.get("repaired_conversations", 0))
        self.dropped: Counter[str] = Counter(saved.get("dropped", {}))

    def add(self, conv: Conversation) -> None:
        self.conversations += 1
        self.empty += not conv.turns
        self.turns += len(conv.turns)
        self.attachments += len(conv.attachments)
        self.unowned += sum(a.owner_turn_index is None for a in conv.attachments)
        self.repaired += conv.repaired
        self.dropped.update(d.reason for d in conv.dropped)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "conversations": self.conversations,
            "empty_conversations": self.empty,
            "turns": self.turns,
            "records": self.records,
            "attachments": self.attachments,
            #: attachments of messages dropped for having no text (T3): in their conversation's first record
            "unowned_attachments": self.unowned,
            "dropped": dict(sorted(self.dropped.items())),
        }
        if self.repaired:
            out["repaired_conversations"] = self.repaired
        return out


Parser = Callable[[Any, Element, str], Conversation]


def read_conversations(
    export: ExportFile,
    parse: Parser,
    *,
    start: tuple[int, int | None] | None = None,
) -> Iterator[Conversation]:
    """Parse the export's conversations one at a time with ``parse(value, element, name)``. ``start=(index,
    offset)`` begins at that conversation: by seeking when the file allows it, else by skipping (unparsed)."""
    name = export.name
    with open_export(export) as fh:
        limit = export.max_value_bytes
        if start is not None and start[1] is not None and export.seekable:
            fh.seek(start[1])
            elements = iter_elements(fh, name, start=(start[0], start[1]), max_value_bytes=limit)
        else:
            elements = iter_elements(fh, name, max_value_bytes=limit)
        first = 0 if start is None else start[0]
        for element in elements:
            if element.index < first:
                continue
            value, repaired = parse_element(element, name)
            conv = parse(value, element, name)
            conv.repaired = repaired
            yield conv


class ExportSource(Source):
    """Base of the export sources: subclasses set ``store`` and implement :meth:`parse`."""

    store: ClassVar[str] = "export"

    def __init__(self, config: ExportConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.export: ExportFile | None = None
        self.counts = _Counts()
        self._reading: list[Iterator[Conversation]] = []

    @staticmethod
    def parse(value: Any, element: Element, name: str) -> Conversation:
        """One decoded top-level element → a conversation in 'turn' mode."""
        raise NotImplementedError

    def open(self) -> None:
        self.export = locate(
            self.path,
            self.cfg.path,
            max_member_bytes=self.cfg.max_member_bytes,
            max_value_bytes=self.cfg.max_value_bytes,
        )

    def identity(self) -> str:
        return f"{self.store}:{self.path.name}"

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Ranges of conversations of about equal bytes, named ``conversations A-B`` (A included, B not). The
        file is scanned once for the conversations' offsets; none is parsed. (A serial read's batches run across
        conversations: near each cut the batches differ, not the records.)"""
        if self.export is None:
            self.open()
        assert self.export is not None
        if n <= 1:
            return [("all", None)]
        marks: list[tuple[int, int, int]] = []  # (index, offset, bytes)
        with open_export(self.export) as fh:
            for element in iter_elements(fh, self.export.name, max_value_bytes=self.export.max_value_bytes):
                marks.append((element.index, element.offset, len(element.raw)))
        if len(marks) < 2:
            return [("all", None)]
        total = sum(m[2] for m in marks)
        starts, acc = [0], 0
        for k, (_, _, size) in enumerate(marks[:-1]):
            acc += size
            if acc * n >= total * len(starts) and len(starts) < n:
                starts.append(k + 1)
        out: list[tuple[str, Cursor | None]] = []
        for a, b in zip(starts, [*starts[1:], len(marks)], strict=True):
            index, offset, _ = marks[a]
            until = marks[b][0] if b < len(marks) else None
            name = f"conversations {index}-{until if until is not None else marks[-1][0] + 1}"
            out.append((name, {"conversation": index, "record": 0, "offset": offset, "counts": None, "until": until}))
        return out

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        if self.export is None:
            self.open()
        assert self.export is not None
        start: tuple[int, int | None] | None = None
        skip = 0
        until = cursor.get("until") if cursor else None
        if cursor:
            try:
                start = (int(cursor["conversation"]), None if cursor.get("offset") is None else int(cursor["offset"]))
                skip = int(cursor["record"])
                self.counts = _Counts(cursor.get("counts"))
            except (KeyError, TypeError, ValueError, AttributeError):
                raise FormatError(f"not a cursor of this source: {cursor!r}", location=self.export.name) from None
        else:
            self.counts = _Counts()
        # a partition's start cursor: its first conversation is not counted yet
        counted = start is not None and cursor is not None and cursor.get("counts") is not None
        opts = self.cfg.chunk_options()
        pending: list[Record] = []
        last: tuple[Conversation, int] | None = None
        reading = read_conversations(self.export, self.parse, start=start)
        self._reading.append(reading)
        for conv in reading:
            if until is not None and conv.index >= until:
                break
            resumed = start is not None and conv.index == start[0]
            if not (resumed and counted):
                self.counts.add(conv)
            records = build_records(conv, opts, self.store)
            for j in range(skip if resumed else 0, len(records)):
                pending.append(records[j])
                self.counts.records += 1
                if len(pending) >= batch_size:
                    yield Batch(records=pending), self._cursor(conv, j + 1, until)
                    pending = []
            last = (conv, len(records))
        if pending:
            assert last is not None
            yield Batch(records=pending), self._cursor(*last, until)

    def _cursor(self, conv: Conversation, record: int, until: int | None = None) -> Cursor:
        cursor = {"conversation": conv.index, "record": record, "offset": conv.offset, "counts": self.counts.as_dict()}
        if until is not None:
            cursor["until"] = until
        return cursor

    def report(self) -> dict[str, Any]:
        return self.counts.as_dict()

    def close(self) -> None:
        """Close the export file of a read that was stopped part way."""
        while self._reading:
            reading = self._reading.pop()
            close = getattr(reading, "close", None)
            if close is not None:
                close()
