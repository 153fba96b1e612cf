"""Build the objects of a snapshot from a file (push), and write a file back from a snapshot (pull)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..crypto import cobblestone
from ..crypto.errors import DecryptionFailed
from ..errors import UsageError
from .bucketing import FileIndex, choose_bucket_count, index_file, iter_buckets, order_bytes
from .errors import BackupDamaged
from .formats import check_object_header, decrypt_object, encrypt_object, object_path
from .masterkey import SubKeys
from .workspace import OBJECTS, Workspace

__all__ = ["Built", "Reader", "build_snapshot", "max_plaintext", "object_file_ok", "restore_snapshot"]

Progress = Callable[[int], None] | None


class Reader(Protocol):
    """Where a snapshot's files are read from: the clone's working tree (:class:`Workspace`), or a commit
    of its history (``history.TreeReader``)."""

    def read(self, rel: str, *, what: str | None = None) -> bytes: ...


def object_file_ok(path: Path, keys: SubKeys, repo_id: bytes, object_id: bytes, size_ct: int) -> bool:
    """The cheap check push makes before reusing an object already on the remote: the file is there, has
    the ciphertext size the (authenticated) manifest records, and its header carries the key commitment
    for this id (one ``stat``, a 56-byte read and one HKDF; no chunk is decrypted)."""
    try:
        if path.stat().st_size != size_ct:
            return False
        with open(path, "rb") as fh:
            header = fh.read(cobblestone.HEADER)
    except OSError:
        return False
    return check_object_header(keys, repo_id, object_id, header)


def max_plaintext(max_object: int) -> int:
    """The largest plaintext whose Cobblestone ciphertext fits in ``max_object`` bytes."""
    full = (max_object - cobblestone.HEADER - cobblestone.TAG) // (cobblestone.CHUNK + cobblestone.TAG)
    rest = max_object - cobblestone.HEADER - full * (cobblestone.CHUNK + cobblestone.TAG) - cobblestone.TAG
    return full * cobblestone.CHUNK + min(rest, cobblestone.CHUNK - 1)


@dataclass
class Built:
    index: FileIndex
    entries: list[dict[str, Any]] = field(default_factory=list)
    uploaded: int = 0
    bytes_uploaded: int = 0
    records: int = 0
    #: seconds spent in keyed BLAKE3 (object ids) and in Cobblestone encryption; plaintext bytes encrypted
    hash_seconds: float = 0.0
    encrypt_seconds: float = 0.0
    bytes_encrypted: int = 0
    #: objects listed by the previous manifest whose file was missing or failed the check, re-encrypted
    repaired: int = 0
    #: seconds spent checking the objects reused from the previous generation (:func:`object_file_ok`)
    verify_seconds: float = 0.0


def build_snapshot(
    ws: Workspace,
    keys: SubKeys,
    repo_id: bytes,
    path: Path,
    *,
    bucket_target: int,
    max_object: int,
    previous: dict[str, Any] | None,
    compression: str = "none",
    progress: Progress = None,
    check: Callable[[FileIndex], None] | None = None,
) -> Built:
    """Encrypt every bucket part (and the order) of ``path`` whose object is not in ``previous``; write the
    new objects into the clone, remove the ones no longer referenced. An object ``previous`` lists is
    reused only when :func:`object_file_ok` passes, else it is encrypted again from the file (a damaged
    remote object is repaired by the push). ``check`` sees the file's index before anything is encrypted
    (and may refuse the push)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    prev_buckets = previous.get("buckets") if previous else None
    buckets = choose_bucket_count(size, bucket_target, prev_buckets if isinstance(prev_buckets, int) else None)
    try:
        index = index_file(path, keys.k_id, buckets)
    except OSError as exc:
        raise UsageError(f"{path}: cannot read ({exc.strerror or exc})") from None
    if check is not None:
        check(index)
    known = {o["id"]: o for o in (previous or {}).get("objects", [])}
    built = Built(index)
    limit = max_plaintext(max_object)
    buffer = bytearray()  # one ciphertext buffer for every object

    def add(kind: str, bucket: int, part: int, data: bytes, records: int) -> None:
        if len(data) > limit:
            raise UsageError(
                f"{path}: a record of {len(data):,} bytes does not fit in one object of at most "
                f"{max_object:,} bytes; raise max_object (vexrun sync init --max-object-size)"
            )
        t0 = time.perf_counter()
        oid = keys.object_id(data)
        t1 = time.perf_counter()
        built.hash_seconds += t1 - t0
        hexid = oid.hex()
        old = known.get(hexid)
        reuse = False
        if old is not None and old.get("compression") == compression:
            reuse = object_file_ok(ws.path(object_path(hexid)), keys, repo_id, oid, int(old["size_ct"]))
            built.repaired += not reuse
            t2 = time.perf_counter()
            built.verify_seconds += t2 - t1
            t1 = t2
        if reuse:
            assert old is not None
            size_ct = int(old["size_ct"])
        else:
            ct = encrypt_object(keys, repo_id, oid, data, compression=compression, out=buffer)
            built.encrypt_seconds += time.perf_counter() - t1
            built.bytes_encrypted += len(data)
            ws.write(object_path(hexid), ct)
            size_ct = len(ct)
            built.uploaded += 1
            built.bytes_uploaded += size_ct
        built.entries.append(
            {
                "id": hexid,
                "kind": kind,
                "bucket": bucket,
                "part": part,
                "records": records,
                "size_pt": len(data),
                "size_ct": size_ct,
                "compression": compression,
            }
        )
        if progress:
            progress(len(data) if kind == "bucket" else 0)

    for bp in iter_buckets(index, limit):
        add("bucket", bp.bucket, bp.part, bp.data, bp.records)
        built.records += bp.records
    order = order_bytes(index)
    step = max(4, limit - limit % 4)
    for part, start in enumerate(range(0, max(len(order), 1), step)):
        add("order", 0, part, order[start : start + step], 0)
    keep = {e["id"] for e in built.entries}
    objects_dir = ws.path(OBJECTS)
    if objects_dir.is_dir():
        for f in objects_dir.glob("*/*"):
            if f.name not in keep:
                f.unlink()
    return built


