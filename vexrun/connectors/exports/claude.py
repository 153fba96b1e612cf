"""``type: claude-export`` — a claude.ai data export, or conversations in the Anthropic Messages API shape.

Each conversation of the file is recognised on its own: ``chat_messages`` means the claude.ai export
(IMPORT_CONTRACT.md C1–C6), ``messages`` the API shape (A1–A4).

- claude.ai: turn text is the ``text`` of the ``content[]`` blocks of type ``text`` (C2). Only when no such
  block has text does the message-level ``text`` count (C3): the two placeholder fences are deleted from it,
  and so is the text of any ``thinking`` block of the message, since that rendering can contain it (C4).
  When messages carry ``parent_message_uuid`` and the conversation a ``current_leaf_message_uuid``, the
  turns follow that leaf's path (C1); the other messages are dropped as ``not_on_current_path``.
  ``attachments[]`` (with their ``extracted_content``) and ``files[]``/``files_v2[]`` references (a file
  listed in both once) are kept byte-exact as attachments of the message (C5); ``summary`` is metadata (C6).
- API shape: message ids are ``"<conversation id>#<index>"`` (T8); ``content`` is the text or a list of
  blocks whose ``text`` blocks make the turn (A2, A3); ``document``/``image`` blocks are attachments (A4);
  a ``system`` prompt is metadata (A1).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...errors import FormatError
from .common import AttachmentKind, Conversation, iso_time, join_texts
from .source import ExportConfig, ExportSource, read_conversations
from .stream import Element, locate

__all__ = ["FENCES", "ClaudeExportConfig", "ClaudeExportSource", "iter_conversations", "parse_conversation"]

#: The placeholders claude.ai puts in the message-level ``text`` for blocks it cannot render (C3).
FENCES = (
    "```\nThis block is not supported on your current device yet.\n```",
    "```\nViewing artifacts created via the Analysis Tool web feature preview isn\u2019t yet supported on mobile.\n```",
)

_ROLES = {"human": "user", "user": "user", "assistant": "assistant"}
Attachments = list[tuple[AttachmentKind, dict[str, Any]]]


class ClaudeExportConfig(ExportConfig):
    """``type: claude-export`` — claude.ai's ``conversations.json`` (its folder or zip), or a JSON array of
    ``{"id", "messages": [{"role", "content"}], "system"?}`` conversations in the Anthropic API shape."""

    type: Literal["claude-export", "claude"] = Field(description="claude-export (alias: claude).")


def _bad(index: int, offset: int, name: str, message: str, hint: str | None = None) -> FormatError:
    return FormatError(f"conversation {index} (byte {offset}): {message}", location=name, hint=hint)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def _block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [b["text"] for b in blocks if b.get("type") == "text" and isinstance(b.get("text"), str)]


def message_text(message: dict[str, Any]) -> str:
    """A claude.ai message's turn text (C2–C4)."""
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    blocks = _dicts(content)
    texts = [t for t in _block_texts(blocks) if t.strip()]
    if texts:
        return join_texts(texts)
    text = _str(message.get("text")) or ""
    for fence in FENCES:
        text = text.replace(fence, "")
    for block in blocks:
        thought = block.get("thinking")
        if block.get("type") == "thinking" and isinstance(thought, str) and thought.strip():
            text = text.replace(thought, "")
    return text.strip()


def _file_refs(message: dict[str, Any]) -> list[dict[str, Any]]:
    """``files_v2`` then the ``files`` entries that are not the same file again (same uuid, or same name
    where the uuids do not tell them apart)."""
    refs = _dicts(message.get("files_v2"))
    unmatched = list(refs)
    for ref in _dicts(message.get("files")):
        uid = ref.get("file_uuid")

        def same(other: dict[str, Any], ref: dict[str, Any] = ref, uid: Any = uid) -> bool:
            if uid and other.get("file_uuid"):
                return bool(other.get("file_uuid") == uid)
            return bool(other.get("file_name") == ref.get("file_name"))

        match = next((i for i, other in enumerate(unmatched) if same(other)), None)
        if match is None:
            refs.append(ref)
        else:
            del unmatched[match]
    return refs


