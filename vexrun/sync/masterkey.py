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

The key files come from the forge, so :func:`load_keyfiles` trusts none of them: a file that is not a
regular file, is over 64 KiB, does not parse, is named after another key id, or asks for more KDF memory or
work than :mod:`vexrun.crypto.kdf` allows is skipped with a warning naming it, and the others are still
used; at most :data:`MAX_KEY_FILES` are read. :func:`unlock_master` tries the recovery code on the recovery
keys, then the passphrase on the passphrase keys, cheapest KDF first.
"""

from __future__ import annotations

import base64
import hmac
import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto.encoding import b64d, b64e, canonical_json, loads_strict
from ..crypto.errors import KeyFileError, WrongPassphrase
from ..crypto.kdf import check_params, default_params, derive_key, estimated_seconds, hkdf
from ..crypto.securefile import read_at_most
from ..redact import register_secret

__all__ = [
    "MAX_KEY_FILES",
    "MAX_KEY_FILE_BYTES",
    "SubKeys",
    "format_recovery_code",
    "load_keyfiles",
    "make_keyfile",
    "new_recovery_code",
    "parse_keyfile",
    "parse_recovery_code",
    "unlock_master",
    "unwrap_keyfile",
]

_KINDS = ("passphrase", "recovery")
_RECOVERY_KDF = {"alg": "hkdf-sha512"}
#: At most this many key files are read (in name order) and tried; a backup needs a handful.
MAX_KEY_FILES = 32
#: A key file is under 1 KiB; a larger one is not read.
MAX_KEY_FILE_BYTES = 64 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
log = logging.getLogger("vexrun.sync")


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


# -- reading and trying every key file of a backup --------------------------------------------------


def _read_bounded(path: Path) -> bytes:
    """A key file's bytes: a regular file (never through a symlink a forge committed), at most 64 KiB."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        what = "a symlink" if path.is_symlink() else (exc.strerror or str(exc))
        raise KeyFileError(f"cannot read it ({what})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise KeyFileError("not a regular file")
        data = read_at_most(fd, MAX_KEY_FILE_BYTES)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise KeyFileError(f"larger than {MAX_KEY_FILE_BYTES} bytes")
        return data
    finally:
        os.close(fd)


def load_keyfiles(directory: Path, *, label: str = "vexrun/keys") -> tuple[list[dict[str, Any]], list[str]]:
    """(usable key files, warnings) of ``directory``. ``label`` names the directory in the warnings, which
    are also logged on ``vexrun.sync``. Never raises for a bad file: one bad key file must not lock out
    the others."""
    if directory.is_symlink():
        raise KeyFileError(f"{label} is a symlink; refusing to read key files through it")
    try:
        names = sorted(p.name for p in directory.iterdir() if p.name.endswith(".json"))
    except FileNotFoundError:
        return [], []
    except OSError as exc:
        raise KeyFileError(f"{label}: cannot list the key files ({exc.strerror or exc})") from None
    warnings: list[str] = []
    if len(names) > MAX_KEY_FILES:
        ignored = names[MAX_KEY_FILES:]
        shown = ", ".join(ignored[:3]) + (", …" if len(ignored) > 3 else "")
        warnings.append(
            f"{label} holds {len(names)} key files; only the first {MAX_KEY_FILES} (by name) are read, "
            f"{shown} are ignored"
        )
        names = names[:MAX_KEY_FILES]
    bodies: list[dict[str, Any]] = []
    for name in names:
        source = f"{label}/{name}"
        try:
            body = parse_keyfile(_read_bounded(directory / name), source=source)
            if name != f"{body['key_id']}.json":
                raise KeyFileError(f"{source}: the file name does not match its key id {body['key_id']}")
        except KeyFileError as exc:
            text = exc.message if exc.message.startswith(source) else f"{source}: {exc.message}"
            warnings.append(f"skipped key file {text}")
            continue
        bodies.append(body)
    for w in warnings:
        log.warning(w)
    return bodies, warnings


def _cost(body: dict[str, Any]) -> float:
    return 0.0 if body["kind"] == "recovery" else estimated_seconds(body["kdf"])


def unlock_master(
    bodies: list[dict[str, Any]],
    repo_id: bytes,
    *,
    passphrase: str | None = None,
    recovery: str | bytes | None = None,
    skipped: int = 0,
) -> bytes:
    """MS from the first key file that opens: the recovery code on the recovery keys, then the passphrase
    on the passphrase keys (cheapest KDF first). A key file whose KDF cannot run here (out of memory) is
    skipped with a warning. :class:`WrongPassphrase` when none opens; ``skipped`` (key files already left
    out as unusable) is mentioned then, since the right one may be among them."""
    code: bytes | None = None
    bad_code: WrongPassphrase | None = None
    if recovery:
        try:
            code = recovery if isinstance(recovery, bytes) else parse_recovery_code(recovery)
        except WrongPassphrase as exc:  # mistyped: still try the passphrase, if one was given
            bad_code = exc
    if bad_code is not None and not passphrase:
        raise bad_code
    tried = 0
    for kind, secret in (("recovery", code), ("passphrase", passphrase)):
        if not secret:
            continue
        for body in sorted((b for b in bodies if b["kind"] == kind), key=_cost):
            tried += 1
            try:
                return unwrap_keyfile(body, repo_id, secret)
            except WrongPassphrase:
                continue
            except MemoryError:
                skipped += 1
                log.warning("skipped key file %s.json: its KDF needs more memory than is available", body["key_id"])
    what = "recovery code" if recovery and not passphrase else "passphrase or recovery code"
    note = f" ({skipped} unusable key file(s) skipped; see the warnings)" if skipped else ""
    if not tried:
        raise WrongPassphrase(f"the backup has no usable key file for a {what}{note}")
    raise WrongPassphrase(f"wrong {what}: none of the backup's key files opens with it{note}")
