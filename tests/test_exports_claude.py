"""IMPORT_CONTRACT.md for the claude-export source in 'turn' mode: C1–C6 (claude.ai) and A1–A4 (API shape),
with the general rules T1–T8 as they show on these files."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from conftest import DATA
from vexrun.connectors.exports.claude import FENCES, iter_conversations, message_text
from vexrun.connectors.exports.common import Conversation
from vexrun.errors import FormatError

CLAUDE = DATA / "exports" / "claude" / "conversations.json"
API = DATA / "exports" / "claude" / "api.json"


def norm(text: str) -> str:
    return " ".join(text.split())


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def conversations(path: Path) -> dict[str, Conversation]:
    return {c.id: c for c in iter_conversations(path)}


def turns(conv: Conversation) -> list[tuple[str, str, str]]:
    return [(t.message_id, t.role, norm(t.text)) for t in conv.turns]


def attachments(conv: Conversation) -> list[dict[str, object]]:
    return [json.loads(a.encode()) for a in conv.attachments]


# --- claude.ai export ------------------------------------------------------------------------------


def test_turns_are_the_text_blocks_in_order_and_nothing_else() -> None:
    """T1, T2, C2, C3, C4: one turn per surviving message, human → user, text blocks only."""
    conv = conversations(CLAUDE)["conv-blocks"]
    assert turns(conv) == [
        ("m0", "user", "Plan a three-day trip to Lisbon for me."),
        ("m1", "assistant", "Here is a plan. Day 1: Alfama and the castle."),
        ("m2", "user", "Thanks! Also book a fado evening."),
        ("m5", "user", "The fado place should be in Mouraria."),
        ("m7", "assistant", "Booked: Maria da Mouraria, Friday 21:00."),
        ("m9", "user", "Use the artifact above as my packing list."),
    ]
    assert [t.index for t in conv.turns] == list(range(6))
    assert conv.shape == "claude.ai"


def test_thinking_tool_and_unknown_blocks_contribute_nothing() -> None:
    """C2 and C4: the flattened message-level text (thinking + one fence per tool block) is not used."""
    m1 = conversations(CLAUDE)["conv-blocks"].turns[1]
    for leaked in ("neighbourhoods", "Sunny", "web_search", "unknown block", "```", "not supported"):
        assert leaked not in m1.text
    assert m1.text.split("\n\n") == ["Here is a plan.", "Day 1: Alfama and the castle."]


def test_placeholder_fences_are_deleted_exactly() -> None:
    """C3: the two fences, the second with U+2019, are removed from the fallback text."""
    assert "\u2019" in FENCES[1] and FENCES[0].startswith("```\nThis block")
    assert message_text({"content": [], "text": "a " + FENCES[0] + " b " + FENCES[1] + " c"}) == "a  b  c"
    # a near miss (ASCII apostrophe) is user text and stays
    near = FENCES[1].replace("\u2019", "'")
    assert message_text({"content": [], "text": near}) == near
    conv = conversations(CLAUDE)["conv-blocks"]
    assert conv.turns[2].text == "Thanks! Also book a fado evening."
    assert conv.turns[5].text == "Use the artifact above as my packing list."


def test_message_text_is_not_trusted_when_content_has_text() -> None:
    """C4: empty message-level text with text blocks keeps the blocks; the fallback is only for no text."""
    assert message_text({"content": [{"type": "text", "text": "kept"}], "text": ""}) == "kept"
    assert message_text({"content": [{"type": "text", "text": "kept"}], "text": "other"}) == "kept"
    assert message_text({"content": [{"type": "text", "text": ""}], "text": "fallback"}) == "fallback"
    assert message_text({"content": [], "text": "old export"}) == "old export"
    assert message_text({"text": "no content key"}) == "no content key"


def test_fallback_text_never_carries_thinking() -> None:
    """C2 over C3: a message of thinking + a tool call has no turn, even though its flattened text has
    the thinking in it."""
    conv = conversations(CLAUDE)["conv-blocks"]
    assert ("m6", "empty_after_extraction") in [(d.message_id, d.reason) for d in conv.dropped]
    assert all("Private reasoning" not in t.text for t in conv.turns)


def test_empty_messages_are_dropped_with_their_reason() -> None:
    """T3: fence-only text, empty text blocks, thinking-only and whitespace-only messages."""
    conv = conversations(CLAUDE)["conv-blocks"]
    assert sorted((d.message_id, d.reason) for d in conv.dropped) == [
        ("m3", "empty_after_extraction"),
        ("m4", "empty_after_extraction"),
        ("m6", "empty_after_extraction"),
        ("m8", "empty_after_extraction"),
    ]


def test_attachments_are_byte_exact_and_not_turn_text() -> None:
    """C5 and T3: attachments (file_name "" for pasted text) byte-exact; files and files_v2 naming the same
    file count once; a dropped message's file still reported, owned by no turn."""
    conv = conversations(CLAUDE)["conv-blocks"]
    found = attachments(conv)
    assert [(a["kind"], a["message_id"], a["owner_turn_index"], a["file_name"]) for a in found] == [
        ("attachment", "m0", 0, ""),
        ("attachment", "m0", 0, "budget.csv"),
        ("file", "m0", 0, "itinerary.pdf"),
        ("file", "m8", None, "photo.jpg"),
    ]
    assert found[0]["extracted_content"] == "pasted notes:\n  keep   spacing\u00a0exact\r\nand tabs\tinside"
    assert found[0]["file_size"] == 57 and found[0]["file_type"] == "txt"
    assert found[1]["extracted_content"] == "item,eur\nhotel,420\nfood,150\n"
    assert found[2]["file_uuid"] == "file-1" and found[2]["file_kind"] == "document"
    assert all("pasted notes" not in t.text and "hotel" not in t.text for t in conv.turns)
    assert len(conv.turns[0].attachments) == 3


