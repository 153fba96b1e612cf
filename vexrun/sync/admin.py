"""The sync verbs that inspect or maintain a backup: ``status``, ``diff``, ``log``, ``check``, ``keys``,
``rekey``, ``compact``."""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..crypto.encoding import canonical_json
from ..errors import UsageError
from ..vmig.sidecar import utc_now
from .bucketing import extract_id, index_file, iter_buckets
from .engine import open_session
from .errors import BackupDamaged, PullFirst
from .formats import b3_hex, decrypt_object, manifest_generation, object_path, parse_status
from .git import NETWORK_TIMEOUT
from .history import Generation, cat_files, commit_epochs, first_parent_commits, scan_generations
from .local import Freshness, load_config, state_root
from .masterkey import SubKeys, format_recovery_code, make_keyfile, new_recovery_code
from .snapshot import build_snapshot, max_plaintext, restore_snapshot
from .workspace import CONFIG, KEYS, MANIFEST, OBJECTS, STATUS, Secrets, Workspace, git_available

__all__ = [
    "DEFAULT_KEEP",
    "CompactResult",
    "DiffResult",
    "compact",
    "diff",
    "keys_add",
    "keys_list",
    "keys_remove",
    "log",
    "rekey",
    "status",
]

COMPACT_HINT_BYTES = 500 * 1024 * 1024
#: generations ``compact`` keeps restorable by default
DEFAULT_KEEP = 7


def _workspace(root: Path, token: str | None, fetch: bool = True) -> Workspace:
    git_available()
    root = state_root(root)
    ws = Workspace(root, load_config(root), token=token)
    if fetch and ws.sync_to_remote() is None:
        raise BackupDamaged(f"the remote has no branch {ws.config.branch}")
    return ws


def _repo_size(ws: Workspace) -> int:
    out = ws.git.run(["count-objects", "-v"]).out
    fields = dict(line.split(": ", 1) for line in out.splitlines() if ": " in line)
    return (int(fields.get("size", 0)) + int(fields.get("size-pack", 0))) * 1024


def status(root: Path, *, token: str | None, secrets: Secrets | None = None, fetch: bool = True) -> dict[str, Any]:
    """What the remote holds and how it compares to what this machine saw; no passphrase needed."""
    ws = _workspace(root, token, fetch)
    repo = ws.repo_config()
    keys: SubKeys | None = None
    if secrets:
        keys = ws.unlock(repo, secrets)[1]
    st, mac_ok = parse_status(ws.read(STATUS), repo.repo_id, keys)
    man = ws.read(MANIFEST)
    gen = manifest_generation(man)
    seen = Freshness.load(root, ws.config.repo_id)
    if seen is None:
        state = "never synced on this machine"
    elif gen == seen.generation:
        state = "up to date" if b3_hex(man) == seen.manifest_blake3 else "FORK: same generation, different content"
    elif gen > seen.generation:
        state = f"remote is ahead ({gen - seen.generation} generation(s)); pull to get them"
    else:
        state = "ROLLBACK: the remote is older than what this machine last saw"
    size = _repo_size(ws)
    return {
        "url": ws.config.url,
        "branch": ws.config.branch,
        "repo_id": ws.config.repo_id,
        "epoch": repo.epoch,
        "remote_generation": gen,
        "status_generation": st["generation"],
        "records": st["records"],
        "created_at": st.get("created_at"),
        "status_verified": mac_ok,
        "seen_generation": seen.generation if seen else None,
        "seen_at": seen.seen_at if seen else None,
        "state": state,
        "repo_bytes": size,
        "suggest_compact": size > COMPACT_HINT_BYTES,
    }


@dataclass
class DiffResult:
    buckets_total: int = 0
    buckets_unchanged: int = 0
    buckets_changed: int = 0
    buckets_added: int = 0
    buckets_removed: int = 0
    records_added: int = 0
    records_removed: int = 0
    records_changed: int = 0
    records_unchanged: int = 0
    objects_to_upload: int = 0
    bytes_to_upload: int = 0
    generation: int = 0
    notes: list[str] = field(default_factory=list)


def _records(data: bytes | bytearray) -> dict[bytes, bytes]:
    lines = bytes(data).split(b"\n")
    return {extract_id(line): line for line in lines[:-1] if line}


