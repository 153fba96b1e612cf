"""Between vexrun batches and Arrow: the table layout vexrun writes, the encoding of a batch into one Arrow
table, and the decoding of Arrow batches (of vexrun's tables and of tables other tools wrote) into records.

A vexrun table::

    id string not null | vector fixed_size_list<float32>[dims] | text | namespace | metadata (JSON text)
    | created_at | model | source_store | modality | score double | vex_version | extra (JSON text)

(a record without a score has NaN there: the ``legacy`` file format keeps no nulls in a float column)

and the schema metadata ``vexrun`` = ``{"format": 1, "metric": ..., "model": ..., "dims": ...,
"embedder_spec": ...}``. ``metadata`` and ``extra`` are JSON text (null when the record has none, ``{}`` when
it is empty), so any metadata round-trips; the rare value orjson cannot write (an integer beyond 64 bits) is
written by the standard library with a leading space, which tells the reader to parse it back the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from ...errors import InvalidInput
from ...vmig.batch import Batch
from ...vmig.model import Record

if TYPE_CHECKING:
    import pyarrow as pa  # type: ignore[import-untyped]

__all__ = [
    "META_KEY",
    "Encoded",
    "Layout",
    "decode",
    "dumps",
    "encode",
    "loads",
    "row_digests",
    "table_meta",
    "vexrun_schema",
]

META_KEY = b"vexrun"
FORMAT = 1
_STRINGS = ("text", "namespace", "metadata", "created_at", "model", "source_store", "modality")
#: columns of a vexrun table, in order (the vector is the second)
COLUMNS = ("id", "vector", *_STRINGS, "score", "vex_version", "extra")
#: a record's missing score: Lance's ``legacy`` file format keeps no nulls in a float column (a null score came
#: back as 0.0), and a score NaN is no score (``.vmig.jsonl`` writes NaN as null)
_NO_SCORE = float("nan")
#: columns a query adds, never part of a record
_QUERY_COLUMNS = frozenset({"_rowid", "_rowaddr", "_distance", "_score", "_relevance_score"})


def dumps(value: Any) -> str:
    """JSON text of a metadata value (or extra fields)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # integers beyond 64 bits: the standard library writes them exactly
        return " " + json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def loads(text: str) -> Any:
    if text[:1] == " ":
        return json.loads(text)
    return orjson.loads(text)


def vexrun_schema(dims: int, meta: dict[str, Any]) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field("id", pa.utf8(), nullable=False),
        pa.field("vector", pa.list_(pa.float32(), dims)),
        *(pa.field(name, pa.utf8()) for name in _STRINGS),
        pa.field("score", pa.float64()),
        pa.field("vex_version", pa.utf8()),
        pa.field("extra", pa.utf8()),
    ]
    return pa.schema(fields, metadata={META_KEY: orjson.dumps({"format": FORMAT, **meta})})


def table_meta(schema: pa.Schema) -> dict[str, Any] | None:
    """What vexrun recorded in the schema metadata, or None for a table vexrun did not write."""
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        return None
    try:
        meta = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return meta if isinstance(meta, dict) else None


@dataclass
class Encoded:
    """A batch as one Arrow table, the rows of the batch it holds, and the records refused (id → reason)."""

    table: pa.Table | None
    rows: list[int]
    ids: list[str]
    rejected: dict[str, str]
    #: records dropped because a later record of the same batch has the same id (the last write wins)
    duplicates: int = 0


def _utf8_ok(value: str | None) -> bool:
    if value is None:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _unencodable(rec: Record) -> str | None:
    """Why a record cannot be written as UTF-8 (lone surrogates), or None."""
    for name in ("id", "text", "namespace", "created_at", "model", "source_store", "modality", "vex_version"):
        if not _utf8_ok(getattr(rec, name)):
            return f"{name} is not valid UTF-8 (a lone surrogate)"
    for name in ("metadata", "extra"):
        value = getattr(rec, name)
        if value is not None and not _utf8_ok(dumps(value)):
            return f"{name} is not valid UTF-8 (a lone surrogate)"
    return None


