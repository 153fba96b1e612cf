"""What the fake Weaviate holds: collections, their tenants (one shard each; a collection without multi-tenancy
has one shard named ``""``) and objects, and the rules a write follows.

As on a real server: a batch write is an upsert that replaces the whole object; numbers (``int`` included) are
kept as float64; each shard fixes the dimension of each of its vectors at its first vector (HNSW's rule, per
tenant), and refuses other dimensions; a multi-tenant collection refuses a request without a tenant or with one
it does not have; auto-schema (on by default, as on a server) adds properties for keys it has not seen.
"""

from __future__ import annotations

import threading
import time
import uuid as uuid_lib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .schema import ARRAY_TYPES, IntList, Refused, class_name, coerce, infer_type, normalize_property, vector_names

__all__ = ["Collection", "Obj", "Shard", "Store", "now_ms"]


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(slots=True)
class Obj:
    uuid: str
    props: dict[str, Any]
    #: vector name -> float32 vector; ``""`` is the class level (legacy) vector
    vectors: dict[str, np.ndarray]
    created: int
    updated: int


@dataclass
class Shard:
    """One tenant's objects (or a whole collection without multi-tenancy)."""

    objects: dict[str, Obj] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    status: str = "ACTIVE"
    _order: list[str] | None = None
    _matrices: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)

    def changed(self) -> None:
        self._order = None
        self._matrices.clear()

    def ordered(self) -> list[str]:
        """Object ids in the order the cursor API walks them (by UUID)."""
        if self._order is None:
            self._order = sorted(self.objects)
        return self._order

    def matrix(self, name: str) -> tuple[list[str], np.ndarray]:
        """The ids holding vector ``name`` and their vectors as one matrix (cached until the next write)."""
        found = self._matrices.get(name)
        if found is None:
            ids = [u for u in self.ordered() if name in self.objects[u].vectors]
            dims = self.dims.get(name, 0)
            mat = np.stack([self.objects[u].vectors[name] for u in ids]) if ids else np.zeros((0, dims), np.float32)
            found = self._matrices[name] = (ids, mat)
        return found


class Collection:
    def __init__(self, cls: dict[str, Any]) -> None:
        self.cls = cls
        self.shards: dict[str, Shard] = {} if self.multi_tenant else {"": Shard()}

    @property
    def name(self) -> str:
        return str(self.cls["class"])

    @property
    def multi_tenant(self) -> bool:
        return bool(self.cls["multiTenancyConfig"]["enabled"])

    def prop_types(self) -> dict[str, str]:
        return {p["name"]: p["dataType"][0] for p in self.cls["properties"]}

    def vectors(self) -> dict[str, str]:
        return vector_names(self.cls)

    def shard(self, tenant: str, *, writing: bool = False) -> Shard:
        """The shard a request with ``tenant`` addresses, or Refused as a real server refuses it."""
        if not self.multi_tenant:
            if tenant:
                raise Refused(f"class {self.name} has multi-tenancy disabled, but request was with tenant")
            return self.shards[""]
        if not tenant:
            raise Refused(f"class {self.name} has multi-tenancy enabled, but request was without tenant")
        found = self.shards.get(tenant)
        if found is None:
            if writing and self.cls["multiTenancyConfig"]["autoTenantCreation"]:
                found = self.shards[tenant] = Shard()
                return found
            raise Refused(f'tenant not found: "{tenant}"', 404)
        if found.status not in ("ACTIVE", "HOT"):
            raise Refused(f'tenant not active: "{tenant}" is {found.status}')
        return found

    def add_property(self, prop: dict[str, Any]) -> dict[str, Any]:
        normalized = normalize_property(prop, self.cls["properties"], self.name)
        self.cls["properties"].append(normalized)
        return normalized


