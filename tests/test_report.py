"""``vexrun report`` and ``vexrun inspect --html``: pages drawn in a real headless Chromium, checked against the
run's own figures; hostile record text stays text; the map is a capped, seeded sample; the pieces (escaping,
projection, sampling, grouping, key names) on their own. Screenshots are kept in each test's tmp dir."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from conftest import ROOT, vx
from vexrun.cli import cli
from vexrun.cli.report import report as report_command
from vexrun.report.gather import llm_usage, reason_kind, rejects_by_reason, throughput
from vexrun.report.memmap import MAX_POINTS, project, sample_file
from vexrun.report.page import embed_json, render_page
from vexrun.testing import browser
from vexrun.testing.data import write_synthetic
from vexrun.testing.fake_api import Fault, chat_server
from vexrun.vmig import VmigWriter
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

if "report" not in cli.commands:  # until vexrun.cli lists the module in COMMAND_MODULES
    cli.add_command(report_command)

KEY = "gsk_report_test_CANARY_1"
BAD_KEY = "gsk_report_test_WRONG_2"
HOSTILE = [
    "</script><script>document.title='pwned'</script>",
    '<img src=x onerror="document.body.setAttribute(\'data-pwned\',1)"> & <!-- ]]> \u2028 "quotes"',
    "<svg onload=alert(1)><b>bold</b></svg> \U0001f600 caf\u00e9",
]


def _open(page: Path, tmp_path: Path, fragment: str | None = None, height: int = 900) -> browser.Page:
    """The page as Chromium drew it, and its screenshot kept beside it (the test's artefact)."""
    loaded, png = browser.capture(page, tmp_path / f"{page.stem}.png", size=(1280, height), fragment=fragment)
    assert png.stat().st_size > 10_000  # a drawn page, not a blank one
    print(f"screenshot: {png}")
    return loaded


def _n(text: str) -> int:
    return int(text.replace(",", ""))


# -- a run in extract mode: funnel, throughput, rejects, LLM usage per key, the map --------------------------------


def _extract_recipe(tmp: Path, base_url: str) -> Path:
    shutil.copy(ROOT / "examples" / "exports" / "claude" / "conversations.json", tmp / "conversations.json")
    recipe = tmp / "facts.yaml"
    recipe.write_text(
        f"""version: 1
name: facts
mode: extract
source: {{type: claude-export, path: conversations.json, chunk: exchange, namespace: claude}}
llm:
  providers:
    - type: groq
      base_url: {base_url}
      api_keys: "${{GROQ_REPORT_KEYS}}"
      max_retries: 1
      retry_backoff: 0.01
embed: {{type: fake, dims: 32}}
targets:
  - {{type: sqlite, path: mem.db}}
run: {{batch_size: 4}}
"""
    )
    return recipe


def test_report_of_an_extract_run_in_chromium(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GROQ_REPORT_KEYS", f"{BAD_KEY},{KEY}")
    with chat_server(api_keys=[KEY]) as srv:
        recipe = _extract_recipe(tmp_path, srv.url("/v1"))
        srv.fail(Fault.server_error(503, times=2, key=KEY))  # the first chunks are rejected by the extract stage
        code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 3, err
    summary = json.loads(out)
    code, out, err = vx(capsys, "report", str(recipe), "-o", "report.html")
    assert code == 0, err
    assert re.search(r"wrote report\.html \(\d+ KB\): run 1 \(completed\), \d+ points on the map", err)
    html = (tmp_path / "report.html").read_text()
    assert KEY not in html and BAD_KEY not in html
    assert not re.search(r"(src|href)=\"?(https?:)?//", html)  # nothing to fetch

    page = _open(tmp_path / "report.html", tmp_path)
    assert page.rendered == "1", page.dom[-2000:]
    t = page.texts()
    assert t["meta:run"].endswith("1") and t["meta:status"].endswith("completed")
    for row in summary["stages"]:  # the funnel holds the run's own figures, stage by stage
        for col in ("in", "out", "rejected"):
            assert _n(t[f"funnel:{row['title']}:{col}"]) == row[col], (row["title"], col)
    assert _n(t["card:rejected"]) == summary["rejected"]
    # rejects by reason: the extract stage's, counted as in the rejects file
    rejects = [orjson.loads(x) for x in Path(summary["rejects_file"]).read_bytes().splitlines()]
    shown = {k: _n(v) for k, v in t.items() if k.startswith("reject:") and not k.endswith(":stage")}
    assert sum(shown.values()) == len(rejects) == summary["rejected"] > 0
    assert all(k.startswith("reject:extract:") for k in shown)
    # LLM usage per provider and per key, by position: the bad key was dropped, the good one did the work
    usage = summary["counts"]["llm"]
    (label,) = usage["providers"]
    provider = usage["providers"][label]
    assert _n(t[f"llm:{label}:calls"]) == provider["calls"] > 0
    assert _n(t[f"llm:{label}:input_tokens"]) == provider["input_tokens"] > 0
    for name, k in provider["keys"].items():
        assert _n(t[f"llm:{label}:{name}:calls"]) == k["calls"]
        assert _n(t[f"llm:{label}:{name}:errors"]) == k["errors"]
    assert _n(t["llm:total:output_tokens"]) == usage["total"]["output_tokens"]
    # throughput: every stored record is in a bin
    chart = page.element("throughput-svg")
    assert chart is not None and int(chart["data-records"]) == summary["stages"][-1]["out"]
    # the map: every memory of the target (fewer than 2,000), in the one namespace
    written = summary["stages"][-1]["out"]
    svg = page.element("map-svg")
    assert svg is not None and int(svg["data-points"]) == written
    assert _n(t["map-ns:claude"].rsplit(" ", 1)[1]) == written


# -- a raw run of hostile text: nothing injected, the text shown as text; the 2,000-point cap ---------------------


def _hostile_file(path: Path, n: int) -> list[str]:
    rng = np.random.default_rng(5)
    records, texts = [], []
    for i in range(n):
        text = HOSTILE[i % len(HOSTILE)] if i < 30 else f"memory {i} about tea and berlin"
        records.append(Record(id=f"m{i:05d}<b>", text=text, namespace=("</script>", "work")[i % 2]))
        texts.append(text)
    vecs = rng.standard_normal((n, 8)).astype(np.float32)
    with VmigWriter(path) as w:
        w.write_batch(Batch(records=records, vectors=vecs, has_vector=np.ones(n, dtype=bool)))
    with open(path, "a") as fh:
        fh.write('{"id": "bad-1", "text": 5}\n</script><script>alert(1)</script>\n')
    return texts


def test_hostile_text_stays_text_and_the_map_is_capped(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _hostile_file(tmp_path / "in.vmig.jsonl", 2600)
    recipe = tmp_path / "hostile.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: sqlite, path: mem.db}\n"
        "run: {batch_size: 500}\n"
    )
    code, out, err = vx(capsys, "run", "--json", str(recipe))
    assert code == 3, err
    code, out, err = vx(capsys, "report", str(recipe), "--json")
    assert code == 0, err
    written = json.loads(out)
    assert written["points"] == MAX_POINTS and written["path"] == "hostile-report.html"
    html = (tmp_path / "hostile-report.html").read_text()
    data = html.split('id="vexrun-data">', 1)[1].split("</script>", 1)[0]
    assert "<" not in data and ">" not in data  # the data block cannot be closed or bent by a record
    assert html.count("<script") == 2  # the data block and the page's own script, nothing else
    # the same sample and layout every time
    code, out2, _ = vx(capsys, "report", str(recipe), "-o", "again.html")
    again = (tmp_path / "again.html").read_text().split('id="vexrun-data">', 1)[1].split("</script>", 1)[0]
    strip = re.compile(r'"generated":"[^"]*"')
    assert strip.sub("", again) == strip.sub("", data)

    payload = json.loads(data)
    hostile_at = next(i for i, text in enumerate(payload["map"]["t"]) if text == HOSTILE[1])
    page = _open(tmp_path / "hostile-report.html", tmp_path, fragment=f"pt={hostile_at}", height=2200)
    assert page.rendered == "1"
    assert page.texts("data-pwned") == {} and "<img" not in page.dom and "<title>vexrun report" in page.dom
    assert page.dom.count("<script") == 2 and "pwned</title>" not in page.dom
    assert page.element("tip") is not None and page.element("tip")["data-point"] == str(hostile_at)
    tip = page.texts("id")["tip"]
    assert HOSTILE[1] in tip  # the tooltip shows the record's text, as text
    t = page.texts()
    assert _n(t["map-ns:</script>"].rsplit(" ", 1)[1]) + _n(t["map-ns:work"].rsplit(" ", 1)[1]) == MAX_POINTS
    assert _n(t["reject:source:bad-type, no-content"]) == 1 and _n(t["reject:source:bad-json"]) == 1
    assert any("</script><script>alert(1)</script>" in v for k, v in t.items() if k.startswith("example:"))


# -- inspect --html ------------------------------------------------------------------------------------------------


def test_inspect_html_in_chromium(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = write_synthetic(tmp_path / "mem.vmig.jsonl", 3000, dims=16, seed=2)
    with open(src, "a") as fh:
        fh.write("not json\n")
    out_html = tmp_path / "mem.html"
    code, out, err = vx(capsys, "inspect", "--json", str(src), "--html", "-o", str(out_html))
    assert code == 0, err
    stats = json.loads(out)  # stdout stays the statistics, as without --html
    assert stats["records"] == 3000 and f"wrote {out_html}" in err and "2,000 points on the map" in err
    page = _open(out_html, tmp_path)
    assert page.rendered == "1"
    t = page.texts()
    assert _n(t["card:records"]) == 3000 and _n(t["card:invalid"]) == 1
    for ns in stats["namespaces"]:
        assert _n(t[f"ns:{ns['value']}"]) == ns["count"]
    for m in stats["metadata"]:
        assert _n(t[f"meta:{m['key']}:count"]) == m["count"]
        assert t[f"meta:{m['key']}:fill"] == f"{100 * m['fill_rate']:.1f}%"
    svg = page.element("map-svg")
    assert svg is not None and int(svg["data-points"]) == MAX_POINTS


# -- errors ----------------------------------------------------------------------------------------------------------


def test_report_before_any_run_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nsource: {type: vmig, path: x.vmig.jsonl}\ntarget: {type: vmig, path: y.vmig.jsonl}\n"
    )
    code, out, err = vx(capsys, "report", "r.yaml")
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "error: r.yaml: no run of this recipe yet (no state in "
        + err.split("(no state in ", 1)[1].split(")", 1)[0]
        + ") (run `vexrun run r.yaml` first)"
    ]


def test_a_target_that_cannot_be_searched_gives_a_page_without_a_map(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    write_synthetic(tmp_path / "in.vmig.jsonl", 50, dims=8)
    (tmp_path / "r.yaml").write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: vmig, path: out.vmig.jsonl}\n"
    )
    assert vx(capsys, "run", "r.yaml")[0] == 0
    code, _, err = vx(capsys, "report", "r.yaml", "--run", "1")
    assert code == 0 and "note: map: no map: no target of this recipe can be searched" in err
    assert vx(capsys, "report", "r.yaml", "--run", "7")[0] == 2


