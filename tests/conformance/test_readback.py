"""The read-back protocol of every sink (``fetch``, ``delete``, ``namespaces``, ``count``), which ``vexrun
compare``, a run's reconciliation and the recall facade use: records written through vexrun come back as they
were written (text and metadata exact, vectors within the store's precision), in the order asked, by vexrun's
ids (also those the store keys by something else); counts, namespaces and deletes agree with what was written.

Once after a run (``vexrun run``, in this process), read through ``connect()`` of a new sink; once through
the sink that wrote (``open()`` + ``write()``, no ``finalize()``), as a run's own reconciliation reads."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import vx
from vexrun.api import load_recipe, plan
from vexrun.build import build_sink, run_context
from vexrun.connectors.base import Capabilities, Sink
from vexrun.connectors.encoding import from_store, split_for, store_id, to_store
from vexrun.vmig import Batch, Record, VmigWriter

from .conftest import Running
from .test_conformance import DIMS, NASTY_IDS, _recipe, _records

N = 2000
MISSING = ["never-written", "mem-999999", str(uuid.UUID(int=2**100)), "4242424242", "mem:1 "]


def _records_with_every_type(n: int, seed: int = 1) -> tuple[list[Record], np.ndarray]:
    """The conformance records (scalars, lists of one and of mixed types, an empty list, null, unicode keys;
    VMIG metadata holds no nested objects), plus numbers at the edges and a list holding a null."""
    recs, vecs = _records(n, seed)
    for i, rec in enumerate(recs):
        assert rec.metadata is not None
        rec.metadata["edges"] = [-(2**63), 2**63 - 1, 1e-7, -1.5e300, -0.0]
        rec.metadata["holes"] = [None, f"h{i}"]
        rec.metadata["neg"] = -i
    return recs, vecs


def _write_input(path: Path, recs: list[Record], vecs: np.ndarray) -> None:
    with VmigWriter(path) as w:
        for rec, vec in zip(recs, vecs, strict=True):
            w.write(rec, vec)


def _sink(recipe: Path, store: Running, monkeypatch: pytest.MonkeyPatch) -> tuple[Sink, Capabilities | None]:
    """The recipe's target built in this process as a run builds it (its ``${VAR}``s from the kit's env)."""
    for name, value in store.kit.env.items():
        monkeypatch.setenv(name, value)
    compiled = plan(load_recipe(recipe))
    (spec,) = compiled.role("store")
    assert spec.plugin is not None
    return build_sink(spec, run_context(compiled)), spec.plugin.capabilities


def _assert_record(store: Running, got: Record, vec: np.ndarray | None, rec: Record, want: np.ndarray) -> None:
    assert got.id == rec.id
    assert got.text == rec.text, rec.id
    assert got.namespace == rec.namespace, rec.id
    assert got.metadata == rec.metadata, (rec.id, got.metadata)
    assert got.created_at == rec.created_at and got.score == rec.score, rec.id
    assert got.model == rec.model and got.source_store == rec.source_store, rec.id
    assert vec is not None, rec.id
    if store.kit.exact_float32:
        assert np.array_equal(vec.view(np.uint32), want.view(np.uint32)), rec.id
    else:
        cos = float(np.dot(vec, want) / (np.linalg.norm(vec) * np.linalg.norm(want)))
        assert cos >= 1 - 1e-6, (rec.id, cos)


def _check(store: Running, sink: Sink, caps: Capabilities | None, recs: list[Record], vecs: np.ndarray) -> None:
    n = len(recs)
    by_id = {rec.id: (rec, vecs[i]) for i, rec in enumerate(recs)}
    rng = np.random.default_rng(7)
    rest = recs[len(NASTY_IDS) :]
    sample = [rest[i].id for i in rng.choice(len(rest), size=200, replace=False)]  # each id asked once
    asked = [*sample, *NASTY_IDS, *MISSING]
    rng.shuffle(asked)
    present = [rid for rid in asked if rid in by_id]

    got = sink.fetch(asked)
    assert [r.id for r in got.records] == present
    for i, back in enumerate(got.records):
        _assert_record(store, back, got.vector(i), *by_id[back.id])
    # every record at once, as a full reconciliation reads (more ids than one request of most stores takes)
    everything = sink.fetch([rec.id for rec in reversed(recs)])
    assert [r.id for r in everything.records] == [rec.id for rec in reversed(recs)]
    for i, back in enumerate(everything.records):
        _assert_record(store, back, everything.vector(i), *by_id[back.id])
    # the store's own keys (what the runner wrote the records under) find the same records, with vexrun's ids
    keyed = sink.fetch([store_id(rid, caps) for rid in asked])
    assert [r.id for r in keyed.records] == present
    in_beta = sink.fetch(asked, namespace="beta")
    assert [r.id for r in in_beta.records] == [rid for rid in present if by_id[rid][0].namespace == "beta"]
    assert len(sink.fetch(MISSING)) == 0 and len(sink.fetch([])) == 0

    # a store that reads in its own order (``full``'s one pass) gives every record once, as written, with
    # vexrun's ids after decoding; for a store this run filled, in the order written
    try:
        scan = sink.scan(300)
    except NotImplementedError:
        scan = None
    if scan is not None:
        seen: list[str] = []
        for part in scan:
            assert 0 < len(part) <= 300
            back = from_store(part)
            for i, rec in enumerate(back.records):
                _assert_record(store, rec, back.vector(i), *by_id[rec.id])
            seen.extend(rec.id for rec in back.records)
        assert seen == [rec.id for rec in recs]

    alpha = sum(1 for rec in recs if rec.namespace == "alpha")
    beta = sum(1 for rec in recs if rec.namespace == "beta")
    assert sink.count() == n
    assert (sink.count("alpha"), sink.count("beta"), sink.count("nowhere")) == (alpha, beta, 0)
    # what the verification asks (a store may count them in one pass)
    assert sink.counts(["alpha", "beta", "nowhere"]) == (n, {"alpha": alpha, "beta": beta, "nowhere": 0})
    assert sink.namespaces() == ["alpha", "beta"]

    gone = [NASTY_IDS[0], NASTY_IDS[2], recs[-1].id]  # one keyed by a uuid5 in Qdrant, one long, one plain
    lost_alpha = sum(1 for rid in gone if by_id[rid][0].namespace == "alpha")
    assert sink.delete([*gone, *MISSING[:2]]) == 3
    assert sink.count() == n - 3
    assert sink.count("alpha") == alpha - lost_alpha
    assert sink.counts(["alpha"]) == (n - 3, {"alpha": alpha - lost_alpha})
    assert len(sink.fetch(gone)) == 0
    assert sink.delete(gone) == 0 and sink.delete(MISSING) == 0 and sink.delete([]) == 0
    # a namespace that does not hold the record deletes nothing
    other = next(rec for rec in recs[10:] if rec.namespace == "alpha")
    assert sink.delete([other.id], namespace="beta") == 0
    assert [r.id for r in sink.fetch([other.id]).records] == [other.id]
    assert sink.delete([other.id], namespace="alpha") == 1
    assert sink.count() == n - 4


def test_read_back_after_a_run(
    store: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    recs, vecs = _records_with_every_type(N)
    _write_input(tmp_path / "in.vmig.jsonl", recs, vecs)
    coll = f"rb_{uuid.uuid4().hex[:8]}"
    recipe = _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, store.target(coll))
    sink, caps = _sink(recipe, store, monkeypatch)  # sets the kit's environment for the run too
    code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 0, out + err
    assert json.loads(out)["rejected"] == 0
    try:
        sink.connect()
        _check(store, sink, caps, recs, vecs)
    finally:
        sink.close()


def test_read_back_in_the_writing_process(store: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recs, vecs = _records_with_every_type(300, seed=2)
    for rec in recs[20::7]:
        rec.namespace = None  # records without a namespace are counted, and in no namespace listed
    _write_input(tmp_path / "in.vmig.jsonl", recs, vecs)
    coll = f"rw_{uuid.uuid4().hex[:8]}"
    recipe = _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, store.target(coll))
    sink, caps = _sink(recipe, store, monkeypatch)
    try:
        sink.open(None)
        sink.prepare(DIMS, "fake-64")
        stored = to_store(Batch.from_records(recs, list(vecs)), caps)
        for part in split_for(stored, caps):
            result = sink.write(part)
            assert not result.rejected, result.rejected
        _check(store, sink, caps, recs, vecs)
    finally:
        sink.close()


def test_reading_a_target_that_does_not_exist(store: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading back a collection nobody wrote is one clear error, not a traceback from the SDK."""
    from vexrun.errors import VexrunError

    _write_input(tmp_path / "in.vmig.jsonl", [], np.zeros((0, DIMS), dtype=np.float32))
    target: dict[str, Any] = store.target(f"none_{uuid.uuid4().hex[:8]}")
    recipe = _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, target)
    sink, _ = _sink(recipe, store, monkeypatch)
    try:
        with pytest.raises(VexrunError):
            sink.connect()
            sink.count()
    finally:
        sink.close()


