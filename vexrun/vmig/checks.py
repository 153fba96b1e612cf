"""Checking one ``.vmig.jsonl`` line against the SPEC rules.

Two paths give the same verdict. The fast path decodes a line straight into :class:`VmigRecord`, which
type-checks every field in C (numbers in the vector, scalars in metadata, ``id`` non-empty, ``dims``
positive); only the rules that span fields are left to Python. Any line the fast path refuses (a syntax
error, an unknown field, a wrong type, ``NaN``) goes to :func:`diagnose`, which parses it tolerantly and
names every problem precisely. Almost every line of a real file takes the fast path.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Callable
from datetime import datetime
from typing import Any

import msgspec
import orjson

from ..floatjson import FloatArrays
from .findings import Finding, make
from .model import FIELDS, VmigRecord, VmigRecordRawVector, is_semver

__all__ = ["Checker", "diagnose", "is_timestamp"]

_KNOWN = frozenset(FIELDS)
_VECTOR_KEY = b'"vector":'
_STR_FIELDS = ("model", "namespace", "source_store", "modality")


def is_timestamp(value: str) -> bool:
    """True if ``value`` is an ISO-8601 date or date-time (``Z`` and offsets allowed)."""
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _show(value: object, limit: int = 40) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str) if not isinstance(value, float) else repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Checker:
    """Checks lines. Holds only small caches, so one instance serves a whole file."""

    def __init__(self) -> None:
        self.decode: Callable[[bytes], VmigRecord] = msgspec.json.Decoder(VmigRecord).decode
        #: the same check with the vector left as its JSON text, for :meth:`vector`
        self.decode_raw: Callable[[bytes], Any] = msgspec.json.Decoder(VmigRecordRawVector).decode
        self._floats = FloatArrays()
        #: what :meth:`split` puts in place of the vector: no file can be written to hold it by design
        self._mark = b'"vexrun-vector-' + secrets.token_hex(8).encode() + b'"'
        self._versions: dict[str, bool] = {}

    def split(self, line: bytes) -> tuple[Any, Any, int] | None:
        """The line as :attr:`decode_raw` decodes it, with its vector read by :meth:`vector`, or None when this
        path cannot vouch for the line (the caller then takes :attr:`decode_raw` and :meth:`vector`).

        msgspec no longer scans the vector's text only to hand it over: the array after the first
        ``"vector":`` (up to the first ``]``: a number holds none) is read by simdjson, and msgspec decodes the
        rest of the line with a marker in its place. The marker (a string with 64 random bits, drawn per
        checker) coming back as the top-level ``vector`` proves the array was the record's own vector and not a
        nested key of that name (nor a duplicate key that a later one overrides). Every other field is decoded,
        type-checked and refused exactly as on the whole line: the line is the same bytes around the vector."""
        i = line.find(_VECTOR_KEY)
        if i < 0:
            return None
        i += len(_VECTOR_KEY)
        while line[i : i + 1] in (b" ", b"\t"):
            i += 1
        if line[i : i + 1] != b"[":
            return None
        j = line.find(b"]", i)
        if j < 0:
            return None
        try:
            w = self.decode_raw(line[:i] + self._mark + line[j + 1 :])
        except ValueError:  # msgspec.DecodeError, or bad UTF-8: the whole line gets its own verdict
            return None
        if w.vector is None or bytes(w.vector) != self._mark:
            return None
        got = self._floats.read(line[i : j + 1])
        if got is None:
            return None
        buf, n = got
        if buf is None or n is None:
            return None
        return w, buf, n

    def vector(self, raw: msgspec.Raw | None) -> tuple[Any, int] | tuple[None, None] | None:
        """The vector of a line decoded by :attr:`decode_raw`: ``(float64 buffer, length)``, ``(None, None)``
        when the line has none, or None when this path cannot vouch for it (see
        :meth:`~vexrun.floatjson.FloatArrays.read`): the caller then decodes the line with :attr:`decode`, whose
        verdict and values are the reference."""
        if raw is None:
            return None, None
        return self._floats.read(bytes(raw))

    def version_ok(self, version: str) -> bool:
        ok = self._versions.get(version)
        if ok is None:
            ok = is_semver(version)
            if len(self._versions) < 256:
                self._versions[version] = ok
        return ok

    def rules(
        self,
        lineno: int,
        rid: str | None,
        has_text: bool,
        n_values: int | None,
        dims: int | None,
        version: str | None,
        created_at: str | None,
        *,
        check_version: bool = True,
    ) -> list[Finding] | None:
        """The cross-field rules, given well-typed fields. None when the record passes (the usual case)."""
        out: list[Finding] | None = None
        if not has_text and n_values is None:
            out = [make(lineno, "no-content", "text and vector are both null; a record needs one", rid)]
        if n_values is not None and dims is not None and dims != n_values:
            msg = f"dims is {dims} but vector has {n_values} values"
            out = (out or []) + [make(lineno, "dims-mismatch", msg, rid)]
        if not check_version:
            pass
        elif version is None:
            msg = "vex_version is missing (vexrun stamps it when it writes the file)"
            out = (out or []) + [make(lineno, "missing-version", msg, rid)]
        elif not self.version_ok(version):
            msg = f"vex_version {_show(version)} is not a SemVer version like '1.0.0'"
            out = (out or []) + [make(lineno, "bad-version", msg, rid)]
        if created_at is not None and not is_timestamp(created_at):
            msg = f"created_at {_show(created_at)} is not an ISO-8601 timestamp"
            out = (out or []) + [make(lineno, "bad-timestamp", msg, rid)]
        return out

    def check_fast(self, rec: Any, lineno: int, n_values: Any = ...) -> list[Finding] | None:
        """The rules of a decoded line; ``n_values`` is the vector's length for a :attr:`decode_raw` record."""
        if n_values is ...:
            vec = rec.vector
            n_values = None if vec is None else len(vec)
        return self.rules(
            lineno,
            rec.id,
            rec.text is not None,
            n_values,
            rec.dims,
            rec.vex_version,
            rec.created_at,
        )

    def diagnose(
        self, line: bytes, lineno: int, *, at_eof: bool = False
    ) -> tuple[dict[str, Any] | None, list[Finding]]:
        return diagnose(line, lineno, at_eof=at_eof, checker=self)


