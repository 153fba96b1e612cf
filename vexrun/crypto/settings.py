"""The recipe's ``signing:`` section."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr

__all__ = ["SigningSettings"]


class SigningSettings(BaseModel):
    """Sign the run's ``.vmig.jsonl`` output: a detached ``<file>.sig`` (``vexrun-sig/1``) after the run."""

    model_config = ConfigDict(extra="forbid", frozen=True, title="signing")

    key: str | None = Field(
        default=None,
        description="The signing key: a key id (vx1:…) in $XDG_CONFIG_HOME/vexrun/keys, or a path to a key "
        "file. Default: the only key there.",
    )
    passphrase: SecretStr | None = Field(
        default=None,
        description="Passphrase of the key file, e.g. '${VEXRUN_PASSPHRASE}'. Not needed for a key made with "
        "--no-passphrase. Default: the VEXRUN_PASSPHRASE environment variable.",
    )
    comment: str | None = Field(
        default=None, max_length=1024, description="Free text stored in the signed statement (a trusted comment)."
    )
    sha256: bool = Field(
        default=False, description="Also record a SHA-256 digest of the file (for sha256sum users); slower."
    )
    output: str | None = Field(
        default=None, description="Where to write the signature (default: <file>.sig next to the file)."
    )
