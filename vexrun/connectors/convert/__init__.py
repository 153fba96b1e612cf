"""The ``convert`` target: a run's records written as fine-tuning / chat examples, exactly as ``vexrun convert``
writes them (:mod:`vexrun.convert`)."""

from __future__ import annotations

from .sink import ConvertSink, ConvertSinkConfig

__all__ = ["ConvertSink", "ConvertSinkConfig"]
