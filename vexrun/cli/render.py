"""How the CLI shows things to a person: the run table, the plan and the status of a recipe."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["SLOW_RUN_S", "plan_lines", "plan_markdown", "run_table", "status_lines"]

#: a run at least this long (seconds) names its slowest stage under the table (a shorter one showed it live)
SLOW_RUN_S = 30.0


def _duplicates(n: int) -> str:
    """How the run report names records that replaced an earlier one of the same id (see :mod:`vexrun.ids`)."""
    from ..ids import DUPLICATES_RULE

    return f"{n:,} duplicate{'s' if n != 1 else ''} ({DUPLICATES_RULE})"


def _note(row: dict[str, Any], counts: dict[str, Any]) -> str:
    name = row["stage"]
    if name == "store":
        return _duplicates(row["duplicates"]) if row.get("duplicates") else ""
    if name == "chunk" and row.get("split"):
        return f"+{row['split']:,} parts from long texts"
    if name == "ids" and (row.get("duplicates") or row.get("skipped")):
        return _duplicates(row.get("duplicates") or row.get("skipped", 0)) + " within a batch"
    if name == "adapt":
        note = f"adapted {row.get('adapted', 0):,}"
        fit = counts.get("adapt_fit")
        if fit and "mean_cosine" in fit:
            note += f"; fit mean cosine {fit['mean_cosine']:.3f} on {fit['holdout']:,} held back"
        return note
    if name == "extract":
        usage = (counts.get("llm") or {}).get("total", {})
        cost = f", ${usage['cost_usd']:.4f}" if "cost_usd" in usage else ""
        return (
            f"{usage.get('calls', 0):,} calls ({usage.get('cached', 0):,} cached), "
            f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out tokens{cost}"
        )
    if name == "dedup":
        return f"merged {row.get('exact', 0):,} exact and {row.get('semantic', 0):,} near duplicates"
    if name == "embed":
        return f"computed {row.get('computed', 0):,}, cached {row.get('cached', 0):,}, kept {row.get('kept', 0):,}"
    if name == "graph":
        return f"{row.get('edges', 0):,} edges"
    if name == "sign" and row.get("signature"):
        return f"signature {row['signature']}"
    if name == "sync" and "generation" in row:
        if row.get("unchanged"):
            return "unchanged"
        return (
            f"generation {row['generation']}: {row['objects_uploaded']} of {row['objects_total']} objects, "
            f"{row['bytes_pushed']:,} bytes pushed"
        )
    return ""


def run_table(summary: Any) -> list[str]:
    """The stages of a run in the order they ran, with what each read, wrote, skipped, rejected and retried."""
    rows = [
        r for r in summary.rows() if r["stage"] not in ("sign", "sync") or r.get("signature") or r.get("generation")
    ]
    width = max([len(r["title"]) for r in rows] + [5])
    head = f"{'stage':<{width}}  {'read':>8}  {'written':>8}  {'skipped':>7}  {'rejected':>8}  {'retried':>7}"
    out = [head]
    for r in rows:
        line = (
            f"{r['title']:<{width}}  {r['in']:>8,}  {r['out']:>8,}  {r.get('skipped', 0):>7,}  "
            f"{r['rejected']:>8,}  {r.get('retries', 0):>7,}"
        )
        note = _note(r, summary.counts)
        out.append(line + (f"  {note}" if note else ""))
    mins, secs = divmod(summary.elapsed_s, 60)
    tail = f"{summary.status}: run {summary.run_id}, {summary.batches:,} batches in {int(mins)}m{secs:04.1f}s"
    if summary.rejects:
        tail += f"; {summary.rejects:,} rejected records in {summary.rejects_file}"
    out.append(tail)
    if summary.empty:
        out.append(summary.empty)
    slow = summary.slowest()
    if slow is not None and summary.elapsed_s >= SLOW_RUN_S:
        slow_m, slow_s = divmod(slow[1], 60)
        out.append(f"slowest stage: {slow[0]}, {int(slow_m)}m{slow_s:04.1f}s ({slow[2]:.0%} of the time measured)")
    out.extend(verify_lines(summary.counts.get("verify") or {}))
    skipped = (summary.counts.get("publish") or {}).get("reason")
    if skipped:
        out.append(skipped)
    return out


def verify_lines(figures: dict[str, Any]) -> list[str]:
    """One line per target reconciled after the run (``run.verify``)."""
    out = []
    for title, f in figures.items():
        if not f.get("verified"):
            continue  # a target that cannot be read back (in --json: verified false, and why)
        expected = sum(f.get("expected", {}).values())
        held = f.get("held", {}).get("", 0)
        read = f", {f.get('checked', 0):,} read back" if f.get("checked") else ""
        bad = [f"{f[k]:,} {k}" for k in ("missing", "changed") if f.get(k)]
        verdict = "DIFFERS: " + ", ".join(bad) if bad else "ok"
        out.append(f"verify {title} ({f['mode']}): wrote {expected:,}, target holds {held:,}{read}: {verdict}")
        if f.get("missing_ids"):
            out.append(f"  first missing: {', '.join(map(repr, f['missing_ids']))}")
        if f.get("changed_ids"):
            out.append("  first changed: " + ", ".join(f"{c['id']!r} ({c['reason']})" for c in f["changed_ids"]))
    return out


#: what the plan says under the chunk stage: its recipe section's name, and that it applies in every mode
_SPLIT_NOTE = (
    "recipe section 'split:' (old name 'chunk:'): splits any text over max_chars, in every source mode, 'turn' too"
)


def _wrap(items: list[str], indent: int, width: int = 100) -> list[str]:
    lines: list[str] = []
    cur = ""
    for item in items:
        if cur and indent + len(cur) + 2 + len(item) > width:
            lines.append(" " * indent + cur)
            cur = item
        else:
            cur = f"{cur}, {item}" if cur else item
    if cur:
        lines.append(" " * indent + cur)
    return lines


def _cascade_lines(llm: dict[str, Any]) -> list[str]:
    cascade = llm.get("cascade")
    if not isinstance(cascade, list):
        return [f"       cascade: {cascade or llm.get('problem') or llm.get('providers')}"]
    out = ["       cascade (in order):"]
    for c in cascade:
        budget = ", ".join(f"{c[k]:,} {k.upper().replace('_', ' ')}" for k in ("tpm", "rpm", "output_tpm") if c.get(k))
        price = c.get("price_per_1m")
        cost = f", ${price['input']}/${price['output']} per 1M tokens" if price else ""
        keys = "no key needed" if c.get("type") == "ollama" else f"{c['keys']} key(s) set"
        out.append(
            f"         {c['provider']}: {c['model']} at {c['url']}, {keys}"
            f"{', ' + budget + ' per key' if budget else ''}{cost}"
        )
    return out


def _settings_pairs(stage: Any) -> list[str]:
    """A stage's resolved (redacted) settings as ``key: value``, without its type and LLM cascade."""
    return [
        f"{key}: {value if isinstance(value, str) else orjson.dumps(value).decode()}"
        for key, value in stage.settings.items()
        if key not in ("type", "llm") and value is not None
    ]


