"""Collections of the fake Weaviate: validating a class the way ``POST /v1/schema`` does, filling in every default
a real server adds (the client refuses a schema reply without them), and the rules of property names, data
types, tenant names and values.

The defaults and messages are those of Weaviate 1.35 (``entities/schema/validation.go``,
``entities/vectorindex/hnsw/config.go``, ``usecases/objects/validation``).
"""

from __future__ import annotations

import copy
import re
import uuid as uuid_lib
from datetime import datetime
from typing import Any

__all__ = [
    "ARRAY_TYPES",
    "IntList",
    "Refused",
    "class_name",
    "coerce",
    "infer_type",
    "normalize_class",
    "normalize_property",
    "tenant_name_error",
    "vector_names",
]

_CLASS = re.compile(r"[A-Z][_0-9A-Za-z]{0,254}\Z")
_PROP = re.compile(r"[_A-Za-z][_0-9A-Za-z]{0,230}\Z")
_TENANT = re.compile(r"[A-Za-z0-9\-_]{1,64}\Z")
_RESERVED = ("_additional", "_id", "id")
_RESERVED_SUFFIXES = ("_searchable", "_rangeable", "_temp", "__meta_count", "_propertyLength", "_nullState")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z")

SCALAR_TYPES = ("text", "int", "number", "boolean", "date", "uuid", "blob")
ARRAY_TYPES = {
    "text[]": "text",
    "int[]": "int",
    "number[]": "number",
    "boolean[]": "boolean",
    "date[]": "date",
    "uuid[]": "uuid",
}
#: types a value can be given for (object / object[] / geo / phone are not implemented by the fake)
DATA_TYPES = (*SCALAR_TYPES, *ARRAY_TYPES)
DISTANCES = ("cosine", "dot", "l2-squared", "manhattan", "hamming")
TOKENIZATIONS = ("word", "lowercase", "whitespace", "field", "trigram", "gse", "kagome_kr", "kagome_ja")


