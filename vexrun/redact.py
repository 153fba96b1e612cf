"""Secret redaction: every resolved secret is registered here, and every text vexrun prints, logs or
stores (events, reports, plans, exception messages) goes through :func:`redact` on its way out.

Only secrets of at least :data:`MIN_SECRET_LEN` (8) characters are masked, and those wherever they appear.
A shorter value cannot be masked safely: it is as likely to be an ordinary word or number as a secret, so
masking it rewrites vexrun's own messages (a passphrase ``wrong`` turned "wrong passphrase" into "***
passphrase") and, worse, the mask then shows what the secret is. vexrun keeps short secrets out of its
text in other ways instead:

* it never creates one: a new passphrase needs 12 characters, and even ``--weak-passphrase-ok`` cannot go
  below 8 (:func:`vexrun.crypto.passphrase.check_new_passphrase`); recovery codes have 56;
* a passphrase or recovery code (an old short one still unlocks) only ever reaches a KDF, never a message;
* the git token reaches git only through the child's environment and a credential helper.
"""

from __future__ import annotations

import threading

__all__ = ["MASK", "MIN_SECRET_LEN", "redact", "register_secret", "secrets_registered"]

MASK = "***"
#: Shorter values are not masked (they would mask ordinary words, and the mask would reveal them).
MIN_SECRET_LEN = 8
_lock = threading.Lock()
_secrets: set[str] = set()


def register_secret(value: str | None) -> bool:
    """Remember a secret value so it is masked wherever it would appear; False if it is too short to be
    masked (see the module docstring)."""
    if not value or len(value) < MIN_SECRET_LEN:
        return False
    with _lock:
        _secrets.add(value)
    return True


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
