"""The HTTP endpoints of a fake Pinecone project: the control plane (``/indexes``) and each index's data plane,
with the JSON shapes the real API uses (control plane snake_case, data plane camelCase) and its error bodies:

- data plane: ``{"code": <gRPC code>, "message": "...", "details": []}`` (``code`` 3 for a bad argument, 8 for a
  rate limit); a wrong or missing ``Api-Key`` is a 401 with the text body ``Invalid API Key``;
- control plane: ``{"error": {"code": "NOT_FOUND", "message": "..."}, "status": 404}``.

Index descriptions follow the ``X-Pinecone-Api-Version`` the client sends: from ``2026-07`` on (pinecone SDK 10)
a ``schema`` with one ``_values`` dense-vector field and a ``deployment``; before it the older
``dimension`` / ``metric`` / ``spec.serverless`` shape.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import msgspec
import numpy as np
import orjson

from ...floatjson import FloatArrays
from .data import METRICS, IndexData, Refused, check_id, check_metadata
from .limits import Limits, RateLimiter, Stats

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Answer", "ControlPlane", "DataPlane", "Request"]

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\Z")
_GRPC_NAMES = {
    3: "INVALID_ARGUMENT",
    5: "NOT_FOUND",
    6: "ALREADY_EXISTS",
    8: "RESOURCE_EXHAUSTED",
    16: "UNAUTHENTICATED",
}
NEW_SHAPE_FROM = "2026-07"


@dataclass
class Request:
    method: str
    path: str
    query: str
    #: lower-cased names
    headers: dict[str, str]
    body: bytes

    def params(self) -> dict[str, list[str]]:
        return parse_qs(self.query, keep_blank_values=True)

    def param(self, name: str, default: str | None = None) -> str | None:
        values = self.params().get(name)
        return values[-1] if values else default

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise Refused(400, "Invalid request body: not JSON") from None
        if not isinstance(data, dict):
            raise Refused(400, "Invalid request body: expected a JSON object")
        return data


class _Item(msgspec.Struct):
    id: msgspec.Raw = msgspec.Raw()
    values: msgspec.Raw = msgspec.Raw()
    metadata: msgspec.Raw = msgspec.Raw()


class _Upsert(msgspec.Struct):
    vectors: list[_Item]
    namespace: msgspec.Raw = msgspec.Raw()


_decode_upsert = msgspec.json.Decoder(_Upsert).decode
_local = threading.local()


def _floats() -> FloatArrays:
    """This thread's simdjson parser (the server answers each connection in its own thread)."""
    floats = getattr(_local, "floats", None)
    if floats is None:
        floats = _local.floats = FloatArrays()
    return floats


@dataclass
class Answer:
    status: int = 200
    body: bytes = b"{}"
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


def ok(obj: Any, status: int = 200) -> Answer:
    return Answer(status, orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY))


def data_error(exc: Refused, retry_after: float | None = None) -> Answer:
    answer = ok({"code": exc.code, "message": exc.message, "details": []}, exc.status)
    if exc.status == 429 and retry_after is not None:
        answer.headers["retry-after"] = f"{retry_after:g}"
    return answer


def control_error(status: int, code: str, message: str) -> Answer:
    return ok({"error": {"code": code, "message": message}, "status": status}, status)


def unauthorized(control: bool) -> Answer:
    if control:
        return control_error(401, "UNAUTHENTICATED", "Invalid API Key")
    return Answer(401, b"Invalid API Key", content_type="text/plain")


def _flag(value: Any) -> bool:
    return value is True


