"""c2sp.org/chunked-encryption ("Cobblestone"): chunked AES-GCM with key commitment.

A message is ``salt(24) ‖ commitment(32) ‖ AEAD chunks``. For each message::

    key ‖ base_nonce ‖ commitment = HKDF-Expand-SHA-512(prk = input key,
        info = "c2sp.org/chunked-encryption@v1+" ‖ aead name ‖ 0x00 ‖ salt ‖ context)

The plaintext is cut into 16 KiB chunks, the last one always shorter (possibly empty); chunk ``i`` is
sealed with ``base_nonce XOR i`` (big-endian) and no AAD. A reader checks the commitment before it
decrypts any chunk, so a ciphertext under another key or context (vexrun puts the repository id and the
object id or manifest generation in the context) fails before any plaintext is produced, and a message
that does not end in a short chunk is truncated.

``Cobblestone-256`` is AES-256-GCM with HKDF-SHA-512 and a 32-byte input key: vexrun's objects and
manifests. It is byte-compatible with ``cryptography.cobblestone`` (cryptography >= 50) and with the
Wycheproof ``c2sp_chunked_encryption_aes_256_gcm`` vectors.

When the installed cryptography has ``cryptography.cobblestone`` (>= 50), its Rust
``Cobblestone256Encryptor`` / ``Cobblestone256Decryptor`` do the work: encryption with a random salt, and
every decryption. The chunk framing written here over ``AESGCM`` is the fallback for cryptography 44-49,
and what runs where the built-in cannot: an injected salt (golden files, known-answer vectors),
``hash_name="sha256"`` and 16-byte keys (only for the generic chunked-encryption vectors shipped in
``cryptography-vectors``). ``builtin=False`` forces it, so tests compare both on the same inputs. The
built-in's failures carry no detail, so when it refuses a message the reason is told by the framing here
(commitment, truncation, which chunk): the refusal itself is the built-in's, and nothing it did not
authenticate is ever returned or written.
"""

from __future__ import annotations

import functools
import hmac
import os
from collections.abc import Callable
from typing import Any, Protocol

from ._lazy import require
from .errors import DecryptionFailed


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...
    def readinto(self, buffer: bytearray | memoryview, /) -> int | None: ...


__all__ = [
    "CHUNK",
    "HEADER",
    "SALT",
    "TAG",
    "builtin_available",
    "ciphertext_size",
    "decrypt",
    "decrypt_stream",
    "derive",
    "encrypt",
    "encrypt_into",
]

CHUNK = 16 * 1024
TAG = 16
SALT = 24
COMMITMENT = 32
HEADER = SALT + COMMITMENT
NONCE = 12
_PREFIX = b"c2sp.org/chunked-encryption@v1+"
_MAX_CHUNKS = 1 << 38
_AEAD_NAMES = {16: b"AEAD_AES_128_GCM", 32: b"AEAD_AES_256_GCM"}


def _aead_name(key: bytes) -> bytes:
    try:
        return _AEAD_NAMES[len(key)]
    except KeyError:
        raise ValueError(f"the input key must be 16 or 32 bytes, not {len(key)}") from None


def derive(input_key: bytes, salt: bytes, context: bytes, *, hash_name: str = "sha512") -> tuple[bytes, bytes, bytes]:
    """``(key, base_nonce, commitment)`` for one message."""
    require()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    name = _aead_name(input_key)
    hash_alg = hashes.SHA512() if hash_name == "sha512" else hashes.SHA256()
    if len(salt) != SALT:
        raise ValueError("the salt must be 24 bytes")
    klen = len(input_key)
    info = _PREFIX + name + b"\x00" + salt + context
    out = HKDFExpand(hash_alg, klen + NONCE + COMMITMENT, info).derive(input_key)
    return out[:klen], out[klen : klen + NONCE], out[klen + NONCE :]


def ciphertext_size(plaintext_size: int) -> int:
    """Bytes of the whole message (header included) for a plaintext of this size."""
    full = plaintext_size // CHUNK
    return HEADER + full * (CHUNK + TAG) + (plaintext_size - full * CHUNK) + TAG


def _nonce(base: int, counter: int) -> bytes:
    if counter >= _MAX_CHUNKS:
        raise DecryptionFailed("message too long for chunked encryption (2**38 chunks)")
    return (base ^ counter).to_bytes(NONCE, "big")


def encrypt(
    input_key: bytes,
    context: bytes,
    plaintext: bytes | bytearray | memoryview,
    *,
    salt: bytes | None = None,
    hash_name: str = "sha512",
) -> bytearray:
    """The whole message for ``plaintext``. ``salt`` is random unless given (a test hook for golden files
    and known-answer vectors: a salt must never repeat under one key)."""
    out = bytearray(ciphertext_size(len(memoryview(plaintext).cast("B"))))
    encrypt_into(input_key, context, plaintext, out, salt=salt, hash_name=hash_name)
    return out


