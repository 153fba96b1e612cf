"""The library calls the runner makes after a run: :func:`push_file` (and :func:`resolve` for the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

from ..redact import register_secret
from .engine import PushResult, init_restore, push
from .local import default_state_dir, state_root
from .remote import Remote, resolve_remote
from .settings import SyncSettings
from .workspace import Secrets

__all__ = ["PushResult", "push_file", "secrets_from_env", "settings_secrets"]


def secrets_from_env(passphrase: str | None = None, recovery: str | None = None) -> Secrets:
    """The passphrase / recovery code given, else ``VEXRUN_PASSPHRASE`` / ``VEXRUN_RECOVERY_CODE``."""
    passphrase = passphrase or os.environ.get("VEXRUN_PASSPHRASE") or None
    recovery = recovery or os.environ.get("VEXRUN_RECOVERY_CODE") or None
    register_secret(passphrase)
    register_secret(recovery)
    return Secrets(passphrase, recovery)


def settings_secrets(settings: SyncSettings) -> tuple[str | None, Secrets]:
    """(token, secrets) from the settings, falling back to the environment."""
    token = settings.token.get_secret_value() if settings.token else os.environ.get("VEXRUN_GIT_TOKEN") or None
    register_secret(token)
    secrets = secrets_from_env(
        settings.passphrase.get_secret_value() if settings.passphrase else None,
        settings.recovery_code.get_secret_value() if settings.recovery_code else None,
    )
    return token, secrets


def settings_remote(settings: SyncSettings) -> Remote:
    return resolve_remote(
        url=settings.url,
        provider=settings.provider,
        owner=settings.owner,
        repo=settings.repo,
        host=settings.host,
        username=settings.username,
        branch=settings.branch,
    )


def push_file(path: str | os.PathLike[str], settings: SyncSettings) -> PushResult:
    """Push ``path`` as the next generation of the backup ``settings`` names.

    With an empty state directory, attach first (``sync init --restore``). Returns the generation, the
    objects uploaded and the bytes pushed; an unchanged file pushes nothing (``result.unchanged``). A file
    with more than ``settings.max_shrink`` fewer records than the backup raises :class:`ShrinkRefused`."""
    token, secrets = settings_secrets(settings)
    root = state_root(settings.state_dir) if settings.state_dir else default_state_dir()
    if not (root / "config.json").exists():
        init_restore(root, settings_remote(settings), token=token, secrets=secrets)
    return push(
        root, Path(path), token=token, secrets=secrets, compression=settings.compression,
        max_shrink=settings.max_shrink,
    )  # fmt: skip
