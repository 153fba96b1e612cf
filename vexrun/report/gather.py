"""The figures of a run, read from its state directory (:mod:`vexrun.checkpoint`): the stage funnel from the
run's summary (or, for a run that never finished, from the checkpoint's counts), throughput from
``events.jsonl``, rejects by reason from the rejects file, LLM usage from the counts.

Every reader here streams its file and keeps only bounded figures, so a report costs the same for a run of a
thousand records and of millions."""

from __future__ import annotations

import calendar
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from .page import clean_text

__all__ = ["llm_usage", "rejects_by_reason", "stage_funnel", "throughput"]

#: the usage figures of a provider and of each of its keys (:meth:`vexrun.providers.llm.cascade.Cascade.usage`)
USAGE = ("calls", "cached", "input_tokens", "output_tokens", "retries", "rate_limited", "errors")
_KEY_NAME = re.compile(r"key\d{1,4}")
_COLUMNS = {"stage", "title", "in", "out", "rejected", "skipped", "retries", "note", "duplicates"}


# -- the stage funnel ----------------------------------------------------------------------------------------


def _figures(row: dict[str, Any]) -> str:
    """A stage's own figures (split, edges, computed, cached …), as the run table's notes show them."""
    parts = []
    for key, value in row.items():
        if key in _COLUMNS or isinstance(value, bool) or not isinstance(value, int | float) or not value:
            continue
        parts.append(f"{key.replace('_', ' ')} {value:,}")
    if row.get("duplicates"):
        parts.append(f"{row['duplicates']:,} duplicates (last write wins)")
    if isinstance(row.get("signature"), str):
        parts.append(f"signature {row['signature']}")
    return " · ".join(parts)


