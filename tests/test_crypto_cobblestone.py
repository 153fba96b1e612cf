"""Cobblestone-256 objects: round trips at the chunk boundaries, and exhaustive tampering of a small
object (every byte flipped, every truncation, appended, swapped and duplicated chunks) all detected."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from vexrun.crypto import cobblestone as cb  # noqa: E402
from vexrun.crypto.errors import DecryptionFailed  # noqa: E402

KEY = bytes(range(32))
CTX = b"vexrun/v1/object\x00" + b"R" * 16 + b"O" * 32
BOUNDARIES = [0, 1, 16383, 16384, 16385, 32767, 32768, 32769]


def _stream(key: bytes, ctx: bytes, message: bytes) -> bytes:
    out = bytearray()
    cb.decrypt_stream(key, ctx, io.BytesIO(message), out.extend)
    return bytes(out)


@pytest.mark.parametrize("n", BOUNDARIES)
def test_round_trip_at_chunk_boundaries(n: int) -> None:
    pt = os.urandom(n)
    ct = cb.encrypt(KEY, CTX, pt)
    assert len(ct) == cb.ciphertext_size(n)
    assert cb.decrypt(KEY, CTX, ct) == pt
    assert _stream(KEY, CTX, bytes(ct)) == pt


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=70000))
def test_round_trip_random_sizes(pt: bytes) -> None:
    ct = bytes(cb.encrypt(KEY, CTX, pt))
    assert cb.decrypt(KEY, CTX, ct) == pt
    assert _stream(KEY, CTX, ct) == pt


def test_fresh_salt_every_time() -> None:
    assert cb.encrypt(KEY, CTX, b"same") != cb.encrypt(KEY, CTX, b"same")


@pytest.fixture(scope="module")
def small() -> tuple[bytes, bytes]:
    pt = bytes(i % 251 for i in range(40 * 1024 - 100))  # 3 chunks: 16 KiB, 16 KiB, short
    return pt, bytes(cb.encrypt(KEY, CTX, pt, salt=b"s" * 24))


def test_every_byte_flip_fails(small: tuple[bytes, bytes]) -> None:
    _, ct = small
    buf = bytearray(ct)
    for i in range(len(buf)):
        buf[i] ^= 0x01
        with pytest.raises(DecryptionFailed):
            cb.decrypt(KEY, CTX, buf)
        buf[i] ^= 0x01
    assert cb.decrypt(KEY, CTX, buf)  # restored


def test_every_truncation_fails(small: tuple[bytes, bytes]) -> None:
    _, ct = small
    view = memoryview(ct)
    for n in range(len(ct)):
        with pytest.raises(DecryptionFailed):
            cb.decrypt(KEY, CTX, view[:n])


@pytest.mark.parametrize("cut", [0, 10, 55, 56, 56 + 16400, 56 + 2 * 16400, 56 + 2 * 16400 + 15])
def test_streaming_truncations_fail(small: tuple[bytes, bytes], cut: int) -> None:
    with pytest.raises(DecryptionFailed):
        _stream(KEY, CTX, small[1][:cut])


def test_chunk_surgery_fails(small: tuple[bytes, bytes]) -> None:
    _, ct = small
    head, body = ct[:56], ct[56:]
    c0, c1, last = body[:16400], body[16400:32800], body[32800:]
    extra = bytes(cb.encrypt(KEY, CTX, b"x" * 16384 * 4, salt=b"s" * 24))[56 + 3 * 16400 : 56 + 4 * 16400]
    for bad in (
        ct + b"\0",  # one byte appended
        ct + extra,  # a valid chunk (same key and salt, next index) appended
        head + c1 + c0 + last,  # two chunks swapped
        head + c0 + c0 + c1 + last,  # a chunk duplicated
        head + c0 + c1 + c1[:100],  # final chunk replaced by a prefix of another
        head + c0 + c1,  # the short final chunk missing
    ):
        with pytest.raises(DecryptionFailed):
            cb.decrypt(KEY, CTX, bad)
        with pytest.raises(DecryptionFailed):
            _stream(KEY, CTX, bad)


def test_commitment_fails_before_any_chunk_for_another_context(small: tuple[bytes, bytes]) -> None:
    _, ct = small
    for ctx in (CTX[:-1] + b"P", b"vexrun/v1/object\x00" + b"X" * 16 + b"O" * 32, b""):
        with pytest.raises(DecryptionFailed, match="commitment"):
            cb.decrypt(KEY, ctx, ct)
    with pytest.raises(DecryptionFailed, match="commitment"):
        cb.decrypt(bytes(32), CTX, ct)


def test_stream_yields_nothing_past_a_bad_chunk(small: tuple[bytes, bytes]) -> None:
    pt, ct = small
    bad = bytearray(ct)
    bad[56 + 16400 + 5] ^= 0xFF  # second chunk
    got = bytearray()
    with pytest.raises(DecryptionFailed):
        cb.decrypt_stream(KEY, CTX, io.BytesIO(bytes(bad)), got.extend)
    assert bytes(got) == pt[:16384]
