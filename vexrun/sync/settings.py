"""The recipe's ``sync:`` section: push the run's ``.vmig.jsonl`` output to an encrypted git backup."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

__all__ = ["SyncSettings", "parse_share"]


class SyncSettings(BaseModel):
    """Push the run's output (after signing) to the encrypted backup repository.

    The backup must exist (``vexrun sync init`` once, by a person, who keeps the recovery code). On a
    machine whose state directory is empty (a CI runner) the first push attaches to it by itself:
    a shallow clone, then the usual checks.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, title="sync")

    url: str | None = Field(
        default=None,
        description="The git URL of the backup repository (https://…, ssh, or a path). No credentials in it.",
    )
    provider: Literal["github", "codeberg", "gitea", "gitlab"] | None = Field(
        default=None, description="Instead of url: the forge, with owner and repo (and host for gitea)."
    )
    owner: str | None = Field(default=None, description="Account or organisation owning the repository.")
    repo: str | None = Field(default=None, description="Repository name.")
    host: str | None = Field(default=None, description="Server name for gitea/forgejo or a self-hosted gitlab.")
    branch: str = Field(default="main", description="The branch holding the backup.")
    username: str | None = Field(
        default=None,
        description="Username sent with the token (default per provider: github x-access-token, gitlab oauth2, "
        "codeberg/gitea the owner).",
    )
    token: SecretStr | None = Field(
        default=None,
        description="The forge token, e.g. '${VEXRUN_GIT_TOKEN}'. Passed to git through its environment only. "
        "Default: the VEXRUN_GIT_TOKEN environment variable, else your own git credential helper.",
    )
    passphrase: SecretStr | None = Field(
        default=None,
        description="The backup passphrase, e.g. '${VEXRUN_PASSPHRASE}'. Default: VEXRUN_PASSPHRASE.",
    )
    recovery_code: SecretStr | None = Field(
        default=None, description="The recovery code, instead of the passphrase. Default: VEXRUN_RECOVERY_CODE."
    )
    state_dir: str | None = Field(
        default=None,
        description="This machine's sync state (clone, freshness). Default: VEXRUN_SYNC_DIR, else "
        "$XDG_STATE_HOME/vexrun/sync.",
    )
    compression: Literal["none", "zlib"] = Field(
        default="none", description="Compress objects before encryption (zlib is ~2x smaller, ~20x slower)."
    )
    max_shrink: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Refuse a push that drops more than this share of the backup's records (0.1 or '10%'; 1 "
        "allows anything): a failed or partial run must not replace a good backup.",
    )

    @field_validator("max_shrink", mode="before")
    @classmethod
    def _percent(cls, value: Any) -> Any:
        """Accept ``"10%"`` as well as ``0.1``."""
        return parse_share(value) if isinstance(value, str) else value


def parse_share(text: str) -> float:
    """``"10%"`` or ``"0.1"`` as a share in [0, 1] (``ValueError`` otherwise): ``max_shrink``, ``--max-shrink``."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%?)\s*", text)
    share = float(m.group(1)) / (100 if m.group(2) else 1) if m else -1.0
    if not 0 <= share <= 1:
        raise ValueError(f"{text!r} is not a share between 0 and 1 (e.g. 10% or 0.1)")
    return share
