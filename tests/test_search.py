"""``vexrun.connectors.sqlite.search`` and the ``vexrun search`` command over real local stores."""

from __future__ import annotations

import json
import random
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from vexrun.cli.search import format_hits, parse_embedder
from vexrun.cli.search import search as search_command
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite.search import RRF_K, LocalStore, fts_query, search, store_info
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
from vexrun.errors import InvalidInput, UsageError
from vexrun.testing.data import synthetic_batches
from vexrun.testing.fake_embedder import FakeEmbedder, FakeEmbedderConfig, fake_vector
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 32
SPEC = {"type": "fake", "dims": DIMS}

MEMORIES = {
    "tea": ("personal", "The user drinks green tea every morning before work"),
    "deploy": ("work", "Deploy the billing service to staging on Tuesday"),
    "dark": ("personal", "User prefers dark mode in every editor"),
    "berlin": ("travel", "Trip to Berlin in March; hotel near the Spree"),
    "budget": ("work", "The Q3 budget review moved to Thursday afternoon"),
    "coffee": ("personal", "Stopped drinking coffee after 2pm"),
}


def build(
    path: Path,
    memories: dict[str, tuple[str | None, str]],
    *,
    spec: dict[str, Any] | None = SPEC,
    vectors: bool = True,
) -> Path:
    ctx = RunContext(state_dir=path.parent, recipe_dir=path.parent, embedder_spec=spec)
    sink = SqliteSink(SqliteSinkConfig(path=path.name), ctx)
    sink.open(None)
    try:
        sink.prepare(DIMS if vectors else None, f"fake-{DIMS}" if vectors else None)
        records = [
            Record(id=rid, text=text, namespace=ns, metadata={"n": i}, created_at=f"2026-01-0{i + 1}T00:00:00Z")
            for i, (rid, (ns, text)) in enumerate(memories.items())
        ]
        vecs = [fake_vector(text, DIMS) for _, text in memories.values()] if vectors else None
        result = sink.write(Batch.from_records(records, vecs))
        assert not result.rejected
        sink.finalize()
    finally:
        sink.close()
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return build(tmp_path / "memory.db", MEMORIES)


# -- the query -------------------------------------------------------------------------------------------


def test_fts_query_quotes_every_term() -> None:
    assert fts_query('tea AND "coffee" OR x* (y) col:z') == '"tea" OR """coffee""" OR "x*" OR "(y)" OR "col:z"'
    assert fts_query("  tea tea  ") == '"tea"'
    assert fts_query('" * ( ) : - ^ +') is None
    assert fts_query("a\x00b") == '"b"'
    # function words are dropped, unless nothing else is left
    assert fts_query("which foods does the user avoid?") == '"foods" OR "avoid?"'
    assert fts_query("what is it") == '"what" OR "is" OR "it"'


NASTY = [
    '"',
    '""',
    "'",
    "*",
    "tea*",
    "AND",
    "OR NOT",
    "NEAR(tea coffee)",
    "(",
    ")",
    "text:tea",
    "{text}: tea",
    "tea -coffee",
    "^tea",
    "+",
    "\x00",
    "tea\x00coffee",
    "\\",
    "%_",
    "';DROP TABLE records;--",
    "日本語 テキスト",
    "🧠 memory",
    "a" * 5000,
    " ".join(["tea"] * 500),
]


@pytest.mark.parametrize("mode", ["bm25", "hybrid"])
def test_fts_syntax_in_the_query_never_errors(store: Path, mode: str) -> None:
    rng = random.Random(7)
    alphabet = list("\"*():^+-{}[],.;'\\/ \t\n") + ["AND", "OR", "NOT", "NEAR", "tea", "text", "\x00", "é"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(150)]
    with LocalStore(store) as local:
        for query in NASTY + fuzz:
            if not query.strip():
                continue
            hits = local.search(query, k=3, mode=mode)
            assert all(h.id in MEMORIES for h in hits)
    assert sqlite3.connect(store).execute("SELECT count(*) FROM records").fetchone() == (6,)


# -- bm25 --------------------------------------------------------------------------------------------------


def test_bm25_ranks_an_exact_term_match_first(store: Path) -> None:
    hits = search(store, "staging", mode="bm25")
    assert [h.id for h in hits] == ["deploy"]
    (hit,) = hits
    assert hit.rank == 1 and hit.bm25_rank == 1 and hit.bm25 is not None and hit.bm25 > 0
    assert hit.score == hit.bm25 and hit.cosine is None
    assert hit.namespace == "work" and hit.metadata == {"n": 1} and hit.created_at == "2026-01-02T00:00:00Z"