def test_missing_chromium_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VEXRUN_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(browser.BrowserMissing, match="apt-get install -y chromium"):
        browser.load(tmp_path / "x.html")


# -- the pieces --------------------------------------------------------------------------------------------------------


def test_embedded_json_cannot_close_its_script_and_reads_back_the_same() -> None:
    data: dict[str, Any] = {"t": HOSTILE, "k": {"</script>": [1.5, float("nan")]}, "u": "\u2028\ud800x"}
    text = embed_json({**data, "u": "ok"})
    assert not set("<>&") & set(text)
    assert json.loads(text) == {**data, "u": "ok", "k": {"</script>": [1.5, None]}}
    page = render_page("</title><script>x()</script>", {"t": HOSTILE})
    assert page.count("<script") == 2 and "&lt;/title&gt;" in page
    assert "script-src 'sha256-" in page and "default-src 'none'" in page


def test_projection_is_deterministic_and_finds_the_main_axis() -> None:
    rng = np.random.default_rng(1)
    line = np.outer(rng.standard_normal(500), rng.standard_normal(20)) + 0.01 * rng.standard_normal((500, 20))
    coords, explained = project(line)
    assert explained[0] > 0.99 and explained[0] + explained[1] <= 1.0 + 1e-9
    again, _ = project(line[::-1].copy())
    assert np.allclose(coords[::-1], again, atol=1e-6)  # same axes and signs whatever the order of the rows
    assert project(np.zeros((1, 4)))[1] == [0.0, 0.0]


