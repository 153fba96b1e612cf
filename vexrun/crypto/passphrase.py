"""Where passphrases and recovery codes come from: a file, an environment variable, or a prompt when
stdin is a terminal. Never from argv. Every value is registered with :mod:`vexrun.redact`."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from ..errors import UsageError
from ..redact import register_secret

__all__ = ["PASSPHRASE_ENV", "get_secret", "read_secret_file"]

PASSPHRASE_ENV = "VEXRUN_PASSPHRASE"


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
) -> str | None:
    """A secret from ``file``, else ``$env``, else a prompt on a terminal. ``None`` only if not ``required``."""
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
