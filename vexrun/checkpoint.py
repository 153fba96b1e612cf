"""The state directory of a recipe: lock, frozen plan, SQLite checkpoint, embedding cache, events, rejects.

::

    .vexrun/state/<name>-<hash>/
      lock                 held (flock) by the process running the recipe
      plan.json            the redacted plan the checkpoint belongs to
      checkpoint.sqlite    cursor, counts, stage and sink states: one row, one transaction per batch (WAL)
      cache.sqlite         content-addressed embeddings, keyed by (model, text); kept by --fresh and reset
      events.jsonl         append-only log of what happened (secrets redacted)
      rejects.vmig.jsonl   records that failed terminally, re-feedable as a source
      runs/<id>.json       the summary of each run
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from .errors import LockHeld, UsageError
from .redact import redact

__all__ = ["Checkpoint", "Decision", "EventLog", "Progress", "StateDir", "decide", "now_iso", "upgrade"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    summary TEXT
);
CREATE TABLE IF NOT EXISTS progress (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    run_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    source_index INTEGER NOT NULL,
    cursor TEXT,
    batches INTEGER NOT NULL,
    counts TEXT NOT NULL,
    stage_state TEXT NOT NULL,
    sink_state TEXT NOT NULL,
    rejects_bytes INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Progress:
    """Everything needed to continue a run exactly after its last committed batch."""

    run_id: int
    status: str = "running"
    source_index: int = 0
    cursor: dict[str, Any] | None = None
    batches: int = 0
    counts: dict[str, Any] = field(default_factory=dict)
    stage_state: dict[str, Any] = field(default_factory=dict)
    sink_state: dict[str, Any] = field(default_factory=dict)
    rejects_bytes: int = 0


def upgrade(progress: Progress) -> Progress:
    """A progress row written by an earlier vexrun, in today's layout (in place). Before the stage contract,
    extract mode kept its stages' states under one "facts" key and the cascade's usage only in the counts."""
    facts = progress.stage_state.pop("facts", None)
    if isinstance(facts, dict):
        for key in ("score", "dedup", "extract"):
            if key in facts:
                progress.stage_state[key] = dict(facts[key])
        progress.stage_state["graph"] = facts.get("factgraph", {})
        if progress.counts.get("llm"):
            progress.stage_state.setdefault("extract", {})["usage"] = progress.counts["llm"]
    return progress


@dataclass
class Decision:
    """What a run does with the checkpoint it finds: start (fresh; a new run after a completed one, under the
    same plan or a changed one; over with --fresh), resume at ``progress.batches + 1``, or refuse (an unfinished
    run of another plan)."""

    action: str  # "fresh" | "new-run" | "restart" | "resume" | "refuse"
    progress: Progress | None = None
    #: stages whose settings differ from the checkpoint's (refuse, or a new run under a changed plan)
    differ: list[str] = field(default_factory=list)

    def detail(self) -> str:
        p = self.progress
        differ = ", ".join(self.differ)
        if self.action == "refuse" and p is not None:
            return (
                f"run {p.run_id} is unfinished ({p.status}) and its checkpoint belongs to another plan (stages that "
                f"differ: {differ}); a run refuses until you pass --fresh or restore the recipe"
            )
        if self.action == "new-run" and p is not None:
            if p.status != "completed":
                return f"run {p.run_id} stopped before its first batch; a run starts a new one"
            if self.differ:
                return (
                    f"run {p.run_id} completed; a run starts a new one under the changed plan (stages that differ: "
                    f"{differ}; cached work reused)"
                )
            return f"run {p.run_id} completed; a run starts a new one (cached work reused)"
        if self.action == "resume" and p is not None:
            done = p.counts.get("source", {}).get("read", 0)
            return f"resumes run {p.run_id} at batch {p.batches + 1} ({done:,} records already done)"
        if self.action == "restart":
            return "--fresh: the checkpoint is reset, the embedding cache is kept"
        return "no checkpoint: a run starts at the beginning"


def decide(
    stored: tuple[str | None, dict[str, str]],
    progress: Progress | None,
    plan: tuple[str, dict[str, str]],
    *,
    fresh: bool = False,
) -> Decision:
    """The one resume rule. ``stored``: the checkpoint's plan fingerprint and stage fingerprints; ``plan``: the
    same of the plan about to run. A completed run is history: the next run is a new one, whatever the plan.
    Only an unfinished run (running, interrupted, failed) is resumed, and only under the plan it was made with;
    one that committed no batch has nothing to resume, so a changed plan simply starts a new run."""
    fingerprint, stages = stored
    if progress is None or fingerprint is None:
        return Decision("fresh", progress)
    if fresh:
        return Decision("restart", progress)
    differ: list[str] = []
    if fingerprint != plan[0]:
        now = plan[1]
        differ = sorted({t for t in set(stages) | set(now) if stages.get(t) != now.get(t)})
    if progress.status == "completed":
        return Decision("new-run", progress, differ)
    if fingerprint == plan[0]:
        return Decision("resume", progress)
    if progress.batches == 0:
        return Decision("new-run", progress, differ)
    return Decision("refuse", progress, differ)


class Checkpoint:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get_meta(self, key: str) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def stored_plan(self) -> tuple[str | None, dict[str, str]]:
        """The fingerprint of the plan the checkpoint belongs to, and its stages' fingerprints by title."""
        return self.get_meta("fingerprint"), orjson.loads(self.get_meta("stages") or "{}")

    def read(self) -> Progress | None:
        row = self.db.execute(
            "SELECT run_id, status, source_index, cursor, batches, counts, stage_state, sink_state, rejects_bytes "
            "FROM progress WHERE id = 1"
        ).fetchone()
        if row is None:
            return None
        return upgrade(
            Progress(
                run_id=row[0],
                status=row[1],
                source_index=row[2],
                cursor=orjson.loads(row[3]) if row[3] else None,
                batches=row[4],
                counts=orjson.loads(row[5]),
                stage_state=orjson.loads(row[6]),
                sink_state=orjson.loads(row[7]),
                rejects_bytes=row[8],
            )
        )

    def start(self, fingerprint: str, stages: dict[str, str], plan_json: bytes) -> Progress:
        """Begin a new run (fresh progress) bound to this plan."""
        with self._tx():
            # the lock is ours: a run still marked running died without a word (kill -9, power loss)
            self.db.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")
            self.db.execute("INSERT INTO runs (started_at, status) VALUES (?, 'running')", (now_iso(),))
            run_id = int(self.db.execute("SELECT last_insert_rowid()").fetchone()[0])
            for key, value in (
                ("fingerprint", fingerprint),
                ("stages", orjson.dumps(stages).decode()),
                ("plan", plan_json.decode()),
            ):
                self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))
            progress = Progress(run_id=run_id)
            self._write(progress)
        return progress

    def resume(self, progress: Progress) -> None:
        with self._tx():
            self.db.execute(
                "UPDATE runs SET attempts = attempts + 1, status = 'running' WHERE id = ?", (progress.run_id,)
            )
            progress.status = "running"
            self._write(progress)

    def commit(self, progress: Progress) -> None:
        """Store the progress after a batch the sinks acknowledged: one transaction."""
        with self._tx():
            self._write(progress)

    def finish(self, progress: Progress, status: str, summary: dict[str, Any]) -> None:
        with self._tx():
            progress.status = status
            self._write(progress)
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, now_iso(), orjson.dumps(summary).decode(), progress.run_id),
            )

    def fail(self, run_id: int, status: str, reason: str) -> dict[str, Any]:
        """Mark run ``run_id`` stopped by an error (``failed``) or Ctrl-C (``interrupted``), with the reason, and
        leave its committed progress as it is: the next run resumes after the last committed batch. Returns the
        run's summary as recorded."""
        with self._tx():
            committed = self.read()
            summary: dict[str, Any] = {"run": run_id, "status": status, "error": reason}
            if committed is not None and committed.run_id == run_id:
                summary["batches"] = committed.batches
                summary["counts"] = committed.counts
                summary["rejected"] = int(committed.counts.get("rejected", 0))
            self.db.execute("UPDATE progress SET status = ? WHERE id = 1 AND run_id = ?", (status, run_id))
            self.db.execute(
                "UPDATE runs SET status = ?, finished_at = ?, summary = ? WHERE id = ?",
                (status, now_iso(), orjson.dumps(summary).decode(), run_id),
            )
        return summary

    def runs(self) -> list[dict[str, Any]]:
        rows = self.db.execute(
            "SELECT id, started_at, finished_at, status, attempts, summary FROM runs ORDER BY id"
        ).fetchall()
        return [
            {
                "run": r[0],
                "started_at": r[1],
                "finished_at": r[2],
                "status": r[3],
                "attempts": r[4],
                "summary": orjson.loads(r[5]) if r[5] else None,
            }
            for r in rows
        ]

    def _write(self, p: Progress) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO progress (id, run_id, status, source_index, cursor, batches, counts, stage_state, "
            "sink_state, rejects_bytes, updated_at) VALUES (1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                p.run_id,
                p.status,
                p.source_index,
                orjson.dumps(p.cursor).decode() if p.cursor is not None else None,
                p.batches,
                orjson.dumps(p.counts).decode(),
                orjson.dumps(p.stage_state).decode(),
                orjson.dumps(p.sink_state).decode(),
                p.rejects_bytes,
                now_iso(),
            ),
        )

    @contextmanager
    def _tx(self) -> Iterator[None]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")


