"""``vexrun verify``: check a ``.vmig.jsonl`` file against its ``vexrun-sig/1`` envelope.

Order: read and strictly parse the envelope (exit 3 on anything odd); choose candidate keys (``--pubkey``,
else ``--trust-dir``, else the trust store plus the user's own keys); verify Ed25519 over the PAE, the key
id only ordering the candidates (exit 4 when no trusted key made it, 1 when a trusted key's signature does
not verify); only then parse the statement; stream the file with BLAKE3 and compare size and digest
(exit 1). Warnings: the signed name differs from the file's name; the sidecar changed. Then, only for a file
the signature fully vouches for, what the caller asked of the statement: ``max_age`` (the signed ``signed_at``
is no older, so a replayed old export is refused) and ``expect_name`` (the signed file name); both exit 1.
"""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ._lazy import require
from .digest import digest_file
from .encoding import loads_strict
from .envelope import MAX_BYTES, PAYLOAD_TYPE, pae, parse_envelope
from .errors import BadSignatureFile, NameMismatch, Stale, Tampered, UntrustedKey, VerifyIOError
from .keys import PublicKey, list_public_keys
from .paths import keys_dir, trust_dir
from .sign import sig_path

__all__ = ["VerifyResult", "candidate_keys", "format_duration", "parse_duration", "verify_file"]

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> timedelta:
    """``90s``, ``45m``, ``36h``, ``7d``, ``2w``; a bare number is seconds. Raises ValueError otherwise."""
    match = _DURATION.match(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration like 90s, 45m, 36h, 7d or 2w")
    return timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])


def format_duration(delta: timedelta) -> str:
    """A duration the way a person reads it, in its largest unit and the next: ``8d 2h``, ``45m``, ``1m 30s``."""
    seconds = max(int(delta.total_seconds()), 0)
    units = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))
    for i, (unit, size) in enumerate(units):
        if seconds >= size or unit == "s":
            text = f"{seconds // size}{unit}"
            if i + 1 < len(units):
                rest = (seconds % size) // units[i + 1][1]
                text += f" {rest}{units[i + 1][0]}" if rest else ""
            return text
    return "0s"  # pragma: no cover - the loop always returns


def _check_expectations(
    data: Path, statement: dict[str, Any], max_age: timedelta | None, expect_name: str | None
) -> None:
    """What the caller demands of a verified statement: not older than ``max_age``, made for ``expect_name``."""
    if expect_name is not None and statement["file"]["name"] != expect_name:
        raise NameMismatch(
            f"{data}: the signature was made for a file named {statement['file']['name']!r}, not {expect_name!r}"
        )
    if max_age is None:
        return
    signed_at = statement.get("signed_at")
    try:
        when = datetime.fromisoformat(str(signed_at))
    except ValueError:
        raise Stale(
            f"{data}: the signed statement has no valid signed_at ({signed_at!r}), so its age is unknown"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    age = datetime.now(UTC) - when
    if age > max_age:
        raise Stale(
            f"{data}: signed {format_duration(age)} ago (signed_at {signed_at}), more than the "
            f"{format_duration(max_age)} allowed"
        )


@dataclass
class VerifyResult:
    file: Path
    signature: Path
    keyid: str
    key_source: str
    statement: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "valid": True,
            "exit_code": 0,
            "file": str(self.file),
            "signature": str(self.signature),
            "keyid": self.keyid,
            "key_source": self.key_source,
            "statement": self.statement,
            "warnings": self.warnings,
        }


def candidate_keys(pubkeys: list[PublicKey] | None = None, trust: Path | None = None) -> list[PublicKey]:
    if pubkeys:
        return list(pubkeys)
    if trust is not None:
        return list_public_keys(trust)
    return list_public_keys(trust_dir()) + list_public_keys(keys_dir())


def _read_sig(path: Path) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise BadSignatureFile(f"{path}: no signature file", hint="vexrun sign FILE makes one") from None
    except IsADirectoryError:
        raise BadSignatureFile(f"{path}: is a directory, not a signature") from None
    except OSError as exc:
        raise VerifyIOError(f"{path}: cannot read the signature ({exc.strerror or exc})") from None


