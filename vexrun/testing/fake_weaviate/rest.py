"""The REST side of the fake Weaviate: the endpoints weaviate-client v4 calls when it connects and manages
collections (``/v1/meta``, ``/v1/.well-known/*``, ``/v1/schema`` and ``/v1/schema/{class}``, its ``properties``
and ``tenants``, ``/v1/nodes``, deleting or checking one object by id).

Answers have the shapes of a real server: errors as ``{"error": [{"message": ...}]}`` (422 for invalid input),
401 as ``{"code": 401, "message": ...}`` when an API key is configured and the request has none or a wrong one
(only ``/v1/.well-known/*`` is open), 404 for an unknown class, and the schema with every default filled in.
"""

from __future__ import annotations

import re
import uuid as uuid_lib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote

import orjson

from .data import Store
from .schema import Refused, class_name, normalize_class, tenant_name_error

__all__ = ["Answer", "Rest"]


@dataclass
class Answer:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, data: Any) -> Answer:
    return Answer(status, orjson.dumps(data), {"content-type": "application/json"})


def _error(status: int, message: str) -> Answer:
    return _json(status, {"error": [{"message": message}]})


_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (m, re.compile(p + r"\Z"), name)
    for m, p, name in (
        ("GET", r"/v1/meta", "meta"),
        ("GET", r"/v1/nodes", "nodes"),
        ("GET", r"/v1/schema", "schema"),
        ("POST", r"/v1/schema", "create"),
        ("GET", r"/v1/schema/(?P<cls>[^/]+)", "get_class"),
        ("DELETE", r"/v1/schema/(?P<cls>[^/]+)", "delete_class"),
        ("POST", r"/v1/schema/(?P<cls>[^/]+)/properties", "add_property"),
        ("GET", r"/v1/schema/(?P<cls>[^/]+)/shards", "shards"),
        ("GET", r"/v1/schema/(?P<cls>[^/]+)/tenants", "tenants"),
        ("POST", r"/v1/schema/(?P<cls>[^/]+)/tenants", "add_tenants"),
        ("PUT", r"/v1/schema/(?P<cls>[^/]+)/tenants", "update_tenants"),
        ("DELETE", r"/v1/schema/(?P<cls>[^/]+)/tenants", "delete_tenants"),
        ("GET", r"/v1/schema/(?P<cls>[^/]+)/tenants/(?P<tenant>[^/]+)", "tenant"),
        ("HEAD", r"/v1/schema/(?P<cls>[^/]+)/tenants/(?P<tenant>[^/]+)", "tenant"),
        ("DELETE", r"/v1/objects/(?P<cls>[^/]+)/(?P<oid>[^/]+)", "delete_object"),
        ("HEAD", r"/v1/objects/(?P<cls>[^/]+)/(?P<oid>[^/]+)", "object_exists"),
    )
]


