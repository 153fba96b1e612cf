"""Secret redaction: every resolved secret is registered here, and every text vexrun prints, logs or
stores (events, reports, plans, exception messages) goes through :func:`redact` on its way out."""

from __future__ import annotations

import threading

__all__ = ["MASK", "redact", "register_secret", "secrets_registered"]

MASK = "***"
_MIN_LEN = 4  # shorter values would mask ordinary words
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> None:
    """Remember a secret value so it is masked wherever it would appear."""
    if value and len(value) >= _MIN_LEN:
        with _lock:
            _secrets.add(value)


def secrets_registered() -> int:
    return len(_secrets)


def redact(text: str) -> str:
    """``text`` with every registered secret replaced by ``***`` (longest first)."""
    if not _secrets or not text:
        return text
    with _lock:
        values = sorted(_secrets, key=len, reverse=True)
    for value in values:
        if value in text:
            text = text.replace(value, MASK)
    return text
