"""The small protocol every source and sink speaks, and the capabilities a connector declares.

A connector module imports its SDK lazily (inside ``open``), so reading its config model and its
capabilities never imports the SDK. Connectors are registered through the ``vexrun.plugins`` entry-point
group (see :mod:`vexrun.registry`), built-ins included.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict

from ..vmig.batch import Batch

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Capabilities",
    "Cursor",
    "Edge",
    "Hit",
    "PluginConfig",
    "RunContext",
    "Sink",
    "Source",
    "WriteResult",
    "page_ranges",
]

#: A source's resume position: a small JSON-serialisable dict, opaque to the runner.
Cursor = dict[str, Any]


class PluginConfig(BaseModel):
    """Base of every pluggable config model (source, sink, embedder, …): unknown keys are errors, and
    ``type`` is the discriminator. Subclasses declare ``type: Literal["name", "alias", ...]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Capabilities:
    """What a store can hold, declared without importing its SDK. The compiler and ``vexrun plan`` read it."""

    #: "any" (any non-empty string), "uuid-or-uint" (Qdrant), or "string<=N" style limits in ``max_id_bytes``
    ids: Literal["any", "uuid-or-uint"] = "any"
    max_id_bytes: int | None = None
    max_dims: int | None = None
    metrics: tuple[str, ...] = ("cosine",)
    #: what metadata values the store keeps natively: scalars only, flat lists of scalars, or nesting
    metadata: Literal["scalars", "lists", "nested"] = "lists"
    #: whether null metadata values are kept as null (Chroma refuses them)
    metadata_nulls: bool = True
    #: whether lists must hold one type only (typed array fields)
    list_types_uniform: bool = False
    max_metadata_bytes: int | None = None
    namespaces: bool = True
    max_batch_records: int | None = None
    max_batch_bytes: int | None = None
    #: vectors as stored: exact float32, or normalised (cosine stores that renormalise)
    vectors: Literal["float32", "normalized", "none"] = "float32"
    needs_vectors: bool = False
    search: bool = False
    edges: bool = False
    #: a source whose records come back in vexrun's store encoding (see :mod:`.encoding`), decoded after reading
    encoded: bool = True
    #: a source that can name the models of its vectors without reading them (``Source.declared_models``)
    declares_models: bool = False
    #: a sink that writes one file, which the ``sign`` and ``sync`` stages can act on
    file_output: bool = False
    #: a source that reads the local file (or folder) its config's ``path`` names; ``validate`` warns when it is
    #: missing
    file_input: bool = False


@dataclass(frozen=True)
class Edge:
    """A typed, weighted relation between two records (``temporal``, ``tag``, ``entity``, ``causal``)."""

    src: str
    dst: str
    type: str
    weight: float = 1.0
    metadata: dict[str, Any] | None = None


@dataclass
class WriteResult:
    """What a sink did with a batch: how many records it wrote and which it refused (id → reason), and how many
    of the written replaced a record the same run wrote before (same id: the last write wins)."""

    written: int
    rejected: dict[str, str] = field(default_factory=dict)
    duplicates: int = 0


@dataclass(frozen=True, slots=True)
class Hit:
    """One result. ``score`` is what the ranking used: the fused RRF score (hybrid), the cosine (vector)
    or the BM25 score (bm25). ``bm25`` is FTS5's ``bm25()`` negated, so higher is better everywhere.
    ``cosine`` / ``bm25`` are None when the record was not in that list."""

    rank: int
    id: str
    score: float
    text: str | None
    namespace: str | None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    cosine: float | None = None
    vector_rank: int | None = None
    bm25: float | None = None
    bm25_rank: int | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RunContext:
    """What a connector may use while it runs: where state lives and how to report."""

    state_dir: Any  # pathlib.Path; Any to keep this module free of heavier imports in type hints
    recipe_dir: Any
    log: Any = None  # callable(str) -> None, already redacting secrets
    #: the run's embedder as {"type": ..., non-secret settings...}, so a store can record how its vectors
    #: were made (``vexrun search`` rebuilds the embedder from it to embed a query)
    embedder_spec: dict[str, Any] | None = None
    #: how many partitions of a source run at once (a distributed run's workers): a source that paces its
    #: requests to a per-server or per-index limit gives each partition its share of it
    parallel: int = 1

    def resolve_path(self, path: str) -> Any:
        """A path from the recipe, relative to the recipe's directory."""
        from pathlib import Path

        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.recipe_dir) / p

    def info(self, message: str) -> None:
        if self.log is not None:
            self.log(message)


