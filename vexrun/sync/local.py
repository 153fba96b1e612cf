"""This machine's side of a sync: the state directory, its config, and the freshness state.

``<state_dir>`` (default ``$XDG_STATE_HOME/vexrun/sync``, or ``--state-dir`` / ``VEXRUN_SYNC_DIR``)::

    config.json        {"v": 1, "url", "branch", "username", "repo_id", "device_id", "label"}   (no secrets)
    repo/              the git clone
    <repo_id>.json     freshness: {"generation", "manifest_blake3", "seen_at"}, written after each
                       successful push or pull

Freshness rules (on pull; push applies the same before it writes):

* no state: trust on first use; print what is accepted (and honour ``--expect-generation``);
* a higher generation whose chain of ancestors holds what this machine saw: accepted;
* the same generation and hash: up to date;
* the same generation with another hash, or a chain without what we saw: a fork (``--accept-fork``);
* a lower generation: a rollback, or a restored old copy (``--allow-rollback``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..crypto.paths import state_dir
from ..crypto.securefile import ensure_private_dir, write_private_atomic
from .errors import ForkDetected, NotInitialised, RollbackRefused

__all__ = [
    "Freshness",
    "LocalConfig",
    "check_freshness",
    "default_state_dir",
    "load_config",
    "save_config",
    "state_root",
]


def state_root(root: str | os.PathLike[str]) -> Path:
    """The state directory as an absolute path: git runs in the clone below it, so a relative one would be
    taken relative to the wrong directory."""
    return Path(os.path.abspath(os.path.expanduser(root)))


def default_state_dir() -> Path:
    env = os.environ.get("VEXRUN_SYNC_DIR")
    return state_root(env) if env else state_dir() / "sync"


@dataclass
class LocalConfig:
    url: str
    branch: str
    username: str
    repo_id: str
    device_id: str
    #: this device's name in ``sync log`` (``sync init --label``); empty: the device id is shown
    label: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"v": 1, **self.__dict__}


def load_config(root: Path) -> LocalConfig:
    path = root / "config.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotInitialised(
            f"{root}: no sync repository here",
            hint="vexrun sync init URL (a new backup) or vexrun sync init --restore URL (an existing one)",
        ) from None
    except (OSError, ValueError) as exc:
        raise NotInitialised(f"{path}: unreadable ({exc})") from None
    try:
        return LocalConfig(
            data["url"],
            data["branch"],
            data["username"],
            data["repo_id"],
            data["device_id"],
            str(data.get("label", "")),
        )
    except (KeyError, TypeError):
        raise NotInitialised(f"{path}: incomplete; run vexrun sync init --restore URL again") from None


def save_config(root: Path, config: LocalConfig) -> None:
    ensure_private_dir(root)
    write_private_atomic(root / "config.json", json.dumps(config.to_json(), indent=2).encode() + b"\n")


@dataclass
class Freshness:
    generation: int
    manifest_blake3: str
    seen_at: str

    @staticmethod
    def path(root: Path, repo_id: str) -> Path:
        return root / f"{repo_id}.json"

    @classmethod
    def load(cls, root: Path, repo_id: str) -> Freshness | None:
        try:
            data = json.loads(cls.path(root, repo_id).read_text(encoding="utf-8"))
            return cls(int(data["generation"]), str(data["manifest_blake3"]), str(data["seen_at"]))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def save(self, root: Path, repo_id: str) -> None:
        write_private_atomic(self.path(root, repo_id), json.dumps(self.__dict__).encode() + b"\n")


def check_freshness(
    seen: Freshness | None,
    generation: int,
    manifest_hash: str,
    ancestors: list[list[Any]],
    *,
    allow_rollback: bool = False,
    accept_fork: bool = False,
) -> str:
    """``"tofu"``, ``"same"``, ``"newer"``, ``"newer-unchecked"`` (too far ahead to check the chain),
    ``"rollback"`` or ``"fork"`` (the last two only when overridden); raises otherwise."""
    if seen is None:
        return "tofu"
    if generation == seen.generation:
        if manifest_hash == seen.manifest_blake3:
            return "same"
        if accept_fork:
            return "fork"
        raise ForkDetected(
            f"fork: the remote's generation {generation} is not the one this machine saw "
            "(two devices wrote the same generation, or the forge serves different histories)",
            hint="inspect both copies; --accept-fork takes the remote's",
        )
    if generation < seen.generation:
        if allow_rollback:
            return "rollback"
        raise RollbackRefused(
            f"remote is older than what this machine last saw (rollback, or a restored old copy): "
            f"generation {generation} < {seen.generation} seen at {seen.seen_at}",
            hint="--allow-rollback accepts it",
        )
    known = {int(g): h for g, h in ancestors}
    if seen.generation in known:
        if known[seen.generation] == seen.manifest_blake3:
            return "newer"
        if accept_fork:
            return "fork"
        raise ForkDetected(
            f"fork: the remote's history (generation {generation}) does not contain the generation "
            f"{seen.generation} this machine saw",
            hint="--accept-fork takes the remote's",
        )
    return "newer-unchecked"
