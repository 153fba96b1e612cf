"""``vexrun sync check``: is the backup's current generation whole? restic's ``check``, for this format.

* **Structure** (always; reads no object's content): the manifest decrypts and is fresh (the usual rules);
  ``config.json`` agrees with the settings the manifest authenticates; ``status.json``'s MAC and figures agree
  with the manifest; the object list is consistent (no duplicate part, parts numbered from 0, records adding
  up to the manifest's count, an order of 4 bytes per line); every listed object is in the tree with the
  ciphertext size the manifest records and a header that carries its key commitment (which binds the file to
  its id and this repository: one HKDF per object, 56 bytes read).
* **Data** (``read_data``): every object is decrypted and authenticated chunk by chunk, its plaintext hashes
  to its id and has the recorded size and number of lines, and the order is a permutation of the lines. A
  single flipped byte anywhere in any object fails here.

Object files no object lists are reported as warnings (a push removes them).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..crypto.errors import DecryptionFailed
from .engine import open_session
from .errors import BackupDamaged
from .formats import decrypt_object, object_path, parse_status
from .snapshot import object_file_ok
from .workspace import OBJECTS, STATUS, Secrets

__all__ = ["CheckResult", "check"]


@dataclass
class CheckResult:
    generation: int
    objects: int
    read_data: bool
    #: ciphertext bytes read and decrypted (with ``read_data``)
    bytes_read: int = 0
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: seconds in fetch + unlock + manifest ("open") and in checking the objects ("objects")
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def _where(o: dict[str, Any]) -> str:
    return f"object {o['id'][:16]}… ({o['kind']} {o['bucket']}.{o['part']}) at {object_path(o['id'])}"


def _structure(m: dict[str, Any], problems: list[str]) -> None:
    objects = m["objects"]
    keys = Counter((o["kind"], o["bucket"], o["part"]) for o in objects)
    for (kind, bucket, part), n in sorted(keys.items()):
        if n > 1:
            problems.append(f"manifest: {kind} {bucket}.{part} is listed {n} times")
    parts: dict[tuple[str, int], list[int]] = {}
    for o in objects:
        parts.setdefault((o["kind"], o["bucket"]), []).append(o["part"])
    for (kind, bucket), numbers in sorted(parts.items()):
        if sorted(set(numbers)) != list(range(len(set(numbers)))):
            problems.append(f"manifest: the parts of {kind} {bucket} are not numbered 0..n-1")
    buckets = m.get("buckets") or 0
    if any(o["kind"] == "bucket" and not 0 <= o["bucket"] < max(buckets, 1) for o in objects):
        problems.append(f"manifest: an object names a bucket outside 0..{buckets - 1}")
    info = m.get("file")
    records = sum(o["records"] for o in objects if o["kind"] == "bucket")
    if records != m.get("records", 0):
        problems.append(f"manifest: its objects hold {records:,} records, it says {m.get('records', 0):,}")
    if info is not None and isinstance(info.get("lines"), int):
        order = sum(o["size_pt"] for o in objects if o["kind"] == "order")
        if order != 4 * info["lines"]:
            problems.append(f"manifest: the order covers {order // 4:,} lines, the file has {info['lines']:,}")


def check(root: Path, *, token: str | None, secrets: Secrets, read_data: bool = False) -> CheckResult:
    """Check the current generation (see the module docstring); nothing is written or pushed, and what
    this machine has seen is left as it was."""
    t0 = time.perf_counter()
    s = open_session(root, token=token, secrets=secrets)
    m = s.manifest
    res = CheckResult(int(m["generation"]), len(m["objects"]), read_data)
    res.timings["open"] = time.perf_counter() - t0
    problems, warnings = res.problems, res.warnings
    if m.get("settings") is not None:
        problems += [f"{note} (the next push rewrites it)" for note in s.notes]
    else:
        warnings.append("the manifest does not authenticate the settings yet (written before vexrun 0.4); "
                        "the next push adds them")  # fmt: skip
        warnings += s.notes
    if s.ws.path(STATUS).exists():
        try:
            st, mac_ok = parse_status(s.ws.read(STATUS), s.repo.repo_id, s.keys)
            if not mac_ok:
                problems.append(f"{STATUS}: its MAC does not verify")
            elif (st["generation"], st["records"]) != (m["generation"], m.get("records", 0)):
                problems.append(f"{STATUS}: says generation {st['generation']} with {st['records']:,} records, "
                                f"the manifest {m['generation']} with {m.get('records', 0):,}")  # fmt: skip
        except BackupDamaged as exc:
            problems.append(exc.message)
    else:
        warnings.append(f"the backup has no {STATUS} (optional: `sync status` needs it)")
    _structure(m, problems)
    order_parts: list[tuple[int, bytes | bytearray]] = []
    t1 = time.perf_counter()
    for o in m["objects"]:
        oid = bytes.fromhex(o["id"])
        path = s.ws.path(object_path(o["id"]))
        if not path.is_file():
            problems.append(f"{_where(o)}: missing")
            continue
        if not object_file_ok(path, s.keys, s.repo.repo_id, oid, int(o["size_ct"])):
            size = path.stat().st_size
            what = (f"{size:,} bytes, the manifest says {o['size_ct']:,}" if size != o["size_ct"]
                    else "its header does not carry this object's key commitment (replaced or damaged)")  # fmt: skip
            problems.append(f"{_where(o)}: {what}")
            continue
        if not read_data:
            continue
        data = path.read_bytes()
        res.bytes_read += len(data)
        try:
            pt = decrypt_object(s.keys, s.repo.repo_id, oid, data, compression=o["compression"])
        except DecryptionFailed as exc:
            problems.append(f"{_where(o)}: does not decrypt ({exc.message})")
            continue
        if len(pt) != o["size_pt"]:
            problems.append(f"{_where(o)}: {len(pt):,} bytes of plaintext, the manifest says {o['size_pt']:,}")
        elif o["kind"] == "bucket" and (pt.count(b"\n") != o["records"] or not pt.endswith(b"\n")):
            lines = pt.count(b"\n")
            problems.append(f"{_where(o)}: holds {lines:,} lines, the manifest says {o['records']:,}")
        elif o["kind"] == "order":
            order_parts.append((o["part"], pt))
    res.timings["objects"] = time.perf_counter() - t1
    info = m.get("file")
    if read_data and info is not None and len(order_parts) == sum(1 for o in m["objects"] if o["kind"] == "order"):
        order = np.frombuffer(b"".join(pt for _, pt in sorted(order_parts)), dtype="<u4")
        lines = int(info.get("lines", len(order)))
        if len(order) != lines or (lines and (int(order.max()) >= lines or np.bincount(order).min() != 1)):
            problems.append("the order is not a permutation of the file's lines")
    listed = {o["id"] for o in m["objects"]}
    objects_dir = s.ws.path(OBJECTS)
    if objects_dir.is_dir():
        for f in sorted(objects_dir.glob("*/*")):
            if f.name not in listed:
                warnings.append(f"{OBJECTS}/{f.parent.name}/{f.name}: not listed by the manifest (a push removes it)")
    res.seconds = time.perf_counter() - t0
    return res
