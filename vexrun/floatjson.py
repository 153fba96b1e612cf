"""Reading a JSON array of numbers straight into a float64 buffer, without a Python float per value.

simdjson (``pysimdjson``, a dependency) parses the array and copies its numbers into a buffer; each decimal is
rounded to the nearest double, as msgspec, orjson and the stdlib round it, so what is built from the buffer has
the same bits as what is built from their float lists. The reader of ``.vmig.jsonl`` files uses it for each
line's vector, the Pinecone source for the values of a ``fetch`` reply, and the fake Pinecone for an upsert's.

:meth:`FloatArrays.read` only vouches for a flat, non-empty array of numbers in the double range; for anything
else (nested or empty arrays, strings, ``null``, a bracket inside a string, simdjson missing or too old) it
returns None and the caller decodes the text with its reference decoder, whose verdict and message count.

One :class:`FloatArrays` per thread: a simdjson parser is not thread-safe.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

simdjson: Any
try:
    import simdjson
except ImportError:  # pragma: no cover - a dependency; without it every caller uses its reference decoder
    simdjson = None

__all__ = ["FloatArrays", "available"]


def available() -> bool:
    """True when simdjson is installed (else :meth:`FloatArrays.read` always returns None)."""
    return simdjson is not None


class FloatArrays:
    """A simdjson parser that reads JSON arrays of numbers into float64 buffers."""

    def __init__(self) -> None:
        self._parse: Callable[[Any], Any] | None = None if simdjson is None else simdjson.Parser().parse

    def read(self, text: bytes) -> tuple[Any, int] | tuple[None, None] | None:
        """``(float64 buffer, length)`` of the array ``text``; ``(None, None)`` for ``null``; None when this
        path cannot vouch for the text (the caller's reference decoder then judges it)."""
        parse = self._parse
        if parse is None:
            return None
        if text.find(b"[", 1) >= 0:  # a nested array (or a bracket in a string): simdjson would flatten it
            return None
        doc: Any = None
        try:
            doc = parse(text)
            if doc is None:  # JSON null
                return None, None
            n = len(doc)
            buf = doc.as_buffer(of_type="d")
        except Exception:  # noqa: BLE001 - anything simdjson refuses, the reference decoder judges
            return None
        finally:
            doc = None  # simdjson refuses to parse again while a view of its last document lives
        if n == 0 or buf.size != 8 * n:
            return None
        return buf, n