def test_files_in_files_and_files_v2_count_once() -> None:
    from vexrun.connectors.exports.claude import _file_refs

    same_uuid = {
        "files": [{"file_name": "a.png", "file_uuid": "u1"}],
        "files_v2": [{"file_name": "a.png", "file_uuid": "u1"}],
    }
    assert _file_refs(same_uuid) == [{"file_name": "a.png", "file_uuid": "u1"}]
    by_name = {
        "files": [{"file_name": "a.png"}, {"file_name": "b.png"}],
        "files_v2": [{"file_name": "a.png", "file_uuid": "x"}],
    }
    assert [f["file_name"] for f in _file_refs(by_name)] == ["a.png", "b.png"]
    two_same_name = {
        "files": [{"file_name": "image.png", "file_uuid": "p"}, {"file_name": "image.png", "file_uuid": "q"}],
        "files_v2": [{"file_name": "image.png", "file_uuid": "p"}, {"file_name": "image.png", "file_uuid": "q"}],
    }
    assert [f["file_uuid"] for f in _file_refs(two_same_name)] == ["p", "q"]
    only_old = {"files": [{"file_name": "old.pdf"}]}
    assert _file_refs(only_old) == [{"file_name": "old.pdf"}]


def test_summary_is_metadata_not_a_turn() -> None:
    """C6."""
    conv = conversations(CLAUDE)["conv-blocks"]
    assert conv.extras == {"summary": "**Conversation overview** The user planned a trip to Lisbon."}
    assert all("Conversation overview" not in t.text for t in conv.turns)
    assert conversations(CLAUDE)["conv-empty"].extras == {}  # an empty summary is not kept


