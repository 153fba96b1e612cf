"""Older generations: the backup branch's git history holds one commit per generation, each with the
encrypted manifest of that generation and exactly the objects it lists (a push removes from the tree only the
objects no longer referenced, so an older commit's tree still holds its own).

* **Which generations are genuine.** The history is the forge's to rewrite, so a generation found in it is
  trusted only when the current (decrypted, freshness-checked) manifest vouches for it: its ``ancestors``
  hold ``[generation, BLAKE3 of manifest.vxm]`` for the last 256 generations, and each vouched-for manifest
  extends the chain with its own. A manifest of the history outside that chain is listed but not restored.
* **Which can be read.** A generation written before a ``sync rekey`` is encrypted under the old master key:
  it is listed (number and hash, with the unauthenticated ``status.json`` of its commit) but not decrypted.
* **Fetching.** The clone is shallow (``--depth 1``). Reading history deepens it: to the depth that should
  reach the generation asked for, then, if that was not enough, the whole branch (``--unshallow``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..crypto.encoding import loads_strict
from ..errors import UsageError
from .errors import BackupDamaged, GitError
from .formats import b3_hex, decrypt_manifest, manifest_generation
from .masterkey import SubKeys
from .workspace import CONFIG, MANIFEST, STATUS, Workspace

__all__ = ["Generation", "TreeReader", "cat_files", "find_generation", "first_parent_commits", "scan_generations"]


@dataclass
class Generation:
    """One generation found in the branch's history (newest first in a listing)."""

    generation: int
    commit: str
    manifest_blake3: str
    #: vouched for by the current manifest's chain of hashes
    in_chain: bool = False
    #: decrypted with the current keys (False: written under an earlier master key, before a rekey)
    readable: bool = False
    current: bool = False
    created_at: str | None = None
    records: int | None = None
    bytes: int | None = None
    file: str | None = None
    device_id: str | None = None
    device_label: str | None = None
    objects: int | None = None
    note: str = ""
    manifest: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def device(self) -> str:
        """How ``sync log`` names the device that pushed: its label, else the start of its id."""
        return self.device_label or (self.device_id or "?")[:8]

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("manifest")
        body["device"] = self.device
        return body


class TreeReader:
    """Reads the backup's files as they were in ``commit`` (``git cat-file``), for restoring an older
    generation; the :class:`~.snapshot.Reader` a restore takes."""

    def __init__(self, ws: Workspace, commit: str) -> None:
        self.ws = ws
        self.commit = commit

    def read(self, rel: str, *, what: str | None = None) -> bytes:
        try:
            return self.ws.git.run_bytes(["cat-file", "blob", f"{self.commit}:{rel}"], what="cat-file")
        except GitError:
            raise BackupDamaged(f"the backup's history has no {what or rel} (commit {self.commit[:12]})") from None


def cat_files(ws: Workspace, specs: list[str]) -> list[bytes | None]:
    """The blobs ``specs`` (``<commit>:<path>``) name, in one ``git cat-file --batch``; None where missing."""
    if not specs:
        return []
    raw = ws.git.run_bytes(["cat-file", "--batch"], input_bytes="".join(f"{s}\n" for s in specs).encode())
    out: list[bytes | None] = []
    pos = 0
    for _ in specs:
        nl = raw.index(b"\n", pos)
        head = raw[pos:nl].split()
        pos = nl + 1
        if len(head) == 3 and head[1] in (b"blob", b"tree", b"commit", b"tag") and head[2].isdigit():
            size = int(head[2])
            out.append(raw[pos : pos + size] if head[1] == b"blob" else None)
            pos += size + 1
        else:  # "<spec> missing", "<spec> ambiguous"
            out.append(None)
    return out


def first_parent_commits(ws: Workspace, *paths: str) -> list[str]:
    """The commits of HEAD's first-parent history (newest first), limited to those touching ``paths``."""
    args = ["log", "--first-parent", "--format=%H", "HEAD"]
    if paths:
        args += ["--", *paths]
    return ws.git.run(args).out.split()


def _deepen(ws: Workspace, depth: int | None) -> None:
    if ws.shallow:
        ws.fetch(depth=depth, unshallow=depth is None)


def _status_fields(data: bytes | None) -> dict[str, Any]:
    """created_at and records from a commit's plaintext status.json (not authenticated: display only)."""
    try:
        st = loads_strict(data) if data is not None else None
    except ValueError:
        return {}
    return st if isinstance(st, dict) else {}


