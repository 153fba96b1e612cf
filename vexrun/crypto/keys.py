"""Ed25519 signing keys.

``$XDG_CONFIG_HOME/vexrun/keys/<keyid>.key`` (mode 0600, directory 0700) holds the secret key::

    {"v": 1, "kty": "ed25519", "keyid": "vx1:…", "pub": "<b64>", "comment": "…", "created_at": "…",
     "kdf": {"alg": "argon2id", "salt": …, "t": 3, "m_kib": 65536, "p": 4},
     "wrap": {"alg": "AES-256-GCM", "nonce": "<b64, 12 B>", "ct": "<b64 of seed ‖ tag>"}}

``ct`` seals the 32-byte seed under the passphrase KDF's output, with AAD
``"vexrun/keyfile/v1" 0x00 keyid 0x00 canonical-JSON(every field but wrap)``, so neither the KDF parameters
nor the public key, comment or date can be changed without the tag failing. A key
made with ``--no-passphrase`` has ``"kdf": null`` and the seed in clear as ``"seed"`` (for CI).

``<keyid>.pub`` is one line: ``vexrun-ed25519 <keyid> <base64 pub> <comment>``. In file names the ``:``
of the key id becomes ``_`` (``vx1_3f9c2a7b5d10e4c8.key``) so they are valid on every file system.

The key id is ``"vx1:" + hex(BLAKE3("vexrun keyid v1" ‖ pub)[:8])``: derived, so anyone can recompute it,
and a lookup hint only; trust comes from where a public key is found, never from its id.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._lazy import require
from .encoding import b64d, b64e, canonical_json, loads_strict
from .errors import KeyFileError, WrongPassphrase
from .kdf import check_params, default_params, derive_key
from .paths import keys_dir
from .securefile import ensure_private_dir, read_private, write_private, write_public

__all__ = [
    "PUB_PREFIX",
    "KeyPair",
    "PublicKey",
    "find_secret_key",
    "generate_key",
    "keyid_for",
    "list_public_keys",
    "load_public_keys",
    "load_secret_key",
    "needs_passphrase",
    "parse_pub_line",
]

PUB_PREFIX = "vexrun-ed25519"
_KEYID_RE = re.compile(r"^vx1:[0-9a-f]{16}$")
_AAD = b"vexrun/keyfile/v1"


def keyid_for(pub: bytes) -> str:
    import blake3

    return "vx1:" + blake3.blake3(b"vexrun keyid v1" + pub).digest()[:8].hex()


def file_stem(keyid: str) -> str:
    return keyid.replace(":", "_")


@dataclass(frozen=True)
class PublicKey:
    keyid: str
    raw: bytes
    comment: str = ""
    source: str = ""

    def line(self) -> str:
        return f"{PUB_PREFIX} {self.keyid} {b64e(self.raw)} {self.comment}".rstrip()


@dataclass(frozen=True)
class KeyPair:
    keyid: str
    public: PublicKey
    private: Any  # cryptography Ed25519PrivateKey (kept untyped so this module imports without it)

    def sign(self, data: bytes) -> bytes:
        return bytes(self.private.sign(data))


def parse_pub_line(text: str, *, source: str = "") -> PublicKey:
    """Parse ``vexrun-ed25519 <keyid> <b64> [comment]``; the key id must match the key."""
    parts = text.strip().split(" ", 3)
    if len(parts) < 3 or parts[0] != PUB_PREFIX:
        raise KeyFileError(f"{source or 'public key'}: not a '{PUB_PREFIX} KEYID BASE64 [COMMENT]' line")
    raw = b64d(parts[2], what=f"{source or 'public key'}: key", error=KeyFileError)
    if len(raw) != 32:
        raise KeyFileError(f"{source or 'public key'}: an Ed25519 public key is 32 bytes")
    if parts[1] != keyid_for(raw):
        raise KeyFileError(f"{source or 'public key'}: the key id {parts[1]!r} does not match the key")
    return PublicKey(parts[1], raw, parts[3] if len(parts) > 3 else "", source)


def load_public_keys(path: Path) -> list[PublicKey]:
    """Every key in a ``.pub`` file (one per line; blank and ``#`` lines skipped)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read the public key ({getattr(exc, 'strerror', None) or exc})") from None
    keys = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keys.append(parse_pub_line(line, source=str(path)))
    if not keys:
        raise KeyFileError(f"{path}: holds no public key")
    return keys


def list_public_keys(directory: Path) -> list[PublicKey]:
    """The keys of every ``*.pub`` file in ``directory``; an unreadable or malformed one is skipped with a
    warning naming it (logged on ``vexrun.crypto``), so one bad file does not hide the others."""
    out: list[PublicKey] = []
    if not directory.is_dir():
        return out
    for path in sorted(directory.glob("*.pub")):
        try:
            out.extend(load_public_keys(path))
        except KeyFileError as exc:
            logging.getLogger("vexrun.crypto").warning("skipped public key file %s", exc.message)
            continue
    return out


def _aad(body: dict[str, Any]) -> bytes:
    fields = {k: v for k, v in body.items() if k != "wrap"}
    return _AAD + b"\x00" + str(body["keyid"]).encode() + b"\x00" + canonical_json(fields)


def generate_key(
    *,
    passphrase: str | None,
    comment: str = "",
    directory: Path | None = None,
    kdf_alg: str | None = None,
) -> tuple[PublicKey, Path, Path]:
    """Create a new key pair; return (public key, secret key path, public key path)."""
    require()
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    directory = directory or keys_dir()
    if "\n" in comment or "\r" in comment:
        raise KeyFileError("a key comment must be one line")
    ensure_private_dir(directory)
    private = Ed25519PrivateKey.generate()
    seed = private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    pub = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    keyid = keyid_for(pub)
    from ..vmig.sidecar import utc_now

    body: dict[str, Any] = {
        "v": 1,
        "kty": "ed25519",
        "keyid": keyid,
        "pub": b64e(pub),
        "comment": comment,
        "created_at": utc_now(),
    }
    if passphrase is None:
        body["kdf"] = None
        body["seed"] = b64e(seed)
    else:
        kdf = default_params(alg=kdf_alg)
        wrapping = derive_key(passphrase.encode("utf-8"), kdf)
        nonce = os.urandom(12)
        body["kdf"] = kdf
        body["wrap"] = {
            "alg": "AES-256-GCM",
            "nonce": b64e(nonce),
            "ct": b64e(AESGCM(wrapping).encrypt(nonce, seed, _aad(body))),
        }
    key_path = directory / f"{file_stem(keyid)}.key"
    pub_path = directory / f"{file_stem(keyid)}.pub"
    write_private(key_path, canonical_json(body) + b"\n")
    public = PublicKey(keyid, pub, comment, str(pub_path))
    write_public(pub_path, (public.line() + "\n").encode("utf-8"))
    return public, key_path, pub_path


def find_secret_key(key: str | None, directory: Path | None = None) -> Path:
    """The secret key file for ``key`` (a key id, or a path); with no ``key``, the only one there is."""
    directory = directory or keys_dir()
    if key:
        if _KEYID_RE.match(key):
            path = directory / f"{file_stem(key)}.key"
            if not path.exists():
                raise KeyFileError(f"no secret key {key} in {directory}", hint="vexrun keys list")
            return path
        path = Path(key)
        if not path.exists():
            raise KeyFileError(f"{key}: no such key file (give a key id vx1:… or a path)")
        return path
    found = sorted(directory.glob("*.key")) if directory.is_dir() else []
    if not found:
        raise KeyFileError(f"no signing key in {directory}", hint="vexrun keys generate")
    if len(found) > 1:
        raise KeyFileError(f"{len(found)} signing keys in {directory}; choose one with --key KEYID")
    return found[0]


def _parse_secret(data: bytes, path: Path) -> dict[str, Any]:
    try:
        body = loads_strict(data)
    except ValueError as exc:
        raise KeyFileError(f"{path}: not a valid key file ({exc})") from None
    if not isinstance(body, dict) or body.get("v") != 1 or body.get("kty") != "ed25519":
        raise KeyFileError(f"{path}: not a vexrun v1 Ed25519 key file")
    allowed = {"v", "kty", "keyid", "pub", "comment", "created_at", "kdf"}
    allowed |= {"seed"} if body.get("kdf") is None else {"wrap"}
    if set(body) != allowed:
        raise KeyFileError(f"{path}: unexpected or missing fields in the key file")
    if not isinstance(body["keyid"], str) or not _KEYID_RE.match(body["keyid"]):
        raise KeyFileError(f"{path}: bad key id")
    return body


def load_secret_key(path: Path, passphrase: str | None) -> KeyPair:
    """Open a secret key file. ``passphrase`` is needed unless the key was made with ``--no-passphrase``.
    Raises :class:`WrongPassphrase` if the wrap does not open."""
    require()
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    body = _parse_secret(read_private(path), path)
    keyid = body["keyid"]
    pub = b64d(body["pub"], what=f"{path}: pub", error=KeyFileError)
    if body["kdf"] is None:
        seed = b64d(body["seed"], what=f"{path}: seed", error=KeyFileError)
    else:
        kdf = check_params(body["kdf"])
        wrap = body["wrap"]
        if not isinstance(wrap, dict) or set(wrap) != {"alg", "nonce", "ct"} or wrap["alg"] != "AES-256-GCM":
            raise KeyFileError(f"{path}: bad wrap")
        nonce = b64d(wrap["nonce"], what=f"{path}: wrap.nonce", error=KeyFileError)
        ct = b64d(wrap["ct"], what=f"{path}: wrap.ct", error=KeyFileError)
        if len(nonce) != 12 or len(ct) != 48:
            raise KeyFileError(f"{path}: bad wrap sizes")
        if passphrase is None:
            raise WrongPassphrase(f"{path}: the key is passphrase-protected", hint="set VEXRUN_PASSPHRASE")
        try:
            seed = AESGCM(derive_key(passphrase.encode("utf-8"), kdf)).decrypt(nonce, ct, _aad(body))
        except InvalidTag:
            raise WrongPassphrase(
                f"{path}: wrong passphrase (or the key file was altered)", hint="check VEXRUN_PASSPHRASE"
            ) from None
    if len(seed) != 32:
        raise KeyFileError(f"{path}: bad seed size")
    private = Ed25519PrivateKey.from_private_bytes(seed)
    from cryptography.hazmat.primitives import serialization

    derived = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    if derived != pub or keyid_for(derived) != keyid:
        raise KeyFileError(f"{path}: the secret key does not match its public key or key id")
    comment = body["comment"] if isinstance(body["comment"], str) else ""
    return KeyPair(keyid, PublicKey(keyid, pub, comment, str(path)), private)


def needs_passphrase(path: Path) -> bool:
    """True unless the key file was made with ``--no-passphrase``."""
    body = _parse_secret(read_private(path), path)
    return body["kdf"] is not None
