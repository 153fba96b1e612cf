"""IMPORT_CONTRACT.md for the chatgpt-export source in 'turn' mode: G1–G6, with T1–T8 as they show here."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from pathlib import Path

import pytest

from conftest import DATA
from vexrun.connectors.exports.chatgpt import canonical_path, iter_conversations
from vexrun.connectors.exports.common import Conversation
from vexrun.errors import FormatError

CHATGPT = DATA / "exports" / "chatgpt" / "conversations.json"


def norm(text: str) -> str:
    return " ".join(text.split())


def instant(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def conversations(path: Path = CHATGPT) -> dict[str, Conversation]:
    return {c.id: c for c in iter_conversations(path)}


def turns(conv: Conversation) -> list[tuple[str, str, str]]:
    return [(t.message_id, t.role, norm(t.text)) for t in conv.turns]


GARDEN = [
    ("u1", "user", "Help me plan a vegetable garden."),
    ("msg-a1", "assistant", "Start with tomatoes, beans and lettuce."),
    ("a2", "assistant", "Frost is rare in Porto. Plant in March."),
    ("u4", "user", "What is this plant?"),
    ("a4", "assistant", "It looks like basil."),
    ("u5", "user", "Thanks \u2014 I\u2019ll keep it on the balcony."),
]


def test_canonical_thread_from_current_node() -> None:
    """G1, T1, T2, T8: the walk from current_node, reversed; ids are message.id (msg-a1 differs from its
    node id); consecutive assistant messages stay separate turns."""
    conv = conversations()["conv-garden"]
    assert turns(conv) == GARDEN
    assert [t.index for t in conv.turns] == list(range(len(GARDEN)))


def test_abandoned_newer_branch_produces_nothing() -> None:
    """G1: the regeneration a1x (and its follow-up) is newer than a1 but not on the path."""
    conv = conversations()["conv-garden"]
    assert all("ABANDONED" not in t.text for t in conv.turns)
    assert {d.message_id for d in conv.dropped if d.reason == "not_on_current_path"} == {"a1x", "u2x"}


def test_mapping_key_order_does_not_matter(tmp_path: Path) -> None:
    """G1: shuffle the mapping's keys a few ways; the turns stay the same."""
    data = json.loads(CHATGPT.read_text(encoding="utf-8"))
    rng = random.Random(11)
    for _ in range(5):
        items = list(data[0]["mapping"].items())
        rng.shuffle(items)
        data[0]["mapping"] = dict(items)
        path = tmp_path / "shuffled.json"
        path.write_text(json.dumps(data), encoding="utf-8")
        assert turns(conversations(path)["conv-garden"]) == GARDEN


def test_drop_reasons() -> None:
    """G2 (null root, client-created-root), G3 (hidden system, user_editable_context), G4 (role, recipient,
    content types), G5/T3 (image-only message)."""
    conv = conversations()["conv-garden"]
    assert sorted((d.message_id, d.reason) for d in conv.dropped) == sorted(
        [
            ("client-created-root", "null_message"),
            ("sys", "visually_hidden"),
            ("uec", "visually_hidden"),
            ("think", "content_type_thoughts"),
            ("recap", "content_type_reasoning_recap"),
            ("code", "recipient_python"),
            ("exec", "role_tool"),
            ("search", "recipient_web.run"),
            ("browse", "role_tool"),
            ("codeall", "content_type_code"),
            ("u3", "empty_after_extraction"),
            ("a1x", "not_on_current_path"),
            ("u2x", "not_on_current_path"),
        ]
    )
    for t in conv.turns:
        for leaked in ("print(2 * 21)", "42", "frost: none", "Thought for", "thinking", "spoken", "nurse"):
            assert leaked not in t.text


def test_user_editable_context_is_kept_as_metadata_not_a_turn() -> None:
    """G3 plus the contract's note: the custom instructions are the user's own words, kept exactly."""
    conv = conversations()["conv-garden"]
    assert json.loads(conv.extras["user_editable_context"]) == {
        "user_profile": "I am a nurse in Porto; I garden on weekends.",
        "user_instructions": "Answer briefly, in metric units.",
    }
    assert set(conv.extras) == {"user_editable_context"}


