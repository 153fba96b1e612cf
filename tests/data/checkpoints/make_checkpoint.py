"""GENERATOR (not a test): make a checkpoint fixture with the code on PYTHONPATH, a run stopped after batch 3.

    PYTHONPATH=/path/to/old/checkout .venv/bin/python tests/data/checkpoints/make_checkpoint.py raw-v0
    PYTHONPATH=/path/to/old/checkout .venv/bin/python tests/data/checkpoints/make_checkpoint.py extract-v0 --port 47391

Writes ``<name>/input`` (raw only), clears ``<name>/state`` and ``<name>/out``, then runs ``vexrun run --json
recipe.yaml`` in ``<name>/`` in this process, with the chunk stage wrapped so that it sends this process a SIGINT
while it works on the 3rd batch: the runner finishes that batch, commits it and stops (exit 130) with its
checkpoint after batch 3. The extract fixture runs against the loopback fake LLM bound to ``--port`` (its URL is
part of the plan's fingerprint, so the test that resumes it serves the fake on the same port).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORDS = "memory agent prefers dark mode python postgres decided meeting tuesday deploy release travel lisbon".split()
LLM_KEY = "sk-checkpoint-fixture-key"


def write_notes(path: Path, n: int) -> None:
    """``n`` text-only records in conversations of 12; every 25th text is long enough for ``chunk`` to split."""
    from vexrun.vmig import Record, VmigWriter

    with VmigWriter(path, source_store="synthetic") as w:
        for i in range(n):
            words = 500 if i % 25 == 11 else 14
            text = " ".join(WORDS[(i * 7 + k * 3) % len(WORDS)] for k in range(words)) + f" (note {i})"
            w.write(
                Record(
                    id=f"note-{i:04d}",
                    text=text,
                    namespace=("work", "personal")[i % 2],
                    metadata={"conversation_id": f"conv-{i // 12:03d}", "turn": i % 12},
                    created_at=f"2026-03-{1 + (i // 12) % 28:02d}T10:{i % 60:02d}:00Z",
                ),
                None,
            )


def interrupt_in_batch(n: int) -> None:
    """SIGINT this process while the chunk stage (called once per batch) works on the ``n``-th batch."""
    from vexrun.stages.chunk import ChunkStage

    original = ChunkStage.process
    calls = {"n": 0}

    def process(self: Any, batch: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == n:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, batch)

    ChunkStage.process = process  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("name", choices=["raw-v0", "extract-v0"])
    ap.add_argument("--port", type=int, default=47391)
    args = ap.parse_args()
    import vexrun

    print(f"generating {args.name} with {vexrun.__file__}", file=sys.stderr)
    root = HERE / args.name
    for sub in ("state", "out"):
        shutil.rmtree(root / sub, ignore_errors=True)
    (root / "out").mkdir()
    if args.name == "raw-v0":
        write_notes(root / "input.vmig.jsonl", 300)
    interrupt_in_batch(3)
    os.chdir(root)
    from vexrun.cli import main as vexrun_main

    argv = ["run", "--json", "recipe.yaml"]
    if args.name == "extract-v0":
        from vexrun.testing.fake_api import FakeAPIServer, chat_server

        srv: FakeAPIServer = chat_server(api_keys=[LLM_KEY])
        start_on_port(srv, args.port)
        os.environ["VEXRUN_TEST_LLM_URL"] = srv.url("/v1")
        os.environ["VEXRUN_TEST_LLM_KEY"] = LLM_KEY
    try:
        vexrun_main(argv)
    except SystemExit as exc:
        code = exc.code
    print(f"exit code {code}", file=sys.stderr)
    return 0 if code == 130 else 1


def start_on_port(srv: Any, port: int) -> None:
    """Start a fake API server on a fixed loopback port (FakeAPIServer.start binds an ephemeral one)."""
    import threading

    from vexrun.testing.fake_api import server as mod

    srv._stopping.clear()
    srv._httpd = mod._HTTPServer(("127.0.0.1", port), mod._Handler)
    srv._httpd.fake = srv
    srv._port = port
    srv._thread = threading.Thread(target=srv._httpd.serve_forever, args=(0.02,), name="fake-api", daemon=True)
    srv._thread.start()


if __name__ == "__main__":
    sys.exit(main())
