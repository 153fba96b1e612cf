"""The wizard's answers (:class:`Choices`) as a commented recipe, with the schema modeline, and its checks.

The text is built line by line, not dumped, so that every section carries a comment saying what it is; each
value goes through ``yaml.safe_dump`` so that it reads back exactly. Paths typed relative to the working
directory are rewritten relative to the recipe, which is what a recipe's paths are relative to.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml

from ..registry import Kind, resolve

__all__ = ["MODES", "Choices", "Part", "render_recipe", "schema_ref", "secret_refs"]

Mode = Literal["raw", "extract", "smart"]

#: the modes, as the wizard and the recipe's comment explain them
MODES: dict[str, str] = {
    "raw": "chunk, embed, graph, store: every conversation chunk becomes a memory (no LLM, no key)",
    "extract": "an LLM extracts atomic facts, which are scored and deduplicated before embedding",
    "smart": "like extract, and the chunking is picked per conversation",
}
SCHEMA_URL = "https://vexrun.dev/schemas/recipe.schema.json"


@dataclass
class Part:
    """One pluggable part: a source, target, embedder or LLM provider, with the settings given for it."""

    kind: Kind
    type: str
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def summary(self) -> str:
        return resolve(self.kind, self.type).summary


@dataclass
class Choices:
    source: Part
    target: Part
    mode: Mode = "raw"
    embed: Part | None = None
    #: extract / smart: "auto", or the providers in order
    providers: Literal["auto"] | list[Part] = "auto"
    #: also write a .vmig.jsonl copy here (what signing and sync publish)
    copy: str | None = None
    signing: dict[str, Any] | None = None
    sync: dict[str, Any] | None = None
    name: str | None = None

    def vmig_output(self) -> bool:
        return self.copy is not None or self.target.type == "vmig"


def schema_ref(recipe: Path) -> str:
    """The modeline's schema: this checkout's ``schemas/recipe.schema.json`` relative to the recipe when there is
    one (a source tree or an editable install), else its published URL."""
    local = Path(__file__).resolve().parent.parent.parent / "schemas" / "recipe.schema.json"
    if not local.is_file():
        return SCHEMA_URL
    try:
        rel = os.path.relpath(local, recipe.resolve().parent)
    except ValueError:  # another drive
        return str(local)
    return rel if not rel.startswith("../../") else str(local)


def _scalar(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10_000).strip()
    return text.removesuffix("\n...").removesuffix("...").strip()


def _relative(value: str, recipe: Path, cwd: Path) -> str:
    """A path typed relative to ``cwd``, as the recipe (relative to its own directory) needs it; absolute when
    it would climb more than one directory (the recipe and its data then move apart without breaking)."""
    if value.startswith("${") or "://" in value:
        return value
    absolute = Path(value) if os.path.isabs(value) else cwd / value
    try:
        rel = os.path.relpath(absolute, recipe.resolve().parent)
    except ValueError:
        return str(absolute)
    return rel if not rel.startswith("../../") else str(absolute.resolve())


def _is_path(name: str) -> bool:
    return name == "path" or name.endswith(("_dir", "_path"))


def _settings_lines(part: Part, recipe: Path, cwd: Path, indent: str) -> list[str]:
    lines = []
    for name, value in part.settings.items():
        if value is None:
            continue
        if isinstance(value, str) and _is_path(name):
            value = _relative(value, recipe, cwd)
        lines.append(f"{indent}{name}: {_scalar(value)}")
    return lines


def _part_lines(key: str, part: Part, recipe: Path, cwd: Path) -> list[str]:
    """``key:`` then the part's type (with what it is) and settings."""
    head = [f"{key}:", f"  type: {_scalar(part.type)}  # {part.summary}"]
    return head + _settings_lines(part, recipe, cwd, "  ")


def _item_lines(part: Part, recipe: Path, cwd: Path, indent: str) -> list[str]:
    """The part as an item of a list."""
    head = [f"{indent}- type: {_scalar(part.type)}  # {part.summary}"]
    return head + _settings_lines(part, recipe, cwd, indent + "  ")


def _section(key: str, comment: str, values: dict[str, Any]) -> list[str]:
    given = {k: v for k, v in values.items() if v is not None}
    if not given:
        return [f"{key}: {{}}  # {comment}"]
    return [f"{key}:  # {comment}", *(f"  {k}: {_scalar(v)}" for k, v in given.items())]


def secret_refs(choices: Choices) -> list[str]:
    """The ``${VAR}`` references the recipe holds: the variables to set before running."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and value.startswith("${"):
            name = value[2:].split("}")[0].split(":")[0]
            if name not in found:
                found.append(name)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    parts = [choices.source, choices.target, choices.embed]
    parts += choices.providers if isinstance(choices.providers, list) else []
    for part in parts:
        if part is not None:
            walk(part.settings)
    walk(choices.signing or {})
    walk(choices.sync or {})
    return found


def render_recipe(choices: Choices, recipe: Path, cwd: Path | None = None) -> str:
    """The recipe text for ``choices``, to be written at ``recipe``."""
    cwd = cwd or Path.cwd()
    name = choices.name or recipe.name.split(".")[0]
    shown = os.path.relpath(recipe, cwd) if recipe.is_absolute() else str(recipe)
    refs = secret_refs(choices)
    head = [
        f"# yaml-language-server: $schema={schema_ref(recipe)}",
        "#",
        f"# Written by `vexrun init` on {date.today().isoformat()}: {choices.source.type} → {choices.target.type}, "
        f"mode {choices.mode}.",
        f"#   vexrun plan {shown}      # what a run will do, without running it",
        f"#   vexrun {shown}           # run it; a killed run resumes where it stopped",
    ]
    if refs:
        head.append("# Secrets come from the environment, never from this file; set them before running:")
        head += [f"#   export {ref}=…" for ref in refs]
    lines = [
        *head,
        "version: 1",
        f"name: {_scalar(name)}",
        f"mode: {choices.mode}  # {MODES[choices.mode]}",
        *_part_lines("source", choices.source, recipe, cwd),
    ]
    if choices.mode != "raw":
        lines.append("llm:  # the providers extraction calls, in order; each falls over to the next")
        if choices.providers == "auto":
            lines.append("  providers: auto  # those whose keys are set (GROQ_API_KEYS, …), plus a local Ollama")
        else:
            lines.append("  providers:")
            for provider in choices.providers:
                lines += _item_lines(provider, recipe, cwd, "    ")
    if choices.embed is not None:
        lines += [
            "# the embedding model for records without a vector",
            *_part_lines("embed", choices.embed, recipe, cwd),
        ]
    if choices.copy is None:
        lines += _part_lines("target", choices.target, recipe, cwd)
    else:
        lines.append("targets:  # every batch goes to each of them")
        lines += _item_lines(choices.target, recipe, cwd, "  ")
        lines += _item_lines(Part("sink", "vmig", {"path": choices.copy}), recipe, cwd, "  ")
    if choices.signing is not None:
        lines += _section("signing", "a detached <file>.sig of the .vmig.jsonl output after each run", choices.signing)
    if choices.sync is not None:
        lines += _section("sync", "push the .vmig.jsonl output (signed) to the encrypted git backup", choices.sync)
    return "\n".join(lines) + "\n"
