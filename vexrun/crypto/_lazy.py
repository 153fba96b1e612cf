"""Import ``cryptography`` on first use, with an error that says how to install it."""

from __future__ import annotations

from types import ModuleType

from .errors import MissingExtra

__all__ = ["MIN_VERSION", "require"]

#: Argon2id arrived in cryptography 44.
MIN_VERSION = (44, 0)


def require() -> ModuleType:
    """The ``cryptography`` package, or :class:`MissingExtra` with the exact ``pip install`` line."""
    try:
        import cryptography
    except ImportError:
        raise MissingExtra(
            "signing and sync need the 'cryptography' package", hint="pip install 'vexrun[sync]'"
        ) from None
    parts = tuple(int(p) for p in cryptography.__version__.split(".")[:2] if p.isdigit())
    if parts < MIN_VERSION:
        raise MissingExtra(
            f"cryptography {cryptography.__version__} is too old (need >= 44 for Argon2id)",
            hint="pip install -U 'vexrun[sync]'",
        )
    return cryptography
