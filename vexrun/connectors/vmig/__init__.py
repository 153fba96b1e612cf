"""``.vmig.jsonl`` files as a source (:mod:`.file`) and as a resumable sink (:mod:`.sink`); the format itself
lives in :mod:`vexrun.vmig`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .file import VmigSource, VmigSourceConfig, edges_path
    from .sink import VmigSink, VmigSinkConfig

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "VmigSource": ".file",
        "VmigSourceConfig": ".file",
        "edges_path": ".file",
        "VmigSink": ".sink",
        "VmigSinkConfig": ".sink",
    },
)