def encode(batch: Batch, schema: pa.Schema, dims: int, default_ns: str | None) -> Encoded:
    """The batch as an Arrow table of ``schema``. Records without a vector, with vectors of other dims, or with
    text Arrow cannot hold are refused; of an id given twice, the last record is kept."""
    import pyarrow as pa

    rejected: dict[str, str] = {}
    mat = None if batch.vectors is None else np.ascontiguousarray(batch.vectors, dtype=np.float32)
    if mat is not None and mat.shape[1] != dims:
        reason = f"vector has {mat.shape[1]} dims, the table holds {dims}-d vectors"
        return Encoded(None, [], [], {rec.id: reason for rec in batch.records})
    mask = batch.has_vector
    rows: list[int] = []
    last: dict[str, int] = {}
    for i, rec in enumerate(batch.records):
        if mat is None or (mask is not None and not mask[i]):
            rejected[rec.id] = "no vector (a LanceDB table of vexrun holds a vector for every record)"
            continue
        last[rec.id] = i
        rows.append(i)
    duplicates = len(rows) - len(last)
    if duplicates:
        rows = sorted(last.values())
    while rows:
        try:
            table = _arrow(batch, rows, mat, schema, default_ns)
        except (UnicodeEncodeError, pa.ArrowInvalid):
            bad = {i: why for i in rows if (why := _unencodable(batch.records[i])) is not None}
            if not bad:
                raise
            rejected.update({batch.records[i].id: why for i, why in bad.items()})
            rows = [i for i in rows if i not in bad]
            continue
        return Encoded(table, rows, [batch.records[i].id for i in rows], rejected, duplicates)
    return Encoded(None, [], [], rejected, duplicates)


def _json_column(values: list[Any]) -> Any:
    """A string column of JSON texts (orjson's bytes, which Arrow takes as UTF-8; :func:`dumps` for the rare
    value orjson refuses)."""
    import pyarrow as pa

    if all(v is None for v in values):
        return pa.nulls(len(values), pa.utf8())
    try:
        return pa.array([None if v is None else orjson.dumps(v) for v in values], pa.utf8())
    except TypeError:
        return pa.array([None if v is None else dumps(v) for v in values], pa.utf8())