def test_current_leaf_path_is_followed() -> None:
    """C1: parent links + current_leaf_message_uuid → the leaf's path, in path order (not array order)."""
    conv = conversations(CLAUDE)["conv-branch"]
    assert turns(conv) == [
        ("b0", "user", "Which laptop should I buy for Rust work?"),
        ("b2", "assistant", "A ThinkPad T14 or a Framework 13."),
        ("b3", "user", "I prefer Linux, 32 GB RAM."),
        ("b4", "assistant", "Then the Framework 13 with 32 GB."),
    ]
    assert sorted((d.message_id, d.reason) for d in conv.dropped) == [
        ("b1", "not_on_current_path"),
        ("b5", "not_on_current_path"),
    ]


def test_linear_export_uses_array_order(tmp_path: Path) -> None:
    """C1: without a leaf the array order is the order, even with parent links."""
    (conv,) = parse(
        tmp_path,
        {
            "uuid": "lin",
            "chat_messages": [
                {"uuid": "x", "sender": "human", "text": "first", "parent_message_uuid": "y"},
                {"uuid": "y", "sender": "assistant", "text": "second", "parent_message_uuid": "x"},
            ],
        },
    )
    assert [t.text for t in conv.turns] == ["first", "second"]


def test_unknown_leaf_falls_back_to_array_order(tmp_path: Path) -> None:
    (conv,) = parse(
        tmp_path,
        {
            "uuid": "leafless",
            "current_leaf_message_uuid": "gone",
            "chat_messages": [
                {"uuid": "x", "sender": "human", "text": "first"},
                {"uuid": "y", "sender": "assistant", "text": "second", "parent_message_uuid": "x"},
            ],
        },
    )
    assert [t.text for t in conv.turns] == ["first", "second"] and conv.dropped == []


def parse(tmp_path: Path, *convs: dict[str, object]) -> list[Conversation]:
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(list(convs)), encoding="utf-8")
    return list(iter_conversations(path))


def test_empty_conversation_is_reported_with_no_turns() -> None:
    """T6."""
    convs = list(iter_conversations(CLAUDE))
    assert [c.id for c in convs] == ["conv-blocks", "conv-empty", "conv-branch", "conv-notitle"]
    assert convs[1].turns == [] and convs[1].dropped == [] and convs[1].title == ""


def test_timestamps_are_instants_with_conversation_fallback() -> None:
    """T7: message times as instants; a null time takes the conversation's, and says so."""
    conv = conversations(CLAUDE)["conv-blocks"]
    assert instant(conv.turns[0].created_at) == instant("2024-05-01T10:00:01.123456+00:00")
    assert instant(conv.turns[1].created_at) == instant("2024-05-01T10:00:30.500Z")
    assert instant(conv.turns[2].created_at) == instant("2024-05-01T10:05:00Z")
    m7 = conv.turns[4]
    assert m7.message_id == "m7" and m7.created_at_fallback is True
    assert instant(m7.created_at) == instant("2024-05-01T09:59:00Z")
    assert [t.created_at_fallback for t in conv.turns] == [False, False, False, False, True, False]
    # an offset other than UTC, and no time anywhere
    notitle = conversations(CLAUDE)["conv-notitle"]
    assert notitle.title is None and notitle.created_at is None
    assert instant(notitle.turns[0].created_at) == instant("2024-05-04T06:00:00.250Z")
    assert notitle.turns[1].created_at is None and notitle.turns[1].created_at_fallback is False


def test_message_ids_are_the_uuids() -> None:
    """T8 (claude.ai)."""
    conv = conversations(CLAUDE)["conv-branch"]
    assert [t.message_id for t in conv.turns] == ["b0", "b2", "b3", "b4"]


def test_unknown_sender_and_null_message(tmp_path: Path) -> None:
    (conv,) = parse(
        tmp_path,
        {
            "uuid": "s",
            "created_at": 1_700_000_000,
            "chat_messages": [
                None,
                {"uuid": "sys", "sender": "system", "text": "x"},
                {"uuid": "h", "sender": "human", "text": "hello", "created_at": None},
            ],
        },
    )
    assert [(d.message_id, d.reason) for d in conv.dropped] == [("s#0", "null_message"), ("sys", "role_system")]
    assert turns(conv) == [("h", "user", "hello")]
    assert instant(conv.turns[0].created_at) == instant("2023-11-14T22:13:20Z")