def diff(root: Path, file: Path, *, token: str | None, secrets: Secrets) -> DiffResult:
    """What ``push FILE`` would change, in buckets and records (nothing is written or pushed)."""
    if not file.is_file():
        raise UsageError(f"{file}: no such file")
    s = open_session(root, token=token, secrets=secrets)
    m = s.manifest
    res = DiffResult(generation=m["generation"])
    old: dict[int, list[dict[str, Any]]] = {}
    for o in m["objects"]:
        if o["kind"] == "bucket":
            old.setdefault(o["bucket"], []).append(o)
    from .bucketing import choose_bucket_count

    buckets = choose_bucket_count(file.stat().st_size, s.repo.bucket_target, m.get("buckets") or None)
    if m.get("buckets") and buckets != m["buckets"]:
        res.notes.append(f"the bucket count changes ({m['buckets']} → {buckets}): every bucket is rewritten")
    index = index_file(file, s.keys.k_id, buckets)
    new: dict[int, list[tuple[bytes, bytes, int]]] = {}
    limit = max_plaintext(s.repo.max_object)
    for bp in iter_buckets(index, limit):
        new.setdefault(bp.bucket, []).append((s.keys.object_id(bp.data), bp.data, bp.records))
    known = {o["id"] for o in m["objects"]}
    for bucket in sorted(set(old) | set(new)):
        olds, news = old.get(bucket, []), new.get(bucket, [])
        res.buckets_total += bool(news)
        if [o["id"] for o in olds] == [oid.hex() for oid, _, _ in news]:
            res.buckets_unchanged += 1
            res.records_unchanged += sum(r for _, _, r in news)
            continue
        for oid, data, _ in news:
            if oid.hex() not in known:
                res.objects_to_upload += 1
                res.bytes_to_upload += len(data)
        if not olds:
            res.buckets_added += 1
            res.records_added += sum(r for _, _, r in news)
            continue
        if not news:
            res.buckets_removed += 1
        else:
            res.buckets_changed += 1
        before: dict[bytes, bytes] = {}
        for o in olds:
            data = s.ws.read(object_path(o["id"]))
            before.update(
                _records(
                    decrypt_object(s.keys, s.repo.repo_id, bytes.fromhex(o["id"]), data, compression=o["compression"])
                )
            )
        after: dict[bytes, bytes] = {}
        for _, data, _ in news:
            after.update(_records(data))
        res.records_added += len(after.keys() - before.keys())
        res.records_removed += len(before.keys() - after.keys())
        common = after.keys() & before.keys()
        changed = sum(1 for k in common if after[k] != before[k])
        res.records_changed += changed
        res.records_unchanged += len(common) - changed
    from .bucketing import order_bytes

    order = order_bytes(index)
    step = max(4, limit - limit % 4)
    for start in range(0, max(len(order), 1), step):
        part = order[start : start + step]
        if s.keys.object_id(part).hex() not in known:
            res.objects_to_upload += 1
            res.bytes_to_upload += len(part)
    return res


def log(root: Path, *, token: str | None, secrets: Secrets, limit: int | None = None) -> list[Generation]:
    """The generations in the backup's history, newest first: number, date, records, bytes, the device
    that pushed it; whether the current generation vouches for it and whether it can be decrypted."""
    s = open_session(root, token=token, secrets=secrets)
    return scan_generations(s.ws, s.keys, s.repo.repo_id, s.manifest_bytes, s.manifest, limit=limit)


def keys_list(root: Path, *, token: str | None, fetch: bool = True) -> list[dict[str, Any]]:
    ws = _workspace(root, token, fetch)
    repo = ws.repo_config()
    return [
        {
            "key_id": b["key_id"],
            "kind": b["kind"],
            "label": b["label"],
            "created_at": b["created_at"],
            "kdf": b["kdf"]["alg"],
        }
        for b in ws.keyfiles(repo.repo_id)
    ]


def _write_keyfile(ws: Workspace, body: dict[str, Any]) -> None:
    ws.write(f"{KEYS}/{body['key_id']}.json", canonical_json(body) + b"\n")


