"""Every migration proves itself: a run's reconciliation (``run.verify``) and ``vexrun compare``.

::

    diff.py       comparing a record with what a store gave back; the report of differences
    ledger.py     what a run wrote to each target (ids per namespace, a seeded sample of contents)
    reconcile.py  after a run: each target against its ledger
    compare.py    any two stores or files against each other (``vexrun compare``)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diff import Diff, differs, read_back
from .ledger import Ledger, keep_fraction
from .reconcile import Reconciled, reconcile

if TYPE_CHECKING:
    from ..connectors.base import Sink
    from ..stages.base import StageSpec

__all__ = ["Diff", "Ledger", "Reconciled", "differs", "open_ledger", "read_back", "reconcile", "verify_targets"]


def open_ledger(
    state_dir: Path, mode: str, sample: int, run_id: int, resumed_at: int | None, estimate: int | None
) -> Ledger | None:
    """The run's ledger in its state directory (None with ``run.verify: off``)."""
    if mode == "off":
        return None
    return Ledger(
        state_dir / "ledger.sqlite",
        run_id=run_id,
        keep=keep_fraction(mode, sample, estimate),
        shrink=sample if mode == "sample" and not (estimate and estimate > 0) else None,
        digests=mode == "full",
        resume_batches=resumed_at,
    )


def verify_targets(
    sinks: Sequence[tuple[StageSpec, Sink]], ledger: Ledger | None, mode: str, sample: int, say: Callable[[str], None]
) -> tuple[dict[str, Any], bool]:
    """Reconcile every target; returns the figures per target (for the summary) and whether all hold. Without
    a ledger (``run.verify: off``) there is nothing to check."""
    figures: dict[str, Any] = {}
    ok = True
    if ledger is None:
        return figures, ok
    for spec, sink in sinks:
        caps = spec.plugin.capabilities if spec.plugin is not None else None
        result = reconcile(sink, caps, spec.title, ledger, mode, sample)
        figures[spec.title] = result.to_json()
        if result.verified:
            say(result.headline())
        ok = ok and result.ok
    return figures, ok