def test_lone_surrogate_escape_is_replaced_not_fatal() -> None:
    """G6 spirit for Claude files: a lone ``\\ud800`` cannot be UTF-8; it becomes U+FFFD, pairs stay."""
    (conv,) = iter_conversations(DATA / "exports" / "claude" / "lone-surrogate.json")
    assert conv.turns[0].text == "lone \ufffd surrogate and pair \U0001f600"
    assert conv.repaired is True


# --- Anthropic Messages API shape ----------------------------------------------------------------


def test_api_shape_turns() -> None:
    """A2, A3, T8: string content, text blocks joined, tool_result-only user dropped, text + tool_result and
    text + tool_use keep their text; ids are '<conversation id>#<index>'."""
    conv = conversations(API)["api-0"]
    assert conv.shape == "anthropic-api"
    assert turns(conv) == [
        ("api-0#0", "user", "What should I pack for Lisbon?"),
        ("api-0#1", "assistant", "Let me check the weather."),
        ("api-0#3", "assistant", "Pack light: linen shirts and sandals."),
        ("api-0#4", "user", "And for the evenings?"),
        ("api-0#6", "assistant", "Bring a light jacket."),
        ("api-0#8", "user", "Here is my flight."),
    ]
    assert [(d.message_id, d.reason) for d in conv.dropped] == [
        ("api-0#2", "empty_after_extraction"),
        ("api-0#5", "empty_after_extraction"),
        ("api-0#7", "role_system"),
    ]
    for t in conv.turns:
        for leaked in ("Consider weather", "opaque", "Sunny", "ignored result", "Packing list", "TP1234"):
            assert leaked not in t.text


def test_api_system_is_metadata() -> None:
    """A1: a system string (or text blocks) is metadata, not a turn."""
    convs = conversations(API)
    assert convs["api-0"].extras == {"system": "You are a travel agent for Dana."}
    assert norm(convs["api-1"].extras["system"]) == "Be brief. Answer in English."
    assert convs["api-1"].turns == []
    assert [d.reason for d in convs["api-1"].dropped] == ["empty_after_extraction"] * 2


def test_api_document_and_image_blocks_are_attachments() -> None:
    """A4 and T3: blocks kept as they were, owned by the turn, or by nobody when the message was dropped."""
    found = attachments(conversations(API)["api-0"])
    assert [(a["kind"], a["message_id"], a["owner_turn_index"]) for a in found] == [
        ("image", "api-0#5", None),
        ("document", "api-0#5", None),
        ("document", "api-0#8", 5),
    ]
    assert found[0]["source"] == {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}
    assert found[1]["source"]["data"] == "Packing list v1\n- hat"  # type: ignore[index]
    assert found[2]["title"] == "flight.txt"


def test_shapes_are_detected_per_conversation(tmp_path: Path) -> None:
    path = tmp_path / "mixed.json"
    claude_ai = json.loads(CLAUDE.read_text(encoding="utf-8"))[3]
    api = json.loads(API.read_text(encoding="utf-8"))[0]
    path.write_text(json.dumps([api, claude_ai]), encoding="utf-8")
    assert [c.shape for c in iter_conversations(path)] == ["anthropic-api", "claude.ai"]


def test_chatgpt_file_gets_a_hint(tmp_path: Path) -> None:
    with pytest.raises(FormatError) as err:
        list(iter_conversations(DATA / "exports" / "chatgpt" / "conversations.json"))
    assert str(err.value) == (
        f"{DATA / 'exports' / 'chatgpt' / 'conversations.json'}: conversation 0 (byte 3): this is a ChatGPT export, "
        "not a Claude one (use type: chatgpt-export)"
    )
