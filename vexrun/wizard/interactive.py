"""The terminal wizard: questionary prompts (prompt_toolkit, so any terminal, tmux included) that fill
:class:`~vexrun.wizard.recipe.Choices`, check every answer as it is typed, and write the recipe.

Nothing is written before the last question; Ctrl-C stops (exit 130) and leaves no file behind.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

from ..errors import UsageError, VexrunError
from ..pluginspec import Kind, PluginSpec
from ..registry import plugins, resolve
from .fields import FieldInfo, Invalid, check, env_name, fields_of, whole_problem
from .flags import default_embedder, key_env, sync_place
from .recipe import MODES, Choices, Part

__all__ = ["Prompter", "run_wizard"]

_TITLES = {"source": "source", "sink": "target", "embedder": "embedder"}
_SUGGESTED_ENV = re.compile(r"\$\{([A-Z][A-Z0-9_]*)\}")


class Prompter:
    """The few question shapes the wizard uses, on questionary; each raises KeyboardInterrupt on Ctrl-C."""

    def __init__(self) -> None:
        try:
            import questionary
        except ImportError:
            raise UsageError(
                "the wizard needs questionary, which is not installed",
                hint="pip install 'vexrun[wizard]', or write the recipe with flags: vexrun init --from … --to …",
            ) from None
        self.q = questionary

    def say(self, text: str) -> None:
        print(text, flush=True)

    def select(self, message: str, choices: list[tuple[str, str, str]], default: str | None = None) -> str:
        """``choices``: (value, title, description); type to filter, arrows to move, Enter to pick."""
        items = [self.q.Choice(title, value=value, description=desc or None) for value, title, desc in choices]
        picked = next((c for c in items if c.value == default), None)
        return str(
            self.q.select(
                message,
                items,
                default=picked,
                use_search_filter=True,
                use_jk_keys=False,
                instruction="(type to filter, Enter to pick)",
            ).unsafe_ask()
        )

    def text(self, message: str, check: Any, default: str = "", hint: str = "", path: bool = False) -> Any:
        """A line of text, checked as it is typed by ``check(text)`` (raises Invalid); returns its result."""
        result: dict[str, Any] = {}

        def validate(text: str) -> bool | str:
            try:
                result["value"] = check(text)
            except Invalid as exc:
                return str(exc)
            return True

        ask = self.q.path if path else self.q.text
        toolbar = hint[:300] if hint else None
        ask(message, default=default, validate=validate, bottom_toolbar=toolbar).unsafe_ask()
        return result.get("value")

    def confirm(self, message: str, default: bool = False) -> bool:
        return bool(self.q.confirm(message, default=default).unsafe_ask())


def _title(spec: PluginSpec) -> str:
    state = "installed" if spec.installed() else f"needs: pip install 'vexrun[{spec.extra}]'"
    return f"{spec.name:<20} {state}"


def _pick(p: Prompter, kind: Kind, default: str | None) -> PluginSpec:
    specs = list(plugins(kind).values())
    choices = [(s.name, _title(s), s.summary) for s in specs]
    name = p.select(f"{_TITLES[kind].capitalize()}:", choices, default=default)
    spec = resolve(kind, name)
    if not spec.installed():
        p.say(
            f"  note: {spec.name} needs {', '.join(spec.requires)}: pip install 'vexrun[{spec.extra}]' before running"
        )
    return spec


def _suggested_env(spec: PluginSpec, field: FieldInfo) -> str:
    m = _SUGGESTED_ENV.search(field.description)
    return m.group(1) if m else f"{spec.name}_{field.name}".upper().replace("-", "_")


def _ask_field(p: Prompter, spec: PluginSpec, field: FieldInfo, answers: dict[str, Any]) -> Any:
    label = f"{_TITLES.get(spec.kind, spec.kind)} {field.name}"
    if field.kind == "choice":
        default = field.default_text() or field.choices[0]
        return p.select(f"{label}:", [(c, c, "") for c in field.choices], default=default)
    if field.kind == "bool":
        return p.confirm(f"{label}? ({field.description[:80]})", default=bool(field.default))
    if field.kind == "secret":
        example = _suggested_env(spec, field)
        message = f"{label}: the NAME of the environment variable holding it (e.g. {example})"
        if not field.required:
            message += ", blank: none"
        default = example if field.required else ""
        return p.text(f"{message}:", lambda t: check(spec, field, t, answers), default, field.description)
    message = f"{label}{'' if field.required or field.default_text() else ' (blank: unset)'}:"
    if field.kind == "dsn":
        message = f"{label} (embedded, a DSN without password, or the NAME of a variable holding it):"
    default = "embedded" if field.kind == "dsn" and "embedded" in field.description else field.default_text()
    hint = field.description
    if field.kind == "path":
        hint += " (Type it relative to the current directory: the recipe gets it relative to itself.)"
    return p.text(message, lambda t: check(spec, field, t, answers), default, hint, field.kind == "path")


def _ask_settings(p: Prompter, spec: PluginSpec) -> dict[str, Any]:
    """The plugin's main settings, then any other one the person wants to set."""
    fields = fields_of(spec)
    answers: dict[str, Any] = {}

    def ask(field: FieldInfo) -> None:
        value = _ask_field(p, spec, field, answers)
        if value is not None and (field.required or value != field.default):
            answers[field.name] = value
        else:
            answers.pop(field.name, None)

    for field in fields:
        if field.main:
            ask(field)
    rest = [f for f in fields if not f.main]
    while True:
        problem = whole_problem(spec, answers)
        if problem:
            p.say(f"  {problem}")
        elif not rest or not p.confirm(f"Set another {spec.name} setting?", default=False):
            return answers
        name = p.select("Which setting:", [(f.name, f"{f.name} = {_shown(answers, f)}", f.description) for f in fields])
        ask(next(f for f in fields if f.name == name))


