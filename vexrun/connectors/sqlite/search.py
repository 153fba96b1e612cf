"""Search the embedded local memory store: BM25 over the text, cosine over the vectors, or both fused.

::

    from vexrun.connectors.sqlite.search import search
    for hit in search("memory.db", "what does the user drink", k=5):
        print(hit.rank, hit.score, hit.text)

- ``mode="bm25"``: SQLite FTS5 ``MATCH`` ranked by ``bm25()``. The query is split on whitespace and every
  term is quoted, so no user text can break the FTS query syntax; terms are OR-ed, BM25 does the ranking.
- ``mode="vector"``: the query is embedded with the embedder recorded in the store (the one that wrote its
  vectors), and every stored vector is compared by cosine, brute force with numpy, read in chunks so
  memory stays flat whatever the store size.
- ``mode="hybrid"`` (default): reciprocal rank fusion (k=60) of both lists; each hit shows both scores.

:class:`LocalStore` keeps the store and the query embedder open across searches; with ``cache`` it holds the
vectors in memory (see :mod:`.vectors`).
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

import numpy as np

from ...errors import InvalidInput, UsageError, VexrunError
from ...providers.embed.spec import load_embedder
from ..base import Hit
from .schema import loads, open_store, read_meta
from .vectors import VectorCache

if TYPE_CHECKING:
    import os

    from ...providers.base import Embedder

__all__ = [
    "MODES",
    "RRF_K",
    "Hit",
    "LocalStore",
    "Mode",
    "StoreInfo",
    "fts_query",
    "load_embedder",
    "search",
    "store_info",
]

Mode = Literal["hybrid", "bm25", "vector"]
MODES: tuple[str, ...] = get_args(Mode)
#: The constant of reciprocal rank fusion: score = sum over lists of 1 / (RRF_K + rank).
RRF_K = 60
#: Rows per chunk of the vector scan (about 6 MB at 384-d).
SCAN_CHUNK = 4096
#: Each list contributes at least this many candidates to the fusion.
FUSION_DEPTH = 50
MAX_QUERY_TERMS = 64

_WORD = re.compile(r"\w")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class StoreInfo:
    """What a store holds, from its meta table and a few counts."""

    path: str
    schema_version: int
    records: int
    vectors: int
    edges: int
    dims: int | None
    model: str | None
    metric: str | None
    embedder_spec: dict[str, Any] | None
    namespaces: dict[str, int] = field(default_factory=dict)
    created_at: str | None = None
    updated_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


#: English function words dropped from a BM25 query (unless the query is made of nothing else): with OR
#: semantics they match almost every record and would drown the words that carry the question. "user" and
#: "assistant" are the speaker labels of every conversation chunk, so they carry nothing either.
STOPWORDS = frozenset(
    """a about an and are as at be been but by can could did do does doing for from had has have how i if in
    into is it its me my of on or our she he that the their them then there these they this to was we were what
    when where which who whom why will with would you your user assistant""".split()
)


def fts_query(text: str) -> str | None:
    """An FTS5 query that matches any of the whitespace-separated terms of ``text``, each quoted as an FTS5
    string (so ``"``, ``*``, ``AND``, ``(``, ``:`` are plain text), or None if no term has a word
    character. Control characters are dropped (a NUL ends an FTS5 string early); English function words
    are dropped when other terms remain."""
    terms: list[str] = []
    for raw in _CONTROL.sub(" ", text).split():
        if _WORD.search(raw) and raw not in terms:
            terms.append(raw)
        if len(terms) == MAX_QUERY_TERMS:
            break
    if not terms:
        return None
    content = [t for t in terms if t.lower().strip("?!.,;:'\"") not in STOPWORDS]
    terms = content or terms
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


class LocalStore:
    """A store opened read-only for searching. ``embedder`` overrides the recorded one: an
    :class:`~vexrun.providers.base.Embedder` (used as is, not closed), a spec dict ``{"type": ..., ...}``
    or a plugin name. Use as a context manager, or call :meth:`close`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        embedder: Embedder | Mapping[str, Any] | str | None = None,
        cache: bool | None = False,
    ):
        self.path = Path(path)
        self.conn, _ = open_store(self.path, write=False)
        try:
            self.meta = read_meta(self.conn)
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise InvalidInput(f"{self.path}: cannot read the store ({exc})") from None
        self._embedder_arg = embedder
        #: hold the vectors in memory (see :mod:`.vectors`): True; False (scan in chunks: memory stays flat); or
        #: None: from the second vector search on (a store searched again and again, such as an agent's)
        self.cache = cache
        self._vectors: VectorCache | None = None
        self._vector_searches = 0
        self._embedder: Embedder | None = None
        self._owns_embedder = False

    # -- lifecycle -------------------------------------------------------------------------------------

    def __enter__(self) -> LocalStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._embedder is not None and self._owns_embedder:
            self._embedder.close()
        self._embedder = None
        self.conn.close()

    # -- information -----------------------------------------------------------------------------------

    @property
    def dims(self) -> int | None:
        dims = self.meta.get("dims")
        return int(dims) if dims else None

    def info(self) -> StoreInfo:
        q = self.conn.execute
        namespaces = {
            ("" if ns is None else str(ns)): int(n)
            for ns, n in q("SELECT namespace, count(*) FROM records GROUP BY namespace ORDER BY namespace")
        }
        return StoreInfo(
            path=str(self.path),
            schema_version=int(q("PRAGMA user_version").fetchone()[0]),
            records=sum(namespaces.values()),
            vectors=int(q("SELECT count(*) FROM records WHERE vector IS NOT NULL").fetchone()[0]),
            edges=int(q("SELECT count(*) FROM edges").fetchone()[0]),
            dims=self.dims,
            model=self.meta.get("model"),
            metric=self.meta.get("metric"),
            embedder_spec=self.meta.get("embedder_spec"),
            namespaces=namespaces,
            created_at=self.meta.get("created_at"),
            updated_at=self.meta.get("updated_at"),
        )

    # -- search ----------------------------------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        k: int = 10,
        mode: str = "hybrid",
        namespace: str | None = None,
        vector: np.ndarray | None = None,
    ) -> list[Hit]:
        """The ``k`` best records for ``query``. ``vector``: the query's embedding, made by the caller (then the
        store's embedder is not loaded); with a vector and an empty ``query`` the search is by vector alone.
        Raises UsageError for a bad argument and InvalidInput when the store (or namespace) is empty, holds no
        vectors for ``mode="vector"``, or its embedder cannot be loaded (the message suggests ``--mode bm25``)."""
        if mode not in MODES:
            raise UsageError(f"unknown search mode {mode!r} (choose from {', '.join(MODES)})")
        if k < 1:
            raise UsageError(f"k must be at least 1, got {k}")
        if not query.strip():
            if vector is None or mode == "bm25":
                raise UsageError("the query is empty")
            mode = "vector"
        self._check_not_empty(namespace)
        if mode != "bm25" and not self._has_vectors(namespace):
            if mode == "vector":
                raise InvalidInput(f"{self.path}: {self._where(namespace)} holds no vectors", hint="use --mode bm25")
            mode = "bm25"  # hybrid over a text-only store: there is nothing to fuse
        if mode == "bm25":
            bm = self._bm25(query, k, namespace)
            return self._hits([_Ranked(seq, b, bm25=b, bm25_rank=i + 1) for i, (seq, b) in enumerate(bm)])
        qvec = self.embed_query(query) if vector is None else self._checked(np.asarray(vector, dtype=np.float32))
        if mode == "vector":
            vec = self._vector(qvec, k, namespace)
            return self._hits([_Ranked(seq, c, cosine=c, vector_rank=i + 1) for i, (seq, c) in enumerate(vec)])
        depth = max(FUSION_DEPTH, 3 * k)
        fused = _fuse(self._vector(qvec, depth, namespace), self._bm25(query, depth, namespace), k)
        return self._hits(fused, qvec)

    def embed_query(self, query: str) -> np.ndarray:
        """The query's vector from the store's embedder (or the one given), checked against the store's dims."""
        embedder = self._query_embedder()
        try:
            out = np.asarray(embedder.embed([query]), dtype=np.float32)
        except VexrunError:
            raise
        except Exception as exc:  # noqa: BLE001 - a third-party embedder: one line, not a traceback
            raise InvalidInput(
                f"the query embedder failed: {type(exc).__name__}: {_first_line(exc)}", hint="use --mode bm25"
            ) from None
        return self._checked(out)

    def _checked(self, out: np.ndarray) -> np.ndarray:
        vec = out.reshape(-1)
        if self.dims is not None and vec.shape[0] != self.dims:
            raise InvalidInput(
                f"{self.path}: the query embedder gives {vec.shape[0]}-d vectors, the store holds {self.dims}-d ones",
                hint="pass the embedder that wrote the store, or use --mode bm25",
            )
        return vec

    # -- internals -------------------------------------------------------------------------------------

    def _where(self, namespace: str | None) -> str:
        return "the store" if namespace is None else f"namespace '{namespace}'"

    def _check_not_empty(self, namespace: str | None) -> None:
        if self.conn.execute("SELECT 1 FROM records LIMIT 1").fetchone() is None:
            raise InvalidInput(f"{self.path}: the store holds no records")
        if namespace is not None and self._ns_row(namespace) is None:
            names = [r[0] for r in self.conn.execute("SELECT DISTINCT namespace FROM records LIMIT 21")]
            shown = ", ".join("(none)" if n is None else str(n) for n in names[:20]) + (
                ", …" if len(names) > 20 else ""
            )
            raise InvalidInput(f"{self.path}: no records in namespace '{namespace}' (namespaces: {shown})")

    def _ns_row(self, namespace: str) -> Any:
        return self.conn.execute("SELECT 1 FROM records WHERE namespace = ? LIMIT 1", (namespace,)).fetchone()

    def _has_vectors(self, namespace: str | None) -> bool:
        if namespace is None:
            row = self.conn.execute("SELECT 1 FROM records WHERE vector IS NOT NULL LIMIT 1").fetchone()
        else:
            row = self.conn.execute(
                "SELECT 1 FROM records WHERE namespace = ? AND vector IS NOT NULL LIMIT 1", (namespace,)
            ).fetchone()
        return row is not None

    def _query_embedder(self) -> Embedder:
        if self._embedder is not None:
            return self._embedder
        from ...providers.base import Embedder

        arg = self._embedder_arg
        if isinstance(arg, Embedder):
            self._embedder = arg
            return arg
        spec: Any = {"type": arg} if isinstance(arg, str) else arg
        if spec is None:
            spec = self.meta.get("embedder_spec")
        if not isinstance(spec, Mapping) or not isinstance(spec.get("type"), str):
            model = self.meta.get("model")
            raise InvalidInput(
                f"{self.path}: the store does not record which embedder made its vectors"
                + (f" (model '{model}')" if model else ""),
                hint="use --mode bm25, or name the embedder with --embedder",
            )
        self._embedder = load_embedder(dict(spec))
        self._owns_embedder = True
        return self._embedder

    def _bm25(self, query: str, limit: int, namespace: str | None) -> list[tuple[int, float]]:
        match = fts_query(query)
        if match is None:
            return []
        if namespace is None:
            sql = "SELECT rowid, bm25(records_fts) FROM records_fts WHERE records_fts MATCH ? ORDER BY rank LIMIT ?"
            params: tuple[Any, ...] = (match, limit)
        else:
            sql = (
                "SELECT records_fts.rowid, bm25(records_fts) FROM records_fts JOIN records ON records.seq = "
                "records_fts.rowid WHERE records_fts MATCH ? AND records.namespace = ? ORDER BY rank LIMIT ?"
            )
            params = (match, namespace, limit)
        return [(int(seq), -float(score)) for seq, score in self.conn.execute(sql, params)]

    def _vector(self, qvec: np.ndarray, limit: int, namespace: str | None) -> list[tuple[int, float]]:
        """Top ``limit`` (seq, cosine) by a chunked brute-force scan; ties go to the older record."""
        d = int(qvec.shape[0])
        qnorm = float(np.linalg.norm(qvec))
        if qnorm == 0.0 or not np.isfinite(qnorm):
            return []
        q = (qvec / qnorm).astype(np.float32)
        held = self._held_vectors(d)
        if held is not None:
            return held.top(q, limit, namespace)
        ns_clause = "" if namespace is None else " AND namespace = ?"
        sql = f"SELECT seq, vector FROM records WHERE seq > ?{ns_clause} AND length(vector) = ? ORDER BY seq LIMIT ?"
        best_seq = np.empty(0, dtype=np.int64)
        best_sim = np.empty(0, dtype=np.float32)
        after = 0
        while True:
            params: tuple[Any, ...] = (after, namespace, d * 4, SCAN_CHUNK) if namespace else (after, d * 4, SCAN_CHUNK)
            rows = self.conn.execute(sql, params).fetchall()
            if not rows:
                break
            seqs = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), d)
            norms = np.sqrt(np.einsum("ij,ij->i", mat, mat, dtype=np.float32))
            norms[norms == 0] = np.inf
            sims = ((mat @ q) / norms).astype(np.float32)
            ok = np.isfinite(sims)  # a stored NaN or inf never ranks
            best_seq = np.concatenate((best_seq, seqs[ok]))
            best_sim = np.concatenate((best_sim, sims[ok]))
            if best_seq.shape[0] > limit:
                keep = np.argpartition(-best_sim, limit - 1)[:limit]
                best_seq, best_sim = best_seq[keep], best_sim[keep]
            after = int(rows[-1][0])
            if len(rows) < SCAN_CHUNK:
                break
        order = np.lexsort((best_seq, -best_sim))
        return [(int(best_seq[i]), float(best_sim[i])) for i in order]

    def _held_vectors(self, dims: int) -> VectorCache | None:
        """The vectors in memory, when this store holds them (or should start to), brought up to date."""
        self._vector_searches += 1
        if self.cache is False or (self.cache is None and self._vector_searches < 2):
            return None
        if self._vectors is None or self._vectors.dims != dims:
            if not VectorCache.fits(self.conn, dims):
                self.cache = False  # too large to hold: scan in chunks, as a single search does
                return None
            self._vectors = VectorCache(self.conn, dims)
        self._vectors.refresh()
        return self._vectors

    def _hits(self, ranked: list[_Ranked], qvec: np.ndarray | None = None) -> list[Hit]:
        """Hits in the order of ``ranked``. With ``qvec``, the cosine of hits that only BM25 found is
        computed too, so a hybrid hit shows both scores."""
        if not ranked:
            return []
        seqs = [r.seq for r in ranked]
        vector = "vector" if qvec is not None else "NULL"
        rows = {
            int(row[0]): row
            for row in self.conn.execute(
                f"SELECT seq, id, text, namespace, metadata, created_at, {vector} FROM records "
                f"WHERE seq IN ({','.join('?' * len(seqs))})",
                seqs,
            )
        }
        hits: list[Hit] = []
        for r in ranked:
            row = rows.get(r.seq)
            if row is None:  # deleted between the two queries
                continue
            cosine = r.cosine
            if cosine is None and qvec is not None and row[6] is not None and len(row[6]) == qvec.shape[0] * 4:
                cosine = _cosine(qvec, np.frombuffer(row[6], dtype="<f4"))
            hits.append(
                Hit(
                    rank=len(hits) + 1,
                    id=row[1],
                    score=r.score,
                    text=row[2],
                    namespace=row[3],
                    metadata=loads(row[4]),
                    created_at=row[5],
                    cosine=cosine,
                    vector_rank=r.vector_rank,
                    bm25=r.bm25,
                    bm25_rank=r.bm25_rank,
                )
            )
        return hits


