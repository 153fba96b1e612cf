"""``type: memory`` — an in-memory sink with seeded fault injection, for testing runs without a real store (in
the spirit of dlt's ``dummy`` destination).

Records are upserted by id into a process-global store named by ``name``, so an in-process test reads what
arrived after one or several runs::

    from vexrun.testing import memory

    memory.reset("t1")
    vexrun.run("recipe.yaml")                  # target: {type: memory, name: t1}
    assert len(memory.contents("t1")) == 300   # id -> (record, float32 vector bytes or None)

With ``path``, the store is also kept in a JSON file (written atomically after each acknowledged write and
loaded again when another process opens it), so subprocess runs can be compared byte for byte: records are
sorted by id, edges by (src, dst, type).

Faults fire at a point of the sink protocol (``open``, ``prepare``, ``write``, ``write_edges``, ``finalize``),
``before`` or ``after`` the call does its work, on the ``batch``-th call to that point (1-based, counted per sink
object, i.e. per run), on ``every`` call, or with a seeded ``probability``. Their ``action``:

- ``raise``: a :class:`SimulatedTransientError` or :class:`SimulatedTerminalError` (``VexrunError``\\ s with the
  :class:`~vexrun.errors.Transient` / :class:`~vexrun.errors.Terminal` markers, exit code 1);
- ``crash``: :class:`SimulatedCrash`, a ``BaseException`` that no ``except Exception`` catches, as if the
  process was killed there (in-process tests);
- ``exit``: ``os._exit(137)``, a real death without cleanup (subprocess tests).

A fault fires at most ``once`` by default, remembered in the store (and in ``<path>.faults.json`` when ``path``
is set), so the same command run again gets past it, which is what a resume test needs: the recipe, and so the
plan's fingerprint, stay the same. ``once: false`` fires whenever the condition holds.
"""

from __future__ import annotations

import base64
import os
import random
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import msgspec
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

from ..connectors.base import Capabilities, Edge, PluginConfig, RunContext, Sink, WriteResult
from ..errors import Terminal, Transient, VexrunError
from ..vmig.batch import Batch
from ..vmig.model import Record

__all__ = [
    "CAPABILITIES",
    "EXIT_CODE",
    "MemoryFault",
    "MemorySink",
    "MemorySinkConfig",
    "MemoryStore",
    "SimulatedCrash",
    "SimulatedFault",
    "SimulatedTerminalError",
    "SimulatedTransientError",
    "contents",
    "edges",
    "load",
    "reset",
    "store",
]

#: the exit status of ``action: exit`` (what a shell reports for a process killed by SIGKILL)
EXIT_CODE = 137

#: what the memory store holds: anything, like a permissive document store with edges
CAPABILITIES = Capabilities(
    ids="any",
    metrics=("cosine", "dot", "l2"),
    metadata="nested",
    namespaces=True,
    vectors="float32",
    edges=True,
)

Point = Literal["open", "prepare", "write", "write_edges", "finalize"]
EdgeKey = tuple[str, str, str]


class SimulatedFault(VexrunError):
    """Base of the errors a memory sink's ``action: raise`` fault raises."""


class SimulatedTransientError(SimulatedFault, Transient):
    """A fault the same call may get past later (like a timeout or a 503)."""


class SimulatedTerminalError(SimulatedFault, Terminal):
    """A fault retrying cannot help (like refused credentials)."""


class SimulatedCrash(BaseException):  # noqa: N818 - named for what it simulates, like KeyboardInterrupt
    """The process "died" here: a BaseException, so no ``except Exception`` handler sees it."""


