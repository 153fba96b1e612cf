"""vexrun's own plugins, registered through the same ``vexrun.plugins`` entry point a third-party
package would use (see ``pyproject.toml``).

This module only gathers: every package under :mod:`vexrun.connectors` that has a ``plugin`` module
contributes that module's ``PLUGINS`` (a new store needs no edit here), then the LLM providers, the
embedders and the test fakes. The ``plugin`` modules hold specs and capabilities only, so gathering them
imports no SDK.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

from . import connectors
from .pluginspec import PluginSpec
from .providers.embed.plugin import PLUGINS as EMBEDDERS
from .providers.llm.plugin import PLUGINS as LLMS
from .testing.plugins import PLUGINS as FAKES

__all__ = ["PLUGINS", "connector_plugin_modules"]


def connector_plugin_modules() -> list[str]:
    """``vexrun.connectors.<package>.plugin`` for every connector package that has one, by package name."""
    found = []
    for info in pkgutil.iter_modules(connectors.__path__):
        inside = [os.path.join(path, info.name) for path in connectors.__path__]
        if info.ispkg and any(m.name == "plugin" for m in pkgutil.iter_modules(inside)):
            found.append(f"{connectors.__name__}.{info.name}.plugin")
    return sorted(found)


def _connector_plugins() -> list[PluginSpec]:
    specs = [spec for module in connector_plugin_modules() for spec in importlib.import_module(module).PLUGINS]
    # Listings and the recipe schema show what needs no extra (files, exports, the local store) first.
    return sorted(specs, key=lambda spec: spec.extra is not None)


PLUGINS: list[PluginSpec] = [*_connector_plugins(), *LLMS, *EMBEDDERS, *FAKES]
