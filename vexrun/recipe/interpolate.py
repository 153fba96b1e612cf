"""``${VAR}`` interpolation, done after parsing and inside string values only.

Grammar (in any string value of a recipe; keys are never interpolated):

- ``${VAR}``            the variable's value; unset is an error with its location
- ``${VAR:-default}``   the value, or ``default`` when unset or empty
- ``${VAR:?message}``   the value; unset or empty is an error that says ``message``
- ``${file:PATH}``      the contents of a file (a secret kept out of the environment); one trailing newline
                        is dropped; relative paths are relative to the recipe. Only a regular file of at most
                        :data:`MAX_FILE_REF_BYTES` is read (never a directory, device or FIFO)
- ``$$``                a literal ``$``

The ``default`` and ``message`` may hold references themselves (``${A:-${B}}``, ``${A:-${B:-x}}``), expanded
only when they are used, nested up to :data:`MAX_NESTING` deep. A substituted value that contains a newline is
refused: values are data, never more configuration.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .yamlpos import Path_

__all__ = [
    "MAX_ENV_FILE_BYTES",
    "MAX_FILE_REF_BYTES",
    "MAX_NESTING",
    "FileRefused",
    "Interpolated",
    "Reference",
    "interpolate",
    "read_env_file",
    "read_regular_file",
]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
#: A secret is small: a key, a token, a DSN. Reading stops past this, so an endless file cannot exhaust memory.
MAX_FILE_REF_BYTES = 64 * 1024
#: A dotenv file holds variables, not data.
MAX_ENV_FILE_BYTES = 1024 * 1024
#: How deep references may nest in defaults and messages (``${A:-${B:-${C}}}`` is 3).
MAX_NESTING = 8
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)


class FileRefused(Exception):
    """A file named by a recipe is not a regular file (``kind`` says what it is, e.g. "a directory"), or is
    larger than the limit (``kind`` is None). ``str()`` says which."""

    def __init__(self, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind


def read_regular_file(path: str | os.PathLike[str], limit: int) -> bytes:
    """The contents of ``path`` if it is a regular file of at most ``limit`` bytes. Raises :class:`FileRefused`
    for a directory, device, FIFO or socket (a FIFO is opened without blocking) and for a larger file, having read
    at most ``limit + 1`` bytes; raises OSError if it cannot be opened or read."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "a special file")
            raise FileRefused(f"is {kind}, not a regular file", kind)
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 16, limit + 1 - total))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileRefused(f"is larger than {_size(limit)}, the limit for this file")
    finally:
        os.close(fd)


def _size(n: int) -> str:
    if n % (1024 * 1024) == 0:
        return f"{n // (1024 * 1024)} MiB"
    if n % 1024 == 0:
        return f"{n // 1024} KiB"
    return f"{n:,} bytes"


@dataclass(frozen=True)
class Reference:
    """A variable or file a value referred to. ``resolved`` is False when it was unset / unreadable."""

    kind: str  # "env" or "file"
    name: str
    resolved: bool
    used_default: bool = False


@dataclass
class Interpolated:
    data: Any
    #: path → the references used in that string value
    refs: dict[Path_, list[Reference]] = field(default_factory=dict)
    #: (path, code, message) — errors to report at the value's position
    problems: list[tuple[Path_, str, str]] = field(default_factory=list)
    #: every value read from a file or an environment variable (for redaction if it lands in a secret)
    values: dict[Path_, list[str]] = field(default_factory=dict)


def read_env_file(path: Path) -> dict[str, str]:
    """Parse a dotenv file: ``KEY=value`` lines, ``export`` prefixes, ``#`` comments, single or double
    quotes. Raises OSError if unreadable, :class:`FileRefused` if not a regular file of at most
    :data:`MAX_ENV_FILE_BYTES`, and ValueError (with the line number) on a malformed line or bad UTF-8."""
    out: dict[str, str] = {}
    try:
        text = read_regular_file(path, MAX_ENV_FILE_BYTES).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, sep, value = line.partition("=")
        key = key.strip()
        if not sep or not _NAME.match(key):
            raise ValueError(f"{path}:{lineno}: expected KEY=value")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            quote, value = value[0], value[1:-1]
            if quote == '"':
                value = value.replace("\\n", "\n").replace('\\"', '"')
        elif " #" in value:
            value = value.split(" #", 1)[0].rstrip()
        out[key] = value
    return out


