"""Milvus / Zilliz Cloud, and Milvus Lite, as a source and a sink (pymilvus ``MilvusClient``). See
:mod:`.common` for the collection layout vexrun writes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .sink import MilvusSink, MilvusSinkConfig
    from .source import MilvusSource, MilvusSourceConfig

__all__ = ["MilvusSink", "MilvusSinkConfig", "MilvusSource", "MilvusSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"MilvusSink": ".sink", "MilvusSinkConfig": ".sink", "MilvusSource": ".source", "MilvusSourceConfig": ".source"},
)
