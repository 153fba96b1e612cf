"""The local clone of a backup repository and the files inside it.

Repository layout (one branch)::

    vexrun/config.json         plaintext: {"format": "vexrun-backup", "v": 1, "repo_id", "epoch", "object":
                               "cobblestone-256", "kdf_default", "bucket_target", "max_object"}
    vexrun/keys/<key_id>.json  key files wrapping the master secret
    vexrun/objects/<ab>/<id>   encrypted objects (<= max_object bytes of ciphertext)
    vexrun/manifest.vxm        the encrypted manifest of the current generation
    vexrun/status.json         plaintext {generation, created_at, records} + HMAC
    .gitattributes             ``vexrun/objects/** -delta -diff binary``
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto.encoding import canonical_json, loads_strict
from ..crypto.errors import KeyFileError, WrongPassphrase
from ..errors import UsageError
from .errors import BackupDamaged, GitError, PullFirst, RemoteRefused
from .git import NETWORK_TIMEOUT, REPO_CONFIG, Git
from .local import LocalConfig
from .masterkey import SubKeys, parse_keyfile, unwrap_keyfile

__all__ = ["CONFIG", "MANIFEST", "STATUS", "RepoConfig", "Secrets", "Workspace"]

CONFIG = "vexrun/config.json"
MANIFEST = "vexrun/manifest.vxm"
STATUS = "vexrun/status.json"
KEYS = "vexrun/keys"
OBJECTS = "vexrun/objects"
ATTRIBUTES = "vexrun/objects/** -delta -diff binary\nvexrun/manifest.vxm -delta -diff binary\n"
DEFAULT_BUCKET = 8 * 1024 * 1024
DEFAULT_MAX_OBJECT = 32 * 1024 * 1024


@dataclass
class Secrets:
    """What can unlock the master secret: a passphrase and/or a recovery code."""

    passphrase: str | None = None
    recovery: str | None = None

    def __bool__(self) -> bool:
        return bool(self.passphrase or self.recovery)


@dataclass
class RepoConfig:
    repo_id: bytes
    epoch: int = 1
    kdf_default: str = "argon2id"
    bucket_target: int = DEFAULT_BUCKET
    max_object: int = DEFAULT_MAX_OBJECT

    def to_bytes(self) -> bytes:
        body = {
            "format": "vexrun-backup",
            "v": 1,
            "repo_id": self.repo_id.hex(),
            "epoch": self.epoch,
            "object": "cobblestone-256",
            "kdf_default": self.kdf_default,
            "bucket_target": self.bucket_target,
            "max_object": self.max_object,
        }
        return canonical_json(body) + b"\n"

    @classmethod
    def parse(cls, data: bytes) -> RepoConfig:
        try:
            body = loads_strict(data)
        except ValueError:
            raise BackupDamaged(f"{CONFIG} is not valid JSON") from None
        if not isinstance(body, dict) or body.get("format") != "vexrun-backup" or body.get("v") != 1:
            raise BackupDamaged(f"{CONFIG}: not a vexrun-backup v1 repository")
        try:
            repo_id = bytes.fromhex(body["repo_id"])
            cfg = cls(repo_id, int(body["epoch"]), str(body["kdf_default"]))
            cfg.bucket_target = int(body.get("bucket_target", DEFAULT_BUCKET))
            cfg.max_object = int(body.get("max_object", DEFAULT_MAX_OBJECT))
        except (KeyError, TypeError, ValueError):
            raise BackupDamaged(f"{CONFIG}: malformed") from None
        if len(repo_id) != 16 or cfg.epoch < 1 or body.get("object") != "cobblestone-256":
            raise BackupDamaged(f"{CONFIG}: malformed")
        if not 1024 <= cfg.bucket_target <= cfg.max_object or cfg.max_object < 4096:
            raise BackupDamaged(f"{CONFIG}: bad bucket_target / max_object")
        return cfg


class Workspace:
    """A state directory's clone: fetch, read, write, commit, push."""

    def __init__(self, root: Path, config: LocalConfig, *, token: str | None = None) -> None:
        self.root = root
        self.config = config
        self.clone = root / "repo"
        self.git = Git(self.clone, token=token, username=config.username)

    # -- git --------------------------------------------------------------------------------------
    def configure(self) -> None:
        for key, value in REPO_CONFIG.items():
            self.git.run(["config", key, value])

    def fetch(self, *, depth: int | None = 1) -> str | None:
        """Fetch the branch; return the remote tip, or None when the branch does not exist yet."""
        branch = self.config.branch
        args = ["fetch", "--no-tags", "--quiet"]
        if depth:
            args.append(f"--depth={depth}")
        args += ["origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
        res = self.git.run(args, timeout=NETWORK_TIMEOUT, check=False, what="fetch")
        if res.code != 0:
            if "couldn't find remote ref" in res.err.lower():
                return None
            raise self.git.error(res, "fetch")
        return self.git.run(["rev-parse", f"refs/remotes/origin/{branch}"]).out.strip()

    def reset_to_remote(self) -> None:
        """Make the working tree exactly the remote tip (a failed earlier push leaves nothing behind)."""
        branch = self.config.branch
        self.git.run(["checkout", "--quiet", "--force", "-B", branch, f"refs/remotes/origin/{branch}"])
        self.git.run(["clean", "-q", "-f", "-d", "-x"])

    def sync_to_remote(self) -> str | None:
        tip = self.fetch()
        if tip is not None:
            self.reset_to_remote()
        return tip

    def commit_and_push(self, message: str) -> str:
        """Commit every change under vexrun/ and push without --force; map rejections to clear errors."""
        self.path(".gitattributes").write_text(ATTRIBUTES, encoding="ascii")
        self.git.run(["add", "--all", "--", "vexrun", ".gitattributes"])
        self.git.run(["commit", "--quiet", "--no-verify", "-m", message])
        res = self.git.run(
            ["push", "--porcelain", "origin", f"HEAD:refs/heads/{self.config.branch}"],
            timeout=NETWORK_TIMEOUT,
            check=False,
            what="push",
        )
        if res.code != 0:
            text = res.err + res.out
            low = text.lower()
            if "[rejected]" in low or "non-fast-forward" in low or "fetch first" in low:
                raise PullFirst(
                    "the remote changed while pushing (another device pushed first)",
                    hint="run vexrun sync pull, then push again",
                )
            if "[remote rejected]" in low or "hook declined" in low or "remote: " in low:
                said = [ln[7:].strip() for ln in text.splitlines() if ln.startswith("remote:") and ln[7:].strip()]
                detail = "; ".join(said[-4:]) or text.strip().splitlines()[-1]
                raise RemoteRefused(
                    f"the remote refused the push: {detail}",
                    hint="a forge file-size limit? lower max_object (vexrun sync init --max-object-size)",
                )
            raise self.git.error(res, "push")
        return self.git.run(["rev-parse", "HEAD"]).out.strip()

    # -- files --------------------------------------------------------------------------------------
    def path(self, rel: str) -> Path:
        return self.clone / rel

    def read(self, rel: str, *, what: str | None = None) -> bytes:
        try:
            return self.path(rel).read_bytes()
        except FileNotFoundError:
            raise BackupDamaged(f"the backup has no {what or rel}") from None
        except OSError as exc:
            raise BackupDamaged(f"{rel}: cannot read ({exc.strerror or exc})") from None

    def write(self, rel: str, data: bytes | bytearray | memoryview) -> None:
        p = self.path(rel)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)

    def remove(self, rel: str) -> None:
        p = self.path(rel)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)

    def repo_config(self) -> RepoConfig:
        cfg = RepoConfig.parse(self.read(CONFIG, what=f"{CONFIG} (is this a vexrun backup?)"))
        if cfg.repo_id.hex() != self.config.repo_id:
            raise BackupDamaged(
                f"the remote holds another backup (repo id {cfg.repo_id.hex()}, expected {self.config.repo_id})"
            )
        return cfg

    def keyfiles(self, repo_id: bytes) -> list[dict[str, Any]]:
        directory = self.path(KEYS)
        files = sorted(directory.glob("*.json")) if directory.is_dir() else []
        out = []
        for f in files:
            body = parse_keyfile(f.read_bytes(), source=f"{KEYS}/{f.name}")
            if f.name != f"{body['key_id']}.json":
                raise KeyFileError(f"{KEYS}/{f.name}: file name does not match its key id")
            out.append(body)
        if not out:
            raise BackupDamaged(f"the backup has no key files in {KEYS}")
        return out

    def unlock(self, repo: RepoConfig, secrets: Secrets) -> tuple[bytes, SubKeys]:
        """The master secret and sub-keys, or :class:`WrongPassphrase` before any object is read."""
        if not secrets:
            raise UsageError(
                "unlocking the backup needs the passphrase or the recovery code",
                hint="set VEXRUN_PASSPHRASE (or --passphrase-file), or VEXRUN_RECOVERY_CODE",
            )
        files = self.keyfiles(repo.repo_id)
        tried = 0
        for kind, secret in (("recovery", secrets.recovery), ("passphrase", secrets.passphrase)):
            if not secret:
                continue
            for body in files:
                if body["kind"] != kind:
                    continue
                tried += 1
                try:
                    ms = unwrap_keyfile(body, repo.repo_id, secret)
                except WrongPassphrase:
                    continue
                return ms, SubKeys.derive(ms, repo.epoch)
        what = "recovery code" if secrets.recovery and not secrets.passphrase else "passphrase or recovery code"
        if not tried:
            raise WrongPassphrase(f"the backup has no key file for a {what}")
        raise WrongPassphrase(f"wrong {what}: none of the backup's key files opens with it")


def git_available() -> None:
    from .git import MIN_GIT, git_version

    if git_version() < MIN_GIT:
        raise GitError("vexrun sync needs git >= 2.31", hint="install a newer git")