class MemoryFault(BaseModel):
    """One fault: where, when, on which call, and what happens."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    point: Point = Field(description="The sink call the fault is attached to.")
    when: Literal["before", "after"] = Field(
        default="before", description="Before the call does its work, or after (the work done and persisted)."
    )
    batch: int | Literal["every"] | None = Field(
        default=None, description="The 1-based count of calls to `point` (per run) it fires on, or 'every'."
    )
    probability: float | None = Field(
        default=None, ge=0.0, le=1.0, description="Instead of `batch`: fire with this probability per call."
    )
    seed: int = Field(default=0, description="Seed of `probability`'s draws (the same seed, the same calls).")
    action: Literal["raise", "crash", "exit"] = Field(
        default="raise", description="raise a VexrunError, crash (BaseException), or exit (os._exit(137))."
    )
    error: Literal["transient", "terminal"] = Field(default="transient", description="What `raise` raises.")
    once: bool = Field(default=True, description="Fire at most once per store (remembered across runs).")

    @model_validator(mode="after")
    def _one_trigger(self) -> MemoryFault:
        if (self.batch is None) == (self.probability is None):
            raise ValueError("a fault needs exactly one of 'batch' (a number or 'every') and 'probability'")
        if isinstance(self.batch, int) and self.batch < 1:
            raise ValueError("'batch' counts calls from 1")
        return self

    @property
    def key(self) -> str:
        """How the store remembers that this fault fired."""
        trigger = f"p{self.probability}/s{self.seed}" if self.probability is not None else str(self.batch)
        return f"{self.point}:{self.when}:{trigger}:{self.action}"


class MemorySinkConfig(PluginConfig):
    """``type: memory`` — an in-memory test store with fault injection (see :mod:`vexrun.testing.memory`)."""

    type: Literal["memory"] = "memory"
    name: str = Field(default="default", min_length=1, description="The process-global store written to.")
    path: str | None = Field(
        default=None, description="Also keep the store in this JSON file (relative to the recipe), for subprocesses."
    )
    faults: list[MemoryFault] = Field(default_factory=list, description="Faults to inject.")
    lose: list[str] = Field(
        default_factory=list,
        description="Ids this store acknowledges but silently does not keep (a lossy store, to test run.verify).",
    )


@dataclass
class MemoryStore:
    """What a memory store holds. Vectors are float32 bytes (None for a record without a vector)."""

    records: dict[str, tuple[Record, bytes | None]] = field(default_factory=dict)
    edges: dict[EdgeKey, Edge] = field(default_factory=dict)
    #: keys of the faults that fired (``once``)
    fired: set[str] = field(default_factory=set)
    dims: int | None = None
    model: str | None = None
    finalized: bool = False
    #: the file it was loaded from (loaded once per process)
    loaded: str | None = None


_STORES: dict[str, MemoryStore] = {}
_LOCK = threading.RLock()


def store(name: str) -> MemoryStore:
    """The live store called ``name`` (created empty if missing)."""
    with _LOCK:
        return _STORES.setdefault(name, MemoryStore())


def contents(name: str) -> dict[str, tuple[Record, bytes | None]]:
    """A copy of the records in store ``name``: id -> (record, float32 vector bytes or None)."""
    with _LOCK:
        return dict(store(name).records)


def edges(name: str) -> dict[EdgeKey, Edge]:
    """A copy of the edges in store ``name``, by (src, dst, type)."""
    with _LOCK:
        return dict(store(name).edges)


def reset(name: str | None = None) -> None:
    """Forget store ``name`` (every store without a name): records, edges and which faults fired."""
    with _LOCK:
        if name is None:
            _STORES.clear()
        else:
            _STORES.pop(name, None)


def _faults_path(path: Path) -> Path:
    return path.with_name(path.name + ".faults.json")


def load(path: str | os.PathLike[str]) -> MemoryStore:
    """Read a store written by a memory sink with ``path`` (and the faults that fired, if any)."""
    p = Path(path)
    out = MemoryStore(loaded=str(p))
    if p.exists():
        data = orjson.loads(p.read_bytes())
        for item in data["records"]:
            rec = msgspec.convert(item["record"], Record)
            vec = base64.b64decode(item["vector"]) if item["vector"] is not None else None
            out.records[rec.id] = (rec, vec)
        for e in data["edges"]:
            edge = Edge(e["src"], e["dst"], e["type"], e["weight"], e["metadata"])
            out.edges[(edge.src, edge.dst, edge.type)] = edge
        out.dims, out.model, out.finalized = data["dims"], data["model"], data["finalized"]
    fp = _faults_path(p)
    if fp.exists():
        out.fired = set(orjson.loads(fp.read_bytes()))
    return out


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _dump(st: MemoryStore) -> bytes:
    records = [
        {
            "record": msgspec.to_builtins(rec),
            "vector": base64.b64encode(vec).decode() if vec is not None else None,
        }
        for _, (rec, vec) in sorted(st.records.items())
    ]
    links = [
        {"src": e.src, "dst": e.dst, "type": e.type, "weight": e.weight, "metadata": e.metadata}
        for _, e in sorted(st.edges.items())
    ]
    doc = {"dims": st.dims, "model": st.model, "finalized": st.finalized, "records": records, "edges": links}
    return orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


class MemorySink(Sink):
    """Upserts into :func:`store` ``(config.name)``; fires the configured faults."""

    name = "memory"
    capabilities: ClassVar[Capabilities] = CAPABILITIES
    #: written behind the stages, as a server store's client is: the runs of the fault tests go that way
    write_behind = True

    def __init__(self, config: MemorySinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path: Path | None = Path(ctx.resolve_path(config.path)) if config.path else None
        self.calls: dict[str, int] = {}
        self._rngs = {i: random.Random(f"{f.seed}:{f.key}") for i, f in enumerate(config.faults)}
        self.store = self._attach()

    def _attach(self) -> MemoryStore:
        with _LOCK:
            st = store(self.cfg.name)
            if self.path is not None and st.loaded != str(self.path):
                # another process (or nobody) wrote the file: it is the truth, as a real store's disk would be
                st = load(self.path)
                _STORES[self.cfg.name] = st
            return st

    # -- faults -----------------------------------------------------------------------------------------
    def _fire(self, point: Point, when: str) -> None:
        if when == "before":
            self.calls[point] = self.calls.get(point, 0) + 1
        n = self.calls.get(point, 0)
        for i, fault in enumerate(self.cfg.faults):
            if fault.point != point or fault.when != when:
                continue
            if fault.once and fault.key in self.store.fired:
                continue
            if fault.probability is not None:
                hit = self._rngs[i].random() < fault.probability
            else:
                hit = fault.batch == "every" or fault.batch == n
            if not hit:
                continue
            self.store.fired.add(fault.key)
            if self.path is not None:
                _atomic_write(_faults_path(self.path), orjson.dumps(sorted(self.store.fired)))
            what = f"memory store '{self.cfg.name}': simulated fault {when} {point} #{n}"
            if fault.action == "exit":
                os._exit(EXIT_CODE)
            if fault.action == "crash":
                raise SimulatedCrash(what)
            cls = SimulatedTransientError if fault.error == "transient" else SimulatedTerminalError
            raise cls(what, hint="a fault configured in the recipe's memory target")

    def _around(self, point: Point, work: Callable[[], Any]) -> Any:
        self._fire(point, "before")
        with _LOCK:
            result = work()
            self._persist()
        self._fire(point, "after")
        return result

    def _persist(self) -> None:
        if self.path is not None:
            _atomic_write(self.path, _dump(self.store))
            self.store.loaded = str(self.path)

    # -- the sink protocol ------------------------------------------------------------------------------
    def identity(self) -> str:
        return f"memory:{self.cfg.name}" + (f" ({self.path})" if self.path is not None else "")

    def open(self, state: dict[str, Any] | None) -> None:
        self._around("open", lambda: None)

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        def work() -> None:
            self.store.dims, self.store.model = dims, model

        self._around("prepare", work)

    def write(self, batch: Batch) -> WriteResult:
        def work() -> WriteResult:
            lost = set(self.cfg.lose)
            for i, rec in enumerate(batch.records):
                if rec.id in lost:
                    continue
                vec = batch.vector(i)
                self.store.records[rec.id] = (
                    rec,
                    np.asarray(vec, dtype=np.float32).tobytes() if vec is not None else None,
                )
            return WriteResult(written=len(batch.records))

        result: WriteResult = self._around("write", work)
        return result

    def write_edges(self, edges: list[Edge]) -> None:
        def work() -> None:
            for e in edges:
                self.store.edges[(e.src, e.dst, e.type)] = e

        self._around("write_edges", work)

    def state(self) -> dict[str, Any]:
        return {"records": len(self.store.records), "edges": len(self.store.edges)}

    def finalize(self) -> None:
        def work() -> None:
            self.store.finalized = True

        self._around("finalize", work)

    def check(self) -> str:
        return f"{self.identity()}: an in-memory test store, {len(self.store.records):,} records"

    # -- reading back -------------------------------------------------------------------------------------
    def connect(self) -> None:
        self.store = self._attach()

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        with _LOCK:
            found = [self.store.records[i] for i in ids if i in self.store.records]
        found = [(r, v) for r, v in found if namespace is None or r.namespace == namespace]
        dims = self.store.dims or 0
        vectors = np.zeros((len(found), dims), dtype=np.float32)
        has = np.zeros(len(found), dtype=bool)
        for row, (_, v) in enumerate(found):
            if v is not None and dims:
                vectors[row] = np.frombuffer(v, dtype=np.float32)
                has[row] = True
        return Batch(records=[r for r, _ in found], vectors=vectors if dims else None, has_vector=has)

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        with _LOCK:
            gone = [self.store.records.pop(i, None) for i in ids]
            self._persist()
        return sum(g is not None for g in gone)

    def namespaces(self) -> list[str]:
        return sorted({r.namespace for r, _ in self.store.records.values() if r.namespace})

    def count(self, namespace: str | None = None) -> int:
        if namespace is None:
            return len(self.store.records)
        return sum(r.namespace == namespace for r, _ in self.store.records.values())
