"""The report page's stylesheet, inlined into every page (no file, no CDN, no font to fetch)."""

from __future__ import annotations

__all__ = ["CSS"]

CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde3ea; --bg: #f6f8fa; --card: #fff;
  --ok: #2f9e6b; --skip: #a9b4c0; --bad: #d64545; --accent: #3b6fd8; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  background: var(--bg); }
header { padding: 18px 28px 10px; background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { margin: 0 0 4px; font-size: 20px; }
header .meta { color: var(--muted); font-size: 13px; }
header .meta span { margin-right: 16px; white-space: nowrap; }
main { padding: 14px 28px 40px; max-width: 1320px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px; margin: 14px 0;
  padding: 12px 16px 14px; }
section h2 { font-size: 15px; margin: 0 0 8px; }
section .note { color: var(--muted); font-size: 12.5px; margin: 4px 0 8px; }
.cards { display: flex; flex-wrap: wrap; gap: 10px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
  min-width: 150px; }
.card .v { font-size: 22px; font-weight: 600; font-variant-numeric: tabular-nums; }
.card .l { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; font-size: 12px; }
td.n, th.n { text-align: right; white-space: nowrap; }
tr.sub td { color: var(--muted); font-size: 12.5px; }
tr.sub td:first-child { padding-left: 24px; }
.bar { height: 14px; display: flex; min-width: 2px; border-radius: 3px; overflow: hidden; background: #eef1f4; }
.bar i { display: block; height: 100%; }
.ok { background: var(--ok); } .skip { background: var(--skip); } .bad { background: var(--bad); }
.legend { display: flex; flex-wrap: wrap; gap: 6px 14px; margin: 6px 0; font-size: 12.5px; }
.legend button { border: 1px solid var(--line); background: var(--card); border-radius: 12px; padding: 2px 9px;
  cursor: pointer; font: inherit; color: inherit; }
.legend button.off { opacity: .35; }
.legend .sw { display: inline-block; width: 10px; height: 10px; border-radius: 50%; margin-right: 5px; }
details { margin: 2px 0; } summary { cursor: pointer; color: var(--accent); font-size: 12.5px; }
.ex { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12px; white-space: pre-wrap;
  word-break: break-word; background: var(--bg); border-radius: 4px; padding: 4px 6px; margin: 4px 0; }
.chart { width: 100%; height: auto; display: block; }
.chart text { font-size: 11px; fill: var(--muted); }
.mapbox { position: relative; }
#map-svg circle { stroke: #fff; stroke-width: .6; cursor: pointer; }
#map-svg circle.pinned { stroke: #000; stroke-width: 2; }
#tip { position: absolute; display: none; max-width: 420px; background: #1d2330; color: #fff; padding: 8px 10px;
  border-radius: 6px; font-size: 12.5px; pointer-events: none; z-index: 5; box-shadow: 0 2px 8px rgba(0,0,0,.25); }
#tip .ns { font-weight: 600; } #tip .id { color: #b8c2cf; font-size: 11.5px; word-break: break-all; }
#tip .tx { margin-top: 4px; white-space: pre-wrap; word-break: break-word; }
.errors { color: var(--bad); white-space: pre-wrap; }
footer { color: var(--muted); font-size: 12px; padding: 0 28px 24px; }
"""
