"""The former home of the ``.vmig.jsonl`` connector, kept as an import path: it lives in
:mod:`vexrun.connectors.vmig`."""

from __future__ import annotations

from .vmig import VmigSink, VmigSinkConfig, VmigSource, VmigSourceConfig, edges_path

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]
