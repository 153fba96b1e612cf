"""Recall from agents: one small facade over any searchable vexrun target.

::

    from vexrun.recall import Memory

    with Memory.open("out/quickstart/memory.db") as memory:      # a local store, or a recipe .yaml
        for hit in memory.search("when is the half marathon", k=3):
            print(hit.score, hit.text)
        memory.put("The user switched to decaf", namespace="claude", memory_type="semantic")

:class:`Memory` speaks only the public :class:`~vexrun.connectors.base.Sink` protocol (``connect``, ``search``,
``fetch``, ``delete``, ``namespaces``, ``count``; ``open``/``prepare``/``write`` to put) and vexrun's embedders,
so it works over every store that can be searched: the local SQLite store, pgvector, Qdrant, Chroma, Milvus, ….

- **Which embedder**: a local store's recorded one (the embedder that wrote its vectors), or a recipe's ``embed``,
  or the one given to :meth:`Memory.open`. Queries and new memories are embedded with it, so they match.
- **Reading** uses ``connect()`` (read-only; nothing is created). The first :meth:`Memory.put` re-opens the
  target for writing, as a run does (``open`` + ``prepare``; a target's ``replace: true`` is ignored here, a
  memory never empties its store); :meth:`Memory.close` then finalizes it as a completed run would.
- **Ids**: :meth:`Memory.put` without an id derives one from the namespace and the text
  (``record_id(namespace, "recall", content_hash(text))``), so putting the same memory twice stores it once;
  a re-put keeps the first ``created_at``.
- **metadata.memory_type** is ``"episodic"`` unless asked otherwise (``"semantic"`` for facts: Vex's convention).
- **Filters** are exact matches on metadata keys, applied to an over-fetched candidate list (widened until ``k``
  hits pass or the store has no more).

Every error is a :class:`~vexrun.errors.VexrunError` with one line. A :class:`Memory` may be shared between
threads (one lock serialises its calls).
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .connectors.base import Capabilities, Hit, RunContext, Sink
from .errors import InvalidInput, UsageError, VexrunError

if TYPE_CHECKING:
    from .providers.base import Embedder
    from .vmig.batch import Batch

__all__ = ["EPISODIC", "LOCAL_STORE", "SEMANTIC", "SOURCE", "Hit", "Item", "Memory", "memory_id", "searchable_target"]

EPISODIC = "episodic"
SEMANTIC = "semantic"
#: the source name in derived ids and the ``source_store`` of what :meth:`Memory.put` writes
SOURCE = "recall"
#: the sink type of a local store file (``Memory.open("memory.db")``), as a recipe names it
LOCAL_STORE = "sqlite"
#: candidates a filtered search asks for at first (times ``k``), and at most
_OVERFETCH = 4
_MAX_FETCH = 10_000


@dataclass(frozen=True, slots=True)
class Item:
    """A record read back by :meth:`Memory.get`: as the store holds it (the vector as stored)."""

    id: str
    text: str | None
    namespace: str | None
    metadata: dict[str, Any] | None
    created_at: str | None
    vector: np.ndarray | None = dataclasses.field(default=None, repr=False)


def memory_id(text: str, namespace: str | None = None) -> str:
    """The id :meth:`Memory.put` gives a memory without one: the same text in the same namespace, the same id."""
    from .ids import content_hash, record_id

    return record_id(namespace, SOURCE, content_hash(text))


def _predicate(where: Mapping[str, Any] | Callable[[Hit], bool] | None) -> Callable[[Hit], bool] | None:
    """A filter as a test of a hit: exact matches of metadata values (None for no filter)."""
    if where is None or callable(where):
        return where
    if not isinstance(where, Mapping):
        raise UsageError(f"filter must be a mapping of metadata keys to values, not {type(where).__name__}")
    pairs = list(where.items())
    if not pairs:
        return None

    def accept(hit: Hit) -> bool:
        meta = hit.metadata or {}
        return all(key in meta and meta[key] == value for key, value in pairs)

    return accept


class Memory:
    """A searchable vexrun target, opened for recall. Build it with :meth:`open`."""

    def __init__(
        self,
        make_sink: Callable[[], Sink],
        *,
        capabilities: Capabilities | None,
        embedder: Embedder | Callable[[], Embedder] | None,
        where: str,
        cleanup: Callable[[], None] | None = None,
    ) -> None:
        """Prefer :meth:`open`. ``make_sink`` builds a fresh, unopened sink of the target; ``embedder`` loads
        (and opens) the embedder, or is one (the caller's: used as is, never closed). :meth:`_start` connects."""
        from .providers.base import Embedder

        self._make_sink = make_sink
        self.capabilities = capabilities
        self._borrowed = isinstance(embedder, Embedder)
        self._embedder: Embedder | None = embedder if isinstance(embedder, Embedder) else None
        self._load_embedder = None if isinstance(embedder, Embedder) else embedder
        self.where = where
        self._cleanup = cleanup
        self._lock = threading.RLock()
        self._writing = False
        self._written = False
        self._sink: Sink | None = None

    def _start(self, *, create: bool = False) -> None:
        """Connect to the target (read-only), or with ``create`` open it for writing (a new store)."""
        sink = self._make_sink()
        try:
            self._sink = sink
            if create:
                self._open_for_writing(sink)
            else:
                sink.connect()
        except BaseException:
            self._sink = None
            _close_quietly(sink)
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        store: str | os.PathLike[str],
        *,
        target: int | None = None,
        embedder: Embedder | Mapping[str, Any] | str | None = None,
        env_file: str | None = None,
    ) -> Memory:
        """Open ``store``: a local store file (``*.db``: the ``sqlite`` target) or a recipe (``*.yaml``/``*.yml``:
        its first searchable target, or ``targets[target]``, with the recipe's embedder).

        ``embedder`` overrides the embedder: a spec ``{"type": "local", "model": ...}``, a plugin name, or an
        :class:`~vexrun.providers.base.Embedder` (used as is, not closed). A local store file that does not exist
        is created when an embedder is given."""
        text = os.fspath(store)
        if text.endswith((".yaml", ".yml")):
            return cls._open_recipe(text, target=target, embedder=embedder, env_file=env_file)
        if target is not None:
            raise UsageError(f"{text}: target= applies to a recipe, not to a store file")
        return cls._open_local(Path(text), embedder=embedder)

    @classmethod
    def _open_local(cls, path: Path, *, embedder: Embedder | Mapping[str, Any] | str | None) -> Memory:
        from .providers.base import Embedder
        from .registry import resolve

        if path.is_dir():
            raise UsageError(f"{path}: is a directory, not a store file")
        create = embedder is not None and not path.exists()
        plugin = resolve("sink", LOCAL_STORE)
        config = plugin.config_model()(path=str(path.resolve()))
        # where a run would keep its state (the sqlite sink's id log): made only when the store is written
        state_dir = Path(tempfile.gettempdir()) / f"vexrun-recall-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        ctx = RunContext(state_dir=state_dir, recipe_dir=path.resolve().parent)
        if embedder is not None and not isinstance(embedder, Embedder):
            ctx.embedder_spec = _spec_of(embedder)
        opened: list[Memory] = []

        def make_sink() -> Sink:
            sink: Sink = plugin.implementation()(config, ctx)
            return sink

        def load() -> Embedder:
            arg = embedder if embedder is not None else opened[0].recorded_embedder()
            if isinstance(arg, Mapping) and embedder is None:
                ctx.embedder_spec = dict(arg)  # a put keeps the store's record of its embedder
            return _embedder_from(arg, where=str(path), hint="pass embedder= to Memory.open")

        memory = cls(
            make_sink,
            capabilities=plugin.capabilities,
            embedder=embedder if isinstance(embedder, Embedder) else load,
            where=str(path),
            cleanup=lambda: shutil.rmtree(state_dir, ignore_errors=True),
        )
        opened.append(memory)
        memory._start(create=create)
        return memory

    @classmethod
    def _open_recipe(
        cls,
        recipe: str,
        *,
        target: int | None,
        embedder: Embedder | Mapping[str, Any] | str | None,
        env_file: str | None,
    ) -> Memory:
        from .build import build_embedder, build_sink, run_context
        from .planner import compile_plan
        from .providers.base import Embedder
        from .recipe.loader import load_recipe

        doc = load_recipe(recipe, env_file=env_file)
        plan = compile_plan(doc)
        spec = searchable_target(plan, target, doc.display)
        config = spec.config
        if getattr(config, "replace", False) is True:  # recall adds to a store, never empties it
            config = config.model_copy(update={"replace": False})
        spec = dataclasses.replace(spec, config=config)
        ctx = run_context(plan)
        if embedder is not None:
            ctx.embedder_spec = None if isinstance(embedder, Embedder) else _spec_of(embedder)
        embed = plan.embed
        opened: list[Memory] = []

        def make_sink() -> Sink:
            return build_sink(spec, ctx)

        def load() -> Embedder:
            hint = "add an embed step to the recipe, or pass embedder= to Memory.open"
            if embedder is not None:
                return _embedder_from(embedder, where=doc.display, hint=hint)
            if embed is None:  # the store may know what made its vectors
                return _embedder_from(opened[0].recorded_embedder(), where=doc.display, hint=hint)
            built = build_embedder(embed)
            built.open()
            return built

        memory = cls(
            make_sink,
            capabilities=spec.plugin.capabilities if spec.plugin else None,
            embedder=embedder if isinstance(embedder, Embedder) else load,
            where=doc.display,
        )
        opened.append(memory)
        memory._start()
        return memory

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Finalize what :meth:`put` wrote (as a completed run does), then release the store and the embedder."""
        with self._lock:
            sink, self._sink = self._sink, None
            try:
                if sink is not None and self._written:
                    sink.finalize()
            finally:
                _close_quietly(sink)
                if self._embedder is not None and not self._borrowed:
                    _close_quietly(self._embedder)
                self._embedder = None
                self._run_cleanup()

    def _run_cleanup(self) -> None:
        cleanup, self._cleanup = self._cleanup, None
        if cleanup is not None:
            cleanup()

    # -- the embedder ----------------------------------------------------------------------------------

    def recorded_embedder(self) -> dict[str, Any] | None:
        """The embedder the store records as the maker of its vectors (``{"type": ..., settings}``), if it does."""
        recorded = getattr(self._store(), "embedder_spec", None)
        spec = recorded() if callable(recorded) else None
        return dict(spec) if isinstance(spec, Mapping) else None

    @property
    def embedder(self) -> Embedder:
        """The embedder of queries and new memories, loaded on first use."""
        with self._lock:
            if self._embedder is None:
                if self._load_embedder is None:
                    raise InvalidInput(f"{self.where}: no embedder to embed queries and memories with")
                self._embedder = self._load_embedder()
            return self._embedder

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """``(len(texts), dims)`` float32 vectors from the store's embedder."""
        embedder = self.embedder
        if not texts:
            return np.zeros((0, embedder.dims or 0), dtype=np.float32)
        try:
            with self._lock:  # an embedder need not be thread-safe
                out = np.asarray(embedder.embed(list(texts)), dtype=np.float32)
        except VexrunError:
            raise
        except Exception as exc:  # noqa: BLE001 - a third-party embedder: one line, not a traceback
            raise InvalidInput(f"{self.where}: the embedder failed: {type(exc).__name__}: {_first_line(exc)}") from None
        if out.ndim != 2 or out.shape[0] != len(texts) or not np.isfinite(out).all():
            raise InvalidInput(f"{self.where}: the embedder returned {out.shape} for {len(texts)} texts")
        return out

    # -- reading ---------------------------------------------------------------------------------------

    def _store(self) -> Sink:
        if self._sink is None:
            raise UsageError(f"{self.where}: the memory is closed")
        return self._sink

    def search(
        self,
        query: str | None = None,
        *,
        vector: np.ndarray | Sequence[float] | None = None,
        k: int = 10,
        namespace: str | None = None,
        filter: Mapping[str, Any] | Callable[[Hit], bool] | None = None,  # noqa: A002 - every framework's word
    ) -> list[Hit]:
        """The ``k`` memories nearest to ``query`` (embedded here) or to ``vector``, best first, in ``namespace``
        (or all), whose metadata has every ``filter`` key with exactly that value (or, ``filter`` a callable,
        the hits it accepts). ``Hit.cosine`` is the cosine to the query where the store reports it;
        ``Hit.score`` is what ranked it (the fused rank score of a hybrid search)."""
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        text = (query or "").strip()
        if not text and vector is None:
            raise UsageError("search needs a query or a vector")
        with self._lock:
            qvec = self.embed([text])[0] if vector is None else np.asarray(vector, dtype=np.float32).reshape(-1)
            accept = _predicate(filter)
            want = k if accept is None else min(max(_OVERFETCH * k, 50), _MAX_FETCH)
            while True:
                hits = self._search(qvec, text, want, namespace)
                kept = hits if accept is None else [h for h in hits if accept(h)]
                if len(kept) >= k or len(hits) < want or want >= _MAX_FETCH:
                    break
                want = min(want * _OVERFETCH, _MAX_FETCH)
        return [h if h.rank == i else dataclasses.replace(h, rank=i) for i, h in enumerate(kept[:k], start=1)]

    def _search(self, vector: np.ndarray, text: str, k: int, namespace: str | None) -> list[Hit]:
        sink = self._store()
        try:
            return list(sink.search(vector, text, k, namespace))
        except InvalidInput:
            if self._count(sink, namespace) == 0:  # an empty store or namespace: nothing to recall, not an error
                return []
            raise

    @staticmethod
    def _count(sink: Sink, namespace: str | None) -> int | None:
        try:
            return sink.count(namespace)
        except (NotImplementedError, VexrunError):
            return None

    def get(self, ids: Sequence[str], namespace: str | None = None) -> list[Item]:
        """The memories with these ids, in the order asked; ids the store does not hold are left out."""
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            return []
        with self._lock:
            batch = self._store().fetch(list(ids), namespace)
        return _items(batch)

    def namespaces(self) -> list[str]:
        """The namespaces the store holds memories in, sorted."""
        with self._lock:
            return list(self._store().namespaces())

    def count(self, namespace: str | None = None) -> int:
        """How many memories the store holds, in ``namespace`` or in all."""
        with self._lock:
            return int(self._store().count(namespace))

    # -- writing ---------------------------------------------------------------------------------------

    def put(
        self,
        text: str,
        *,
        id: str | None = None,  # noqa: A002 - the record field's name
        namespace: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        memory_type: str = EPISODIC,
    ) -> str:
        """Store one memory (embedded with the store's embedder); returns its id. Putting it again replaces it."""
        return self.put_many(
            [text],
            ids=None if id is None else [id],
            namespace=namespace,
            metadatas=None if metadata is None else [metadata],
            memory_type=memory_type,
        )[0]

    def put_many(
        self,
        texts: Sequence[str],
        *,
        ids: Sequence[str | None] | None = None,
        namespace: str | None = None,
        metadatas: Sequence[Mapping[str, Any] | None] | None = None,
        memory_type: str = EPISODIC,
        vectors: np.ndarray | None = None,
    ) -> list[str]:
        """Store several memories in one write; returns their ids in order. ``vectors``: their embeddings when
        the caller already has them (made by the store's embedder), else they are embedded here."""
        from .connectors.encoding import split_for, to_store
        from .vmig.batch import Batch
        from .vmig.model import VEX_VERSION, Record

        texts = list(texts)
        n = len(texts)
        if not isinstance(memory_type, str) or not memory_type:
            raise UsageError("memory_type must be a non-empty string, e.g. 'episodic' or 'semantic'")
        for name, seq in (("ids", ids), ("metadatas", metadatas)):
            if seq is not None and len(seq) != n:
                raise UsageError(f"{n} texts but {len(seq)} {name}")
        for i, text in enumerate(texts):
            if not isinstance(text, str) or not text.strip():
                raise UsageError(f"memory {i}: the text is empty")
        if not n:
            return []
        given = list(ids) if ids is not None else [None] * n
        rids = [rid if rid else memory_id(text, namespace) for rid, text in zip(given, texts, strict=True)]
        with self._lock:
            embedder = self.embedder
            mat = self.embed(texts) if vectors is None else np.asarray(vectors, dtype=np.float32)
            if mat.shape[0] != n:
                raise UsageError(f"{n} texts but {mat.shape[0]} vectors")
            sink = self._writer(int(mat.shape[1]), embedder.model_id)
            try:
                kept = {rec.id: rec.created_at for rec in sink.fetch(rids, namespace).records}
            except NotImplementedError:
                kept = {}
            stamp = _now()
            records = []
            for i, (rid, text) in enumerate(zip(rids, texts, strict=True)):
                meta = dict((metadatas[i] if metadatas is not None else None) or {})
                meta["memory_type"] = memory_type
                records.append(
                    Record(
                        id=rid,
                        text=text,
                        model=embedder.model_id,
                        dims=int(mat.shape[1]),
                        namespace=namespace,
                        metadata=meta,
                        created_at=kept.get(rid) or stamp,
                        source_store=SOURCE,
                        modality="text",
                        vex_version=VEX_VERSION,
                    )
                )
            batch = Batch.from_records(records, list(mat))
            stored = to_store(batch, self.capabilities)
            refused: dict[str, str] = {}
            for part in split_for(stored, self.capabilities):
                refused.update(sink.write(part).rejected)
            self._written = True
        if refused:
            rid, reason = next(iter(refused.items()))
            more = f" (and {len(refused) - 1} more)" if len(refused) > 1 else ""
            raise InvalidInput(f"{self.where}: the store refused memory '{rid}': {reason}{more}")
        return rids

    def delete(self, ids: Sequence[str], namespace: str | None = None) -> int:
        """Delete these memories; returns how many the store held (ids it does not hold are not an error)."""
        if isinstance(ids, str):
            ids = [ids]
        if not ids:
            return 0
        with self._lock:
            return int(self._store().delete(list(ids), namespace))

    def _writer(self, dims: int, model: str) -> Sink:
        """The sink, opened for writing (once): a fresh one, opened as a run opens it, then prepared."""
        if self._writing:
            return self._store()
        old = self._store()
        sink = self._make_sink()
        try:
            self._open_for_writing(sink, dims, model)
        except BaseException:
            _close_quietly(sink)
            raise
        self._sink = sink
        _close_quietly(old)
        return sink

    def _open_for_writing(self, sink: Sink, dims: int | None = None, model: str | None = None) -> None:
        if dims is None:
            embedder = self.embedder
            dims = embedder.dims or int(self.embed(["vexrun"]).shape[1])
            model = embedder.model_id
        sink.open(None)
        sink.prepare(dims, model)
        self._writing = True


