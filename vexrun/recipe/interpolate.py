"""``${VAR}`` interpolation, done after parsing and inside string values only.

Grammar (in any string value of a recipe; keys are never interpolated):

- ``${VAR}``            the variable's value; unset is an error with its location
- ``${VAR:-default}``   the value, or ``default`` when unset or empty
- ``${VAR:?message}``   the value; unset or empty is an error that says ``message``
- ``${file:PATH}``      the contents of a file (a secret kept out of the environment); one trailing newline
                        is dropped; relative paths are relative to the recipe
- ``$$``                a literal ``$``

A substituted value that contains a newline is refused: values are data, never more configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .yamlpos import Path_

__all__ = ["Interpolated", "Reference", "interpolate", "read_env_file"]

_TOKEN = re.compile(r"\$\$|\$\{([^}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
    quotes. Raises OSError if unreadable and ValueError (with the line number) on a malformed line."""
    out: dict[str, str] = {}
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
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

        def sub(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            body = match.group(1)
            value, ref = self.expand(body, path)
            if ref is not None:
                refs.append(ref)
            if value is None:
                return match.group(0)
            if "\n" in value or "\r" in value:
                name = ref.name if ref else body
                self.problem(path, "newline-in-value", f"the value of {name} contains a newline; refused")
                return match.group(0)
            if ref is not None and not ref.used_default:
                self.result.values.setdefault(path, []).append(value)
            return value

        out = _TOKEN.sub(sub, text)
        if "${" in _TOKEN.sub("", text):
            self.problem(path, "bad-interpolation", "unclosed '${' (write '$$' for a literal '$')")
        if refs:
            self.result.refs[path] = refs
        return out

    def expand(self, body: str, path: Path_) -> tuple[str | None, Reference | None]:
        if body.startswith("file:"):
            return self.file(body[len("file:") :], path)
        name, op, arg = body, "", ""
        for candidate in (":-", ":?"):
            if candidate in body:
                name, _, arg = body.partition(candidate)
                op = candidate
                break
        if not _NAME.match(name):
            self.problem(path, "bad-interpolation", f"'${{{body}}}' is not a variable reference like ${{NAME}}")
            return None, None
        value = self.env.get(name)
        if op == ":-":
            if value:
                return value, Reference("env", name, True)
            return arg, Reference("env", name, True, used_default=True)
        if value is None or (op == ":?" and value == ""):
            message = arg if op == ":?" and arg else f"{name} is not set"
            self.problem(path, "missing-env", message)
            return None, Reference("env", name, False)
        return value, Reference("env", name, True)

    def file(self, raw_path: str, path: Path_) -> tuple[str | None, Reference]:
        p = Path(raw_path).expanduser()
        if not p.is_absolute():
            p = self.base_dir / p
        try:
            content = p.read_text(encoding="utf-8")
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


def interpolate(data: Any, env: Mapping[str, str] | None = None, base_dir: Path | None = None) -> Interpolated:
    """Interpolate every string value of ``data``. ``env`` defaults to ``os.environ``."""
    it = _Interpolator(os.environ if env is None else env, base_dir or Path.cwd())
    it.result.data = it.walk(data, ())
    return it.result
