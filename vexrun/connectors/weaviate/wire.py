"""The gRPC ``BatchObjects`` request built from the client's own generated protobufs, without the client's
``insert_many``; and the ``Search`` reply of the client's iterator read without the client's object parsing.

``insert_many`` turns each object into its protobuf in Python with typing-based checks of every property and of
every vector element: 54 µs an object of 384-d. :func:`batch_object` builds the same message (byte-identical,
checked by the tests) from the client's generated protobufs in 9 µs; :func:`object_bytes` writes its bytes
directly in 5 µs, and the request, those bytes joined, goes on the client's own channel with what the client's
``grpc_batch_objects`` adds (its headers, timeout, retries and errors) without being parsed and serialized again
(3 µs an object more). A client whose protobufs or connection differ from what is checked here
(:func:`writable`) is written through ``insert_many``.

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

import functools
import struct
from typing import Any

import numpy as np

from ..protowire import length_delimited as _ld
from ..protowire import varint as _varint

__all__ = [
    "WIRE_FIELDS",
    "Item",
    "batch_object",
    "fetch",
    "items",
    "object_bytes",
    "page",
    "readable",
    "request_of",
    "send",
    "writable",
]


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
        and _wire_fields_match()
        and _raw_sendable(conn)
    )


def _raw_sendable(conn: Any) -> bool:
    """Whether :func:`send` can send a request's bytes as ``grpc_batch_objects`` sends its message: the channel
    its stub calls on, the same method, its headers, its retry helper."""
    try:
        from weaviate.retry import _Retry  # noqa: F401
    except ImportError:
        return False
    method = getattr(getattr(getattr(conn, "grpc_stub", None), "BatchObjects", None), "_method", None)
    return (
        callable(getattr(getattr(conn, "_grpc_channel", None), "unary_unary", None))
        and callable(getattr(conn, "grpc_headers", None))
        and method in (None, BATCH_METHOD, BATCH_METHOD.encode())
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


# -- the same objects' bytes, encoded here -------------------------------------------------------------------
#: (message, field, number, type) of every field :func:`object_bytes` writes, as the client's protobufs declare
#: them (``type``: the descriptor's FieldDescriptor type); :func:`writable` checks they still are
WIRE_FIELDS = (
    ("BatchObjectsRequest", "objects", 1, 11),
    ("BatchObject", "uuid", 1, 9),
    ("BatchObject", "properties", 3, 11),
    ("BatchObject", "collection", 4, 9),
    ("BatchObject", "tenant", 5, 9),
    ("BatchObject", "vector_bytes", 6, 12),
    ("BatchObject", "vectors", 23, 11),
    ("BatchObject.Properties", "non_ref_properties", 1, 11),
    ("BatchObject.Properties", "number_array_properties", 4, 11),
    ("BatchObject.Properties", "int_array_properties", 5, 11),
    ("BatchObject.Properties", "text_array_properties", 6, 11),
    ("BatchObject.Properties", "boolean_array_properties", 7, 11),
    ("BatchObject.Properties", "empty_list_props", 10, 9),
    ("Vectors", "name", 1, 9),
    ("Vectors", "vector_bytes", 3, 12),
    ("Vectors", "type", 4, 14),
    ("TextArrayProperties", "values", 1, 9),
    ("TextArrayProperties", "prop_name", 2, 9),
    ("IntArrayProperties", "values", 1, 3),
    ("IntArrayProperties", "prop_name", 2, 9),
    ("NumberArrayProperties", "prop_name", 2, 9),
    ("NumberArrayProperties", "values_bytes", 3, 12),
    ("BooleanArrayProperties", "values", 1, 8),
    ("BooleanArrayProperties", "prop_name", 2, 9),
)


def _wire_fields_match() -> bool:
    from weaviate.proto.v1 import base_pb2, batch_pb2

    where: dict[str, Any] = {
        "BatchObjectsRequest": batch_pb2.BatchObjectsRequest,
        "BatchObject": batch_pb2.BatchObject,
        "BatchObject.Properties": batch_pb2.BatchObject.Properties,
        "Vectors": base_pb2.Vectors,
        "TextArrayProperties": base_pb2.TextArrayProperties,
        "IntArrayProperties": base_pb2.IntArrayProperties,
        "NumberArrayProperties": base_pb2.NumberArrayProperties,
        "BooleanArrayProperties": base_pb2.BooleanArrayProperties,
    }
    for message, name, number, kind in WIRE_FIELDS:
        field = where[message].DESCRIPTOR.fields_by_name.get(name)
        if field is None or field.number != number or field.type != kind:
            return False
    return base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32 == 1


_DOUBLE = struct.Struct("<d").pack
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _scalar(value: Any) -> bytes:
    """A ``google.protobuf.Value`` as ``Struct.update`` sets it: text, bool, or a number as a double."""
    kind = type(value)
    if kind is str:
        return _ld(b"\x1a", value.encode())
    if kind is bool:
        return b"\x20\x01" if value else b"\x20\x00"
    if kind is int or kind is float:
        return b"\x11" + _DOUBLE(float(value))
    raise TypeError(f"a {kind.__name__} property")


def _int_list(values: list[int]) -> bytes:
    low, high = _INT64
    out = []
    for v in values:
        if type(v) is not int or not low <= v <= high:
            raise ValueError("an int list property beyond int64")
        out.append(_varint(v & 0xFFFFFFFFFFFFFFFF))
    return b"".join(out)


@functools.lru_cache(maxsize=4096)
def _entry_key(key: str) -> bytes:
    """The start of a Struct map entry's payload: its key field."""
    return _ld(b"\x0a", key.encode())