@dataclass(slots=True)
class _Ranked:
    seq: int
    score: float
    cosine: float | None = None
    vector_rank: int | None = None
    bm25: float | None = None
    bm25_rank: int | None = None


def _cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    if na == 0.0 or nb == 0.0:
        return None
    value = float(np.dot(a, b) / (na * nb))
    return value if np.isfinite(value) else None


def _fuse(vec: list[tuple[int, float]], bm: list[tuple[int, float]], k: int) -> list[_Ranked]:
    """Reciprocal rank fusion of (seq, cosine) and (seq, bm25) lists, best first; the top ``k``."""
    fused: dict[int, _Ranked] = {}
    for i, (seq, c) in enumerate(vec):
        fused[seq] = _Ranked(seq, 1.0 / (RRF_K + i + 1), cosine=c, vector_rank=i + 1)
    for i, (seq, b) in enumerate(bm):
        r = fused.setdefault(seq, _Ranked(seq, 0.0))
        r.score += 1.0 / (RRF_K + i + 1)
        r.bm25, r.bm25_rank = b, i + 1
    return sorted(fused.values(), key=lambda r: (-r.score, r.seq))[:k]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def search(
    path: str | os.PathLike[str],
    query: str,
    *,
    k: int = 10,
    mode: str = "hybrid",
    namespace: str | None = None,
    embedder: Embedder | Mapping[str, Any] | str | None = None,
) -> list[Hit]:
    """Search the local store at ``path``; see :class:`LocalStore` and :meth:`LocalStore.search`."""
    with LocalStore(path, embedder=embedder) as store:
        return store.search(query, k=k, mode=mode, namespace=namespace)


def store_info(path: str | os.PathLike[str]) -> StoreInfo:
    """What the store at ``path`` holds."""
    with LocalStore(path) as store:
        return store.info()