def encrypt_into(
    input_key: bytes,
    context: bytes,
    plaintext: bytes | bytearray | memoryview,
    out: bytearray | memoryview,
    *,
    salt: bytes | None = None,
    hash_name: str = "sha512",
) -> int:
    """Encrypt into ``out`` (at least :func:`ciphertext_size` bytes; reusing one buffer spares the page
    faults of a fresh allocation per object) and return the message length."""
    require()
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    src = memoryview(plaintext).cast("B")
    n = len(src)
    total = ciphertext_size(n)
    dst = memoryview(out)
    if len(dst) < total:
        raise ValueError("the output buffer is too small")
    builtin = _builtin() if salt is None and hash_name == "sha512" and len(input_key) == 32 else None
    if builtin is not None:  # cryptography >= 50: the same format in Rust, about twice as fast
        enc = builtin(input_key, context)
        written = enc.update_into(src, dst)
        tail = enc.finalize()
        dst[written : written + len(tail)] = tail
        if written + len(tail) != total:  # pragma: no cover - a format change upstream
            raise RuntimeError("cryptography's Cobblestone output has an unexpected size")
        return total
    salt = os.urandom(SALT) if salt is None else salt
    key, base_nonce, commitment = derive(input_key, salt, context, hash_name=hash_name)
    aead = AESGCM(key)
    base = int.from_bytes(base_nonce, "big")
    dst[:SALT] = salt
    dst[SALT:HEADER] = commitment
    pos = HEADER
    counter = 0
    start = 0
    while True:
        end = min(start + CHUNK, n)
        length = end - start
        aead.encrypt_into(_nonce(base, counter), src[start:end], None, dst[pos : pos + length + TAG])
        pos += length + TAG
        counter += 1
        start = end
        if length < CHUNK:
            return total


@functools.cache
def _builtin() -> Any:
    """``cryptography.cobblestone.Cobblestone256Encryptor`` when this cryptography has it (>= 50)."""
    try:
        from cryptography.cobblestone import Cobblestone256Encryptor
    except ImportError:
        return None
    return Cobblestone256Encryptor


@functools.cache
def _builtin_decryptor() -> Any:
    """``cryptography.cobblestone.Cobblestone256Decryptor`` when this cryptography has it (>= 50)."""
    try:
        from cryptography.cobblestone import Cobblestone256Decryptor
    except ImportError:
        return None
    return Cobblestone256Decryptor


def builtin_available() -> bool:
    """Whether cryptography's own Cobblestone-256 (>= 50) is installed and used."""
    require()
    return _builtin() is not None and _builtin_decryptor() is not None


def _decryptor(input_key: bytes, hash_name: str, builtin: bool | None) -> Any:
    """The built-in decryptor class to use, or None for the framing here. ``builtin=True`` requires it."""
    usable = hash_name == "sha512" and len(input_key) == 32
    cls = _builtin_decryptor() if usable and builtin is not False else None
    if builtin and cls is None:
        raise ValueError("cryptography's Cobblestone-256 is not available (cryptography >= 50, sha512, 32-byte key)")
    return cls


def _check_header(input_key: bytes, context: bytes, header: bytes | memoryview, hash_name: str) -> tuple[object, int]:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if len(header) < HEADER:
        raise DecryptionFailed("truncated: the ciphertext is shorter than its 56-byte header")
    key, base_nonce, commitment = derive(input_key, bytes(header[:SALT]), context, hash_name=hash_name)
    if not hmac.compare_digest(commitment, bytes(header[SALT:HEADER])):
        raise DecryptionFailed("the key commitment does not match (wrong key, or the ciphertext was moved or altered)")
    return AESGCM(key), int.from_bytes(base_nonce, "big")


def _open(aead: object, base: int, counter: int, chunk: memoryview, out: memoryview) -> None:
    from cryptography.exceptions import InvalidTag

    try:
        aead.decrypt_into(_nonce(base, counter), chunk, None, out)  # type: ignore[attr-defined]
    except InvalidTag:
        raise DecryptionFailed(f"chunk {counter} fails authentication (damaged, reordered or truncated)") from None


def decrypt(
    input_key: bytes,
    context: bytes,
    message: bytes | bytearray | memoryview,
    *,
    hash_name: str = "sha512",
    builtin: bool | None = None,
) -> bytearray:
    """The plaintext of a whole message, or :class:`DecryptionFailed`. ``builtin``: None uses cryptography's
    decryptor when it is there, False forces the framing here, True requires the built-in."""
    require()
    _aead_name(input_key)
    src = memoryview(message).cast("B")
    cls = _decryptor(input_key, hash_name, builtin)
    if cls is not None:
        return _decrypt_builtin(cls, input_key, context, src)
    return _decrypt_here(input_key, context, src, hash_name)


