"""The conformance suite runs every test against every connector that has a kit under ``stores/``."""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `conformance.*` and `conftest` helpers

from conformance import stores  # noqa: E402
from conformance.kit import StoreKit  # noqa: E402


def _kits() -> dict[str, StoreKit]:
    kits = {}
    for info in pkgutil.iter_modules(stores.__path__):
        module = importlib.import_module(f"conformance.stores.{info.name}")
        kits[module.KIT.name] = module.KIT
    return kits


KITS = _kits()


class Running:
    """A kit with its started service."""

    def __init__(self, kit: StoreKit, handle: Any) -> None:
        self.kit = kit
        self.handle = handle

    def target(self, collection: str) -> dict[str, Any]:
        return self.kit.target(self.handle, collection)

    def source(self, collection: str, namespace: str | None = None) -> dict[str, Any]:
        return self.kit.source(self.handle, collection, namespace)

    def count(self, collection: str) -> int:
        return self.kit.count(self.handle, collection)


_started: dict[str, Running] = {}


@pytest.fixture(scope="session")
def services(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Running]]:
    yield _started
    for running in _started.values():
        running.kit.stop(running.handle)


@pytest.fixture(params=sorted(KITS))
def store(
    request: pytest.FixtureRequest, services: dict[str, Running], tmp_path_factory: pytest.TempPathFactory
) -> Running:
    """The connector under test, its service started once per session. A service that cannot start is
    a failing test, never a skip."""
    name = request.param
    if name not in services:
        kit = KITS[name]
        services[name] = Running(kit, kit.start(tmp_path_factory.mktemp(f"svc-{name}")))
    return services[name]
