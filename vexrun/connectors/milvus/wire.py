"""Reading a vexrun collection straight off the wire: a ``QueryRequest`` sent on the client's own gRPC stub
(same channel, same credentials), and the reply's columns turned into a Batch without a Python dict per
row. pymilvus's row materialisation costs about twice the query itself; here the vectors are one
``frombuffer`` of the reply's packed floats (bit-exact) and the JSON fields one ``orjson.loads`` each.

It needs two attributes that pymilvus does not document (``MilvusClient._get_connection()._stub``):
:func:`wire_reader` returns None when they are missing, and the source then reads through
``MilvusClient.query``, as it does for collections vexrun did not write.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from ...errors import ConnectError
from ...vmig.batch import Batch
from ..protowire import length_delimited
from .codec import decode_row
from .common import COLUMNS, ID, METADATA, NAMESPACE, TEXT, VECTOR, VEXRUN, Store, milvus_error

__all__ = ["WireReader", "WireWriter", "wire_reader", "wire_writer"]

#: Milvus's status code for a query on an empty collection (pymilvus answers it with no rows)
_EMPTY_COLLECTION = 26
#: ConsistencyLevel.Eventually, with the "eventually" guarantee timestamp pymilvus sends for it
_EVENTUALLY = 3


class WireReader:
    def __init__(self, store: Store, db_name: str | None, partitions: list[str] | None) -> None:
        self.store = store
        self.stub = store.client._get_connection()._stub
        self.pb = importlib.import_module("pymilvus.grpc_gen.milvus_pb2")
        self.common = importlib.import_module("pymilvus.grpc_gen.common_pb2")
        self.db_name = db_name or ""
        self.metadata = [("dbname", db_name)] if db_name else None
        self.partitions = list(partitions or [])

    def page(self, expr: str, limit: int) -> tuple[list[str], Batch | None]:
        """(ids, batch) of one query; ``([], None)`` when nothing matches. Raises one-line errors."""
        store = self.store
        req = self.pb.QueryRequest(
            db_name=self.db_name,
            collection_name=store.collection,
            expr=expr,
            output_fields=list(COLUMNS),
            partition_names=self.partitions,
            guarantee_timestamp=1,
            consistency_level=_EVENTUALLY,
            use_default_consistency=False,
        )
        req.query_params.append(self.common.KeyValuePair(key="limit", value=str(limit)))
        if store.local is not None:  # Milvus Lite sorts by primary key for iterator queries only
            req.query_params.append(self.common.KeyValuePair(key="iterator", value="True"))
        try:
            resp = self.stub.Query(req, metadata=self.metadata)
        except Exception as exc:  # noqa: BLE001 - grpc.RpcError and friends: one line
            raise milvus_error(exc, store.where, "reading records") from None
        status = resp.status
        if status.code or status.error_code:
            if _EMPTY_COLLECTION in (status.code, status.error_code):
                return [], None
            raise ConnectError(f"milvus at {store.where}: reading records failed: {status.reason}")
        cols = {f.field_name: f for f in resp.fields_data}
        ids = [str(x) for x in cols[ID].scalars.string_data.data] if ID in cols else []
        if not ids:
            return [], None
        vectors = _floats(cols[VECTOR].vectors, len(ids))
        texts = cols[TEXT].scalars.string_data.data
        namespaces = cols[NAMESPACE].scalars.string_data.data
        metas = cols[METADATA].scalars.json_data.data
        extras = cols[VEXRUN].scalars.json_data.data
        dims = int(vectors.shape[1])
        records = []
        for i, rid in enumerate(ids):
            rec = decode_row({ID: rid, TEXT: texts[i], NAMESPACE: namespaces[i], METADATA: metas[i], VEXRUN: extras[i]})
            rec.dims = dims
            records.append(rec)
        return ids, Batch(records=records, vectors=vectors, has_vector=np.ones(len(ids), dtype=bool))


def _floats(vectors: Any, n: int) -> np.ndarray:
    """The ``n × dim`` float32 matrix of a FloatArray: its packed bytes as they came off the wire."""
    dims = int(vectors.dim)
    raw = vectors.float_vector.SerializeToString()
    # field 1, length-delimited (tag 0x0A), then a varint byte length, then little-endian float32s
    if raw[:1] == b"\x0a":
        pos, length, shift = 1, 0, 0
        while pos < len(raw):
            byte = raw[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        if length == n * dims * 4 and pos + length == len(raw):
            return np.frombuffer(raw, dtype="<f4", count=n * dims, offset=pos).astype(np.float32).reshape(n, dims)
    return np.asarray(vectors.float_vector.data, dtype=np.float32).reshape(n, dims)


def wire_reader(store: Store, db_name: str | None, partitions: list[str] | None) -> WireReader | None:
    """A reader on the client's stub, or None when this pymilvus does not expose it."""
    try:
        return WireReader(store, db_name, partitions)
    except (AttributeError, ImportError, TypeError):
        return None