@functools.lru_cache(maxsize=4096)
def _prop_name(key: str) -> bytes:
    """A typed array's ``prop_name`` field (field 2 of each)."""
    return _ld(b"\x12", key.encode())


def _properties_bytes(props: dict[str, Any]) -> bytes:
    fields: list[bytes] = []
    arrays: list[bytes] = []
    empty: list[bytes] = []
    for key, value in props.items():
        if type(value) is list:
            if not value:
                empty.append(_ld(b"\x52", key.encode()))
                continue
            first = type(value[0])
            if first is bool:
                arrays.append(_ld(b"\x3a", _ld(b"\x0a", bytes(1 if v else 0 for v in value)) + _prop_name(key)))
            elif first is str:
                body = b"".join([_ld(b"\x0a", v.encode()) for v in value])
                arrays.append(_ld(b"\x32", body + _prop_name(key)))
            elif first is int:
                arrays.append(_ld(b"\x2a", _ld(b"\x0a", _int_list(value)) + _prop_name(key)))
            elif first is float:
                packed = struct.pack(f"<{len(value)}d", *value)
                arrays.append(_ld(b"\x22", _prop_name(key) + _ld(b"\x1a", packed)))
            else:
                raise TypeError(f"property {key!r}: a list of {first.__name__} is not written")
        elif isinstance(value, dict):
            raise TypeError(f"property {key!r}: an object property is not written")
        else:
            fields.append(_ld(b"\x0a", _entry_key(key) + b"\x12" + _ld_len(_scalar(value))))
    return _ld(b"\x0a", b"".join(fields)) + b"".join(arrays) + b"".join(empty)


def _ld_len(payload: bytes) -> bytes:
    return _varint(len(payload)) + payload