def test_parts_and_image_pointers() -> None:
    """G5: string parts joined; dict parts are attachments of the message; the image-only message is dropped
    but its pointer is reported with owner_turn_index null."""
    conv = conversations()["conv-garden"]
    assert conv.turns[2].text.split("\n\n") == ["Frost is rare in Porto.", "Plant in March."]
    found = [json.loads(a.encode()) for a in conv.attachments]
    assert [(a["kind"], a["message_id"], a["owner_turn_index"]) for a in found] == [
        ("part", "a2", 2),
        ("image", "u3", None),
        ("image", "u4", 3),
    ]
    assert found[1]["asset_pointer"] == "file-service://file-Abc123"
    assert found[1]["size_bytes"] == 182736 and found[1]["metadata"] == {"dalle": None, "sanitized": True}
    assert found[2]["asset_pointer"] == "sediment://file_00000000777"
    assert [len(t.attachments) for t in conv.turns] == [0, 0, 1, 1, 0, 0]


def test_float_epochs_and_null_create_time() -> None:
    """G6, T7: float epochs within 1 ms; a null message time falls back to the conversation's."""
    conv = conversations()["conv-garden"]
    expected = [1700000000.5, 1700000010.25, 1700000020, 1700000101, None, 1700000200]
    for turn, epoch in zip(conv.turns, expected, strict=True):
        when = instant(turn.created_at)
        assert when is not None
        if epoch is None:
            assert turn.created_at_fallback is True
            assert abs(when.timestamp() - 1699999999.875) < 0.001
        else:
            assert turn.created_at_fallback is False
            assert abs(when.timestamp() - epoch) < 0.001
    assert instant(conv.created_at) == datetime.fromtimestamp(1699999999.875, UTC)


def test_empty_conversation_and_null_title() -> None:
    """T6, G6: a conversation of only a root and a hidden system message has no turns; a null title and
    null times do not crash."""
    convs = conversations()
    assert list(convs) == ["conv-garden", "conv-empty", "conv-nocurrent"]
    assert convs["conv-empty"].turns == []
    assert sorted(d.reason for d in convs["conv-empty"].dropped) == ["null_message", "visually_hidden"]
    nocurrent = convs["conv-nocurrent"]
    assert nocurrent.title is None and nocurrent.created_at is None
    assert nocurrent.turns[0].created_at is None and nocurrent.turns[0].created_at_fallback is False


def test_without_current_node_the_newest_branch_is_followed() -> None:
    conv = conversations()["conv-nocurrent"]
    assert turns(conv) == [("q", "user", "Best time to run?"), ("new", "assistant", "Early morning, before 8.")]
    assert ("old", "not_on_current_path") in [(d.message_id, d.reason) for d in conv.dropped]


def test_canonical_path_survives_cycles_and_dangling_parents() -> None:
    cyclic = {"a": {"parent": "b", "children": []}, "b": {"parent": "a", "children": []}}
    assert canonical_path(cyclic, "a") == ["b", "a"]
    dangling = {"x": {"parent": "missing", "children": ["y"]}, "y": {"parent": "x", "children": []}}
    assert canonical_path(dangling, "y") == ["x", "y"]
    assert canonical_path(dangling, None) == ["x", "y"]
    assert canonical_path({}, None) == []


def test_recipient_absent_or_all_is_a_turn(tmp_path: Path) -> None:
    def node(nid: str, parent: str | None, **message: object) -> dict[str, object]:
        msg = {"id": nid, "author": {"role": "user"}, "content": {"content_type": "text", "parts": [nid]}, **message}
        return {"id": nid, "parent": parent, "children": [], "message": msg}

    conv = {
        "id": "r",
        "current_node": "c",
        "mapping": {
            "a": node("a", None),
            "b": node("b", "a", recipient="all"),
            "c": node("c", "b", recipient="bio", author={"role": "assistant"}),
        },
    }
    path = tmp_path / "c.json"
    path.write_text(json.dumps([conv]), encoding="utf-8")
    (got,) = iter_conversations(path)
    assert [t.text for t in got.turns] == ["a", "b"]
    assert [(d.message_id, d.reason) for d in got.dropped] == [("c", "recipient_bio")]


def test_claude_file_gets_a_hint() -> None:
    path = DATA / "exports" / "claude" / "conversations.json"
    with pytest.raises(FormatError) as err:
        list(iter_conversations(path))
    assert str(err.value) == (
        f"{path}: conversation 0 (byte 3): this is a Claude export, not a ChatGPT one (use type: claude-export)"
    )
