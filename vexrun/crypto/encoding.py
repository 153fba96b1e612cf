"""Strict encodings shared by the key files, envelopes and manifests."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["b64d", "b64e", "canonical_json", "loads_strict"]


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, *, what: str, error: type[Exception]) -> bytes:
    """Decode standard, padded base64 and refuse any non-canonical spelling (the re-encoding must be
    identical), so no two texts decode to the same bytes."""
    if not isinstance(text, str):
        raise error(f"{what}: expected a base64 string")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise error(f"{what}: not valid base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        raise error(f"{what}: non-canonical base64")
    return raw


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: the bytes bound into AADs."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _no_dupes(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` that refuses duplicate keys, NaN/Infinity and invalid UTF-8 (raises ValueError)."""
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data, object_pairs_hook=_no_dupes, parse_constant=_no_constants)