def stage_funnel(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of the run table (:func:`vexrun.summary.stage_rows`) as the page draws them: read (in), written
    (out), skipped, rejected and retried per stage, in the order the stages ran, and the stage's own figures."""
    out = []
    for r in rows:
        if r.get("stage") in ("sign", "sync") and not (r.get("signature") or r.get("generation")):
            continue  # a publish step that did not happen
        out.append(
            {
                "stage": str(r.get("stage", "")),
                "title": str(r.get("title", r.get("stage", ""))),
                "in": int(r.get("in", 0) or 0),
                "out": int(r.get("out", 0) or 0),
                "skipped": int(r.get("skipped", 0) or 0),
                "rejected": int(r.get("rejected", 0) or 0),
                "retried": int(r.get("retries", 0) or 0),
                "figures": _figures(r),
            }
        )
    return out


# -- throughput ------------------------------------------------------------------------------------------------


def _epoch(ts: str, memo: dict[str, int]) -> int | None:
    found = memo.get(ts)
    if found is None:
        try:
            found = calendar.timegm(time.strptime(ts, "%Y-%m-%dT%H:%M:%SZ"))
        except (TypeError, ValueError):
            return None
        memo[ts] = found
    return found


def throughput(path: Path, run_id: int, *, max_bins: int = 150) -> dict[str, Any] | None:
    """Records per time bin of run ``run_id`` from its ``batch`` events (timestamps have one-second
    resolution), with a marker where the run was resumed. None without an events file."""
    if not path.exists():
        return None
    memo: dict[str, int] = {}
    batches: list[tuple[int, int]] = []
    marks: list[tuple[int, str]] = []
    start: int | None = None
    tag = f'"run":{run_id}'.encode()  # a cheap filter; the parsed event decides
    with open(path, "rb") as fh:
        for line in fh:
            if tag not in line:
                continue
            try:
                ev = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue  # a line cut by a crash
            if not isinstance(ev, dict) or ev.get("run") != run_id:
                continue
            t = _epoch(ev.get("ts", ""), memo)
            if t is None:
                continue
            kind = ev.get("event")
            if kind in ("started", "resumed") and start is None:
                start = t
            if kind == "batch":
                batches.append((t, int(ev.get("records", 0) or 0)))
            elif kind == "resumed":
                marks.append((t, f"resumed at batch {int(ev.get('batch', 0)) + 1:,}"))
    if not batches:
        return {"bin_s": 1, "points": [], "total": 0, "markers": [], "note": "no batch of this run was recorded"}
    t0 = min([t for t, _ in batches] + ([start] if start is not None else []))
    span = max(t for t, _ in batches) - t0 + 1
    bin_s = max(1, -(-span // max_bins))
    bins: Counter[int] = Counter()
    for t, n in batches:
        bins[(t - t0) // bin_s] += n
    total = sum(bins.values())
    points = [[b * bin_s, bins.get(b, 0)] for b in range(max(bins) + 1)]
    return {
        "bin_s": bin_s,
        "points": points,
        "total": total,
        "markers": [[t - t0, label] for t, label in marks],
        "note": f"records stored per {bin_s:,}-second bin, from the run's events ({len(batches):,} batches)",
    }


# -- rejects ---------------------------------------------------------------------------------------------------

_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
#: the finding codes in a source reject's reason ("bad-json: …; no-content: …")
_CODE = re.compile(r"(?:^|; )([a-z][a-z0-9]*(?:-[a-z0-9]+)+|[a-z]+): ")


def reason_kind(stage: str, reason: str) -> str:
    """What rejects of one cause have in common: a source line's finding codes (``bad-json``), else the reason
    with its quoted values and numbers blanked (``groq: HTTP N …``)."""
    if stage == "source":
        codes = _CODE.findall(reason)
        if codes:
            return ", ".join(dict.fromkeys(codes))
    kind = _NUMBER.sub("N", _QUOTED.sub("'…'", reason))
    return clean_text(kind, 160) or "(no reason given)"


def rejects_by_reason(
    path: Path, *, examples: int = 3, max_groups: int = 40, max_lines: int = 2_000_000
) -> dict[str, Any] | None:
    """The rejects file grouped by stage and kind of reason, largest first, with a few examples of each."""
    if not path.exists():
        return None
    counts: Counter[tuple[str, str]] = Counter()
    shown: dict[tuple[str, str], list[dict[str, Any]]] = {}
    lines = 0
    with open(path, "rb") as fh:
        for raw in fh:
            if lines >= max_lines:
                break
            lines += 1
            try:
                obj = orjson.loads(raw)
            except orjson.JSONDecodeError:
                obj = {"reject": {"stage": "?", "reason": "unreadable line in the rejects file"}}
            info = obj.get("reject") if isinstance(obj, dict) else None
            info = info if isinstance(info, dict) else {}
            stage = str(info.get("stage") or "?")
            reason = str(info.get("reason") or "")
            key = (stage, reason_kind(stage, reason))
            counts[key] += 1
            got = shown.setdefault(key, [])
            if len(got) < examples:
                got.append(
                    {
                        "id": clean_text(obj.get("id") if isinstance(obj, dict) else None, 120) or "?",
                        "line": info.get("line") if isinstance(info.get("line"), int) else None,
                        "reason": clean_text(reason, 600),
                        "text": clean_text(obj.get("text") if isinstance(obj, dict) else None, 300),
                    }
                )
    groups = [
        {"stage": stage, "kind": kind, "count": n, "examples": shown[(stage, kind)]}
        for (stage, kind), n in counts.most_common(max_groups)
    ]
    note = f"{lines:,} rejected record(s) in {path.name}, in {len(counts):,} group(s) of the same stage and cause"
    if len(counts) > max_groups:
        note += f"; the {max_groups} largest are shown"
    if lines >= max_lines:
        note += f"; only the first {max_lines:,} lines were read"
    return {"total": lines, "groups": groups, "note": note}


# -- LLM usage -------------------------------------------------------------------------------------------------


def _usage(found: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: int(found.get(k, 0) or 0) for k in USAGE}
    cost = found.get("cost_usd")
    if isinstance(cost, int | float) and not isinstance(cost, bool):
        out["cost_usd"] = float(cost)
    return out


def llm_usage(counts: dict[str, Any]) -> dict[str, Any] | None:
    """Calls, tokens, retries, 429s, errors and cost per provider and per key. A key is shown by its position
    (``key1``, ``key2`` …, as the cascade names it), never by anything else: a name that is not of that form is
    replaced by its position."""
    llm = counts.get("llm")
    if not isinstance(llm, dict) or not isinstance(llm.get("providers"), dict):
        return None
    providers = []
    for label, p in llm["providers"].items():
        if not isinstance(p, dict):
            continue
        keys = []
        for i, (name, k) in enumerate((p.get("keys") or {}).items(), start=1):
            if isinstance(k, dict):
                shown = name if isinstance(name, str) and _KEY_NAME.fullmatch(name) else f"key{i}"
                keys.append({"name": shown, "status": clean_text(k.get("status"), 60), **_usage(k)})
        providers.append(
            {
                "label": clean_text(label, 80),
                "provider": clean_text(p.get("provider"), 40),
                "model": clean_text(p.get("model"), 80),
                "status": clean_text(p.get("status"), 120),
                "keys": keys,
                **_usage(p),
            }
        )
    total = _usage(llm.get("total") or {})
    note = "answers served from the cache cost nothing; the cost is an estimate from the provider's price"
    return {"providers": providers, "total": total, "note": note}
