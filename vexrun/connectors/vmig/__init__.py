"""``.vmig.jsonl`` files as a source and as a resumable sink (:mod:`.file`); the format itself lives in
:mod:`vexrun.vmig`."""

from __future__ import annotations

from .file import VmigSink, VmigSinkConfig, VmigSource, VmigSourceConfig, edges_path

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]
