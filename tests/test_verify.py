"""Every migration proves itself: run.verify after a run (exit 5 on a difference) and `vexrun compare`."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from conftest import vx
from vexrun.ids import id_hashes
from vexrun.testing import memory
from vexrun.verify import ledger as ledger_module
from vexrun.verify.diff import differs
from vexrun.verify.ledger import Ledger, keep_fraction, sample_size
from vexrun.vmig import Record, VmigWriter
from vexrun.vmig.batch import Batch

N = 600


def _write(path: Path, n: int = N, *, drop: set[str] = frozenset(), change: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    rng = np.random.default_rng(7)
    vecs = rng.standard_normal((n, 16)).astype(np.float32)
    with VmigWriter(path) as w:
        for i in range(n):
            rid = f"mem-{i:04d}"
            if rid in drop:
                continue
            text = f"memory {i}" + (" (edited)" if rid in change else "")
            meta: dict[str, Any] = {"i": i, "tags": [f"t{i % 3}"], "w": i / 7}
            w.write(Record(id=rid, text=text, model="m16", namespace=("alpha", "beta")[i % 2], metadata=meta), vecs[i])


def _recipe(tmp: Path, target: dict[str, Any], **run: Any) -> Path:
    path = tmp / "r.yaml"
    doc = {
        "version": 1,
        "source": {"type": "vmig", "path": "in.vmig.jsonl"},
        "target": target,
        "run": {"batch_size": 100, **run},
    }
    path.write_text(yaml.safe_dump(doc))
    return path


def test_differs_rules() -> None:
    rec = Record(id="a", text="t", namespace="n", metadata={"k": [1, 2]})
    vec = np.array([3.0, 4.0], dtype=np.float32)
    assert differs((rec, vec), (rec, vec.copy())) is None
    assert differs((rec, vec), (Record(id="a", text="u", namespace="n", metadata={"k": [1, 2]}), vec)) == "text differs"
    other_meta = Record(id="a", text="t", namespace="n", metadata={"k": [1]})
    assert differs((rec, vec), (other_meta, vec)) == "metadata differs (k)"
    assert differs((rec, vec), (Record(id="a", text="t", namespace="m", metadata={"k": [1, 2]}), vec)).startswith(
        "namespace"
    )
    assert differs((rec, vec), (rec, vec + 1e-3)) == "vector differs"
    assert differs((rec, vec), (rec, None)) == "vector missing"
    # a store that normalises: equal after normalising, not before
    assert differs((rec, vec), (rec, vec / 5), normalized=True) is None
    assert differs((rec, vec), (rec, vec / 5)) == "vector differs"
    # within the float32 precision a store declares: 1e-6 relative (float64 stores round-trip through text)
    assert differs((rec, vec), (rec, (vec * (1 + 5e-7)).astype(np.float32))) is None
    assert differs((rec, vec), (rec, (vec * (1 + 5e-6)).astype(np.float32))) == "vector differs"
    assert differs((rec, vec), (rec, np.array([3.0, np.nan], dtype=np.float32))) == "vector differs"
    assert differs((rec, vec), (rec, np.ones(3, dtype=np.float32))) == "vector has 3 dims, expected 2"


def test_ledger_sample_is_seeded_and_survives_resume(tmp_path: Path) -> None:
    recs = [Record(id=f"r{i}", text=str(i), namespace="n" if i % 2 else None) for i in range(5000)]
    vecs = np.ones((5000, 4), dtype=np.float32)
    batch = Batch(records=recs, vectors=vecs, has_vector=np.ones(5000, dtype=bool))
    assert keep_fraction("sample", 1000, 5000) == 0.4
    assert keep_fraction("full", 1000, 5000) == 1.0 and keep_fraction("count", 1000, None) == 0.0
    assert sample_size(1000, 500_000) == 5000 and sample_size(1000, 300) == 300
    a = Ledger(tmp_path / "a.sqlite", run_id=1, keep=0.4, resume_batches=None)
    a.add("t", 1, batch, {"r1"})
    assert a.counts("t") == {"": 2500, "n": 2499}
    first = [r.id for r, _ in a.sample("t", 50)]
    b = Ledger(tmp_path / "b.sqlite", run_id=1, keep=0.4, resume_batches=None)
    b.add("t", 1, Batch(records=recs[::-1], vectors=vecs, has_vector=np.ones(5000, dtype=bool)))
    assert [r.id for r, _ in b.sample("t", 50)][:10] == [i for i in first if i != "r1"][:10]
    a.add("t", 2, Batch(records=[Record(id="late", text="x")], vectors=np.ones((1, 4), np.float32)))
    a.close()
    # resumed at batch 1: the rows of the batch the checkpoint never committed are gone
    resumed = Ledger(tmp_path / "a.sqlite", run_id=1, keep=0.9, resume_batches=1)
    assert resumed.keep == 0.4 and sum(resumed.counts("t").values()) == 4999
    resumed.close()
    # a new run starts empty
    again = Ledger(tmp_path / "a.sqlite", run_id=2, keep=0.4, resume_batches=None)
    assert again.counts("t") == {}
    again.close()
    b.close()


@pytest.mark.parametrize("passes", ["one pass", "many passes"])
def test_ledger_last_write_wins_across_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, passes: str) -> None:
    """An id written again (here into another namespace) counts once, where it was written last; ids() and
    smallest() name each id once, with that namespace, and smallest() agrees with a sort of the hashes; the
    same when the ledger is read in passes over shares of the hashes (as for runs of millions of records)."""
    if passes == "many passes":
        monkeypatch.setattr(ledger_module, "PASS_WRITES", 64)
    vec = np.ones((1, 4), dtype=np.float32)
    led = Ledger(tmp_path / "l.sqlite", run_id=3, keep=0.5, resume_batches=None)
    for b in range(1, 21):
        recs = [Record(id=f"r{(b * 37 + i) % 300}", text="t", namespace=f"n{b % 3}") for i in range(50)]
        led.add("t", b, Batch(records=recs, vectors=np.repeat(vec, 50, axis=0)), {"r7"})
    last: dict[str, str] = {}
    for b in range(1, 21):
        for i in range(50):
            rid = f"r{(b * 37 + i) % 300}"
            if rid != "r7":
                last[rid] = f"n{b % 3}"
    want = {ns: sum(1 for v in last.values() if v == ns) for ns in set(last.values())}
    assert led.counts("t") == want and led.total("t") == len(last)
    named = [pair for chunk in led.ids("t", chunk=64) for pair in chunk]
    assert sorted(named) == sorted(last.items())
    assert sorted(p for c in led.ids("t", "n1") for p in c) == sorted(p for p in last.items() if p[1] == "n1")
    assert list(led.ids("t", "nowhere")) == []
    hashes = id_hashes(b"vexrun-verify\x1f" + i.encode() for i in last)
    by_hash = [rid for _, rid in sorted(zip(hashes.tolist(), last, strict=True))]
    assert [rid for rid, _ in led.smallest("t", 25)] == by_hash[:25]
    assert all(last[rid] == ns for rid, ns in led.smallest("t", 25))
    kept = [r.id for r, _ in led.sample("t", 1000)]
    assert kept == [rid for rid in by_hash if rid in set(kept)] and 0 < len(kept) < len(last)
    parts = list(led.sample_chunks("t", 1000, chunk=64))
    assert max(map(len, parts)) == 64 and [r.id for part in parts for r, _ in part] == kept
    led.close()
    ro = Ledger.reader(tmp_path / "l.sqlite")
    assert ro.counts("t") == want
    ro.close()


def test_ledger_keeps_the_last_write_of_each_id_and_starts_a_previous_layout_again(tmp_path: Path) -> None:
    """``full`` keeps every record: kept() gives each id once, its last write, in the order written; a ledger of
    the previous layout (records keyed by id in a WITHOUT ROWID table, an index on the hash) is made again."""
    path = tmp_path / "l.sqlite"
    old = sqlite3.connect(path)
    old.executescript(
        """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE kept (sink TEXT NOT NULL, id TEXT NOT NULL, ns TEXT NOT NULL, batch INTEGER NOT NULL,
            h INTEGER NOT NULL, rec BLOB NOT NULL, vec BLOB, PRIMARY KEY (sink, id)) WITHOUT ROWID;
        CREATE INDEX kept_h ON kept (sink, h);
        INSERT INTO meta VALUES ('run', '4'), ('keep', '1.0'), ('layout', '2');
        """
    )
    old.commit()
    old.close()
    led = Ledger(path, run_id=4, keep=1.0, resume_batches=2)  # a resume across the change starts again
    vec, has = np.ones((3, 4), dtype=np.float32), np.ones(3, dtype=bool)
    led.add("t", 1, Batch(records=[Record(id=i, text="first") for i in ("c", "a", "b")], vectors=vec, has_vector=has))
    second = [Record(id=i, text="second") for i in ("d", "a")]
    led.add("t", 2, Batch(records=second, vectors=vec[:2] * 2, has_vector=has[:2]))
    got = [(r.id, r.text, float(v[0])) for chunk in led.kept("t", chunk=2) for r, v in chunk if v is not None]
    assert got == [("c", "first", 1.0), ("b", "first", 1.0), ("d", "second", 2.0), ("a", "second", 2.0)]
    assert led.total("t") == 4
    led.close()
    db = sqlite3.connect(path)
    assert db.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone() == ("3",)
    assert db.execute("SELECT name FROM sqlite_master WHERE name = 'kept_h'").fetchall() == []
    db.close()


def test_a_ledger_of_unknown_size_lowers_its_share_and_keeps_the_same_sample(tmp_path: Path) -> None:
    """A run whose size is unknown (a file without its sidecar, an export) starts keeping every record and lowers
    the share as it grows: it ends keeping about what a share chosen knowing the size keeps, its sample is the
    one a ledger keeping everything gives, and a resume picks the share up where it was."""
    rng = np.random.default_rng(3)
    batches = []
    for b in range(40):
        recs = [Record(id=f"r{b}-{i}-{rng.integers(1 << 30)}", text=str(i)) for i in range(500)]
        batches.append(Batch(records=recs, vectors=np.ones((500, 4), np.float32), has_vector=np.ones(500, bool)))
    every = Ledger(tmp_path / "every.sqlite", run_id=1, keep=1.0, resume_batches=None)
    grown = Ledger(tmp_path / "grown.sqlite", run_id=1, keep=1.0, resume_batches=None, shrink=200)
    for no, batch in enumerate(batches[:25], 1):
        every.add("t", no, batch)
        grown.add("t", no, batch)
    assert 0.02 <= grown.keep < 0.04 * 1.5  # need after 12,500 records: max(2%, 400 / 12,500) = 3.2%
    grown.add("t", 26, batches[25])  # a batch the checkpoint never committed
    grown.close()
    resumed = Ledger(tmp_path / "grown.sqlite", run_id=1, keep=1.0, resume_batches=25, shrink=200)
    assert resumed.keep < 0.04 * 1.5
    for no, batch in enumerate(batches[25:], 26):
        every.add("t", no, batch)
        resumed.add("t", no, batch)
    total = 40 * 500
    kept = resumed.db.execute("SELECT COUNT(*) FROM kept").fetchone()[0]
    assert 0.02 <= resumed.keep < 0.04 and kept <= 0.04 * total * 1.2, (resumed.keep, kept)
    k = sample_size(200, total)
    assert kept >= k
    assert [r.id for r, _ in resumed.sample("t", k)] == [r.id for r, _ in every.sample("t", k)]
    assert sum(resumed.counts("t").values()) == total
    every.close()
    resumed.close()


def test_a_sample_run_of_a_file_without_its_sidecar_keeps_a_share(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path / "in.vmig.jsonl", 6000)
    (tmp_path / "in.vmig.jsonl.meta.json").unlink()  # the size is unknown before the run reads the file
    memory.reset("verify-unknown-size")
    recipe = _recipe(tmp_path, {"type": "memory", "name": "verify-unknown-size"}, verify="sample")
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    assert code == 0, out
    summary = json.loads(out)
    assert summary["verify"]["target (memory)"]["checked"] == 1000
    db = sqlite3.connect(Path(summary["state_dir"]) / "ledger.sqlite")
    kept = db.execute("SELECT COUNT(*) FROM kept").fetchone()[0]
    db.close()
    assert 1000 <= kept <= 3000, kept  # a share of max(2%, 2,000 / 6,000): 2,000 expected; it was all 6,000


@pytest.mark.parametrize("mode", ["sample", "count", "full"])
def test_run_verifies_its_target(tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str) -> None:
    _write(tmp_path / "in.vmig.jsonl")
    name = f"verify-ok-{mode}"
    memory.reset(name)
    recipe = _recipe(tmp_path, {"type": "memory", "name": name}, verify=mode)
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    assert code == 0, out
    fig = json.loads(out)["verify"]["target (memory)"]
    assert fig["verified"] and fig["mode"] == mode
    assert fig["expected"] == {"alpha": N // 2, "beta": N // 2}
    assert fig["held"] == {"alpha": N // 2, "beta": N // 2, "": N}
    assert fig["missing"] == fig["changed"] == 0
    assert fig["checked"] == {"sample": N, "count": 0, "full": N}[mode]  # sample: 1,000 > 600 records: all


@pytest.mark.parametrize("mode", ["sample", "count", "full"])
def test_a_lossy_target_fails_the_run_with_exit_5(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    _write(tmp_path / "in.vmig.jsonl")
    name = f"verify-lossy-{mode}"
    memory.reset(name)
    lost = ["mem-0003", "mem-0250", "mem-0598"]
    recipe = _recipe(tmp_path, {"type": "memory", "name": name, "lose": lost}, verify=mode)
    code, out, err = vx(capsys, "run", str(recipe), "--progress", "none")
    assert code == 5, out + err
    assert "verify target (memory) (" in out and "DIFFERS: 3 missing" in out
    named = out.split("first missing: ")[1].splitlines()[0]
    assert sorted(named.split(", ")) == ["'mem-0003'", "'mem-0250'", "'mem-0598'"]  # named in every mode
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    fig = json.loads(out)["verify"]["target (memory)"]
    assert code == 5 and sorted(fig["missing_ids"]) == lost and fig["namespaces"]["alpha"]["missing"] == 2


def test_verify_off_and_unverifiable_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write(tmp_path / "in.vmig.jsonl")
    memory.reset("verify-off")
    recipe = _recipe(tmp_path, {"type": "memory", "name": "verify-off", "lose": ["mem-0001"]}, verify="off")
    text = recipe.read_text()
    recipe.write_text(text.replace("verify: 'off'", "verify: off"))  # as users write it: YAML 1.1 reads false
    assert "verify: off\n" in recipe.read_text()
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    assert code == 0 and json.loads(out)["verify"] == {}
    assert not (tmp_path / ".vexrun").exists() or not list((tmp_path / ".vexrun").rglob("ledger.sqlite"))


def test_compare_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    os.chdir(tmp_path)
    _write(tmp_path / "a.vmig.jsonl")
    _write(tmp_path / "b.vmig.jsonl", drop={"mem-0003", "mem-0050", "mem-0077"}, change={"mem-0009"})
    code, out, _ = vx(
        capsys, "compare", "--from", "vmig", "-f", "path=a.vmig.jsonl", "--to", "vmig", "-t", "path=a.vmig.jsonl"
    )
    assert code == 0 and out.strip().endswith("equal")
    code, out, _ = vx(
        capsys, "compare", "--from", "vmig", "-f", "path=a.vmig.jsonl", "--to", "vmig", "-t", "path=b.vmig.jsonl"
    )
    assert code == 5
    assert "3 missing [alpha: 1, beta: 2]: 'mem-0003', 'mem-0050', 'mem-0077'" in out
    assert "1 changed: 'mem-0009' (text differs)" in out
    code, out, _ = vx(
        capsys,
        "compare",
        "--from",
        "vmig",
        "-f",
        "path=b.vmig.jsonl",
        "--to",
        "vmig",
        "-t",
        "path=a.vmig.jsonl",
        "--json",
    )
    doc = json.loads(out)
    assert code == 5 and doc["extra_ids"] == ["mem-0003", "mem-0050", "mem-0077"] and doc["missing"] == 0
    assert doc["source_records"] == N - 3 and doc["target_records"] == N and doc["identical"] is False
    assert not (tmp_path / ".vexrun").exists()  # compare writes nothing


def test_compare_store_by_fetch_and_rerun_rewrites_lost_records(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Records deleted from a target after a migration: compare exits 5 naming them; the next run of the same
    recipe writes them again and exits 0."""
    os.chdir(tmp_path)
    _write(tmp_path / "in.vmig.jsonl")
    store = tmp_path / "store.json"
    recipe = _recipe(tmp_path, {"type": "memory", "name": "cmp", "path": "store.json"})
    memory.reset("cmp")
    assert vx(capsys, "run", str(recipe), "--progress", "none")[0] == 0
    side = ["--from", "vmig", "-f", "path=in.vmig.jsonl", "--to", "memory", "-t", "name=cmp", "-t", f"path={store}"]
    assert vx(capsys, "compare", *side)[0] == 0
    # a store-side loss: deleted behind vexrun's back
    from vexrun.registry import resolve

    spec = resolve("sink", "memory")
    sink = spec.implementation()(spec.config_model()(name="cmp", path=str(store)), _ctx(tmp_path))
    sink.connect()
    assert sink.delete(["mem-0010", "mem-0011", "mem-0400"]) == 3
    code, out, _ = vx(capsys, "compare", *side)
    assert code == 5 and "3 missing [alpha: 2, beta: 1]: 'mem-0010', 'mem-0011', 'mem-0400'" in out
    code, out, _ = vx(capsys, "run", str(recipe), "--progress", "none")
    assert code == 0, out
    assert vx(capsys, "compare", *side)[0] == 0


