"""Registries of sources, sinks, embedders (and later LLM providers and convert formats).

Every plugin, built-in or third-party, is a :class:`PluginSpec` published through the ``vexrun.plugins``
entry-point group: the entry point names a module attribute holding a list of specs. vexrun's own
connectors register exactly this way (``vexrun.builtins:PLUGINS`` in ``pyproject.toml``, which gathers the
``PLUGINS`` list each connector package exports from its ``plugin`` module). A spec (:mod:`vexrun.pluginspec`)
names its config model and implementation as ``"module:attr"`` strings, so listing plugins and reading their
capabilities imports no SDK.
"""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from .errors import UsageError
from .pluginspec import Kind, PluginSpec

__all__ = ["GROUP", "Kind", "PluginSpec", "load", "plugins", "resolve"]

GROUP = "vexrun.plugins"


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