def _parse(line: bytes, lineno: int, at_eof: bool) -> tuple[Any, list[Finding]]:
    """Parse a line as tolerantly as is safe. Returns (value, findings); value is None on failure."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, [make(lineno, "bad-encoding", f"invalid UTF-8 at byte {exc.start + 1} of the line")]
    try:
        return orjson.loads(line), []
    except orjson.JSONDecodeError as exc:
        first = exc
    reason = str(first).split(": line ", 1)[0]
    column = first.colno
    if "surrogate" in reason:
        msg = f"a string holds an unpaired surrogate (column {column}); it cannot be stored or re-encoded"
        return None, [make(lineno, "bad-encoding", msg)]
    try:
        # The standard library accepts NaN / Infinity / 1e999; the record checks then name them.
        return json.loads(text), []
    except (ValueError, RecursionError):
        pass
    if at_eof and not line.endswith(b"\n"):
        msg = f"invalid JSON at column {column}: {reason} (the last line is truncated: no newline at end of file)"
    else:
        msg = f"invalid JSON at column {column}: {reason}"
    return None, [make(lineno, "bad-json", msg)]


def _check_vector(vec: Any, lineno: int, rid: str | None, out: list[Finding]) -> int | None:
    """Check the vector; return its length if it is a usable array, else None."""
    if not isinstance(vec, list):
        out.append(
            make(lineno, "bad-vector", f"vector must be an array of numbers or null, got {_json_type(vec)}", rid)
        )
        return None
    if not vec:
        out.append(make(lineno, "bad-vector", "vector is empty; use null for a record without a vector", rid))
        return None
    bad_type = [i for i, x in enumerate(vec) if isinstance(x, bool) or not isinstance(x, int | float)]
    if bad_type:
        i = bad_type[0]
        more = f" ({len(bad_type) - 1} more)" if len(bad_type) > 1 else ""
        msg = f"vector[{i}] is {_json_type(vec[i])} {_show(vec[i])}, not a number{more}"
        out.append(make(lineno, "bad-vector", msg, rid))
    bad_val = [i for i, x in enumerate(vec) if isinstance(x, float) and not math.isfinite(x)]
    if bad_val:
        i = bad_val[0]
        more = f" ({len(bad_val) - 1} more)" if len(bad_val) > 1 else ""
        out.append(make(lineno, "non-finite", f"vector[{i}] is {vec[i]!r}; values must be finite{more}", rid))
    if any(isinstance(x, int) and not isinstance(x, bool) and abs(x) > 3.4028234663852886e38 for x in vec):
        out.append(make(lineno, "non-finite", "vector holds an integer out of the float range", rid))
    return len(vec)


def _check_metadata(meta: Any, lineno: int, rid: str | None, out: list[Finding]) -> None:
    if not isinstance(meta, dict):
        msg = f"metadata must be an object or null, got {_json_type(meta)}"
        out.append(make(lineno, "bad-metadata", msg, rid))
        return
    for key, value in meta.items():
        if isinstance(value, dict):
            msg = f"metadata.{key} is a nested object; only scalars and flat lists of scalars are allowed"
            out.append(make(lineno, "bad-metadata", msg, rid))
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict | list):
                    msg = f"metadata.{key}[{i}] is a nested {_json_type(item)}; lists must hold scalars only"
                    out.append(make(lineno, "bad-metadata", msg, rid))
                    break
                if isinstance(item, float) and not math.isfinite(item):
                    out.append(make(lineno, "bad-metadata", f"metadata.{key}[{i}] is {item!r}", rid))
                    break
        elif isinstance(value, float) and not math.isfinite(value):
            out.append(make(lineno, "bad-metadata", f"metadata.{key} is {value!r}; numbers must be finite", rid))


def diagnose(
    line: bytes, lineno: int, *, at_eof: bool = False, checker: Checker | None = None
) -> tuple[dict[str, Any] | None, list[Finding]]:
    """Check a line the fast path refused. Returns (the parsed object, findings). The object is
    returned whenever the line is a JSON object, so a caller can keep a record whose findings are all
    warnings (an unknown field)."""
    checker = checker or Checker()
    obj, out = _parse(line, lineno, at_eof)
    if out:
        return None, out
    if not isinstance(obj, dict):
        return None, [make(lineno, "not-object", f"expected a JSON object, got {_json_type(obj)}")]

    rid: str | None = None
    if "id" not in obj:
        out.append(make(lineno, "missing-id", "id is missing"))
    elif obj["id"] is None:
        out.append(make(lineno, "missing-id", "id is null"))
    elif not isinstance(obj["id"], str):
        out.append(make(lineno, "bad-type", f"id must be a string, got {_json_type(obj['id'])} {_show(obj['id'])}"))
    elif obj["id"] == "":
        out.append(make(lineno, "missing-id", "id is empty"))
    else:
        rid = obj["id"]

    text = obj.get("text")
    if text is not None and not isinstance(text, str):
        out.append(
            make(lineno, "bad-type", f"text must be a string or null, got {_json_type(text)} {_show(text)}", rid)
        )

    vec = obj.get("vector")
    n_values = _check_vector(vec, lineno, rid, out) if vec is not None else None

    dims = obj.get("dims")
    if dims is not None:
        if isinstance(dims, bool) or not isinstance(dims, int):
            msg = f"dims must be an integer, got {_json_type(dims)} {_show(dims)}"
            out.append(make(lineno, "bad-type", msg, rid))
            dims = None
        elif dims < 1:
            out.append(make(lineno, "dims-mismatch", f"dims must be positive, got {dims}", rid))
            dims = None

    for name in _STR_FIELDS:
        value = obj.get(name)
        if value is not None and not isinstance(value, str):
            msg = f"{name} must be a string or null, got {_json_type(value)} {_show(value)}"
            out.append(make(lineno, "bad-type", msg, rid))

    created_at = obj.get("created_at")
    if created_at is not None and not isinstance(created_at, str):
        msg = f"created_at must be an ISO-8601 string, got {_json_type(created_at)} {_show(created_at)}"
        out.append(make(lineno, "bad-timestamp", msg, rid))
        created_at = None

    version = obj.get("vex_version")
    version_typed = version is None or isinstance(version, str)
    if not version_typed:
        msg = f"vex_version must be a SemVer string, got {_json_type(version)} {_show(version)}"
        out.append(make(lineno, "bad-version", msg, rid))

    score = obj.get("score")
    if score is not None:
        if isinstance(score, bool) or not isinstance(score, int | float):
            out.append(
                make(lineno, "bad-type", f"score must be a number or null, got {_json_type(score)} {_show(score)}", rid)
            )
        elif isinstance(score, float) and not math.isfinite(score):
            out.append(make(lineno, "non-finite", f"score is {score!r}; numbers must be finite", rid))

    meta = obj.get("metadata")
    if meta is not None:
        _check_metadata(meta, lineno, rid, out)

    has_text = isinstance(text, str)
    more = checker.rules(lineno, rid, has_text, n_values, dims, version, created_at, check_version=version_typed)
    if more:
        if vec is not None and n_values is None:
            # A broken vector is already reported; do not also call the record empty.
            more = [f for f in more if f.code != "no-content"]
        out.extend(more)

    unknown = [k for k in obj if k not in _KNOWN]
    if unknown:
        names = ", ".join(f"'{k}'" for k in unknown[:5]) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        word = "field" if len(unknown) == 1 else "fields"
        msg = f"unknown top-level {word} {names} (kept on a round trip)"
        out.append(make(lineno, "unknown-field", msg, rid))
    out.sort(key=lambda f: f.severity != "error")
    return obj, out