class _Interpolator:
    def __init__(self, env: Mapping[str, str], base_dir: Path) -> None:
        self.env = env
        self.base_dir = base_dir
        self.result = Interpolated(data=None)

    def walk(self, value: Any, path: Path_) -> Any:
        if isinstance(value, str):
            return self.string(value, path)
        if isinstance(value, dict):
            return {k: self.walk(v, (*path, k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.walk(v, (*path, i)) for i, v in enumerate(value)]
        return value

    def problem(self, path: Path_, code: str, message: str) -> None:
        self.result.problems.append((path, code, message))

    def string(self, text: str, path: Path_) -> str:
        if "$" not in text:
            return text
        refs: list[Reference] = []
        out, unclosed = self.text(text, path, refs, 0)
        if unclosed:
            self.problem(path, "bad-interpolation", "unclosed '${' (write '$$' for a literal '$')")
        if refs:
            self.result.refs[path] = refs
        return out

    def text(self, text: str, path: Path_, refs: list[Reference], depth: int) -> tuple[str, bool]:
        """``text`` with its references substituted; True as well if a ``${`` is never closed (the rest of
        the text is then kept as written)."""
        out: list[str] = []
        i = 0
        while True:
            j = text.find("$", i)
            if j < 0 or j == len(text) - 1:
                out.append(text[i:])
                return "".join(out), False
            out.append(text[i:j])
            nxt = text[j + 1]
            if nxt == "$":
                out.append("$")
                i = j + 2
                continue
            if nxt != "{":
                out.append("$")
                i = j + 1
                continue
            end = _closing(text, j + 2)
            if end < 0:
                out.append(text[j:])
                return "".join(out), True
            out.append(self.reference(text[j : end + 1], text[j + 2 : end], path, refs, depth))
            i = end + 1

    def reference(self, token: str, body: str, path: Path_, refs: list[Reference], depth: int) -> str:
        """The value of one ``${body}``, or ``token`` as written when it cannot be resolved (a problem is
        reported)."""
        value, ref = self.expand(body, path, refs, depth)
        if value is None:
            return token
        if "\n" in value or "\r" in value:
            name = ref.name if ref else body
            self.problem(path, "newline-in-value", f"the value of {name} contains a newline; refused")
            return token
        if ref is not None and not ref.used_default:
            self.result.values.setdefault(path, []).append(value)
        return value

    def expand(self, body: str, path: Path_, refs: list[Reference], depth: int) -> tuple[str | None, Reference | None]:
        if body.startswith("file:"):
            if "${" in body:
                self.problem(
                    path, "bad-interpolation", f"'${{{body}}}': a file path cannot hold another reference; write it out"
                )
                return None, None
            value, ref = self.file(body[len("file:") :], path)
            refs.append(ref)
            return value, ref
        name, op, arg = body, "", ""
        colon = body.find(":")
        if colon >= 0 and body[colon : colon + 2] in (":-", ":?"):
            name, op, arg = body[:colon], body[colon : colon + 2], body[colon + 2 :]
        if not _NAME.match(name):
            self.problem(path, "bad-interpolation", f"'${{{body}}}' is not a variable reference like ${{NAME}}")
            return None, None
        value = self.env.get(name)
        if op == ":-":
            if value:
                ref = Reference("env", name, True)
                refs.append(ref)
                return value, ref
            ref = Reference("env", name, True, used_default=True)
            refs.append(ref)
            return self.nested(arg, body, path, refs, depth), ref
        if value is None or (op == ":?" and value == ""):
            message = (self.nested(arg, body, path, refs, depth) or arg) if op == ":?" and arg else f"{name} is not set"
            self.problem(path, "missing-env", message)
            ref = Reference("env", name, False)
            refs.append(ref)
            return None, ref
        ref = Reference("env", name, True)
        refs.append(ref)
        return value, ref

    def nested(self, arg: str, body: str, path: Path_, refs: list[Reference], depth: int) -> str | None:
        """A default or message, itself interpolated (None when nested too deep)."""
        if "$" not in arg:
            return arg
        if depth + 1 >= MAX_NESTING:
            self.problem(
                path, "bad-interpolation", f"'${{{body}}}' nests references more than {MAX_NESTING} levels deep"
            )
            return None
        value, _ = self.text(arg, path, refs, depth + 1)
        return value

    def file(self, raw_path: str, path: Path_) -> tuple[str | None, Reference]:
        p = Path(raw_path).expanduser()
        if not p.is_absolute():
            p = self.base_dir / p
        token = "${file:" + raw_path + "}"
        try:
            content = read_regular_file(p, MAX_FILE_REF_BYTES).decode("utf-8")
        except FileRefused as exc:
            self.problem(path, "bad-file", f"{token}: {raw_path} {exc}; refused")
            return None, Reference("file", raw_path, False)
        except OSError as exc:
            self.problem(path, "missing-file", f"cannot read {raw_path}: {exc.strerror or exc}")
            return None, Reference("file", raw_path, False)
        except UnicodeDecodeError:
            self.problem(path, "missing-file", f"{raw_path} is not UTF-8 text")
            return None, Reference("file", raw_path, False)
        if content.endswith("\n"):
            content = content[:-1]
            if content.endswith("\r"):
                content = content[:-1]
        return content, Reference("file", raw_path, True)


def _closing(text: str, start: int) -> int:
    """The index of the ``}`` that closes the ``${`` whose body starts at ``start`` (-1 if none): nested
    ``${…}`` are skipped whole, and ``$$`` is one character."""
    depth = 1
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "$" and i + 1 < n and text[i + 1] in "${":
            depth += text[i + 1] == "{"
            i += 2
            continue
        if c == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def interpolate(data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Interpolated:
    """Interpolate every string value of ``data``. ``env`` defaults to ``os.environ``."""
    it = _Interpolator(os.environ if env is None else env, base_dir or Path.cwd())
    it.result.data = it.walk(data, ())
    return it.result