def _ctx(tmp: Path) -> Any:
    from vexrun.connectors.base import RunContext

    return RunContext(state_dir=tmp / "state", recipe_dir=tmp)


def test_full_compares_digests_and_reads_the_ledgers_copy_only_where_they_differ(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run.verify: full`` on a float32 store checks each record read back against the digests the ledger kept;
    only records whose digests differ are compared with the ledger's copy, which finds the reason and applies
    the comparison's tolerances (a vector 1 ulp off, an integer given back as a float are equal)."""
    from vexrun.build import build_sink
    from vexrun.connectors.base import RunContext
    from vexrun.registry import resolve
    from vexrun.stages.base import StageSpec
    from vexrun.verify.reconcile import reconcile

    _write(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path, {"type": "sqlite", "path": "out.db"}, verify="full")
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    fig = json.loads(out)["verify"]["target (sqlite)"]
    assert code == 0 and fig["checked"] == fig["equal"] == N
    db = sqlite3.connect(tmp_path / "out.db")
    vec = np.frombuffer(db.execute("SELECT vector FROM records WHERE id = 'mem-0002'").fetchone()[0], "<f4").copy()
    vec[3] = np.nextafter(vec[3], np.float32(np.inf))
    with db:
        db.execute("UPDATE records SET text = 'rewritten' WHERE id = 'mem-0001'")
        db.execute("UPDATE records SET vector = ? WHERE id = 'mem-0002'", (vec.tobytes(),))
        db.execute("UPDATE records SET vector = ? WHERE id = 'mem-0004'", ((vec * 2).tobytes(),))
        db.execute("UPDATE records SET metadata = json_set(metadata, '$.i', 5.0) WHERE id = 'mem-0005'")
        db.execute("DELETE FROM records WHERE id = 'mem-0006'")
        db.execute("UPDATE records SET namespace = 'alpha' WHERE id = 'mem-0007'")
    db.close()

    (path,) = tmp_path.glob(".vexrun/state/*/ledger.sqlite")
    led = Ledger.reader(path)
    assert led.has_digests("target (sqlite)")
    asked: list[str] = []
    kept_items = Ledger.kept_items

    def spy(self: Ledger, sink: str, ids: list[str]) -> Any:
        asked.extend(ids)
        return kept_items(self, sink, ids)

    monkeypatch.setattr(Ledger, "kept_items", spy)
    spec = resolve("sink", "sqlite")
    st = StageSpec("sink", "t", {}, role="sink", config=spec.config_model()(path=str(tmp_path / "out.db")), plugin=spec)
    sink = build_sink(st, RunContext(state_dir=tmp_path, recipe_dir=tmp_path))
    sink.connect()
    try:
        result = reconcile(sink, spec.capabilities, "target (sqlite)", led, "full", 1000)
    finally:
        sink.close()
        led.close()
    assert sorted(asked) == ["mem-0001", "mem-0002", "mem-0004", "mem-0005", "mem-0007"]
    d = result.diff
    assert d.checked == N and d.equal == N - 4 and d.missing_ids == ["mem-0006"]
    assert sorted(d.changed_ids) == [
        ("mem-0001", "text differs"),
        ("mem-0004", "vector differs"),
        ("mem-0007", "namespace is 'alpha', expected 'beta'"),
    ]


def test_full_takes_a_namespace_the_target_gave_for_the_digests_of_a_record_written_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Records written without a namespace into a store that sets its own (``namespace:`` of the local store)
    are equal (a namespace is only compared when one was written), and their digests say so: the ledger's copies
    are never read."""
    with VmigWriter(tmp_path / "in.vmig.jsonl") as w:
        for i in range(300):
            w.write(Record(id=f"m{i}", text=f"t{i}", metadata={"i": i}), np.full(8, i, dtype=np.float32))
    asked: list[str] = []
    kept_items = Ledger.kept_items

    def spy(self: Ledger, sink: str, ids: list[str]) -> Any:
        asked.extend(ids)
        return kept_items(self, sink, ids)

    monkeypatch.setattr(Ledger, "kept_items", spy)
    recipe = _recipe(tmp_path, {"type": "sqlite", "path": "out.db", "namespace": "given"}, verify="full")
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    fig = json.loads(out)["verify"]["target (sqlite)"]
    assert code == 0 and fig["checked"] == fig["equal"] == 300, fig
    assert asked == []


def test_only_a_full_ledger_keeps_digests(tmp_path: Path) -> None:
    """``sample`` keeps every record of a small run too, but only ``full`` checks digests: only it pays for them."""
    batch = Batch(records=[Record(id=i, text=i) for i in "abc"], vectors=np.ones((3, 4), np.float32))
    for digests in (False, True):
        led = Ledger(tmp_path / f"{digests}.sqlite", run_id=1, keep=1.0, resume_batches=None, digests=digests)
        led.add("t", 1, batch, {"b"})
        assert led.has_digests("t") is digests
        if digests:
            assert [(rid, ns) for rows in led.digests("t") for rid, ns, _, _ in rows] == [("a", ""), ("c", "")]
        led.close()


def test_full_reads_a_target_in_write_order_in_one_pass_and_by_id_from_where_it_departs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``full`` on the local store reads it in ``seq`` order alongside the ledger's chunks (no id looked up
    while each batch holds the chunk's ids); from the first batch that does not (here a deleted record), it reads
    by id, and every difference is still found."""
    from vexrun.build import build_sink
    from vexrun.connectors.sqlite.sink import SqliteSink
    from vexrun.registry import resolve
    from vexrun.stages.base import StageSpec

    reconcile_module = importlib.import_module("vexrun.verify.reconcile")  # the package's name is the function
    asked: list[str] = []
    fetch = SqliteSink.fetch

    def spy(self: SqliteSink, ids: Any, namespace: str | None = None) -> Batch:
        asked.extend(ids)
        return fetch(self, ids, namespace)

    monkeypatch.setattr(SqliteSink, "fetch", spy)
    monkeypatch.setattr(reconcile_module, "_CHUNK", 100)
    _write(tmp_path / "in.vmig.jsonl")
    recipe = _recipe(tmp_path, {"type": "sqlite", "path": "out.db"}, verify="full")
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    fig = json.loads(out)["verify"]["target (sqlite)"]
    assert code == 0 and fig["checked"] == fig["equal"] == N
    assert asked == []  # the run's own check: one pass, no lookups

    db = sqlite3.connect(tmp_path / "out.db")
    with db:
        db.execute("UPDATE records SET text = 'rewritten' WHERE id = 'mem-0150'")
        db.execute("UPDATE records SET vector = zeroblob(64) WHERE id = 'mem-0420'")
        db.execute("DELETE FROM records WHERE id = 'mem-0530'")
    db.close()
    (path,) = tmp_path.glob(".vexrun/state/*/ledger.sqlite")
    led = Ledger.reader(path)
    spec = resolve("sink", "sqlite")
    st = StageSpec("sink", "t", {}, role="sink", config=spec.config_model()(path=str(tmp_path / "out.db")), plugin=spec)
    sink = build_sink(st, _ctx(tmp_path))
    sink.connect()
    try:
        result = reconcile_module.reconcile(sink, spec.capabilities, "target (sqlite)", led, "full", 1000)
    finally:
        sink.close()
        led.close()
    assert asked == [f"mem-{i:04d}" for i in range(500, 600)]  # the sixth chunk on, by id
    d = result.diff
    assert d.checked == N and d.equal == N - 3 and d.missing_ids == ["mem-0530"]
    assert sorted(d.changed_ids) == [("mem-0150", "text differs"), ("mem-0420", "vector differs")]


def test_full_of_a_target_that_held_other_records_first_reads_by_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's order is not the run's (another run's records come first): the one-pass read gives up at
    its first batch and the run's records are looked up by id; the other records are not the run's business."""
    from vexrun.connectors.sqlite.sink import SqliteSink

    with VmigWriter(tmp_path / "other.vmig.jsonl") as w:
        for i in range(50):
            w.write(Record(id=f"other-{i}", text=f"o{i}", model="m16"), np.full(16, i, dtype=np.float32))
    other = _recipe(tmp_path, {"type": "sqlite", "path": "out.db"}, verify="off")
    other.write_text(other.read_text().replace("in.vmig.jsonl", "other.vmig.jsonl"))
    assert vx(capsys, "run", str(other), "--progress", "none")[0] == 0
    _write(tmp_path / "in.vmig.jsonl")
    asked: list[str] = []
    fetch = SqliteSink.fetch

    def spy(self: SqliteSink, ids: Any, namespace: str | None = None) -> Batch:
        asked.extend(ids)
        return fetch(self, ids, namespace)

    monkeypatch.setattr(SqliteSink, "fetch", spy)
    recipe = _recipe(tmp_path, {"type": "sqlite", "path": "out.db"}, verify="full")
    code, out, _ = vx(capsys, "run", str(recipe), "--json", "--progress", "none")
    fig = json.loads(out)["verify"]["target (sqlite)"]
    assert code == 0 and fig["checked"] == fig["equal"] == N and fig["held"][""] == N + 50, fig
    assert sorted(asked) == [f"mem-{i:04d}" for i in range(N)]


def test_in_order_accepts_the_same_ids_in_another_order_only() -> None:
    from vexrun.verify.ledger import DigestChunk
    from vexrun.verify.reconcile import _in_order

    zeros = np.zeros(3, np.uint64)
    rows = DigestChunk(["a", "b", "c"], np.zeros(3, np.int64), [""], zeros, zeros)

    def got(*ids: str) -> Batch:
        return Batch(records=[Record(id=i) for i in ids])

    assert _in_order(rows, got("a", "b", "c")).tolist() == [0, 1, 2]  # type: ignore[union-attr]
    assert _in_order(rows, got("c", "a", "b")).tolist() == [1, 2, 0]  # type: ignore[union-attr]
    assert _in_order(rows, got("a", "b", "d")) is None
    assert _in_order(rows, got("a", "a", "b")) is None
    assert _in_order(rows, got("a", "b")) is None
