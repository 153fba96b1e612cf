"""Progress a person can trust: what a run has done, out of how much, how fast, when it ends, and which stage
holds it up. A bar on a terminal (rich, imported only then), one plain line every few seconds otherwise. All of
it goes to stderr, through the secret redactor.

Where a total comes from, best first:

- every source can count its records (:meth:`~vexrun.connectors.base.Source.estimate`: a store's count API, a
  ``.vmig.jsonl`` sidecar's record count): the bar counts records;
- every source reads one local file (capability ``file_input``) and its cursor carries its byte position as
  ``offset`` (``.vmig.jsonl`` files, conversation exports): the bar counts bytes read of the file sizes. A zip is
  read inflated, so its size is no total;
- otherwise there is no total: the line says so, and still shows the rate and the slowest stage.
"""

from __future__ import annotations

import os
import sys
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .redact import redact

__all__ = [
    "LOG_EVERY_S",
    "RunProgress",
    "SourceMeter",
    "StageClock",
    "byte_pair",
    "byte_progress",
    "duration",
    "human_bytes",
]

#: Files smaller than this get no bar: they are done before a bar would be worth drawing.
MIN_BYTES = 8 * 1024 * 1024
#: Off a terminal, one progress line this often (seconds); ``VEXRUN_PROGRESS_EVERY`` overrides it.
LOG_EVERY_S = 10.0


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