def test_bm25_stems_and_ranks_by_relevance(store: Path) -> None:
    hits = search(store, "what does the user drink", mode="bm25")
    assert {h.id for h in hits} >= {"tea", "coffee"}  # "drinks", "drinking" match "drink"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:], strict=False))


def test_bm25_needs_no_embedder(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", MEMORIES, spec={"type": "no-such-embedder"})
    assert [h.id for h in search(path, "berlin", mode="bm25")] == ["berlin"]


# -- vector ------------------------------------------------------------------------------------------------


def test_vector_mode_finds_the_identically_embedded_text(store: Path) -> None:
    hits = search(store, MEMORIES["budget"][1], mode="vector", k=3)
    assert hits[0].id == "budget" and hits[0].cosine == pytest.approx(1.0, abs=1e-6)
    assert hits[0].score == hits[0].cosine and hits[0].vector_rank == 1 and hits[0].bm25 is None
    assert [h.cosine for h in hits] == sorted((h.cosine for h in hits), reverse=True)  # type: ignore[type-var]
    assert len(hits) == 3


def test_vector_mode_matches_numpy_on_a_store_larger_than_one_chunk(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, embedder_spec=SPEC)
    sink = SqliteSink(SqliteSinkConfig(path="big.db"), ctx)
    sink.open(None)
    batches = list(synthetic_batches(9000, dims=DIMS, batch_size=3000, seed=3))
    try:
        sink.prepare(DIMS, f"fake-{DIMS}")
        for b in batches:
            sink.write(b)
    finally:
        sink.close()
    q = fake_vector("budget review", DIMS)
    mat = np.concatenate([b.vectors for b in batches if b.vectors is not None])
    ids = [r.id for b in batches for r in b.records]
    sims = mat @ q / np.linalg.norm(mat, axis=1)
    want = [ids[i] for i in np.argsort(-sims, kind="stable")[:10]]
    hits = search(path, "budget review", mode="vector", k=10)
    assert [h.id for h in hits] == want
    assert [h.cosine for h in hits] == pytest.approx([float(sims[ids.index(h.id)]) for h in hits], abs=1e-6)
    work = search(path, "budget review", mode="vector", k=5, namespace="work")
    assert all(h.namespace == "work" for h in work) and len(work) == 5


def test_the_recorded_embedder_is_rebuilt_from_the_store(store: Path) -> None:
    info = store_info(store)
    assert info.embedder_spec == SPEC and info.dims == DIMS and info.model == f"fake-{DIMS}"
    assert info.records == 6 and info.vectors == 6 and info.namespaces == {"personal": 3, "travel": 1, "work": 2}
    with LocalStore(store) as local:
        assert np.array_equal(local.embed_query("x"), fake_vector("x", DIMS))


def test_an_explicit_embedder_overrides_the_recorded_one(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", MEMORIES, spec=None)
    with pytest.raises(InvalidInput, match="does not record which embedder") as err:
        search(path, "tea", mode="vector")
    assert "--mode bm25" in str(err.value) and "--embedder" in str(err.value)
    embedder = FakeEmbedder(FakeEmbedderConfig(dims=DIMS))
    assert search(path, MEMORIES["tea"][1], mode="vector", embedder=embedder)[0].id == "tea"
    assert search(path, MEMORIES["tea"][1], mode="vector", embedder={"type": "fake", "dims": DIMS})[0].id == "tea"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"type": "no-such-embedder"}, "cannot load the embedder 'no-such-embedder': unknown embedder"),
        ({"type": "fake", "dims": 0}, "cannot load the embedder 'fake': dims: Input should be greater than"),
        ({"type": "fake", "bogus": 1}, "cannot load the embedder 'fake': bogus: Extra inputs are not permitted"),
    ],
)
def test_an_unloadable_embedder_is_one_line_suggesting_bm25(tmp_path: Path, spec: dict[str, Any], message: str) -> None:
    path = build(tmp_path / "m.db", MEMORIES, spec=spec)
    for mode in ("vector", "hybrid"):
        with pytest.raises(InvalidInput) as err:
            search(path, "tea", mode=mode)
        assert str(err.value).startswith(message), str(err.value)
        assert "use --mode bm25" in str(err.value) and "\n" not in str(err.value)


def test_an_embedder_of_other_dims_is_refused(store: Path) -> None:
    with pytest.raises(InvalidInput, match="gives 8-d vectors, the store holds 32-d"):
        search(store, "tea", mode="vector", embedder={"type": "fake", "dims": 8})


# -- hybrid ------------------------------------------------------------------------------------------------


