"""vexrun: version-controlled YAML recipes that move AI-agent memory between conversation exports,
``.vmig.jsonl`` files and vector stores.

The public surface is small and listed in ``__all__``. Everything is imported on first use, so
``import vexrun`` (and ``vexrun --help``) stays instant and loads no store SDK, numpy or torch.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .api import load_recipe, plan, run, validate
    from .errors import VexrunError
    from .vmig import (
        Batch,
        InspectReport,
        Record,
        ValidationReport,
        VmigWriter,
        inspect_file,
        read_batches,
        validate_file,
    )

__all__ = [
    "Batch",
    "InspectReport",
    "Record",
    "ValidationReport",
    "VexrunError",
    "VmigWriter",
    "__version__",
    "inspect_file",
    "load_recipe",
    "plan",
    "read_batches",
    "run",
    "validate",
    "validate_file",
]

_LAZY = {
    "Batch": "vexrun.vmig",
    "InspectReport": "vexrun.vmig",
    "Record": "vexrun.vmig",
    "ValidationReport": "vexrun.vmig",
    "VexrunError": "vexrun.errors",
    "VmigWriter": "vexrun.vmig",
    "inspect_file": "vexrun.vmig",
    "load_recipe": "vexrun.api",
    "plan": "vexrun.api",
    "read_batches": "vexrun.vmig",
    "run": "vexrun.api",
    "validate": "vexrun.api",
    "validate_file": "vexrun.vmig",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'vexrun' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
