"""The dedup stage: exact then near duplicates within a namespace, what the kept fact records, earlier facts
updated, causes remapped, state that survives a resume, and an index whose work grows far slower than n²."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from vexrun.stages.dedup import CosineIndex, DedupStage, normalise, text_hash
from vexrun.stages.dedup.index import decode, encode
from vexrun.stages.settings_extract import DedupSettings
from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig import Batch, Record

DIMS = 64


def near(base: np.ndarray, cos: float, seed: int) -> np.ndarray:
    """A unit vector whose cosine with unit ``base`` is ``cos``."""
    noise = np.random.default_rng(seed).standard_normal(len(base)).astype(np.float32)
    noise -= noise @ base * base
    noise /= np.linalg.norm(noise)
    out: np.ndarray = cos * base + np.sqrt(1 - cos * cos) * noise
    return out.astype(np.float32)


class Embedder:
    """Texts → vectors: the planted ones, else fake_vector. Counts what it was asked."""

    def __init__(self) -> None:
        self.planted: dict[str, np.ndarray] = {}
        self.calls: list[list[str]] = []

    def plant(self, text: str, like: str | None = None, cos: float = 1.0, seed: int = 0) -> str:
        base = self.planted.get(like) if like else None
        self.planted[text] = near(base, cos, seed) if base is not None else fake_vector(text, DIMS)
        return text

    def __call__(self, batch: Batch) -> Batch:
        self.calls.append([r.id for r in batch.records])
        vecs = [self.planted.get(r.text or "", fake_vector(r.text or "", DIMS)) for r in batch.records]
        return Batch(records=batch.records, vectors=np.stack(vecs), has_vector=np.ones(len(vecs), dtype=bool))


def fact(fid: str, text: str, ns: str | None = "mem", **meta: object) -> Record:
    m: dict[str, object] = {
        "importance": 0.5,
        "entities": [],
        "tags": ["t"],
        "source_chunk_id": f"chunk-{fid}",
        "source_message_ids": [f"msg-{fid}"],
    }
    m.update(meta)
    return Record(id=fid, text=text, namespace=ns, metadata=m, created_at="2025-01-01T00:00:00Z")  # type: ignore[arg-type]


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., tuple[DedupStage, Embedder]]:
    made: list[DedupStage] = []

    def build(**settings: object) -> tuple[DedupStage, Embedder]:
        emb = Embedder()
        stage = DedupStage(DedupSettings(**settings), tmp_path / f"dedup{len(made)}", embed=emb)  # type: ignore[arg-type]
        stage.reset()
        made.append(stage)
        return stage, emb

    yield build  # type: ignore[misc]
    for s in made:
        s.close()


def test_exact_duplicates_by_normalised_text(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, _ = make()
    batch = Batch(records=[fact("a", "Dana prefers Postgres."), fact("b", "  dana PREFERS postgres!! ")])
    res = stage.dedup(batch)
    assert [r.id for r in res.batch.records] == ["a"] and res.merged == {"b": "a"}
    kept = res.batch.records[0].metadata or {}
    assert kept["merged_ids"] == ["b"] and kept["merged_sources"] == ["chunk-a", "chunk-b"]
    assert kept["source_message_ids"] == ["msg-a", "msg-b"] and kept["duplicates"] == 1
    assert res.counts.exact == 1 and res.counts.semantic == 0
    assert text_hash("Dana prefers Postgres.") == text_hash("dana prefers postgres")


def test_near_duplicates_within_the_same_namespace_only(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, emb = make()
    a = emb.plant("The user lives in Lisbon.")
    b = emb.plant("The user's home is in Lisbon.", like=a, cos=0.80, seed=1)
    c = emb.plant("Lisbon is where the user lives, in the Alfama.", like=a, cos=0.75, seed=2)
    d = emb.plant("The user visited Lisbon once.", like=a, cos=0.60, seed=3)
    batch = Batch(records=[fact("a", a), fact("b", b), fact("x", c, ns="work"), fact("d", d)])
    res = stage.dedup(batch)
    assert res.merged == {"b": "a"}
    assert sorted(r.id for r in res.batch.records) == ["a", "d", "x"]
    assert res.counts.semantic == 1 and res.batch.vectors is not None and bool(res.batch.has_vector.all())  # type: ignore[union-attr]
    stage2, emb2 = make(threshold=0.5)
    emb2.planted = emb.planted
    assert set(stage2.dedup(batch).merged) == {"b", "d"}


def test_the_richer_fact_gives_the_content_under_the_first_id(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, emb = make()
    a = emb.plant("Dana moved.")
    b = emb.plant("Dana moved from Porto to Lisbon in May 2024.", like=a, cos=0.9, seed=4)
    res = stage.dedup(
        Batch(
            records=[fact("a", a, importance=0.4), fact("b", b, importance=0.9, entities=["Dana", "Porto", "Lisbon"])]
        )
    )
    (kept,) = res.batch.records
    assert kept.id == "a" and kept.text == b
    assert (kept.metadata or {})["importance"] == 0.9 and (kept.metadata or {})["merged_ids"] == ["b"]
    assert res.batch.vectors is not None
    np.testing.assert_allclose(res.batch.vectors[0], emb.planted[b])  # the vector goes with the text


def test_a_later_duplicate_updates_the_earlier_fact(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, emb = make()
    a = emb.plant("The user drinks green tea every morning.")
    first = stage.dedup(Batch(records=[fact("a", a), fact("z", emb.plant("Unrelated."))]))
    assert [r.id for r in first.batch.records] == ["a", "z"]
    b = emb.plant("Every morning the user drinks green tea.", like=a, cos=0.93, seed=5)
    second = stage.dedup(Batch(records=[fact("b", b), fact("y", emb.plant("Also unrelated."))]))
    assert second.merged == {"b": "a"} and second.updated == ["a"]
    assert [r.id for r in second.batch.records] == ["y", "a"]
    again = second.batch.records[1]
    assert (again.metadata or {})["merged_ids"] == ["b"] and again.text == a
    assert second.batch.has_vector is not None and bool(second.batch.has_vector.all())
    assert emb.calls[-1] == ["a"]  # the earlier fact was embedded again (the runner's cache makes that free)


def test_a_paraphrase_of_a_merged_paraphrase_still_finds_the_fact(
    make: Callable[..., tuple[DedupStage, Embedder]],
) -> None:
    stage, emb = make()
    a = emb.plant("The user runs every morning.")
    b = emb.plant("Every morning, the user goes for a run.", like=a, cos=0.80, seed=7)
    c = emb.plant("The user's morning habit is a run.", like=b, cos=0.85, seed=8)
    assert float(emb.planted[a] @ emb.planted[c]) < 0.72  # c is close to b, not to a
    assert stage.dedup(Batch(records=[fact("a", a)])).counts.kept == 1
    assert stage.dedup(Batch(records=[fact("b", b)])).merged == {"b": "a"}
    assert stage.dedup(Batch(records=[fact("c", c)])).merged == {"c": "a"}  # found through b's vector
    assert stage.state()["spaces"]["mem"] == {"rows": 1, "vectors": 3, "dims": DIMS, "trained_at": 0}


def test_causes_follow_the_fact_that_stayed(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, emb = make()
    reason = emb.plant("Postgres has pgvector.")
    reason2 = emb.plant("pgvector ships with Postgres.", like=reason, cos=0.9, seed=6)
    res = stage.dedup(
        Batch(
            records=[
                fact("r1", reason),
                fact("r2", reason2),
                fact("d", emb.plant("The user chose Postgres."), caused_by=["r2"]),
            ]
        )
    )
    decided = next(r for r in res.batch.records if r.id == "d")
    assert (decided.metadata or {})["caused_by"] == ["r1"]


def test_state_survives_a_resume_and_drops_what_was_not_committed(
    tmp_path: Path, make: Callable[..., tuple[DedupStage, Embedder]]
) -> None:
    stage, emb = make(ann_above=1000)
    rng = np.random.default_rng(1)
    batches = []
    for b in range(4):
        recs = []
        for i in range(400):
            text = f"fact {b}-{i}"
            emb.planted[text] = normalise(rng.standard_normal((1, DIMS)))[0]
            recs.append(fact(f"f{b}-{i}", text))
        batches.append(Batch(records=recs))
    for b in batches[:3]:
        stage.dedup(b)
    committed = stage.state()
    assert committed["spaces"]["mem"]["rows"] == 1200 and committed["spaces"]["mem"]["trained_at"] > 0
    lost = stage.dedup(batches[3])  # processed, then the process is killed before the checkpoint commits
    assert lost.counts.kept == 400
    stage.close()

    resumed = DedupStage(DedupSettings(ann_above=1000), stage.dir, embed=emb)
    resumed.restore(committed)
    redo = resumed.dedup(batches[3])
    assert redo.counts.kept == 400 and not redo.merged  # not duplicates of the lost copies of themselves
    assert resumed.state()["spaces"]["mem"]["rows"] == 1600
    dup = Batch(records=[fact("late", "fact 0-7 again")])
    emb.planted["fact 0-7 again"] = near(emb.planted["fact 0-7"], 0.95, 9)
    assert resumed.dedup(dup).merged == {"late": "f0-7"}
    resumed.close()


def test_reset_forgets_and_a_rerun_is_not_its_own_duplicate(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    stage, emb = make()
    batch = Batch(records=[fact("a", emb.plant("One.")), fact("b", emb.plant("Two."))])
    stage.dedup(batch)
    again = stage.dedup(batch)  # the same facts again (a repeated run without reset)
    assert not again.merged and sorted(r.id for r in again.batch.records) == ["a", "b"]
    stage.reset()
    fresh = stage.dedup(batch)
    assert fresh.counts.kept == 2 and not fresh.updated


def test_exact_only_needs_no_embedder(tmp_path: Path) -> None:
    stage = DedupStage(DedupSettings(semantic=False), tmp_path / "d")
    res = stage.dedup(Batch(records=[fact("a", "Same."), fact("b", "same"), fact("c", "Other.")]))
    assert res.merged == {"b": "a"} and res.batch.vectors is None
    stage.close()
    with pytest.raises(ValueError, match="embed"):
        DedupStage(DedupSettings(), tmp_path / "e")


def test_ivf_finds_what_the_exact_search_finds(make: Callable[..., tuple[DedupStage, Embedder]]) -> None:
    rng = np.random.default_rng(3)
    centers = normalise(rng.standard_normal((40, DIMS)))
    emb_vectors: dict[str, np.ndarray] = {}
    batches, planted = [], {}
    n = 0
    for _ in range(8):
        recs = []
        for _ in range(500):
            text = f"fact {n}"
            if n > 50 and rng.random() < 0.1:
                orig = int(rng.integers(0, n))
                while f"fact {orig}" in planted:
                    orig = int(rng.integers(0, n))
                emb_vectors[text] = near(emb_vectors[f"fact {orig}"], 0.9, n)
                planted[text] = f"fact {orig}"
            else:
                v = 0.5 * centers[rng.integers(0, 40)] + 0.866 * normalise(rng.standard_normal((1, DIMS)))[0]
                emb_vectors[text] = normalise(v[None])[0]
            recs.append(fact(f"f{n}", text))
            n += 1
        batches.append(Batch(records=recs))
    results = {}
    for name, ann_above in (("exact", 10**9), ("ivf", 1000)):
        stage, emb = make(ann_above=ann_above, nprobe=8)
        emb.planted = emb_vectors
        merged: dict[str, str] = {}
        for batch in batches:
            merged.update(stage.dedup(batch).merged)
        results[name] = merged
        if name == "ivf":
            index = stage.indexes["mem"]
            assert index.stats()["mode"] == "ivf"
            assert 0 < index.last_compared < index.n * 500 / 4  # each query compared with a fraction of the facts
    exact, ivf = results["exact"], results["ivf"]
    assert len(exact) >= 0.95 * len(planted)
    assert len(set(ivf.items()) & set(exact.items())) >= 0.95 * len(exact)


def test_index_work_grows_far_slower_than_n_squared(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    index = CosineIndex(DIMS, tmp_path / "v.i8", ann_above=2000, nprobe=4)
    per_query = []
    for size in (4000, 16000):
        while index.n < size:
            index.add(normalise(rng.standard_normal((1000, DIMS))), np.arange(index.n, index.n + 1000))
        index.search(normalise(rng.standard_normal((200, DIMS))))
        per_query.append(index.last_compared / 200)
    assert per_query[1] < 0.1 * 16000  # a query looks at under a tenth of the index
    assert per_query[1] / per_query[0] < 3  # 4× the facts, well under 4× the work per query
    index.close()


def test_int8_codes_keep_cosines_within_a_few_thousandths() -> None:
    rng = np.random.default_rng(5)
    x = normalise(rng.standard_normal((200, 384)))
    x[0, 7] = 0.9  # an outlier dimension, as some models have
    x = normalise(x)
    codes, scales = encode(x)
    y = decode(codes, scales)
    assert codes.dtype == np.int8 and scales.dtype == np.float32
    err = np.abs(x @ x[:20].T - y @ x[:20].T)
    assert err.mean() < 3e-4 and err[1:].max() < 2e-3 and err[0].max() < 5e-3  # the outlier's scale is coarser
