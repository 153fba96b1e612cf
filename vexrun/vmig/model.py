"""The VMIG record: the one shape every part of vexrun speaks.

``VmigRecord`` is the wire model of one ``.vmig.jsonl`` line, exactly as Vex's SPEC describes it. It is a
``msgspec`` struct so that the hot path decodes and type-checks a line in C, and
``schemas/vmig-record.schema.json`` is generated from it. ``Record`` is the in-memory record the
pipeline passes around: the same fields without the vector (vectors travel as one float32 matrix per
:class:`~vexrun.vmig.batch.Batch`), plus the unknown top-level fields of the line, kept for the round trip.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec

__all__ = [
    "FIELDS",
    "SEMVER_PATTERN",
    "VEX_VERSION",
    "MetadataValue",
    "Record",
    "Scalar",
    "VmigRecord",
    "VmigRecordRawVector",
    "is_semver",
    "record_schema",
]

#: The format version vexrun writes (Vex's ``VEX_VERSION``).
VEX_VERSION = "1.0.0"

#: Top-level fields in the order Vex writes them.
FIELDS: tuple[str, ...] = (
    "id",
    "text",
    "vector",
    "model",
    "dims",
    "namespace",
    "metadata",
    "created_at",
    "source_store",
    "modality",
    "score",
    "vex_version",
)

#: semver.org's recommended pattern.
SEMVER_PATTERN = (
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?"
    r"(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$"
)
_SEMVER = re.compile(SEMVER_PATTERN)

Scalar = str | int | float | bool | None
#: A metadata value: a scalar, or a flat list of scalars (extracted facts carry ``tags`` and ``potential``).
MetadataValue = Scalar | list[Scalar]


def _desc(description: str, **extra: Any) -> msgspec.Meta:
    return msgspec.Meta(description=description, extra_json_schema=extra or None)


OptStr = str | None


class VmigRecord(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One line of a ``.vmig.jsonl`` file (Vex SPEC). At least one of ``text`` / ``vector`` is non-null;
    when ``vector`` is present ``dims`` equals its length. Unknown top-level fields are allowed by the
    format (kept on a round trip, reported by ``validate`` as a warning); this model forbids them so the
    fast path notices them and hands the line to the tolerant path."""

    id: Annotated[str, msgspec.Meta(min_length=1), _desc("Record id: a non-empty string, unique within a file.")]
    text: Annotated[OptStr, _desc("The memory text.")] = None
    vector: Annotated[
        Annotated[list[float], msgspec.Meta(min_length=1)] | None,
        _desc("The embedding: finite numbers; float32 values round-trip bit-exactly."),
    ] = None
    model: Annotated[OptStr, _desc("Name of the embedding model that produced the vector.")] = None
    dims: Annotated[
        Annotated[int, msgspec.Meta(ge=1)] | None,
        _desc("Number of vector dimensions; equals len(vector) when vector is present."),
    ] = None
    namespace: Annotated[OptStr, _desc("Namespace / partition / collection the record belongs to.")] = None
    metadata: Annotated[
        dict[str, MetadataValue] | None,
        _desc("Scalars (string, number, boolean, null) and flat lists of scalars; no nested objects."),
    ] = None
    created_at: Annotated[OptStr, _desc("ISO-8601 timestamp.", format="date-time")] = None
    source_store: Annotated[OptStr, _desc("The store or export the record came from.")] = None
    modality: Annotated[OptStr, _desc("Content modality, 'text' by default.")] = None
    score: Annotated[float | None, _desc("A relevance or importance score.")] = None
    vex_version: Annotated[OptStr, _desc("Format version (SemVer).", pattern=SEMVER_PATTERN)] = None


#: :class:`VmigRecord` with the vector left as its JSON text (``msgspec.Raw``; None when the line has no
#: ``vector`` key). The reader's fast path decodes a line into it and has simdjson read the vector's numbers
#: straight into a float64 buffer, with no Python float made per value. Every other field is typed and checked
#: exactly as in :class:`VmigRecord`.
VmigRecordRawVector: type[msgspec.Struct] = msgspec.defstruct(
    "VmigRecordRawVector",
    [
        (f.name, msgspec.Raw, None) if f.name == "vector" else (f.name, f.type, f.default)
        for f in msgspec.structs.fields(VmigRecord)
    ],
    forbid_unknown_fields=True,
    kw_only=True,
)


class Record(msgspec.Struct, kw_only=True):
    """A record in flight. Its vector, if any, is a row of the batch's float32 matrix."""

    id: str
    text: str | None = None
    model: str | None = None
    dims: int | None = None
    namespace: str | None = None
    metadata: dict[str, MetadataValue] | None = None
    created_at: str | None = None
    source_store: str | None = None
    modality: str | None = None
    score: float | None = None
    vex_version: str | None = None
    #: Unknown top-level fields of the source line, written back unchanged.
    extra: dict[str, Any] | None = None


def is_semver(value: str) -> bool:
    """True if ``value`` is a SemVer 2.0 version string."""
    return _SEMVER.match(value) is not None


def record_schema() -> dict[str, Any]:
    """The JSON Schema of one ``.vmig.jsonl`` line, generated from :class:`VmigRecord`."""
    schema = msgspec.json.schema(VmigRecord)
    body: dict[str, Any] = schema["$defs"]["VmigRecord"]
    body = dict(body)
    # The format keeps unknown top-level fields (the model forbids them only to route them to the
    # tolerant path), and a record needs text or a vector.
    body.pop("title", None)
    body["additionalProperties"] = True
    body["anyOf"] = [
        {"required": ["text"], "properties": {"text": {"type": "string"}}},
        {"required": ["vector"], "properties": {"vector": {"type": "array"}}},
    ]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://vexrun.dev/schemas/vmig-record.schema.json",
        **body,
        "title": "VMIG record (one line of a .vmig.jsonl file)",
        "description": (
            "One JSON object per line. At least one of text / vector is non-null; when vector is present, "
            "dims equals its length. Unknown top-level fields are kept on a round trip."
        ),
    }