def page_ranges(total: int, page: int, n: int) -> list[tuple[int, int]]:
    """Up to ``n`` ranges [start, end) of positions ``0 … total`` holding about equal numbers of whole pages of
    ``page`` records, so each starts where a serial read's page starts (for :meth:`Source.partitions`). One
    range when there are fewer than two pages."""
    pages = -(-total // max(1, page))
    if n <= 1 or pages < 2:
        return [(0, total)]
    cuts = sorted({pages * k // n * page for k in range(1, n)} - {0})
    return list(zip([0, *cuts], [*cuts, total], strict=True))


def group_ranges(weights: Sequence[int], n: int) -> list[tuple[int, int]]:
    """Up to ``n`` runs [start, end) of consecutive items (tenants, namespaces) holding about equal shares of
    ``weights`` (their record counts), for a source whose batches never span two items. One run when there are
    fewer than two items or nothing to share."""
    total = sum(weights)
    if n <= 1 or len(weights) < 2 or total <= 0:
        return [(0, len(weights))]
    cuts: list[int] = []
    acc, k = 0, 1
    for i, w in enumerate(weights[:-1]):
        acc += w
        while k < n and acc * n >= total * k:
            if not cuts or cuts[-1] != i + 1:
                cuts.append(i + 1)
            k += 1
    return list(zip([0, *cuts], [*cuts, len(weights)], strict=True))


class Source:
    """Reads records in batches from a resumable cursor."""

    name: ClassVar[str] = "source"
    #: True if ``batches()`` may run in a background thread (its connection is not bound to the thread that
    #: opened it), so the runner reads the next batch while the sinks write this one.
    prefetch: ClassVar[bool] = False

    def __init__(self, config: Any, ctx: RunContext) -> None:
        self.config = config
        self.ctx = ctx

    def open(self) -> None:
        """Open files or connections. Raise :class:`~vexrun.errors.ConnectError` or
        :class:`~vexrun.errors.UsageError` with one clear line on failure."""

    def identity(self) -> str:
        """A stable name of what is read (path, URL without secrets, collection), used in record ids."""
        raise NotImplementedError

    def estimate(self) -> int | None:
        """Roughly how many records the source holds, for progress; None if unknown."""
        return None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        """Yield (batch, cursor after that batch). Reading again from a yielded cursor continues with
        the next batch; ``None`` starts at the beginning."""
        raise NotImplementedError

    def prime(self, cursor: Cursor | None, batch_size: int) -> None:
        """Start reading from ``cursor`` ahead of :meth:`batches` (called with the same arguments next), so the
        first batches are being read while the run opens its sinks; a source that reads in worker processes
        starts them here. Default: nothing. :meth:`close` stops what a primed read started."""

    def partitions(self, n: int, batch_size: int) -> list[tuple[str, Cursor | None]]:
        """Up to ``n`` disjoint ranges that together are the whole source, in source order, for a distributed
        run: (a name that says the range, a start cursor that also bounds it). ``batches()`` from that cursor
        yields the range's records and stops at its end. Where the source can, ranges start where a serial
        read's batch of ``batch_size`` starts, so the batches are the same. Default: one partition."""
        return [("all", None)]

    def report(self) -> dict[str, Any]:
        """Counts for the run report (e.g. dropped messages by reason)."""
        return {}

    @classmethod
    def declared_models(cls, config: Any, base_dir: Any) -> list[str]:
        """The models that made the source's vectors, if it can tell without reading them (a file's sidecar);
        read by the plan compiler when the capabilities say ``declares_models``."""
        return []

    def check(self) -> str:
        """``vexrun check``: open the source and say what it holds; read nothing else."""
        self.open()
        n = self.estimate()
        return f"{self.identity()}: readable" + (f", about {n:,} records" if n is not None else "")

    def close(self) -> None:
        """Release files and connections."""


class Sink:
    """Writes batches with idempotent upserts; keeps what it needs to resume in a small state dict."""

    name: ClassVar[str] = "sink"
    capabilities: ClassVar[Capabilities] = Capabilities()
    #: True if several processes may write the target at once (a server store): a distributed executor then
    #: writes it from its workers; a file or an embedded store has one writer, the run's own process.
    concurrent_writers: ClassVar[bool] = False
    #: True if writing mostly waits on a server (network, a database process): then reading the next batch
    #: in a background thread overlaps with the write. A CPU-bound sink (a local file) gains nothing from it.
    io_bound: ClassVar[bool] = False
    #: True if ``write``/``write_edges``/``state`` may run in a background thread (one call at a time, in batch
    #: order) while the runner processes the next batch (:mod:`vexrun.writebehind`). An io_bound sink's client
    #: is thread-safe and gets it too; an embedded store bound to the thread that opened it does not.
    write_behind: ClassVar[bool] = False
    #: True if :meth:`send` hands a batch over without waiting until it is durable (a write-behind sink only):
    #: the runner then sends the next batch while an acknowledgement thread waits for this one.
    pipelined: ClassVar[bool] = False

    def __init__(self, config: Any, ctx: RunContext) -> None:
        self.config = config
        self.ctx = ctx

    def open(self, state: dict[str, Any] | None) -> None:
        """Open the target. ``state`` is what :meth:`state` returned at the last committed batch (None on a
        fresh run): a file sink truncates back to it, so a half-written batch leaves no trace."""

    def identity(self) -> str:
        """Where the records go (path, URL without secrets, collection)."""
        raise NotImplementedError

    def prepare(self, dims: int | None, model: str | None, metric: str = "cosine") -> None:
        """Create the collection / table / index if missing, for vectors of ``dims``."""

    def write(self, batch: Batch) -> WriteResult:
        """Upsert every record of the batch; return only when it is durable."""
        raise NotImplementedError

    def overlaps_reading(self) -> bool:
        """True if reading the next batch in a background thread overlaps with this sink's writes, because they
        mostly wait (on a server, or on a process of the sink's own). Default: :attr:`io_bound`."""
        return self.io_bound

    def send(self, batch: Batch) -> Callable[[], WriteResult]:
        """Start writing ``batch`` and return a function that waits until it is durable and returns what
        :meth:`write` would have. Batches are sent in order, and their functions called in the same order,
        from another thread: the next batch may be sent before the one before is waited for. A pipelined sink's
        :meth:`state` says what the batches waited for wrote, never a batch only sent. This default writes the
        batch at once."""
        result = self.write(batch)
        return lambda: result

    def write_edges(self, edges: list[Edge]) -> None:
        """Upsert edges (sinks without edge support ignore them)."""

    def state(self) -> dict[str, Any]:
        """What to store in the checkpoint with the batch just written."""
        return {}

    def finalize(self) -> None:
        """The run is complete: publish the result (rename a file into place, build an index)."""

    def report(self) -> dict[str, Any]:
        """Counts for the run report, read after :meth:`finalize` (the ``convert`` target: the examples it wrote
        and the records it dropped, by reason). Empty: nothing to add."""
        return {}

    def check(self) -> str:
        """``vexrun check``: connect (or check the output directory) without writing anything."""
        return f"{self.identity()}: no check available for this target"

    def connect(self) -> None:
        """Open the existing target for reading only (``vexrun search``): create, truncate or prepare
        nothing. Stores that cannot be searched need not implement it."""
        raise NotImplementedError(f"{self.name} cannot be searched")

    def search(self, vector: np.ndarray | None, text: str, k: int, namespace: str | None = None) -> list[Hit]:
        """The ``k`` nearest records to ``vector`` (cosine; and/or matching ``text`` where the store has
        full-text search), after :meth:`connect`. ``Hit.rank`` starts at 1."""
        raise NotImplementedError(f"{self.name} cannot be searched")

    # Reading back (after :meth:`connect`, or after a run's writes): what `vexrun compare`, a run's
    # reconciliation and the recall facade (:mod:`vexrun.recall`) use. Ids are vexrun's ids (the store's own key
    # may differ: a uuid5 with the original id in a property); a store without namespaces ignores ``namespace``.

    def fetch(self, ids: Sequence[str], namespace: str | None = None) -> Batch:
        """The records with these ids, as the store now holds them, in the order asked; ids it does not hold
        are left out. Vectors as stored (normalised where the store normalises), metadata decoded."""
        raise NotImplementedError(f"{self.name} cannot read records back")

    def scan(self, batch_size: int) -> Iterator[Batch]:
        """Every record the target holds, in batches of ``batch_size``, in the store's own order (which, for a
        store that keeps the order of its writes, is the order written: ``run.verify: full`` then checks a target
        in one pass instead of by id). Raises NotImplementedError at once where the store has no such read."""
        raise NotImplementedError(f"{self.name} cannot be read in order")

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        """Delete these records; ids the store does not hold are not an error. Returns how many it held, or
        ``len(ids)`` where the store cannot tell."""
        raise NotImplementedError(f"{self.name} cannot delete records")

    def namespaces(self) -> list[str]:
        """The namespaces the target holds records in, sorted (records without one are not listed)."""
        raise NotImplementedError(f"{self.name} cannot list namespaces")

    def count(self, namespace: str | None = None) -> int:
        """How many records the target holds, in ``namespace`` or in all of them."""
        raise NotImplementedError(f"{self.name} cannot count records")

    def counts(self, namespaces: Sequence[str]) -> tuple[int, dict[str, int]]:
        """How many records the target holds in all, and in each of ``namespaces``: one :meth:`count` each here;
        a store that counts them all in one pass says so by overriding it (the verification asks for both)."""
        return self.count(None), {ns: self.count(ns) for ns in namespaces}

    def close(self) -> None:
        """Release files and connections (also after a failure)."""
