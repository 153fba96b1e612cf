"""Milvus / Zilliz Cloud, and Milvus Lite, as a source and a sink (pymilvus ``MilvusClient``). See
:mod:`.common` for the collection layout vexrun writes."""

from __future__ import annotations

from .sink import MilvusSink, MilvusSinkConfig
from .source import MilvusSource, MilvusSourceConfig

__all__ = ["MilvusSink", "MilvusSinkConfig", "MilvusSource", "MilvusSourceConfig"]