@pytest.mark.parametrize("seek", [False, True])
def test_file_sample_is_seeded_capped_and_distinct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seek: bool) -> None:
    import vexrun.report.memmap as memmap

    path = write_synthetic(tmp_path / "f.vmig.jsonl", 5000, dims=8, seed=4)
    monkeypatch.setattr(memmap, "SEEK_BYTES", 0 if seek else 1 << 40)
    first = sample_file(path, lines=5000, k=300, seed=9)
    ids = [r.id for r, _ in first]
    assert len(set(ids)) == len(ids) and 250 <= len(ids) <= 300 and all(v is not None for _, v in first)
    assert [r.id for r, _ in sample_file(path, lines=5000, k=300, seed=9)] == ids
    assert [r.id for r, _ in sample_file(path, lines=5000, k=300, seed=10)] != ids
    assert len(sample_file(path, lines=5000, k=50_000, seed=1)) <= 5000


def test_rejects_group_by_stage_and_cause(tmp_path: Path) -> None:
    assert reason_kind("source", "bad-json: invalid JSON at column 1") == "bad-json"
    assert (
        reason_kind("extract", "groq: HTTP 503 after 2 attempts on 'chunk-7'") == "groq: HTTP N after N attempts on '…'"
    )
    path = tmp_path / "rejects.vmig.jsonl"
    lines = [
        {"id": f"r{i}", "text": "<b>x</b>", "reject": {"stage": "extract", "reason": f"timeout after {i}s"}}
        for i in range(7)
    ]
    lines.append({"id": "s", "reject": {"stage": "source", "reason": "bad-json: x", "line": 3}})
    path.write_bytes(b"".join(orjson.dumps(x) + b"\n" for x in lines) + b"{cut")
    found = rejects_by_reason(path, examples=2)
    assert found is not None and found["total"] == 9
    top = found["groups"][0]
    assert (top["stage"], top["kind"], top["count"], len(top["examples"])) == ("extract", "timeout after Ns", 7, 2)
    assert {(g["stage"], g["count"]) for g in found["groups"][1:]} == {("source", 1), ("?", 1)}


