"""Registries of sources, sinks, embedders (and later LLM providers and convert formats).

Every plugin, built-in or third-party, is a :class:`PluginSpec` published through the ``vexrun.plugins``
entry-point group: the entry point names a module attribute holding a list of specs. vexrun's own
connectors register exactly this way (``vexrun.builtins:PLUGINS`` in ``pyproject.toml``). A spec names its
config model and implementation as ``"module:attr"`` strings, so listing plugins and reading their
capabilities imports no SDK.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, Literal

from .connectors.base import Capabilities
from .errors import UsageError

__all__ = ["GROUP", "Kind", "PluginSpec", "load", "plugins", "resolve"]

GROUP = "vexrun.plugins"
Kind = Literal["source", "sink", "embedder", "llm", "convert"]


@dataclass(frozen=True)
class PluginSpec:
    kind: Kind
    name: str
    #: "module:ConfigClass" — a pydantic model whose ``type`` field is a Literal of name + aliases
    config: str
    #: "module:Class" — instantiated as Class(config, ...) when a run needs it
    impl: str
    aliases: tuple[str, ...] = ()
    summary: str = ""
    #: the pip extra that installs what ``impl`` imports, and the modules that must import
    extra: str | None = None
    requires: tuple[str, ...] = ()
    capabilities: Capabilities | None = None
    #: the exact install command to print when ``requires`` is missing (default: pip install 'vexrun[extra]')
    install: str | None = None

    def config_model(self) -> Any:
        return _attr(self.config)

    def implementation(self) -> Any:
        missing = [m for m in self.requires if not _importable(m)]
        if missing:
            raise UsageError(
                f"the {self.kind} '{self.name}' needs {', '.join(missing)}, which is not installed",
                hint=self.install or (f"pip install 'vexrun[{self.extra}]'" if self.extra else None),
            )
        return _attr(self.impl)

    def installed(self) -> bool:
        return all(_importable(m) for m in self.requires)


def _attr(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@cache
def _all() -> tuple[PluginSpec, ...]:
    specs: list[PluginSpec] = []
    seen_builtin = False
    for ep in entry_points(group=GROUP):
        loaded = ep.load()
        specs.extend(loaded)
        seen_builtin = seen_builtin or ep.value == "vexrun.builtins:PLUGINS"
    if not seen_builtin:
        # Running from a source tree that was never installed: the built-ins are still there.
        from .builtins import PLUGINS

        specs.extend(PLUGINS)
    return tuple(specs)


def plugins(kind: Kind) -> dict[str, PluginSpec]:
    """Registered plugins of a kind, by canonical name."""
    out: dict[str, PluginSpec] = {}
    for spec in _all():
        if spec.kind == kind:
            out.setdefault(spec.name, spec)
    return out


def resolve(kind: Kind, name: str) -> PluginSpec:
    """The plugin called ``name`` (or one of its aliases). Raises UsageError with the known names."""
    for spec in plugins(kind).values():
        if name == spec.name or name in spec.aliases:
            return spec
    known = sorted({n for s in plugins(kind).values() for n in (s.name, *s.aliases)})
    raise UsageError(f"unknown {kind} '{name}' (known: {', '.join(known)})")


def load(kind: Kind, name: str) -> Any:
    """The implementation class of a plugin."""
    return resolve(kind, name).implementation()