def keys_add(
    root: Path,
    *,
    token: str | None,
    secrets: Secrets,
    new_passphrase: str | None = None,
    recovery: bool = False,
    label: str = "",
) -> tuple[str, str | None]:
    """Add a key file (a new passphrase, or a new recovery code); return (key id, recovery code or None)."""
    if bool(new_passphrase) == recovery:
        raise UsageError("add either a new passphrase or --recovery")
    s = open_session(root, token=token, secrets=secrets)
    alg = s.repo.kdf_default
    if recovery:
        code = new_recovery_code()
        body = make_keyfile(s.ms, s.repo.repo_id, kind="recovery", secret=code, label=label or "recovery")
        shown: str | None = format_recovery_code(code)
    else:
        assert new_passphrase is not None
        body = make_keyfile(
            s.ms, s.repo.repo_id, kind="passphrase", secret=new_passphrase, label=label or "passphrase", kdf_alg=alg
        )
        shown = None
    _write_keyfile(s.ws, body)
    s.ws.commit_and_push(f"vexrun sync: add a {body['kind']} key")
    return body["key_id"], shown


def keys_remove(root: Path, key_id: str, *, token: str | None, secrets: Secrets) -> int:
    """Remove a key file; the secret given must open one of the keys that remain. Returns keys left."""
    s = open_session(root, token=token, secrets=secrets)
    files = s.ws.keyfiles(s.repo.repo_id)
    if key_id not in {b["key_id"] for b in files}:
        raise UsageError(f"no key {key_id} in the backup", hint="vexrun sync keys list")
    rest = [b for b in files if b["key_id"] != key_id]
    if not rest:
        raise UsageError("refusing to remove the last key: the backup could never be opened again")
    from ..crypto.errors import WrongPassphrase
    from .masterkey import unwrap_keyfile

    opened = False
    for body in rest:
        secret = secrets.recovery if body["kind"] == "recovery" else secrets.passphrase
        if secret:
            try:
                unwrap_keyfile(body, s.repo.repo_id, secret)
                opened = True
                break
            except WrongPassphrase:
                continue
    if not opened:
        raise UsageError(
            "the secret you gave opens only the key being removed; unlock with one that stays",
            hint="VEXRUN_PASSPHRASE or VEXRUN_RECOVERY_CODE of another key",
        )
    s.ws.remove(f"{KEYS}/{key_id}.json")
    s.ws.commit_and_push("vexrun sync: remove a key")
    return len(rest)


def rekey(root: Path, *, token: str | None, secrets: Secrets, new_passphrase: str, label: str = "") -> tuple[int, str]:
    """A new master secret (epoch + 1): every object re-encrypted, new key files (the new passphrase and a
    new recovery code), the old ones removed. Returns (generation, recovery code). Old ciphertext stays
    in git history until ``compact``."""
    s = open_session(root, token=token, secrets=secrets)
    if s.verdict in ("newer", "newer-unchecked") and s.seen is not None:
        raise PullFirst("the remote has a generation this machine has not pulled", hint="vexrun sync pull first")
    ms = os.urandom(32)
    new_keys = SubKeys.derive(ms, s.repo.epoch + 1)
    tmpdir = Path(tempfile.mkdtemp(prefix=".rekey-", dir=root))
    try:
        info = s.manifest.get("file")
        content = None
        if info is not None:
            content = tmpdir / "content.vmig.jsonl"  # not the manifest's name: it could climb out
            restore_snapshot(s.ws, s.keys, s.repo.repo_id, s.manifest, content)
        s.ws.remove(OBJECTS)
        s.ws.remove(KEYS)
        s.repo.epoch += 1
        s.ws.write(CONFIG, s.repo.to_bytes())
        code = new_recovery_code()
        for kind, secret, name in (
            ("passphrase", new_passphrase, label or "passphrase"),
            ("recovery", code, "recovery"),
        ):
            body = make_keyfile(ms, s.repo.repo_id, kind=kind, secret=secret, label=name, kdf_alg=s.repo.kdf_default)
            _write_keyfile(s.ws, body)
        fields: dict[str, Any] = {"objects": []}
        if content is not None:
            built = build_snapshot(
                s.ws, new_keys, s.repo.repo_id, content, bucket_target=s.repo.bucket_target,
                max_object=s.repo.max_object, previous=None, compression=s.manifest.get("compression", "none"),
            )  # fmt: skip
            fields.update(objects=built.entries, buckets=built.index.buckets, records=built.records)
        s.keys = new_keys
        s.ms = ms
        body = s.next_manifest(**fields)
        data = s.write_manifest(body)
        s.ws.commit_and_push(f"vexrun sync: rekey (epoch {s.repo.epoch}), generation {body['generation']}")
        s.record(data, body["generation"])
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return body["generation"], format_recovery_code(code)


