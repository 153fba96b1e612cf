"""Key derivation: HKDF-Expand (SHA-512), Argon2id and scrypt, with hostile parameters refused before
anything is allocated (age's "SHOULD apply an upper limit").

A passphrase KDF is described by a JSON-ready dict stored in key files::

    {"alg": "argon2id", "salt": "<b64, 16 B>", "t": 3, "m_kib": 65536, "p": 4}
    {"alg": "scrypt",   "salt": "<b64, 16 B>", "log_n": 17, "r": 8, "p": 1}

:func:`check_params` validates such a dict strictly (exact keys, types, bounds) and :func:`derive_key`
runs it. Besides each field's own range, two caps bound what a key file can make vexrun spend, whatever
mix of fields it uses (a key file comes from the forge, which may be hostile):

* **memory** at most :data:`MAX_KDF_MEMORY` (1 GiB): Argon2id's ``m_kib`` KiB, scrypt's ``128 * r * N`` bytes;
* **work** at most :data:`MAX_ARGON2_WORK_KIB` for Argon2id (``t * m_kib``: 2 GiB of blocks, 10.7x the
  default) and :data:`MAX_SCRYPT_WORK` for scrypt (``N * r * p`` = 2**23, 8x the default): each about 2.5 s
  of CPU on the 2-vCPU machines of the design, where the defaults take 0.16 s (Argon2id) and 0.29 s
  (scrypt). scrypt's ``p`` multiplies its work (the ``p`` blocks run one after the other); Argon2id's ``p``
  splits ``m_kib`` into lanes and adds none.

:func:`estimated_seconds` ranks parameters by cost, so an unlock tries cheap key files first. Argon2id needs
cryptography >= 44 with OpenSSL >= 3.2; :func:`default_params` falls back to scrypt when it is missing.
"""

from __future__ import annotations

import os
from typing import Any

from ._lazy import require
from .encoding import b64d, b64e
from .errors import KeyFileError

__all__ = [
    "ARGON2_DEFAULT",
    "MAX_ARGON2_M_KIB",
    "MAX_ARGON2_WORK_KIB",
    "MAX_KDF_MEMORY",
    "MAX_SCRYPT_WORK",
    "argon2_available",
    "check_params",
    "default_params",
    "derive_key",
    "estimated_seconds",
    "hkdf",
    "kdf_memory",
]

#: m=64 MiB, t=3, p=4: 0.12–0.17 s here.
ARGON2_DEFAULT = {"t": 3, "m_kib": 65536, "p": 4}
SCRYPT_DEFAULT = {"log_n": 17, "r": 8, "p": 1}
#: The most memory a key file's KDF may ask for, in bytes.
MAX_KDF_MEMORY = 1 << 30
MAX_ARGON2_M_KIB = MAX_KDF_MEMORY // 1024
MAX_ARGON2_T = 10
MAX_ARGON2_P = 16
#: The most Argon2id work: t * m_kib (KiB of blocks processed over all passes).
MAX_ARGON2_WORK_KIB = 2 * 1024 * 1024
MAX_SCRYPT_LOG_N = 20
MAX_SCRYPT_R = 32
MAX_SCRYPT_P = 16
#: The most scrypt work: N * r * p (in 128-byte block mixes, halved).
MAX_SCRYPT_WORK = 1 << 23
SALT_BYTES = 16
#: CPU seconds per unit of work measured on a 2-vCPU machine (1 GiB Argon2id pass: 1.4 s; scrypt at
#: N*r*p = 2**23: 2.5 s), for :func:`estimated_seconds`.
_ARGON2_S_PER_KIB = 1.4 / (1 << 20)
_SCRYPT_S_PER_UNIT = 2.5 / (1 << 23)


def hkdf(key: bytes, info: bytes, length: int = 32) -> bytes:
    """HKDF-Expand over SHA-512 (no extract step: ``key`` is already uniformly random)."""
    require()
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    return HKDFExpand(hashes.SHA512(), length, info).derive(key)


def argon2_available() -> bool:
    require()
    try:
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        Argon2id(salt=b"\0" * 16, length=32, iterations=1, lanes=1, memory_cost=8).derive(b"x")
    except Exception:  # noqa: BLE001 - ImportError, or UnsupportedAlgorithm with OpenSSL < 3.2
        return False
    return True


