"""Where vexrun keeps keys and state: ``$XDG_CONFIG_HOME/vexrun`` and ``$XDG_STATE_HOME/vexrun``."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["config_dir", "keys_dir", "state_dir", "trust_dir"]


def _xdg(var: str, fallback: str) -> Path:
    value = os.environ.get(var, "")
    base = Path(value) if value and os.path.isabs(value) else Path.home() / fallback
    return base / "vexrun"


def config_dir() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config")


def state_dir() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state")


def keys_dir() -> Path:
    """Secret and public signing keys (``<keyid>.key`` mode 0600, ``<keyid>.pub``), in a 0700 directory."""
    return config_dir() / "keys"


def trust_dir() -> Path:
    """Public keys whose signatures ``vexrun verify`` accepts (``*.pub``)."""
    return config_dir() / "trusted_keys"