class Refused(Exception):
    """A request the server refuses: ``status`` (REST) and the message a real server gives."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def class_name(name: str) -> str:
    """A collection name as the server keeps it (first letter upper-cased), or Refused."""
    name = name[:1].upper() + name[1:]
    if len(name) > 255:
        raise Refused(f"'{name}' is not a valid class name. Name should not be longer than 255 characters")
    if not _CLASS.match(name):
        raise Refused(f"'{name}' is not a valid class name")
    return name


def tenant_name_error(name: str) -> str | None:
    if _TENANT.match(name):
        return None
    return (
        f"tenant name '{name}' is not valid: tenant names must be 1-64 characters of A-Z, a-z, 0-9, '-' and '_'"
        if name
        else "tenant name is empty"
    )


def _hnsw(distance: str, given: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "skip": False,
        "cleanupIntervalSeconds": 300,
        "maxConnections": 32,
        "efConstruction": 128,
        "ef": -1,
        "dynamicEfMin": 100,
        "dynamicEfMax": 500,
        "dynamicEfFactor": 8,
        "vectorCacheMaxObjects": 1_000_000_000_000,
        "flatSearchCutoff": 40000,
        "distance": distance,
        "pq": {
            "enabled": False,
            "bitCompression": False,
            "segments": 0,
            "centroids": 256,
            "trainingLimit": 100000,
            "encoder": {"type": "kmeans", "distribution": "log-normal"},
        },
        "bq": {"enabled": False},
        "sq": {"enabled": False, "trainingLimit": 100000, "rescoreLimit": 20},
        "rq": {"enabled": False, "bits": 8, "rescoreLimit": 20},
        "filterStrategy": "acorn",
        "multivector": {
            "enabled": False,
            "aggregation": "maxSim",
            "muvera": {"enabled": False, "ksim": 4, "dprojections": 16, "repetitions": 10},
        },
        "skipDefaultQuantization": False,
        "trackDefaultQuantization": False,
    }
    return _merge(cfg, given)


def _flat(distance: str, given: dict[str, Any]) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "distance": distance,
        "vectorCacheMaxObjects": 1_000_000_000_000,
        "pq": {"enabled": False, "rescoreLimit": -1, "cache": False},
        "bq": {"enabled": False, "rescoreLimit": -1, "cache": False},
        "sq": {"enabled": False, "rescoreLimit": -1, "cache": False},
        "rq": {"enabled": False, "rescoreLimit": -1, "cache": False, "bits": 8},
        "skipDefaultQuantization": False,
        "trackDefaultQuantization": False,
    }
    return _merge(cfg, given)


def _merge(base: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _index(index_type: str | None, given: Any, where: str) -> tuple[str, dict[str, Any]]:
    index_type = index_type or "hnsw"
    given = given if isinstance(given, dict) else {}
    distance = str(given.get("distance") or "cosine")
    if distance not in DISTANCES:
        raise Refused(f"{where}: invalid vector index config: distance metric '{distance}' is not supported")
    if index_type == "hnsw":
        return index_type, _hnsw(distance, given)
    if index_type == "flat":
        return index_type, _flat(distance, given)
    if index_type == "dynamic":
        return index_type, {
            "distance": distance,
            "threshold": int(given.get("threshold", 10000)),
            "hnsw": _hnsw(distance, given.get("hnsw") or {}),
            "flat": _flat(distance, given.get("flat") or {}),
        }
    raise Refused(f"{where}: unsupported vector index type '{index_type}'")


def _vectorizer_none(vectorizer: Any, where: str) -> dict[str, Any]:
    if vectorizer in (None, "none", {"none": {}}, {"none": None}):
        return {"none": {}}
    raise Refused(f"{where}: the fake Weaviate has no vectorizer modules (only 'none', self-provided vectors)")


def normalize_property(prop: Any, existing: list[dict[str, Any]], cls: str) -> dict[str, Any]:
    """A property as the server stores it (defaults filled), or Refused."""
    if not isinstance(prop, dict) or not prop.get("name"):
        raise Refused("property must contain name")
    name = str(prop["name"])
    name = name[:1].lower() + name[1:]
    if len(name) > 231 or not _PROP.match(name):
        raise Refused(
            f"'{name}' is not a valid property name. Property names in Weaviate are restricted to valid GraphQL "
            f"names, which must be “/[_A-Za-z][_0-9A-Za-z]{{0,230}}/”"
        )
    if name in _RESERVED:
        raise Refused(f"'{name}' is a reserved property name")
    if name.endswith(_RESERVED_SUFFIXES):
        raise Refused(f"property name '{name}' ends with a reserved suffix")
    if any(p["name"].lower() == name.lower() for p in existing):
        raise Refused(f'class "{cls}": conflict for property "{name}": already in use or provided multiple times')
    types = prop.get("dataType")
    if not isinstance(types, list) or len(types) != 1 or not isinstance(types[0], str):
        raise Refused("property must contain dataType")
    dtype = types[0]
    if dtype == "string":
        dtype = "text"
    if dtype == "string[]":
        dtype = "text[]"
    if dtype not in DATA_TYPES:
        raise Refused(f"property '{name}': invalid dataType: [{dtype}]: the fake Weaviate does not implement it")
    textual = dtype in ("text", "text[]")
    out: dict[str, Any] = {
        "name": name,
        "dataType": [dtype],
        "indexFilterable": bool(prop.get("indexFilterable", True)),
        "indexSearchable": bool(prop.get("indexSearchable", textual)) and textual,
        "indexRangeFilters": bool(prop.get("indexRangeFilters", False)),
    }
    if textual:
        tok = prop.get("tokenization") or "word"
        if tok not in TOKENIZATIONS:
            raise Refused(f"property '{name}': tokenization '{tok}' is not supported")
        out["tokenization"] = tok
    elif prop.get("tokenization"):
        raise Refused(f"Tokenization is not allowed for data type '{dtype}'")
    if prop.get("description"):
        out["description"] = prop["description"]
    return out


def normalize_class(body: Any) -> dict[str, Any]:
    """A class as ``GET /v1/schema/{class}`` returns it after ``POST /v1/schema`` with ``body``."""
    if not isinstance(body, dict) or not isinstance(body.get("class"), str) or not body["class"]:
        raise Refused("class name is required")
    name = class_name(body["class"])
    mt = body.get("multiTenancyConfig") or {}
    out: dict[str, Any] = {
        "class": name,
        "invertedIndexConfig": _merge(
            {
                "bm25": {"b": 0.75, "k1": 1.2},
                "cleanupIntervalSeconds": 60,
                "stopwords": {"preset": "en", "additions": None, "removals": None},
                "usingBlockMaxWAND": True,
            },
            body.get("invertedIndexConfig") or {},
        ),
        "multiTenancyConfig": {
            "enabled": bool(mt.get("enabled", False)),
            "autoTenantCreation": bool(mt.get("autoTenantCreation", False)),
            "autoTenantActivation": bool(mt.get("autoTenantActivation", False)),
        },
        "replicationConfig": _merge(
            {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
            body.get("replicationConfig") or {},
        ),
        "shardingConfig": {
            "virtualPerPhysical": 128,
            "desiredCount": 1,
            "actualCount": 0 if mt.get("enabled") else 1,
            "desiredVirtualCount": 128,
            "actualVirtualCount": 0 if mt.get("enabled") else 128,
            "key": "_id",
            "strategy": "hash",
            "function": "murmur3",
        },
        "properties": [],
    }
    if body.get("description"):
        out["description"] = body["description"]
    for prop in body.get("properties") or []:
        out["properties"].append(normalize_property(prop, out["properties"], name))
    named = body.get("vectorConfig")
    if named:
        if body.get("vectorIndexConfig") or body.get("vectorizer") not in (None, "none"):
            raise Refused("creating a class with both a class level vector index and named vectors is forbidden")
        out["vectorConfig"] = {}
        for vname, vcfg in named.items():
            if not _PROP.match(vname) or len(vname) > 230:
                raise Refused(f"target vector name '{vname}' is not valid")
            vcfg = vcfg or {}
            where = f"target vector '{vname}'"
            index_type, index = _index(vcfg.get("vectorIndexType"), vcfg.get("vectorIndexConfig"), where)
            out["vectorConfig"][vname] = {
                "vectorizer": _vectorizer_none(vcfg.get("vectorizer"), where),
                "vectorIndexType": index_type,
                "vectorIndexConfig": index,
            }
    else:
        index_type, index = _index(body.get("vectorIndexType"), body.get("vectorIndexConfig"), f"class '{name}'")
        _vectorizer_none(body.get("vectorizer"), f"class '{name}'")
        out["vectorizer"] = "none"
        out["vectorIndexType"] = index_type
        out["vectorIndexConfig"] = index
        out["moduleConfig"] = {}
    return out


def vector_names(cls: dict[str, Any]) -> dict[str, str]:
    """The class's vectors: name -> distance; the legacy (class level) vector is named ``""``."""
    if "vectorConfig" in cls:
        return {name: v["vectorIndexConfig"]["distance"] for name, v in cls["vectorConfig"].items()}
    return {"": cls["vectorIndexConfig"]["distance"]}


