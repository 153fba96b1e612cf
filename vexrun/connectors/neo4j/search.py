"""Vector search over the nodes of a label, by the best path the server has (:meth:`Store.search_path`):

- ``index``: ``db.index.vector.queryNodes`` (a real Neo4j); with a namespace, the index is asked for more
  neighbours until ``k`` of them are in the namespace or it has none left;
- ``cypher``: every vector of the label ranked by ``vector.similarity.cosine`` / ``.euclidean`` in the server,
  which returns the top ``k`` only (ArcadeDB's Bolt);
- ``client``: every vector streamed here and ranked with numpy, the top ``k`` fetched afterwards.

Whatever the path, a hit's ``score`` is the cosine of the query and the stored vector (for l2 labels: minus
their distance), computed here: the servers' own scores differ (Neo4j maps cosine to ``(1 + cos) / 2``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..base import Hit
from ..encoding import from_store
from .client import Store
from .codec import nodes_to_batch

__all__ = ["search"]

_FUNCTION = {"cosine": "vector.similarity.cosine", "l2": "vector.similarity.euclidean"}
_PAGE = 2000


def search(store: Store, query: np.ndarray, k: int, namespace: str | None, metric: str) -> list[Hit]:
    if k <= 0:
        return []
    path = store.search_path()
    if path == "index":
        rows = _by_index(store, query, k, namespace)
    elif path == "cypher":
        rows = _by_cypher(store, query, k, namespace, metric)
    else:
        rows = store.fetch_props(_by_client(store, query, k, namespace, metric), namespace)
    return _hits(rows, store, query, metric)[:k]


def _by_index(store: Store, query: np.ndarray, k: int, namespace: str | None) -> list[dict[str, Any]]:
    cypher = (
        "CALL db.index.vector.queryNodes($index, $n, $q) YIELD node AS m, score "
        f"WHERE true{store.where_ns('m', namespace)} RETURN properties(m) AS p ORDER BY score DESC LIMIT $k"
    )
    n = k if namespace is None else 4 * k
    total: int | None = None
    while True:
        rows = store.read(cypher, {"index": store.index_name, "n": n, "q": query.tolist(), "k": k, "ns": namespace})
        if len(rows) >= k or namespace is None:
            return [r["p"] for r in rows]
        total = store.count() if total is None else total
        if n >= total:
            return [r["p"] for r in rows]
        n = min(4 * n, total)


def _by_cypher(store: Store, query: np.ndarray, k: int, namespace: str | None, metric: str) -> list[dict[str, Any]]:
    emb = f"m.{store.emb}"
    rows = store.read(
        f"MATCH (m:{store.label}) WHERE {emb} IS NOT NULL AND size({emb}) = $d{store.where_ns('m', namespace)} "
        f"WITH m, {_FUNCTION[metric]}({emb}, $q) AS score ORDER BY score DESC LIMIT $k RETURN properties(m) AS p",
        {"q": query.tolist(), "d": int(query.shape[0]), "k": k, "ns": namespace},
        "searching",
    )
    return [r["p"] for r in rows]


def _by_client(store: Store, query: np.ndarray, k: int, namespace: str | None, metric: str) -> list[str]:
    """The ids of the ``k`` best vectors, read page by page in id order."""
    emb = f"m.{store.emb}"
    cypher = (
        f"MATCH (m:{store.label}) WHERE m.id > $after AND {emb} IS NOT NULL{store.where_ns('m', namespace)} "
        f"WITH m ORDER BY m.id LIMIT $n RETURN m.id AS id, {emb} AS e"
    )
    best_ids: list[str] = []
    best = np.empty(0, dtype=np.float32)
    after = ""
    qn = float(np.linalg.norm(query)) or 1.0
    while True:
        rows = store.read(cypher, {"after": after, "n": _PAGE, "ns": namespace}, "searching")
        if not rows:
            break
        after, last = str(rows[-1]["id"]), len(rows) < _PAGE
        rows = [r for r in rows if isinstance(r["e"], list) and len(r["e"]) == query.shape[0]]
        if not rows:
            if last:
                break
            continue
        mat = np.asarray([r["e"] for r in rows], dtype=np.float32)
        if metric == "l2":
            scores = -np.linalg.norm(mat - query, axis=1)
        else:
            scores = (mat @ query) / (np.linalg.norm(mat, axis=1) * qn + 1e-30)
        best = np.concatenate([best, scores.astype(np.float32)])
        best_ids += [str(r["id"]) for r in rows]
        if len(best) > k:
            keep = np.argpartition(-best, k - 1)[:k]
            best, best_ids = best[keep], [best_ids[i] for i in keep]
        if last:
            break
    order = np.argsort(-best, kind="stable")
    return [best_ids[i] for i in order]


def _hits(rows: list[dict[str, Any]], store: Store, query: np.ndarray, metric: str) -> list[Hit]:
    if not rows:
        return []
    batch = from_store(nodes_to_batch(rows, store.cfg))
    qn = float(np.linalg.norm(query)) or 1.0
    scored = []
    for rec, vec in batch:
        cosine = None
        score = float("-inf")
        if vec is not None and vec.shape[0] == query.shape[0]:
            cosine = float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
            score = -float(np.linalg.norm(vec - query)) if metric == "l2" else cosine
        scored.append((score, rec, cosine))
    scored.sort(key=lambda t: -t[0])
    return [
        Hit(
            rank=rank,
            id=rec.id,
            score=score,
            text=rec.text,
            namespace=rec.namespace,
            metadata=rec.metadata,
            created_at=rec.created_at,
            cosine=cosine,
            vector_rank=rank,
        )
        for rank, (score, rec, cosine) in enumerate(scored, start=1)
    ]
