"""The extract stage end to end against the fakes: chunks from a real Claude export → facts with every field
valid and their sources kept, packing of small chunks, failed chunks reported (never dropped), labelled extra
input, and the cache that makes a re-run or a resume call nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from vexrun.connectors.exports.chunking import ChunkOptions, build_records
from vexrun.connectors.exports.claude import iter_conversations
from vexrun.ids import content_hash, record_id
from vexrun.providers.llm.cascade import Cascade
from vexrun.providers.llm.openai_compat import GroqConfig, GroqProvider
from vexrun.stages.extract import FACT_TYPES, PROMPT_VERSION, ExtractStage
from vexrun.stages.llm_cache import LLMCache
from vexrun.stages.settings_extract import ExtractSettings
from vexrun.testing.fake_api import FakeAPIServer, Fault, chat_server
from vexrun.vmig import Batch, Record

KEY = "gsk_extract_test_key"
FAST: dict[str, Any] = {"retry_backoff": 0.02, "max_retry_wait": 0.2, "timeout": 5.0, "tpm": None, "rpm": None}


def message(uuid: str, sender: str, text: str, at: str, attachments: list[dict[str, Any]] | None = None) -> dict:
    return {
        "uuid": uuid,
        "sender": sender,
        "text": text,
        "content": [{"type": "text", "text": text}],
        "created_at": at,
        "attachments": attachments or [],
        "files": [],
    }


EXPORT = [
    {
        "uuid": "conv-db",
        "name": "Choosing a database",
        "created_at": "2024-05-03T09:00:00Z",
        "chat_messages": [
            message(
                "m1",
                "human",
                "I decided to use Postgres because it has pgvector. My sister Anna lives in Berlin.",
                "2024-05-03T09:00:00Z",
                [{"file_name": "notes.txt", "file_size": 30, "file_type": "txt", "extracted_content": "Budget: 5k."}],
            ),
            message("m2", "assistant", "Postgres is a fine choice. Is Anna a developer too?", "2024-05-03T09:00:05Z"),
            message("m3", "human", "I flew to Lisbon yesterday. Hi!", "2024-05-03T09:01:00Z"),
            message("m4", "assistant", "How was the flight?", "2024-05-03T09:01:05Z"),
        ],
    },
    {
        "uuid": "conv-tea",
        "name": None,
        "created_at": "2024-06-10T18:00:00Z",
        "chat_messages": [
            message("t1", "human", "I prefer green tea over coffee.", "2024-06-10T18:00:00Z"),
            message("t2", "assistant", "Noted.", "2024-06-10T18:00:02Z"),
        ],
    },
]


@pytest.fixture
def chunks(tmp_path: Path) -> list[Record]:
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(EXPORT))
    out: list[Record] = []
    for conv in iter_conversations(path):
        out.extend(build_records(conv, ChunkOptions(mode="exchange"), "claude-export"))
    return out


@pytest.fixture
def srv() -> Iterator[FakeAPIServer]:
    with chat_server(api_keys=[KEY], style="groq") as server:
        yield server
    assert not server.violations, server.violations


def cascade(srv: FakeAPIServer, cache: LLMCache | None = None, **kw: Any) -> Cascade:
    provider = GroqProvider(GroqConfig(base_url=srv.url("/v1"), api_keys=[KEY], **{**FAST, **kw}))
    return Cascade([provider], cache=cache).open()


def prompts(srv: FakeAPIServer) -> list[str]:
    return [r.json["messages"][1]["content"] for r in srv.requests if r.path.endswith("/chat/completions")]


def test_facts_have_every_field_valid_and_keep_their_sources(srv: FakeAPIServer, chunks: list[Record]) -> None:
    with cascade(srv) as c:
        result = ExtractStage(ExtractSettings(pack_tokens=0), c).extract(Batch(records=chunks))
    assert not result.failed and result.counts.chunks == 3 and result.counts.requests == 3
    facts = result.facts.records
    texts = [f.text for f in facts]
    assert texts == [
        "The user decided to use Postgres.",
        "It has pgvector.",
        "The user's sister Anna lives in Berlin.",
        "The user flew to Lisbon on 2024-05-02.",  # "yesterday", counted from the observed date
        "The user prefers green tea over coffee.",
    ]
    by_id = {c.id: c for c in chunks}
    for f in facts:
        m = f.metadata or {}
        chunk = by_id[str(m["source_chunk_id"])]
        cm = chunk.metadata or {}
        assert f.id == record_id(chunk.namespace, "extract", chunk.id, content_hash(f.text))
        assert m["type"] in FACT_TYPES and 0 <= float(m["importance"]) <= 1  # type: ignore[arg-type]
        assert isinstance(m["tags"], list) and 1 <= len(m["tags"]) <= 4
        assert all(isinstance(t, str) and t == t.lower() for t in m["tags"])
        assert isinstance(m["potential"], list) and len(m["potential"]) == 3
        assert m["attributed_to"] in ("user", "assistant") and isinstance(m["entities"], list)
        assert m["source_message_ids"] == cm["source_message_ids"]
        assert m["conversation_id"] == cm["conversation_id"]
        assert m["conversation_title"] == cm["conversation_title"]
        assert m["prompt_version"] == PROMPT_VERSION and m["extracted_by"] == "groq:llama-3.1-8b-instant"
        assert f.created_at == chunk.created_at and f.source_store == "claude-export" and f.modality == "text"
    decided, reason = facts[0], facts[1]
    assert (decided.metadata or {})["caused_by"] == [reason.id]
    assert result.relations == [(reason.id, decided.id)]
    assert (facts[0].metadata or {})["source_message_ids"] == ["m1", "m2"]
    assert (facts[4].metadata or {})["conversation_title"] is None


def test_the_prompt_says_title_date_and_who_said_what(srv: FakeAPIServer, chunks: list[Record]) -> None:
    with cascade(srv) as c:
        ExtractStage(ExtractSettings(pack_tokens=0), c).extract(Batch(records=chunks[:1]))
    (prompt,) = prompts(srv)
    assert "<conversation_title>Choosing a database</conversation_title>" in prompt
    assert "<observed_at>2024-05-03 (Friday)</observed_at>" in prompt
    assert "User: I decided to use Postgres" in prompt and "Assistant: Postgres is a fine choice" in prompt
    assert "<attachment" not in prompt  # attachments are off by default
    system = srv.requests[-1].json["messages"][0]["content"]
    assert "observed_at" in system and "exactly 3" in system and '"required"' in system


def test_attachments_and_custom_instructions_are_labelled(srv: FakeAPIServer, chunks: list[Record]) -> None:
    ctx = orjson.dumps({"user_profile": "I am Dana, a data engineer.", "user_instructions": "Be brief."}).decode()
    extra = [
        Record(id=f"ctx{i}", text="User: I like hiking.", metadata={"chunk_index": i, "user_editable_context": ctx})
        for i in range(2)
    ]
    with cascade(srv) as c:
        ExtractStage(ExtractSettings(pack_tokens=0, attachments=True), c).extract(Batch(records=chunks[:1] + extra))
    sent = prompts(srv)
    assert len(sent) == 3
    first = next(p for p in sent if "Postgres" in p)
    assert '<attachment name="notes.txt" shared_by="user">\nBudget: 5k.\n</attachment>' in first
    labelled = [p for p in sent if "<user_custom_instructions>" in p]
    assert len(labelled) == 1  # only the first chunk of a conversation, by default
    assert (
        "<user_custom_instructions>\nuser_profile: I am Dana, a data engineer.\nuser_instructions: Be brief."
        in (labelled[0])
    )


def test_small_chunks_share_a_call(srv: FakeAPIServer) -> None:
    records = [
        Record(id=f"r{i}", text=f"User: I bought plant number {i} today.", created_at=f"2024-01-0{i + 1}T00:00:00Z")
        for i in range(6)
    ]
    records.append(Record(id="big", text="User: " + "I like long walks in the park. " * 400))
    with cascade(srv) as c:
        result = ExtractStage(ExtractSettings(pack_tokens=1500, pack_max_chunks=4), c).extract(Batch(records=records))
    assert result.counts.requests == 3 and srv.stats.requests == 3  # 4 + 2 small chunks, then the big one alone
    first = next(p for p in prompts(srv) if "number 0" in p)  # (the calls run concurrently, in any order)
    assert first.count("<chunk id=") == 4 and '<chunk id="c4">' in first and "number 3" in first
    for f in result.facts.records:
        src = str((f.metadata or {})["source_chunk_id"])
        n = re.search(r"number (\d+)", f.text or "")
        if n:
            assert src == f"r{n.group(1)}"
            assert f.created_at == f"2024-01-0{int(n.group(1)) + 1}T00:00:00Z"
    assert sum(1 for f in result.facts.records if (f.metadata or {})["source_chunk_id"] == "big") == 1


def test_failed_chunks_are_reported_with_the_reason(srv: FakeAPIServer, chunks: list[Record]) -> None:
    srv.fail(Fault.server_error(503, skip=1, times=None))  # the first call works, every other fails
    with cascade(srv, max_retries=1) as c:
        result = ExtractStage(ExtractSettings(pack_tokens=0), c).extract(Batch(records=chunks))
    assert result.counts.failed == len(result.failed) == 2
    assert set(result.failed) | {str((f.metadata or {})["source_chunk_id"]) for f in result.facts.records} == {
        c.id for c in chunks
    }
    for reason in result.failed.values():
        assert reason.startswith("extract: every provider failed: groq: ") and "HTTP 503" in reason


def test_a_pack_that_fails_fails_each_of_its_chunks(srv: FakeAPIServer, chunks: list[Record]) -> None:
    srv.fail(Fault.schema_invalid(times=None))
    with cascade(srv) as c:
        result = ExtractStage(ExtractSettings(), c).extract(Batch(records=chunks))
    assert result.counts.requests == 1 and set(result.failed) == {c.id for c in chunks}
    assert not result.facts.records
    assert all("even after one repair" in r for r in result.failed.values())


def test_importance_floor_and_fact_limit(srv: FakeAPIServer, chunks: list[Record]) -> None:
    with cascade(srv) as c:
        result = ExtractStage(ExtractSettings(min_importance=0.5, max_facts_per_chunk=1), c).extract(
            Batch(records=chunks)
        )
    facts = result.facts.records
    assert all(float((f.metadata or {})["importance"]) >= 0.5 for f in facts)  # type: ignore[arg-type]
    per_chunk = [str((f.metadata or {})["source_chunk_id"]) for f in facts]
    assert len(per_chunk) == len(set(per_chunk))
    assert result.counts.below_importance >= 1 and result.counts.over_limit >= 1
    assert [f.text for f in facts][0] == "The user decided to use Postgres."  # the most important one stays


def test_records_without_text_are_skipped(srv: FakeAPIServer) -> None:
    with cascade(srv) as c:
        result = ExtractStage(ExtractSettings(), c).extract(
            Batch(records=[Record(id="v", text=None), Record(id="e", text=" ")])
        )
    assert result.counts.skipped == 2 and srv.stats.requests == 0 and not result.failed


def test_a_rerun_or_a_resume_calls_nothing(srv: FakeAPIServer, chunks: list[Record], tmp_path: Path) -> None:
    progress: list[tuple[int, int]] = []
    with LLMCache(tmp_path / "llm.sqlite") as cache, cascade(srv, cache) as c:
        first = ExtractStage(ExtractSettings(), c, on_progress=lambda d, t: progress.append((d, t))).extract(
            Batch(records=chunks)
        )
    assert progress == [(1, 1)]
    calls = srv.stats.requests
    with LLMCache(tmp_path / "llm.sqlite") as cache, cascade(srv, cache) as c:  # a new process, the same state
        again = ExtractStage(ExtractSettings(), c).extract(Batch(records=chunks))
        usage = c.usage()
    assert srv.stats.requests == calls
    assert [f.id for f in again.facts.records] == [f.id for f in first.facts.records]
    assert again.counts.cached == again.counts.requests and again.counts.calls == 0
    assert usage["providers"]["groq"]["cached"] == again.counts.requests


def test_failed_chunks_succeed_on_retry_once_the_provider_recovers(
    srv: FakeAPIServer, chunks: list[Record], tmp_path: Path
) -> None:
    srv.fail(Fault.server_error(503, times=2))
    with LLMCache(tmp_path / "llm.sqlite") as cache, cascade(srv, cache, max_retries=1) as c:
        stage = ExtractStage(ExtractSettings(), c)
        failed = stage.extract(Batch(records=chunks))
        assert set(failed.failed) == {c.id for c in chunks}
        retried = stage.extract(Batch(records=[c for c in chunks if c.id in failed.failed]))
    assert not retried.failed and len(retried.facts.records) == 5
