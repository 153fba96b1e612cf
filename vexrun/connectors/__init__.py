"""Sources and sinks: one module per store or file kind (see :mod:`vexrun.connectors.base`)."""