def _capability_flags(c: dict[str, Any]) -> list[str]:
    flags = [f"ids {c['ids']}", f"metadata {c['metadata']}", f"vectors {c['vectors']}"]
    if c.get("max_dims"):
        flags.append(f"max dims {c['max_dims']}")
    if c.get("max_batch_records"):
        flags.append(f"≤{c['max_batch_records']} records/batch")
    flags += [n for n in ("search", "edges", "namespaces") if c.get(n)]
    return flags


def _secret_rows(p: Any) -> list[tuple[str, str, str]]:
    """(field, where it comes from, state) of every secret the plan references: the variable, never a value."""
    rows: list[tuple[str, str, str]] = []
    for s in p.secrets:
        if s["literal"]:
            rows.append((s["field"], "written into the recipe", "warning: use ${VAR}"))
        for ref in s["refs"]:
            shown = f"${{file:{ref['name']}}}" if ref["kind"] == "file" else f"${{{ref['name']}}}"
            state = "set" if ref["set"] else ("not set: the default applies" if ref.get("default") else "MISSING")
            rows.append((s["field"], shown, state))
    return rows


def plan_lines(report: Any) -> list[str]:
    """``vexrun plan``: the stages in the order they run, their settings, capabilities, secrets and resume."""
    p = report.plan
    out = [f"plan for {p.doc.display} ({p.doc.name}) · mode {p.mode} · fingerprint {p.fingerprint}"]
    out.append("stages")
    for i, stage in enumerate(p.stages, start=1):
        out.append(f"  {i}. {stage.title}")
        out.extend(_wrap(_settings_pairs(stage), indent=7))
        llm = stage.settings.get("llm")
        if isinstance(llm, dict):
            out.extend(_cascade_lines(llm))
        if stage.name == "chunk":
            out.append(f"       {_SPLIT_NOTE}")
        if stage.capabilities:
            out.append(f"       capabilities: {' · '.join(_capability_flags(stage.capabilities))}")
    if p.secrets:
        out.append("secrets")
        out.extend(f"  {field}  {shown} ({state})" for field, shown, state in _secret_rows(p))
    run = p.doc.model.run
    out.append(f"state    {p.state_dir}")
    out.append(f"resume   {report.resume['detail']}")
    out.append(f"run      batch_size {run.batch_size}, on_error {run.on_error}")
    if run.executor == "ray":
        from ..scaleout.layout import describe

        out.extend(describe(p))
    if any(s.role == "publish" for s in p.stages):
        policy = p.doc.model.publish.on_rejects
        what = "a run that rejects records signs and pushes nothing" if policy == "skip" else "publishes with rejects"
        out.append(f"publish  on_rejects {policy}: {what}")
    for w in p.warnings:
        out.append(w.format(p.doc.display))
    return out


