"""The gRPC side of the fake Weaviate, built on the client's own generated servicer (``weaviate.proto.v1``):
``Search`` (fetch with an ``after`` cursor or offset, filters, ``near_vector`` with distance/certainty),
``BatchObjects``, ``BatchDelete``, ``TenantsGet``, ``Aggregate`` (counts, grouped by a property) and Weaviate's
own ``grpc.health.v1.Health/Check``.

Errors come back as a real server sends them: a Go error becomes status UNKNOWN with the server's message
(a wrong API key too: ``extract auth: unauthorized: invalid api key``; Weaviate maps only its typed RBAC errors
to UNAUTHENTICATED / PERMISSION_DENIED), and per-object failures of a batch are ``BatchError`` entries.
What the fake does not implement (bm25, hybrid, near_text, group_by, sorting, references, nested objects) is
refused with UNIMPLEMENTED, never answered wrongly.
"""

from __future__ import annotations

import struct
import time
import uuid as uuid_lib
from collections import Counter
from collections.abc import Callable
from typing import Any, NoReturn

import grpc  # type: ignore[import-untyped]
import numpy as np
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    batch_delete_pb2,
    batch_pb2,
    health_weaviate_pb2,
    properties_pb2,
    search_get_pb2,
    tenants_pb2,
    weaviate_pb2_grpc,
)

from .data import Collection, Obj, Shard, Store, distances
from .filters import compile_filter
from .schema import ARRAY_TYPES, IntList, Refused

__all__ = ["Servicer", "add_health"]

_UNSUPPORTED = (
    "hybrid_search",
    "bm25_search",
    "near_object",
    "near_text",
    "near_image",
    "near_audio",
    "near_video",
    "near_depth",
    "near_thermal",
    "near_imu",
    "generative",
    "rerank",
    "boost",
    "group_by",
)


class Unimplemented(Exception):
    pass


class Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, store: Store, check_key: Callable[[str | None], bool], max_results: int) -> None:
        self.store = store
        self.check_key = check_key
        self.max_results = max_results

    # -- plumbing ---------------------------------------------------------------------------------------------
    def _auth(self, context: grpc.ServicerContext) -> None:
        md = {k.lower(): v for k, v in context.invocation_metadata()}
        value = md.get("authorization")
        token = value[7:] if isinstance(value, str) and value.startswith("Bearer ") else None
        if not self.check_key(token):
            context.abort(grpc.StatusCode.UNKNOWN, "extract auth: unauthorized: invalid api key")

    def _run(self, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
        self._auth(context)
        try:
            with self.store.lock:
                return fn()
        except Refused as exc:
            _abort(context, grpc.StatusCode.UNKNOWN, exc.message)
        except Unimplemented as exc:
            _abort(context, grpc.StatusCode.UNIMPLEMENTED, str(exc))

    # -- writes -----------------------------------------------------------------------------------------------
    def BatchObjects(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802 - gRPC's naming
        t0 = time.perf_counter()

        def run() -> Any:
            errors = []
            for i, obj in enumerate(request.objects):
                try:
                    props = _props(obj.properties) if obj.HasField("properties") else {}
                    self.store.put(obj.collection, obj.tenant, obj.uuid or str(uuid_lib.uuid4()), props, _vectors(obj))
                except Refused as exc:
                    errors.append(batch_pb2.BatchObjectsReply.BatchError(index=i, error=exc.message))
            return batch_pb2.BatchObjectsReply(took=time.perf_counter() - t0, errors=errors)

        return self._run(context, run)

    def BatchDelete(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        t0 = time.perf_counter()

        def run() -> Any:
            coll = self.store.need(request.collection)
            shard = coll.shard(request.tenant if request.HasField("tenant") else "")
            if not request.HasField("filters"):
                raise Refused("batch delete params: no filters in batch delete request")
            try:
                pred = compile_filter(request.filters, coll)
            except Refused as exc:
                raise Refused(f"batch delete params: {exc.message}") from None
            matched = [u for u in shard.ordered() if pred(shard.objects[u])][: self.max_results]
            if not request.dry_run:
                self.store.delete(coll, shard, matched)
            objects = [
                batch_delete_pb2.BatchDeleteObject(uuid=uuid_lib.UUID(u).bytes, successful=not request.dry_run)
                for u in matched
            ]
            done = 0 if request.dry_run else len(matched)
            return batch_delete_pb2.BatchDeleteReply(
                took=time.perf_counter() - t0,
                matches=len(matched),
                successful=done,
                failed=0,
                objects=objects if request.verbose else [],
            )

        return self._run(context, run)

    def BatchReferences(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._auth(context)
        _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the fake Weaviate does not implement references")

    def BatchStream(self, request_iterator: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        self._auth(context)
        _abort(context, grpc.StatusCode.UNIMPLEMENTED, "the fake Weaviate does not implement batch streaming")

    # -- reads ------------------------------------------------------------------------------------------------
    def TenantsGet(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        def run() -> Any:
            coll = self.store.get(request.collection)
            if coll is None:
                raise Refused(f"get tenants: could not find class {request.collection} in schema")
            if not coll.multi_tenant:
                raise Refused(f'get tenants: multi-tenancy is not enabled for class "{coll.name}"')
            names = list(request.names.values) if request.HasField("names") else sorted(coll.shards)
            return tenants_pb2.TenantsGetReply(
                tenants=[
                    tenants_pb2.Tenant(
                        name=n,
                        activity_status=_STATUS.get(
                            coll.shards[n].status, tenants_pb2.TENANT_ACTIVITY_STATUS_UNSPECIFIED
                        ),
                    )
                    for n in names
                    if n in coll.shards
                ]
            )

        return self._run(context, run)

    def Aggregate(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        t0 = time.perf_counter()

        def run() -> Any:
            coll = self.store.need(request.collection)
            if request.WhichOneof("search") is not None or len(request.aggregations):
                raise Unimplemented("the fake Weaviate aggregates object counts only (no search, no metrics)")
            shard = _shard(coll, request.tenant)
            pred = _filter(request, coll)
            objs = [o for o in shard.objects.values() if pred is None or pred(o)]
            if not request.HasField("group_by"):
                return aggregate_pb2.AggregateReply(
                    took=time.perf_counter() - t0,
                    single_result=aggregate_pb2.AggregateReply.Single(objects_count=len(objs)),
                )
            prop = request.group_by.property
            dtype = coll.prop_types().get(prop)
            if dtype not in ("text", "int", "boolean", "number", "uuid"):
                raise Unimplemented(f"the fake Weaviate groups by text, int, number or boolean properties, not {dtype}")
            counts = Counter(o.props[prop] for o in objs if o.props.get(prop) is not None)
            limit = request.limit if request.HasField("limit") else len(counts)
            groups = []
            for value, n in counts.most_common(limit):
                by = aggregate_pb2.AggregateReply.Group.GroupedBy(path=[prop])
                if dtype in ("text", "uuid"):
                    by.text = value
                elif dtype == "int":
                    by.int = int(value)
                elif dtype == "boolean":
                    by.boolean = value
                else:
                    by.number = value
                groups.append(aggregate_pb2.AggregateReply.Group(objects_count=n, grouped_by=by))
            return aggregate_pb2.AggregateReply(
                took=time.perf_counter() - t0, grouped_results=aggregate_pb2.AggregateReply.Grouped(groups=groups)
            )

        return self._run(context, run)

    def Search(self, request: Any, context: grpc.ServicerContext) -> Any:  # noqa: N802
        t0 = time.perf_counter()

        def run() -> Any:
            for name in _UNSUPPORTED:
                if request.HasField(name):
                    raise Unimplemented(f"the fake Weaviate does not implement {name}")
            if len(request.sort_by):
                raise Unimplemented("the fake Weaviate does not implement sorting")
            coll = self.store.get(request.collection)
            if coll is None:
                raise Refused(f"could not find class {request.collection} in schema")
            shard = _shard(coll, request.tenant)
            props = _requested(request, coll)
            limit = request.limit or 10
            if request.after:
                if request.HasField("filters") or request.offset:
                    which = ",".join(
                        n for n, on in (("offset", request.offset), ("where", request.HasField("filters"))) if on
                    )
                    raise Refused(
                        f"cursor api: invalid 'after' parameter: {which} cannot be set with after and limit parameters"
                    )
                try:
                    after = str(uuid_lib.UUID(request.after))
                except ValueError:
                    raise Refused(
                        f"cursor api: invalid 'after' parameter: after parameter '{request.after}' is not a "
                        f"valid uuid: invalid UUID length: {len(request.after)}"
                    ) from None
            elif request.offset + limit > self.max_results:
                raise Refused(
                    f"explorer: list class: search: invalid pagination params: query maximum results exceeded: the "
                    f"total limit calculated from the provided offset '{request.offset}' and limit '{limit}' exceeds "
                    f"the configured value for QUERY_MAXIMUM_RESULTS '{self.max_results}'. If you've supplied a "
                    "negative offset or limit, this may be an underflow error"
                )
            pred = _filter(request, coll)
            scored: list[tuple[Obj, float | None]]
            if request.HasField("near_vector"):
                near = _near(request.near_vector, coll, shard, pred)
                scored = [(o, d) for o, d in near[request.offset : request.offset + limit]]
            else:
                order = shard.ordered()
                if request.after:
                    start = _bisect(order, after)
                    chosen = [shard.objects[u] for u in order[start : start + limit]]
                else:
                    hits = (shard.objects[u] for u in order)
                    matching = [o for o in hits if pred is None or pred(o)]
                    chosen = matching[request.offset : request.offset + limit]
                scored = [(o, None) for o in chosen]
            metric = coll.vectors()
            cosine = any(m == "cosine" for m in metric.values())
            md = request.metadata if request.HasField("metadata") else search_get_pb2.MetadataRequest(uuid=True)
            results = [_result(o, d, coll, props, md, cosine) for o, d in scored]
            return search_get_pb2.SearchReply(took=time.perf_counter() - t0, results=results)

        return self._run(context, run)


_STATUS = {
    "ACTIVE": tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE,
    "HOT": tenants_pb2.TENANT_ACTIVITY_STATUS_ACTIVE,
    "INACTIVE": tenants_pb2.TENANT_ACTIVITY_STATUS_INACTIVE,
    "COLD": tenants_pb2.TENANT_ACTIVITY_STATUS_INACTIVE,
    "OFFLOADED": tenants_pb2.TENANT_ACTIVITY_STATUS_OFFLOADED,
}


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort raises


def _shard(coll: Collection, tenant: str) -> Shard:
    try:
        return coll.shard(tenant)
    except Refused as exc:
        raise Refused(
            f"explorer: list class: search: object search at index {coll.name.lower()}: {exc.message}"
        ) from None


def _filter(request: Any, coll: Collection) -> Callable[[Obj], bool] | None:
    return compile_filter(request.filters, coll) if request.HasField("filters") else None


def _bisect(order: list[str], after: str) -> int:
    import bisect

    return bisect.bisect_right(order, after)


def _requested(request: Any, coll: Collection) -> list[str]:
    types = coll.prop_types()
    if not request.HasField("properties") or request.properties.return_all_nonref_properties:
        return [p for p, t in types.items() if t != "blob"]
    if len(request.properties.ref_properties) or len(request.properties.object_properties):
        raise Unimplemented("the fake Weaviate does not implement references or nested object properties")
    for name in request.properties.non_ref_properties:
        if name not in types:
            raise Refused(
                f"no such prop with name '{name}' found in class '{coll.name}' in the schema. Check your schema "
                "files for which properties in this class are available"
            )
    return list(request.properties.non_ref_properties)


def _query_vector(nv: Any) -> np.ndarray:
    if len(nv.vectors):
        if len(nv.vectors) != 1:
            raise Refused(f"near_vector: only 1 vector supported, found {len(nv.vectors)} vectors")
        if nv.vectors[0].type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32:
            raise Unimplemented("the fake Weaviate does not implement multi-vectors")
        return np.frombuffer(nv.vectors[0].vector_bytes, dtype="<f4")
    if nv.vector_bytes:
        return np.frombuffer(nv.vector_bytes, dtype="<f4")
    if len(nv.vector):
        return np.asarray(nv.vector, dtype=np.float32)
    if len(nv.vector_for_targets):
        raise Unimplemented("the fake Weaviate does not implement vectors per target")
    raise Refused("near_vector: a vector is required")


def _near(nv: Any, coll: Collection, shard: Shard, pred: Callable[[Obj], bool] | None) -> list[tuple[Obj, float]]:
    names = coll.vectors()
    targets = list(nv.targets.target_vectors) if nv.HasField("targets") else list(nv.target_vectors)
    if len(targets) > 1:
        raise Unimplemented("the fake Weaviate does not implement searches over several target vectors")
    if not targets:
        if len(names) != 1:
            raise Refused(f"class {coll.name} has multiple vectors, but no target vectors were provided")
        target = next(iter(names))
    else:
        target = "" if targets[0] == "default" and "" in names else targets[0]
        if target not in names:
            raise Refused(
                f"class {coll.name} does not have named vector {targets[0]} configured. Available named "
                f"vectors {sorted(names)}"
            )
    metric = names[target]
    if nv.HasField("certainty") and metric != "cosine":
        raise Refused("can't compute and return certainty when vector index is not configured with cosine distance")
    query = _query_vector(nv)
    dims = shard.dims.get(target)
    if dims is None:
        return []
    if len(query) != dims:
        raise Refused(
            f"explorer: get class: vector search: object vector search at index {coll.name.lower()}: "
            f"knn search: vector lengths don't match: {len(query)} vs {dims}"
        )
    ids, mat = shard.matrix(target)
    dist = distances(metric, mat, query)
    order = np.argsort(dist, kind="stable")
    out = []
    for i in order:
        d = float(dist[i])
        if nv.HasField("distance") and d > nv.distance:
            break
        if nv.HasField("certainty") and 1 - d / 2 < nv.certainty:
            break
        obj = shard.objects[ids[i]]
        if pred is None or pred(obj):
            out.append((obj, d))
    return out


def _result(obj: Obj, dist: float | None, coll: Collection, props: list[str], md: Any, cosine: bool) -> Any:
    meta = search_get_pb2.MetadataResult(id=obj.uuid, id_as_bytes=uuid_lib.UUID(obj.uuid).bytes)
    if md.vector or len(md.vectors):
        wanted = set(md.vectors) if len(md.vectors) else None
        for name, vec in obj.vectors.items():
            if name == "":
                meta.vector_bytes = vec.astype("<f4").tobytes()
            elif wanted is None or name in wanted:
                meta.vectors.append(
                    base_pb2.Vectors(
                        name=name,
                        vector_bytes=vec.astype("<f4").tobytes(),
                        type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32,
                    )
                )
    if md.creation_time_unix:
        meta.creation_time_unix, meta.creation_time_unix_present = obj.created, True
    if md.last_update_time_unix:
        meta.last_update_time_unix, meta.last_update_time_unix_present = obj.updated, True
    if dist is not None and md.distance:
        meta.distance, meta.distance_present = dist, True
    if dist is not None and md.certainty and cosine:
        meta.certainty, meta.certainty_present = 1 - dist / 2, True
    types = coll.prop_types()
    fields = {name: _value(types[name], obj.props.get(name)) for name in props}
    return search_get_pb2.SearchResult(
        metadata=meta,
        properties=search_get_pb2.PropertiesResult(
            non_ref_props=properties_pb2.Properties(fields=fields), target_collection=coll.name
        ),
    )


def _value(dtype: str, value: Any) -> Any:
    pv = properties_pb2
    if value is None:
        return pv.Value(null_value=0)
    inner = ARRAY_TYPES.get(dtype)
    if inner is not None:
        if inner == "text":
            lv = pv.ListValue(text_values=pv.TextValues(values=value))
        elif inner == "int":
            lv = pv.ListValue(int_values=pv.IntValues(values=struct.pack(f"<{len(value)}q", *map(int, value))))
        elif inner == "number":
            lv = pv.ListValue(number_values=pv.NumberValues(values=struct.pack(f"<{len(value)}d", *value)))
        elif inner == "boolean":
            lv = pv.ListValue(bool_values=pv.BoolValues(values=value))
        elif inner == "date":
            lv = pv.ListValue(date_values=pv.DateValues(values=value))
        else:
            lv = pv.ListValue(uuid_values=pv.UuidValues(values=value))
        return pv.Value(list_value=lv)
    if dtype == "text":
        return pv.Value(text_value=value)
    if dtype == "int":
        return pv.Value(int_value=int(value))
    if dtype == "number":
        return pv.Value(number_value=value)
    if dtype == "boolean":
        return pv.Value(bool_value=value)
    if dtype == "date":
        return pv.Value(date_value=value)
    if dtype == "uuid":
        return pv.Value(uuid_value=value)
    return pv.Value(blob_value=value)


def _struct_value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "null_value":
        return None
    if kind == "list_value":
        return [_struct_value(v) for v in value.list_value.values]
    if kind == "struct_value":
        raise Unimplemented("the fake Weaviate does not implement geo, phone or nested object values")
    return getattr(value, kind)


def _props(p: Any) -> dict[str, Any]:
    if len(p.object_properties) or len(p.object_array_properties):
        raise Refused("the fake Weaviate does not implement nested object properties")
    if len(p.single_target_ref_props) or len(p.multi_target_ref_props):
        raise Refused("the fake Weaviate does not implement references")
    out: dict[str, Any] = {k: _struct_value(v) for k, v in p.non_ref_properties.fields.items()}
    for a in p.text_array_properties:
        out[a.prop_name] = list(a.values)
    for a in p.int_array_properties:
        out[a.prop_name] = IntList(a.values)
    for a in p.number_array_properties:
        raw = a.values_bytes
        out[a.prop_name] = list(struct.unpack(f"<{len(raw) // 8}d", raw)) if raw else list(a.values)
    for a in p.boolean_array_properties:
        out[a.prop_name] = list(a.values)
    for name in p.empty_list_props:
        out[name] = []
    return out


def _vectors(obj: Any) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    if obj.vector_bytes:
        out[""] = np.frombuffer(obj.vector_bytes, dtype="<f4").astype(np.float32)
    elif len(obj.vector):
        out[""] = np.asarray(obj.vector, dtype=np.float32)
    for v in obj.vectors:
        if v.type == base_pb2.Vectors.VECTOR_TYPE_MULTI_FP32:
            raise Refused("the fake Weaviate does not implement multi-vectors")
        out[v.name or ""] = np.frombuffer(v.vector_bytes, dtype="<f4").astype(np.float32)
    return out


def add_health(server: grpc.Server) -> None:
    """Weaviate's health service: its own request/response messages on the standard ``grpc.health.v1`` path."""
    resp = health_weaviate_pb2.WeaviateHealthCheckResponse

    def check(request: Any, context: grpc.ServicerContext) -> Any:
        return resp(status=resp.SERVING)

    handler = grpc.unary_unary_rpc_method_handler(
        check,
        request_deserializer=health_weaviate_pb2.WeaviateHealthCheckRequest.FromString,
        response_serializer=resp.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("grpc.health.v1.Health", {"Check": handler}),)
    )
