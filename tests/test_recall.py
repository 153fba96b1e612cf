"""``vexrun.recall.Memory`` over real local stores, and the read-back protocol of the sqlite sink it stands on
(``fetch``, ``delete``, ``namespaces``, ``count``, after ``connect()`` and after ``open()`` + writes)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from recall_store import DIMS, PRIYA, build_store, texts

from conftest import ROOT
from vexrun.connectors.base import Edge, RunContext
from vexrun.connectors.sqlite.search import search as local_search
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
from vexrun.errors import InvalidInput, UsageError, VexrunError
from vexrun.recall import Memory, memory_id
from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("recall"))


@pytest.fixture
def path(built: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "memory.db"
    copy.write_bytes(built.read_bytes())
    return copy


def test_importing_vexrun_and_recall_loads_no_agent_framework() -> None:
    code = (
        "import sys, vexrun, vexrun.recall, vexrun.integrations\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "{'langchain', 'langchain_core', 'langgraph', 'llama_index', 'mcp', 'torch', 'qdrant_client', 'chromadb'})\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == ""


# -- the sqlite sink's read-back protocol ------------------------------------------------------------------------


def _sink(path: Path) -> SqliteSink:
    return SqliteSink(SqliteSinkConfig(path=str(path)), RunContext(state_dir=path.parent, recipe_dir=path.parent))


def test_sqlite_read_back_after_connect(path: Path) -> None:
    work = list(texts("work"))
    sink = _sink(path)
    sink.connect()
    try:
        batch = sink.fetch([work[2], "missing", work[0], work[2]])
        assert [r.id for r in batch.records] == [work[2], work[0]]  # the order asked, missing and repeated left out
        assert batch.records[1].text == PRIYA and batch.records[1].namespace == "work"
        assert batch.records[1].metadata == {
            "type": "entity",
            "importance": 0.8,
            "tags": ["team", "ownership"],
            "source": "claude-export",
            "pinned": False,
        }
        assert batch.vectors is not None and batch.vectors[1].tobytes() == fake_vector(PRIYA, DIMS).tobytes()
        assert [r.id for r in sink.fetch(work[:2], namespace="travel").records] == []
        assert sink.namespaces() == ["personal", "travel", "work"]
        assert (sink.count(), sink.count("work"), sink.count("nowhere")) == (22, 8, 0)
        assert sink.embedder_spec() == {
            "type": "fake",
            "dims": DIMS,
            "model": "fake",
            "batch_size": 64,
            "delay_ms": 0.0,
        }

        assert sink.delete([work[0], "missing"], namespace="travel") == 0  # not in that namespace
        assert sink.delete([work[0], "missing", work[0]]) == 1
        assert sink.count() == 21 and sink.fetch([work[0]]).records == []
        # the full-text index follows: BM25 no longer finds the deleted text, and FTS5 says it is consistent
        assert local_search(path, "ingestion", mode="bm25") == []
    finally:
        sink.close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO records_fts(records_fts, rank) VALUES('integrity-check', 1)")


def test_sqlite_read_back_after_a_run_and_edges_follow_deletes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    sink = _sink(path)
    sink.open(None)
    try:
        sink.prepare(4, "m")
        recs = [Record(id=f"r{i}", text=f"text {i}", namespace=None if i == 0 else "ns") for i in range(3)]
        sink.write(Batch.from_records(recs, [np.full(4, i + 1, dtype=np.float32) for i in range(3)]))
        sink.write_edges([Edge("r0", "r1", "tag"), Edge("r1", "r2", "tag"), Edge("r0", "r2", "tag")])
        assert sink.namespaces() == ["ns"] and sink.count() == 3 and sink.count("ns") == 2
        assert [r.id for r in sink.fetch(["r2", "r0"]).records] == ["r2", "r0"]
        assert sink.delete(["r1"]) == 1
        with sqlite3.connect(path) as db:
            assert db.execute("SELECT src, dst FROM edges").fetchall() == [("r0", "r2")]
    finally:
        sink.close()


# -- Memory --------------------------------------------------------------------------------------------------


def test_search_get_namespaces_over_a_built_store(path: Path) -> None:
    with Memory.open(path) as memory:
        assert memory.recorded_embedder() is not None and memory.embedder.model_id == f"fake-{DIMS}"
        hits = memory.search("who runs the nightly ingestion", k=3, namespace="work")
        assert hits[0].text == PRIYA and [h.rank for h in hits] == [1, 2, 3]
        assert all(h.namespace == "work" for h in hits)
        exact = memory.search(vector=fake_vector(PRIYA, DIMS), k=1)[0]
        assert exact.text == PRIYA and exact.cosine == pytest.approx(1.0, abs=1e-6)
        assert memory.namespaces() == ["personal", "travel", "work"] and memory.count() == 22
        assert [i.id for i in memory.get([exact.id, "missing"])] == [exact.id]
        assert memory.search("anything", namespace="nowhere") == []  # an empty namespace: nothing, not an error


def test_filters_widen_until_k_match(path: Path) -> None:
    with Memory.open(path) as memory:
        for i in range(120):
            memory.put(f"filler memory {i}", namespace="bulk", metadata={"rare": i in (7, 93)})
        found = memory.search(vector=fake_vector("unrelated", DIMS), k=2, namespace="bulk", filter={"rare": True})
        assert sorted(h.text or "" for h in found) == ["filler memory 7", "filler memory 93"]
        assert [h.rank for h in found] == [1, 2]
        picked = memory.search("filler", k=3, filter=lambda h: (h.text or "").endswith("9"))
        assert len(picked) == 3 and all((h.text or "").endswith("9") for h in picked)


def test_put_is_idempotent_and_typed(path: Path) -> None:
    with Memory.open(path) as memory:
        rid = memory.put("The user switched to decaf", namespace="personal")
        assert rid == memory_id("The user switched to decaf", "personal")
        (first,) = memory.get([rid])
        assert first.metadata == {"memory_type": "episodic"} and first.created_at is not None
        assert first.created_at.endswith("Z")
        assert memory.put("The user switched to decaf", namespace="personal") == rid
        (again,) = memory.get([rid])
        assert again.created_at == first.created_at and memory.count("personal") == 9
        fact = memory.put("Ana is vegetarian", id="fact-1", metadata={"who": "ana"}, memory_type="semantic")
        assert fact == "fact-1" and memory.get(["fact-1"])[0].metadata == {"who": "ana", "memory_type": "semantic"}
        assert memory.put_many(["a one", "b two"], namespace="x") == [memory_id("a one", "x"), memory_id("b two", "x")]
        assert memory.delete([fact, rid, "missing"]) == 2
    # the writes are in the store, seen by vexrun's own search (with the embedder it records)
    hits = local_search(path, "a one", mode="vector", namespace="x", k=1)
    assert hits[0].text == "a one" and hits[0].cosine == pytest.approx(1.0, abs=1e-6)


def test_a_new_store_and_a_recipe_target(tmp_path: Path) -> None:
    new = tmp_path / "new.db"
    with Memory.open(new, embedder={"type": "fake", "dims": 8}) as memory:
        memory.put("first memory", namespace="a")
        assert memory.search("first memory", k=1)[0].text == "first memory"
    with Memory.open(new) as memory:  # it records its embedder
        assert memory.embedder.model_id == "fake-8" and memory.count() == 1

    # a recipe's target, with `replace: true`: a put adds, never empties the store
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: x.vmig.jsonl}\nembed: {type: fake, dims: 8}\n"
        "targets:\n  - {type: vmig, path: out.vmig.jsonl}\n  - {type: sqlite, path: new.db, replace: true}\n"
    )
    (tmp_path / "x.vmig.jsonl").write_text("")
    with Memory.open(recipe) as memory:
        memory.put("second memory", namespace="a")
        assert memory.count() == 2 and memory.search("second memory", k=1)[0].text == "second memory"
    with pytest.raises(UsageError, match="targets\\[0\\]"):
        Memory.open(recipe, target=0)
    with pytest.raises(UsageError, match="no targets\\[5\\]"):
        Memory.open(recipe, target=5)


def test_errors_are_one_line(path: Path, tmp_path: Path) -> None:
    def one_line(exc: pytest.ExceptionInfo[VexrunError]) -> str:
        assert "\n" not in str(exc.value)
        return str(exc.value)

    with pytest.raises(UsageError) as err:
        Memory.open(tmp_path / "missing.db")
    assert "no such file" in one_line(err)
    with pytest.raises(UsageError):
        Memory.open(path, target=1)
    bare = tmp_path / "bare.db"
    sink = _sink(bare)
    sink.open(None)
    sink.prepare(4, "m")
    sink.write(Batch.from_records([Record(id="r", text="t")], [np.ones(4, dtype=np.float32)]))
    sink.close()
    with Memory.open(bare) as memory, pytest.raises(InvalidInput) as ierr:
        memory.search("t")
    assert "does not record which embedder" in one_line(ierr) and "embedder=" in one_line(ierr)
    with Memory.open(path) as memory:
        for call in (
            lambda: memory.search(),
            lambda: memory.search("x", k=0),
            lambda: memory.put("  "),
            lambda: memory.put_many(["a"], ids=["1", "2"]),
            lambda: memory.search("x", filter=["not", "a", "mapping"]),  # type: ignore[arg-type]
        ):
            with pytest.raises(UsageError) as uerr:
                call()
            one_line(uerr)
    with pytest.raises(UsageError, match="closed"):
        memory.count()


def test_a_store_searched_again_holds_its_vectors_and_follows_writes(path: Path) -> None:
    from vexrun.connectors.sqlite.search import LocalStore

    def same(held: LocalStore, scanned: LocalStore, vec: np.ndarray, ns: str | None = None) -> list[str]:
        a = held.search("", vector=vec, mode="vector", k=8, namespace=ns)
        b = scanned.search("", vector=vec, mode="vector", k=8, namespace=ns)
        assert [h.id for h in a] == [h.id for h in b]
        assert [h.cosine for h in a] == pytest.approx([h.cosine for h in b], abs=1e-6)
        return [h.id for h in a]

    queries = [fake_vector(f"q{i}", DIMS) for i in range(3)]
    with LocalStore(path, cache=True) as held, LocalStore(path, cache=False) as scanned, Memory.open(path) as memory:
        for q in queries:
            same(held, scanned, q)
            same(held, scanned, q, "travel")
        assert held._vectors is not None and len(held._vectors.seqs) == 22
        # writes through another connection: a new memory, a changed one, a deleted one
        new = memory.put("a brand new memory", namespace="travel")
        first = same(held, scanned, fake_vector("a brand new memory", DIMS), "travel")[0]
        assert first == new
        work = list(texts("work"))
        memory.put("Priya moved to the search team", id=work[0], namespace="work")
        assert same(held, scanned, fake_vector("Priya moved to the search team", DIMS))[0] == work[0]
        memory.delete([work[0]])
        assert work[0] not in same(held, scanned, fake_vector("Priya moved to the search team", DIMS))
        memory.put("moved to travel", id=work[1], namespace="travel")  # an upsert into another namespace
        assert same(held, scanned, fake_vector("moved to travel", DIMS), "travel")[0] == work[1]
        assert work[1] not in same(held, scanned, fake_vector("moved to travel", DIMS), "work")
        assert len(held._vectors.seqs) == 22
    # a LocalStore scans in chunks, holding nothing; the sink's reader (recall) holds them from its second search
    with LocalStore(path) as local:
        local.search("tea", mode="vector")
        local.search("tea", mode="vector")
        assert local._vectors is None
    sink = _sink(path)
    sink.connect()
    try:
        sink.search(None, "tea", 3)
        assert sink.reader._vectors is None
        sink.search(None, "tea", 3)
        assert sink.reader._vectors is not None
    finally:
        sink.close()