def test_hybrid_fuses_both_lists(store: Path) -> None:
    hits = search(store, MEMORIES["deploy"][1], k=6)
    top = hits[0]
    assert top.id == "deploy" and top.vector_rank == 1 and top.bm25_rank == 1
    assert top.score == pytest.approx(2 / (RRF_K + 1))
    assert top.cosine == pytest.approx(1.0, abs=1e-6) and top.bm25 is not None and top.bm25 > 0
    assert all(h.cosine is not None for h in hits)  # every hit shows its cosine, even BM25-only ones
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    for h in hits:
        expected = sum(1 / (RRF_K + r) for r in (h.vector_rank, h.bm25_rank) if r is not None)
        assert h.score == pytest.approx(expected)


def test_hybrid_lifts_a_record_that_both_lists_like(store: Path) -> None:
    # "staging" matches only "deploy" by BM25; the fake vectors rank it anywhere: fusion keeps it on top
    hits = search(store, "staging", k=6)
    ids = [h.id for h in hits]
    assert ids[0] == "deploy" and len(ids) == 6
    assert hits[0].bm25_rank == 1 and hits[0].vector_rank is not None
    assert all(h.bm25_rank is None for h in hits[1:])


def test_vectors_with_nan_never_rank(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", MEMORIES)
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, embedder_spec=SPEC)
    sink = SqliteSink(SqliteSinkConfig(path="m.db"), ctx)
    sink.open({})
    try:
        bad = np.full(DIMS, np.nan, dtype=np.float32)
        sink.write(Batch.from_records([Record(id="nan", text="tea tea tea")], [bad]))
    finally:
        sink.close()
    hits = search(path, "tea", mode="vector", k=10)
    assert len(hits) == 6 and "nan" not in [h.id for h in hits]
    hybrid = search(path, "tea", k=10)
    assert "nan" in [h.id for h in hybrid]  # found by BM25, without a cosine
    assert next(h for h in hybrid if h.id == "nan").cosine is None
    json.dumps([h.to_json() for h in hybrid], allow_nan=False)


def test_hybrid_over_a_text_only_store_is_bm25(tmp_path: Path) -> None:
    path = build(tmp_path / "t.db", MEMORIES, spec=None, vectors=False)
    hits = search(path, "berlin hotel")
    assert [h.id for h in hits] == ["berlin"] and hits[0].cosine is None
    with pytest.raises(InvalidInput, match="holds no vectors") as err:
        search(path, "berlin", mode="vector")
    assert "--mode bm25" in str(err.value)


# -- namespaces, arguments, bad stores ---------------------------------------------------------------------