def searchable_target(plan: Any, target: int | None, display: str) -> Any:
    """The plan's first target that can be searched, or ``targets[target]`` (its stage spec)."""
    stores = plan.role("store")
    if target is not None and not 0 <= target < len(stores):
        raise UsageError(f"{display}: there is no targets[{target}] (the recipe has {len(stores)} targets)")
    for i, spec in enumerate(stores):
        caps = spec.plugin.capabilities if spec.plugin is not None else None
        if (target is None or i == target) and caps is not None and caps.search:
            return spec
    raise UsageError(
        f"{display}: no target of this recipe can be searched" + (f" (targets[{target}])" if target is not None else "")
    )


def _spec_of(embedder: Mapping[str, Any] | str) -> dict[str, Any]:
    return {"type": embedder} if isinstance(embedder, str) else dict(embedder)


def _embedder_from(arg: Any, *, where: str, hint: str) -> Embedder:
    from .providers.base import Embedder
    from .providers.embed.spec import load_embedder

    if isinstance(arg, Embedder):
        return arg
    spec: Any = {"type": arg} if isinstance(arg, str) else arg
    if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
        raise InvalidInput(f"{where}: the store does not record which embedder made its vectors", hint=hint)
    return load_embedder(spec, hint=hint)


def _items(batch: Batch) -> list[Item]:
    return [
        Item(
            id=rec.id,
            text=rec.text,
            namespace=rec.namespace,
            metadata=rec.metadata,
            created_at=rec.created_at,
            vector=None if vec is None else np.array(vec, dtype=np.float32),
        )
        for rec, vec in batch
    ]


def _close_quietly(part: Any) -> None:
    from .build import close_quietly

    close_quietly(part)


def _now() -> str:
    """The current UTC time as ISO-8601 with milliseconds and a ``Z`` (as stores stamp records)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
