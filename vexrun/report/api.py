"""``vexrun report RECIPE`` and ``vexrun inspect FILE --html``: what they gather and the page they write."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..connectors.base import Capabilities, Sink
from ..errors import UsageError, VexrunError
from .gather import llm_usage, rejects_by_reason, stage_funnel, throughput
from .memmap import MAX_POINTS, ledger_sample, map_data, sample_file
from .page import clean_text, write_page

if TYPE_CHECKING:
    from ..planner import Plan
    from ..vmig.inspect import InspectReport

__all__ = ["Written", "file_report", "run_report"]

_NONE = Capabilities()


@dataclass
class Written:
    """What a report command wrote: the page, its size, how many points its map has, and why a section is
    missing or partial (section → one line)."""

    path: Path
    bytes: int
    points: int
    run: int | None = None
    status: str | None = None
    notes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "points": self.points,
            "run": self.run,
            "status": self.status,
            "notes": self.notes,
        }


def _pick(runs: list[dict[str, Any]], run_id: int | None, display: str) -> dict[str, Any]:
    if not runs:
        raise UsageError(f"{display}: no run of this recipe yet", hint=f"run `vexrun run {display}` first")
    if run_id is None:
        return runs[-1]
    for r in runs:
        if r["run"] == run_id:
            return r
    have = ", ".join(str(r["run"]) for r in runs[-10:])
    raise UsageError(f"{display}: no run {run_id} in this recipe's state (runs: {have})")


def _stage_rows(plan: Plan, chosen: dict[str, Any], counts: dict[str, Any]) -> list[dict[str, Any]]:
    summary = chosen.get("summary") or {}
    if isinstance(summary.get("stages"), list):
        return list(summary["stages"])
    from ..summary import stage_rows

    specs = plan.role("source") + plan.role("batch") + plan.role("store")
    return stage_rows(specs, counts)


def _read_back(sink: Sink, ids: list[tuple[str, str]]) -> list[tuple[Any, Any]]:
    """The sampled records as the target holds them: all ids in one read first (a store whose ids are unique
    across namespaces answers them all, and fast), then, namespace by namespace, those it did not give back in
    the namespace the run wrote them to (stores that scope ids by namespace)."""
    want = dict(ids)
    found: dict[str, tuple[Any, Any]] = {}
    try:
        batch = sink.fetch(list(want))
    except VexrunError:
        batch = None  # a store that needs a namespace to read by id
    for i, rec in enumerate(batch.records if batch is not None else []):
        if rec.id in want and (rec.namespace or "") == want[rec.id]:
            found[rec.id] = (rec, batch.vector(i) if batch is not None else None)
    rest: dict[str, list[str]] = {}
    for rid, ns in ids:
        if rid not in found:
            rest.setdefault(ns, []).append(rid)
    for ns, wanted in rest.items():
        part = sink.fetch(wanted, namespace=ns or None)
        found.update((rec.id, (rec, part.vector(i))) for i, rec in enumerate(part.records))
    return [found[rid] for rid, _ in ids if rid in found]


def _run_map(plan: Plan, state: Path, points: int) -> dict[str, Any]:
    """The map of the first searchable target, from the run's ledger and the target's read-back."""
    from ..build import build_sink, run_context

    searchable = [s for s in plan.role("store") if s.plugin is not None and (s.plugin.capabilities or _NONE).search]
    if not searchable:
        return {"note": "no map: no target of this recipe can be searched (a map is drawn for stores)"}
    spec = searchable[0]
    ledger = state / "ledger.sqlite"
    if not ledger.exists():
        return {"note": f"no map: the run kept no ledger of what it wrote to {spec.title} (run.verify is 'off')"}
    try:
        ids, total, kept = ledger_sample(ledger, spec.title, points)
    except Exception as exc:  # noqa: BLE001 - sqlite3 errors: a damaged or foreign file
        return {"note": f"no map: cannot read {ledger.name} ({type(exc).__name__}: {exc})"}
    if not ids:
        return {"note": f"no map: the run wrote no record to {spec.title}"}
    items, how = kept, "the records the run's ledger kept"
    sink = None
    try:
        sink = build_sink(spec, run_context(plan))
        sink.connect()
        items, how = _read_back(sink, ids), "read back from the target"
    except (NotImplementedError, VexrunError, OSError) as exc:
        if not kept:
            return {"note": f"no map: {spec.title} could not be read back ({clean_text(exc, 300)})"}
        how = f"the records the run's ledger kept ({spec.title} could not be read back: {clean_text(exc, 200)})"
    finally:
        if sink is not None:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing after a read must not hide the map
                pass
    data = map_data(items, source=spec.title, total=total)
    data["note"] = f"{data['note']} Sampled by the run's ledger; {how}."
    return data


def _cards(rows: list[dict[str, Any]], counts: dict[str, Any], elapsed: float | None) -> list[dict[str, Any]]:
    read = sum(r["in"] for r in rows if r["stage"] == "source")
    written = max((r["out"] for r in rows if r["stage"] == "store"), default=0)
    cards: list[dict[str, Any]] = [
        {"key": "read", "label": "records read", "value": read},
        {"key": "written", "label": "records written", "value": written},
        {"key": "rejected", "label": "rejected", "value": int(counts.get("rejected", 0) or 0)},
    ]
    if elapsed:
        cards.append({"key": "elapsed", "label": "elapsed", "value": round(elapsed, 1), "unit": "s"})
        cards.append({"key": "rate", "label": "records/s (read)", "value": round(read / elapsed)})
    cost = ((counts.get("llm") or {}).get("total") or {}).get("cost_usd")
    if isinstance(cost, int | float):
        cards.append({"key": "cost", "label": "LLM cost (estimate)", "value": float(cost), "money": True})
    return cards


def run_report(
    recipe: str | os.PathLike[str],
    *,
    out: str | os.PathLike[str] | None = None,
    run: int | None = None,
    points: int = MAX_POINTS,
    env_file: str | None = None,
) -> Written:
    """Write the report of a run of ``recipe`` (the latest, or ``run``) to ``out`` (default: ``NAME-report.html``
    in the working directory). Secrets may be unset: they are only needed to read the target back for the map."""
    from ..checkpoint import StateDir
    from ..planner import compile_plan
    from ..recipe.loader import load_recipe

    doc = load_recipe(recipe, env_file=env_file, lenient_secrets=True)
    plan = compile_plan(doc)
    state = StateDir(plan.state_dir)
    if not state.exists():
        raise UsageError(
            f"{doc.display}: no run of this recipe yet (no state in {state.path})",
            hint=f"run `vexrun run {doc.display}` first",
        )
    _, progress, runs = state.peek()
    chosen = _pick(runs, run, doc.display)
    summary = chosen.get("summary") or {}
    latest = progress is not None and progress.run_id == chosen["run"]
    counts: dict[str, Any] = summary.get("counts") or (progress.counts if latest and progress else {})
    rows = stage_funnel(_stage_rows(plan, chosen, counts))
    notes: dict[str, str] = {}
    if not summary:
        notes["stages"] = f"run {chosen['run']} has not finished: the figures are those of its last committed batch"
    data: dict[str, Any] = {
        "kind": "run",
        "meta": [
            ["run", chosen["run"]],
            ["status", chosen["status"]],
            ["started", chosen["started_at"]],
            ["finished", chosen["finished_at"] or "\u2013"],
            ["attempts", chosen["attempts"]],
            ["batches", summary.get("batches", progress.batches if latest and progress else 0)],
            ["exit code", summary.get("exit_code", "\u2013")],
            ["mode", doc.model.mode],
        ],
        "cards": _cards(rows, counts, summary.get("elapsed_s")),
        "stages": rows,
        "notes": notes,
        "throughput": throughput(state.events_path, chosen["run"]),
        "llm": llm_usage(counts),
    }
    if latest:
        data["rejects"] = rejects_by_reason(state.rejects_path) or {"groups": [], "total": 0}
    else:
        notes["rejects"] = "the rejects file holds the latest run's rejects only: not shown for an earlier run"
    data["map"] = _run_map(plan, state.path, points) if points > 0 else {"note": "no map (--points 0)"}
    if not data["map"].get("x"):
        notes["map"] = data["map"]["note"]
    target = Path(out) if out is not None else Path(f"{doc.name}-report.html")
    size = write_page(target, f"vexrun report: {doc.name} (run {chosen['run']})", data)
    return Written(target, size, len(data["map"].get("x") or []), chosen["run"], chosen["status"], notes)


def file_report(
    report: InspectReport,
    *,
    out: str | os.PathLike[str] | None = None,
    points: int = MAX_POINTS,
    seed: int = 0,
) -> Written:
    """Write the page of ``vexrun inspect FILE --html``: the file's statistics (``report``, from
    :func:`vexrun.vmig.inspect.inspect_file`) and the map of a seeded sample of its records."""
    stats = report.to_json()
    path = Path(report.file)
    notes: dict[str, str] = {}
    if points > 0:
        items = sample_file(report.scan.path, lines=report.scan.lines, records=stats["records"], k=points, seed=seed)
        memmap = map_data(items, source=path.name, total=stats["records"]) if items else {"note": "no map: no record"}
    else:
        memmap = {"note": "no map (--points 0)"}
    if not memmap.get("x"):
        notes["map"] = memmap["note"]
    n = stats["records"]

    def pct(k: int) -> float:
        return round(100 * k / n, 1) if n else 0.0

    problems = f"{stats['invalid_lines']:,} invalid line(s), {stats['duplicate_ids']:,} duplicate id(s)"
    data: dict[str, Any] = {
        "kind": "file",
        "meta": [
            ["file", clean_text(report.file, 300)],
            ["bytes", stats["bytes"]],
            ["gzip", "yes" if stats["gzip"] else "no"],
            ["created", f"{stats['created_at']['min'] or '?'} \u2026 {stats['created_at']['max'] or '?'}"],
            ["sidecar", clean_text(stats["sidecar"], 300) or "none"],
        ],
        "cards": [
            {"key": "records", "label": "records", "value": n},
            {"key": "with_text", "label": "with text (%)", "value": pct(stats["with_text"])},
            {"key": "with_vector", "label": "with a vector (%)", "value": pct(stats["with_vector"])},
            {"key": "invalid", "label": "invalid lines", "value": stats["invalid_lines"]},
            {"key": "duplicates", "label": "duplicate ids", "value": stats["duplicate_ids"]},
        ],
        "stats": {
            "note": f"{n:,} records; {problems} (`vexrun validate` names them)",
            **{
                key: [{"value": clean_text(c["value"], 120), "count": c["count"]} for c in stats[key][:50]]
                for key in ("namespaces", "dims", "models", "source_stores", "modalities")
            },
            "metadata": [
                {**m, "key": clean_text(m["key"], 120), "types": {str(t): c for t, c in m["types"].items()}}
                for m in stats["metadata"][:200]
            ],
        },
        "map": memmap,
        "notes": notes,
    }
    target = Path(out) if out is not None else Path(f"{_stem(path)}-inspect.html")
    size = write_page(target, f"vexrun inspect: {path.name}", data)
    return Written(target, size, len(memmap.get("x") or []), notes=notes)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".vmig"):
        name = name.removesuffix(suffix)
    return name or "file"
