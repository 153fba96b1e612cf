"""Filters (``weaviate.v1.Filters``) as the fake Weaviate checks and applies them.

Checked as ``adapters/handlers/grpc/v1/filters.go`` and ``entities/filters/filters_validator.go`` check them:
an unknown operator or a clause without a value, a property the class does not have, a value of the wrong
kind (``valueText`` on an ``int`` property), ``_id`` with anything but text. Text is compared by tokens, as
the property's tokenization splits it (``field``: the whole value, trimmed; ``word``: lower-cased runs of
letters and digits), so ``Equal`` on a ``word`` property matches a value holding all the query's words.
Reference filters and geo ranges are not implemented (they are refused with a message saying so).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from .data import Collection, Obj
from .schema import ARRAY_TYPES, Refused

__all__ = ["compile_filter"]

Predicate = Callable[[Obj], bool]

_AND, _OR, _NOT = "OPERATOR_AND", "OPERATOR_OR", "OPERATOR_NOT"
_VALUE_KIND = {
    "value_text": "text",
    "value_int": "int",
    "value_boolean": "boolean",
    "value_number": "number",
    "value_text_array": "text",
    "value_int_array": "int",
    "value_boolean_array": "boolean",
    "value_number_array": "number",
    "value_geo": "geoCoordinates",
}
_VALUE_NAME = {
    "text": "valueText",
    "int": "valueInt",
    "boolean": "valueBoolean",
    "number": "valueNumber",
    "date": "valueDate",
    "uuid": "valueText",
    "geoCoordinates": "valueGeoRange",
}
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def _tokens(text: str, tokenization: str) -> list[str]:
    if tokenization == "field":
        return [text.strip()] if text.strip() else []
    if tokenization == "whitespace":
        return text.split()
    if tokenization == "lowercase":
        return text.lower().split()
    return [t.lower() for t in _WORD.findall(text)]


def _time(value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value)
    if text.lstrip("-").isdigit():
        return float(text)
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000


def _like(pattern: str) -> re.Pattern[str]:
    parts = (".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.compile("".join(parts) + r"\Z", re.IGNORECASE | re.DOTALL)


def compile_filter(flt: Any, coll: Collection) -> Predicate:
    """A predicate over objects for ``flt``, or Refused with the message a real server gives."""
    op = type(flt).Operator.Name(flt.operator)
    if op in (_AND, _OR, _NOT):
        parts = [compile_filter(f, coll) for f in flt.filters]
        if op == _AND:
            return lambda o: all(p(o) for p in parts)
        if op == _OR:
            return lambda o: any(p(o) for p in parts)
        if len(parts) != 1:
            raise Refused("operator Not requires exactly one operand")
        inner = parts[0]
        return lambda o: not inner(o)
    if op == "OPERATOR_UNSPECIFIED":
        raise Refused(f"unknown filter operator {op}")
    prop = _target(flt, coll)
    kind = flt.WhichOneof("test_value")
    if kind is None:
        raise Refused("unknown value type <nil>")
    raw = getattr(flt, kind)
    value: Any = list(raw.values) if kind.endswith("_array") else raw
    given = _VALUE_KIND[kind]
    if given == "geoCoordinates":
        raise Refused("the fake Weaviate does not implement geo range filters")
    if op == "OPERATOR_IS_NULL":
        if given != "boolean":
            raise Refused(f"operator IsNull requires a booleanValue, got {_VALUE_NAME[given]} instead")
        return lambda o: (o.props.get(prop) is None) == bool(value)
    if prop == "_id":
        if given != "text":
            raise Refused('using ["_id"] to filter by uuid: must use "valueText" to specify the id')
        ids = {str(v).lower() for v in (value if isinstance(value, list) else [value])}
        return _compare(op, lambda o: [o.uuid], sorted(ids) if isinstance(value, list) else str(value).lower())
    if prop in ("_creationTimeUnix", "_lastUpdateTimeUnix"):
        if given not in ("text", "int"):
            raise Refused(f'using ["{prop}"] to filter by timestamp: must use "valueText" or "valueDate"')
        attr = "created" if prop == "_creationTimeUnix" else "updated"
        want = [_time(v) for v in value] if isinstance(value, list) else _time(value)
        return _compare(op, lambda o: [float(getattr(o, attr))], want)
    spec = next(p for p in coll.cls["properties"] if p["name"] == prop)
    dtype = spec["dataType"][0]
    base = ARRAY_TYPES.get(dtype, dtype)
    expected = "text" if base in ("text", "uuid") else base
    if base == "date":
        expected = "text"
    if not (given == expected or (given == "int" and base == "number") or (given == "number" and base == "int")):
        raise Refused(
            f'data type filter cannot use "{_VALUE_NAME[given]}" on type "{dtype}", use "{_VALUE_NAME[base]}" instead'
        )
    if base in ("text", "uuid") and op != "OPERATOR_LIKE":
        tok = spec.get("tokenization", "field") if base == "text" else "field"
        return _text_compare(op, prop, tok, value)

    def values(o: Obj) -> list[Any]:
        got = o.props.get(prop)
        if got is None:
            return []
        return got if isinstance(got, list) else [got]

    if op == "OPERATOR_LIKE":
        pattern = _like(str(value))
        return lambda o: any(pattern.match(str(v)) for v in values(o))
    if base == "date":
        want = [_time(v) for v in value] if isinstance(value, list) else _time(value)
        return _compare(op, lambda o: [_time(v) for v in values(o)], want)
    if base in ("int", "number"):
        want = [float(v) for v in value] if isinstance(value, list) else float(value)
        return _compare(op, lambda o: [float(v) for v in values(o)], want)
    return _compare(op, values, value)


def _target(flt: Any, coll: Collection) -> str:
    if flt.HasField("target"):
        which = flt.target.WhichOneof("target")
        if which != "property":
            raise Refused("the fake Weaviate does not implement reference filters")
        name = flt.target.property
    else:
        on = list(flt.on)
        if len(on) % 2 != 1:
            raise Refused(
                f"paths needs to have a uneven number of components: property, class, property, ...., got {on}"
            )
        if len(on) > 1:
            raise Refused("the fake Weaviate does not implement reference filters")
        name = on[0]
    if name in ("_id", "id", "_creationTimeUnix", "_lastUpdateTimeUnix"):
        return "_id" if name == "id" else str(name)
    if not any(p["name"] == name for p in coll.cls["properties"]):
        raise Refused(
            f"no such prop with name '{name}' found in class '{coll.name}' in the schema. Check your schema files "
            "for which properties in this class are available"
        )
    return str(name)


def _compare(op: str, get: Callable[[Obj], list[Any]], want: Any) -> Predicate:
    if op == "OPERATOR_CONTAINS_ANY":
        wanted = set(want) if isinstance(want, list) else {want}
        return lambda o: any(v in wanted for v in get(o))
    if op == "OPERATOR_CONTAINS_ALL":
        wanted = set(want) if isinstance(want, list) else {want}
        return lambda o: wanted <= set(get(o))
    if op == "OPERATOR_CONTAINS_NONE":
        wanted = set(want) if isinstance(want, list) else {want}
        return lambda o: not any(v in wanted for v in get(o))
    if isinstance(want, list):
        raise Refused(f"operator {op} needs a single value, not an array")
    tests: dict[str, Callable[[Any], bool]] = {
        "OPERATOR_EQUAL": lambda v: bool(v == want),
        "OPERATOR_NOT_EQUAL": lambda v: bool(v != want),
        "OPERATOR_GREATER_THAN": lambda v: bool(v > want),
        "OPERATOR_GREATER_THAN_EQUAL": lambda v: bool(v >= want),
        "OPERATOR_LESS_THAN": lambda v: bool(v < want),
        "OPERATOR_LESS_THAN_EQUAL": lambda v: bool(v <= want),
    }
    test = tests.get(op)
    if test is None:
        raise Refused(f"operator {op} is not supported by the fake Weaviate")
    if op == "OPERATOR_NOT_EQUAL":
        return lambda o: all(test(v) for v in get(o))
    return lambda o: any(test(v) for v in get(o))


def _text_compare(op: str, prop: str, tok: str, want: Any) -> Predicate:
    """Text by tokens: Equal = the value holds every token of the query; ContainsAny/All/None over values."""

    def token_sets(o: Obj) -> list[set[str]]:
        got = o.props.get(prop)
        if got is None:
            return []
        return [set(_tokens(str(v), tok)) for v in (got if isinstance(got, list) else [got])]

    if isinstance(want, list):
        queries = [set(_tokens(str(w), tok)) for w in want]
        if op == "OPERATOR_CONTAINS_ANY":
            return lambda o: any(q and any(q <= s for s in token_sets(o)) for q in queries)
        if op == "OPERATOR_CONTAINS_ALL":
            return lambda o: all(q and any(q <= s for s in token_sets(o)) for q in queries)
        if op == "OPERATOR_CONTAINS_NONE":
            return lambda o: not any(q and any(q <= s for s in token_sets(o)) for q in queries)
        raise Refused(f"operator {op} needs a single value, not an array")
    query = set(_tokens(str(want), tok))
    if op in ("OPERATOR_EQUAL", "OPERATOR_CONTAINS_ANY", "OPERATOR_CONTAINS_ALL"):
        return lambda o: bool(query) and any(query <= s for s in token_sets(o))
    if op in ("OPERATOR_NOT_EQUAL", "OPERATOR_CONTAINS_NONE"):
        return lambda o: not (bool(query) and any(query <= s for s in token_sets(o)))
    ordered = {
        "OPERATOR_GREATER_THAN": lambda v: v > want,
        "OPERATOR_GREATER_THAN_EQUAL": lambda v: v >= want,
        "OPERATOR_LESS_THAN": lambda v: v < want,
        "OPERATOR_LESS_THAN_EQUAL": lambda v: v <= want,
    }.get(op)
    if ordered is None:
        raise Refused(f"operator {op} is not supported by the fake Weaviate")

    def test(o: Obj) -> bool:
        got = o.props.get(prop)
        return got is not None and any(ordered(v) for v in (got if isinstance(got, list) else [got]))

    return test
