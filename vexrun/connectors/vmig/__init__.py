"""``.vmig.jsonl`` files as a source (:mod:`.file`) and as a resumable sink (:mod:`.sink`); the format itself
lives in :mod:`vexrun.vmig`."""

from __future__ import annotations

from .file import VmigSource, VmigSourceConfig, edges_path
from .sink import VmigSink, VmigSinkConfig

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]
