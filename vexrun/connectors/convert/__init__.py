"""The ``convert`` target: a run's records written as fine-tuning / chat examples, exactly as ``vexrun convert``
writes them (:mod:`vexrun.convert`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .sink import ConvertSink, ConvertSinkConfig

__all__ = ["ConvertSink", "ConvertSinkConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(__name__, {"ConvertSink": ".sink", "ConvertSinkConfig": ".sink"})
