"""Protocol Buffers wire encoding for connectors that write a request's bytes themselves (Weaviate's
``BatchObject``, Milvus's packed float vectors): varints and length-delimited fields. No protobuf import here."""

from __future__ import annotations

__all__ = ["length_delimited", "varint"]


def _encode(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


#: the varints of lengths below 2**14 (two bytes at most), made once
_SMALL = [_encode(n) for n in range(1 << 14)]


def varint(n: int) -> bytes:
    """The base-128 varint of a non-negative integer (a negative int64 is passed as ``n & 0xFFFFFFFFFFFFFFFF``)."""
    return _SMALL[n] if n < 16384 else _encode(n)


def length_delimited(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length as a varint, its bytes."""
    return tag + varint(len(payload)) + payload
