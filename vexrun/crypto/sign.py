"""``vexrun sign``: the detached ``<file>.sig`` (``vexrun-sig/1``) of a ``.vmig.jsonl`` export.

The signed statement::

    {"v": 1,
     "file": {"name": "export.vmig.jsonl", "size": 340123456, "blake3": "<64 hex>", "sha256": "<optional>"},
     "records": 10000, "dims": [1536], "models": ["…"], "namespaces": ["default"],
     "created_at": "…", "signed_at": "…", "vexrun_version": "0.3.0",
     "meta_blake3": "<hex of the sidecar file, if any>", "comment": "…"}

The digest is over the raw file bytes, streamed (BLAKE3 on every core, 8 MiB reads, flat memory). The
record count, dims, models and namespaces come from the sidecar ``<file>.meta.json`` when its checksum
matches the file; otherwise records is the number of lines and the others are empty.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..errors import UsageError
from ..redact import register_secret
from .digest import count_lines, digest_file
from .envelope import PAYLOAD_TYPE, pae, serialize_envelope
from .keys import find_secret_key, load_secret_key
from .settings import SigningSettings

__all__ = ["SignResult", "build_statement", "sig_path", "sign_file", "sign_file_detailed"]


def sig_path(data: Path) -> Path:
    return data.with_name(data.name + ".sig")


@dataclass
class SignResult:
    path: Path
    keyid: str
    statement: dict[str, Any]
    warnings: list[str] = field(default_factory=list)


def _sidecar(data: Path, blake3_hex: str) -> tuple[dict[str, Any] | None, str | None, list[str]]:
    """(matching sidecar object or None, BLAKE3 of the sidecar file or None, warnings)."""
    import blake3

    from ..vmig.sidecar import read_meta

    found = read_meta(data)
    if found is None:
        return None, None, []
    path, obj, err = found
    if obj is None:
        return None, None, [f"{path.name}: {err}; record details not signed"]
    meta_hash = blake3.blake3(path.read_bytes()).hexdigest()
    if obj.get("checksum") != f"blake3:{blake3_hex}":
        return None, meta_hash, [f"{path.name}: its checksum does not match {data.name}; records counted as lines"]
    return obj, meta_hash, []


def _strings(value: Any) -> list[Any]:
    return [v for v in value if isinstance(v, (str, int))] if isinstance(value, list) else []


def build_statement(
    data: Path, *, sha256: bool = False, comment: str | None = None
) -> tuple[dict[str, Any], list[str]]:
    """The statement for ``data`` and any warnings."""
    from ..vmig.sidecar import utc_now

    digest = digest_file(data, sha256=sha256)
    meta, meta_hash, warnings = _sidecar(data, digest.blake3)
    file_info: dict[str, Any] = {"name": data.name, "size": digest.size, "blake3": digest.blake3}
    if digest.sha256:
        file_info["sha256"] = digest.sha256
    if meta is not None and isinstance(meta.get("record_count"), int):
        records = meta["record_count"]
        created = meta.get("exported_at") if isinstance(meta.get("exported_at"), str) else None
    else:
        records = count_lines(data)
        created = None
    if created is None:
        from datetime import UTC, datetime

        mtime = datetime.fromtimestamp(os.stat(data).st_mtime, UTC)
        created = mtime.isoformat(timespec="seconds").replace("+00:00", "Z")
    statement: dict[str, Any] = {
        "v": 1,
        "file": file_info,
        "records": records,
        "dims": _strings(meta.get("dims")) if meta else [],
        "models": _strings(meta.get("models")) if meta else [],
        "namespaces": _strings(meta.get("namespaces")) if meta else [],
        "created_at": created,
        "signed_at": utc_now(),
        "vexrun_version": __version__,
    }
    if meta_hash is not None:
        statement["meta_blake3"] = meta_hash
    if comment:
        statement["comment"] = comment
    return statement, warnings


def sign_file_detailed(
    path: str | os.PathLike[str],
    *,
    key: str | None = None,
    passphrase: str | None = None,
    comment: str | None = None,
    sha256: bool = False,
    output: str | os.PathLike[str] | None = None,
    keys_directory: Path | None = None,
) -> SignResult:
    """Sign ``path`` and write the envelope; return where it went, the key id and the statement."""
    data = Path(path)
    if not data.is_file():
        raise UsageError(f"{data}: no such file" if not data.exists() else f"{data}: not a regular file")
    keypair = load_secret_key(find_secret_key(key, keys_directory), passphrase)
    try:
        statement, warnings = build_statement(data, sha256=sha256, comment=comment)
    except OSError as exc:
        raise UsageError(f"{data}: cannot read ({exc.strerror or exc})") from None
    payload = json.dumps(statement, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    signature = keypair.sign(pae(PAYLOAD_TYPE, payload))
    out = Path(output) if output is not None else sig_path(data)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(serialize_envelope(payload, keypair.keyid, signature))
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(f"{out}: cannot write the signature ({exc.strerror or exc})") from None
    return SignResult(out, keypair.keyid, statement, warnings)


def sign_file(path: str | os.PathLike[str], settings: SigningSettings | None = None) -> Path:
    """Sign ``path`` as a recipe's ``signing:`` section says; write ``<file>.sig`` and return its path.

    The passphrase is ``settings.passphrase``, else ``$VEXRUN_PASSPHRASE`` (not needed for a key made
    with ``--no-passphrase``)."""
    settings = settings or SigningSettings()
    passphrase = settings.passphrase.get_secret_value() if settings.passphrase is not None else None
    if passphrase is None:
        passphrase = os.environ.get("VEXRUN_PASSPHRASE") or None
    register_secret(passphrase)
    result = sign_file_detailed(
        path,
        key=settings.key,
        passphrase=passphrase,
        comment=settings.comment,
        sha256=settings.sha256,
        output=settings.output,
    )
    return result.path
