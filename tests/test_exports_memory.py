"""G6 and the streaming promise: a ~100 MB export is read through the real source in its own process with a
peak RSS far below the file's size in Python objects (loading it whole costs over 600 MB)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from vexrun.testing.exports import write_chatgpt_export
from vexrun.testing.rss import measure

READ = """
import json, sys
from pathlib import Path
from vexrun.connectors.base import RunContext
from vexrun.connectors.exports.chatgpt import ChatGPTExportConfig, ChatGPTExportSource
cfg = ChatGPTExportConfig(type="chatgpt-export", path=sys.argv[1], chunk=sys.argv[2])
src = ChatGPTExportSource(cfg, RunContext(state_dir=Path("."), recipe_dir=Path(".")))
src.open()
records = sum(len(batch) for batch, _ in src.batches(None, 256))
print(json.dumps({"records": records, "report": src.report()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("chunk", ["turn", "smart"])
def test_a_100_mb_export_streams_in_little_memory(tmp_path: Path, chunk: str) -> None:
    path = tmp_path / "conversations.json"
    conversations = write_chatgpt_export(path, 100_000_000, seed=11)
    assert path.stat().st_size > 95_000_000
    m = measure([sys.executable, "-c", READ, str(path), chunk], cwd=str(ROOT))
    assert m.code == 0, m.err[-2000:]
    out = json.loads(m.out)
    assert out["report"]["conversations"] == conversations
    assert out["records"] == out["report"]["records"] > conversations
    assert out["report"]["dropped"]["not_on_current_path"] > 0
    assert m.rss_mb < 250, f"peak RSS {m.rss_mb:.0f} MB"