class EventLog:
    """Append-only JSON lines; every line passes through the secret redactor."""

    def __init__(self, path: Path) -> None:
        self.fh = open(path, "ab")  # noqa: SIM115 - closed by close()

    def emit(self, event: str, **fields: Any) -> None:
        line = orjson.dumps({"ts": now_iso(), "event": event, **fields}, default=str).decode()
        self.fh.write((redact(line) + "\n").encode())
        self.fh.flush()

    def close(self) -> None:
        self.fh.close()


class StateDir:
    """The files of one recipe's state. :meth:`lock` must be held while running."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock_fd: int | None = None

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoint.sqlite"

    @property
    def cache_path(self) -> Path:
        return self.path / "cache.sqlite"

    @property
    def rejects_path(self) -> Path:
        return self.path / "rejects.vmig.jsonl"

    @property
    def events_path(self) -> Path:
        return self.path / "events.jsonl"

    @property
    def plan_path(self) -> Path:
        return self.path / "plan.json"

    def exists(self) -> bool:
        return self.checkpoint_path.exists()

    def peek(self) -> tuple[tuple[str | None, dict[str, str]], Progress | None, list[dict[str, Any]]]:
        """Read the checkpoint without the lock and without writing: (stored plan, progress, runs)."""
        if not self.exists():
            return (None, {}), None, []
        ck = Checkpoint.__new__(Checkpoint)
        ck.path = self.checkpoint_path
        ck.db = sqlite3.connect(f"file:{self.checkpoint_path}?mode=ro", uri=True)
        try:
            return ck.stored_plan(), ck.read(), ck.runs()
        except sqlite3.DatabaseError:
            return (None, {}), None, []
        finally:
            ck.close()

    def cache_entries(self) -> int | None:
        """How many embeddings the cache holds (None without a cache)."""
        if not self.cache_path.exists():
            return None
        db = sqlite3.connect(f"file:{self.cache_path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0])
        finally:
            db.close()

    def ensure(self) -> None:
        try:
            (self.path / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot create the state directory ({exc.strerror or exc})") from None

    @contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the state lock, or raise :class:`LockHeld` naming the holder."""
        self.ensure()
        path = self.path / "lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        # a few tries: `vexrun status` (:meth:`holder`) takes the lock shared for an instant to look
        for attempt in range(5):
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if attempt < 4:
                    time.sleep(0.05)
        else:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(
                f"{self.path}: another run holds this recipe's lock ({holder})",
                hint="wait for it to finish, or stop it; the lock is released when that process exits",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}: {command}\n".encode(), 0)
        self._lock_fd = fd
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            self._lock_fd = None

    def holder(self) -> str | None:
        """Who holds the lock now ("pid N: command"), or None when no process does: a run whose checkpoint says
        running while the lock is free was killed. Looks without creating or writing anything."""
        path = self.path / "lock"
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def open_checkpoint(self) -> Checkpoint:
        return Checkpoint(self.checkpoint_path)

    def write_plan(self, plan_json: bytes) -> None:
        tmp = self.plan_path.with_suffix(".tmp")
        tmp.write_bytes(redact(plan_json.decode()).encode())
        os.replace(tmp, self.plan_path)

    def write_summary(self, run_id: int, summary: dict[str, Any]) -> Path:
        path = self.path / "runs" / f"{run_id:04d}.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(redact(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode()).encode() + b"\n")
        os.replace(tmp, path)
        return path