def _shown(answers: dict[str, Any], field: FieldInfo) -> str:
    value = answers.get(field.name)
    return str(value) if value is not None else (field.default_text() or "-")


def _check_now(p: Prompter, choices: Choices, where: Path) -> None:
    """``vexrun check`` on a recipe of the source and target alone (written beside the output, then removed)."""
    from ..ops import check_recipe
    from .write import write_recipe

    probe = Choices(source=choices.source, target=choices.target, embed=Part("embedder", "fake"))
    where.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=".vexrun-init-check-", suffix=".yaml", dir=where)
    os.close(fd)
    path = Path(name)
    try:
        write_recipe(probe, path, force=True)
        for r in check_recipe(str(path)):
            if not r.part.startswith("embed"):
                p.say(f"  {'ok  ' if r.ok else 'FAIL'}  {r.part}: {r.detail}")
    except VexrunError as exc:
        p.say(f"  FAIL  {exc}")
    finally:
        path.unlink(missing_ok=True)


def _providers(p: Prompter) -> Any:
    how = p.select(
        "LLM providers for extraction:",
        [
            ("auto", "auto", "those whose keys are set in the environment, plus a local Ollama that answers"),
            ("choose", "choose them, in order", "each provider falls over to the next; keys only as ${VARIABLE}"),
        ],
        default="auto",
    )
    if how == "auto":
        return "auto"
    specs = list(plugins("llm").values())
    picked = p.q.checkbox(
        "Providers (space to tick, Enter when done; they are tried in this order):",
        [p.q.Choice(f"{s.name:<10} {s.summary}", value=s.name) for s in specs],
        validate=lambda chosen: bool(chosen) or "tick at least one",
    ).unsafe_ask()
    parts: list[Part] = []
    for name in picked:
        spec = resolve("llm", name)
        settings: dict[str, Any] = {}
        default = key_env(spec)
        if default:
            var = p.text(
                f"{name} keys: the NAME of the environment variable holding them (several keys: k1,k2):",
                env_name,
                default,
                "The recipe keeps only ${NAME}; a pasted key is refused.",
            )
            settings["api_keys"] = "${" + var + "}"
            if var not in os.environ:
                p.say(f"  note: {var} is not set here; export it before running")
        parts.append(Part("llm", spec.name, settings))
    return parts


