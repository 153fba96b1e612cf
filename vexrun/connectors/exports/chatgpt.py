"""``type: chatgpt-export`` — a ChatGPT data export's ``conversations.json`` (IMPORT_CONTRACT.md G1–G6).

The canonical thread is the walk from ``current_node`` through ``parent`` to the root, reversed (G1); every
other node with a message is dropped as ``not_on_current_path``, however new it is, and the order of the
keys in ``mapping`` never matters. Along the thread, in this order: a ``message: null`` node is
``null_message`` (G2); a message hidden from the conversation is ``visually_hidden`` (G3); then only
``user``/``assistant`` messages to ``all`` with ``text``/``multimodal_text`` content become turns (G4,
``role_*``, ``recipient_*``, ``content_type_*``). Turn text is the string parts joined (G5); dict parts (image
pointers and the like) are attachments of the message, so an image-only message is dropped as
``empty_after_extraction`` with its pointer still reported. The custom-instructions message
(``user_editable_context``) is never a turn; its fields are kept as the ``user_editable_context`` metadata
string (JSON).

A conversation without ``current_node`` (or whose ``current_node`` is not in ``mapping``) follows the newest
branch instead: from the root, always the last child.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from ...errors import FormatError
from .common import AttachmentKind, Conversation, iso_time, join_texts
from .source import ExportConfig, ExportSource, read_conversations
from .stream import Element, locate

__all__ = ["ChatGPTExportConfig", "ChatGPTExportSource", "canonical_path", "iter_conversations", "parse_conversation"]

_TEXT_TYPES = ("text", "multimodal_text")


class ChatGPTExportConfig(ExportConfig):
    """``type: chatgpt-export`` — ChatGPT's ``conversations.json`` (or the export's folder or zip)."""

    type: Literal["chatgpt-export", "chatgpt", "openai-export"] = Field(
        description="chatgpt-export (aliases: chatgpt, openai-export)."
    )


def _bad(element: Element, name: str, message: str, hint: str | None = None) -> FormatError:
    return FormatError(f"conversation {element.index} (byte {element.offset}): {message}", location=name, hint=hint)


def canonical_path(mapping: dict[str, Any], current: Any) -> list[str]:
    """Node ids from the root to ``current`` (G1); the newest branch when ``current`` is unknown."""

    def known(node: Any) -> bool:
        return isinstance(node, str) and node in mapping

    path: list[str] = []
    if known(current):
        seen: set[str] = set()
        node: Any = current
        while known(node) and node not in seen:
            seen.add(node)
            path.append(node)
            node = _dict(mapping[node]).get("parent")
        return path[::-1]
    roots = [k for k, v in mapping.items() if not known(_dict(v).get("parent"))]
    node = roots[0] if roots else None
    visited: set[str] = set()
    while known(node) and node not in visited:
        visited.add(node)
        path.append(node)
        children = _dict(mapping[node]).get("children")
        kids = [c for c in children if known(c)] if isinstance(children, list) else []
        node = kids[-1] if kids else None
    return path


def _node_message_id(node_id: str, node: Any) -> str:
    message = node.get("message") if isinstance(node, dict) else None
    if isinstance(message, dict) and isinstance(message.get("id"), str) and message["id"]:
        return str(message["id"])
    return node_id


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _user_context(content: dict[str, Any]) -> str:
    return orjson.dumps({k: v for k, v in content.items() if k != "content_type"}).decode("utf-8")


def parse_conversation(value: Any, element: Element, name: str) -> Conversation:
    """One element of the file → a conversation in 'turn' mode."""
    if not isinstance(value, dict) or not isinstance(value.get("mapping"), dict):
        if isinstance(value, dict) and ("chat_messages" in value or "messages" in value):
            raise _bad(element, name, "this is a Claude export, not a ChatGPT one", hint="use type: claude-export")
        raise _bad(element, name, "not a ChatGPT conversation: it has no 'mapping' object")
    mapping: dict[str, Any] = value["mapping"]
    title = value.get("title")
    conv = Conversation(
        index=element.index,
        offset=element.offset,
        id=str(value.get("conversation_id") or value.get("id") or f"#{element.index}"),
        title=title if isinstance(title, str) else None,
        created_at=iso_time(value.get("create_time")),
        shape="chatgpt",
    )
    path = canonical_path(mapping, value.get("current_node"))
    on_path = set(path)
    for node_id in path:
        node = mapping[node_id]
        message = node.get("message") if isinstance(node, dict) else None
        if not isinstance(message, dict):
            conv.drop(node_id, "null_message")
            continue
        mid = _node_message_id(node_id, node)
        meta = _dict(message.get("metadata"))
        content = _dict(message.get("content"))
        ctype = content.get("content_type")
        if ctype == "user_editable_context":
            conv.extras["user_editable_context"] = _user_context(content)
        if meta.get("is_visually_hidden_from_conversation") is True:
            conv.drop(mid, "visually_hidden")
            continue
        author = message.get("author")
        role = author.get("role") if isinstance(author, dict) else None
        if role not in ("user", "assistant"):
            conv.drop(mid, f"role_{role}")
            continue
        recipient = message.get("recipient", "all")
        if recipient not in ("all", None):
            conv.drop(mid, f"recipient_{recipient}")
            continue
        if ctype not in _TEXT_TYPES:
            conv.drop(mid, f"content_type_{ctype}")
            continue
        parts: list[Any] = content["parts"] if isinstance(content.get("parts"), list) else []
        text = join_texts([p for p in parts if isinstance(p, str) and p.strip()])
        found: list[tuple[AttachmentKind, dict[str, Any]]] = [
            ("image" if p.get("content_type") == "image_asset_pointer" else "part", p)
            for p in parts
            if isinstance(p, dict)
        ]
        conv.add_turn(role, text, mid, iso_time(message.get("create_time")), found)
    for node_id, node in mapping.items():
        if node_id in on_path:
            continue
        message = node.get("message") if isinstance(node, dict) else None
        conv.drop(_node_message_id(node_id, node), "not_on_current_path" if message is not None else "null_message")
    return conv


def iter_conversations(path: str | Path) -> Iterator[Conversation]:
    """Every conversation of a ChatGPT export in 'turn' mode (a library helper; also used by the tests)."""
    return read_conversations(locate(Path(path), str(path)), parse_conversation)


class ChatGPTExportSource(ExportSource):
    """Reads a ChatGPT export conversation by conversation and chunks it (see :mod:`.chunking`)."""

    name: ClassVar[str] = "chatgpt-export"
    store: ClassVar[str] = "chatgpt-export"
    parse = staticmethod(parse_conversation)
