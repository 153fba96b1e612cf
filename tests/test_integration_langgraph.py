"""``vexrun.integrations.langgraph.VexrunStore``: a compiled LangGraph graph recalls from a store vexrun built and
writes memories back; what it wrote is read back through vexrun itself (``Memory``, ``vexrun search``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import PutOp
from recall_store import PRIYA, build_store, texts

from vexrun.connectors.sqlite.search import search as local_search
from vexrun.errors import UsageError
from vexrun.ids import record_id
from vexrun.integrations.langgraph import KEY, VALUE, VexrunStore, from_namespace, to_namespace
from vexrun.recall import Memory


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("langgraph"))


@pytest.fixture
def store(store_path: Path, tmp_path: Path) -> Iterator[VexrunStore]:
    copy = tmp_path / "memory.db"
    copy.write_bytes(store_path.read_bytes())
    with VexrunStore.from_store(copy) as vs:
        yield vs


class State(TypedDict, total=False):
    user: str
    question: str
    recalled: list[str]
    scores: list[float]


def recall(state: State, runtime: Runtime) -> State:
    assert runtime.store is not None
    items = runtime.store.search(("work",), query=state["question"], limit=2)
    return {"recalled": [item.value["text"] for item in items], "scores": [item.score or 0.0 for item in items]}


def remember(state: State, runtime: Runtime) -> State:
    assert runtime.store is not None
    runtime.store.put(
        ("users", state["user"]),
        "last-question",
        {"text": f"{state['user']} asked: {state['question']}", "answered_with": state["recalled"][0], "n": 1},
    )
    return {}


def graph(store: VexrunStore):  # type: ignore[no-untyped-def]
    builder = StateGraph(State)
    builder.add_node("recall", recall)
    builder.add_node("remember", remember)
    builder.add_edge(START, "recall")
    builder.add_edge("recall", "remember")
    builder.add_edge("remember", END)
    return builder.compile(store=store)


def test_a_compiled_graph_recalls_and_remembers(store: VexrunStore) -> None:
    out = graph(store).invoke({"user": "ana", "question": "who runs the nightly ingestion?"})
    # "ingestion" is in one memory only: the hybrid search (BM25 + cosine) ranks it first, from the work namespace
    assert out["recalled"][0] == PRIYA
    assert all(text in texts("work").values() for text in out["recalled"])
    assert len(out["recalled"]) == 2

    # what the graph wrote, read back through vexrun: the record, its namespace, id, text and the whole value
    rid = record_id("users/ana", "langgraph", "last-question")
    (item,) = store.memory.get([rid])
    assert item.namespace == "users/ana"
    assert item.text == "ana asked: who runs the nightly ingestion?"
    assert item.metadata is not None
    assert item.metadata[KEY] == "last-question"
    assert item.metadata[VALUE] == {"text": item.text, "answered_with": PRIYA, "n": 1}
    assert item.metadata["memory_type"] == "episodic"
    hits = local_search(store.memory.where, "asked nightly", mode="bm25", namespace="users/ana")
    assert [h.id for h in hits] == [rid]

    # and through LangGraph: the same dict back, created_at kept when the graph runs again
    got = store.get(("users", "ana"), "last-question")
    assert got is not None and got.value == {"text": item.text, "answered_with": PRIYA, "n": 1}
    first = got.created_at
    graph(store).invoke({"user": "ana", "question": "who runs the nightly ingestion?"})
    again = store.get(("users", "ana"), "last-question")
    assert again is not None and again.created_at == first and again.updated_at >= got.updated_at
    assert store.memory.count("users/ana") == 1


def test_the_graph_runs_async(store: VexrunStore) -> None:
    out = asyncio.run(graph(store).ainvoke({"user": "bo", "question": "nightly ingestion owner"}))
    assert out["recalled"][0] == PRIYA
    assert asyncio.run(store.aget(("users", "bo"), "last-question")) is not None


def test_put_get_delete_and_list_namespaces(store: VexrunStore) -> None:
    store.put(("users", "a/b%c", "prefs"), "theme", {"text": "likes dark mode", "level": 3})
    store.put(("users", "zoe"), "k1", {"kind": "note", "body": "tea"})  # no "text": the value as JSON is embedded
    assert store.get(("users", "a/b%c", "prefs"), "theme").value == {"text": "likes dark mode", "level": 3}  # type: ignore[union-attr]
    assert store.get(("users", "zoe"), "k1").value == {"kind": "note", "body": "tea"}  # type: ignore[union-attr]
    assert store.get(("users", "zoe"), "missing") is None
    assert store.get(("users", "nobody"), "k1") is None  # keys are per namespace

    spaces = store.list_namespaces()
    assert ("users", "a/b%c", "prefs") in spaces and ("work",) in spaces and ("personal",) in spaces
    assert store.list_namespaces(prefix=("users",)) == [("users", "a/b%c", "prefs"), ("users", "zoe")]
    assert store.list_namespaces(prefix=("users",), max_depth=1) == [("users",)]
    assert store.list_namespaces(suffix=("prefs",)) == [("users", "a/b%c", "prefs")]
    assert store.list_namespaces(prefix=("users", "*", "prefs")) == [("users", "a/b%c", "prefs")]
    assert store.list_namespaces(limit=1, offset=1) == [sorted(spaces)[1]]

    store.delete(("users", "zoe"), "k1")
    assert store.get(("users", "zoe"), "k1") is None
    assert ("users", "zoe") not in store.list_namespaces()
    with pytest.raises(UsageError, match="namespace cannot be empty"):
        store.batch([PutOp((), "k", {"text": "x"})])  # LangGraph's put() refuses it before; batch() does too


def test_search_filters_pages_and_lists(store: VexrunStore) -> None:
    for i in range(6):
        store.put(("notes", "u1"), f"n{i}", {"text": f"note number {i} about ingestion", "n": i, "tag": i % 2})
    store.put(("notes", "u2"), "other", {"text": "another user's note about ingestion", "n": 99, "tag": 0})

    found = store.search(("notes",), query="ingestion note", filter={"tag": 1}, limit=10)
    assert sorted(i.key for i in found) == ["n1", "n3", "n5"]
    assert all(i.score is not None for i in found)
    assert {i.key for i in store.search(("notes", "u1"), query="ingestion", filter={"n": {"$gte": 4}})} == {"n4", "n5"}
    assert {i.key for i in store.search(("notes",), query="ingestion", filter={"n": {"$gt": 50}})} == {"other"}

    # offset/limit page through one ranking
    ranked = [i.key for i in store.search(("notes",), query="ingestion note", limit=7)]
    assert len(ranked) == 7
    assert [i.key for i in store.search(("notes",), query="ingestion note", limit=3, offset=2)] == ranked[2:5]

    # no query: the newest first, filters apply
    listed = store.search(("notes", "u1"), limit=3)
    assert len(listed) == 3 and all(i.namespace == ("notes", "u1") for i in listed)
    assert [i.key for i in store.search(("notes", "u1"), filter={"tag": 0}, limit=10)] != []
    assert {i.key for i in store.search(("notes", "u1"), filter={"tag": 0}, limit=10)} == {"n0", "n2", "n4"}

    # the store's own records read as {"text", "metadata"} items keyed by their id
    work = store.search(("work",), query="nightly ingestion", limit=1)[0]
    assert work.value["text"] == PRIYA and work.key in texts("work")
    assert store.get(("work",), work.key).value["text"] == PRIYA  # type: ignore[union-attr]
    assert store.search(("nowhere",), query="x") == []


def test_namespace_mapping_is_reversible() -> None:
    for labels in [("a",), ("users", "a/b"), ("x%2F", "%", "/"), ("ünï", "c%25d")]:
        assert from_namespace(to_namespace(labels)) == labels
    assert to_namespace(("users", "a/b")) == "users/a%2Fb"
    assert from_namespace("claude") == ("claude",)
    assert to_namespace(()) is None and from_namespace(None) == ()


def test_a_store_from_a_memory_stays_open(store_path: Path, tmp_path: Path) -> None:
    copy = tmp_path / "m.db"
    copy.write_bytes(store_path.read_bytes())
    with Memory.open(copy) as memory:
        VexrunStore(memory, memory_type="semantic").put(("facts",), "f", {"text": "Ana is vegetarian"})
        # the caller's memory is still usable, and the fact is semantic
        (item,) = memory.get([record_id("facts", "langgraph", "f")])
        assert item.metadata is not None and item.metadata["memory_type"] == "semantic"
