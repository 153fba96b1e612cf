"""The ``type: memory`` test sink (vexrun.testing.memory): idempotent upserts, each fault firing exactly at its
point / moment / call with its action, the persisted file round-tripping, and a recipe that "dies" in a write
ending, after the same command again, with the store an uninterrupted run makes."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from conftest import DATA, run_cli
from vexrun.connectors.base import Edge, RunContext
from vexrun.errors import Terminal, Transient, VexrunError
from vexrun.testing import memory
from vexrun.testing.memory import (
    EXIT_CODE,
    MemorySink,
    MemorySinkConfig,
    SimulatedCrash,
    SimulatedTerminalError,
    SimulatedTransientError,
)
from vexrun.vmig import Record
from vexrun.vmig.batch import Batch

POINTS = ["open", "prepare", "write", "write_edges", "finalize"]


@pytest.fixture(autouse=True)
def _clean() -> Iterator[None]:
    memory.reset()
    yield
    memory.reset()


def _sink(
    tmp: Path, *, name: str = "t", path: str | None = None, faults: list[dict[str, Any]] | None = None
) -> MemorySink:
    cfg = MemorySinkConfig.model_validate({"type": "memory", "name": name, "path": path, "faults": faults or []})
    return MemorySink(cfg, RunContext(state_dir=tmp / "state", recipe_dir=tmp))


def _batch(start: int, n: int, *, dims: int = 4, text: str = "t") -> Batch:
    recs = [
        Record(id=f"r{i}", text=f"{text}{i}", metadata={"k": [i, "x", None], "flag": i % 2 == 0})
        for i in range(start, start + n)
    ]
    vecs = np.arange(start * dims, (start + n) * dims, dtype=np.float32).reshape(n, dims)
    return Batch(records=recs, vectors=vecs, has_vector=np.ones(n, dtype=bool))


def _call(sink: MemorySink, point: str, i: int = 0) -> None:
    """Call ``point`` once, with data that differs per call ``i``."""
    if point == "open":
        sink.open(None)
    elif point == "prepare":
        sink.prepare(4, f"model-{i}")
    elif point == "write":
        sink.write(_batch(i * 10, 2))
    elif point == "write_edges":
        sink.write_edges([Edge(f"r{i}", f"r{i + 1}", "temporal")])
    else:
        sink.finalize()


def test_upserts_by_id_are_idempotent(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.open(None)
    sink.prepare(4, "m")
    assert sink.write(_batch(0, 5)).written == 5
    first = memory.contents("t")
    assert sink.write(_batch(0, 5)).written == 5  # the same batch again changes nothing
    assert memory.contents("t") == first and len(first) == 5
    sink.write(_batch(3, 4, text="new"))  # r3, r4 replaced, r5, r6 added
    now = memory.contents("t")
    assert sorted(now) == [f"r{i}" for i in range(7)]
    assert now["r3"][0].text == "new3" and now["r0"][0].text == "t0"
    assert np.frombuffer(now["r3"][1] or b"", dtype=np.float32).tolist() == [12.0, 13.0, 14.0, 15.0]
    sink.write_edges([Edge("r0", "r1", "temporal"), Edge("r0", "r1", "temporal", 0.5), Edge("r1", "r2", "tag")])
    assert memory.edges("t")[("r0", "r1", "temporal")].weight == 0.5 and len(memory.edges("t")) == 2
    assert sink.state() == {"records": 7, "edges": 2}
    # a second sink on the same name sees the same store; another name is another store
    assert len(memory.contents("t")) == 7 and memory.contents("other") == {}
    memory.reset("t")
    assert memory.contents("t") == {}


def test_records_without_vectors_are_kept(tmp_path: Path) -> None:
    sink = _sink(tmp_path)
    sink.write(Batch(records=[Record(id="a", text="x")]))
    assert memory.contents("t")["a"][1] is None


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("point", POINTS)
def test_a_fault_fires_on_its_call_only(tmp_path: Path, point: str, when: str) -> None:
    sink = _sink(tmp_path, faults=[{"point": point, "when": when, "batch": 2, "error": "terminal"}])
    for other in POINTS:  # other points never fire
        if other != point:
            _call(sink, other, 0)
            _call(sink, other, 1)
    _call(sink, point, 0)  # call 1: nothing
    records, edges = len(memory.contents("t")), len(memory.edges("t"))
    with pytest.raises(SimulatedTerminalError, match=rf"simulated fault {when} {point} #2"):
        _call(sink, point, 1)
    grew = (len(memory.contents("t")), len(memory.edges("t"))) != (records, edges)
    if point in ("write", "write_edges"):
        assert grew == (when == "after"), "'after' faults fire once the work is done, 'before' ones before it"
    _call(sink, point, 2)  # call 3: nothing (and a fault fires once)
    again = _sink(tmp_path, faults=[{"point": point, "when": when, "batch": 2, "error": "terminal"}])
    _call(again, point, 0)
    _call(again, point, 1)  # the store remembers that it fired


def test_actions_and_error_kinds(tmp_path: Path) -> None:
    transient = _sink(tmp_path, name="a", faults=[{"point": "write", "batch": 1}])
    with pytest.raises(SimulatedTransientError) as err:
        transient.write(_batch(0, 1))
    assert isinstance(err.value, VexrunError) and isinstance(err.value, Transient) and err.value.exit_code == 1
    terminal = _sink(tmp_path, name="b", faults=[{"point": "write", "batch": 1, "error": "terminal"}])
    with pytest.raises(SimulatedTerminalError) as err2:
        terminal.write(_batch(0, 1))
    assert isinstance(err2.value, Terminal) and not isinstance(err2.value, Transient)
    crash = _sink(tmp_path, name="c", faults=[{"point": "finalize", "batch": "every", "action": "crash"}])
    with pytest.raises(SimulatedCrash):
        try:
            crash.finalize()
        except Exception:  # noqa: BLE001 - the point: no ordinary handler sees a crash
            pytest.fail("a SimulatedCrash was caught by `except Exception`")
    assert not issubclass(SimulatedCrash, Exception)


def test_every_and_repeated_faults(tmp_path: Path) -> None:
    sink = _sink(tmp_path, faults=[{"point": "write", "batch": "every", "once": False}])
    for i in range(3):
        with pytest.raises(SimulatedTransientError, match=f"#{i + 1}"):
            sink.write(_batch(i, 1))
    once = _sink(tmp_path, name="o", faults=[{"point": "write", "batch": "every"}])
    with pytest.raises(SimulatedTransientError):
        once.write(_batch(0, 1))
    once.write(_batch(0, 1))


def _fired(sink: MemorySink, n: int) -> list[int]:
    out = []
    for i in range(n):
        try:
            sink.write(_batch(i, 1))
        except SimulatedTransientError:
            out.append(i + 1)
    return out


def test_seeded_probability_is_reproducible(tmp_path: Path) -> None:
    fault = {"point": "write", "probability": 0.3, "seed": 7, "once": False}
    first = _fired(_sink(tmp_path, name="x", faults=[fault]), 200)
    assert first == _fired(_sink(tmp_path, name="y", faults=[fault]), 200)
    assert 30 < len(first) < 90
    assert first != _fired(_sink(tmp_path, name="z", faults=[{**fault, "seed": 8}]), 200)


def test_config_is_strict(tmp_path: Path) -> None:
    with pytest.raises(ValidationError):
        MemorySinkConfig.model_validate({"type": "memory", "nmae": "x"})
    for bad in (
        {"point": "write"},  # no trigger
        {"point": "write", "batch": 1, "probability": 0.5},  # two
        {"point": "write", "batch": 0},
        {"point": "commit", "batch": 1},
        {"point": "write", "batch": 1, "action": "explode"},
        {"point": "write", "batch": 1, "extra": True},
    ):
        with pytest.raises(ValidationError):
            MemorySinkConfig.model_validate({"type": "memory", "faults": [bad]})


def test_the_persisted_file_round_trips(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="store.json")
    sink.open(None)
    sink.prepare(4, "m")
    sink.write(_batch(0, 3))
    sink.write(Batch(records=[Record(id="novec", text="no vector", namespace="ns", created_at="2026-01-01T00:00:00Z")]))
    sink.write_edges([Edge("r0", "r1", "temporal", 0.25, {"gap_s": 3})])
    sink.finalize()
    path = tmp_path / "store.json"
    loaded = memory.load(path)
    assert loaded.records == memory.contents("t") and loaded.edges == memory.edges("t")
    assert (loaded.dims, loaded.model, loaded.finalized) == (4, "m", True)
    # another process (here: a forgotten store) opening the same path starts from the file
    memory.reset()
    again = _sink(tmp_path, path="store.json")
    assert memory.contents("t") == loaded.records
    again.write(_batch(0, 3))  # idempotent: the file's bytes do not change
    before = path.read_bytes()
    again.write(_batch(0, 3))
    assert path.read_bytes() == before and memory.load(path).records == loaded.records


def test_exit_dies_at_once_and_remembers_it(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from vexrun.connectors.base import RunContext\n"
        "from vexrun.testing.memory import MemorySink, MemorySinkConfig\n"
        "from vexrun.vmig import Record\n"
        "from vexrun.vmig.batch import Batch\n"
        "cfg = MemorySinkConfig.model_validate({'type': 'memory', 'path': 's.json',\n"
        "    'faults': [{'point': 'write', 'when': 'after', 'batch': 2, 'action': 'exit'}]})\n"
        "sink = MemorySink(cfg, RunContext(state_dir=Path('.'), recipe_dir=Path('.')))\n"
        "for i in range(3):\n"
        "    sink.write(Batch(records=[Record(id=f'r{i}', text='x')]))\n"
        "    print(i, flush=True)\n"
    )
    first = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert first.returncode == EXIT_CODE and first.stdout.split() == ["0"], first.stderr
    assert sorted(memory.load(tmp_path / "s.json").records) == ["r0", "r1"]  # written, then died
    second = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True)
    assert second.returncode == 0 and second.stdout.split() == ["0", "1", "2"], second.stderr
    assert sorted(memory.load(tmp_path / "s.json").records) == ["r0", "r1", "r2"]


RECIPE = """version: 1
source: {{type: vmig, path: notes.vmig.jsonl}}
embed: {{type: fake, dims: 16}}
target:
  type: memory
  name: e2e
  path: store.json
  faults: [{faults}]