def test_namespace_filter(store: Path) -> None:
    for mode in ("bm25", "vector", "hybrid"):
        hits = search(store, "the user drinks tea on Tuesday at work", mode=mode, namespace="work", k=10)
        assert hits and all(h.namespace == "work" for h in hits)
    with pytest.raises(InvalidInput, match=r"no records in namespace 'nope' \(namespaces: personal, travel, work\)"):
        search(store, "tea", namespace="nope")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"query": "   "}, "the query is empty"),
        ({"query": "tea", "k": 0}, "k must be at least 1"),
        ({"query": "tea", "mode": "fuzzy"}, "unknown search mode 'fuzzy'"),
    ],
)
def test_bad_arguments_are_usage_errors(store: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        search(store, **kwargs)


def test_bad_stores(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no such file"):
        search(tmp_path / "missing.db", "tea")
    (tmp_path / "junk.db").write_bytes(b"\x00junk" * 400)
    with pytest.raises(InvalidInput, match="not a vexrun store"):
        search(tmp_path / "junk.db", "tea")
    empty = build(tmp_path / "empty.db", {})
    with pytest.raises(InvalidInput, match="holds no records"):
        search(empty, "tea")


def test_search_while_a_sink_is_writing(tmp_path: Path) -> None:
    path = build(tmp_path / "m.db", MEMORIES)
    ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, embedder_spec=SPEC)
    sink = SqliteSink(SqliteSinkConfig(path="m.db"), ctx)
    sink.open({})
    try:
        sink.write(Batch(records=[Record(id="new", text="a brand new memory about kites")]))
        assert [h.id for h in search(path, "kites", mode="bm25")] == ["new"]
    finally:
        sink.close()


# -- memory ------------------------------------------------------------------------------------------------


def _peak_during_vector_search(path: Path) -> int:
    with LocalStore(path) as local:
        local.search("warm up", mode="vector", k=10)
        tracemalloc.start()
        try:
            local.search("budget review travel", mode="vector", k=10)
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()


@pytest.mark.slow
def test_vector_search_memory_stays_flat(tmp_path: Path) -> None:
    peaks = []
    for n in (6_000, 30_000):
        path = tmp_path / f"s{n}.db"
        ctx = RunContext(state_dir=tmp_path, recipe_dir=tmp_path, embedder_spec={"type": "fake", "dims": 128})
        sink = SqliteSink(SqliteSinkConfig(path=path.name, synchronous="normal"), ctx)
        sink.open(None)
        try:
            sink.prepare(128, "fake-128")
            for b in synthetic_batches(n, dims=128, batch_size=3000):
                sink.write(b)
        finally:
            sink.close()
        peaks.append(_peak_during_vector_search(path))
    chunk_bytes = 4096 * 128 * 4
    assert peaks[1] < 6 * chunk_bytes, peaks  # bounded by the chunk, not by the 15 MB of vectors
    assert peaks[1] < 1.5 * peaks[0] + 1_000_000, peaks


# -- the command -------------------------------------------------------------------------------------------


def invoke(*args: str) -> Any:
    return CliRunner().invoke(search_command, list(args), standalone_mode=False, catch_exceptions=False)


def test_cli_prints_an_aligned_table(store: Path) -> None:
    result = invoke(str(store), "drinks", "green", "tea", "-k", "3")
    assert result.return_value == 0
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["#", "score", "cosine", "bm25", "namespace", "text", "id"]
    assert len(lines) == 4 and lines[1].split()[0] == "1" and lines[1].endswith("tea")
    assert "The user drinks green tea every morning" in lines[1]
    assert len({line.index(" ", 2) for line in lines[1:]}) == 1  # columns line up
    assert "3 hits (hybrid)" in result.stderr


def test_cli_json_and_modes(store: Path) -> None:
    result = invoke(str(store), "staging", "--mode", "bm25", "--json")
    doc = json.loads(result.stdout)
    assert doc["mode"] == "bm25" and doc["query"] == "staging"
    assert [h["id"] for h in doc["hits"]] == ["deploy"]
    assert set(doc["hits"][0]) >= {
        "rank",
        "id",
        "score",
        "cosine",
        "bm25",
        "bm25_rank",
        "namespace",
        "text",
        "metadata",
    }
    result = invoke(str(store), MEMORIES["dark"][1], "--mode", "vector", "-k", "1", "--namespace", "personal")
    assert result.stdout.splitlines()[1].split()[-1] == "dark"
    result = invoke(str(store), "--embedder", '{"type": "fake", "dims": 32}', "--json", MEMORIES["tea"][1])
    assert json.loads(result.stdout)["hits"][0]["id"] == "tea"


def test_cli_no_matches(store: Path) -> None:
    result = invoke(str(store), "zeppelin", "--mode", "bm25")
    assert result.return_value == 0 and result.stdout == "no matches for 'zeppelin'\n"


@pytest.fixture
def registered() -> Iterator[None]:
    """The command inside the real ``vexrun`` group, as the lead registers it."""
    from vexrun.cli import cli

    before = cli.commands.get("search")
    cli.add_command(search_command)
    yield
    if before is None:
        cli.commands.pop("search", None)
    else:
        cli.add_command(before)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("make", "args", "code", "message"),
    [
        (lambda d: d / "missing.db", (), 2, "error: {p}: no such file"),
        (lambda d: (d / "junk.db").write_text("hello") and d / "junk.db", (), 1, "error: {p}: not a vexrun store"),
        (lambda d: build(d / "e.db", {}), (), 1, "error: {p}: the store holds no records"),
        (lambda d: build(d / "s.db", MEMORIES), ("--mode", "vector", "--embedder", "nope"), 1, "cannot load"),
        (lambda d: build(d / "s.db", MEMORIES), ("-k", "0"), 2, "Invalid value for '-k'"),
        (lambda d: build(d / "s.db", MEMORIES), ("--embedder", "{bad"), 2, "not valid JSON"),
    ],
)
def test_cli_errors_are_one_line_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: Any, args: tuple[str, ...], code: int, message: str
) -> None:
    from vexrun.cli import main

    path = make(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(["search", str(path), "tea", *args])
    out, err = capsys.readouterr()
    assert exit_info.value.code == code, err
    assert message.format(p=path) in err and "Traceback" not in err
    assert out == ""


def test_format_hits_truncates_text_to_the_width(store: Path) -> None:
    hits = search(store, "tea", k=2)
    long = [type(hits[0])(**{**hits[0].to_json(), "text": "word " * 100})]
    (head, row) = format_hits(long, width=90)
    assert "…" in row and len(row) <= 90 + len(long[0].id)
    assert parse_embedder("fake") == {"type": "fake"} and parse_embedder(None) is None
