"""The gRPC ``BatchObjects`` request built from the client's own generated protobufs, without the client's
``insert_many``; and the ``Search`` reply of the client's iterator read without the client's object parsing.

``insert_many`` turns each object into its protobuf in Python with typing-based checks of every property and of
every vector element: 54 µs an object of 384-d, against 8 µs for the same message built here (byte-identical,
checked by the tests). The request is sent on the client's own connection (``grpc_batch_objects``: its stub,
headers, retries and error mapping), as ``insert_many`` sends it.

Reading: the client turns each result into an object in Python (a 384-d vector into a list of floats: 8 µs, and
12 µs with its conversion back to float32). Here a page's vectors stay float32 bytes, stacked into the batch's
matrix at once, and the properties of the kinds vexrun writes (text, int, number, boolean and their lists) are
read directly; a page with any other kind is read again through the client, so every object comes back as the
client would give it.

The property values written are those :class:`~.codec.Codec` writes: text, int, number and boolean scalars (in the
request's ``non_ref_properties`` Struct, as the client puts them) and non-empty lists of one of those types (the
typed array fields); an empty list goes to ``empty_list_props``.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

__all__ = ["Item", "batch_object", "fetch", "items", "page", "readable", "send", "writable"]


def writable(client: Any) -> bool:
    """Whether ``client`` has what :func:`send` uses (the connection ``insert_many`` sends on, and the protobuf
    fields set here). A client whose internals changed is written through ``insert_many``, as before."""
    try:
        from weaviate.proto.v1 import base_pb2, batch_pb2
    except ImportError:
        return False
    conn = getattr(client, "_connection", None)
    fields = batch_pb2.BatchObject.DESCRIPTOR.fields_by_name
    return (
        callable(getattr(conn, "grpc_batch_objects", None))
        and hasattr(getattr(conn, "timeout_config", None), "insert")
        and {"collection", "uuid", "properties", "tenant", "vector_bytes", "vectors"} <= set(fields)
        and hasattr(base_pb2.Vectors, "VECTOR_TYPE_SINGLE_FP32")
    )


def readable(coll: Any) -> bool:
    """Whether ``coll`` has what :func:`fetch` uses (the query builder and connection of the client's iterator).
    A client whose internals changed is read through ``fetch_objects``, as before."""
    query = getattr(coll, "query", None)
    needed = ("_parse_return_metadata", "_parse_return_properties", "_parse_return_references")
    return (
        callable(getattr(getattr(query, "_query", None), "get", None))
        and callable(getattr(getattr(query, "_connection", None), "grpc_search", None))
        and all(callable(getattr(query, name, None)) for name in needed)
    )


def _properties(props: dict[str, Any]) -> Any:
    from google.protobuf.struct_pb2 import Struct  # type: ignore[import-untyped]
    from weaviate.proto.v1 import base_pb2, batch_pb2

    scalars: dict[str, Any] = {}
    texts: list[Any] = []
    ints: list[Any] = []
    numbers: list[Any] = []
    bools: list[Any] = []
    empty: list[str] = []
    for key, value in props.items():
        if type(value) is list:
            if not value:
                empty.append(key)
            elif type(value[0]) is bool:
                bools.append(base_pb2.BooleanArrayProperties(prop_name=key, values=value))
            elif type(value[0]) is str:
                texts.append(base_pb2.TextArrayProperties(prop_name=key, values=value))
            elif type(value[0]) is int:
                ints.append(base_pb2.IntArrayProperties(prop_name=key, values=value))
            elif type(value[0]) is float:
                packed = struct.pack(f"<{len(value)}d", *value)
                numbers.append(base_pb2.NumberArrayProperties(prop_name=key, values_bytes=packed))
            else:
                raise TypeError(f"property {key!r}: a list of {type(value[0]).__name__} is not written")
        elif isinstance(value, dict):
            raise TypeError(f"property {key!r}: an object property is not written")
        else:
            scalars[key] = value
    fields = Struct()
    fields.update(scalars)
    return batch_pb2.BatchObject.Properties(
        non_ref_properties=fields,
        text_array_properties=texts,
        number_array_properties=numbers,
        int_array_properties=ints,
        boolean_array_properties=bools,
        empty_list_props=empty,
    )


def batch_object(
    collection: str, uuid: str, tenant: str | None, props: dict[str, Any], vector: np.ndarray | None, name: str | None
) -> Any:
    """One ``BatchObject``: ``vector`` (float32) unnamed when ``name`` is None, else as the named vector ``name``."""
    from weaviate.proto.v1 import base_pb2, batch_pb2

    kw: dict[str, Any] = {}
    if vector is not None:
        data = vector.astype("<f4", copy=False).tobytes()
        if name is None:
            kw["vector_bytes"] = data
        else:
            kw["vectors"] = [
                base_pb2.Vectors(name=name, vector_bytes=data, type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32)
            ]
    return batch_pb2.BatchObject(
        collection=collection, uuid=uuid, properties=_properties(props), tenant=tenant or None, **kw
    )


def send(client: Any, objects: list[Any]) -> dict[int, str]:
    """Send one ``BatchObjects`` request on ``client``'s connection; the server's error for each refused object,
    by its position."""
    from weaviate.proto.v1 import batch_pb2

    conn = client._connection  # noqa: SLF001 - the connection insert_many itself sends on
    request = batch_pb2.BatchObjectsRequest(objects=objects)
    errors: dict[int, str] = conn.grpc_batch_objects(request, timeout=conn.timeout_config.insert, max_retries=2)
    return errors


# -- reading -----------------------------------------------------------------------------------------------
#: the property value kinds read here as the client reads them; a page holding any other (dates, UUIDs, geo
#: coordinates, phone numbers, blobs, nested objects) is read again through the client (:func:`page`)
_SCALARS = frozenset({"text_value", "int_value", "number_value", "bool_value", "null_value"})
_LISTS = frozenset({"text_values", "int_values", "number_values", "bool_values"})

#: one object: its UUID, its properties, its vector's float32 bytes (None: none, or a multi-vector)
Item = tuple[str, dict[str, Any], bytes | None]


def fetch(coll: Any, limit: int, after: str | None) -> Any:
    """One page of the collection (its tenant) after ``after``, with every property and the vectors: the request
    ``coll.iterator(include_vector=True)`` sends, built by the client's own query builder, and the raw reply."""
    import uuid as uuid_lib

    query = coll.query
    request = query._query.get(  # noqa: SLF001 - the request the client's iterator sends
        limit=limit,
        after=None if after is None else uuid_lib.UUID(after),
        return_metadata=query._parse_return_metadata(None, True),  # noqa: SLF001
        return_properties=query._parse_return_properties(None),  # noqa: SLF001
        return_references=query._parse_return_references(None),  # noqa: SLF001
    )
    return query._connection.grpc_search(request)  # noqa: SLF001


def _value(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "list_value":
        lst = value.list_value
        which = lst.WhichOneof("kind")
        if which not in _LISTS:
            raise LookupError(which)
        got = getattr(lst, which).values
        if which == "int_values":
            return np.frombuffer(got, dtype="<i8").tolist()
        if which == "number_values":
            return np.frombuffer(got, dtype="<f8").tolist()
        return list(got)
    if kind not in _SCALARS:
        raise LookupError(kind)
    if kind == "null_value":
        return None
    return getattr(value, kind)


def page(reply: Any, vector_name: str) -> list[Item] | None:
    """The objects of a reply as the client's iterator gives them (properties, the vector ``vector_name``), or
    None when a property holds a kind of value not read here."""
    import uuid as uuid_lib

    out: list[Item] = []
    single = _single_types()
    for result in reply.results:
        meta = result.metadata
        try:
            props = {name: _value(v) for name, v in result.properties.non_ref_props.fields.items()}
        except LookupError:
            return None
        vec: bytes | None = None
        if meta.vector_bytes:
            vec = meta.vector_bytes if vector_name == "default" else None
        else:
            for named in meta.vectors:
                if named.name == vector_name:
                    vec = named.vector_bytes if named.type in single else None
        out.append((str(uuid_lib.UUID(bytes=meta.id_as_bytes)), props, vec or None))
    return out


def _single_types() -> frozenset[int]:
    from weaviate.proto.v1 import base_pb2

    kinds = base_pb2.Vectors.VectorType
    return frozenset(v for k, v in kinds.items() if k != "VECTOR_TYPE_MULTI_FP32")


def items(objects: list[Any], vector_name: str) -> list[Item]:
    """Objects as the client returns them, as :func:`page`'s items."""
    out: list[Item] = []
    for obj in objects:
        vec = obj.vector.get(vector_name) if obj.vector else None
        data = None if not vec or isinstance(vec[0], list) else np.asarray(vec, dtype="<f4").tobytes()
        out.append((str(obj.uuid), obj.properties, data))
    return out