def _arrow(batch: Batch, rows: list[int], mat: Any, schema: pa.Schema, default_ns: str | None) -> pa.Table:
    import pyarrow as pa

    recs = batch.records if len(rows) == len(batch.records) else [batch.records[i] for i in rows]
    part = mat if len(rows) == len(batch.records) else mat[rows]
    dims = part.shape[1]
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(part.reshape(-1), type=pa.float32()), dims)
    columns: list[Any] = [
        pa.array([r.id for r in recs], pa.utf8()),
        vectors,
        pa.array([r.text for r in recs], pa.utf8()),
        pa.array([r.namespace if r.namespace is not None else default_ns for r in recs], pa.utf8()),
        _json_column([r.metadata for r in recs]),
        pa.array([r.created_at for r in recs], pa.utf8()),
        pa.array([r.model for r in recs], pa.utf8()),
        pa.array([r.source_store for r in recs], pa.utf8()),
        pa.array([r.modality for r in recs], pa.utf8()),
        pa.array([_NO_SCORE if r.score is None else r.score for r in recs], pa.float64()),
        pa.array([r.vex_version for r in recs], pa.utf8()),
        _json_column([r.extra for r in recs]),
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def row_digests(table: pa.Table) -> np.ndarray:
    """An xxh3-64 digest of each row of a vexrun table over every column (the vector's float32 bytes, the others
    as msgpack), as ``uint64``: rows with equal digests are equal (but for a 2**-64 chance). A batch encoded for a
    table and the same rows read back from it have the same digests."""
    import msgspec
    import xxhash

    n = table.num_rows
    vec = table.column("vector").combine_chunks()
    dims = int(vec.type.list_size)
    digest = xxhash.xxh3_64_intdigest
    if vec.null_count:
        vsums = [0 if v is None else digest(np.asarray(v, dtype="<f4").tobytes()) for v in vec.to_pylist()]
    else:
        rows = np.asarray(vec.flatten(), dtype="<f4").reshape(n, dims)
        vsums = [digest(row.data) for row in rows]
    columns = [table.column(name).to_pylist() for name in table.column_names if name != "vector"]
    encode = msgspec.msgpack.Encoder().encode
    return np.fromiter(
        (digest(encode((v, *row))) for v, row in zip(vsums, zip(*columns, strict=True), strict=True)),
        dtype=np.uint64,
        count=n,
    )


# -- decoding ----------------------------------------------------------------------------------------------
class Layout:
    """Which column is what in a table being read: vexrun's own layout, or a foreign table's, whose other
    columns become the metadata."""

    def __init__(
        self,
        schema: pa.Schema,
        where: str,
        *,
        id_column: str = "id",
        vector_column: str | None = None,
        text_column: str = "text",
        namespace_column: str = "namespace",
    ) -> None:
        import pyarrow as pa

        names = schema.names
        self.meta = table_meta(schema)
        self.native = self.meta is not None and all(c in names for c in COLUMNS)
        if id_column not in names:
            raise InvalidInput(f"{where}: the table has no id column '{id_column}' (columns: {', '.join(names)})")
        self.id = id_column
        vectors = [
            f.name for f in schema if pa.types.is_fixed_size_list(f.type) and pa.types.is_floating(f.type.value_type)
        ]
        if vector_column is not None:
            if vector_column not in vectors:
                raise InvalidInput(f"{where}: no fixed-size float list column '{vector_column}' to read vectors from")
            self.vector: str | None = vector_column
        elif "vector" in vectors or len(vectors) == 1:
            self.vector = "vector" if "vector" in vectors else vectors[0]
        elif not vectors:
            self.vector = None
        else:
            raise InvalidInput(
                f"{where}: cannot tell which column holds the vectors ({', '.join(vectors)})",
                hint="set vector_column on the source",
            )
        self.dims = int(schema.field(self.vector).type.list_size) if self.vector else None
        self.text = text_column if text_column in names else None
        self.namespace = namespace_column if namespace_column in names else None
        owned = {self.id, self.vector, self.text, self.namespace} | (set(COLUMNS) if self.native else set())
        self.others = [n for n in names if n not in owned and n not in _QUERY_COLUMNS]


def _vectors(column: Any, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """A fixed-size list column as an (n, dims) float32 matrix (a copy) and its validity."""
    import pyarrow as pa

    n = len(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = column.values.slice(column.offset * dims, n * dims)
    mat = np.array(values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(n, dims)
    if column.null_count:
        valid = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
        mat[~valid] = 0.0
    else:
        valid = np.ones(n, dtype=bool)
    return mat, valid


def _json_safe(value: Any) -> Any:
    """A value of a foreign column as metadata (JSON types only)."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        if value and isinstance(value[0], tuple) and len(value[0]) == 2:  # a map column: [(key, value), ...]
            return {str(k): _json_safe(v) for k, v in value}
        return [_json_safe(v) for v in value]
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _parsed(texts: list[Any], what: str, ids: list[str]) -> list[Any]:
    """The JSON values of a column of JSON texts (None stays None)."""
    try:
        return [None if t is None else (orjson.loads(t) if t[:1] != " " else json.loads(t)) for t in texts]
    except (orjson.JSONDecodeError, json.JSONDecodeError, TypeError):
        for rid, text in zip(ids, texts, strict=True):
            try:
                if text is not None:
                    loads(text)
            except (orjson.JSONDecodeError, json.JSONDecodeError, TypeError):
                raise InvalidInput(f"record '{rid}': the {what} column holds text that is not JSON") from None
        raise


def decode(data: pa.Table | pa.RecordBatch, layout: Layout) -> Batch:
    """Records (and vectors) of Arrow rows read from a table of this layout."""
    n = data.num_rows
    col = data.column
    ids = [str(v) for v in col(layout.id).to_pylist()]
    texts = col(layout.text).to_pylist() if layout.text else [None] * n
    spaces = col(layout.namespace).to_pylist() if layout.namespace else [None] * n
    records: list[Record] = []
    if layout.native:
        metas = _parsed(col("metadata").to_pylist(), "metadata", ids)
        extras = col("extra")
        extras = [None] * n if extras.null_count == n else _parsed(extras.to_pylist(), "extra", ids)
        created, models, stores, modalities, scores, versions = (
            col(c).to_pylist() for c in ("created_at", "model", "source_store", "modality", "score", "vex_version")
        )
        dims = layout.dims
        records = [
            Record(
                id=ids[i],
                text=texts[i],
                model=models[i],
                dims=dims,
                namespace=spaces[i],
                metadata=metas[i] if type(metas[i]) is dict else None,
                created_at=created[i],
                source_store=stores[i],
                modality=modalities[i],
                score=None if scores[i] is None or scores[i] != scores[i] else scores[i],
                vex_version=versions[i],
                extra=extras[i] if type(extras[i]) is dict else None,
            )
            for i in range(n)
        ]
    else:
        others = {name: col(name).to_pylist() for name in layout.others if name in data.schema.names}
        for i in range(n):
            text, ns = texts[i], spaces[i]
            meta = {name: _json_safe(values[i]) for name, values in others.items()}
            if text is not None and not isinstance(text, str):
                meta[layout.text or "text"], text = _json_safe(text), None
            if ns is not None and not isinstance(ns, str):
                meta[layout.namespace or "namespace"], ns = _json_safe(ns), None
            records.append(Record(id=ids[i], text=text, dims=layout.dims, namespace=ns, metadata=meta or None))
    if layout.vector is None or layout.dims is None:
        return Batch(records=records)
    mat, valid = _vectors(col(layout.vector), layout.dims)
    if not valid.all():
        for row in np.flatnonzero(~valid).tolist():
            records[row].dims = None
    return Batch(records=records, vectors=mat, has_vector=valid)