def object_bytes(
    collection: str, uuid: str, tenant: str | None, props: dict[str, Any], vector: np.ndarray | None, name: str | None
) -> bytes:
    """:func:`batch_object`'s message serialized as an element of ``BatchObjectsRequest.objects`` (its tag and
    length first), encoded here: the same message (checked by the tests), in 5 µs for an object with a 384-d vector
    and 7 properties, against 9 µs to build it from the client's protobufs and 2 µs more to put it in a request.
    Values the codec does not write (other types, ints beyond int64, text that is not UTF-8) get
    :func:`batch_object`'s message, and its error."""
    try:
        parts = [_ld(b"\x0a", uuid.encode()), _ld(b"\x1a", _properties_bytes(props)), _collection(collection)]
        if tenant:
            parts.append(_ld(b"\x2a", tenant.encode()))
        if vector is not None:
            data = vector.astype("<f4", copy=False).tobytes()
            if name is None:
                parts.append(_ld(b"\x32", data))
            else:
                parts.append(_ld(b"\xba\x01", _ld(b"\x0a", name.encode()) + _ld(b"\x1a", data) + b"\x20\x01"))
        body = b"".join(parts)
    except (TypeError, ValueError, OverflowError, AttributeError):
        body = bytes(batch_object(collection, uuid, tenant, props, vector, name).SerializeToString())
    return _ld(b"\x0a", body)


@functools.lru_cache(maxsize=64)
def _collection(name: str) -> bytes:
    return _ld(b"\x22", name.encode())


def request_of(objects: list[bytes]) -> Any:
    """The ``BatchObjectsRequest`` message of :func:`object_bytes`' objects (for tests, and a client without the
    call :func:`send` makes)."""
    from weaviate.proto.v1 import batch_pb2

    return batch_pb2.BatchObjectsRequest.FromString(b"".join(objects))


#: the gRPC method the client's ``grpc_batch_objects`` calls (its stub's, checked by :func:`writable`)
BATCH_METHOD = "/weaviate.v1.Weaviate/BatchObjects"
_RAW_CALLS: dict[int, tuple[Any, Any]] = {}


def _raw_call(conn: Any) -> Any:
    """The ``BatchObjects`` call on the connection's own channel, sending a request's bytes as they are (the
    client's stub would parse them into a message only to serialize it again: 3 µs an object)."""
    from weaviate.proto.v1 import batch_pb2

    channel = conn._grpc_channel  # noqa: SLF001 - the channel the client's stub calls on
    known = _RAW_CALLS.get(id(conn))
    if known is None or known[0] is not channel:
        call = channel.unary_unary(BATCH_METHOD, response_deserializer=batch_pb2.BatchObjectsReply.FromString)
        known = _RAW_CALLS[id(conn)] = (channel, call)
    return known[1]


def send(client: Any, objects: list[Any]) -> dict[int, str]:
    """Send one ``BatchObjects`` request on ``client``'s connection; the server's error for each refused object,
    by its position. Objects as messages go through the client's ``grpc_batch_objects`` (as ``insert_many``
    sends them); objects as :func:`object_bytes` go as they are on the same channel, with what
    ``grpc_batch_objects`` adds: its headers, its timeout, its retries of an unavailable server (``_Retry``) and
    its errors."""
    from weaviate.proto.v1 import batch_pb2

    conn = client._connection  # noqa: SLF001 - the connection insert_many itself sends on
    timeout = conn.timeout_config.insert
    if not objects or not isinstance(objects[0], bytes):
        request = batch_pb2.BatchObjectsRequest(objects=objects)
        errors: dict[int, str] = conn.grpc_batch_objects(request, timeout=timeout, max_retries=2)
        return errors
    from grpc import RpcError, StatusCode  # type: ignore[import-untyped]
    from weaviate.exceptions import InsufficientPermissionsError, WeaviateBatchError
    from weaviate.retry import _Retry

    try:
        reply = _Retry(2).with_exponential_backoff(
            count=0,
            error="Batch objects",
            f=_raw_call(conn),
            request=b"".join(objects),
            metadata=conn.grpc_headers(),
            timeout=timeout,
        )
    except RpcError as exc:
        if exc.code() == StatusCode.PERMISSION_DENIED:
            raise InsufficientPermissionsError(exc) from None
        raise WeaviateBatchError(str(exc.details())) from None
    return {err.index: err.error for err in reply.errors}


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