class DataPlane:
    """The endpoints of one index's host."""

    def __init__(self, index: IndexData, limits: Limits, limiter: RateLimiter, stats: Stats) -> None:
        self.index = index
        self.limits = limits
        self.limiter = limiter
        self.stats = stats
        self.routes: dict[tuple[str, str], Callable[[Request], Answer]] = {
            ("POST", "/vectors/upsert"): self.upsert,
            ("POST", "/query"): self.query,
            ("GET", "/vectors/fetch"): self.fetch,
            ("GET", "/vectors/list"): self.list,
            ("POST", "/vectors/delete"): self.delete,
            ("POST", "/describe_index_stats"): self.describe_index_stats,
        }

    def _pace(self, op: str, namespace: str) -> None:
        if not self.limiter.allow(op, self.index.name, namespace):
            self.stats.add(throttled=op)
            rate = self.limits.rate(op)
            scope = (
                f"namespace '{namespace}' of index {self.index.name}"
                if op in ("upsert", "query", "delete")
                else (f"index {self.index.name}")
            )
            raise Refused(
                429,
                f"Request failed. You've reached the max {op} requests per second ({rate:g}) for {scope}. "
                "Pace your requests or contact Pinecone Support "
                "(https://app.pinecone.io/organizations/-/settings/support/ticket) to request a higher limit.",
                code=8,
            )

    def upsert(self, req: Request) -> Answer:
        limits = self.limits
        if len(req.body) > limits.max_request_bytes:
            mb = len(req.body) / (1024 * 1024)
            raise Refused(413, f"Request size {mb:.1f}MB exceeds the maximum supported size of 2MB")
        parsed = self._upsert_fast(req.body)
        if parsed is None:  # the reference: the whole body through orjson
            data = req.json()
            raw_ns, vectors = data.get("namespace"), data.get("vectors")
        else:
            raw_ns, vectors = parsed
        namespace = _namespace(raw_ns)
        self._pace("upsert", namespace)
        if not isinstance(vectors, list) or not vectors:
            raise Refused(400, "Invalid request: vectors must be a non-empty list")
        if len(vectors) > limits.max_upsert_records:
            raise Refused(
                400,
                f"Request contains {len(vectors)} vectors, which exceeds the maximum of "
                f"{limits.max_upsert_records} vectors per upsert request",
            )
        rows = []
        for item in vectors:
            if not isinstance(item, dict):
                raise Refused(400, "Invalid request: each vector must be a JSON object")
            rid = check_id(item.get("id"))
            vec = self.index.check_values(item.get("values"))
            meta = check_metadata(item.get("metadata"), limits.max_metadata_bytes)
            rows.append((rid, vec, meta))
        n = self.index.upsert(namespace, rows)
        self.stats.add(upserted=n)
        return ok({"upsertedCount": n})

    def _upsert_fast(self, body: bytes) -> tuple[Any, list[dict[str, Any]]] | None:
        """(namespace, vectors) of an upsert body as :meth:`Request.json` gives them, except that the values
        simdjson vouches for are float64 arrays (:mod:`vexrun.floatjson`), already known to be numbers only: a
        request of 270 records × 384 takes 4.1 ms instead of 5.1 (orjson, then each list checked and converted),
        and the fake shares the machine with what it serves. None for anything else (a body that is not an
        object with a list of objects under ``vectors``, a value orjson would read differently): the caller then
        reads the body with orjson, as before, which gives the verdict."""
        try:
            data = _decode_upsert(body)
            loads = orjson.loads
            vectors: list[dict[str, Any]] = []
            for item in data.vectors:
                out: dict[str, Any] = {}
                for name in ("id", "values", "metadata"):
                    text = bytes(getattr(item, name))
                    if not text:
                        continue
                    got = _floats().read(text) if name == "values" else None
                    if got is None:
                        out[name] = loads(text)
                    else:
                        out[name] = None if got[0] is None else np.frombuffer(got[0], dtype=np.float64)
                vectors.append(out)
            namespace = bytes(data.namespace)
            return (loads(namespace) if namespace else None), vectors
        except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONDecodeError):
            return None

    def fetch(self, req: Request) -> Answer:
        params = req.params()
        namespace = _namespace(params.get("namespace", [""])[-1])
        ids = params.get("ids", [])
        self._pace("fetch", namespace)
        if not ids:
            raise Refused(400, "Invalid request: ids must not be empty")
        if len(ids) > self.limits.max_fetch_ids:
            raise Refused(400, f"Cannot fetch more than {self.limits.max_fetch_ids} ids in one request, got {len(ids)}")
        for rid in ids:
            check_id(rid)
        found = self.index.fetch(namespace, ids)
        return ok(
            {
                "vectors": {rid: _vector(rid, vec, meta, True, True) for rid, vec, meta in found},
                "namespace": namespace,
                "usage": {"readUnits": 1},
            }
        )

    def list(self, req: Request) -> Answer:
        namespace = _namespace(req.param("namespace", ""))
        prefix = req.param("prefix", "") or ""
        raw_limit = req.param("limit")
        self._pace("list", namespace)
        try:
            limit = int(raw_limit) if raw_limit is not None else self.limits.max_list_limit
        except ValueError:
            raise Refused(400, f"Invalid limit: {raw_limit!r}") from None
        if not 1 <= limit <= self.limits.max_list_limit:
            raise Refused(400, f"limit must be between 1 and {self.limits.max_list_limit}, got {limit}")
        ids, token = self.index.list_ids(namespace, prefix, limit, req.param("paginationToken") or None)
        out: dict[str, Any] = {"vectors": [{"id": rid} for rid in ids], "namespace": namespace}
        if token is not None:
            out["pagination"] = {"next": token}
        out["usage"] = {"readUnits": 1}
        return ok(out)

    def query(self, req: Request) -> Answer:
        data = req.json()
        namespace = _namespace(data.get("namespace"))
        self._pace("query", namespace)
        top_k = data.get("topK")
        values, with_meta = _flag(data.get("includeValues")), _flag(data.get("includeMetadata"))
        cap = self.limits.max_top_k_with_data if values or with_meta else self.limits.max_top_k
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= cap:
            raise Refused(400, f"topK must be an integer between 1 and {cap}, got {top_k!r}")
        if ("vector" in data) == ("id" in data):
            raise Refused(400, "Exactly one of vector or id must be given")
        flt = data.get("filter")
        if flt is not None and not isinstance(flt, dict):
            raise Refused(400, "filter must be a JSON object")
        if "id" in data:
            found = self.index.fetch(namespace, [check_id(data["id"])])
            if not found:
                return ok({"results": [], "matches": [], "namespace": namespace, "usage": {"readUnits": 1}})
            vector = found[0][1]
        else:
            vector = self.index.check_values(data["vector"], "Query vector")
        hits = self.index.query(namespace, vector, top_k, flt)
        matches = [{**_vector(rid, vec, meta, values, with_meta), "score": score} for rid, score, vec, meta in hits]
        return ok({"results": [], "matches": matches, "namespace": namespace, "usage": {"readUnits": 5}})

    def delete(self, req: Request) -> Answer:
        data = req.json()
        namespace = _namespace(data.get("namespace"))
        self._pace("delete", namespace)
        ids, everything, flt = data.get("ids"), _flag(data.get("deleteAll")), data.get("filter")
        if sum([ids is not None, everything, flt is not None]) != 1:
            raise Refused(400, "Exactly one of ids, deleteAll or filter must be given")
        if ids is not None:
            if not isinstance(ids, list) or not ids:
                raise Refused(400, "ids must be a non-empty list")
            if len(ids) > self.limits.max_delete_ids:
                raise Refused(
                    400, f"Cannot delete more than {self.limits.max_delete_ids} ids in one request, got {len(ids)}"
                )
            for rid in ids:
                check_id(rid)
        if flt is not None and (not isinstance(flt, dict) or not flt):
            raise Refused(400, "filter must be a non-empty JSON object")
        self.index.delete(namespace, ids, flt)
        return ok({})

    def describe_index_stats(self, req: Request) -> Answer:
        data = req.json()
        self._pace("stats", "")
        flt = data.get("filter")
        if flt is not None and not isinstance(flt, dict):
            raise Refused(400, "filter must be a JSON object")
        counts = self.index.counts(flt)
        return ok(
            {
                "namespaces": {name: {"vectorCount": n} for name, n in sorted(counts.items())},
                "dimension": self.index.dimension,
                "indexFullness": 0.0,
                "totalVectorCount": sum(counts.values()),
                "metric": self.index.metric,
                "vectorType": "dense",
            }
        )


