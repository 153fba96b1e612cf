"""What a plugin declares: :class:`PluginSpec`, a small frozen record that names its config model and its
implementation as ``"module:attr"`` strings, so that listing plugins and reading their capabilities imports
no SDK. Connector packages build their specs from this module (``connectors/<store>/plugin.py``); the
:mod:`vexrun.registry` collects them.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from typing import Any, Literal

from .connectors.base import Capabilities
from .errors import UsageError

__all__ = ["Kind", "PluginSpec", "store_specs"]

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


def store_specs(
    name: str,
    module: str,
    cls: str,
    summary: str,
    caps: Capabilities,
    extra: str | None,
    requires: tuple[str, ...],
    aliases: tuple[str, ...] = (),
) -> list[PluginSpec]:
    """A store is both a source and a sink: ``{module}:{cls}Source`` / ``{cls}SourceConfig`` and the same for
    the sink, with one summary, one extra and one set of capabilities."""
    roles: tuple[tuple[Kind, str], ...] = (("source", "Source"), ("sink", "Sink"))
    return [
        PluginSpec(
            kind,
            name,
            f"{module}:{cls}{role}Config",
            f"{module}:{cls}{role}",
            aliases=aliases,
            summary=summary,
            extra=extra,
            requires=requires,
            capabilities=caps,
        )
        for kind, role in roles
    ]


def _attr(ref: str) -> Any:
    module, _, name = ref.partition(":")
    return getattr(importlib.import_module(module), name)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None
