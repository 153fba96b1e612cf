"""What a fake Pinecone index holds and the rules a real one enforces on it: records (id, float32 values,
metadata) per namespace, the checks of an upsert, metadata filters, nearest-neighbour scoring and id listing.

Everything here is plain data and numpy; :mod:`.api` turns HTTP requests into calls on it and :class:`Refused`
into the answers a real index gives. The rules, with where they come from:

- a record id is 1-512 ASCII characters without NUL (the SDK's own check, "the same rule upsert applies");
- the values have exactly the index's dimension and at least one is non-zero (Pinecone's limits page);
- metadata values are strings, numbers, booleans or lists of strings; a null is dropped on write rather than
  refused (the SDK quotes the server's ``NullHandling::Strip``); numbers come back as floats (the server keeps
  metadata in a protobuf ``Struct``, whose only number is a double);
- at most 40,960 bytes of metadata per record, measured here as its compact JSON ("Metadata size is 42177
  bytes, which exceeds the limit of 40960 bytes per vector");
- ids are listed in sorted order, 100 per page at most, with an opaque token for the next page.
"""

from __future__ import annotations

import base64
import math
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

__all__ = ["IndexData", "Namespace", "Refused", "check_id", "check_metadata", "matches_filter", "page_token"]

MAX_ID_CHARS = 512
MAX_METADATA_BYTES = 40960
METRICS = ("cosine", "euclidean", "dotproduct")


class Refused(Exception):
    """A request the index refuses: the HTTP status, the gRPC-style code and the message it answers with."""

    def __init__(self, status: int, message: str, code: int = 3) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _render(value: Any) -> str:
    """A value as the server quotes it in a refusal: compact JSON, numbers as doubles, at most 16 bytes."""

    def floats(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: floats(x) for k, x in v.items()}
        if isinstance(v, list):
            return [floats(x) for x in v]
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    text = orjson.dumps(floats(value)).decode()
    raw = text.encode()
    return raw[:16].decode("utf-8", "ignore") + "..." if len(raw) > 16 else text


def check_id(rid: Any, what: str = "Vector ID") -> str:
    if not isinstance(rid, str):
        raise Refused(400, f"{what} must be a string")
    if not rid:
        raise Refused(400, f"{what} must not be empty")
    if len(rid) > MAX_ID_CHARS:
        raise Refused(400, f"{what} must be at most {MAX_ID_CHARS} characters, got {len(rid)}")
    if not rid.isascii():
        raise Refused(400, f"{what} must contain only ASCII characters")
    if "\x00" in rid:
        raise Refused(400, f"{what} must not contain null characters")
    return rid


def check_metadata(meta: Any, max_bytes: int = MAX_METADATA_BYTES) -> dict[str, Any] | None:
    """The metadata as the index keeps it (nulls dropped, numbers as floats), or :class:`Refused`."""
    if meta is None:
        return None
    if not isinstance(meta, dict):
        raise Refused(400, "Metadata must be a JSON object")
    kept: dict[str, Any] = {}
    for key, value in meta.items():
        if value is None:
            continue
        if isinstance(value, bool) or isinstance(value, str):
            kept[key] = value
        elif isinstance(value, int | float):
            kept[key] = float(value)
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            kept[key] = value
        else:
            raise Refused(
                400,
                "Metadata value must be a string, number, boolean or list of strings, "
                f"got '{_render(value)}' for field '{key}'",
            )
    size = len(orjson.dumps(kept))
    if size > max_bytes:
        raise Refused(400, f"Metadata size is {size} bytes, which exceeds the limit of {max_bytes} bytes per vector")
    return kept


# --- metadata filters ---------------------------------------------------------------------------------------
def _compare(op: str, have: Any, want: Any) -> bool:
    if op == "$exists":
        return (have is not None) == bool(want)
    if have is None:
        return op in ("$ne", "$nin")
    values = have if isinstance(have, list) else [have]
    if op == "$eq":
        return want in values
    if op == "$ne":
        return want not in values
    if op == "$in":
        return any(v in want for v in values)
    if op == "$nin":
        return not any(v in want for v in values)
    if op in ("$gt", "$gte", "$lt", "$lte"):
        if isinstance(have, bool) or not isinstance(have, float) or not isinstance(want, int | float):
            return False
        return {"$gt": have > want, "$gte": have >= want, "$lt": have < want, "$lte": have <= want}[op]
    raise Refused(400, f"Unsupported filter operator {op}")


