"""Ray itself: joining a cluster or starting a local one, and the actor classes (Ray is imported here only)."""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import Any

from ..errors import ConnectError, UsageError

__all__ = ["actor_classes", "connect", "cpus", "disconnect"]

_started = False


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UsageError("run.executor: ray needs Ray: pip install 'vexrun[ray]'") from None
    return ray


def connect(settings: Any, say: Callable[[str], None]) -> Any:
    """Join ``run.ray.address`` (or ``RAY_ADDRESS``), else start a local Ray on this machine's cores."""
    global _started
    ray = _ray()
    if ray.is_initialized():
        return ray
    address = settings.address or os.environ.get("RAY_ADDRESS") or None
    # workers import vexrun from where this process does (a source checkout, a virtual environment)
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p)
    env = {"env_vars": {"PYTHONPATH": path, "RAY_USAGE_STATS_ENABLED": "0"}}
    kwargs: dict[str, Any] = {"logging_level": "ERROR", "log_to_driver": False, "runtime_env": env}
    if address:
        _probe(address)
    try:
        if address:
            ray.init(address=address, **kwargs)
            say(f"executor ray: joined the cluster at {_public(address)}")
        else:
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **kwargs)
            _started = True
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = _public(address) if address else "a local Ray"
        raise ConnectError(f"executor ray: cannot start or join {where}: {str(exc).splitlines()[0]}") from None
    return ray


def _probe(address: str) -> None:
    """Refuse an address nothing listens on at once (ray.init would retry it for minutes)."""
    import socket

    rest = address.split("://", 1)[-1].rpartition("@")[2]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", a name Ray resolves itself
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as exc:
        why = exc.strerror or exc
        raise ConnectError(f"executor ray: cannot join the cluster at {_public(address)}: {why}") from None


def _public(address: str) -> str:
    """The address without credentials (ray://user:secret@host:port)."""
    if "@" in address:
        scheme, _, rest = address.partition("://")
        return f"{scheme}://{rest.rpartition('@')[2]}" if rest else address.rpartition("@")[2]
    return address


def cpus() -> int:
    ray = _ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def disconnect() -> None:
    """Stop the local Ray this process started (a cluster it joined keeps running)."""
    global _started
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()
    _started = False


@cache
def actor_classes() -> tuple[Any, Any, Any]:
    """(the worker, the coordinator, the budget) as Ray actor classes."""
    ray = _ray()
    from .budget import GlobalBudget
    from .worker import Coordinator, PartitionWorker

    worker = ray.remote(PartitionWorker)
    coord = ray.remote(num_cpus=0)(Coordinator)
    budget = ray.remote(num_cpus=0)(GlobalBudget)
    return worker, coord, budget
