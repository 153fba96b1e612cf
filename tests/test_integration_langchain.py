"""``vexrun.integrations.langchain``: a LangChain retriever over a store vexrun built returns the right documents,
filters by metadata, and what LangChain adds is read back through vexrun."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from recall_store import DIMS, PRIYA, build_store, ids_where, texts

from vexrun.errors import UsageError
from vexrun.integrations.langchain import LangChainEmbedder, VexrunEmbeddings, VexrunVectorStore
from vexrun.recall import Memory, memory_id
from vexrun.testing.fake_embedder import fake_vector


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("langchain"))


@pytest.fixture
def vs(store_path: Path, tmp_path: Path) -> Iterator[VexrunVectorStore]:
    copy = tmp_path / "memory.db"
    copy.write_bytes(store_path.read_bytes())
    with VexrunVectorStore.from_store(copy) as store:
        yield store


def test_the_retriever_returns_the_right_documents(vs: VexrunVectorStore) -> None:
    docs = vs.as_retriever(search_kwargs={"k": 3}).invoke("who runs the nightly ingestion jobs")
    assert len(docs) == 3
    assert docs[0].page_content == PRIYA
    assert docs[0].id in texts("work") and docs[0].metadata["type"] == "entity"
    # an exact text is its own nearest neighbour (same embedder, cosine 1)
    text = next(iter(texts("travel").values()))
    (doc, score), *_ = vs.similarity_search_with_score(text, k=2)
    assert doc.page_content == text and score == pytest.approx(1.0, abs=1e-5)
    assert asyncio.run(vs.as_retriever().ainvoke("nightly ingestion"))[0].page_content == PRIYA


def test_filters(vs: VexrunVectorStore) -> None:
    pinned = vs.as_retriever(search_kwargs={"k": 5, "filter": {"pinned": True}}).invoke("what did the team decide")
    assert {d.id for d in pinned} == ids_where(lambda m: m["pinned"] is True) and len(pinned) == 2
    facts = vs.similarity_search("user", k=50, filter={"type": "fact", "source": "claude-export"})
    assert {d.id for d in facts} == ids_where(lambda m: m["type"] == "fact") and len(facts) == 9
    assert vs.similarity_search("ingestion", k=3, filter={"type": "no such type"}) == []
    # a namespace narrows the search
    travel = VexrunVectorStore(vs.memory, namespace="travel").similarity_search("user", k=50)
    assert {d.id for d in travel} == set(texts("travel"))
    relevant = vs.similarity_search_with_relevance_scores(PRIYA, k=1)
    assert relevant[0][0].page_content == PRIYA and relevant[0][1] == pytest.approx(1.0, abs=1e-5)


def test_add_get_delete_and_by_vector(vs: VexrunVectorStore) -> None:
    ids = vs.add_texts(["Ana likes climbing on Sundays", "Ana's bike is blue"], [{"who": "ana"}, {"who": "ana"}])
    assert ids == [memory_id("Ana likes climbing on Sundays"), memory_id("Ana's bike is blue")]
    assert vs.add_texts(["Ana likes climbing on Sundays"], [{"who": "ana"}]) == ids[:1]  # the same text: one record
    assert vs.memory.count() == 24
    got = vs.get_by_ids([ids[1], "missing", ids[0]])
    assert [d.page_content for d in got] == ["Ana's bike is blue", "Ana likes climbing on Sundays"]
    assert got[0].metadata == {"who": "ana", "memory_type": "episodic"}

    explicit = vs.add_documents(
        [Document(id="doc-1", page_content="The user's dentist is Dr. Alves", metadata={"k": 1})]
    )
    assert explicit == ["doc-1"]
    by_vector = vs.similarity_search_by_vector(fake_vector("The user's dentist is Dr. Alves", DIMS).tolist(), k=1)
    assert by_vector[0].id == "doc-1"
    assert (
        vs.similarity_search_by_vector(fake_vector("x", DIMS).tolist(), k=30, filter={"who": "ana"})[0].metadata["who"]
        == "ana"
    )

    assert vs.delete(["doc-1", ids[0]]) is True
    assert vs.get_by_ids(["doc-1", ids[0]]) == []
    assert vs.memory.count() == 23
    with pytest.raises(UsageError):
        vs.delete()

    # read back through vexrun: the record as LangChain added it
    (item,) = vs.memory.get([ids[1]])
    assert item.text == "Ana's bike is blue" and item.vector is not None and item.vector.shape == (DIMS,)


class Constant(Embeddings):
    """A LangChain embeddings class that is not vexrun's (deterministic, like the fake embedder)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [fake_vector(t, 8).tolist() for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return fake_vector(text, 8).tolist()


def test_from_texts_creates_a_store_with_any_embeddings(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    vs = VexrunVectorStore.from_texts(
        ["alpha memory", "beta memory"], Constant(), [{"n": 1}, {"n": 2}], store=path, namespace="x"
    )
    try:
        assert [d.page_content for d in vs.similarity_search("beta memory", k=1)] == ["beta memory"]
        assert vs.memory.embedder.model_id == "langchain:Constant"
    finally:
        vs.close()
    # the store holds them, readable by vexrun given the same embeddings; VexrunEmbeddings of an open store
    # adds to that store
    with Memory.open(path, embedder=LangChainEmbedder(Constant())) as memory:
        assert memory.count("x") == 2 and memory.namespaces() == ["x"]
        again = VexrunVectorStore.from_texts(["gamma memory"], VexrunEmbeddings(memory), namespace="x")
        assert again.memory is memory and memory.count("x") == 3
        assert VexrunEmbeddings(memory).embed_query("alpha memory") == pytest.approx(fake_vector("alpha memory", 8))