def matches_filter(meta: dict[str, Any] | None, flt: dict[str, Any]) -> bool:
    """Pinecone's metadata filter language: implicit ``$eq``, ``$eq/$ne/$in/$nin/$gt/$gte/$lt/$lte/$exists``
    and ``$and`` / ``$or``."""
    meta = meta or {}
    for key, cond in flt.items():
        if key == "$and":
            if not all(matches_filter(meta, part) for part in cond):
                return False
        elif key == "$or":
            if not any(matches_filter(meta, part) for part in cond):
                return False
        elif key.startswith("$"):
            raise Refused(400, f"Unsupported filter operator {key}")
        elif isinstance(cond, dict):
            have = meta.get(key)
            wanted = {op: (float(v) if isinstance(v, int) and not isinstance(v, bool) else v) for op, v in cond.items()}
            if not all(_compare(op, have, v) for op, v in wanted.items()):
                return False
        elif not _compare("$eq", meta.get(key), float(cond) if isinstance(cond, int) and cond is not True else cond):
            return False
    return True


# --- paging -------------------------------------------------------------------------------------------------
def page_token(last_id: str) -> str:
    """An opaque pagination token that resumes listing after ``last_id``."""
    return base64.urlsafe_b64encode(orjson.dumps({"after": last_id})).decode().rstrip("=")


def _after(token: str) -> str:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(data["after"])
    except (ValueError, KeyError, TypeError):
        raise Refused(400, "Invalid pagination token") from None


@dataclass
class Namespace:
    """The records of one namespace: id -> (float32 values, metadata)."""

    records: dict[str, tuple[np.ndarray, dict[str, Any] | None]] = field(default_factory=dict)
    _sorted: list[str] | None = None
    _matrix: tuple[list[str], np.ndarray] | None = None

    def changed(self) -> None:
        self._sorted = None
        self._matrix = None

    def sorted_ids(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.records)
        return self._sorted

    def matrix(self, dims: int) -> tuple[list[str], np.ndarray]:
        if self._matrix is None:
            ids = list(self.records)
            mat = np.stack([self.records[i][0] for i in ids]) if ids else np.zeros((0, dims), np.float32)
            self._matrix = (ids, mat)
        return self._matrix


_NUMBER_TYPES = frozenset({float, int})