def _namespace(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise Refused(400, "namespace must be a string")
    return value


def _vector(rid: str, vec: np.ndarray, meta: dict[str, Any] | None, values: bool, with_meta: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"id": rid, "values": vec if values else []}
    if with_meta and meta is not None:
        out["metadata"] = meta
    return out


class ControlPlane:
    """``/indexes``: list, create, describe and delete dense serverless indexes. ``create`` and ``delete``
    are callbacks of the fake (they open and close the index's own host)."""

    def __init__(
        self,
        indexes: dict[str, IndexData],
        host_of: Callable[[str], str],
        create: Callable[[IndexData], None],
        delete: Callable[[str], None],
    ) -> None:
        self.indexes = indexes
        self.host_of = host_of
        self.create_cb = create
        self.delete_cb = delete

    def handle(self, req: Request) -> Answer:
        parts = [p for p in req.path.split("/") if p]
        if parts == ["indexes"] and req.method == "GET":
            version = req.headers.get("x-pinecone-api-version", "")
            return ok({"indexes": [self.model(ix, version) for ix in list(self.indexes.values())]})
        if parts == ["indexes"] and req.method == "POST":
            return self.create(req)
        if len(parts) == 2 and parts[0] == "indexes":
            index = self.indexes.get(parts[1])
            if index is None:
                return control_error(404, "NOT_FOUND", f"Resource {parts[1]} not found")
            if req.method == "GET":
                return ok(self.model(index, req.headers.get("x-pinecone-api-version", "")))
            if req.method == "DELETE":
                self.delete_cb(index.name)
                return Answer(202, b"")
        return control_error(404, "NOT_FOUND", f"Not found: {req.method} {req.path}")

    def create(self, req: Request) -> Answer:
        try:
            data = req.json()
        except Refused as exc:
            return control_error(400, "INVALID_ARGUMENT", exc.message)
        name = data.get("name")
        if not isinstance(name, str) or len(name) > 45 or not _NAME.match(name):
            return control_error(
                400,
                "INVALID_ARGUMENT",
                "Index name must contain only lowercase alphanumeric characters or hyphens, and must not begin "
                "or end with a hyphen.",
            )
        fields = ((data.get("schema") or {}).get("fields") or {}) if isinstance(data.get("schema"), dict) else {}
        dense = [f for f in fields.values() if isinstance(f, dict) and f.get("type") == "dense_vector"]
        dimension, metric = (dense[0].get("dimension"), dense[0].get("metric")) if dense else (None, None)
        if not dense:
            dimension, metric = data.get("dimension"), data.get("metric") or "cosine"
        if not isinstance(dimension, int) or not 1 <= dimension <= 20_000:
            return control_error(400, "INVALID_ARGUMENT", "Dimension must be an integer between 1 and 20000.")
        if metric not in METRICS:
            return control_error(400, "INVALID_ARGUMENT", f"Metric must be one of {', '.join(METRICS)}.")
        where = data.get("deployment") or ((data.get("spec") or {}).get("serverless") or {})
        if name in self.indexes:
            return control_error(409, "ALREADY_EXISTS", f"Resource {name} already exists")
        index = IndexData(
            name, dimension, metric, str(where.get("cloud") or "aws"), str(where.get("region") or "us-east-1")
        )
        self.create_cb(index)
        return ok(self.model(index, req.headers.get("x-pinecone-api-version", "")), 201)

    def model(self, index: IndexData, version: str) -> dict[str, Any]:
        status = {"ready": True, "state": "Ready"}
        if version >= NEW_SHAPE_FROM:
            dense = {"type": "dense_vector", "dimension": index.dimension, "metric": index.metric}
            return {
                "name": index.name,
                "host": self.host_of(index.name),
                "status": status,
                "schema": {"fields": {"_values": dense}},
                "deployment": {"deployment_type": "managed", "cloud": index.cloud, "region": index.region},
                "deletion_protection": "disabled",
                "tags": None,
            }
        return {
            "name": index.name,
            "dimension": index.dimension,
            "metric": index.metric,
            "host": self.host_of(index.name),
            "spec": {"serverless": {"cloud": index.cloud, "region": index.region}},
            "status": status,
            "deletion_protection": "disabled",
            "vector_type": "dense",
            "tags": None,
        }
