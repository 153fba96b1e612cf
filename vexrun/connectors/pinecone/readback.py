"""Reading an index back by record id (``vexrun compare``, a run's reconciliation, the recall facade), and
searching it.

A record id is mapped to its Pinecone id the way the run mapped it (:func:`~..encoding.store_id` with the
connector's capabilities, then :func:`~.codec.store_key`), so vexrun ids and store ids alike find the record.
Records are decoded as :class:`~.source.PineconeSource` decodes them, then by :func:`~..encoding.from_store`.

A vexrun namespace is the Pinecone namespace of the same name; without one, every namespace the index holds
records in is asked (``describe_index_stats`` lists them), the default namespace ('') included.

Costs: ``fetch`` is one request per 1,000 ids (fewer when ids are long: a fetch carries them in its URL) per
namespace asked; ``delete`` fetches first, to count what it removes, then deletes 1,000 ids per request;
``count`` and ``namespaces`` are one ``describe_index_stats``; ``search`` is one query per namespace asked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any
from urllib.parse import quote

import msgspec
import numpy as np

from ...errors import InvalidInput
from ...floatjson import FloatArrays
from ...vmig.batch import Batch
from ..base import Hit
from ..encoding import from_store, store_id
from .client import Store, sdk_major
from .codec import store_key, to_batch
from .config import PineconeStoreConfig
from .pacing import Pacer
from .plugin import CAPABILITIES

__all__ = [
    "IDS_PER_REQUEST",
    "count",
    "decode_fetch",
    "decode_replies",
    "delete",
    "fetch",
    "fetch_replies",
    "fetch_rows",
    "id_groups",
    "namespaces",
    "search",
]

IDS_PER_REQUEST = 1000
#: URL-encoded ids one fetch carries at most (servers refuse request lines of 64 KB)
MAX_QUERY_CHARS = 30_000
#: Pinecone's query limit when values and metadata are returned
MAX_TOP_K = 1000

Row = tuple[str, Any, Any, str]


def id_groups(keys: Sequence[str]) -> Iterator[list[str]]:
    """Ids in groups one fetch request can carry (at most 1,000, and a URL of bounded length)."""
    group: list[str] = []
    chars = 0
    for key in keys:
        size = len(quote(key, safe="")) + 5
        if group and (len(group) >= IDS_PER_REQUEST or chars + size > MAX_QUERY_CHARS):
            yield group
            group, chars = [], 0
        group.append(key)
        chars += size
    if group:
        yield group


class _Vector(msgspec.Struct):
    values: msgspec.Raw = msgspec.Raw()  # the JSON text, empty when absent
    metadata: dict[str, Any] | None = None


class _Fetched(msgspec.Struct):
    vectors: dict[str, _Vector] = msgspec.field(default_factory=dict)


_decode_fetched = msgspec.json.Decoder(_Fetched).decode
_decode_values = msgspec.json.Decoder(list[float]).decode


def decode_fetch(content: bytes, namespace: str, floats: FloatArrays | None = None) -> dict[str, Row]:
    """The rows of a ``fetch`` reply's JSON, as the SDK decodes them (msgspec, values as doubles), except that
    each record's values become a float32 array read by simdjson (:mod:`vexrun.floatjson`), without a Python
    float per value; values it cannot vouch for are decoded by msgspec, as the SDK does. A reply that is not a
    fetch reply raises ``msgspec.DecodeError``."""
    floats = floats or FloatArrays()
    out: dict[str, Row] = {}
    for key, vec in _decode_fetched(content).vectors.items():
        values: Any = None
        text = bytes(vec.values)
        if text:
            got = floats.read(text)
            if got is None:
                values = _decode_values(text)
            elif got[0] is not None:
                values = np.frombuffer(got[0], dtype=np.float64).astype(np.float32)
        out[key] = (key, values, vec.metadata, namespace)
    return out


def _raw_fetch(index: Any) -> Callable[..., bytes] | None:
    """The SDK's own ``GET /vectors/fetch`` (its connection, headers, retries and errors) answering the reply's
    bytes, which :func:`decode_fetch` reads; None with an SDK other than the one this was checked with
    (pinecone 10), which then decodes replies itself (``index.fetch``)."""
    get = getattr(getattr(index, "_http", None), "get", None)
    if get is None or sdk_major() != 10:
        return None
    try:
        from pinecone._internal.validation import require_valid_vector_ids
    except ImportError:
        return None

    def run(ids: list[str], namespace: str) -> bytes:
        require_valid_vector_ids("ids", ids)
        params: dict[str, Any] = {"ids": ids}
        if namespace:
            params["namespace"] = namespace
        return bytes(get("/vectors/fetch", timeout=None, params=params).content)

    return run


#: what :func:`fetch_replies` gives: the replies' bytes (decoded by :func:`decode_replies`), or the rows the SDK
#: decoded
Replies = list[bytes] | dict[str, Row]


def fetch_replies(store: Store, keys: Sequence[str], namespace: str, pacer: Pacer | None = None) -> Replies:
    """Fetch the ids the namespace holds (as many requests as :func:`id_groups` cuts): the replies' bytes,
    or the rows when the SDK decodes its replies itself (an SDK other than the one :func:`_raw_fetch` was checked
    with)."""
    before = (lambda: pacer.acquire("fetch")) if pacer is not None else None
    refused = (lambda hint: pacer.refused("fetch", hint)) if pacer is not None else None
    raw = _raw_fetch(store.index)
    if raw is not None:
        retries = store.cfg.retries
        doing = "fetching records"
        return [
            store.call(doing, raw, group, namespace, retries=retries, before=before, on_refused=refused)
            for group in id_groups(keys)
        ]
    out: dict[str, Row] = {}
    for group in id_groups(keys):
        got = store.call(
            "fetching records",
            store.index.fetch,
            ids=group,
            namespace=namespace,
            retries=store.cfg.retries,
            before=before,
            on_refused=refused,
        )
        for key, vec in got.vectors.items():
            out[key] = (key, vec.values, vec.metadata, namespace)
    return out


def decode_replies(store: Store, replies: Replies, namespace: str) -> dict[str, Row]:
    """The rows of :func:`fetch_replies`' replies (a reply that is not a fetch reply: one clear error)."""
    if isinstance(replies, dict):
        return replies
    floats = FloatArrays()
    out: dict[str, Row] = {}
    for content in replies:
        try:
            out.update(decode_fetch(content, namespace, floats))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            store.fail(exc, "reading fetched records")
    return out


