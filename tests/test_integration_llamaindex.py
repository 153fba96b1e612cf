"""``vexrun.integrations.llamaindex``: a LlamaIndex index over a store vexrun built retrieves the right nodes with
the store's embedder, filters by metadata, and what LlamaIndex inserts is read back through vexrun."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from recall_store import DIMS, PRIYA, build_store, ids_where, texts

from vexrun.errors import UsageError
from vexrun.integrations.llamaindex import VexrunEmbedding, VexrunVectorStore
from vexrun.testing.fake_embedder import fake_vector


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("llamaindex"))


@pytest.fixture
def vs(store_path: Path, tmp_path: Path) -> Iterator[VexrunVectorStore]:
    copy = tmp_path / "memory.db"
    copy.write_bytes(store_path.read_bytes())
    store = VexrunVectorStore.from_store(copy)
    try:
        yield store
    finally:
        store.close()


def _eq(key: str, value: object, op: FilterOperator = FilterOperator.EQ) -> MetadataFilter:
    return MetadataFilter(key=key, value=value, operator=op)  # type: ignore[arg-type]


def test_an_index_retrieves_with_the_store_embedder(vs: VexrunVectorStore) -> None:
    index = VectorStoreIndex.from_vector_store(vs, embed_model=VexrunEmbedding(vs.memory))
    nodes = index.as_retriever(similarity_top_k=3).retrieve(PRIYA)
    assert [n.node.get_content() for n in nodes][0] == PRIYA
    assert nodes[0].score == pytest.approx(1.0, abs=1e-5) and len(nodes) == 3
    assert nodes[0].node.node_id in texts("work") and nodes[0].node.metadata["type"] == "entity"

    # filters through the retriever: only decisions
    decisions = index.as_retriever(similarity_top_k=5, filters=MetadataFilters(filters=[_eq("type", "decision")]))
    got = decisions.retrieve("what matters")
    assert {n.node.node_id for n in got} == ids_where(lambda m: m["type"] == "decision") and len(got) == 2

    # inserting a document: its nodes are embedded by the store's embedder and stored as records
    gym = "The user's favourite climbing gym is in Alfama."
    index.insert(Document(text=gym, metadata={"who": "user"}, excluded_embed_metadata_keys=["who"], id_="doc-a"))
    again = index.as_retriever(similarity_top_k=1).retrieve(gym)
    assert again[0].node.metadata == {"who": "user"} and again[0].node.ref_doc_id == "doc-a"
    (item,) = vs.memory.get([again[0].node.node_id])
    assert item.text == gym
    assert item.metadata is not None and item.metadata["ref_doc_id"] == "doc-a" and item.metadata["who"] == "user"
    assert item.vector is not None and item.vector == pytest.approx(fake_vector(item.text, DIMS), abs=1e-6)

    vs.delete("doc-a")
    assert vs.memory.get([again[0].node.node_id]) == []
    assert vs.memory.count() == 22


def test_query_filters_and_modes(vs: VexrunVectorStore) -> None:
    query = fake_vector("anything", DIMS).tolist()
    facts = vs.query(
        VectorStoreQuery(
            query_embedding=query,
            similarity_top_k=50,
            filters=MetadataFilters(filters=[_eq("type", "fact"), _eq("importance", 0.5, FilterOperator.GTE)]),
        )
    )
    assert facts.nodes is not None and facts.similarities is not None and facts.ids is not None
    assert set(facts.ids) == ids_where(lambda m: m["type"] == "fact" and m["importance"] >= 0.5)
    assert len(facts.ids) == 5 == len(facts.nodes) == len(facts.similarities)
    either = MetadataFilters(
        filters=[_eq("type", "decision"), _eq("importance", 0.9, FilterOperator.GTE)], condition=FilterCondition.OR
    )
    found = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=50, filters=either)).ids
    assert set(found or []) == ids_where(lambda m: m["type"] == "decision" or m["importance"] >= 0.9)
    assert len(found or []) == 3
    tagged = MetadataFilters(filters=[_eq("tags", "backup", FilterOperator.CONTAINS)])
    found = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=50, filters=tagged)).ids
    assert set(found or []) == ids_where(lambda m: "backup" in m["tags"]) and len(found or []) == 2

    # by text alone (embedded here), hybrid mode on the local store fuses BM25: "ingestion" finds Priya first
    hybrid = vs.query(
        VectorStoreQuery(query_str="nightly ingestion", similarity_top_k=2, mode=VectorStoreQueryMode.HYBRID)
    )
    assert hybrid.nodes is not None and hybrid.nodes[0].get_content() == PRIYA
    some = list(texts("travel"))[:2]
    by_ids = vs.query(VectorStoreQuery(query_embedding=query, similarity_top_k=10, node_ids=some))
    assert sorted(by_ids.ids or []) == sorted(some)
    with pytest.raises(UsageError):
        vs.query(VectorStoreQuery(similarity_top_k=1))


def test_add_get_delete_nodes_in_a_namespace(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.db"
    copy.write_bytes(store_path.read_bytes())
    with VexrunVectorStore.from_store(copy).memory as memory:
        vs = VexrunVectorStore(memory, namespace="agent", memory_type="semantic")
        nodes = [TextNode(id_=f"n{i}", text=f"agent note {i}", metadata={"i": i}) for i in range(3)]
        nodes[0].embedding = fake_vector("agent note 0", DIMS).tolist()  # given: stored as is
        assert vs.add(nodes) == ["n0", "n1", "n2"]
        assert memory.namespaces() == ["agent", "personal", "travel", "work"]
        got = vs.get_nodes(node_ids=["n2", "n0"])
        assert [n.node_id for n in got] == ["n2", "n0"] and got[0].metadata == {"i": 2}
        assert [n.node_id for n in vs.get_nodes(filters=MetadataFilters(filters=[_eq("i", 1)]))] == ["n1"]
        (item,) = memory.get(["n1"])
        assert item.namespace == "agent" and item.metadata is not None and item.metadata["memory_type"] == "semantic"
        vs.delete_nodes(node_ids=["n0"])
        vs.delete_nodes(filters=MetadataFilters(filters=[_eq("i", 2)]))
        assert [n.node_id for n in vs.get_nodes(node_ids=["n0", "n1", "n2"])] == ["n1"]
        assert memory.count("agent") == 1 and memory.count() == 23
