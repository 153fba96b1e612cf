"""The extract-mode stages chained the way the runner drives them: extract (fake Groq) → score → dedup (through the
real embed stage and its cache) → fact graph, over two batches, with a checkpoint-style state round trip."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from vexrun.cache import EmbedCache
from vexrun.connectors.exports.chunking import ChunkOptions, build_records
from vexrun.connectors.exports.claude import iter_conversations
from vexrun.providers.llm.cascade import Cascade
from vexrun.providers.llm.openai_compat import GroqConfig, GroqProvider
from vexrun.stages.dedup import DedupStage
from vexrun.stages.embed import EmbedStage
from vexrun.stages.extract import FACT_TYPES, ExtractStage
from vexrun.stages.factgraph import FactGraphStage
from vexrun.stages.llm_cache import LLMCache
from vexrun.stages.score import ScoreStage
from vexrun.stages.settings_extract import DedupSettings, ExtractSettings, FactGraphSettings, ScoreSettings
from vexrun.testing.fake_api import chat_server
from vexrun.testing.fake_embedder import FakeEmbedder, FakeEmbedderConfig
from vexrun.vmig import Batch, Record

KEY = "gsk_pipeline_key_1"


def conversation(cid: str, when: str, lines: list[str]) -> dict[str, object]:
    msgs = []
    for i, line in enumerate(lines):
        sender = "human" if i % 2 == 0 else "assistant"
        msgs.append(
            {
                "uuid": f"{cid}-m{i}",
                "sender": sender,
                "text": line,
                "content": [{"type": "text", "text": line}],
                "created_at": when,
                "attachments": [],
                "files": [],
            }
        )
    return {"uuid": cid, "name": f"Chat {cid}", "created_at": when, "chat_messages": msgs}


def chunks_of(tmp_path: Path) -> list[Record]:
    export = [
        conversation(
            "c1",
            "2025-01-02T10:00:00Z",
            [
                "I decided to use Postgres because it has pgvector. My sister Anna lives in Berlin.",
                "Nice.",
                "I prefer green tea over coffee.",
                "Noted.",
            ],
        ),
        conversation(
            "c2",
            "2025-01-20T10:00:00Z",
            ["I prefer green tea over coffee.", "Sure.", "My sister Anna visited Lisbon with Milo.", "Fun."],
        ),
    ]
    path = tmp_path / "conversations.json"
    path.write_text(json.dumps(export))
    out: list[Record] = []
    for conv in iter_conversations(path):
        out.extend(build_records(conv, ChunkOptions(mode="exchange"), "claude-export"))
    return out


def test_extract_score_dedup_graph(tmp_path: Path) -> None:
    chunks = chunks_of(tmp_path)
    assert len(chunks) == 4
    embedder = FakeEmbedder(FakeEmbedderConfig(dims=32))
    embed_cache = EmbedCache(tmp_path / "embed.sqlite")
    embed_stage = EmbedStage(embedder, embed_cache)

    def embed(batch: Batch) -> Batch:
        return embed_stage.embed(batch)[0]

    reference = datetime(2025, 2, 1, tzinfo=UTC)
    out: list[Record] = []
    edges = []
    with chat_server(api_keys=[KEY]) as srv, LLMCache(tmp_path / "llm.sqlite") as llm_cache:
        provider = GroqProvider(GroqConfig(base_url=srv.url("/v1"), api_keys=[KEY], tpm=None, rpm=None))
        with Cascade([provider], cache=llm_cache) as cascade:
            extract = ExtractStage(ExtractSettings(pack_tokens=0), cascade)
            score = ScoreStage(ScoreSettings(), reference=reference)
            dedup = DedupStage(DedupSettings(), tmp_path / "dedup", embed=embed)
            dedup.reset()
            graph = FactGraphStage(FactGraphSettings())
            states = {}
            for part in (chunks[:2], chunks[2:]):  # two runner batches: one conversation each
                result = extract.extract(Batch(records=part))
                assert not result.failed
                facts = score.apply(result.facts)
                kept = dedup.dedup(facts)
                edges += graph.link(kept.batch, exclude=set(kept.updated))
                out += kept.batch.records
                states = {"score": score.state(), "dedup": dedup.state(), "graph": graph.state()}
            dedup.close()
        assert not srv.violations
    embed_cache.close()

    final = {r.id: r for r in out}  # the later copy of a fact sent again wins, as an upsert does
    texts = sorted(r.text or "" for r in final.values())
    assert texts.count("The user prefers green tea over coffee.") == 1  # said in both conversations
    tea = next(r for r in final.values() if r.text == "The user prefers green tea over coffee.")
    tm = tea.metadata or {}
    assert len(tm["merged_ids"]) == 1 and tm["duplicates"] == 1  # type: ignore[arg-type]
    assert set(tm["source_message_ids"]) == {"c1-m2", "c1-m3", "c2-m0", "c2-m1"}  # type: ignore[arg-type]
    for r in final.values():
        m = r.metadata or {}
        assert m["type"] in FACT_TYPES and len(m["potential"]) == 3  # type: ignore[arg-type]
        assert r.score is not None and 0 < r.score <= 1
        assert r.model == embedder.model_id and r.dims == 32
    types = {e.type for e in edges}
    assert types == {"temporal", "tag", "entity", "causal"}
    known = set(final)
    assert all(e.src in known and e.dst in known for e in edges)
    anna = [e for e in edges if e.type == "entity" and "anna" in (e.metadata or {}).get("entities", [])]
    assert anna, "facts naming Anna in two conversations are linked"
    assert states["dedup"]["spaces"][""]["rows"] == len(final)
    assert states["score"]["reference"].startswith("2025-02-01")
