"""What the wizard asks about a plugin's settings, and how it checks each answer.

Everything here is read from the plugin's own config model (its fields, their types, defaults and
descriptions): the wizard knows no connector by name. A field's *kind* decides the question and the checks:

``path``    a file or directory; a source's ``path`` must exist
``dsn``     a connection string: ``embedded``, a ``${VAR}`` reference or a DSN that parses and holds no password
``url``     ``scheme://host…`` without credentials in it
``secret``  a ``SecretStr``: only ever the NAME of an environment variable, written as ``${NAME}``
``choice``  a ``Literal``; ``bool``, ``int``, ``float``, ``list`` (comma-separated) and ``text``

:func:`check` turns the text a person typed into the value the recipe gets, or says in one line what is wrong;
the last check is the plugin's own pydantic validation of that field.
"""

from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Union
from urllib.parse import urlsplit

from pydantic import BaseModel, SecretStr, ValidationError
from pydantic_core import PydanticUndefined

from ..pluginspec import PluginSpec

__all__ = [
    "MAIN_FIELDS",
    "FieldInfo",
    "Invalid",
    "check",
    "env_name",
    "fields_of",
    "looks_like_secret",
    "secret_ref",
    "whole_problem",
]

FieldKind = Literal["path", "dsn", "url", "secret", "choice", "bool", "int", "float", "list", "text"]

#: settings the wizard asks for even when they have a default (the others are one "other settings" away)
MAIN_FIELDS = (
    "path",
    "dsn",
    "url",
    "uri",
    "host",
    "index",
    "collection",
    "table",
    "database",
    "db_name",
    "username",
    "api_key",
    "password",
    "token",
    "format",
    "chunk",
    "sender",
    "namespace",
    "model",
    "dims",
)
_URL_NAMES = ("url", "base_url", "controller_host", "host")
_ENV = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:[-?][^}]*)?\}\Z")
#: prefixes of well-known API keys and tokens
_KEY_PREFIXES = (
    "sk-",
    "sk_",
    "gsk_",
    "pcsk_",
    "xai-",
    "hf_",
    "ghp_",
    "gho_",
    "ghs_",
    "github_pat_",
    "glpat-",
    "akia",
    "aiza",
    "eyj",
    "r8_",
    "nvapi-",
    "pa-",
)


class Invalid(ValueError):
    """An answer that cannot be used; ``str()`` is the one line to show."""


