"""The encrypted files of a backup repository: objects, the manifest, the plaintext status.

* **Object** ``vexrun/objects/<ab>/<object_id hex>``: Cobblestone-256 under ``K_obj`` with context
  ``"vexrun/v1/object" 0x00 ‖ repo_id (16 B) ‖ object_id (32 B)``; ``object_id = BLAKE3-keyed(K_id,
  plaintext)``. A ciphertext moved to another id or repository fails the commitment before any chunk.
* **Manifest** ``vexrun/manifest.vxm``: ``generation (8 B, big-endian) ‖ Cobblestone-256`` under ``K_man``
  with context ``"vexrun/v1/manifest" 0x00 ‖ repo_id ‖ generation (8 B)``; the plaintext is JSON and
  its inner ``generation`` must equal the prefix.
* **Settings** that steer the client (``bucket_target``, ``max_object``, ``kdf_default``) are in the
  manifest's ``settings`` (authenticated); ``config.json`` repeats them in plaintext for older clients only.
  A manifest without them (written before vexrun 0.4) falls back to ``config.json`` within bounds.
* **Status** ``vexrun/status.json``: ``{"generation", "created_at", "records", "mac"}`` where ``mac`` is
  HMAC-SHA-256 under ``K_status`` of the canonical JSON of the other fields plus ``repo_id``; readable
  without the passphrase, verifiable with it.
"""

from __future__ import annotations

import re
import zlib
from typing import Any

from ..crypto import cobblestone
from ..crypto.encoding import canonical_json, loads_strict
from ..crypto.errors import DecryptionFailed
from .errors import BackupDamaged
from .masterkey import SubKeys


def b3_hex(data: bytes) -> str:
    """The BLAKE3 hex digest of ``data`` (how a machine remembers the manifest it last saw)."""
    import blake3

    return str(blake3.blake3(data).hexdigest())


__all__ = [
    "b3_hex",
    "MANIFEST_VERSION",
    "SETTINGS",
    "check_manifest",
    "check_object_header",
    "decrypt_manifest",
    "decrypt_object",
    "encrypt_manifest",
    "encrypt_object",
    "make_status",
    "manifest_generation",
    "object_path",
    "parse_status",
    "safe_file_name",
]

MANIFEST_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: the settings the manifest authenticates, and the values each may take
SETTINGS = ("bucket_target", "max_object", "kdf_default")
_KDFS = ("argon2id", "scrypt")
_DRIVE = re.compile(r"^[A-Za-z]:")


def object_path(object_id: str) -> str:
    """The object's path inside the repository."""
    return f"vexrun/objects/{object_id[:2]}/{object_id}"


def _object_context(repo_id: bytes, object_id: bytes) -> bytes:
    return b"vexrun/v1/object\x00" + repo_id + object_id


def encrypt_object(
    keys: SubKeys,
    repo_id: bytes,
    object_id: bytes,
    plaintext: bytes | bytearray | memoryview,
    *,
    compression: str = "none",
    salt: bytes | None = None,
    out: bytearray | None = None,
) -> bytearray | memoryview:
    """The object's ciphertext (a view of ``out`` when a reusable buffer is given)."""
    if compression == "zlib":
        plaintext = zlib.compress(plaintext, 1)
    ctx = _object_context(repo_id, object_id)
    if out is None:
        return cobblestone.encrypt(keys.k_obj, ctx, plaintext, salt=salt)
    size = cobblestone.ciphertext_size(len(memoryview(plaintext).cast("B")))
    if len(out) < size:
        out.extend(bytes(size - len(out)))
    n = cobblestone.encrypt_into(keys.k_obj, ctx, plaintext, out, salt=salt)
    return memoryview(out)[:n]


def check_object_header(keys: SubKeys, repo_id: bytes, object_id: bytes, header: bytes) -> bool:
    """Whether ``header`` (the first ``cobblestone.HEADER`` bytes of an object file) carries the key
    commitment of ``object_id`` under this repository's object key: one HKDF, no chunk decrypted. It proves
    a key holder wrote an object for this id here (not that its chunks are intact: that takes a decrypt)."""
    import hmac

    if len(header) < cobblestone.HEADER:
        return False
    salt = bytes(header[: cobblestone.SALT])
    _, _, commitment = cobblestone.derive(keys.k_obj, salt, _object_context(repo_id, object_id))
    return hmac.compare_digest(commitment, bytes(header[cobblestone.SALT : cobblestone.HEADER]))


def decrypt_object(
    keys: SubKeys,
    repo_id: bytes,
    object_id: bytes,
    ciphertext: bytes | bytearray | memoryview,
    *,
    compression: str = "none",
) -> bytes | bytearray:
    """The plaintext; checks it hashes to ``object_id`` (so a valid object under a stale key cannot stand in)."""
    plaintext: bytes | bytearray = cobblestone.decrypt(keys.k_obj, _object_context(repo_id, object_id), ciphertext)
    if compression == "zlib":
        try:
            plaintext = zlib.decompress(plaintext)
        except zlib.error:
            raise DecryptionFailed("object does not decompress") from None
    if keys.object_id(plaintext) != object_id:
        raise DecryptionFailed("object content does not match its id")
    return plaintext


def _manifest_context(repo_id: bytes, generation: int) -> bytes:
    return b"vexrun/v1/manifest\x00" + repo_id + generation.to_bytes(8, "big")