def test_llm_keys_are_named_by_position_only() -> None:
    counts = {
        "llm": {
            "providers": {
                "groq (m)": {
                    "calls": 3,
                    "model": "m",
                    "keys": {"key1": {"calls": 1}, "gsk_live_SECRET_value": {"calls": 2, "cost_usd": 0.5}},
                }
            },
            "total": {"calls": 3},
        }
    }
    usage = llm_usage(counts)
    assert usage is not None
    keys = usage["providers"][0]["keys"]
    assert [k["name"] for k in keys] == ["key1", "key2"] and keys[1]["cost_usd"] == 0.5
    assert "SECRET" not in json.dumps(usage)
    assert llm_usage({}) is None


def test_throughput_bins_one_run_and_marks_resumes(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    ev = [
        {"ts": "2026-01-01T00:00:00Z", "event": "started", "run": 2},
        {"ts": "2026-01-01T00:00:01Z", "event": "batch", "run": 1, "records": 999},
        {"ts": "2026-01-01T00:00:01Z", "event": "batch", "run": 2, "records": 10},
        {"ts": "2026-01-01T00:00:01Z", "event": "batch", "run": 2, "records": 10},
        {"ts": "2026-01-01T00:10:00Z", "event": "resumed", "run": 2, "batch": 2},
        {"ts": "2026-01-01T00:10:02Z", "event": "batch", "run": 2, "records": 5},
    ]
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in ev) + b'{"ts": "2026-01-01T00:10:03Z", "eve')
    found = throughput(path, 2, max_bins=100)
    assert found is not None and found["total"] == 25 and found["bin_s"] == 7  # 603 s in at most 100 bins
    assert found["points"][0] == [0, 20] and found["points"][-1] == [602 - 602 % 7, 5]
    assert found["markers"] == [[600, "resumed at batch 3"]]
    assert throughput(tmp_path / "none.jsonl", 1) is None
    assert os.path.exists(path)
