"""Reading a vexrun collection back by record id (``vexrun compare``, a run's reconciliation, the recall facade).

An id is mapped to its primary key the way the run mapped it (:func:`~..encoding.store_id` with the
connector's capabilities: an id over 512 bytes is a uuid5 with the original in the metadata); rows are decoded
as :class:`~.source.MilvusSource` decodes them (:func:`~.codec.decode_row`, vectors as float32, bit-exact),
then by :func:`~..encoding.from_store`. Every query is Strong: it sees every write made before it.

Costs: ``fetch`` is one ``id in [...]`` query per chunk of at most :data:`CHUNK` ids and :data:`EXPR_BYTES`
of expression (a chunk whose reply would be over Milvus's message limit is halved); ``delete`` is one query of
the keys held and one delete per chunk; ``count`` is a ``count(*)`` query. Milvus has no distinct or facet
query, so ``namespaces`` asks for rows whose namespace is none of those already found (``namespace not in
[...]``, the namespace field only): one query per namespace, plus one; past :data:`MAX_EXCLUDED` namespaces
it reads the namespace field of every row instead (a query iterator). A record without a namespace is stored
with ``""`` (see :mod:`.codec`), so ``""`` is never listed, and ``count("")`` counts the records without one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import VexrunError
from ...vmig.batch import Batch
from ..encoding import from_store, store_id
from .codec import decode_row
from .common import COLUMNS, ID, MAX_ID_BYTES, NAMESPACE, VECTOR, Store, literal, milvus_error
from .plugin import CAPABILITIES

if TYPE_CHECKING:
    from ...vmig.model import Record

__all__ = ["count", "delete", "fetch", "namespaces"]

#: Ids per ``id in [...]`` query (well under Milvus's 16,384 rows a query may return).
CHUNK = 1000
#: Bytes of ids per query expression.
EXPR_BYTES = 256 * 1024
#: Rows per query while listing namespaces.
PAGE = 1000
#: Above this many namespaces, listing stops excluding the ones found and reads every row's namespace.
MAX_EXCLUDED = 256
_STRONG = {"consistency_level": "Strong"}


def _keys(ids: Sequence[str]) -> list[str]:
    """The primary keys of these ids that a collection can hold (valid UTF-8, not empty, within the limit)."""
    out = []
    for key in dict.fromkeys(store_id(rid, CAPABILITIES) for rid in ids):
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            continue
        if 0 < size <= MAX_ID_BYTES:
            out.append(key)
    return out


def _chunks(keys: list[str]) -> Iterator[list[str]]:
    part: list[str] = []
    size = 0
    for key in keys:
        width = len(key.encode("utf-8")) + 4
        if part and (len(part) >= CHUNK or size + width > EXPR_BYTES):
            yield part
            part, size = [], 0
        part.append(key)
        size += width
    if part:
        yield part


def _expr(keys: list[str], namespace: str | None) -> str:
    expr = f"{ID} in [{', '.join(literal(k) for k in keys)}]"
    return expr if namespace is None else f"{expr} and {NAMESPACE} == {literal(namespace)}"


def _query(store: Store, keys: list[str], namespace: str | None, fields: list[str]) -> list[dict[str, Any]]:
    """The rows of these keys; a reply over Milvus's message limit is asked for again in halves."""
    try:
        rows = store.client.query(
            store.collection,
            filter=_expr(keys, namespace),
            output_fields=fields,
            strict_float32=True,
            **_STRONG,
        )
        return list(rows)
    except Exception as exc:  # noqa: BLE001 - see milvus_error
        err = exc if isinstance(exc, VexrunError) else milvus_error(exc, store.where, "reading records")
        if "over the size limit" in str(err) and len(keys) > 1:
            half = len(keys) // 2
            return _query(store, keys[:half], namespace, fields) + _query(store, keys[half:], namespace, fields)
        raise err from None


def _in_order(found: dict[str, tuple[Record, np.ndarray | None]], ids: Sequence[str]) -> Batch:
    """The found records (by the key the store holds them under) in the order of ``ids``, vexrun ids or store
    keys alike (:func:`store_id` maps a key to itself); missing ids left out, an id asked twice given twice."""
    keys = (store_id(rid, CAPABILITIES) for rid in ids)
    hits = [found[key] for key in keys if key in found]
    return Batch.from_records([rec for rec, _ in hits], [vec for _, vec in hits])


def _decoded(batch: Batch) -> Iterator[tuple[str, Record, np.ndarray | None]]:
    """(store key, decoded record, vector) of each record of a batch as the store gave it."""
    keys = [rec.id for rec in batch.records]
    for key, (rec, vec) in zip(keys, from_store(batch), strict=True):
        yield key, rec, vec


def fetch(store: Store, ids: Sequence[str], namespace: str | None) -> Batch:
    """The records with these ids (in ``namespace`` only, when given), in the order asked."""
    found: dict[str, tuple[Record, np.ndarray | None]] = {}
    for part in _chunks(_keys(ids)):
        rows = _query(store, part, namespace, list(COLUMNS))
        if not rows:
            continue
        vectors = np.stack([np.asarray(row[VECTOR], dtype=np.float32) for row in rows])
        records = [decode_row(row) for row in rows]
        for rec in records:
            rec.dims = int(vectors.shape[1])
        batch = Batch(records=records, vectors=vectors, has_vector=np.ones(len(records), dtype=bool))
        for key, rec, vec in _decoded(batch):
            found[key] = (rec, vec)
    return _in_order(found, ids)


def delete(store: Store, ids: Sequence[str], namespace: str | None) -> int:
    """Delete the rows of these ids (those in ``namespace``, when given); how many there were."""
    deleted = 0
    for part in _chunks(_keys(ids)):
        held = [str(row[ID]) for row in _query(store, part, namespace, [ID])]
        if held:
            store.call("deleting records", store.client.delete, store.collection, filter=_expr(held, None))
            deleted += len(held)
    return deleted


def count(store: Store, namespace: str | None) -> int:
    return store.count("" if namespace is None else f"{NAMESPACE} == {literal(namespace)}")


def namespaces(store: Store) -> list[str]:
    """The distinct namespaces (see the module docstring for the cost)."""
    found: set[str] = set()
    while len(found) <= MAX_EXCLUDED:
        excluded = ", ".join(literal(v) for v in ["", *sorted(found)])
        rows = store.call(
            "listing namespaces",
            store.client.query,
            store.collection,
            filter=f"{NAMESPACE} not in [{excluded}]",
            output_fields=[NAMESPACE],
            limit=PAGE,
            **_STRONG,
        )
        new = {str(row[NAMESPACE]) for row in rows} - found
        if not new:
            return sorted(found)
        found |= new
    return sorted(_every_namespace(store))


def _every_namespace(store: Store) -> set[str]:
    found: set[str] = set()
    it = store.call(
        "listing namespaces",
        store.client.query_iterator,
        store.collection,
        batch_size=PAGE * 4,
        filter=f'{NAMESPACE} != ""',
        output_fields=[NAMESPACE],
        **_STRONG,
    )
    try:
        while True:
            rows = store.call("listing namespaces", it.next)
            if not rows:
                return found
            found.update(str(row[NAMESPACE]) for row in rows)
    finally:
        it.close()