def _check_statement(obj: Any, source: str) -> dict[str, Any]:
    def bad(msg: str) -> BadSignatureFile:
        return BadSignatureFile(f"{source}: signed statement {msg}")

    if not isinstance(obj, dict) or obj.get("v") != 1:
        raise bad("has an unsupported version")
    info = obj.get("file")
    if not isinstance(info, dict):
        raise bad("has no file section")
    if not isinstance(info.get("name"), str) or type(info.get("size")) is not int or info["size"] < 0:
        raise bad("has a bad file name or size")
    if not isinstance(info.get("blake3"), str) or not _HEX64.match(info["blake3"]):
        raise bad("has a bad BLAKE3 digest")
    if "sha256" in info and (not isinstance(info["sha256"], str) or not _HEX64.match(info["sha256"])):
        raise bad("has a bad SHA-256 digest")
    return obj


def verify_file(
    path: str | os.PathLike[str],
    *,
    sig: str | os.PathLike[str] | None = None,
    pubkeys: list[PublicKey] | None = None,
    trust: Path | None = None,
    max_age: timedelta | None = None,
    expect_name: str | None = None,
) -> VerifyResult:
    """Verify ``path``; return the signed statement or raise a :class:`~vexrun.crypto.errors.VerifyError`.
    Once the signature and the file check out: :class:`~vexrun.crypto.errors.Stale` if the signature is older
    than ``max_age``, :class:`~vexrun.crypto.errors.NameMismatch` if it names another file than ``expect_name``."""
    require()
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    data = Path(path)
    sig_file = Path(sig) if sig is not None else sig_path(data)
    envelope = parse_envelope(_read_sig(sig_file), source=str(sig_file))
    candidates = candidate_keys(pubkeys, trust)
    wanted = {keyid for keyid, _ in envelope.signatures}
    candidates.sort(key=lambda k: k.keyid not in wanted)
    message = pae(PAYLOAD_TYPE, envelope.payload)
    found: tuple[str, PublicKey] | None = None
    for keyid, signature in envelope.signatures:
        for key in candidates:
            try:
                Ed25519PublicKey.from_public_bytes(key.raw).verify(signature, message)
            except InvalidSignature:
                continue
            if key.keyid != keyid:
                raise BadSignatureFile(f"{sig_file}: the key id {keyid} does not name the key that signed")
            found = (keyid, key)
            break
        if found:
            break
    if found is None:
        if not candidates:
            raise UntrustedKey(
                f"{sig_file}: no trusted public keys to check against",
                hint="pass --pubkey KEY.pub or put the signer's .pub in the trust directory",
            )
        if wanted & {k.keyid for k in candidates}:
            raise Tampered(f"{sig_file}: the signature does not verify (the signature or its statement was altered)")
        raise UntrustedKey(f"{sig_file}: signed by {', '.join(sorted(wanted))}, which is not a trusted key")
    try:
        statement = _check_statement(loads_strict(envelope.payload), str(sig_file))
    except ValueError as exc:
        raise BadSignatureFile(f"{sig_file}: the signed statement is not valid JSON ({exc})") from None
    info = statement["file"]
    try:
        size = os.stat(data).st_size
    except FileNotFoundError:
        raise UsageError(f"{data}: no such file") from None
    except OSError as exc:
        raise VerifyIOError(f"{data}: cannot read ({exc.strerror or exc})") from None
    if size != info["size"]:
        raise Tampered(f"{data}: size {size} differs from the signed size {info['size']}")
    try:
        digest = digest_file(data, sha256="sha256" in info)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise UsageError(f"{data}: is a directory") from None
        raise VerifyIOError(f"{data}: cannot read ({exc.strerror or exc})") from None
    if digest.size != info["size"] or digest.blake3 != info["blake3"]:
        raise Tampered(f"{data}: the BLAKE3 digest differs from the signed one (the file was modified)")
    if digest.sha256 is not None and digest.sha256 != info["sha256"]:
        raise Tampered(f"{data}: the SHA-256 digest differs from the signed one")
    _check_expectations(data, statement, max_age, expect_name)
    warnings = []
    if info["name"] != data.name:
        warnings.append(f"the file was signed as {info['name']!r} but is named {data.name!r}")
    meta_hash = statement.get("meta_blake3")
    if isinstance(meta_hash, str):
        from ..vmig.sidecar import meta_path

        meta = meta_path(data)
        if meta.is_file():
            import blake3

            if blake3.blake3(meta.read_bytes()).hexdigest() != meta_hash:
                warnings.append(f"{meta.name} changed since signing (the data file itself is intact)")
    return VerifyResult(data, sig_file, found[0], found[1].source or "--pubkey", statement, warnings)
