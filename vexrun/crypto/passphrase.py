"""Where passphrases and recovery codes come from: a file, an environment variable, or a prompt when
stdin is a terminal. Never from argv. Every value is registered with :mod:`vexrun.redact`.

A passphrase being *created* (``keys generate``, ``sync init``, ``sync keys add``, ``sync rekey``: every
caller that passes ``confirm=True``) must have :data:`MIN_PASSPHRASE` (12) characters; ``--weak-passphrase-ok``
lowers that to :data:`vexrun.redact.MIN_SECRET_LEN` (8), below which redaction could not mask it. Unlocking
with an existing passphrase of any length keeps working."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UsageError
from ..redact import MIN_SECRET_LEN, register_secret

__all__ = ["MIN_PASSPHRASE", "PASSPHRASE_ENV", "WEAK_OK_FLAG", "check_new_passphrase", "get_secret", "read_secret_file"]

PASSPHRASE_ENV = "VEXRUN_PASSPHRASE"
#: Characters a new passphrase needs (56 bits even if all lowercase letters; three random words pass).
MIN_PASSPHRASE = 12
#: The command-line flag that accepts a new passphrase of MIN_SECRET_LEN..MIN_PASSPHRASE-1 characters.
WEAK_OK_FLAG = "--weak-passphrase-ok"


def check_new_passphrase(value: str, *, weak_ok: bool = False, what: str = "passphrase") -> str:
    """``value``, or :class:`UsageError` if it is too short to be a new passphrase (counted in characters).
    The message never says how long the refused value was: it may be used again with the override."""
    n = len(value)
    if n >= MIN_PASSPHRASE:
        return value
    if n < MIN_SECRET_LEN:
        raise UsageError(
            f"the new {what} is shorter than {MIN_SECRET_LEN} characters; it needs at least {MIN_PASSPHRASE} "
            f"({WEAK_OK_FLAG} accepts {MIN_SECRET_LEN} to {MIN_PASSPHRASE - 1}, never fewer: vexrun could not "
            "mask a shorter one in its output)",
            hint="a few random words make a good passphrase",
        )
    if not weak_ok:
        raise UsageError(
            f"the new {what} is shorter than {MIN_PASSPHRASE} characters",
            hint=f"a few random words make a good passphrase; {WEAK_OK_FLAG} accepts {MIN_SECRET_LEN} or more",
        )
    return value


def read_secret_file(path: str | os.PathLike[str], what: str) -> str:
    """The first line of a file (trailing newline removed)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the {what} file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the {what} file is not UTF-8 text") from None
    value = text.splitlines()[0] if text else ""
    if not value:
        raise UsageError(f"{path}: the {what} file is empty")
    register_secret(value)
    return value


def get_secret(
    *,
    what: str = "passphrase",
    env: str = PASSPHRASE_ENV,
    file: str | os.PathLike[str] | None = None,
    confirm: bool = False,
    required: bool = True,
    file_option: str = "--passphrase-file",
    weak_ok: bool = False,
) -> str | None:
    """A secret from ``file``, else ``$env``, else a prompt on a terminal. ``None`` only if not ``required``.

    ``confirm`` marks a secret being created: a prompt asks for it twice, and whatever its source it must
    pass :func:`check_new_passphrase` (``weak_ok`` is ``--weak-passphrase-ok``)."""
    value = _get_secret(what=what, env=env, file=file, confirm=confirm, required=required, file_option=file_option)
    if value is not None and confirm:
        check_new_passphrase(value, weak_ok=weak_ok, what=what.removeprefix("new "))
    return value


def _get_secret(
    *, what: str, env: str, file: str | os.PathLike[str] | None, confirm: bool, required: bool, file_option: str
) -> str | None:
    if file is not None:
        return read_secret_file(file, what)
    value = os.environ.get(env)
    if value:
        register_secret(value)
        return value
    if sys.stdin is not None and sys.stdin.isatty():
        import getpass

        value = getpass.getpass(f"{what.capitalize()}: ")
        register_secret(value)
        if confirm:
            again = getpass.getpass(f"{what.capitalize()} (again): ")
            if again != value:
                raise UsageError(f"the two {what}s differ")
        if not value:
            raise UsageError(f"an empty {what} is not allowed")
        return value
    if not required:
        return None
    raise UsageError(f"no {what} given", hint=f"set {env} or pass {file_option} FILE")
