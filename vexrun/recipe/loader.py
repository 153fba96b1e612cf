"""Load a recipe: YAML → interpolation → validation, with every finding at ``FILE:LINE:COL``."""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args, get_origin

from pydantic import BaseModel, SecretStr, ValidationError

from .._version import __version__
from ..errors import RecipeError, UsageError
from ..redact import register_secret
from .interpolate import FileRefused, Interpolated, Reference, interpolate, read_env_file, read_regular_file
from .model import recipe_model, used_plugins
from .yamlpos import Loaded, Path_, load_yaml

__all__ = ["MAX_RECIPE_BYTES", "RecipeDoc", "RecipeFinding", "dotted", "load_recipe"]

#: A recipe is configuration: a few KB. Larger files are refused before they are parsed.
MAX_RECIPE_BYTES = 1024 * 1024


def dotted(path: Path_) -> str:
    """``('sources', 0, 'path')`` → ``sources[0].path``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out or "(recipe)"


@dataclass(frozen=True)
class RecipeFinding:
    line: int
    column: int
    code: str
    path: Path_
    message: str
    severity: str = "error"

    def format(self, file: str) -> str:
        return f"{file}:{self.line}:{self.column}: {self.severity}[{self.code}] {dotted(self.path)}: {self.message}"

    def to_json(self, file: str) -> dict[str, Any]:
        return {
            "file": file,
            "line": self.line,
            "column": self.column,
            "severity": self.severity,
            "code": self.code,
            "path": dotted(self.path),
            "message": self.message,
        }


@dataclass
class RecipeDoc:
    """A validated recipe with everything needed to explain it: positions, references, secrets."""

    path: Path
    display: str
    model: Any
    loaded: Loaded
    interp: Interpolated
    warnings: list[RecipeFinding] = field(default_factory=list)
    #: path of every secret field → the references it was built from ([] for a literal)
    secrets: dict[Path_, list[Reference]] = field(default_factory=dict)
    #: where relative paths start (the recipe's directory, or the working directory of `vexrun migrate`)
    base_dir: Path | None = None

    @property
    def name(self) -> str:
        name = self.model.name
        if name:
            return str(name)
        stem = self.path.name
        for suffix in (".yaml", ".yml"):
            if stem.endswith(suffix):
                stem = stem[: -len(suffix)]
        return stem

    @property
    def directory(self) -> Path:
        return self.base_dir if self.base_dir is not None else self.path.parent

    @property
    def sources(self) -> list[Any]:
        return [self.model.source] if self.model.source is not None else list(self.model.sources or [])

    def effective_sources(self) -> list[Any]:
        """The sources as the run uses them: in smart mode, conversation exports chunk per conversation
        (exchanges for short conversations, windows for long ones) whatever their `chunk:` says."""
        out = []
        for cfg in self.sources:
            if self.model.mode == "smart" and "chunk" in type(cfg).model_fields and cfg.chunk != "smart":
                cfg = cfg.model_copy(update={"chunk": "smart"})
            out.append(cfg)
        return out

    @property
    def targets(self) -> list[Any]:
        return [self.model.target] if self.model.target is not None else list(self.model.targets or [])

    def source_paths(self) -> list[Path_]:
        return [("source",)] if self.model.source is not None else [("sources", i) for i in range(len(self.sources))]

    def target_paths(self) -> list[Path_]:
        return [("target",)] if self.model.target is not None else [("targets", i) for i in range(len(self.targets))]

    def finding(self, path: Path_, code: str, message: str, severity: str = "error") -> RecipeFinding:
        line, col = self.loaded.where(path)
        return RecipeFinding(line, col, code, path, message, severity)


def _yaml_path(data: Any, loc: tuple[Any, ...]) -> tuple[Path_, Path_]:
    """Split a pydantic ``loc`` into the part that exists in the document and the rest, dropping the
    discriminator tags pydantic inserts for tagged unions."""
    path: list[str | int] = []
    cur = data
    rest = list(loc)
    while rest:
        part = rest[0]
        if isinstance(cur, dict) and isinstance(part, str) and part in cur:
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, list) and isinstance(part, int) and 0 <= part < len(cur):
            path.append(part)
            cur = cur[part]
        elif isinstance(cur, dict) and part == cur.get("type"):
            pass  # the union tag
        else:
            break
        rest.pop(0)
    return tuple(path), tuple(p for p in rest if isinstance(p, str | int))


def _model_at(model: type[BaseModel], data: Any, path: Path_) -> type[BaseModel] | None:
    """The config model that validates the mapping at ``path`` (for 'did you mean')."""
    cur_model: Any = model
    cur = data
    for part in path:
        if isinstance(part, int):
            cur = cur[part] if isinstance(cur, list) and part < len(cur) else None
            continue
        if not (isinstance(cur_model, type) and issubclass(cur_model, BaseModel)):
            return None
        info = cur_model.model_fields.get(part)
        if info is None:
            return None
        cur = cur.get(part) if isinstance(cur, dict) else None
        cur_model = _pick(info.annotation, cur)
    return cur_model if isinstance(cur_model, type) and issubclass(cur_model, BaseModel) else None


def _pick(annotation: Any, value: Any) -> Any:
    """The model class inside an annotation (Optional, list, Annotated union) matching ``value``."""
    candidates: list[Any] = []

    def collect(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            candidates.append(tp)
            return
        for arg in get_args(tp):
            collect(arg)

    collect(annotation)
    if get_origin(annotation) is list and isinstance(value, list):
        value = value[0] if value else None
    if len(candidates) <= 1:
        return candidates[0] if candidates else None
    tag = value.get("type") if isinstance(value, dict) else None
    for cand in candidates:
        type_field = cand.model_fields.get("type")
        if type_field is not None and tag in get_args(type_field.annotation):
            return cand
    return None


def _allowed_tags(annotation: Any) -> list[str]:
    tags: list[str] = []

    def collect(tp: Any) -> None:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field_info = tp.model_fields.get("type")
            if field_info is not None:
                tags.extend(str(a) for a in get_args(field_info.annotation))
            return
        for arg in get_args(tp):
            collect(arg)

    collect(annotation)
    return tags


def _field_annotation(model: type[BaseModel], data: Any, where: Path_) -> Any:
    """The annotation of the field that holds the value at ``where`` (list indexes skipped)."""
    path = list(where)
    while path and isinstance(path[-1], int):
        path.pop()
    if not path:
        return None
    parent = _model_at(model, data, tuple(path[:-1]))
    info = parent.model_fields.get(str(path[-1])) if parent is not None else None
    return info.annotation if info is not None else None


def _suggest(word: str, options: list[str]) -> str:
    match = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _convert(doc_data: Any, exc: ValidationError, model: type[BaseModel], loaded: Loaded) -> list[RecipeFinding]:
    out: list[RecipeFinding] = []
    for err in exc.errors(include_url=False):
        kind = err["type"]
        where, missing = _yaml_path(doc_data, tuple(err["loc"]))
        msg = err["msg"]
        if kind == "extra_forbidden":
            parent = _model_at(model, doc_data, where[:-1])
            key = str(where[-1]) if where else "?"
            options = sorted(parent.model_fields) if parent else []
            code, message = "unknown-field", f"unknown field{_suggest(key, options)}"
        elif kind == "missing":
            path = (*where, *missing)
            code, message = "missing-field", "required field is missing"
            line, col = loaded.where(where)
            out.append(RecipeFinding(line, col, code, path, message))
            continue
        elif kind == "union_tag_invalid":
            ann = _field_annotation(model, doc_data, where)
            tags = sorted(set(_allowed_tags(ann))) if ann is not None else []
            got = err.get("ctx", {}).get("tag", "?")
            where = (*where, "type")
            code = "unknown-type"
            message = f"unknown type '{got}'{_suggest(str(got), tags)}; known: {', '.join(tags)}"
        elif kind == "union_tag_not_found":
            ann = _field_annotation(model, doc_data, where)
            tags = sorted(set(_allowed_tags(ann))) if ann is not None else []
            code, message = "missing-type", f"needs a 'type:' (one of {', '.join(tags)})"
        elif kind == "literal_error":
            code, message = "bad-value", msg.replace("Input should be", "must be")
        elif kind.endswith("_type") or kind.endswith("_parsing") or kind in ("model_type", "list_type"):
            code, message = "wrong-type", msg.replace("Input should be", "must be")
        else:
            code, message = "bad-value", msg.replace("Input should be", "must be").removeprefix("Value error, ")
        line, col = loaded.where(where)
        if kind == "extra_forbidden":
            line, col = loaded.keys.get(where, (line, col))
        out.append(RecipeFinding(line, col, code, where, message))
    return out


def _secret_paths(value: Any, path: Path_ = ()) -> list[Path_]:
    found: list[Path_] = []
    if isinstance(value, SecretStr):
        found.append(path)
    elif isinstance(value, BaseModel):
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            extra = info.json_schema_extra if isinstance(info.json_schema_extra, dict) else {}
            keywords = extra.get("x-keywords") or ()
            if isinstance(item, SecretStr) and isinstance(keywords, list) and item.get_secret_value() in keywords:
                continue  # a keyword of the field (`dsn: embedded`), not a secret: never masked nor warned about
            found.extend(_secret_paths(item, (*path, name)))
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found.extend(_secret_paths(item, (*path, i)))
    return found


def _check_requires(spec: str) -> str | None:
    from packaging.specifiers import InvalidSpecifier, SpecifierSet

    try:
        ok = SpecifierSet(spec).contains(__version__, prereleases=True)
    except InvalidSpecifier:
        return f"'{spec}' is not a version specifier like '>=0.1,<1'"
    return None if ok else f"this recipe needs vexrun {spec}; this is vexrun {__version__}"


def load_recipe(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] | None = None,
    env_file: str | os.PathLike[str] | None = None,
    lenient_secrets: bool = False,
    text: str | None = None,
    base_dir: str | os.PathLike[str] | None = None,
) -> RecipeDoc:
    """Load and validate a recipe. Raises :class:`RecipeError` carrying every finding (formatted), or
    :class:`UsageError` if the file cannot be read. With ``lenient_secrets`` (``vexrun plan``, ``status``),
    an unset variable in a secret field is not an error: the plan shows it as missing. ``text`` loads a
    recipe that exists only in memory (``vexrun migrate`` builds one from flags; ``path`` then only names it),
    and ``base_dir`` is where its relative paths start (default: the recipe's directory)."""
    p = Path(path)
    display = os.fspath(path)
    too_large = RecipeFinding(
        1, 1, "recipe-too-large", (), f"the recipe is larger than {MAX_RECIPE_BYTES // 1024 // 1024} MiB; refused"
    )
    try:
        if text is None:
            text = read_regular_file(p, MAX_RECIPE_BYTES).decode("utf-8")
        elif len(text) > MAX_RECIPE_BYTES:
            raise _error(display, [too_large])
    except FileNotFoundError:
        raise UsageError(f"{display}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{display}: is a directory, not a recipe") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{display}: not UTF-8 text (byte {exc.start})") from None
    except FileRefused as exc:
        if exc.kind is None:
            raise _error(display, [too_large]) from None
        raise UsageError(f"{display}: is {exc.kind}, not a recipe") from None
    except OSError as exc:
        raise UsageError(f"{display}: cannot read ({exc.strerror or exc})") from None

    environ: dict[str, str] = {}
    if env_file is not None:
        try:
            environ.update(read_env_file(Path(env_file)))
        except OSError as exc:
            raise UsageError(f"{env_file}: cannot read the env file ({exc.strerror or exc})") from None
        except FileRefused as exc:
            raise UsageError(f"{env_file}: the env file {exc}") from None
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    environ.update(os.environ if env is None else env)

    loaded = load_yaml(text)
    findings = [RecipeFinding(line, col, code, path, msg) for line, col, code, path, msg in loaded.problems]
    if not findings and not isinstance(loaded.data, dict):
        findings.append(RecipeFinding(1, 1, "wrong-type", (), "a recipe is a YAML mapping (key: value lines)"))
    if findings:
        raise _error(display, findings)

    base = Path(base_dir) if base_dir is not None else p.parent
    interp = interpolate(loaded.data, environ, base.resolve())
    interp_findings = []
    for ipath, code, message in interp.problems:
        line, col = loaded.values.get(ipath, loaded.where(ipath))
        interp_findings.append(RecipeFinding(line, col, code, ipath, message))

    # first a model of the recipe's own plugins (importing every plugin's config costs ~70 ms); a recipe it
    # refuses is validated again by the full model, whose findings (the known types, say) are the ones reported
    model: Any = None
    for used in dict.fromkeys((used_plugins(interp.data), None)):
        model_cls = recipe_model(used)
        try:
            model = model_cls.model_validate(interp.data)
            break
        except ValidationError as exc:
            if used is None:
                findings.extend(_convert(interp.data, exc, model_cls, loaded))

    doc = RecipeDoc(path=p, display=display, model=model, loaded=loaded, interp=interp, base_dir=base)
    data = interp.data
    for one, many in (("source", "sources"), ("target", "targets")):
        if data.get(one) is not None and data.get(many) is not None:
            findings.append(doc.finding((many,), "conflict", f"use either '{one}' or '{many}', not both"))
        elif data.get(one) is None and not data.get(many):
            findings.append(doc.finding((), "missing-field", f"a recipe needs a '{one}' (or '{many}')"))
    secret_paths = set(_secret_paths(model)) if model is not None else set()
    # a list of secrets given as one string (`api_keys: ${KEYS}`) is found at the list, its secrets at its items
    secret_paths |= {spath[:-1] for spath in secret_paths if spath and isinstance(spath[-1], int)}
    for f in interp_findings:
        if not (lenient_secrets and f.code == "missing-env" and f.path in secret_paths):
            findings.append(f)
    if model is not None:
        for spath in _secret_paths(model):
            refs = interp.refs.get(spath, [])
            if not refs and spath and isinstance(spath[-1], int):
                # a list of secrets given as one string ("${KEYS}", split on commas by the model)
                refs = interp.refs.get(spath[:-1], [])
                for value in interp.values.get(spath[:-1], []):
                    for part in value.split(","):
                        register_secret(part.strip())
            doc.secrets[spath] = refs
            for value in interp.values.get(spath, []):
                register_secret(value)
            raw = loaded.raw.get(spath)
            if raw is None and spath and isinstance(spath[-1], int):
                raw = loaded.raw.get(spath[:-1])
            if raw is not None and not refs:
                register_secret(raw)
                doc.warnings.append(
                    doc.finding(
                        spath,
                        "literal-secret",
                        "a secret is written into the recipe; use ${VAR} or ${file:PATH} instead",
                        "warning",
                    )
                )
        if model.requires_vexrun:
            problem = _check_requires(model.requires_vexrun)
            if problem:
                findings.append(doc.finding(("requires_vexrun",), "requires-vexrun", problem))
        doc.warnings.extend(_missing_sources(doc))
    if findings:
        raise _error(display, findings)
    return doc


def _missing_sources(doc: RecipeDoc) -> list[RecipeFinding]:
    """A warning for each source that reads a local file (capability ``file_input``) whose file does not exist
    now. Not an error: CI may create it before the run, and the run fails with one line naming it if not."""
    from ..registry import resolve

    out: list[RecipeFinding] = []
    for spath, cfg in zip(doc.source_paths(), doc.sources, strict=True):
        try:
            caps = resolve("source", cfg.type).capabilities
        except UsageError:  # an unknown type is reported by validation, not here
            continue
        raw = getattr(cfg, "path", None)
        if caps is None or not caps.file_input or not isinstance(raw, str) or not raw:
            continue
        p = Path(raw).expanduser()
        p = p if p.is_absolute() else doc.directory / p
        try:
            exists = p.exists()
        except OSError:
            exists = False
        if not exists:
            out.append(
                doc.finding(
                    (*spath, "path"),
                    "missing-source",
                    f"{raw} does not exist (yet); the run fails unless it is created first",
                    "warning",
                )
            )
    return out


def _error(display: str, findings: list[RecipeFinding]) -> RecipeError:
    findings.sort(key=lambda f: (f.line, f.column))
    lines = [f.format(display) for f in findings]
    n = len(findings)
    return RecipeError(f"{display}: {n} problem{'s' if n != 1 else ''} in the recipe", findings=lines, details=findings)
