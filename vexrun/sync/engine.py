"""The sync verbs that move data: ``init`` (a new backup), ``init --restore`` (attach a machine),
``push`` and ``pull``."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._version import __version__
from ..crypto.encoding import canonical_json
from ..crypto.kdf import argon2_available
from ..errors import UsageError
from ..vmig.sidecar import utc_now
from .bucketing import FileIndex
from .errors import BackupDamaged, PullFirst, ShrinkRefused, SyncError
from .formats import b3_hex, decrypt_manifest, encrypt_manifest, make_status, safe_file_name
from .git import CLONE_CONFIG, NETWORK_TIMEOUT, Git
from .history import TreeReader, find_generation
from .local import Freshness, LocalConfig, check_freshness, load_config, save_config, state_root
from .masterkey import SubKeys, format_recovery_code, make_keyfile, new_recovery_code
from .remote import Remote
from .snapshot import Built, Reader, build_snapshot, restore_snapshot
from .workspace import CONFIG, MANIFEST, STATUS, RepoConfig, Secrets, Workspace, git_available

__all__ = [
    "DEFAULT_MAX_SHRINK",
    "InitResult",
    "PullResult",
    "PushResult",
    "Session",
    "init_new",
    "init_restore",
    "open_session",
    "pull",
    "push",
    "restore_target",
    "shrink_check",
    "write_companions",
]

ANCESTORS = 256
#: the share of records a push may drop before it is refused (``sync.max_shrink``, ``--max-shrink``)
DEFAULT_MAX_SHRINK = 0.1
Progress = Callable[[int], None] | None


@dataclass
class Session:
    root: Path
    ws: Workspace
    repo: RepoConfig
    ms: bytes
    keys: SubKeys
    manifest_bytes: bytes
    manifest: dict[str, Any]
    seen: Freshness | None
    verdict: str
    #: what the session noticed on the way (config.json disagreeing with the authenticated settings)
    notes: list[str] = field(default_factory=list)

    @property
    def manifest_hash(self) -> str:
        return b3_hex(self.manifest_bytes)

    def write_manifest(self, body: dict[str, Any]) -> bytes:
        data = encrypt_manifest(self.keys, self.repo.repo_id, body)
        self.ws.write(MANIFEST, data)
        self.ws.write(
            STATUS, make_status(self.keys, self.repo.repo_id, body["generation"], body["created_at"], body["records"])
        )
        return data

    def next_manifest(self, **fields: Any) -> dict[str, Any]:
        """A manifest for the next generation, chained to the current one."""
        gen = self.manifest["generation"]
        ancestors = [[gen, self.manifest_hash], *self.manifest.get("ancestors", [])][:ANCESTORS]
        new_gen = max(gen, self.seen.generation if self.seen else 0) + 1
        body = {**self.manifest, **fields}
        body.update(
            generation=new_gen,
            prev=self.manifest_hash,
            ancestors=ancestors,
            created_at=utc_now(),
            device_id=self.ws.config.device_id,
            device_label=self.ws.config.label,
            vexrun_version=__version__,
            epoch=self.keys.epoch,
            settings=self.repo.settings(),
        )
        return body

    def restore_config(self) -> None:
        """Rewrite config.json from the authenticated settings if it says otherwise (undo an edit)."""
        if self.ws.path(CONFIG).read_bytes() != self.repo.to_bytes():
            self.ws.write(CONFIG, self.repo.to_bytes())

    def record(self, data: bytes, generation: int) -> None:
        Freshness(generation, b3_hex(data), utc_now()).save(self.root, self.repo.repo_id.hex())


def open_session(
    root: Path,
    *,
    token: str | None,
    secrets: Secrets,
    allow_rollback: bool = False,
    accept_fork: bool = False,
) -> Session:
    """Fetch, unlock (before any object is read), decrypt the manifest, check freshness, and take the
    settings that steer the client (bucket sizes, KDF) from the manifest, where they are authenticated."""
    git_available()
    root = state_root(root)
    config = load_config(root)
    ws = Workspace(root, config, token=token)
    if ws.sync_to_remote() is None:
        raise BackupDamaged(f"the remote has no branch {config.branch} (was the backup deleted?)")
    repo = ws.repo_config()
    ms, keys = ws.unlock(repo, secrets)
    data = ws.read(MANIFEST)
    manifest = decrypt_manifest(keys, repo.repo_id, data)
    seen = Freshness.load(root, config.repo_id)
    verdict = check_freshness(
        seen, manifest["generation"], b3_hex(data), manifest.get("ancestors", []),
        allow_rollback=allow_rollback, accept_fork=accept_fork,
    )  # fmt: skip
    notes = repo.adopt(manifest.get("settings"))
    return Session(root, ws, repo, ms, keys, data, manifest, seen, verdict, notes)


def _empty_manifest(repo: RepoConfig, device_id: str) -> dict[str, Any]:
    return {
        "v": 1,
        "repo_id": repo.repo_id.hex(),
        "epoch": repo.epoch,
        "generation": 1,
        "prev": None,
        "ancestors": [],
        "created_at": utc_now(),
        "device_id": device_id,
        "vexrun_version": __version__,
        "device_label": "",
        "settings": repo.settings(),
        "buckets": 0,
        "compression": "none",
        "records": 0,
        "file": None,
        "sidecar": None,
        "signature": None,
        "objects": [],
    }


@dataclass
class InitResult:
    repo_id: str
    generation: int
    recovery_code: str | None = None
    manifest: dict[str, Any] = field(default_factory=dict)


def _fresh_root(root: Path) -> None:
    if (root / "config.json").exists():
        raise UsageError(f"{root}: a sync repository is already set up here", hint="use another --state-dir")
    if (root / "repo").exists():
        shutil.rmtree(root / "repo")  # left by an init that failed half-way
    from ..crypto.securefile import ensure_private_dir

    ensure_private_dir(root)  # 0700 for it and every parent it creates, whatever the umask


def init_new(
    root: Path,
    remote: Remote,
    *,
    token: str | None,
    passphrase: str,
    label: str = "",
    kdf_alg: str | None = None,
    bucket_target: int | None = None,
    max_object: int | None = None,
) -> InitResult:
    """Create a new backup on an empty remote (or one without vexrun/): key files for the passphrase and a
    one-time recovery code, an empty generation 1. Returns the recovery code to show the user once.
    ``label`` names the passphrase key file and this device (in ``sync log``)."""
    git_available()
    root = state_root(root)
    _fresh_root(root)
    repo = RepoConfig(os.urandom(16), 1)
    if bucket_target:
        repo.bucket_target = bucket_target
    if max_object:
        repo.max_object = max_object
    if not 1024 <= repo.bucket_target <= repo.max_object or repo.max_object < 4096:
        raise UsageError("the bucket size must be at least 1 KiB and at most the maximum object size (>= 4 KiB)")
    config = LocalConfig(remote.url, remote.branch, remote.username, repo.repo_id.hex(), os.urandom(8).hex(), label)
    ws = Workspace(root, config, token=token)
    try:
        Git(root, token=token).run(["init", "--quiet", "-b", remote.branch, str(ws.clone)])
        ws.configure()
        ws.git.run(["remote", "add", "origin", remote.url])
        if ws.fetch() is not None:
            ws.reset_to_remote()
            if ws.path(CONFIG).exists():
                raise UsageError(
                    f"{remote.url} already holds a vexrun backup", hint=f"vexrun sync init --restore {remote.url}"
                )
        ms = os.urandom(32)
        keys = SubKeys.derive(ms, repo.epoch)
        code = new_recovery_code()
        repo.kdf_default = kdf_alg or ("argon2id" if argon2_available() else "scrypt")
        ws.write(CONFIG, repo.to_bytes())
        for kind, secret, name in (("passphrase", passphrase, label or "passphrase"), ("recovery", code, "recovery")):
            body = make_keyfile(ms, repo.repo_id, kind=kind, secret=secret, label=name, kdf_alg=repo.kdf_default)
            ws.write(f"vexrun/keys/{body['key_id']}.json", canonical_json(body) + b"\n")
        manifest = _empty_manifest(repo, config.device_id)
        manifest["device_label"] = label
        data = encrypt_manifest(keys, repo.repo_id, manifest)
        ws.write(MANIFEST, data)
        ws.write(STATUS, make_status(keys, repo.repo_id, 1, manifest["created_at"], 0))
        ws.commit_and_push("vexrun sync: init")
    except BaseException:
        shutil.rmtree(ws.clone, ignore_errors=True)
        raise
    save_config(root, config)
    Freshness(1, b3_hex(data), utc_now()).save(root, config.repo_id)
    return InitResult(repo.repo_id.hex(), 1, format_recovery_code(code), manifest)


def init_restore(
    root: Path,
    remote: Remote,
    *,
    token: str | None,
    secrets: Secrets,
    expect_generation: int | None = None,
    label: str = "",
) -> InitResult:
    """Attach this machine to an existing backup: a shallow clone, then unlock and read the manifest
    (trust on first use: the result says what was accepted). ``label`` names this device in ``sync log``."""
    git_available()
    root = state_root(root)
    _fresh_root(root)
    clone = root / "repo"
    git = Git(root, token=token, username=remote.username)
    try:
        config_args = [arg for pair in CLONE_CONFIG for arg in ("-c", pair)]
        git.run(
            [
                *config_args,
                "clone",
                "--quiet",
                "--depth",
                "1",
                "--single-branch",
                "--branch",
                remote.branch,
                remote.url,
                str(clone),
            ],  # fmt: skip
            timeout=NETWORK_TIMEOUT,
            what="clone",
        )
        data = (clone / CONFIG).read_bytes() if (clone / CONFIG).exists() else None
        if data is None:
            raise UsageError(f"{remote.url} holds no vexrun backup", hint=f"vexrun sync init {remote.url}")
        repo = RepoConfig.parse(data)
        config = LocalConfig(remote.url, remote.branch, remote.username, repo.repo_id.hex(), os.urandom(8).hex(), label)
        ws = Workspace(root, config, token=token)
        ws.configure()
        ms, keys = ws.unlock(repo, secrets)
        man = ws.read(MANIFEST)
        manifest = decrypt_manifest(keys, repo.repo_id, man)
        if expect_generation is not None and manifest["generation"] != expect_generation:
            raise UsageError(
                f"the remote serves generation {manifest['generation']}, not the expected {expect_generation}"
            )
    except BaseException:
        shutil.rmtree(clone, ignore_errors=True)
        raise
    save_config(root, config)
    Freshness(manifest["generation"], b3_hex(man), utc_now()).save(root, config.repo_id)
    return InitResult(repo.repo_id.hex(), manifest["generation"], None, manifest)


def _small_text(path: Path, limit: int) -> str | None:
    """A companion file (sidecar, signature) carried in the manifest, byte for byte."""
    try:
        if not path.is_file() or path.stat().st_size > limit:
            return None
        return path.read_bytes().decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None


@dataclass
class PushResult:
    """What a push did. ``bytes_pushed`` counts new object ciphertext plus the manifest and status."""

    generation: int
    objects_uploaded: int
    objects_total: int
    bytes_pushed: int
    records: int
    #: plaintext bytes encrypted by this push (only changed buckets)
    bytes_encrypted: int = 0
    unchanged: bool = False
    commit: str | None = None
    #: seconds per phase: fetch+unlock, bucket+encrypt (the whole pass over the file, objects written),
    #: object-ids, verify-reused and encrypt (the parts of it in keyed BLAKE3, in checking the objects
    #: kept from the previous generation, and in Cobblestone), commit+push (git)
    timings: dict[str, float] = field(default_factory=dict)
    #: objects the previous generation listed that were missing or damaged on the remote, re-encrypted
    objects_repaired: int = 0
    #: the record count of the generation this push replaces
    previous_records: int = 0
    notes: list[str] = field(default_factory=list)


def shrink_check(old: int, new: int, max_shrink: float | None) -> None:
    """Refuse (:class:`ShrinkRefused`) a push that drops more than ``max_shrink`` (a share, 0.1 = 10%) of
    the ``old`` records; ``None`` allows anything."""
    if max_shrink is None or old <= 0 or new >= old:
        return
    drop = (old - new) / old
    if drop > max_shrink:
        raise ShrinkRefused(
            f"refusing to push: the backup would shrink from {old:,} to {new:,} records (-{drop:.1%}), more than "
            f"max_shrink allows ({max_shrink:.0%}); nothing was pushed",
            hint="check the export (a failed or partial run?); if the drop is meant, push again with "
            "--allow-shrink or a higher --max-shrink (in a recipe: sync.max_shrink)",
        )


def push(
    root: Path,
    file: Path,
    *,
    token: str | None,
    secrets: Secrets,
    allow_rollback: bool = False,
    accept_fork: bool = False,
    compression: str = "none",
    progress: Progress = None,
    max_shrink: float | None = DEFAULT_MAX_SHRINK,
) -> PushResult:
    """Encrypt ``file`` as the next generation and push it without --force. A file with more than
    ``max_shrink`` fewer records than the current generation is refused before anything is encrypted
    (``None``: no limit); objects reused from the current generation are checked first
    (:func:`~.snapshot.object_file_ok`) and encrypted again if missing or damaged."""
    if not file.is_file():
        raise UsageError(f"{file}: no such file" if not file.exists() else f"{file}: not a regular file")
    t0 = time.perf_counter()
    s = open_session(root, token=token, secrets=secrets, allow_rollback=allow_rollback, accept_fork=accept_fork)
    timings = {"fetch+unlock": time.perf_counter() - t0}
    if s.verdict in ("newer", "newer-unchecked") and s.seen is not None:
        m = s.manifest
        raise PullFirst(
            f"the remote has generation {m['generation']} (from device {m.get('device_id')} at "
            f"{m.get('created_at')}), which this machine has not pulled; pushing would replace it",
            hint="vexrun sync pull --out OTHER.vmig.jsonl, merge if needed, then push again",
        )
    t0 = time.perf_counter()
    previous_records = int(s.manifest.get("records", 0))

    def check(index: FileIndex) -> None:
        shrink_check(previous_records, index.lines, max_shrink)

    try:
        built = _build(s, file, compression, progress, check)
    except OSError as exc:
        raise SyncError(f"cannot write the encrypted objects into {s.ws.clone} ({exc.strerror or exc})") from None
    timings["bucket+encrypt"] = time.perf_counter() - t0
    timings["object-ids"] = built.hash_seconds
    timings["verify-reused"] = built.verify_seconds
    timings["encrypt"] = built.encrypt_seconds
    old_ids = {o["id"] for o in s.manifest["objects"]}
    new_ids = {e["id"] for e in built.entries}
    file_info = s.manifest.get("file") or {}
    if (
        new_ids == old_ids
        and not built.repaired
        and not s.notes
        and file_info.get("blake3") == built.index.blake3
        and file_info.get("name") == file.name
        and s.manifest.get("settings") is not None
    ):
        s.record(s.manifest_bytes, s.manifest["generation"])
        return PushResult(
            s.manifest["generation"], 0, len(new_ids), 0, built.records, unchanged=True, timings=timings,
            previous_records=previous_records,
        )  # fmt: skip
    from ..vmig.sidecar import meta_path

    sidecar = _small_text(meta_path(file), 1 << 20)
    signature = _small_text(file.with_name(file.name + ".sig"), 64 * 1024)
    body = s.next_manifest(
        buckets=built.index.buckets,
        compression=compression,
        records=built.records,
        file={
            "name": file.name,
            "size": built.index.size,
            "blake3": built.index.blake3,
            "final_newline": built.index.final_newline,
            "lines": built.index.lines,
        },
        sidecar=sidecar,
        signature=signature,
        objects=built.entries,
    )
    s.restore_config()
    t0 = time.perf_counter()
    data = s.write_manifest(body)
    commit = s.ws.commit_and_push(f"vexrun sync: generation {body['generation']}")
    timings["commit+push"] = time.perf_counter() - t0
    s.record(data, body["generation"])
    status_size = s.ws.path(STATUS).stat().st_size
    return PushResult(
        body["generation"],
        built.uploaded,
        len(built.entries),
        built.bytes_uploaded + len(data) + status_size,
        built.records,
        bytes_encrypted=built.bytes_encrypted,
        commit=commit,
        timings=timings,
        objects_repaired=built.repaired,
        previous_records=previous_records,
        notes=s.notes
        + [
            f"{built.repaired} object(s) of the last generation were missing or damaged on the remote and were "
            "uploaded again"
        ]
        * bool(built.repaired),
    )


def _build(
    s: Session, file: Path, compression: str, progress: Progress, check: Callable[[FileIndex], None] | None = None
) -> Built:
    return build_snapshot(
        s.ws, s.keys, s.repo.repo_id, file,
        bucket_target=s.repo.bucket_target, max_object=s.repo.max_object,
        previous=s.manifest, compression=compression, progress=progress, check=check,
    )  # fmt: skip


@dataclass
class PullResult:
    generation: int
    verdict: str
    path: Path | None
    size: int
    records: int
    created_at: str | None
    device_id: str | None
    notes: list[str] = field(default_factory=list)


def pull(
    root: Path,
    out: Path | None,
    *,
    token: str | None,
    secrets: Secrets,
    allow_rollback: bool = False,
    accept_fork: bool = False,
    expect_generation: int | None = None,
    progress: Progress = None,
    generation: int | None = None,
) -> PullResult:
    """Restore the remote's current generation into ``out`` (default: its original name in the current
    directory), atomically; then remember the generation as seen.

    ``generation=N`` restores an older generation from the branch's history instead (``sync log`` lists
    them): its manifest must be in the chain the current one vouches for (``prev``/``ancestors`` hashes),
    and what this machine has seen is left as it was (it restored an old copy, it did not sync)."""
    s = open_session(root, token=token, secrets=secrets, allow_rollback=allow_rollback, accept_fork=accept_fork)
    m = s.manifest
    notes = list(s.notes)
    if s.verdict == "tofu":
        notes.append(
            f"first pull on this machine: trusting generation {m['generation']} "
            f"(created {m.get('created_at')} by device {m.get('device_id')})"
        )
    elif s.verdict == "newer-unchecked":
        notes.append(f"more than {ANCESTORS} generations since this machine last synced; the chain was not checked")
    elif s.verdict in ("rollback", "fork"):
        notes.append(f"accepted a {s.verdict} as asked: generation {m['generation']}")
    if expect_generation is not None and m["generation"] != expect_generation:
        raise UsageError(f"the remote serves generation {m['generation']}, not the expected {expect_generation}")
    reader: Reader = s.ws
    old = generation is not None and generation != m["generation"]
    if old:
        assert generation is not None
        gen = find_generation(s.ws, s.keys, s.repo.repo_id, s.manifest_bytes, m, generation)
        assert gen.manifest is not None
        m = gen.manifest
        reader = TreeReader(s.ws, gen.commit)
        notes.append(
            f"restoring generation {generation} of {gen.created_at} (current: {s.manifest['generation']}); "
            "this machine's sync state is unchanged"
        )
    info = m.get("file")
    if info is None:
        if not old:
            s.record(s.manifest_bytes, m["generation"])
        notes.append("the backup is empty: nothing has been pushed yet" if not old else "that generation is empty")
        return PullResult(m["generation"], s.verdict, None, 0, 0, m.get("created_at"), m.get("device_id"), notes)
    target = restore_target(out, info["name"])
    try:
        size = restore_snapshot(reader, s.keys, s.repo.repo_id, m, target, progress)
        write_companions(m, target)
    except OSError as exc:
        raise UsageError(f"{target}: cannot write the restored file ({exc.strerror or exc})") from None
    if not old:
        s.record(s.manifest_bytes, m["generation"])
    return PullResult(
        m["generation"],
        s.verdict,
        target,
        size,
        int(m.get("records", 0)),
        m.get("created_at"),
        m.get("device_id"),
        notes,
    )


def restore_target(out: Path | None, name: object) -> Path:
    """Where a restore writes: ``out``, or the file's own name (checked: a plain name, nothing that could
    climb out of the directory) in the current directory or in ``out`` when it is a directory."""
    if out is not None and not out.is_dir():
        return out
    return (out if out is not None else Path.cwd()) / safe_file_name(name)


def write_companions(manifest: dict[str, Any], target: Path) -> None:
    """The sidecar and the signature the manifest carries, next to the restored file, byte for byte."""
    from ..vmig.sidecar import meta_path

    for text, path in (
        (manifest.get("sidecar"), meta_path(target)),
        (manifest.get("signature"), target.with_name(target.name + ".sig")),
    ):
        if isinstance(text, str):
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            tmp.write_bytes(text.encode("utf-8"))
            os.replace(tmp, path)