def fetch_rows(store: Store, keys: Sequence[str], namespace: str, pacer: Pacer | None = None) -> dict[str, Row]:
    """Pinecone id -> (id, values, metadata, namespace) of the ids the namespace holds; values are a float32
    array (a list of floats when the SDK decoded them, or a value simdjson did not vouch for), or None."""
    return decode_replies(store, fetch_replies(store, keys, namespace, pacer), namespace)


def _keys(ids: Sequence[str]) -> list[str]:
    return [store_key(store_id(rid, CAPABILITIES)) for rid in ids]


def _spaces(store: Store, namespace: str | None) -> list[str]:
    return [namespace] if namespace is not None else sorted(store.counts())


def fetch(store: Store, cfg: PineconeStoreConfig, ids: Sequence[str], namespace: str | None) -> Batch:
    keys = _keys(ids)
    if not keys:
        return Batch(records=[])
    found: dict[str, Row] = {}
    pacer = Pacer(100.0)
    for ns in _spaces(store, namespace):
        wanted = [key for key in dict.fromkeys(keys) if key not in found]
        if not wanted:
            break
        found.update(fetch_rows(store, wanted, ns, pacer))
    rows = [found[key] for key in keys if key in found]
    if not rows:
        return Batch(records=[])
    return from_store(to_batch(rows, cfg.text_key))


def delete(store: Store, ids: Sequence[str], namespace: str | None) -> int:
    keys = list(dict.fromkeys(_keys(ids)))
    if not keys:
        return 0
    deleted = 0
    pacer = Pacer(100.0)
    for ns in _spaces(store, namespace):
        present = list(fetch_rows(store, keys, ns, pacer))
        for start in range(0, len(present), IDS_PER_REQUEST):
            store.call(
                "deleting records",
                store.index.delete,
                ids=present[start : start + IDS_PER_REQUEST],
                namespace=ns,
                retries=store.cfg.retries,
                before=_taker(pacer, f"delete:{ns}"),
            )
        deleted += len(present)
    return deleted


def _taker(pacer: Pacer, key: str) -> Callable[[], None]:
    return lambda: pacer.acquire(key)


def namespaces(store: Store) -> list[str]:
    return sorted(name for name in store.counts() if name)


def count(store: Store, namespace: str | None) -> int:
    counts = store.counts()
    return sum(counts.values()) if namespace is None else counts.get(namespace, 0)


def search(store: Store, cfg: PineconeStoreConfig, vector: Any, k: int, namespace: str | None) -> list[Hit]:
    if vector is None:
        raise InvalidInput("pinecone search needs a query vector (the recipe's embedder makes one)")
    query = np.asarray(vector, dtype=np.float32).ravel()
    top_k = max(1, min(k, MAX_TOP_K))
    euclidean = store.metric == "l2"
    matches: list[tuple[float, Row]] = []
    for ns in _spaces(store, namespace):
        res = store.call(
            "searching",
            store.index.query,
            vector=query.tolist(),
            top_k=top_k,
            namespace=ns,
            include_values=True,
            include_metadata=True,
            retries=store.cfg.retries,
        )
        matches += [(float(m.score), (m.id, m.values, m.metadata, ns)) for m in res.matches]
    matches.sort(key=lambda pair: pair[0] if euclidean else -pair[0])
    matches = matches[:k]
    if not matches:
        return []
    batch = from_store(to_batch([row for _, row in matches], cfg.text_key))
    qn = float(np.linalg.norm(query)) or 1.0
    hits = []
    for rank, ((score, _), (rec, vec)) in enumerate(zip(matches, batch, strict=True), start=1):
        cosine = None if vec is None else float(np.dot(vec, query) / ((float(np.linalg.norm(vec)) or 1.0) * qn))
        hits.append(
            Hit(
                rank=rank,
                id=rec.id,
                score=-score if euclidean else score,
                text=rec.text,
                namespace=rec.namespace,
                metadata=rec.metadata,
                created_at=rec.created_at,
                cosine=cosine,
                vector_rank=rank,
            )
        )
    return hits