@dataclass(frozen=True)
class FieldInfo:
    name: str
    kind: FieldKind
    required: bool
    default: Any
    description: str
    choices: tuple[str, ...] = ()

    @property
    def main(self) -> bool:
        return self.required or self.name in MAIN_FIELDS

    def default_text(self) -> str:
        """The default as the question pre-fills it ('' when there is none)."""
        if self.default is None or self.default is PydanticUndefined or self.kind == "secret":
            return ""
        if isinstance(self.default, bool):
            return "yes" if self.default else "no"
        if isinstance(self.default, list):
            return ",".join(str(v) for v in self.default)
        return str(self.default)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` → (X, True)."""
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _kind(name: str, annotation: Any, description: str) -> tuple[FieldKind, tuple[str, ...]] | None:
    tp, _ = _unwrap(annotation)
    origin = typing.get_origin(tp)
    if tp is SecretStr or (origin is list and typing.get_args(tp) == (SecretStr,)):
        return ("dsn" if name == "dsn" else "secret"), ()
    if origin is Literal:
        return "choice", tuple(str(a) for a in typing.get_args(tp))
    if tp is bool:
        return "bool", ()
    if tp is int:
        return "int", ()
    if tp is float:
        return "float", ()
    if origin is list and typing.get_args(tp) == (str,):
        return "list", ()
    if tp is not str:
        return None  # nested models, maps: an editor's job, not a question
    if name == "path" or name.endswith(("_dir", "_path")):
        return "path", ()
    if name in _URL_NAMES:
        return "url", ()
    return "text", ()


def fields_of(spec: PluginSpec) -> list[FieldInfo]:
    """The settings of a plugin the wizard can ask about, in the model's order (``type`` left out)."""
    model: type[BaseModel] = spec.config_model()
    out: list[FieldInfo] = []
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        found = _kind(name, info.annotation, info.description or "")
        if found is None:
            continue
        kind, choices = found
        default = info.get_default(call_default_factory=True) if not info.is_required() else None
        out.append(FieldInfo(name, kind, info.is_required(), default, info.description or "", choices))
    return out


def looks_like_secret(text: str) -> bool:
    """Whether ``text`` is more likely a key or token than the name of an environment variable."""
    value = text.strip()
    low = value.lower()
    if low.startswith(_KEY_PREFIXES):
        return True
    if len(value) >= 20 and "_" not in value:
        return True
    digits = sum(c.isdigit() for c in value)
    return len(value) >= 16 and digits / len(value) > 0.25


def env_name(text: str) -> str:
    """``NAME`` or ``${NAME}`` → NAME, the environment variable a secret comes from; Invalid otherwise, and for
    anything that looks like the secret itself (the wizard never writes one)."""
    value = text.strip()
    m = _REF.match(value)
    if m:
        value = m.group(1)
    if looks_like_secret(value) or not _ENV.match(value):
        raise Invalid(
            "that looks like a secret itself, which a recipe must never hold: type the NAME of the environment "
            "variable that holds it (e.g. GROQ_API_KEYS), and set that variable before running"
            if looks_like_secret(value) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value)
            else "an environment variable name is upper case: letters, digits and _ (e.g. QDRANT_API_KEY)"
        )
    return value


def secret_ref(text: str) -> str:
    """The ``${NAME}`` (or ``${NAME:-default}`` as typed) a secret field gets."""
    value = text.strip()
    m = _REF.match(value)
    if m and m.group(2):
        env_name(m.group(1))
        if looks_like_secret(m.group(2)[2:]):
            raise Invalid("the default of a reference must not be a secret either")
        return value
    return "${" + env_name(value) + "}"


def _check_dsn(text: str) -> str:
    value = text.strip()
    if value == "embedded" or value.startswith("${"):
        return secret_ref(value) if value.startswith("${") else value
    if "://" in value:
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise Invalid(f"not a connection URL: {exc}") from None
        if not parts.scheme.startswith("postgres") or not parts.hostname:
            raise Invalid("a connection URL looks like postgresql://user@host:5432/dbname")
        if parts.password:
            raise Invalid(
                "a password does not go into the recipe: put the whole DSN in an environment variable and type "
                "its name (e.g. DATABASE_URL)"
            )
        return value
    pairs = value.split()
    if pairs and all(re.fullmatch(r"[a-z_]+=\S*", p) for p in pairs):
        if any(p.startswith("password=") for p in pairs):
            raise Invalid("a password does not go into the recipe: type the name of a variable holding the DSN")
        return value
    if _ENV.match(value) and not looks_like_secret(value):
        return "${" + value + "}"
    raise Invalid(
        "give 'embedded', a DSN (postgresql://user@host:5432/db or 'host=… dbname=…') or the name of the "
        "environment variable that holds it"
    )


def _check_url(text: str) -> str:
    value = text.strip()
    if value.startswith("${"):
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018
    except ValueError as exc:
        raise Invalid(f"not a URL: {exc}") from None
    if not parts.scheme or not parts.netloc:
        raise Invalid("a URL looks like http://127.0.0.1:6333 or https://example.com")
    if parts.password or parts.username:
        raise Invalid("credentials do not go into a URL in a recipe: use the password / api_key setting")
    return value


def _check_path(text: str, must_exist: bool) -> str:
    value = os.path.expanduser(text.strip())
    if must_exist and not value.startswith("${") and not Path(value).exists():
        raise Invalid(f"{value}: no such file or directory")
    return value


def _convert(field: FieldInfo, text: str, *, must_exist: bool) -> Any:
    if field.kind == "secret":
        return secret_ref(text)
    if field.kind == "dsn":
        return _check_dsn(text)
    if field.kind == "url":
        return _check_url(text)
    if field.kind == "path":
        return _check_path(text, must_exist)
    if field.kind == "bool":
        low = text.strip().lower()
        if low not in ("yes", "no", "true", "false", "y", "n"):
            raise Invalid("yes or no")
        return low in ("yes", "true", "y")
    if field.kind in ("int", "float"):
        try:
            return int(text) if field.kind == "int" else float(text)
        except ValueError:
            raise Invalid(f"not {'a whole number' if field.kind == 'int' else 'a number'}") from None
    if field.kind == "choice" and text.strip() not in field.choices:
        raise Invalid(f"one of {', '.join(field.choices)}")
    if field.kind == "list":
        return [v.strip() for v in text.split(",") if v.strip()]
    return text.strip()


def check(spec: PluginSpec, field: FieldInfo, text: str, others: dict[str, Any] | None = None) -> Any:
    """The value ``text`` gives ``field`` of ``spec`` (None: left unset), or :class:`Invalid`. ``others`` are the
    settings answered so far, for the plugin's own validation of the field."""
    if not text.strip():
        if field.required:
            raise Invalid(f"{field.name} is required")
        return None
    value = _convert(field, text, must_exist=spec.kind == "source" and field.name == "path")
    model: type[BaseModel] = spec.config_model()
    try:
        model.model_validate({**(others or {}), "type": spec.name, field.name: value})
    except ValidationError as exc:
        for err in exc.errors():
            if err["loc"] and err["loc"][0] == field.name:
                raise Invalid(err["msg"]) from None
    return value


def whole_problem(spec: PluginSpec, settings: dict[str, Any]) -> str | None:
    """What the plugin's own validation says of the settings together (e.g. "give url or path"), or None."""
    model: type[BaseModel] = spec.config_model()
    try:
        model.model_validate({**settings, "type": spec.name})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        return f"{where}: {err['msg']}" if where else str(err["msg"]).removeprefix("Value error, ")
    return None