def _embedder(p: Prompter, source: PluginSpec) -> Part | None:
    default = default_embedder(source)
    choices = [(s.name, _title(s), s.summary) for s in plugins("embedder").values()]
    if default is None:
        choices.insert(0, ("none", "none", "keep the vectors the source holds"))
    name = p.select("Embedder:", choices, default=default or "none")
    if name == "none":
        return None
    spec = resolve("embedder", name)
    return Part("embedder", spec.name, _ask_settings(p, spec))


def _publish(p: Prompter, choices: Choices, stem: str) -> None:
    if choices.target.type != "vmig" and p.confirm(
        "Also keep a .vmig.jsonl copy of the memories (portable; what signing and sync publish)?", default=False
    ):
        choices.copy = p.text("copy path:", lambda t: t.strip() or None, f"{stem}.vmig.jsonl", path=True)
    if not choices.vmig_output():
        return
    if p.confirm("Sign the .vmig.jsonl output after each run (vexrun keys generate makes a key)?", default=False):
        key = p.text("signing key id or key file (blank: the only key you have):", lambda t: t.strip() or None)
        choices.signing = {"key": key}
    if p.confirm("Push it to an encrypted git backup (vexrun sync init makes one)?", default=False):

        def place(text: str) -> str:
            try:
                return sync_place(text)
            except UsageError as exc:
                raise Invalid(exc.message) from None

        choices.sync = {"url": p.text("backup repository (git URL or path):", place)}


def _out_path(p: Prompter, out: Path | None, force: bool) -> Path:
    if out is not None:
        if out.exists() and not force and not p.confirm(f"{out} exists. Overwrite it?", default=False):
            raise UsageError(f"{out} exists; nothing written (--force overwrites it)")
        return out

    def ok(text: str) -> Path:
        path = Path(os.path.expanduser(text.strip()))
        if not path.name.endswith((".yaml", ".yml")):
            raise Invalid("a recipe's name ends in .yaml or .yml")
        return path

    while True:
        path: Path = p.text("Write the recipe to:", ok, "recipe.yaml", path=True)
        if force or not path.exists() or p.confirm(f"{path} exists. Overwrite it?", default=False):
            return path


def run_wizard(out: Path | None, *, force: bool = False, prompter: Prompter | None = None) -> Path:
    """Ask, then write the recipe; returns its path."""
    from .write import write_recipe

    p = prompter or Prompter()
    p.say("vexrun init: a few questions, then a commented recipe you can read, commit and run.")
    p.say("Every answer is checked as you type; nothing is written before the end; Ctrl-C stops.")
    src = _pick(p, "source", "claude-export")
    source = Part("source", src.name, _ask_settings(p, src))
    dst = _pick(p, "sink", "sqlite")
    target = Part("sink", dst.name, _ask_settings(p, dst))
    choices = Choices(source=source, target=target)
    where = (out or Path("recipe.yaml")).parent
    if p.confirm("Check now that the source and the target answer (connects, writes nothing)?", default=True):
        _check_now(p, choices, where)
    mode = p.select("Mode:", [(m, m, d) for m, d in MODES.items()], default="raw")
    choices.mode = mode  # type: ignore[assignment]
    if mode != "raw":
        choices.providers = _providers(p)
    choices.embed = _embedder(p, src)
    stem = os.path.splitext(str(target.settings.get("path") or "memory"))[0]
    _publish(p, choices, stem)
    path = _out_path(p, out, force)
    written = write_recipe(choices, path, force=True)
    p.say(f"wrote {written}")
    return written