def _cell(text: str) -> str:
    """Text for a Markdown table cell: one line, ``|`` escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    """``text`` as a Markdown code span (a longer fence when it holds a backtick), fit for a table cell."""
    text = _cell(text)
    if "`" not in text:
        return f"`{text}`"
    return f"`` {text} ``"


def _cascade_summary(llm: dict[str, Any]) -> str:
    cascade = llm.get("cascade")
    if not isinstance(cascade, list):
        return f"llm: {cascade or llm.get('problem') or llm.get('providers')}"
    return "llm: " + " → ".join(f"{c['provider']} ({c['model']})" for c in cascade)


def _start(resume: dict[str, Any]) -> str:
    action = resume.get("action")
    if action == "resume":
        return f"resume at batch {resume.get('batch', '?')}"
    if action == "refuse":
        return "refused"
    if action == "new-run":
        return "a new run"
    if action == "restart":
        return "over"
    return "fresh"


def plan_markdown(report: Any) -> list[str]:
    """``vexrun plan --format markdown``: the plan as a pull-request comment. The same facts as
    :func:`plan_lines` (stages in execution order with their key settings, targets, secrets by variable name
    only, what a run would start from); every line redacted."""
    from ..redact import redact

    p = report.plan
    out = [f"### vexrun plan: {_cell(p.doc.name)}", ""]
    out.append(f"Recipe {_code(p.doc.display)} · mode {_code(p.mode)} · plan fingerprint {_code(p.fingerprint)}")
    out += ["", "| # | stage | what it does | key settings |", "| ---: | --- | --- | --- |"]
    for i, stage in enumerate(p.stages, start=1):
        pairs = _settings_pairs(stage)
        llm = stage.settings.get("llm")
        if isinstance(llm, dict):
            pairs.append(_cascade_summary(llm))
        settings = ", ".join(_code(pair) for pair in pairs) or "-"
        what = f"{stage.title} (recipe `split:`)" if stage.name == "chunk" else stage.title
        out.append(f"| {i} | {_cell(stage.name)} | {_cell(what)} | {settings} |")
    targets = [s for s in p.stages if s.role == "store"]
    if targets:
        out += ["", "**Targets**", "", "| target | capabilities |", "| --- | --- |"]
        for s in targets:
            caps = " · ".join(_capability_flags(s.capabilities)) if s.capabilities else "-"
            out.append(f"| {_cell(s.title)} | {_cell(caps)} |")
    rows = _secret_rows(p)
    out += ["", "**Secrets** (by variable name; values are never shown)", ""]
    if rows:
        out += ["| field | from | state |", "| --- | --- | --- |"]
        out += [f"| {_code(field)} | {_code(shown)} | {_cell(state)} |" for field, shown, state in rows]
    else:
        out.append("none")
    resume = report.resume
    out += ["", f"**A run would start:** {_start(resume)} ({_cell(resume['detail'])})"]
    if p.warnings:
        out += ["", "**Warnings**", ""]
        out += [f"- {_cell(w.format(p.doc.display))}" for w in p.warnings]
    return [redact(line) for line in out]


def status_lines(st: dict[str, Any]) -> list[str]:
    """``vexrun status``: the checkpoint, past runs, the LLM usage of the last run, cache and rejects."""
    out = [f"recipe      {st['recipe']}"]
    if not st.get("valid", True):
        n = st.get("problems", 1)
        out.append(
            f"            INVALID: {n} problem{'s' if n != 1 else ''} (`vexrun validate {st['recipe']}` lists them); "
            "read from its state directory"
        )
    out.append(f"state       {st['state_dir']}{'' if st['exists'] else ' (no runs yet)'}")
    if st.get("checkpoint"):
        cp = st["checkpoint"]
        out.append(
            f"checkpoint  run {cp['run']} {cp['status']} after batch {cp['batches']:,} "
            f"({cp['records']:,} records read){'; plan changed since' if st.get('plan_changed') else ''}"
        )
        if cp.get("reason") and cp["status"] != "completed":
            out.append(f"            {cp['reason']}")
    if st.get("next"):
        out.append(f"next run    {st['next']['detail']}")
    elif not st.get("valid", True):
        out.append("next run    none until the recipe validates again")
    current = (st.get("checkpoint") or {}).get("run")
    for r in st.get("runs", []):
        s = r.get("summary") or {}
        out.append(
            f"run {r['run']:<4}    {r['status']:<12} started {r['started_at']}  attempts {r['attempts']}"
            f"  rejected {s.get('rejected', 0):,}"
        )
        if r.get("reason") and r["run"] != current:
            out.append(f"            {r['reason']}")
    last = next((r.get("summary") for r in reversed(st.get("runs", [])) if r.get("summary")), None)
    llm = (last or {}).get("counts", {}).get("llm")
    if llm:
        total = llm.get("total", {})
        cost = f", ${total['cost_usd']:.4f} estimated" if "cost_usd" in total else ""
        out.append(
            f"llm         {total.get('calls', 0):,} calls ({total.get('cached', 0):,} cached), "
            f"{total.get('input_tokens', 0):,} in / {total.get('output_tokens', 0):,} out tokens, "
            f"{total.get('retries', 0):,} retries{cost}"
        )
        for name, p in llm.get("providers", {}).items():
            pc = f", ${p['cost_usd']:.4f}" if "cost_usd" in p else ""
            out.append(
                f"  {name:<10}{p.get('calls', 0):,} calls, {p.get('input_tokens', 0):,} in / "
                f"{p.get('output_tokens', 0):,} out, {p.get('retries', 0):,} retries{pc}"
            )
            for key, k in (p.get("keys") or {}).items():
                out.append(
                    f"    {key:<8}{k.get('calls', 0):,} calls, {k.get('input_tokens', 0):,} in / "
                    f"{k.get('output_tokens', 0):,} out, {k.get('retries', 0):,} retries"
                )
    if st.get("cache"):
        out.append(f"cache       {st['cache']['entries']:,} embeddings")
    if st.get("rejects"):
        out.append(f"rejects     {st['rejects']}")
    return out
