"""Ray itself: joining a cluster or starting a local one, and the actor classes (Ray is imported here only)."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from ..errors import ConnectError, UsageError

__all__ = ["actor_classes", "connect", "cpus", "disconnect", "reap", "remember", "started"]

_started = False


def _ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    try:
        import ray
    except ImportError:
        raise UsageError("run.executor: ray needs Ray: pip install 'vexrun[ray]'") from None
    return ray


def connect(settings: Any, say: Callable[[str], None], state_dir: Path | None = None) -> Any:
    """Join ``run.ray.address`` (or ``RAY_ADDRESS``), else start a local Ray on this machine's cores (its
    processes are recorded in ``state_dir``, so that the next run stops what a killed one left behind)."""
    global _started
    ray = _ray()
    if state_dir is not None:
        reap(state_dir)
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
            if state_dir is not None:
                remember(state_dir)
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


def started() -> bool:
    """True if this process started the Ray it uses (a local one)."""
    return _started


def cpus() -> int:
    ray = _ray()
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def disconnect(state_dir: Path | None = None) -> None:
    """Stop the local Ray this process started (a cluster it joined keeps running)."""
    global _started
    ray = _ray()
    if ray.is_initialized():
        ray.shutdown()
    if _started and state_dir is not None:
        (state_dir / _PIDS).unlink(missing_ok=True)
    _started = False


_PIDS = "ray-local-pids.json"


def _started_at(pid: int) -> str | None:
    """The process's start time (clock ticks since boot): with the PID, it names one process, not a reused PID."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            return fh.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return None


def _descendants(root: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as fh:
                    ppid = int(fh.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        for kid in kids.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


#: what the command lines of a local Ray's processes hold (the driver's other children, an embedded PostgreSQL
#: server, are never recorded)
_RAY_MARKS = (b"ray::", b"raylet", b"gcs_server", b"/ray/_private/", b"/ray/dashboard/", b"default_worker.py")


def _is_ray(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            cmdline = fh.read()
    except OSError:
        return False
    return any(mark in cmdline for mark in _RAY_MARKS)


def remember(state_dir: Path) -> None:
    """Record the processes of the local Ray this process started (PID and start time)."""
    mine = [pid for pid in _descendants(os.getpid()) if _is_ray(pid)]
    pids = [[pid, t] for pid in mine if (t := _started_at(pid)) is not None]
    (state_dir / _PIDS).write_text(json.dumps(pids))


def reap(state_dir: Path) -> None:
    """Stop the processes a killed run's local Ray left behind (the ones it recorded, if still the same)."""
    path = state_dir / _PIDS
    try:
        recorded = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    for pid, started in recorded:
        if _started_at(int(pid)) == started and _is_ray(int(pid)):
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass
    path.unlink(missing_ok=True)


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