def _decrypt_builtin(cls: Any, input_key: bytes, context: bytes, src: memoryview) -> bytearray:
    from cryptography.exceptions import InvalidTag

    out = bytearray(len(src) + CHUNK + TAG)  # the documented always-large-enough size
    try:
        dec = cls(input_key, context)
        n = dec.update_into(src, out)
        tail = dec.finalize()
    except InvalidTag:
        _decrypt_here(input_key, context, src, "sha512")  # raises, with the reason
        raise DecryptionFailed("the ciphertext fails authentication") from None  # pragma: no cover
    out[n : n + len(tail)] = tail
    del out[n + len(tail) :]
    return out


def _decrypt_here(input_key: bytes, context: bytes, src: memoryview, hash_name: str) -> bytearray:
    aead, base = _check_header(input_key, context, src[:HEADER], hash_name)
    body = len(src) - HEADER
    full = body // (CHUNK + TAG)
    last = body - full * (CHUNK + TAG)
    if last < TAG:
        raise DecryptionFailed("truncated: the final short chunk is missing")
    out = bytearray(full * CHUNK + last - TAG)
    dst = memoryview(out)
    pos = HEADER
    for counter in range(full + 1):
        clen = CHUNK + TAG if counter < full else last
        plen = clen - TAG
        _open(aead, base, counter, src[pos : pos + clen], dst[counter * CHUNK : counter * CHUNK + plen])
        pos += clen
    return out


def decrypt_stream(
    input_key: bytes,
    context: bytes,
    fh: Readable,
    write: Callable[[memoryview], object],
    *,
    hash_name: str = "sha512",
    builtin: bool | None = None,
) -> int:
    """Decrypt a message read from ``fh`` with 16 KiB buffers, passing each verified chunk to ``write``.
    Raises :class:`DecryptionFailed` on the first bad chunk or at a missing final chunk; a caller that
    must not expose partial plaintext writes to a temporary file and renames it only on success.
    ``builtin`` as in :func:`decrypt`."""
    require()
    _aead_name(input_key)
    header = fh.read(HEADER)
    cls = _decryptor(input_key, hash_name, builtin)
    if cls is not None:
        return _stream_builtin(cls, input_key, context, header, fh, write)
    aead, base = _check_header(input_key, context, header, hash_name)
    inbuf = bytearray(CHUNK + TAG)
    inview = memoryview(inbuf)
    outbuf = bytearray(CHUNK)
    outview = memoryview(outbuf)
    total = 0
    counter = 0
    while True:
        n = fh.readinto(inbuf) or 0
        while n < CHUNK + TAG:  # short reads from pipes: fill up, a short final read is EOF
            more = fh.readinto(inview[n:]) or 0
            if not more:
                break
            n += more
        if n == CHUNK + TAG:
            _open(aead, base, counter, inview, outview)
            write(outview)
            total += CHUNK
            counter += 1
            continue
        if n < TAG:
            raise DecryptionFailed("truncated: the final short chunk is missing")
        _open(aead, base, counter, inview[:n], outview[: n - TAG])
        write(outview[: n - TAG])
        return total + n - TAG


def _read_full(fh: Readable, view: memoryview) -> int:
    """Fill ``view`` from ``fh`` (short reads from pipes); fewer bytes only at EOF."""
    n = 0
    while n < len(view):
        more = fh.readinto(view[n:]) or 0
        if not more:
            break
        n += more
    return n


def _stream_builtin(
    cls: Any, input_key: bytes, context: bytes, header: bytes, fh: Readable, write: Callable[[memoryview], object]
) -> int:
    """:func:`decrypt_stream` through cryptography's decryptor, fed one chunk at a time. Only what it
    returns (authenticated) reaches ``write``; on a refusal the framing here names the reason."""
    from cryptography.exceptions import InvalidTag

    inbuf = bytearray(CHUNK + TAG)
    inview = memoryview(inbuf)
    outbuf = bytearray(2 * (CHUNK + TAG))  # update_into needs len(data) + 16400
    outview = memoryview(outbuf)
    total = 0
    counter = 0
    n = 0
    if len(header) < HEADER:
        raise DecryptionFailed("truncated: the ciphertext is shorter than its 56-byte header")
    try:
        dec = cls(input_key, context)
        got = dec.update_into(header, outview)
        while True:
            if got:
                write(outview[:got])
                total += got
            n = _read_full(fh, inview)
            if n < CHUNK + TAG:
                break
            got = dec.update_into(inview, outview)
            counter += 1
        got = dec.update_into(inview[:n], outview) if n else 0
        if got:  # pragma: no cover - the built-in keeps the short final chunk for finalize
            write(outview[:got])
            total += got
        tail = dec.finalize()
    except InvalidTag:
        _check_header(input_key, context, header, "sha512")  # a short header or a bad commitment: says which
        if n < TAG:
            raise DecryptionFailed("truncated: the final short chunk is missing") from None
        raise DecryptionFailed(f"chunk {counter} fails authentication (damaged, reordered or truncated)") from None
    write(memoryview(tail))
    return total + len(tail)