# -- values -------------------------------------------------------------------------------------------------
def _scalar(dtype: str, value: Any, prop: str, cls: str) -> Any:
    """A value as the server stores it (ints as floats: Weaviate keeps every number as float64)."""
    if dtype in ("text", "blob"):
        if not isinstance(value, str):
            raise Refused(f"invalid text property '{prop}' on class '{cls}': not a string, but {_go_type(value)}")
        return value
    if dtype == "int":
        if isinstance(value, bool) or not isinstance(value, int | float) or not float(value).is_integer():
            raise Refused(
                f"invalid integer property '{prop}' on class '{cls}': requires an integer, the given value is '{value}'"
            )
        return float(value)
    if dtype == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise Refused(
                f"invalid number property '{prop}' on class '{cls}': requires a float, the given value is '{value}'"
            )
        return float(value)
    if dtype == "boolean":
        if not isinstance(value, bool):
            raise Refused(
                f"invalid boolean property '{prop}' on class '{cls}': requires a bool, the given value is '{value}'"
            )
        return value
    if dtype == "date":
        if not isinstance(value, str) or not _DATE.match(value):
            raise Refused(
                f"invalid date property '{prop}' on class '{cls}': requires a string with a RFC3339 "
                f"formatted date, but the given value is '{value}'"
            )
        return value
    if dtype == "uuid":
        if not isinstance(value, str) or not _UUID.match(value):
            raise Refused(f"invalid uuid property '{prop}' on class '{cls}': '{value}' is not a valid uuid")
        return value.lower()
    raise Refused(f"property '{prop}' on class '{cls}': data type '{dtype}' is not implemented by the fake")


def coerce(dtype: str, value: Any, prop: str, cls: str) -> Any:
    """Check ``value`` against the property's data type; return it as stored."""
    if value is None:
        return None
    inner = ARRAY_TYPES.get(dtype)
    if inner is None:
        if isinstance(value, list):
            raise Refused(f"invalid {dtype} property '{prop}' on class '{cls}': not a {dtype}, but an array")
        return _scalar(dtype, value, prop, cls)
    if not isinstance(value, list):
        raise Refused(f"invalid {dtype} property '{prop}' on class '{cls}': not an array, but {_go_type(value)}")
    return [_scalar(inner, v, prop, cls) for v in value]


def infer_type(value: Any) -> str | None:
    """The data type auto-schema gives a new property for ``value`` (None: cannot tell, e.g. an empty list)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        if _DATE.match(value):
            try:
                datetime.fromisoformat(value.replace("Z", "+00:00"))
                return "date"
            except ValueError:
                return "text"
        if _UUID.match(value):
            uuid_lib.UUID(value)
            return "uuid"
        return "text"
    if isinstance(value, list) and value:
        if isinstance(value[0], int) and not isinstance(value[0], bool) and getattr(value, "ints", False):
            return "int[]"
        inner = infer_type(value[0])
        return f"{inner}[]" if inner in ("text", "number", "boolean", "date", "uuid") else None
    return None


class IntList(list[int]):
    """A list that came as an ``IntArrayProperties`` (auto-schema makes those ``int[]``, not ``number[]``)."""

    ints = True


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "float64"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "[]interface {}"
    return "map[string]interface {}"