@dataclass
class CompactResult:
    old: str
    new: str
    #: generations still restorable (newest first) and commits dropped from the branch
    kept: list[int] = field(default_factory=list)
    dropped_commits: int = 0

    @property
    def changed(self) -> bool:
        return self.old != self.new

    @property
    def kept_range(self) -> str:
        """``generations 5..7`` (or ``generation 7``)."""
        if len(self.kept) > 1:
            return f"generations {self.kept[-1]}..{self.kept[0]}"
        return f"generation {self.kept[0]}" if self.kept else "the tip"


def compact(root: Path, *, token: str | None, keep: int = DEFAULT_KEEP) -> CompactResult:
    """Cut the branch's history to its last ``keep`` generations, the ones written under the current
    master key only (a generation from before a ``rekey`` is always dropped, with the old key files its
    commits hold): the commits from the one that wrote the oldest generation kept up to the tip are
    re-created on a new root, with the same trees (no object is re-encrypted or re-uploaded), and pushed
    with ``--force-with-lease`` on the tip just fetched: the one forced push of vexrun. Everything older
    becomes unreachable, and git's garbage collection (here now, at the forge in its own time) drops it.
    A history that already holds no more than that is left alone (no push)."""
    if keep < 1:
        raise UsageError("--keep must be at least 1 (the current generation)")
    ws = _workspace(root, token)
    repo = ws.repo_config()
    branch = ws.config.branch
    old = ws.git.run(["rev-parse", "HEAD"]).out.strip()
    ws.fetch(depth=None, unshallow=True)
    commits = first_parent_commits(ws)
    writers = set(first_parent_commits(ws, MANIFEST))
    epochs = commit_epochs(ws, commits)
    kept_commits: list[str] = []
    kept_writers: list[str] = []
    for commit, epoch in zip(commits, epochs, strict=True):
        if epoch != repo.epoch:
            break
        kept_commits.append(commit)
        if commit in writers:
            kept_writers.append(commit)
            if len(kept_writers) == keep:
                break
    prefixes = cat_files(ws, [f"{c}:{MANIFEST}" for c in kept_writers])
    kept = [manifest_generation(p) for p in prefixes if p is not None]
    if len(kept_commits) == len(commits):
        return CompactResult(old, old, kept, 0)
    parent: str | None = None
    for commit in reversed(kept_commits):
        tree = ws.git.run(["rev-parse", f"{commit}^{{tree}}"]).out.strip()
        message = ws.git.run(["log", "-1", "--format=%B", commit]).out.strip()
        if parent is None:
            message = f"vexrun sync: compact ({utc_now()}): history before this commit dropped\n\n{message}"
        args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
        parent = ws.git.run(args).out.strip()
    assert parent is not None
    new = parent
    res = ws.git.run(
        [
            "push",
            "--porcelain",
            f"--force-with-lease=refs/heads/{branch}:{old}",
            "origin",
            f"{new}:refs/heads/{branch}",
        ],
        timeout=NETWORK_TIMEOUT,
        check=False,
        what="push",
    )
    if res.code != 0:
        err = ws.push_error(res, old)
        if isinstance(err, PullFirst):
            raise PullFirst("the remote changed since the fetch; nothing was rewritten", hint="run compact again")
        raise err
    ws.git.run(["checkout", "--quiet", "--force", "-B", branch, new])
    ws.git.run(["update-ref", f"refs/remotes/origin/{branch}", new])
    ws.git.run(["reflog", "expire", "--expire=now", "--all"], check=False)
    ws.git.run(["gc", "--quiet", "--prune=now"], check=False, timeout=NETWORK_TIMEOUT)
    return CompactResult(old, new, kept, len(commits) - len(kept_commits))