def default_params(*, alg: str | None = None, salt: bytes | None = None) -> dict[str, Any]:
    """Fresh parameters for a new key file: Argon2id if available, else scrypt."""
    alg = alg or ("argon2id" if argon2_available() else "scrypt")
    salt = os.urandom(SALT_BYTES) if salt is None else salt
    if alg == "argon2id":
        return {"alg": "argon2id", "salt": b64e(salt), **ARGON2_DEFAULT}
    if alg == "scrypt":
        return {"alg": "scrypt", "salt": b64e(salt), **SCRYPT_DEFAULT}
    raise ValueError(f"unknown KDF {alg!r}")


def _int(params: dict[str, Any], name: str, lo: int, hi: int) -> int:
    value = params.get(name)
    if type(value) is not int:
        raise KeyFileError(f"key file: kdf.{name} must be an integer")
    if not lo <= value <= hi:
        raise KeyFileError(f"key file: kdf.{name}={value} is outside {lo}..{hi}; refusing a hostile key file")
    return value


def check_params(params: Any) -> dict[str, Any]:
    """Validate a KDF description; raise :class:`KeyFileError` before any memory is committed."""
    if not isinstance(params, dict):
        raise KeyFileError("key file: kdf must be an object")
    alg = params.get("alg")
    if alg == "argon2id":
        keys = {"alg", "salt", "t", "m_kib", "p"}
    elif alg == "scrypt":
        keys = {"alg", "salt", "log_n", "r", "p"}
    else:
        raise KeyFileError(f"key file: unsupported kdf {alg!r}")
    if set(params) != keys:
        raise KeyFileError(f"key file: kdf fields must be exactly {sorted(keys)}")
    salt = params["salt"]
    if not isinstance(salt, str) or len(b64d(salt, what="kdf.salt", error=KeyFileError)) < 16:
        raise KeyFileError("key file: kdf.salt must be at least 16 bytes of base64")
    if alg == "argon2id":
        p = _int(params, "p", 1, MAX_ARGON2_P)
        t = _int(params, "t", 1, MAX_ARGON2_T)
        m_kib = _int(params, "m_kib", 8 * p, MAX_ARGON2_M_KIB)
        if t * m_kib > MAX_ARGON2_WORK_KIB:
            raise KeyFileError(
                f"key file: kdf t={t} x m_kib={m_kib} asks for about {estimated_seconds(params):.0f} s of work "
                f"(at most t x m_kib = {MAX_ARGON2_WORK_KIB}); refusing a hostile key file"
            )
    else:
        log_n = _int(params, "log_n", 10, MAX_SCRYPT_LOG_N)
        r = _int(params, "r", 1, MAX_SCRYPT_R)
        p = _int(params, "p", 1, MAX_SCRYPT_P)
        memory = kdf_memory(params)
        if memory > MAX_KDF_MEMORY:
            raise KeyFileError(
                f"key file: kdf log_n={log_n}, r={r} asks for {memory / (1 << 30):.1f} GiB of memory "
                f"(at most {MAX_KDF_MEMORY >> 30} GiB); refusing a hostile key file"
            )
        if (1 << log_n) * r * p > MAX_SCRYPT_WORK:
            raise KeyFileError(
                f"key file: kdf log_n={log_n}, r={r}, p={p} asks for about {estimated_seconds(params):.0f} s of work "
                f"(at most N x r x p = 2**{MAX_SCRYPT_WORK.bit_length() - 1}); refusing a hostile key file"
            )
    return params


def kdf_memory(params: dict[str, Any]) -> int:
    """Bytes the KDF of (structurally valid) ``params`` allocates."""
    if params["alg"] == "argon2id":
        return int(params["m_kib"]) * 1024
    return 128 * int(params["r"]) * (1 << int(params["log_n"]))


def estimated_seconds(params: dict[str, Any]) -> float:
    """Rough seconds the KDF of (structurally valid) ``params`` takes on the reference machine."""
    if params["alg"] == "argon2id":
        return int(params["t"]) * int(params["m_kib"]) * _ARGON2_S_PER_KIB
    return (1 << int(params["log_n"])) * int(params["r"]) * int(params["p"]) * _SCRYPT_S_PER_UNIT


def derive_key(passphrase: bytes, params: dict[str, Any], length: int = 32) -> bytes:
    """Run the (checked) passphrase KDF."""
    check_params(params)
    require()
    salt = b64d(params["salt"], what="kdf.salt", error=KeyFileError)
    if params["alg"] == "argon2id":
        from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

        kdf = Argon2id(salt=salt, length=length, iterations=params["t"], lanes=params["p"], memory_cost=params["m_kib"])
        return kdf.derive(passphrase)
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=length, n=1 << params["log_n"], r=params["r"], p=params["p"]).derive(passphrase)
