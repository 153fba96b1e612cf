"""The local clone of a backup repository and the files inside it.

Repository layout (one branch)::

    vexrun/config.json         plaintext: {"format": "vexrun-backup", "v": 1, "repo_id", "epoch", "object":
                               "cobblestone-256", "kdf_default", "bucket_target", "max_object"}; the last
                               three are authenticated by the manifest's "settings" (see RepoConfig.adopt)
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
from ..errors import UsageError, VexrunError
from .errors import BackupDamaged, GitError, PullFirst, RemoteRefused
from .git import NETWORK_TIMEOUT, REPO_CONFIG, Git, GitResult
from .local import LocalConfig
from .masterkey import SubKeys, load_keyfiles, unlock_master

__all__ = ["CONFIG", "MANIFEST", "STATUS", "RepoConfig", "Secrets", "Workspace"]

CONFIG = "vexrun/config.json"
MANIFEST = "vexrun/manifest.vxm"
STATUS = "vexrun/status.json"
KEYS = "vexrun/keys"
OBJECTS = "vexrun/objects"
ATTRIBUTES = "vexrun/objects/** -delta -diff binary\nvexrun/manifest.vxm -delta -diff binary\n"
DEFAULT_BUCKET = 8 * 1024 * 1024
DEFAULT_MAX_OBJECT = 32 * 1024 * 1024
#: Bounds on the plaintext config.json's settings of a backup whose manifest does not authenticate them
#: (written before vexrun 0.4): a forge cannot shrink buckets to single records to learn which one changed.
LEGACY_BOUNDS = {"bucket_target": (256 * 1024, 256 << 20), "max_object": (1 << 20, 2 << 30)}


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

    def settings(self) -> dict[str, Any]:
        """The settings the manifest authenticates (``formats.SETTINGS``)."""
        return {"bucket_target": self.bucket_target, "kdf_default": self.kdf_default, "max_object": self.max_object}

    def adopt(self, settings: dict[str, Any] | None) -> list[str]:
        """Replace the plaintext settings read from config.json by the ones the decrypted manifest
        authenticates; return what differed (a forge, or a hand, edited config.json). A manifest without
        settings (an older backup) keeps config.json's values, clamped to :data:`LEGACY_BOUNDS`."""
        notes = []
        if settings is not None:
            for key, value in settings.items():
                if getattr(self, key) != value:
                    notes.append(f"{CONFIG} says {key}={getattr(self, key)!r} but the backup's authenticated "
                                 f"settings say {value!r}; using {value!r}")  # fmt: skip
                    setattr(self, key, value)
            return notes
        for key, (low, high) in LEGACY_BOUNDS.items():
            value = getattr(self, key)
            bounded = min(max(value, low), high)
            if bounded != value:
                notes.append(f"{CONFIG} sets {key}={value}, outside {low}..{high} for a backup whose manifest "
                             f"does not authenticate it; using {bounded}")  # fmt: skip
                setattr(self, key, bounded)
        if self.bucket_target > self.max_object:
            self.bucket_target = self.max_object
        return notes

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

    def fetch(self, *, depth: int | None = 1, unshallow: bool = False) -> str | None:
        """Fetch the branch; return the remote tip, or None when the branch does not exist yet.
        ``depth=None, unshallow=True`` fetches the whole history (older generations)."""
        branch = self.config.branch
        args = ["fetch", "--no-tags", "--quiet"]
        if depth:
            args.append(f"--depth={depth}")
        elif unshallow and self.shallow:
            args.append("--unshallow")
        args += ["origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"]
        res = self.git.run(args, timeout=NETWORK_TIMEOUT, check=False, what="fetch")
        if res.code != 0:
            if "couldn't find remote ref" in res.err.lower():
                return None
            raise self.git.error(res, "fetch")
        return self.git.run(["rev-parse", f"refs/remotes/origin/{branch}"]).out.strip()

    @property
    def shallow(self) -> bool:
        """Whether the clone holds only part of the branch's history."""
        return (self.clone / ".git" / "shallow").exists()

    def remote_tip(self) -> str | None:
        """The branch's commit on the remote now ("" if the branch does not exist; None if unknown)."""
        res = self.git.run(
            ["ls-remote", "origin", f"refs/heads/{self.config.branch}"],
            timeout=NETWORK_TIMEOUT,
            check=False,
            what="ls-remote",
        )
        if res.code != 0:
            return None
        return res.out.split()[0] if res.out.split() else ""

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
        base = self.git.run(["rev-parse", "--verify", "--quiet", "HEAD^"], check=False).out.strip()
        res = self.git.run(
            ["push", "--porcelain", "origin", f"HEAD:refs/heads/{self.config.branch}"],
            timeout=NETWORK_TIMEOUT,
            check=False,
            what="push",
        )
        if res.code != 0:
            raise self.push_error(res, base)
        return self.git.run(["rev-parse", "HEAD"]).out.strip()

    def push_error(self, res: GitResult, base: str) -> VexrunError:
        """What a failed push means. The remote's tip is asked first: if it is no longer the commit this
        push was built on, another device won the race, whatever words git or the forge used (a ref that
        moved between git's advertisement and its update is reported as ``[remote rejected] … cannot lock
        ref``, which reads like a hook's refusal)."""
        text = res.err + res.out
        low = text.lower()
        now = self.remote_tip()
        if now is not None and now != base:
            return PullFirst(
                "the remote changed while pushing: another device pushed first "
                f"(the branch moved from {base[:12] or 'nothing'} to {now[:12] or 'nothing'}); nothing was replaced",
                hint="run vexrun sync pull, then push again",
            )
        if "[rejected]" in low or "non-fast-forward" in low or "fetch first" in low or "stale info" in low:
            return PullFirst(
                "the remote changed while pushing (another device pushed first)",
                hint="run vexrun sync pull, then push again",
            )
        if "[remote rejected]" in low or "hook declined" in low or "remote: " in low:
            said = [ln[7:].strip() for ln in text.splitlines() if ln.startswith("remote:") and ln[7:].strip()]
            detail = "; ".join(said[-4:]) or text.strip().splitlines()[-1]
            return RemoteRefused(
                f"the remote refused the push: {detail}",
                hint="a forge file-size limit? lower max_object (vexrun sync init --max-object-size); "
                "else the branch's protection rules or the server's hooks",
            )
        return self.git.error(res, "push")

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
        """The usable key files; a malformed, oversized or hostile one is skipped with a warning (masterkey)."""
        return self._keyfiles()[0]

    def _keyfiles(self) -> tuple[list[dict[str, Any]], list[str]]:
        out, skipped = load_keyfiles(self.path(KEYS), label=KEYS)
        if not out:
            detail = f" ({len(skipped)} skipped; {skipped[0]})" if skipped else ""
            raise BackupDamaged(f"the backup has no usable key files in {KEYS}{detail}")
        return out, skipped

    def unlock(self, repo: RepoConfig, secrets: Secrets) -> tuple[bytes, SubKeys]:
        """The master secret and sub-keys, or :class:`WrongPassphrase` before any object is read."""
        if not secrets:
            raise UsageError(
                "unlocking the backup needs the passphrase or the recovery code",
                hint="set VEXRUN_PASSPHRASE (or --passphrase-file), or VEXRUN_RECOVERY_CODE",
            )
        files, skipped = self._keyfiles()
        ms = unlock_master(
            files, repo.repo_id, passphrase=secrets.passphrase, recovery=secrets.recovery, skipped=len(skipped)
        )
        return ms, SubKeys.derive(ms, repo.epoch)


def git_available() -> None:
    from .git import MIN_GIT, git_version

    if git_version() < MIN_GIT:
        raise GitError("vexrun sync needs git >= 2.31", hint="install a newer git")
