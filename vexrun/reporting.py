"""What a run tells the person watching: progress bars on a terminal (rich), log lines otherwise.
Everything goes to stderr, through the secret redactor."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .redact import redact

__all__ = ["Reporter"]

_LOG_EVERY_S = 10.0


class Reporter:
    def __init__(self, mode: str = "auto") -> None:
        tty = sys.stderr.isatty()
        self.mode = {"auto": "bar" if tty else "log"}.get(mode, mode)
        self._progress: Any = None
        self._tasks: dict[str, Any] = {}
        self._last_log = 0.0
        self._t0 = time.perf_counter()

    def say(self, message: str) -> None:
        text = redact(message)
        if self._progress is not None:
            self._progress.console.print(text, markup=False, highlight=False)
        elif self.mode != "none" or message.startswith(("warning", "Resuming")):
            print(text, file=sys.stderr, flush=True)

    @contextmanager
    def live(self, total_batches: int | None) -> Iterator[None]:
        self._t0 = time.perf_counter()
        if self.mode != "bar":
            yield
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        ) as progress:
            self._progress = progress
            self._tasks = {
                "batches": progress.add_task("batches", total=total_batches, note=""),
                "records": progress.add_task("records", total=None, note=""),
            }
            try:
                yield
            finally:
                self._progress = None

    def update(self, counts: dict[str, Any]) -> None:
        read = counts.get("source", {}).get("read", 0)
        written = max((s.get("written", 0) for s in counts.get("store", {}).values()), default=0)
        em = counts.get("embed", {})
        note = f"written {written:,}"
        if em:
            note += f" · embedded {em.get('computed', 0):,} (cached {em.get('cached', 0):,})"
        if counts.get("rejected"):
            note += f" · rejected {counts['rejected']:,}"
        if self._progress is not None:
            self._progress.advance(self._tasks["batches"])
            self._progress.update(self._tasks["records"], completed=read, note=note)
            return
        now = time.perf_counter()
        if self.mode == "log" and now - self._last_log >= _LOG_EVERY_S:
            self._last_log = now
            rate = read / max(now - self._t0, 1e-9)
            print(redact(f"[vexrun] read {read:,} records ({rate:,.0f}/s) · {note}"), file=sys.stderr, flush=True)