run: {{batch_size: 10}}
"""


@pytest.mark.parametrize(
    "fault",
    [
        "{point: write, when: after, batch: 3, action: exit}",
        "{point: write_edges, when: before, batch: 2, action: exit}",
        "{point: finalize, when: before, batch: 1, action: raise}",
    ],
)
def test_a_run_that_dies_in_the_sink_resumes_to_the_same_store(tmp_path: Path, fault: str) -> None:
    runs = {}
    for name, faults in (("faulty", fault), ("clean", "")):
        d = tmp_path / name
        d.mkdir()
        shutil.copy(DATA / "recipes" / "good" / "inputs" / "notes.vmig.jsonl", d)
        shutil.copy(DATA / "recipes" / "good" / "inputs" / "notes.vmig.jsonl.meta.json", d)
        (d / "r.yaml").write_text(RECIPE.format(faults=faults))
        runs[name] = d
    assert run_cli("validate", "r.yaml", cwd=runs["faulty"]).code == 0
    first = run_cli("run", "r.yaml", cwd=runs["faulty"])
    assert first.code in (EXIT_CODE, 1), first.output
    again = run_cli("run", "r.yaml", cwd=runs["faulty"])
    assert again.code == 0, again.output
    clean = run_cli("run", "r.yaml", cwd=runs["clean"])
    assert clean.code == 0, clean.output
    got, want = memory.load(runs["faulty"] / "store.json"), memory.load(runs["clean"] / "store.json")
    assert len(want.records) > 60 and want.edges and want.finalized
    assert (runs["faulty"] / "store.json").read_bytes() == (runs["clean"] / "store.json").read_bytes()
    assert got.fired and not want.fired
