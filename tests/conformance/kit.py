"""What each store gives the conformance suite: how to start its server, and the recipe configs for it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Config = dict[str, Any]


@dataclass
class StoreKit:
    """One connector under test. ``start`` runs once per test session (a server, an embedded engine, or
    nothing) and returns a handle that the other callables receive; ``stop`` stops what it started."""

    name: str
    #: sink config (a dict, written into a recipe) for a fresh collection/table called ``collection``
    target: Callable[[Any, str], Config]
    #: source config reading that collection back, optionally one namespace only
    source: Callable[[Any, str, str | None], Config]
    #: how many records the collection holds, asked through the store's own SDK (not through vexrun)
    count: Callable[[Any, str], int]
    start: Callable[[Path], Any] = lambda tmp: None
    stop: Callable[[Any], None] = lambda handle: None
    #: a sink config with wrong credentials (None: the store has no authentication)
    bad_credentials: Callable[[Any, str], Config] | None = None
    #: a sink config pointing at a server that does not answer (None: an embedded engine)
    unreachable: Callable[[str], Config] | None = None
    #: True if vectors come back bit-exact; False if the store normalises them (cosine within 1e-6)
    exact_float32: bool = True
    #: extra environment for the CLI (credentials referenced as ${VAR} in the configs)
    env: dict[str, str] = field(default_factory=dict)
    #: the biggest batch (records) a single write may carry; the suite checks splitting above it
    max_batch_records: int | None = None
