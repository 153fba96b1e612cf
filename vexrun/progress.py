"""Progress bars on stderr, only when stderr is a terminal (rich is imported only then)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["byte_progress"]

#: Files smaller than this get no bar: they are done before a bar would be worth drawing.
MIN_BYTES = 8 * 1024 * 1024


@contextmanager
def byte_progress(
    total: int | None, label: str, *, enabled: bool | None = None
) -> Iterator[Callable[[int], None] | None]:
    """Yield a function that advances a byte-count bar, or None when no bar is shown."""
    if enabled is None:
        enabled = sys.stderr.isatty() and (total is None or total >= MIN_BYTES)
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)

        def advance(n: int) -> None:
            bar.advance(task, n)

        yield advance
