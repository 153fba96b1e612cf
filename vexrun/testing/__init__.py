"""Deterministic helpers for tests and benchmarks, shipped with the package so users can test their
own recipes and connectors the way vexrun tests itself. Nothing here touches the network."""