def _object(ws: Reader, keys: SubKeys, repo_id: bytes, entry: dict[str, Any]) -> bytes | bytearray:
    rel = object_path(entry["id"])
    where = f"object {entry['id'][:16]}… ({entry['kind']} {entry['bucket']}.{entry['part']})"
    data = ws.read(rel, what=f"{where} at {rel}: missing")
    try:
        return decrypt_object(keys, repo_id, bytes.fromhex(entry["id"]), data, compression=entry["compression"])
    except DecryptionFailed as exc:
        raise BackupDamaged(f"{where} is damaged: {exc.message}") from None


def restore_snapshot(
    ws: Reader, keys: SubKeys, repo_id: bytes, manifest: dict[str, Any], out: Path, progress: Progress = None
) -> int:
    """Write the snapshot's file to ``out`` atomically (temporary files, then one rename once every object
    and the whole-file BLAKE3 have checked out). Return its size."""
    import blake3

    info = manifest["file"]
    objects = manifest["objects"]
    buckets = sorted((o for o in objects if o["kind"] == "bucket"), key=lambda o: (o["bucket"], o["part"]))
    orders = sorted((o for o in objects if o["kind"] == "order"), key=lambda o: o["part"])
    out.parent.mkdir(parents=True, exist_ok=True)
    sorted_tmp = out.with_name(f".{out.name}.{os.getpid()}.sorted")
    final_tmp = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        order = np.frombuffer(b"".join(_object(ws, keys, repo_id, o) for o in orders), dtype="<u4")
        starts: list[int] = []
        pos = 0
        with open(sorted_tmp, "wb") as fh:
            for entry in buckets:
                data = _object(ws, keys, repo_id, entry)
                find = data.find
                i = 0
                while i < len(data):
                    starts.append(pos + i)
                    nl = find(b"\n", i)
                    i = len(data) if nl < 0 else nl + 1
                fh.write(data)
                pos += len(data)
                if progress:
                    progress(len(data))
        starts.append(pos)
        if len(starts) - 1 != len(order):
            raise BackupDamaged(f"the backup's order lists {len(order)} lines but its objects hold {len(starts) - 1}")
        hasher = blake3.blake3(max_threads=blake3.blake3.AUTO)
        size = 0
        fd = os.open(sorted_tmp, os.O_RDONLY)
        try:
            with open(final_tmp, "wb", buffering=8 << 20) as fh:
                pending: list[bytes] = []
                pending_size = 0
                last = len(order) - 1
                for i, k in enumerate(order.tolist()):
                    line = os.pread(fd, starts[k + 1] - starts[k], starts[k])
                    if i == last and not info.get("final_newline", True) and line.endswith(b"\n"):
                        line = line[:-1]
                    pending.append(line)
                    pending_size += len(line)
                    if pending_size >= 4 << 20:
                        block = b"".join(pending)
                        hasher.update(block)
                        fh.write(block)
                        size += len(block)
                        pending, pending_size = [], 0
                block = b"".join(pending)
                hasher.update(block)
                fh.write(block)
                size += len(block)
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            os.close(fd)
        if size != info["size"] or hasher.hexdigest() != info["blake3"]:
            raise BackupDamaged("the restored file does not match the backup's checksum; nothing was written")
        os.replace(final_tmp, out)
        return size
    finally:
        sorted_tmp.unlink(missing_ok=True)
        final_tmp.unlink(missing_ok=True)