def _claude_ai(value: dict[str, Any], element: Element, name: str) -> Conversation:
    messages = value.get("chat_messages")
    if not isinstance(messages, list):
        raise _bad(element.index, element.offset, name, "'chat_messages' is not a list")
    conv = Conversation(
        index=element.index,
        offset=element.offset,
        id=str(value.get("uuid") or value.get("id") or f"#{element.index}"),
        title=_str(value.get("name")),
        created_at=iso_time(value.get("created_at")),
        shape="claude.ai",
    )
    if isinstance(value.get("summary"), str) and value["summary"].strip():
        conv.extras["summary"] = value["summary"]
    ids: list[str] = []
    for k, m in enumerate(messages):
        if m is not None and not isinstance(m, dict):
            raise _bad(element.index, element.offset, name, f"message {k} is not an object")
        ids.append(str((m or {}).get("uuid") or f"{conv.id}#{k}"))
    order = list(range(len(messages)))
    leaf = value.get("current_leaf_message_uuid")
    linked = any(isinstance(m, dict) and m.get("parent_message_uuid") for m in messages)
    if isinstance(leaf, str) and linked and leaf in ids:
        position = {mid: k for k, mid in enumerate(ids)}
        path: list[int] = []
        at: int | None = position[leaf]
        while at is not None and at not in path:
            path.append(at)
            parent = messages[at].get("parent_message_uuid") if isinstance(messages[at], dict) else None
            at = position.get(parent) if isinstance(parent, str) else None
        order = path[::-1]
        on_path = set(path)
        for k, mid in enumerate(ids):
            if k not in on_path:
                conv.drop(mid, "not_on_current_path")
    for k in order:
        m = messages[k]
        if m is None:
            conv.drop(ids[k], "null_message")
            continue
        sender = m.get("sender")
        role = _ROLES.get(sender) if isinstance(sender, str) else None
        if role is None:
            conv.drop(ids[k], f"role_{sender}")
            continue
        found: Attachments = [("attachment", a) for a in _dicts(m.get("attachments"))]
        found += [("file", f) for f in _file_refs(m)]
        conv.add_turn(role, message_text(m), ids[k], iso_time(m.get("created_at")), found)  # type: ignore[arg-type]
    return conv


def _api(value: dict[str, Any], element: Element, name: str) -> Conversation:
    messages = value.get("messages")
    if not isinstance(messages, list):
        raise _bad(element.index, element.offset, name, "'messages' is not a list")
    conv = Conversation(
        index=element.index,
        offset=element.offset,
        id=str(value.get("id") or value.get("uuid") or f"#{element.index}"),
        title=_str(value.get("title")) or _str(value.get("name")),
        created_at=iso_time(value.get("created_at")),
        shape="anthropic-api",
    )
    system = value.get("system")
    system_text = system if isinstance(system, str) else join_texts(_block_texts(_dicts(system)))
    if system_text.strip():
        conv.extras["system"] = system_text
    for k, m in enumerate(messages):
        mid = f"{conv.id}#{k}"
        if m is None:
            conv.drop(mid, "null_message")
            continue
        if not isinstance(m, dict):
            raise _bad(element.index, element.offset, name, f"message {k} is not an object")
        role = m.get("role")
        if role not in ("user", "assistant"):
            conv.drop(mid, f"role_{role}")
            continue
        content = m.get("content")
        found: Attachments = []
        if isinstance(content, str):
            text = content
        else:
            blocks = _dicts(content)
            text = join_texts([t for t in _block_texts(blocks) if t.strip()])
            found = [(b["type"], b) for b in blocks if b.get("type") in ("document", "image")]
        conv.add_turn(role, text, mid, iso_time(m.get("created_at")), found)
    return conv


def parse_conversation(value: Any, element: Element, name: str) -> Conversation:
    """One element of the file → a conversation in 'turn' mode (either shape)."""
    if isinstance(value, dict):
        if "chat_messages" in value:
            return _claude_ai(value, element, name)
        if "messages" in value:
            return _api(value, element, name)
        if "mapping" in value:
            raise _bad(
                element.index,
                element.offset,
                name,
                "this is a ChatGPT export, not a Claude one",
                hint="use type: chatgpt-export",
            )
    raise _bad(
        element.index,
        element.offset,
        name,
        "not a Claude conversation: it has neither 'chat_messages' (claude.ai export) "
        "nor 'messages' (Anthropic API shape)",
    )


def iter_conversations(path: str | Path) -> Iterator[Conversation]:
    """Every conversation of a Claude export in 'turn' mode (a library helper; also used by the tests)."""
    return read_conversations(locate(Path(path), str(path)), parse_conversation)


class ClaudeExportSource(ExportSource):
    """Reads a Claude export conversation by conversation and chunks it (see :mod:`.chunking`)."""

    name: ClassVar[str] = "claude-export"
    store: ClassVar[str] = "claude-export"
    parse = staticmethod(parse_conversation)