def _flat(options: dict[str, Any], prefix: str = "") -> list[str]:
    """A connector's settings as ``-t KEY=VALUE`` flags (dotted keys for nested ones), its type left out."""
    out: list[str] = []
    for key, value in options.items():
        if key == "type" and not prefix:
            continue
        if isinstance(value, dict):
            out += _flat(value, f"{prefix}{key}.")
        else:
            out += ["-t", f"{prefix}{key}={value}"]
    return out


def test_records_a_target_lost_are_named_by_compare_and_written_again_by_the_next_run(
    store: Running, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Issue 12's acceptance on every store: 3 records deleted from the target after a migration make ``vexrun
    compare`` exit 5 naming them, and the next ``vexrun run`` of the same recipe writes them again and exits 0."""
    recs, vecs = _records_with_every_type(300, seed=3)
    _write_input(tmp_path / "in.vmig.jsonl", recs, vecs)
    target = store.target(f"lr_{uuid.uuid4().hex[:8]}")
    recipe = _recipe(tmp_path / "import.yaml", {"type": "vmig", "path": "in.vmig.jsonl"}, target)
    sink, _ = _sink(recipe, store, monkeypatch)  # sets the kit's environment for the runs too
    code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 0, out + err
    gone = [recs[len(NASTY_IDS)].id, recs[150].id, recs[-1].id]
    try:
        sink.connect()
        assert sink.delete(gone) == 3
    finally:
        sink.close()
    side = ["--from", "vmig", "-f", f"path={tmp_path / 'in.vmig.jsonl'}", "--to", target["type"], *_flat(target)]
    code, out, err = vx(capsys, "compare", "--json", *side)
    assert code == 5, out + err
    doc = json.loads(out)
    assert sorted(doc["missing_ids"]) == sorted(gone) and (doc["extra"], doc["changed"]) == (0, 0), doc
    code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 0, out + err
    code, out, err = vx(capsys, "compare", "--json", *side)
    assert code == 0 and json.loads(out)["equal"] == len(recs), out + err
