"""The one exception tree of vexrun.

Every error a user can cause is a :class:`VexrunError`. Each class carries the process exit code the
CLI maps it to, and each message says what to do next. Transient errors (worth retrying) and terminal
errors (not worth retrying) are told apart by the :class:`Transient` and :class:`Terminal` markers, which
the retry logic reads instead of matching message text.

::

    VexrunError                      exit 1   base class; never raised directly
    ├── UsageError                   exit 2   bad flags, a missing or unreadable input file
    ├── InvalidInput                 exit 1   an input (recipe, .vmig.jsonl file, export) is not valid
    │   ├── FormatError              exit 1   a .vmig.jsonl line or sidecar cannot be used
    │   └── RecipeError              exit 1   a recipe fails validation (carries every finding)
    ├── ConnectError                 exit 1   a store or provider cannot be reached or refuses us
    ├── PlanMismatch                 exit 1   the checkpoint was made under another plan
    ├── RecordsRejected              exit 3   the run finished, some records are in the rejects file
    ├── LockHeld                     exit 4   another run holds this recipe's state lock
    ├── Mismatch                     exit 5   a run's reconciliation or `vexrun compare` found differences
    ├── Interrupted                  exit 130 (SIGINT) / 143 (SIGTERM), after the checkpoint was flushed
    └── InternalError                exit 70  a bug in vexrun (traceback only with --debug)

    Transient, Terminal              markers mixed into the classes above
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ConnectError",
    "FormatError",
    "InternalError",
    "Interrupted",
    "InvalidInput",
    "LockHeld",
    "Mismatch",
    "PlanMismatch",
    "RecipeError",
    "RecordsRejected",
    "Terminal",
    "Transient",
    "UsageError",
    "VexrunError",
]


class VexrunError(Exception):
    """Base of every error vexrun raises on purpose. ``str(err)`` is one line, safe to print."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class Transient:
    """Marker: the same call may succeed later (timeouts, 5xx, rate limits)."""


class Terminal:
    """Marker: retrying the same call cannot help (bad credentials, a bad model name, bad input)."""


class UsageError(VexrunError):
    """The command line is wrong: an unknown flag, a missing or unreadable file, a directory."""

    exit_code = 2


class InvalidInput(VexrunError, Terminal):
    """An input the user gave us is not valid."""


class FormatError(InvalidInput):
    """A ``.vmig.jsonl`` file, line or sidecar cannot be used. ``location`` is ``FILE:LINE``."""

    def __init__(self, message: str, *, location: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message, hint=hint)
        self.location = location


class RecipeError(InvalidInput):
    """A recipe failed validation. ``findings`` holds every finding, already formatted."""

    def __init__(self, message: str, *, findings: list[str] | None = None, details: list[Any] | None = None) -> None:
        super().__init__(message)
        self.findings = findings or []
        #: the structured findings (``RecipeFinding``), for ``--format json``
        self.details = details or []


class ConnectError(VexrunError):
    """A store or provider could not be reached, or refused our credentials. Never contains a secret."""


class PlanMismatch(VexrunError):
    """The state directory holds a checkpoint made under another plan; ``--fresh`` starts over."""


class RecordsRejected(VexrunError):
    """The run finished but some records were rejected; they are in the run's rejects file."""

    exit_code = 3


class LockHeld(VexrunError):
    """Another process holds the lock of this recipe's state directory."""

    exit_code = 4


class Mismatch(VexrunError):
    """The target does not hold what the source gave: missing, extra or changed records (a run's
    reconciliation, ``vexrun compare``)."""

    exit_code = 5


class Interrupted(VexrunError):
    """The run was interrupted by a signal after flushing its checkpoint."""

    def __init__(self, message: str, *, signum: int = 2, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = 128 + signum


class InternalError(VexrunError):
    """A bug in vexrun. Run again with ``--debug`` for the traceback and report it."""

    exit_code = 70
