"""Findings and errors where reviewers look: GitHub/Forgejo workflow commands and GitLab Code Quality items.

Pure functions over plain values, shared by ``vexrun validate --format github|gitlab`` and by the error handler
of :func:`vexrun.cli.main` (which annotates every failed command when it runs under Actions). Every message is
passed through :func:`vexrun.redact.redact` on its way in, so no secret value reaches an annotation.

The escaping follows the Actions toolkit (``@actions/core`` ``command.ts``): in a message ``%``, ``\\r`` and
``\\n`` become ``%25``, ``%0D`` and ``%0A``; in a property value ``:`` and ``,`` also become ``%3A`` and ``%2C``.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from typing import Any

from ..redact import redact

__all__ = [
    "Annotation",
    "enabled",
    "escape_data",
    "escape_property",
    "github_annotation",
    "github_line",
    "gitlab_item",
    "recipe_annotation",
    "unreadable_annotation",
    "vmig_annotation",
]


def escape_data(text: str) -> str:
    """A workflow command's message: ``%``, CR and LF escaped (``%`` first, so nothing is escaped twice)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """A workflow command's property value: as :func:`escape_data`, plus ``:`` and ``,``."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(
    severity: str,
    message: str,
    *,
    file: str | None = None,
    line: int | None = None,
    col: int | None = None,
    title: str | None = None,
) -> str:
    """One workflow command, ``::error file=F,line=L,col=C,title=T::MESSAGE`` (``::warning`` for a warning).
    ``line`` 0 or None means the whole file: line and column are left out; a column without a line is too."""
    props: list[tuple[str, str]] = []
    if file:
        props.append(("file", file))
    if line:
        props.append(("line", str(line)))
        if col:
            props.append(("col", str(col)))
    if title:
        props.append(("title", title))
    command = "warning" if severity == "warning" else "error"
    head = ",".join(f"{key}={escape_property(value)}" for key, value in props)
    return f"::{command}{' ' + head if head else ''}::{escape_data(redact(message))}"


@dataclass(frozen=True)
class Annotation:
    """One finding in a file, ready to be shown: ``message`` is redacted and reads ``PATH: MESSAGE``."""

    file: str
    line: int | None
    col: int | None
    code: str
    message: str
    severity: str = "error"
    #: the file could not be read at all (a GitLab "blocker")
    unreadable: bool = False


def recipe_annotation(file: str, finding: Any) -> Annotation:
    """A :class:`~vexrun.recipe.loader.RecipeFinding` of the recipe ``file`` (the path as given)."""
    from ..recipe.loader import dotted

    message = redact(f"{dotted(finding.path)}: {finding.message}")
    return Annotation(file, finding.line or None, finding.column or None, finding.code, message, finding.severity)


def vmig_annotation(file: str, finding: Any) -> Annotation:
    """A :class:`~vexrun.vmig.findings.Finding` of the ``.vmig.jsonl`` ``file``: a line, no column (line 0
    is the whole file: the sidecar, the checksum)."""
    from ..vmig.findings import display_id

    who = f"record '{display_id(finding.record_id)}': " if finding.record_id is not None else ""
    return Annotation(file, finding.line or None, None, finding.code, redact(who + finding.message), finding.severity)


def unreadable_annotation(file: str, message: str) -> Annotation:
    """A file that could not be read (missing, a directory, no permission)."""
    return Annotation(file, None, None, "unreadable", redact(message), "error", unreadable=True)


def github_annotation(a: Annotation, verb: str = "validate") -> str:
    """``a`` as a workflow command titled ``vexrun VERB [CODE]``."""
    return github_line(a.severity, a.message, file=a.file, line=a.line, col=a.col, title=f"vexrun {verb} [{a.code}]")


def gitlab_item(a: Annotation) -> dict[str, Any]:
    """``a`` as one GitLab Code Quality issue. The fingerprint (which GitLab uses to tell new findings from
    old ones across pipelines) is the SHA-256 of file, line, column, code and message."""
    key = "\0".join([a.file, str(a.line or 0), str(a.col or 0), a.code, a.message])
    severity = "blocker" if a.unreadable else ("minor" if a.severity == "warning" else "major")
    return {
        "description": a.message,
        "check_name": f"vexrun/{a.code}",
        "fingerprint": hashlib.sha256(key.encode("utf-8")).hexdigest(),
        "severity": severity,
        "location": {"path": a.file, "lines": {"begin": max(a.line or 1, 1)}},
    }


def enabled(environ: Any = None) -> bool:
    """Whether a failed command also prints workflow-command annotations: under GitHub or Forgejo Actions
    (``GITHUB_ACTIONS=true``, which both set) or with ``VEXRUN_ANNOTATE=github``; ``VEXRUN_ANNOTATE=off``
    turns them off."""
    env = os.environ if environ is None else environ
    mode = str(env.get("VEXRUN_ANNOTATE", "")).strip().lower()
    if mode == "off":
        return False
    return mode == "github" or str(env.get("GITHUB_ACTIONS", "")).strip().lower() == "true"
