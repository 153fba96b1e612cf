"""The sidecar meta file written beside every ``.vmig.jsonl`` file.

vexrun writes ``<file>.meta.json`` (``memories.vmig.jsonl.meta.json``), the same naming as the detached
``<file>.sig``. It also reads the name Vex writes (``memories.vmig.meta.json``). The checksum is BLAKE3
over the data file's bytes as they are on disk (compressed bytes for ``.gz``), so it can be checked
without parsing anything.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import blake3
import orjson

from .._version import __version__
from .model import VEX_VERSION

__all__ = ["file_checksum", "meta_path", "read_meta", "utc_now", "vex_meta_path", "write_meta"]

#: A sidecar is a few hundred bytes; a larger one is reported, never loaded.
_MAX_META_BYTES = 16 * 1024 * 1024


def meta_path(data: Path) -> Path:
    """Where vexrun writes the sidecar of ``data``."""
    return data.with_name(data.name + ".meta.json")


def vex_meta_path(data: Path) -> Path | None:
    """Where Vex writes it (``x.vmig.jsonl`` → ``x.vmig.meta.json``)."""
    if data.name.endswith(".vmig.jsonl"):
        return data.with_name(data.name[: -len(".jsonl")] + ".meta.json")
    return None


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def file_checksum(path: Path) -> str:
    """``blake3:<hex>`` of the file's bytes, streamed in 4 MiB blocks (flat memory; the hash releases the
    GIL, so this can run in a thread beside a parse)."""
    h = blake3.blake3(max_threads=1)
    buf = bytearray(4 * 1024 * 1024)
    view = memoryview(buf)
    with open(path, "rb", buffering=0) as fh:
        while n := fh.readinto(buf):
            h.update(view[:n])
    return "blake3:" + h.hexdigest()


def read_meta(data: Path) -> tuple[Path, dict[str, Any] | None, str | None] | None:
    """The sidecar of ``data`` if one exists: (path, parsed object or None, error message or None)."""
    candidates = [meta_path(data)]
    vex = vex_meta_path(data)
    if vex is not None:
        candidates.append(vex)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            with open(path, "rb") as fh:
                blob = fh.read(_MAX_META_BYTES + 1)
            if len(blob) > _MAX_META_BYTES:
                return path, None, f"the sidecar is larger than {_MAX_META_BYTES // 1024 // 1024} MiB"
            obj = orjson.loads(blob)
        except OSError as exc:
            return path, None, f"cannot read the sidecar: {exc.strerror or exc}"
        except orjson.JSONDecodeError as exc:
            return path, None, f"the sidecar is not valid JSON ({exc})"
        if not isinstance(obj, dict):
            return path, None, "the sidecar is not a JSON object"
        return path, obj, None
    return None


def write_meta(data: Path, meta: dict[str, Any]) -> Path:
    """Write the sidecar atomically (temp file, fsync, rename)."""
    path = meta_path(data)
    body = {
        "exported_at": utc_now(),
        "vex_version": VEX_VERSION,
        "generator": f"vexrun {__version__}",
        **meta,
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(orjson.dumps(body, option=orjson.OPT_INDENT_2) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return path