def encrypt_manifest(keys: SubKeys, repo_id: bytes, manifest: dict[str, Any], *, salt: bytes | None = None) -> bytes:
    generation = int(manifest["generation"])
    body = canonical_json(manifest)
    ct = cobblestone.encrypt(keys.k_man, _manifest_context(repo_id, generation), body, salt=salt)
    return generation.to_bytes(8, "big") + bytes(ct)


def manifest_generation(data: bytes) -> int:
    """The generation in the plaintext prefix (unauthenticated until the manifest is decrypted)."""
    if len(data) < 8 + cobblestone.HEADER + cobblestone.TAG:
        raise BackupDamaged("vexrun/manifest.vxm is truncated")
    return int.from_bytes(data[:8], "big")


def decrypt_manifest(keys: SubKeys, repo_id: bytes, data: bytes) -> dict[str, Any]:
    generation = manifest_generation(data)
    try:
        body = cobblestone.decrypt(keys.k_man, _manifest_context(repo_id, generation), data[8:])
    except DecryptionFailed as exc:
        raise BackupDamaged(f"vexrun/manifest.vxm does not decrypt: {exc.message}") from None
    try:
        manifest = loads_strict(bytes(body))
    except ValueError as exc:
        raise BackupDamaged(f"vexrun/manifest.vxm holds invalid JSON ({exc})") from None
    check_manifest(manifest, repo_id, generation, keys.epoch)
    result: dict[str, Any] = manifest
    return result


def _int(value: Any) -> bool:
    return type(value) is int and value >= 0


def check_manifest(m: Any, repo_id: bytes, generation: int, epoch: int) -> None:
    def bad(msg: str) -> BackupDamaged:
        return BackupDamaged(f"vexrun/manifest.vxm: {msg}")

    if not isinstance(m, dict) or m.get("v") != MANIFEST_VERSION:
        raise bad("unsupported manifest version")
    if m.get("repo_id") != repo_id.hex() or m.get("generation") != generation or m.get("epoch") != epoch:
        raise bad("repo id, generation or epoch does not match")
    objects = m.get("objects")
    if not isinstance(objects, list):
        raise bad("no object list")
    for o in objects:
        if not isinstance(o, dict) or not isinstance(o.get("id"), str) or not _HEX64.match(o["id"]):
            raise bad("bad object entry")
        if o.get("kind") not in ("bucket", "order") or not all(
            _int(o.get(k)) for k in ("bucket", "part", "records", "size_pt", "size_ct")
        ):
            raise bad("bad object entry")
        if o.get("compression") not in ("none", "zlib"):
            raise bad("unknown compression")
    for key in ("sidecar", "signature"):
        if m.get(key) is not None and not isinstance(m[key], str):
            raise bad(f"bad {key}")
    info = m.get("file")
    if info is not None and (
        not isinstance(info, dict)
        or not isinstance(info.get("name"), str)
        or not _int(info.get("size"))
        or not isinstance(info.get("blake3"), str)
    ):
        raise bad("bad file entry")
    settings = m.get("settings")
    if settings is not None:
        if not isinstance(settings, dict) or set(settings) != set(SETTINGS):
            raise bad("bad settings")
        target, largest = settings["bucket_target"], settings["max_object"]
        if not (_int(target) and _int(largest) and 1024 <= target <= largest and largest >= 4096):
            raise bad("bad settings: bucket_target / max_object")
        if settings["kdf_default"] not in _KDFS:
            raise bad("bad settings: kdf_default")
    ancestors = m.get("ancestors", [])
    if not isinstance(ancestors, list) or not all(
        isinstance(a, list) and len(a) == 2 and _int(a[0]) and isinstance(a[1], str) for a in ancestors
    ):
        raise bad("bad ancestors")


def safe_file_name(name: object) -> str:
    """The manifest's ``file.name`` if it is a plain file name; a name that could write elsewhere (a path
    separator, ``..``, NUL, an absolute or drive path) is refused: the manifest is written by any key holder."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or any(ch in name for ch in ("/", "\\", "\x00"))
        or _DRIVE.match(name)
        or any(ord(ch) < 32 for ch in name)
    ):
        raise BackupDamaged(
            f"the backup names its file {name!r}, which is not a plain file name; refusing to write it",
            hint="give --out FILE to choose where to restore it",
        )
    return name


def status_body(repo_id: bytes, generation: int, created_at: str, records: int) -> bytes:
    return canonical_json(
        {"created_at": created_at, "generation": generation, "records": records, "repo_id": repo_id.hex()}
    )


def make_status(keys: SubKeys, repo_id: bytes, generation: int, created_at: str, records: int) -> bytes:
    mac = keys.status_mac(status_body(repo_id, generation, created_at, records))
    body = {"generation": generation, "created_at": created_at, "records": records, "mac": mac}
    return canonical_json(body) + b"\n"


def parse_status(data: bytes, repo_id: bytes, keys: SubKeys | None) -> tuple[dict[str, Any], bool | None]:
    """(status, MAC verified: True/False, or None without keys)."""
    try:
        st = loads_strict(data)
    except ValueError:
        raise BackupDamaged("vexrun/status.json is not valid JSON") from None
    if not isinstance(st, dict) or not _int(st.get("generation")) or not _int(st.get("records")):
        raise BackupDamaged("vexrun/status.json is malformed")
    if keys is None:
        return st, None
    import hmac

    want = keys.status_mac(status_body(repo_id, st["generation"], str(st.get("created_at")), st["records"]))
    return st, hmac.compare_digest(want, str(st.get("mac", "")))
