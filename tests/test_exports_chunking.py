"""Chunk modes on top of the turns: turn, exchange (with its edge cases), conversation windows, smart, the
sender filter, and the records they make (text format, metadata, ids)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec
import pytest
from pydantic import ValidationError

from conftest import DATA
from vexrun.connectors.exports import chatgpt, claude
from vexrun.connectors.exports.chatgpt import ChatGPTExportConfig
from vexrun.connectors.exports.chunking import ChunkOptions, build_records, chunk_turns
from vexrun.connectors.exports.claude import ClaudeExportConfig
from vexrun.connectors.exports.common import Conversation, Role
from vexrun.ids import content_hash, record_id
from vexrun.vmig.model import VmigRecord


def conversation(*turns: tuple[Role, str], created: str | None = "2024-01-01T00:00:00.000000Z") -> Conversation:
    conv = Conversation(index=0, offset=1, id="c", title="T", created_at=created, shape="claude.ai")
    for k, (role, text) in enumerate(turns):
        conv.add_turn(role, text, f"m{k}", f"2024-01-01T00:00:{k:02d}.000000Z", [])
    return conv


def texts(conv: Conversation, **options: object) -> list[str]:
    return [c.text for c in chunk_turns(conv, ChunkOptions(**options))]  # type: ignore[arg-type]


def message_ids(conv: Conversation, **options: object) -> list[list[str]]:
    return [[t.message_id for t in c.turns] for c in chunk_turns(conv, ChunkOptions(**options))]  # type: ignore[arg-type]


U, A = "user", "assistant"


def test_turn_mode_is_the_turn_text_exactly() -> None:
    conv = conversation((U, "hi  there\n"), (A, "hello"))
    assert texts(conv, mode="turn") == ["hi  there\n", "hello"]


def test_exchange_groups_questions_with_their_answers() -> None:
    conv = conversation((U, "q1"), (A, "a1"), (A, "a1 more"), (U, "q2"), (A, "a2"))
    assert texts(conv, mode="exchange") == [
        "User: q1\n\nAssistant: a1\n\nAssistant: a1 more",
        "User: q2\n\nAssistant: a2",
    ]


def test_exchange_edge_cases() -> None:
    """Leading assistant turns are a record of their own; consecutive user turns share the answer that
    follows; unanswered user turns at the end are a record of their own."""
    conv = conversation((A, "welcome"), (A, "ask me"), (U, "q1"), (U, "q1 again"), (A, "a1"), (U, "q2"), (U, "q3"))
    assert message_ids(conv, mode="exchange") == [["m0", "m1"], ["m2", "m3", "m4"], ["m5", "m6"]]


def test_sender_filter_in_each_mode() -> None:
    conv = conversation((U, "q1"), (A, "a1"), (U, "q2"), (A, "a2"), (A, "a2b"))
    assert texts(conv, mode="turn", sender="user") == ["q1", "q2"]
    assert texts(conv, mode="turn", sender="assistant") == ["a1", "a2", "a2b"]
    # exchange boundaries come from the whole conversation: one record per answer, not one for all of them
    assert texts(conv, mode="exchange", sender="assistant") == ["Assistant: a1", "Assistant: a2\n\nAssistant: a2b"]
    assert texts(conv, mode="exchange", sender="user") == ["User: q1", "User: q2"]
    assert texts(conv, mode="conversation", sender="user") == ["User: q1\n\nUser: q2"]


def test_conversation_mode_is_one_record_until_it_needs_windows() -> None:
    conv = conversation(*[(U if k % 2 == 0 else A, f"t{k}") for k in range(6)])
    assert message_ids(conv, mode="conversation") == [[f"m{k}" for k in range(6)]]
    long = conversation(*[(U if k % 2 == 0 else A, f"t{k}") for k in range(25)])
    windows = message_ids(long, mode="conversation", window_turns=10, window_overlap=2)
    assert [(w[0], w[-1], len(w)) for w in windows] == [("m0", "m9", 10), ("m8", "m17", 10), ("m16", "m24", 9)]
    no_overlap = message_ids(long, mode="conversation", window_turns=10, window_overlap=0)
    assert [len(w) for w in no_overlap] == [10, 10, 5] and sum(no_overlap, []) == [f"m{k}" for k in range(25)]


def test_windows_respect_the_character_budget() -> None:
    conv = conversation((U, "a" * 90), (A, "b" * 90), (U, "c" * 500), (A, "d" * 90), (U, "e" * 90))
    chunks = chunk_turns(conv, ChunkOptions(mode="conversation", window_chars=220, window_turns=50, window_overlap=1))
    # an overlap turn that leaves no room for a new one is left out (no window of old turns only)
    assert [[t.message_id for t in c.turns] for c in chunks] == [["m0", "m1"], ["m2"], ["m3", "m4"]]
    for c in chunks:  # only a single turn longer than the budget may exceed it
        assert len(c.text) <= 220 or len(c.turns) == 1


def test_smart_picks_exchange_for_short_and_windows_for_long() -> None:
    short = conversation(*[(U if k % 2 == 0 else A, f"t{k}") for k in range(6)])
    long = conversation(*[(U if k % 2 == 0 else A, f"t{k}") for k in range(30)])
    assert {c.mode for c in chunk_turns(short, ChunkOptions(mode="smart", smart_max_turns=20))} == {"exchange"}
    long_chunks = chunk_turns(long, ChunkOptions(mode="smart", smart_max_turns=20, window_turns=12))
    assert {c.mode for c in long_chunks} == {"conversation"} and len(long_chunks) == 3
    assert {c.mode for c in chunk_turns(short, ChunkOptions(mode="smart", smart_max_turns=6))} == {"conversation"}


def test_labels_are_configurable() -> None:
    conv = conversation((U, "I moved to Porto."), (A, "Noted."))
    opts = ChunkOptions(mode="exchange", user_label="Dana", assistant_label="Claude")
    assert [c.text for c in chunk_turns(conv, opts)] == ["Dana: I moved to Porto.\n\nClaude: Noted."]


def test_empty_conversation_makes_no_records() -> None:
    """T6."""
    empty = Conversation(index=0, offset=0, id="e", title=None, created_at=None, shape="chatgpt")
    for mode in ("turn", "exchange", "conversation", "smart"):
        assert build_records(empty, ChunkOptions(mode=mode), "chatgpt-export") == []  # type: ignore[arg-type]
    only_users = conversation((U, "q"))
    assert build_records(only_users, ChunkOptions(mode="exchange", sender="assistant"), "x") == []


def test_record_fields_and_metadata() -> None:
    (conv,) = [c for c in claude.iter_conversations(DATA / "exports" / "claude" / "conversations.json") if c.index == 0]
    records = build_records(conv, ChunkOptions(mode="exchange", namespace="dana"), "claude-export")
    assert [r.text for r in records] == [
        "User: Plan a three-day trip to Lisbon for me.\n\nAssistant: Here is a plan.\n\nDay 1: Alfama and the castle.",
        "User: Thanks! Also book a fado evening.\n\nUser: The fado place should be in Mouraria."
        "\n\nAssistant: Booked: Maria da Mouraria, Friday 21:00.",
        "User: Use the artifact above as my packing list.",
    ]
    first, second, third = records
    assert first.namespace == "dana" and first.source_store == "claude-export" and first.modality == "text"
    assert first.created_at == "2024-05-01T10:00:01.123456Z"
    meta = first.metadata or {}
    assert {k: meta[k] for k in meta if k not in ("attachments", "unowned_attachments")} == {
        "conversation_id": "conv-blocks",
        "conversation_title": "Lisbon trip",
        "conversation_created_at": "2024-05-01T09:59:00.000000Z",
        "export_format": "claude.ai",
        "role": "mixed",
        "roles": ["user", "assistant"],
        "turn_index": 0,
        "turn_count": 2,
        "source_message_ids": ["m0", "m1"],
        "chunk_mode": "exchange",
        "chunk_index": 0,
        "summary": "**Conversation overview** The user planned a trip to Lisbon.",
    }
    assert [json.loads(a)["file_name"] for a in meta["attachments"]] == ["", "budget.csv", "itinerary.pdf"]  # type: ignore[union-attr]
    assert (second.metadata or {})["turn_index"] == 2 and (second.metadata or {})["roles"] == [U, U, A]
    # the whitespace-only message m8 (dropped) carried photo.jpg: no turn owns it (T3), so it is reported on the
    # conversation's first record, never on another message's record
    assert "attachments" not in (third.metadata or {})
    orphan = [json.loads(a) for a in meta["unowned_attachments"]]  # type: ignore[union-attr]
    assert [(a["file_name"], a["owner_turn_index"]) for a in orphan] == [("photo.jpg", None)]
    assert first.id == record_id("dana", "claude-export", "conv-blocks", "m0,m1", content_hash(first.text))


def test_metadata_is_scalars_and_flat_lists_as_vmig_requires() -> None:
    for module, path in (
        (claude, DATA / "exports" / "claude" / "conversations.json"),
        (claude, DATA / "exports" / "claude" / "api.json"),
        (chatgpt, DATA / "exports" / "chatgpt" / "conversations.json"),
    ):
        for conv in module.iter_conversations(path):  # type: ignore[attr-defined]
            for mode in ("turn", "exchange", "conversation"):
                for rec in build_records(conv, ChunkOptions(mode=mode), "s"):  # type: ignore[arg-type]
                    for value in (rec.metadata or {}).values():
                        items = value if isinstance(value, list) else [value]
                        assert all(v is None or isinstance(v, str | int | float | bool) for v in items)
                    line = msgspec.json.encode({"id": rec.id, "text": rec.text, "metadata": rec.metadata})
                    msgspec.json.decode(line, type=VmigRecord)


def test_fallback_time_is_flagged_on_the_record() -> None:
    (conv,) = [c for c in claude.iter_conversations(DATA / "exports" / "claude" / "conversations.json") if c.index == 0]
    records = build_records(conv, ChunkOptions(mode="turn"), "claude-export")
    flagged = [r for r in records if (r.metadata or {}).get("created_at_fallback") is True]
    assert [r.text for r in flagged] == ["Booked: Maria da Mouraria, Friday 21:00."]
    assert flagged[0].created_at == "2024-05-01T09:59:00.000000Z"


def test_conversation_metadata_first_only() -> None:
    garden = next(chatgpt.iter_conversations(DATA / "exports" / "chatgpt" / "conversations.json"))
    every = build_records(garden, ChunkOptions(mode="turn"), "chatgpt-export")
    first = build_records(garden, ChunkOptions(mode="turn", conversation_metadata="first"), "chatgpt-export")
    assert all("user_editable_context" in (r.metadata or {}) for r in every)
    assert ["user_editable_context" in (r.metadata or {}) for r in first] == [True] + [False] * (len(first) - 1)


def test_ids_are_deterministic_and_independent_of_the_path(tmp_path: Path) -> None:
    source = DATA / "exports" / "chatgpt" / "conversations.json"
    copy = tmp_path / "elsewhere" / "renamed.json"
    copy.parent.mkdir()
    shutil.copy(source, copy)

    def ids(path: Path, namespace: str | None = None) -> list[str]:
        opts = ChunkOptions(mode="smart", namespace=namespace)
        return [r.id for c in chatgpt.iter_conversations(path) for r in build_records(c, opts, "chatgpt-export")]

    first = ids(source)
    assert first == ids(source) == ids(copy)
    assert len(set(first)) == len(first)
    assert set(ids(source, "work")).isdisjoint(first)


def test_config_validation() -> None:
    cfg = ClaudeExportConfig.model_validate({"type": "claude", "path": "x.json"})
    assert (cfg.chunk, cfg.sender, cfg.smart_max_turns, cfg.include_attachments) == ("smart", "both", 20, False)
    for alias in ("chatgpt-export", "chatgpt", "openai-export"):
        assert ChatGPTExportConfig.model_validate({"type": alias, "path": "x"}).type == alias
    with pytest.raises(ValidationError, match="window_overlap must be smaller than window_turns"):
        ClaudeExportConfig.model_validate({"type": "claude", "path": "x", "window_turns": 2, "window_overlap": 2})
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        ClaudeExportConfig.model_validate({"type": "claude", "path": "x", "chunks": "turn"})
    with pytest.raises(ValidationError):
        ChatGPTExportConfig.model_validate({"type": "claude", "path": "x"})
    with pytest.raises(ValidationError):
        cfg.model_copy().__setattr__("path", "y")  # frozen
    for field in ClaudeExportConfig.model_fields.values():
        assert field.description
