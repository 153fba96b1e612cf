"""The ``vexrun-sig/1`` envelope: DSSE v1.0.2 with one Ed25519 signature over ``PAE(type, payload)``.

::

    {"payloadType": "application/vnd.vexrun.signature.v1+json",
     "payload": "<base64 of the statement bytes>",
     "signatures": [{"keyid": "vx1:3f9c2a7b5d10e4c8", "sig": "<base64, 64 bytes>"}]}

DSSE signs ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, so the payload type is inside the
signed bytes (the type-confusion fix of cosign's CVE-2022-35929). The reader is strict: at most 64 KiB,
UTF-8, no duplicate keys, exactly these fields, canonical base64, a known payload type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .encoding import b64d, b64e, loads_strict
from .errors import BadSignatureFile

__all__ = ["MAX_BYTES", "PAYLOAD_TYPE", "Envelope", "pae", "parse_envelope", "serialize_envelope"]

PAYLOAD_TYPE = "application/vnd.vexrun.signature.v1+json"
MAX_BYTES = 64 * 1024
_KEYID_RE = re.compile(r"^vx1:[0-9a-f]{16}$")


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding."""
    t = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(t), t, len(payload), payload)


@dataclass(frozen=True)
class Envelope:
    payload: bytes
    signatures: tuple[tuple[str, bytes], ...]  # (keyid, 64-byte signature)


def serialize_envelope(payload: bytes, keyid: str, signature: bytes) -> bytes:
    body = {
        "payloadType": PAYLOAD_TYPE,
        "payload": b64e(payload),
        "signatures": [{"keyid": keyid, "sig": b64e(signature)}],
    }
    # No trailing newline: any truncation of the file then breaks the JSON and is reported as such.
    return json.dumps(body, separators=(", ", ": ")).encode("ascii")


def parse_envelope(data: bytes, *, source: str = "signature") -> Envelope:
    """Parse and check the envelope structure; raise :class:`BadSignatureFile` (exit 3) on anything odd."""

    def bad(msg: str) -> BadSignatureFile:
        return BadSignatureFile(f"{source}: {msg}")

    if len(data) > MAX_BYTES:
        raise bad(f"larger than {MAX_BYTES // 1024} KiB; not a vexrun signature")
    try:
        obj = loads_strict(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad(f"not a valid signature envelope ({exc})") from None
    if not isinstance(obj, dict) or set(obj) != {"payloadType", "payload", "signatures"}:
        raise bad("not a DSSE envelope (expected payloadType, payload, signatures)")
    if obj["payloadType"] != PAYLOAD_TYPE:
        raise bad(f"unsupported payload type {str(obj['payloadType'])[:80]!r} (expected {PAYLOAD_TYPE})")
    payload = b64d(obj["payload"], what=f"{source}: payload", error=BadSignatureFile)
    sigs = obj["signatures"]
    if not isinstance(sigs, list) or not 1 <= len(sigs) <= 8:
        raise bad("signatures must be a list of 1 to 8 entries")
    out = []
    for entry in sigs:
        if not isinstance(entry, dict) or set(entry) != {"keyid", "sig"}:
            raise bad("each signature has exactly 'keyid' and 'sig'")
        keyid = entry["keyid"]
        if not isinstance(keyid, str) or not _KEYID_RE.match(keyid):
            raise bad("malformed key id")
        sig = b64d(entry["sig"], what=f"{source}: sig", error=BadSignatureFile)
        if len(sig) != 64:
            raise bad("an Ed25519 signature is 64 bytes")
        out.append((keyid, sig))
    return Envelope(payload, tuple(out))
