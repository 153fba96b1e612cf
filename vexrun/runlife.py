"""The two ends of a run, kept out of :mod:`vexrun.runner`: how it starts (resume, a new run, over, refuse, or a
run over the last run's rejects), how an error ends it (recorded ``failed``, with its reason, the committed
progress kept for the resume), and why a run that read nothing read nothing."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

from .checkpoint import Checkpoint, EventLog, Progress, StateDir, decide
from .errors import PlanMismatch, UsageError, VexrunError
from .planner import Plan
from .progress import human_bytes
from .redact import redact
from .rejects import split_for_retry

__all__ = ["begin", "empty_reason", "stop_reason", "stopped"]


def begin(
    ck: Checkpoint,
    plan: Plan,
    state: StateDir,
    *,
    fresh: bool,
    retry_rejected: bool,
    command: str,
    say: Callable[[str], None],
) -> tuple[Progress, int | None]:
    """Resume, start (fresh, a new run, over) or refuse; ``retry_rejected`` starts a run over the rejects.
    Returns the progress to run from and the batch it resumes after (None: a run from the start)."""
    progress = ck.read()
    if retry_rejected:
        if progress is None or progress.status != "completed":
            raise UsageError(
                "nothing to retry: the last run of this recipe did not complete",
                hint=f"finish it first with `{command.replace(' --retry-rejected', '')}`",
            )
        if ck.stored_plan()[0] != plan.fingerprint:
            raise PlanMismatch(f"{state.path}: the rejects belong to a run of another plan")
        retry_file = state.path / "retry.vmig.jsonl"
        n, kept, size = split_for_retry(state.rejects_path, retry_file)
        say(f"Retrying {n:,} rejected record(s); {kept:,} bad input line(s) stay rejected.")
        progress = ck.start(plan.fingerprint, plan.stage_fingerprints, orjson.dumps(plan.to_json()))
        progress.stage_state["retry_file"] = str(retry_file)
        progress.rejects_bytes = size
        ck.commit(progress)
        return progress, None
    decision = decide(ck.stored_plan(), progress, (plan.fingerprint, plan.stage_fingerprints), fresh=fresh)
    if decision.action == "refuse":
        raise PlanMismatch(
            f"{state.path}: the checkpoint was made under another plan; stages that differ: "
            f"{', '.join(decision.differ)}; run {progress.run_id if progress else '?'} is unfinished",
            hint=f"run `{command} --fresh` to start over (embeddings stay cached), or restore the recipe and "
            "run it again to finish that run",
        )
    if decision.action == "resume":
        assert progress is not None
        ck.resume(progress)
        return progress, progress.batches
    if decision.action == "new-run" and progress is not None:
        if progress.status != "completed":
            say(f"Run {progress.run_id} of this recipe stopped before its first batch; starting a new run.")
        elif decision.differ:
            say(
                f"Run {progress.run_id} of this recipe completed; the recipe changed since "
                f"({', '.join(decision.differ)}): starting a new run (cached work is reused)."
            )
        else:
            say(f"Run {progress.run_id} of this recipe completed; starting a new run (cached work is reused).")
    elif decision.action == "restart" and progress is not None:
        say("Starting over (--fresh): the checkpoint is reset, the embedding cache is kept.")
    return ck.start(plan.fingerprint, plan.stage_fingerprints, orjson.dumps(plan.to_json())), None


def stop_reason(exc: BaseException) -> str:
    """One redacted line saying why a run stopped: a vexrun error's own message, else the exception's type."""
    if isinstance(exc, VexrunError):
        text = str(exc)
    elif isinstance(exc, KeyboardInterrupt):
        text = "interrupted (Ctrl-C)"
    else:
        text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    line = " ".join(text.split())
    return redact(line if len(line) <= 400 else line[:399] + "…")


def stopped(ck: Checkpoint, state: StateDir, events: EventLog | None, run_id: int, exc: BaseException) -> None:
    """Record that run ``run_id`` stopped on ``exc``: ``failed`` for an error, ``interrupted`` for Ctrl-C; its
    committed progress stays, so the same command resumes it. A simulated crash (any other BaseException)
    records nothing, like a kill. Never raises: the original error is what the user must see."""
    if isinstance(exc, KeyboardInterrupt):
        status = "interrupted"
    elif isinstance(exc, Exception):
        status = "failed"
    else:
        return
    try:
        reason = stop_reason(exc)
        summary = ck.fail(run_id, status, reason)
        state.write_summary(run_id, summary)
        if events is not None:
            events.emit(status, run=run_id, error=reason)
    except Exception:  # noqa: BLE001, S110 - the checkpoint may be what failed; the error itself is reported
        pass


def _describe(report: dict[str, Any]) -> str:
    """A source's report in its own words: its first count, the other counts that are not 0, what it dropped."""
    counts = [(k, v) for k, v in report.items() if isinstance(v, int) and not isinstance(v, bool)]
    parts = [f"{v:,} {k.replace('_', ' ')}" for i, (k, v) in enumerate(counts) if i == 0 or v]
    for key, value in report.items():
        if isinstance(value, dict) and value and all(isinstance(n, int) for n in value.values()):
            parts.append(f"{key.replace('_', ' ')}: " + ", ".join(f"{n:,} {why}" for why, n in value.items()))
    return ", ".join(parts)


def empty_reason(sources: Sequence[tuple[Any, Any]], counts: dict[str, Any], rejects_path: Path) -> str | None:
    """Why a completed run wrote nothing: its sources yielded no records (what each can tell: 0 records in a
    store, an empty file, the export's own counts), or every record read was rejected. None when records came."""
    src = counts.get("source", {})
    read, passed = int(src.get("read", 0)), int(src.get("passed", 0))
    if read and passed:
        return None
    if read:
        return f"all {read:,} records read were rejected by the source (see {rejects_path})"
    why: list[str] = []
    reports = counts.get("source_reports", {})
    for _, source in sources:
        identity = source.identity()
        report = reports.get(identity) or {}
        path = getattr(getattr(source, "config", None), "path", None)
        size = None
        if isinstance(path, str):
            try:
                resolved = Path(source.ctx.resolve_path(path))
                size = resolved.stat().st_size if resolved.is_file() else None
            except (OSError, AttributeError):
                size = None
        described = _describe(report) if report else ""
        if described:
            why.append(f"{path or identity} holds {described}")
        elif size == 0:
            why.append(f"{path} is empty (0 bytes)")
        else:
            try:
                n = source.estimate()
            except Exception:  # noqa: BLE001 - only an explanation
                n = None
            if n == 0:
                why.append(f"{identity} holds 0 records")
            elif size is not None:
                why.append(f"{path} ({human_bytes(size)}) held no record the source could read")
            else:
                why.append(f"{identity} gave no records")
    return "the source yielded no records: " + "; ".join(why)
