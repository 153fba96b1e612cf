"""The master secret of a backup repository, its sub-keys, and the key files that wrap it.

One random 32-byte master secret ``MS`` is made at ``sync init``. Sub-keys are HKDF-Expand-SHA-512 of it::

    K_obj    = HKDF(MS, "vexrun/v1/objects"  ‖ epoch (4 bytes, big-endian))   objects (Cobblestone input key)
    K_man    = HKDF(MS, "vexrun/v1/manifest" ‖ epoch)                         the manifest
    K_id     = HKDF(MS, "vexrun/v1/object-id")                                keyed BLAKE3: object ids, buckets
    K_status = HKDF(MS, "vexrun/v1/status-mac")                               HMAC of the plaintext status

Key files (``vexrun/keys/<key_id>.json``), restic's model: each wraps MS with AES-256-GCM::

    {"v": 1, "key_id": "<16 hex>", "kind": "passphrase" | "recovery", "created_at": "…", "label": "…",
     "kdf": {"alg": "argon2id", "salt": …, "t": 3, "m_kib": 65536, "p": 4} | {"alg": "hkdf-sha512"},
     "wrap": {"alg": "AES-256-GCM", "nonce": "<b64, 12 B>", "ct": "<b64 of MS ‖ tag>"}}

The wrap's AAD is ``"vexrun/v1/keyfile" 0x00 ‖ repo_id (16 B) ‖ key_id (8 B) ‖ kind 0x00 ‖ canonical-JSON(every
field but wrap)``: a wrong passphrase, an edited parameter, label or date, or a key file copied from another
repository all fail the tag.
A ``passphrase`` key uses Argon2id (scrypt when Argon2id is unavailable); a ``recovery`` key is a random
256-bit code printed once at init, whose wrapping key is ``HKDF(code, "vexrun/v1/recovery")``.
"""

from __future__ import annotations

import base64
import hmac
import os
from dataclasses import dataclass
from typing import Any

from ..crypto.encoding import b64d, b64e, canonical_json, loads_strict
from ..crypto.errors import KeyFileError, WrongPassphrase
from ..crypto.kdf import check_params, default_params, derive_key, hkdf
from ..redact import register_secret

__all__ = [
    "SubKeys",
    "format_recovery_code",
    "make_keyfile",
    "new_recovery_code",
    "parse_keyfile",
    "parse_recovery_code",
    "unwrap_keyfile",
]

_KINDS = ("passphrase", "recovery")
_RECOVERY_KDF = {"alg": "hkdf-sha512"}


@dataclass(frozen=True)
class SubKeys:
    epoch: int
    k_obj: bytes
    k_man: bytes
    k_id: bytes
    k_status: bytes

    @classmethod
    def derive(cls, ms: bytes, epoch: int) -> SubKeys:
        e = epoch.to_bytes(4, "big")
        return cls(
            epoch,
            hkdf(ms, b"vexrun/v1/objects" + e),
            hkdf(ms, b"vexrun/v1/manifest" + e),
            hkdf(ms, b"vexrun/v1/object-id"),
            hkdf(ms, b"vexrun/v1/status-mac"),
        )

    def object_id(self, plaintext: bytes | bytearray | memoryview) -> bytes:
        import blake3

        return bytes(blake3.blake3(plaintext, key=self.k_id).digest())

    def status_mac(self, body: bytes) -> str:
        return hmac.new(self.k_status, body, "sha256").hexdigest()


# -- recovery codes: 32 random bytes + 3 checksum bytes, base32, 7 groups of 8 ------------------------


def _checksum(code: bytes) -> bytes:
    import blake3

    return bytes(blake3.blake3(b"vexrun recovery v1" + code).digest()[:3])


def new_recovery_code() -> bytes:
    return os.urandom(32)


def format_recovery_code(code: bytes) -> str:
    text = base64.b32encode(code + _checksum(code)).decode("ascii")
    return "-".join(text[i : i + 8] for i in range(0, len(text), 8))


def parse_recovery_code(text: str) -> bytes:
    """The 32 code bytes from a typed recovery code (case, spaces and dashes ignored; 0/1/8 read as O/I/B)."""
    register_secret(text)
    cleaned = "".join(ch for ch in text.upper() if ch.isalnum()).translate(str.maketrans("018", "OIB"))
    try:
        raw = base64.b32decode(cleaned)
    except (ValueError, TypeError):
        raise WrongPassphrase(
            "the recovery code is not valid (it should be 7 groups of 8 letters and digits)"
        ) from None
    if len(raw) != 35 or not hmac.compare_digest(_checksum(raw[:32]), raw[32:]):
        raise WrongPassphrase("the recovery code is mistyped (its checksum does not match)")
    register_secret(format_recovery_code(raw[:32]))
    return raw[:32]