def _scan(ws: Workspace, keys: SubKeys, repo_id: bytes, head_bytes: bytes, head: dict[str, Any]) -> list[Generation]:
    commits = first_parent_commits(ws, MANIFEST)
    blobs = cat_files(ws, [f"{c}:{MANIFEST}" for c in commits] + [f"{c}:{STATUS}" for c in commits])
    manifests, statuses = blobs[: len(commits)], blobs[len(commits) :]
    head_hash = b3_hex(head_bytes)
    #: hash -> generation, for every manifest the current one vouches for (directly or through the chain)
    trusted: dict[str, int] = {head_hash: int(head["generation"])}
    trusted.update({str(h): int(g) for g, h in head.get("ancestors", [])})
    seen: set[str] = set()
    out: list[Generation] = []
    for commit, data, status in zip(commits, manifests, statuses, strict=True):
        if data is None:
            continue
        try:
            number = manifest_generation(data)
        except BackupDamaged:
            continue
        digest = b3_hex(data)
        if digest in seen:
            continue  # the same manifest again (a commit that changed it back): keep the newest
        seen.add(digest)
        g = Generation(number, commit, digest, in_chain=trusted.get(digest) == number)
        g.current = digest == head_hash
        try:
            m = head if g.current else decrypt_manifest(keys, repo_id, data)
        except BackupDamaged as exc:
            st = _status_fields(status)
            g.created_at = str(st["created_at"]) if "created_at" in st else None
            g.records = st.get("records") if isinstance(st.get("records"), int) else None
            g.note = (
                "under an earlier master key (before a rekey); its status is unauthenticated"
                if "does not decrypt" in exc.message
                else exc.message
            )
            out.append(g)
            continue
        g.readable = True
        g.manifest = m
        info = m.get("file") or {}
        g.created_at = m.get("created_at")
        g.records = int(m.get("records", 0))
        g.bytes = int(info.get("size", 0))
        g.file = info.get("name")
        g.device_id = m.get("device_id")
        g.device_label = m.get("device_label") or None
        g.objects = len(m.get("objects", []))
        if g.in_chain:
            trusted.update({str(h): int(gen) for gen, h in m.get("ancestors", [])})
        else:
            g.note = "not in the chain the current generation vouches for (the history was rewritten?)"
        out.append(g)
    return out


def scan_generations(
    ws: Workspace,
    keys: SubKeys,
    repo_id: bytes,
    head_bytes: bytes,
    head: dict[str, Any],
    *,
    limit: int | None = None,
    want: int | None = None,
) -> list[Generation]:
    """The generations in the branch's history, newest first (``limit`` of them), deepening the shallow
    clone as far as needed to list ``limit`` generations or to reach generation ``want``."""
    current = int(head["generation"])
    if want is not None:
        first: int | None = max(2, current - want + 2)
    elif limit is not None:
        first = max(2, limit + 1)
    else:
        first = None
    gens: list[Generation] = []
    for depth in dict.fromkeys([first, None]):
        _deepen(ws, depth)
        gens = _scan(ws, keys, repo_id, head_bytes, head)
        if want is not None and any(g.generation == want and g.in_chain for g in gens):
            break
        if want is None and limit is not None and len(gens) >= limit:
            break
        if not ws.shallow:
            break
    return gens[:limit] if limit is not None else gens


def find_generation(
    ws: Workspace, keys: SubKeys, repo_id: bytes, head_bytes: bytes, head: dict[str, Any], number: int
) -> Generation:
    """Generation ``number`` of the history, vouched for by the current manifest and readable; else a
    :class:`UsageError` (not there, e.g. compacted away) or :class:`BackupDamaged` (there, but not genuine)."""
    current = int(head["generation"])
    if number < 1 or number > current:
        raise UsageError(f"there is no generation {number}: the current one is {current}", hint="vexrun sync log")
    gens = [g for g in scan_generations(ws, keys, repo_id, head_bytes, head, want=number) if g.generation == number]
    good = [g for g in gens if g.in_chain]
    if not good:
        if gens:
            raise BackupDamaged(
                f"generation {number} in the history is not the one the current generation vouches for "
                "(the branch's history was rewritten); refusing to restore it"
            )
        kept = sorted(g.generation for g in scan_generations(ws, keys, repo_id, head_bytes, head))
        raise UsageError(
            f"generation {number} is no longer in the backup's history"
            + (f" (it holds generations {kept[0]}..{kept[-1]}; older ones were compacted away)" if kept else ""),
            hint="vexrun sync log",
        )
    g = good[0]
    if not g.readable or g.manifest is None:
        raise UsageError(
            f"generation {number} was written under an earlier master key (before a rekey) and cannot be "
            "opened with the current keys"
        )
    return g


def commit_epochs(ws: Workspace, commits: list[str]) -> list[int | None]:
    """The ``epoch`` of config.json in each commit (None where missing or unreadable)."""
    out: list[int | None] = []
    for data in cat_files(ws, [f"{c}:{CONFIG}" for c in commits]):
        try:
            body = loads_strict(data) if data is not None else None
            out.append(int(body["epoch"]) if isinstance(body, dict) else None)
        except (ValueError, KeyError, TypeError):
            out.append(None)
    return out