class Store:
    """Every collection of the fake, behind one lock (requests are served by several threads)."""

    def __init__(self, *, autoschema: bool = True) -> None:
        self.collections: dict[str, Collection] = {}
        self.autoschema = autoschema
        self.lock = threading.RLock()

    def get(self, name: str) -> Collection | None:
        try:
            return self.collections.get(class_name(name))
        except Refused:
            return None

    def need(self, name: str) -> Collection:
        found = self.get(name)
        if found is None:
            raise Refused(f"could not find class {name} in schema", 404)
        return found

    # -- writes ------------------------------------------------------------------------------------------------
    def put(self, cls_name: str, tenant: str, oid: str, props: dict[str, Any], vectors: dict[str, np.ndarray]) -> None:
        """Upsert one object (the whole object is replaced, as a batch write does)."""
        coll = self.get(cls_name)
        if coll is None:
            if not self.autoschema:
                raise Refused(f"class '{cls_name}' not present in schema")
            from .schema import normalize_class

            cls = normalize_class({"class": cls_name})
            coll = self.collections[cls["class"]] = Collection(cls)
        shard = coll.shard(tenant, writing=True)
        try:
            key = str(uuid_lib.UUID(oid))
        except ValueError:
            raise Refused(f"invalid UUID length: {len(oid)}") from None
        stored = self._props(coll, props)
        vecs = self._vectors(coll, shard, vectors)
        old = shard.objects.get(key)
        t = now_ms()
        shard.objects[key] = Obj(key, stored, vecs, old.created if old else t, t)
        shard.changed()

    def _props(self, coll: Collection, props: dict[str, Any]) -> dict[str, Any]:
        types = coll.prop_types()
        out: dict[str, Any] = {}
        for name, value in props.items():
            dtype = types.get(name)
            if dtype is None:
                if value is None:
                    continue
                if not self.autoschema:
                    raise Refused(
                        f"no such prop with name '{name}' found in class '{coll.name}' in the schema. Check your "
                        "schema files for which properties in this class are available"
                    )
                inferred = infer_type(value)
                if inferred is None:
                    continue  # an empty list: auto-schema cannot type it, the key is dropped
                dtype = coll.add_property({"name": name, "dataType": [inferred]})["dataType"][0]
                types[name] = dtype
            if isinstance(value, list) and not value and dtype in ARRAY_TYPES:
                out[name] = []
                continue
            out[name] = coerce(dtype, list(value) if isinstance(value, IntList) else value, name, coll.name)
        return out

    def _vectors(self, coll: Collection, shard: Shard, vectors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = coll.vectors()
        out: dict[str, np.ndarray] = {}
        # as usecases/objects/validation/vector_validation.go: "default" reaches a class-level vector, an unnamed
        # vector the only named one
        given = {("" if n == "default" and "" in names else n): v for n, v in vectors.items() if len(v)}
        if "" in given and "" not in names:
            if len(names) != 1:
                raise Refused(f"collection {coll.name} configuration does not have single vector index")
            given[next(iter(names))] = given.pop("")
        named = [n for n in given if n]
        if "" in names and named:
            raise Refused(
                f"collection {coll.name} is configured without multiple named vectors, but received named "
                f"vectors: [{' '.join(named)}]"
            )
        for name, vec in given.items():
            if name not in names:
                raise Refused(f"collection {coll.name} does not have configuration for vector {name}")
            dims = shard.dims.get(name)
            if dims is not None and dims != len(vec):
                raise Refused(
                    f"insert to vector index: new node has a vector with length {len(vec)}. Existing nodes have "
                    f"vectors with length {dims}: vector dimensions do not match the index dimensions"
                )
            out[name] = vec
        for name, vec in out.items():
            shard.dims.setdefault(name, len(vec))
        return out

    def delete(self, coll: Collection, shard: Shard, ids: Iterable[str]) -> int:
        n = 0
        for oid in ids:
            if shard.objects.pop(oid, None) is not None:
                n += 1
        if n:
            shard.changed()
        return n


def distances(metric: str, mat: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Weaviate's distance of each row of ``mat`` to ``query`` (smaller is nearer)."""
    m = mat.astype(np.float32, copy=False)
    q = query.astype(np.float32, copy=False)
    out: np.ndarray
    if metric == "cosine":
        norms = np.linalg.norm(m, axis=1) * (float(np.linalg.norm(q)) or 1.0)
        norms[norms == 0] = 1.0
        out = 1.0 - (m @ q) / norms
    elif metric == "dot":
        out = -(m @ q)
    elif metric == "l2-squared":
        diff = m - q
        out = np.einsum("ij,ij->i", diff, diff)
    elif metric == "manhattan":
        out = np.abs(m - q).sum(axis=1)
    elif metric == "hamming":
        out = (m != q).sum(axis=1).astype(np.float32)
    else:
        raise Refused(f"unsupported distance {metric}")
    return out