def human_bytes(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{int(n):,} B"


def byte_pair(done: float, total: float) -> str:
    """``1.2/4.8 MB`` (one unit, the total's)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if total >= scale:
            return f"{done / scale:.1f}/{total / scale:.1f} {unit}"
    return f"{int(done):,}/{int(total):,} B"


def duration(seconds: float) -> str:
    """``4s``, ``3m05s``, ``2h07m``."""
    s = int(round(max(seconds, 0)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


# -- where the time goes ---------------------------------------------------------------------------------------


class StageClock:
    """Seconds spent in each part of a run, by the title its row has in the run table: reading the source,
    each batch stage, each target."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, title: str, seconds: float) -> None:
        self.seconds[title] = self.seconds.get(title, 0.0) + seconds

    @contextmanager
    def time(self, title: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.add(title, time.perf_counter() - t0)

    def timed(self, batches: Iterator[Any], title: str) -> Iterator[Any]:
        """``batches`` with the time spent waiting for each item counted under ``title``."""
        it = iter(batches)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.add(title, time.perf_counter() - t0)
                yield item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # a reader stopped part way (Ctrl-C, too many rejects) releases its file or thread now

    def wrap(self, stages: Sequence[Any], titles: Sequence[str]) -> list[Any]:
        """The stages, each timed under its title when an executor calls its ``process`` in this process."""
        return [_Timed(stage, title, self) for stage, title in zip(stages, titles, strict=True)]

    def slowest(self) -> tuple[str, float, float] | None:
        """(title, seconds, share of all the time measured) of the part that took longest; None before any."""
        total = sum(self.seconds.values())
        if not self.seconds or total <= 0:
            return None
        title, seconds = max(self.seconds.items(), key=lambda kv: kv[1])
        return title, seconds, seconds / total

    def to_json(self) -> dict[str, float]:
        return {title: round(s, 3) for title, s in self.seconds.items()}


class _Timed:
    """A stage whose ``process`` is timed; everything else is the stage's own."""

    def __init__(self, stage: Any, title: str, clock: StageClock) -> None:
        self.stage, self.title, self.clock = stage, title, clock

    def process(self, batch: Any) -> Any:
        with self.clock.time(self.title):
            return self.stage.process(batch)

    def __getattr__(self, name: str) -> Any:
        if name in ("stage", "title", "clock"):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.stage, name)


# -- how much there is -----------------------------------------------------------------------------------------


def _file_size(spec: Any, source: Any) -> int | None:
    """The size of the one local file a source reads (``file_input`` sources), or None: a folder, a zip, no file."""
    caps = spec.plugin.capabilities if getattr(spec, "plugin", None) is not None else None
    path = getattr(getattr(source, "config", None), "path", None)
    if caps is None or not caps.file_input or not isinstance(path, str):
        return None
    try:
        resolved = Path(source.ctx.resolve_path(path))
        if not resolved.is_file() or zipfile.is_zipfile(resolved):
            return None
        return resolved.stat().st_size
    except (OSError, AttributeError):
        return None


def _estimate(source: Any) -> int | None:
    try:
        n = source.estimate()
    except Exception:  # noqa: BLE001 - an estimate is a nicety
        return None
    return n if isinstance(n, int) and n >= 0 else None


@dataclass
class SourceMeter:
    """What a run can know of how much it has to read, and how far it is (see the module's docstring)."""

    estimates: list[int | None] = field(default_factory=list)
    sizes: list[int | None] = field(default_factory=list)

    @classmethod
    def measure(cls, sources: Sequence[tuple[Any, Any]]) -> SourceMeter:
        """Ask each (spec, opened source) for its record count, and failing that its file size."""
        estimates = [_estimate(source) for _, source in sources]
        sizes = [
            _file_size(spec, source) if n is None else None
            for (spec, source), n in zip(sources, estimates, strict=True)
        ]
        return cls(estimates, sizes)

    @property
    def unit(self) -> str | None:
        """ "records", "bytes" or None (no total)."""
        if self.estimates and all(n is not None for n in self.estimates):
            return "records"
        if self.sizes and all(n is not None for n in self.sizes):
            return "bytes"
        return None

    @property
    def total(self) -> int | None:
        values = {"records": self.estimates, "bytes": self.sizes}.get(self.unit or "")
        return None if values is None else sum(n or 0 for n in values)

    @property
    def records(self) -> int | None:
        """The records in all, when every source can tell."""
        return self.total if self.unit == "records" else None

    def done(self, read: int, index: int, cursor: dict[str, Any] | None) -> int | None:
        """How far the run is, in :attr:`unit`: records read, or bytes of the sources before ``index`` plus the
        byte ``offset`` of ``cursor`` in source ``index``."""
        if self.unit == "records":
            return read
        if self.unit == "bytes":
            before = sum(n or 0 for n in self.sizes[:index])
            offset = cursor.get("offset") if isinstance(cursor, dict) else None
            if index >= len(self.sizes):
                return before
            if isinstance(offset, int) and not isinstance(offset, bool):
                return before + min(offset, self.sizes[index] or 0)
            return before if cursor is None else None
        return None


# -- telling the person watching -------------------------------------------------------------------------------


def _round2(n: float) -> int:
    """``n`` to two significant digits: an extrapolated count claims no more than it knows."""
    if n < 100:
        return int(round(n))
    scale = 10 ** (len(str(int(n))) - 2)
    return int(round(n / scale) * scale)


def _every() -> float:
    try:
        return max(0.05, float(os.environ.get("VEXRUN_PROGRESS_EVERY", LOG_EVERY_S)))
    except ValueError:
        return LOG_EVERY_S


class RunProgress:
    """A run's progress on stderr: ``mode`` "bar" (rich), "log" (a line every :data:`LOG_EVERY_S` seconds, the
    first after the first batch, the last at the end), "none" (warnings only), or "auto" (bar on a terminal)."""

    def __init__(self, mode: str = "auto") -> None:
        tty = sys.stderr.isatty()
        self.mode = {"auto": "bar" if tty else "log"}.get(mode, mode)
        self.every = _every()
        self.clock = StageClock()
        self.meter = SourceMeter()
        self._bar: Any = None
        self._task: Any = None
        self._last_log: float | None = None
        self._t0 = time.perf_counter()
        self._start: tuple[int, int | None] = (0, None)  # (records read, done) when this process began
        self._now: tuple[int, int | None, int] = (0, None, 0)  # (read, done, batches)
        self._note = ""

    def say(self, message: str) -> None:
        text = redact(message)
        if self._bar is not None:
            self._bar.console.print(text, markup=False, highlight=False)
        elif self.mode != "none" or message.startswith(("warning", "Resuming")):
            print(text, file=sys.stderr, flush=True)

    @contextmanager
    def live(self, meter: SourceMeter, read: int, index: int, cursor: dict[str, Any] | None) -> Iterator[None]:
        """Show progress while the batches run; ``read``, ``index`` and ``cursor``: where a resumed run starts."""
        self.meter = meter
        self._t0 = time.perf_counter()
        done = meter.done(read, index, cursor)
        self._start = (read, done)
        self._now = (read, done, 0)
        if self.mode != "bar":
            ended = "stopped"
            try:
                yield
                ended = "in all"
            finally:
                if self.mode == "log" and self._now[2]:
                    self._log(final=ended)
            return
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TextColumn
        from rich.text import Text

        watch = self

        class Board(Progress):
            """The bar with how far and how fast, and under it what was written and the slowest stage."""

            def get_renderables(self) -> Iterator[Any]:
                yield self.make_tasks_table(self.tasks)
                if watch._now[2]:
                    yield Text("  " + redact(" · ".join(watch.detail())), no_wrap=True, overflow="ellipsis")

        with Board(
            TextColumn("{task.description}"),
            BarColumn(bar_width=24),
            TextColumn("{task.fields[line]}"),
            console=Console(stderr=True),
            transient=False,
        ) as bar:
            self._bar = bar
            self._task = bar.add_task("run", total=meter.total, completed=min(done or 0, meter.total or 0), line="")
            try:
                yield
            finally:
                self._bar = None

    def update(self, counts: dict[str, Any], batches: int, index: int, cursor: dict[str, Any] | None) -> None:
        """After each committed batch: the counts so far, and where the source stands."""
        read = int(counts.get("source", {}).get("read", 0))
        self._now = (read, self.meter.done(read, index, cursor), batches)
        written = max((s.get("written", 0) for s in counts.get("store", {}).values()), default=0)
        em = counts.get("embed", {})
        note = f"written {written:,}"
        if em:
            note += f" · embedded {em.get('computed', 0):,} (cached {em.get('cached', 0):,})"
        if counts.get("rejected"):
            note += f" · rejected {counts['rejected']:,}"
        self._note = note
        if self._bar is not None:
            total = self.meter.total
            done = self._now[1]
            self._bar.update(
                self._task,
                total=total,
                completed=min(done, total) if done is not None and total else 0,
                line=redact(" · ".join(self.amount())),
            )
            return
        now = time.perf_counter()
        if self.mode == "log" and (self._last_log is None or now - self._last_log >= self.every):
            self._last_log = now
            self._log()

    def rates(self) -> tuple[float, float | None]:
        """(records per second, seconds left or None) over this process's part of the run."""
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        read, done, _ = self._now
        rate = (read - self._start[0]) / elapsed
        total, done0 = self.meter.total, self._start[1]
        if total is None or done is None or done0 is None or done > total:
            return rate, None
        speed = (done - done0) / elapsed
        return rate, ((total - done) / speed if speed > 0 else None)

    def amount(self, *, final: bool = False) -> list[str]:
        """How far, how fast, how long still: ``12,000/~48,000 records``, ``1.2/4.8 MB (25%)``, the rate, and
        the ETA (or, ``final``, the time taken)."""
        read, done, _ = self._now
        total, unit = self.meter.total, self.meter.unit
        rate, left = self.rates()
        if unit == "records" and total is not None:
            parts = [f"{read:,}/{total:,} records" + (f" ({min(read / total, 1):.0%})" if total else "")]
        elif unit == "bytes" and total is not None and done is not None:
            guess = f"/~{_round2(read * total / done):,}" if done and read and done < total else ""
            share = f" ({min(done / total, 1):.0%})" if total else ""
            parts = [f"{read:,}{guess} records", f"{byte_pair(done, total)}{share}"]
        else:
            parts = [f"{read:,} records (no total: the source cannot tell)"]
        parts.append(f"{rate:,.0f} records/s")
        if final:
            parts.append(f"in {duration(time.perf_counter() - self._t0)}")
        elif left is not None:
            parts.append(f"ETA {duration(left)}")
        return parts

    def detail(self, *, final: bool = False) -> list[str]:
        """The batch, what was written, embedded, rejected, and which stage holds the run up."""
        batches = self._now[2]
        parts = [f"{batches:,} batches" if final else f"batch {batches:,}"]
        if self._note:
            parts.append(self._note)
        slow = self.clock.slowest()
        if slow is not None:
            parts.append(f"slowest: {slow[0]}, {slow[2]:.0%} of the time")
        return parts

    def line(self, *, final: bool = False) -> str:
        """Everything on one line (the log line)."""
        return " · ".join(self.amount(final=final) + self.detail(final=final))

    def _log(self, *, final: str = "") -> None:
        """One log line; ``final`` names the last one ("in all", "stopped")."""
        text = f"[vexrun] {final + ': ' if final else ''}{self.line(final=bool(final))}"
        print(redact(text), file=sys.stderr, flush=True)