class WireWriter:
    """Upserts on the client's own stub: the request's columns built at once from the rows (ids, texts,
    namespaces and JSON texts as lists, the vectors as one packed float32 buffer), the same request pymilvus
    builds (checked by the tests), without its per-row conversion (each vector turned into a list of Python
    floats, each value checked in Python: about 30 µs a 384-d row). Sent as pymilvus sends an upsert: its
    retries of transient gRPC failures and of Milvus's rate limit, its status check."""

    def __init__(self, store: Store, db_name: str | None) -> None:
        self.store = store
        self.handler = store.client._get_connection()
        self.stub = self.handler._stub
        self.pb = importlib.import_module("pymilvus.grpc_gen.milvus_pb2")
        schema = importlib.import_module("pymilvus.grpc_gen.schema_pb2")
        self.schema = schema
        field = schema.FloatArray.DESCRIPTOR.fields_by_name["data"]
        if field.number != 1 or field.type != field.TYPE_FLOAT:
            raise TypeError("FloatArray.data is not field 1 of floats")
        self.kinds = {name: schema.DataType.Value(name) for name in ("VarChar", "FloatVector", "JSON")}
        self.metadata = [("dbname", db_name)] if db_name else None
        retry = importlib.import_module("pymilvus.decorators").retry_on_rpc_failure
        self.check_status = importlib.import_module("pymilvus.client.utils").check_status
        self._send = retry()(self._send_once)

    def request(self, rows: list[dict[str, Any]]) -> Any:
        """The ``UpsertRequest`` of rows made by :func:`~.codec.encode_row` (every vector of the same length)."""
        sc = self.schema
        mat = np.ascontiguousarray(np.stack([row[VECTOR] for row in rows]), dtype="<f4")
        packed = mat.tobytes()
        floats = sc.FloatArray.FromString(length_delimited(b"\x0a", packed))
        varchar, json_kind = self.kinds["VarChar"], self.kinds["JSON"]

        def strings(name: str) -> Any:
            return sc.FieldData(
                type=varchar,
                field_name=name,
                scalars=sc.ScalarField(string_data=sc.StringArray(data=[r[name] for r in rows])),
            )

        def jsons(name: str) -> Any:
            data = [r[name].encode() for r in rows]
            return sc.FieldData(
                type=json_kind, field_name=name, scalars=sc.ScalarField(json_data=sc.JSONArray(data=data))
            )

        vectors = sc.FieldData(
            type=self.kinds["FloatVector"],
            field_name=VECTOR,
            vectors=sc.VectorField(dim=int(mat.shape[1]), float_vector=floats),
        )
        return self.pb.UpsertRequest(
            collection_name=self.store.collection,
            fields_data=[strings(ID), vectors, strings(TEXT), strings(NAMESPACE), jsons(METADATA), jsons(VEXRUN)],
            num_rows=len(rows),
        )

    def _send_once(self, handler: Any, request: Any) -> None:
        response = self.stub.Upsert(request, metadata=self.metadata)
        self.check_status(response.status)

    def upsert(self, rows: list[dict[str, Any]]) -> None:
        """Upsert the rows; a failure raises one line."""
        try:
            self._send(self.handler, self.request(rows))
        except Exception as exc:  # noqa: BLE001 - grpc.RpcError, MilvusException: one line
            raise milvus_error(exc, self.store.where, "upserting records") from None


def wire_writer(store: Store, db_name: str | None) -> WireWriter | None:
    """A writer on the client's stub, or None when this pymilvus does not expose what it uses."""
    try:
        return WireWriter(store, db_name)
    except (AttributeError, ImportError, TypeError, KeyError, ValueError):
        return None