class Rest:
    def __init__(self, store: Store, check_key: Callable[[str | None], bool], version: str, grpc_max: int) -> None:
        self.store = store
        self.check_key = check_key
        self.version = version
        self.grpc_max = grpc_max
        self.host = ""

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Answer:
        path, _, query = target.partition("?")
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        if path.startswith("/v1/.well-known/"):
            if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
                return Answer(200)
            return Answer(404)
        auth = headers.get("authorization")
        token = auth[7:] if auth and auth.startswith("Bearer ") else None
        if not self.check_key(token):
            message = (
                "unauthorized: invalid api key"
                if token
                else "anonymous access not enabled. Please authenticate through one of the available methods: [api key]"
            )
            return _json(401, {"code": 401, "message": message})
        for m, pattern, name in _ROUTES:
            found = pattern.match(path)
            if found and m == method:
                args = {k: unquote(v) for k, v in found.groupdict().items()}
                try:
                    data = orjson.loads(body) if body else None
                except orjson.JSONDecodeError as exc:
                    return _error(400, f"parsing body failed: {exc}")
                try:
                    with self.store.lock:
                        answer: Answer = getattr(self, name)(data=data, params=params, **args)
                        return answer
                except Refused as exc:
                    return _error(exc.status, exc.message)
        if path.startswith("/v1/graphql"):
            return _json(200, {"errors": [{"message": "the fake Weaviate does not implement GraphQL"}]})
        return _error(
            404 if not path.startswith("/v1/") else 501, f"the fake Weaviate does not implement {method} {path}"
        )

    # -- server -----------------------------------------------------------------------------------------------
    def meta(self, **_: Any) -> Answer:
        return _json(
            200, {"hostname": self.host, "modules": {}, "version": self.version, "grpcMaxMessageSize": self.grpc_max}
        )

    def nodes(self, **_: Any) -> Answer:
        shards = sum(len(c.shards) for c in self.store.collections.values())
        objects = sum(len(s.objects) for c in self.store.collections.values() for s in c.shards.values())
        node = {
            "name": "node1",
            "status": "HEALTHY",
            "version": self.version,
            "gitHash": "fake",
            "stats": {"shardCount": shards, "objectCount": objects},
            "batchStats": {"queueLength": 0, "ratePerSecond": 0},
            "shards": None,
            "operationalMode": "ReadWrite",
        }
        return _json(200, {"nodes": [node]})

    # -- schema -----------------------------------------------------------------------------------------------
    def schema(self, **_: Any) -> Answer:
        return _json(200, {"classes": [c.cls for c in self.store.collections.values()]})

    def create(self, data: Any, **_: Any) -> Answer:
        from .data import Collection

        cls = normalize_class(data)
        if any(name.lower() == cls["class"].lower() for name in self.store.collections):
            raise Refused(f'class name "{cls["class"]}" already exists')
        self.store.collections[cls["class"]] = Collection(cls)
        return _json(200, cls)

    def get_class(self, cls: str, **_: Any) -> Answer:
        found = self.store.get(cls)
        return _json(200, found.cls) if found is not None else Answer(404)

    def delete_class(self, cls: str, **_: Any) -> Answer:
        found = self.store.get(cls)
        if found is not None:
            del self.store.collections[found.name]
        return Answer(200)

    def add_property(self, cls: str, data: Any, **_: Any) -> Answer:
        found = self.store.get(cls)
        if found is None:
            raise Refused(f"could not find class {class_name(cls)} in schema")
        return _json(200, found.add_property(data))

    def shards(self, cls: str, **_: Any) -> Answer:
        found = self.store.get(cls)
        if found is None:
            raise Refused(f"could not find class {cls} in schema", 404)
        return _json(
            200,
            [
                {"name": name or "shard0", "status": "READY", "vectorQueueSize": 0, "vectorIndexingStatus": "READY"}
                for name in found.shards
            ],
        )

    # -- tenants ----------------------------------------------------------------------------------------------
    def _mt(self, cls: str) -> Any:
        found = self.store.get(cls)
        if found is None:
            raise Refused(f"could not find class {cls} in schema", 404)
        if not found.multi_tenant:
            raise Refused(f'multi-tenancy is not enabled for class "{found.name}"')
        return found

    def tenants(self, cls: str, **_: Any) -> Answer:
        coll = self._mt(cls)
        return _json(200, [{"name": n, "activityStatus": s.status} for n, s in sorted(coll.shards.items())])

    def tenant(self, cls: str, tenant: str, **_: Any) -> Answer:
        coll = self._mt(cls)
        shard = coll.shards.get(tenant)
        if shard is None:
            return Answer(404)
        return _json(200, {"name": tenant, "activityStatus": shard.status})

    def add_tenants(self, cls: str, data: Any, **_: Any) -> Answer:
        from .data import Shard

        coll = self._mt(cls)
        if not isinstance(data, list):
            raise Refused("tenants must be an array of objects with a name")
        for item in data:
            name = item.get("name") if isinstance(item, dict) else None
            problem = tenant_name_error(name) if isinstance(name, str) else "tenant name is required"
            if problem:
                raise Refused(problem)
        for item in data:
            status = _status(item.get("activityStatus") or "ACTIVE")
            if item["name"] not in coll.shards:
                coll.shards[item["name"]] = Shard(status=status)
        return _json(200, data)

    def update_tenants(self, cls: str, data: Any, **_: Any) -> Answer:
        coll = self._mt(cls)
        for item in data or []:
            shard = coll.shards.get(item.get("name"))
            if shard is None:
                raise Refused(f'tenant not found: "{item.get("name")}"')
            shard.status = _status(item.get("activityStatus") or "ACTIVE")
        return _json(200, data)

    def delete_tenants(self, cls: str, data: Any, **_: Any) -> Answer:
        coll = self._mt(cls)
        for name in data or []:
            coll.shards.pop(name, None)
        return Answer(200)

    # -- objects ----------------------------------------------------------------------------------------------
    def _object(self, cls: str, oid: str, params: dict[str, str]) -> tuple[Any, Any, str]:
        coll = self.store.need(cls)
        shard = coll.shard(params.get("tenant", ""))
        try:
            key = str(uuid_lib.UUID(oid))
        except ValueError:
            raise Refused(f"id '{oid}' is not a valid uuid") from None
        return coll, shard, key

    def delete_object(self, cls: str, oid: str, params: dict[str, str], **_: Any) -> Answer:
        coll, shard, key = self._object(cls, oid, params)
        return Answer(204 if self.store.delete(coll, shard, [key]) else 404)

    def object_exists(self, cls: str, oid: str, params: dict[str, str], **_: Any) -> Answer:
        _, shard, key = self._object(cls, oid, params)
        return Answer(204 if key in shard.objects else 404)


def _status(value: str) -> str:
    status = str(value).upper()
    status = {"HOT": "ACTIVE", "COLD": "INACTIVE", "FROZEN": "OFFLOADED"}.get(status, status)
    if status not in ("ACTIVE", "INACTIVE", "OFFLOADED"):
        raise Refused(f"invalid activity status '{value}'")
    return status