# -- key files ---------------------------------------------------------------------------------------


def _aad(repo_id: bytes, body: dict[str, Any]) -> bytes:
    fields = {k: v for k, v in body.items() if k != "wrap"}
    head = b"vexrun/v1/keyfile\x00" + repo_id + bytes.fromhex(body["key_id"]) + str(body["kind"]).encode() + b"\x00"
    return head + canonical_json(fields)


def _wrapping_key(kind: str, kdf: dict[str, Any], secret: str | bytes) -> bytes:
    if kind == "recovery":
        code = secret if isinstance(secret, bytes) else parse_recovery_code(secret)
        return hkdf(code, b"vexrun/v1/recovery")
    passphrase = secret.encode("utf-8") if isinstance(secret, str) else secret
    return derive_key(passphrase, kdf)


def make_keyfile(
    ms: bytes,
    repo_id: bytes,
    *,
    kind: str,
    secret: str | bytes,
    label: str = "",
    kdf_alg: str | None = None,
    key_id: str | None = None,
    salt: bytes | None = None,
    nonce: bytes | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """A key file wrapping ``ms``. ``secret`` is the passphrase, or the 32 recovery code bytes.
    ``key_id``, ``salt``, ``nonce`` and ``created_at`` are test hooks for golden files."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from ..vmig.sidecar import utc_now

    if kind not in _KINDS:
        raise ValueError(kind)
    kdf = dict(_RECOVERY_KDF) if kind == "recovery" else default_params(alg=kdf_alg, salt=salt)
    nonce = nonce or os.urandom(12)
    body: dict[str, Any] = {
        "v": 1,
        "key_id": key_id or os.urandom(8).hex(),
        "kind": kind,
        "created_at": created_at or utc_now(),
        "label": label,
        "kdf": kdf,
    }
    ct = AESGCM(_wrapping_key(kind, kdf, secret)).encrypt(nonce, ms, _aad(repo_id, body))
    body["wrap"] = {"alg": "AES-256-GCM", "nonce": b64e(nonce), "ct": b64e(ct)}
    return body


def parse_keyfile(data: bytes, *, source: str) -> dict[str, Any]:
    """Parse and structurally check a key file; KDF bounds are checked here, before any derivation."""
    try:
        body = loads_strict(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{source}: not a valid key file ({exc})") from None
    if not isinstance(body, dict) or set(body) != {"v", "key_id", "kind", "created_at", "label", "kdf", "wrap"}:
        raise KeyFileError(f"{source}: not a vexrun key file (unexpected or missing fields)")
    if body["v"] != 1 or body["kind"] not in _KINDS:
        raise KeyFileError(f"{source}: unsupported key file version or kind")
    key_id = body["key_id"]
    if not isinstance(key_id, str) or len(key_id) != 16 or any(c not in "0123456789abcdef" for c in key_id):
        raise KeyFileError(f"{source}: bad key_id")
    if not isinstance(body["label"], str) or not isinstance(body["created_at"], str):
        raise KeyFileError(f"{source}: bad label or created_at")
    if body["kind"] == "recovery":
        if body["kdf"] != _RECOVERY_KDF:
            raise KeyFileError(f"{source}: a recovery key file uses kdf hkdf-sha512")
    else:
        check_params(body["kdf"])
    wrap = body["wrap"]
    if not isinstance(wrap, dict) or set(wrap) != {"alg", "nonce", "ct"} or wrap["alg"] != "AES-256-GCM":
        raise KeyFileError(f"{source}: bad wrap")
    if len(b64d(wrap["nonce"], what=f"{source}: nonce", error=KeyFileError)) != 12:
        raise KeyFileError(f"{source}: the nonce must be 12 bytes")
    if len(b64d(wrap["ct"], what=f"{source}: ct", error=KeyFileError)) != 48:
        raise KeyFileError(f"{source}: the wrapped secret must be 48 bytes")
    return body


def unwrap_keyfile(body: dict[str, Any], repo_id: bytes, secret: str | bytes) -> bytes:
    """MS from a parsed key file, or :class:`WrongPassphrase`."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    wrap = body["wrap"]
    nonce = b64d(wrap["nonce"], what="nonce", error=KeyFileError)
    ct = b64d(wrap["ct"], what="ct", error=KeyFileError)
    key = _wrapping_key(body["kind"], body["kdf"], secret)
    try:
        return AESGCM(key).decrypt(nonce, ct, _aad(repo_id, body))
    except InvalidTag:
        raise WrongPassphrase(f"key {body['key_id']} ({body['kind']}) does not open with this secret") from None