@dataclass
class IndexData:
    """One dense index: its shape and its namespaces ('' is the default namespace)."""

    name: str
    dimension: int
    metric: str
    cloud: str = "aws"
    region: str = "us-east-1"
    namespaces: dict[str, Namespace] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def upsert(self, namespace: str, rows: list[tuple[str, np.ndarray, dict[str, Any] | None]]) -> int:
        with self.lock:
            ns = self.namespaces.setdefault(namespace, Namespace())
            for rid, vec, meta in rows:
                ns.records[rid] = (vec, meta)
            ns.changed()
        return len(rows)

    def check_values(self, values: Any, what: str = "Vector") -> np.ndarray:
        """The float32 vector of an upsert's (or a query's) values: a JSON list, or the float64 array the fast
        parse read from one (flat, non-empty, numbers only), checked alike."""
        if isinstance(values, np.ndarray):
            if len(values) != self.dimension:
                raise Refused(
                    400, f"{what} dimension {len(values)} does not match the dimension of the index {self.dimension}"
                )
            with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, refused below as from a list
                vec = values.astype(np.float32)
        else:
            if not isinstance(values, list) or not values:
                raise Refused(400, f"{what} must have at least one of non-empty dense values or sparse values")
            if len(values) != self.dimension:
                raise Refused(
                    400, f"{what} dimension {len(values)} does not match the dimension of the index {self.dimension}"
                )
            # numbers only: numpy would also take booleans and numeric strings, which Pinecone refuses
            if not set(map(type, values)) <= _NUMBER_TYPES:
                raise Refused(400, f"{what} values must be numbers")
            with np.errstate(over="ignore"):  # a double beyond float32 becomes inf, refused below
                vec = np.asarray(values, dtype=np.float32)
        if not np.isfinite(vec).all():
            raise Refused(400, f"{what} values must be finite numbers")
        if what == "Vector" and not vec.any():
            raise Refused(400, "Dense vectors must contain at least one non-zero value")
        return vec

    def fetch(self, namespace: str, ids: Iterable[str]) -> list[tuple[str, np.ndarray, dict[str, Any] | None]]:
        with self.lock:
            ns = self.namespaces.get(namespace)
            if ns is None:
                return []
            return [(rid, *ns.records[rid]) for rid in dict.fromkeys(ids) if rid in ns.records]

    def delete(self, namespace: str, ids: Iterable[str] | None, flt: dict[str, Any] | None) -> int:
        with self.lock:
            ns = self.namespaces.get(namespace)
            if ns is None:
                return 0
            if ids is None:
                doomed = [rid for rid, (_, meta) in ns.records.items() if flt is None or matches_filter(meta, flt)]
            else:
                doomed = [rid for rid in ids if rid in ns.records]
            for rid in doomed:
                del ns.records[rid]
            ns.changed()
            if not ns.records:
                del self.namespaces[namespace]
            return len(doomed)

    def list_ids(self, namespace: str, prefix: str, limit: int, token: str | None) -> tuple[list[str], str | None]:
        """A page of ids in sorted order and the token of the next page (None after the last)."""
        import bisect

        with self.lock:
            ns = self.namespaces.get(namespace)
            ids = ns.sorted_ids() if ns is not None else []
        start = bisect.bisect_right(ids, _after(token)) if token else bisect.bisect_left(ids, prefix)
        if token and start < len(ids) and ids[start] < prefix:
            start = bisect.bisect_left(ids, prefix)
        end = start
        while end < len(ids) and end - start < limit and ids[end].startswith(prefix):
            end += 1
        page = ids[start:end]
        more = end < len(ids) and ids[end].startswith(prefix)
        return page, page_token(page[-1]) if page and more else None

    def counts(self, flt: dict[str, Any] | None = None) -> dict[str, int]:
        with self.lock:
            if flt is None:
                return {name: len(ns.records) for name, ns in self.namespaces.items() if ns.records}
            out = {}
            for name, ns in self.namespaces.items():
                n = sum(1 for _, meta in ns.records.values() if matches_filter(meta, flt))
                if n:
                    out[name] = n
            return out

    def query(
        self, namespace: str, vector: np.ndarray, top_k: int, flt: dict[str, Any] | None
    ) -> list[tuple[str, float, np.ndarray, dict[str, Any] | None]]:
        """The ``top_k`` nearest records: highest cosine / dot product first, or smallest squared euclidean
        distance first (Pinecone's order for each metric)."""
        with self.lock:
            ns = self.namespaces.get(namespace)
            if ns is None or not ns.records:
                return []
            ids, mat = ns.matrix(self.dimension)
            records = ns.records
            if flt is not None:
                keep = [i for i, rid in enumerate(ids) if matches_filter(records[rid][1], flt)]
                ids, mat = [ids[i] for i in keep], mat[keep]
            rows = {rid: records[rid] for rid in ids}
        if not ids:
            return []
        q = vector.astype(np.float64)
        m = mat.astype(np.float64)
        if self.metric == "cosine":
            norms = np.linalg.norm(m, axis=1) * (float(np.linalg.norm(q)) or 1.0)
            scores = (m @ q) / np.where(norms > 0, norms, 1.0)
            order = np.argsort(-scores, kind="stable")
        elif self.metric == "dotproduct":
            scores = m @ q
            order = np.argsort(-scores, kind="stable")
        else:
            scores = ((m - q) ** 2).sum(axis=1)
            order = np.argsort(scores, kind="stable")
        out = []
        for i in order[:top_k]:
            rid = ids[int(i)]
            vec, meta = rows[rid]
            score = float(scores[int(i)])
            out.append((rid, score if math.isfinite(score) else 0.0, vec, meta))
        return out
