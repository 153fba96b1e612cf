"""``vexrun mcp``: the MCP server, driven over stdio by the SDK's own client, the way Claude Desktop runs it.

The store is a local one made with the fake embedder, which it records, so the server embeds queries and new
memories with it too: no model is loaded in the server's process.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult, TextContent

from conftest import ROOT, run_cli, vx
from vexrun.connectors.base import RunContext
from vexrun.connectors.sqlite_store import SqliteSink, SqliteSinkConfig
from vexrun.recall import Memory
from vexrun.testing.fake_embedder import fake_vector
from vexrun.vmig.batch import Batch
from vexrun.vmig.model import Record

DIMS = 16
SPEC = {"type": "fake", "dims": DIMS}
MEMORIES = {
    "tea": ("personal", "The user drinks green tea every morning before work"),
    "deploy": ("work", "Deploy the billing service to staging on Tuesday"),
    "berlin": ("travel", "Trip to Berlin in March; hotel near the Spree"),
}


def build_store(path: Path, spec: dict[str, Any] | None = SPEC) -> Path:
    ctx = RunContext(state_dir=path.parent, recipe_dir=path.parent, embedder_spec=spec)
    sink = SqliteSink(SqliteSinkConfig(path=path.name), ctx)
    sink.open(None)
    try:
        sink.prepare(DIMS, f"fake-{DIMS}")
        records = [
            Record(id=rid, text=text, namespace=ns, metadata={"n": i}, created_at=f"2026-01-0{i + 1}T00:00:00Z")
            for i, (rid, (ns, text)) in enumerate(MEMORIES.items())
        ]
        result = sink.write(Batch.from_records(records, [fake_vector(t, DIMS) for _, t in MEMORIES.values()]))
        assert not result.rejected
        sink.finalize()
    finally:
        sink.close()
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return build_store(tmp_path / "memory.db")


@asynccontextmanager
async def served(args: list[str], tmp: Path) -> AsyncIterator[ClientSession]:
    """An initialised client session with ``python -m vexrun mcp ARGS`` as the server process; its stderr goes
    to ``tmp/stderr.txt``, its temporary files under ``tmp/tmp``."""
    (tmp / "tmp").mkdir(exist_ok=True)
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "vexrun", "mcp", *args],
        cwd=str(ROOT),
        env={"NO_COLOR": "1", "TMPDIR": str(tmp / "tmp")},
    )
    with (tmp / "stderr.txt").open("w") as err:
        async with stdio_client(params, errlog=err) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            yield session


def run(args: list[str], tmp: Path, body: Callable[[ClientSession], Awaitable[None]]) -> str:
    """Serve, run ``body`` against the server, let the client close it; the server's stderr. The server must
    have ended cleanly: no traceback, its temporary files gone."""

    async def main() -> None:
        async with served(args, tmp) as session:
            await asyncio.wait_for(body(session), timeout=120)

    asyncio.run(main())
    err = (tmp / "stderr.txt").read_text()
    assert "Traceback" not in err, err
    assert not list((tmp / "tmp").iterdir()), "the server left temporary files behind"
    return err


async def call(session: ClientSession, tool: str, **arguments: Any) -> Any:
    """A tool's structured result; fails the test on a tool error."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert not result.is_error, result.content
    assert result.structured_content is not None
    return result.structured_content


async def call_error(session: ClientSession, tool: str, **arguments: Any) -> str:
    """The message of a tool error."""
    result = await session.call_tool(tool, arguments)
    assert isinstance(result, CallToolResult)
    assert result.is_error
    assert isinstance(result.content[0], TextContent)
    return result.content[0].text


def test_tools_search_get_and_idempotent_add(store: Path, tmp_path: Path) -> None:
    async def body(session: ClientSession) -> None:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert sorted(tools) == ["add_memory", "get_memory", "search_memory"]
        search = tools["search_memory"].input_schema
        assert search["required"] == ["query"]
        assert search["properties"]["query"]["type"] == "string"
        assert search["properties"]["k"]["type"] == "integer" and search["properties"]["k"]["default"] == 5
        assert search["properties"]["k"]["minimum"] == 1
        assert {"type": "string"} in search["properties"]["namespace"]["anyOf"]
        assert tools["get_memory"].input_schema["required"] == ["id"]
        add = tools["add_memory"].input_schema
        assert add["required"] == ["text"] and set(add["properties"]) == {"text", "namespace", "metadata"}
        assert tools["search_memory"].annotations is not None and tools["search_memory"].annotations.read_only_hint
        assert tools["search_memory"].output_schema is not None
        assert all(t.description for t in tools.values())

        # the memories already in the store
        found = await call(session, "search_memory", query="green tea in the morning", k=2)
        hits = found["hits"]
        assert 1 <= len(hits) <= 2
        assert hits[0]["id"] == "tea" and hits[0]["namespace"] == "personal"
        assert hits[0]["text"] == MEMORIES["tea"][1] and hits[0]["metadata"] == {"n": 0}
        assert hits[0]["created_at"] == "2026-01-01T00:00:00Z" and isinstance(hits[0]["score"], float)

        # add_memory, then find it, then read it back by id
        text = "The user's cat is called Miso and hates thunderstorms"
        added = await call(session, "add_memory", text=text, namespace="pets", metadata={"source": "chat", "n": 7})
        new_id = added["result"]
        assert isinstance(new_id, str) and new_id
        found = await call(session, "search_memory", query="cat Miso thunderstorms")
        assert found["hits"][0]["id"] == new_id and found["hits"][0]["text"] == text
        record = await call(session, "get_memory", id=new_id)
        assert record["id"] == new_id and record["text"] == text and record["namespace"] == "pets"
        assert record["metadata"]["source"] == "chat" and record["metadata"]["n"] == 7
        assert (await call(session, "get_memory", id="tea"))["text"] == MEMORIES["tea"][1]

        # the same text and namespace again: the same id, one copy
        again = await call(session, "add_memory", text=text, namespace="pets", metadata={"source": "chat", "n": 7})
        assert again["result"] == new_id
        found = await call(session, "search_memory", query="cat Miso thunderstorms", k=10)
        assert [h["id"] for h in found["hits"]].count(new_id) == 1
        # ... in another namespace it is another memory
        other = await call(session, "add_memory", text=text, namespace="other")
        assert other["result"] != new_id

        # the namespace filter
        found = await call(session, "search_memory", query="cat Miso thunderstorms", k=10, namespace="pets")
        assert [h["id"] for h in found["hits"]] == [new_id]
        found = await call(session, "search_memory", query="green tea", k=10, namespace="work")
        assert found["hits"] and {h["namespace"] for h in found["hits"]} == {"work"}

        # errors a model can make come back as tool errors, and the server keeps serving
        assert "no-such-id" in await call_error(session, "get_memory", id="no-such-id")
        assert "empty" in await call_error(session, "search_memory", query="   ")
        assert "empty" in await call_error(session, "add_memory", text="")
        await call_error(session, "search_memory", query="tea", k=0)
        assert (await call(session, "search_memory", query="Berlin hotel"))["hits"][0]["id"] == "berlin"

    run([str(store)], tmp_path, body)


def test_read_only_and_default_namespace(store: Path, tmp_path: Path) -> None:
    async def body(session: ClientSession) -> None:
        tools = sorted(t.name for t in (await session.list_tools()).tools)
        assert tools == ["get_memory", "search_memory"]
        found = await call(session, "search_memory", query="green tea every morning", k=10)
        assert found["hits"] and {h["namespace"] for h in found["hits"]} == {"work"}
        # a namespace the client names wins over the server's
        found = await call(session, "search_memory", query="green tea every morning", k=1, namespace="personal")
        assert found["hits"][0]["id"] == "tea"

    run(["--read-only", "--namespace", "work", str(store)], tmp_path, body)


def test_a_recipe_serves_its_target_with_its_embedder(tmp_path: Path) -> None:
    build_store(tmp_path / "memory.db")
    recipe = tmp_path / "recall.yaml"
    recipe.write_text(
        "version: 1\n"
        "source: {type: vmig, path: in.vmig.jsonl}\n"
        f"embed: {{type: fake, dims: {DIMS}}}\n"
        "targets:\n  - {type: sqlite, path: memory.db}\n"
    )
    (tmp_path / "in.vmig.jsonl").write_text("")

    async def body(session: ClientSession) -> None:
        added = await call(session, "add_memory", text="Prefers aisle seats on long flights", namespace="travel")
        found = await call(session, "search_memory", query="aisle seats on long flights", k=1)
        assert found["hits"][0]["id"] == added["result"]

    run([str(recipe)], tmp_path, body)


def test_a_missing_store_ends_the_process_with_one_line(tmp_path: Path) -> None:
    res = run_cli("mcp", str(tmp_path / "missing.db"), timeout=60)
    assert (res.code, res.out) == (2, ""), res.output
    assert res.err == f"error: {tmp_path / 'missing.db'}: no such file\n"


@pytest.mark.parametrize(
    ("args", "files", "code", "expected"),
    [
        (["--read-only", "--embedder", "fake", "missing.db"], {}, 2, "missing.db: no such file"),
        (["notes.db"], {"notes.db": "not a database"}, 1, "notes.db: not a vexrun store"),
        (["--embedder", "nosuch", "memory.db"], {}, 1, "'nosuch'"),
        (["unknown.db"], {}, 1, "does not record which embedder"),
        (["--target", "0", "memory.db"], {}, 2, "--target applies to a recipe"),
        (["bad.yaml"], {"bad.yaml": "version: 1\nsorce: {}\n"}, 1, "bad.yaml: 3 problems"),
    ],
    ids=["read-only-missing", "not-a-store", "bad-embedder", "no-embedder", "target-of-a-file", "bad-recipe"],
)
def test_start_up_errors_are_one_line_on_stderr(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    files: dict[str, str],
    code: int,
    expected: str,
) -> None:
    build_store(tmp_path / "memory.db")
    build_store(tmp_path / "unknown.db", spec=None)  # made without a record of its embedder
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    monkeypatch.chdir(tmp_path)
    exit_code, out, err = vx(capsys, "mcp", *args)
    assert (exit_code, out) == (code, ""), err
    assert "Traceback" not in err
    lines = err.splitlines()
    assert lines[-1].startswith("error: ") and expected in lines[-1], err
    # an invalid recipe lists its findings first, one line each, as every vexrun verb does
    assert len(lines) == 1 or all(line.startswith("bad.yaml:") for line in lines[:-1]), err


def test_sigterm_closes_the_store_first(store: Path, tmp_path: Path) -> None:
    """A client that stops the server with SIGTERM (rather than by closing its stdin): what add_memory wrote is
    kept and finalized, the temporary files are removed, exit 143."""
    (tmp_path / "tmp").mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "vexrun", "mcp", str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(tmp_path / "tmp")},
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:

        def request(id: int, method: str, params: dict[str, Any]) -> dict[str, Any]:
            send({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
            reply: dict[str, Any] = json.loads(proc.stdout.readline())  # type: ignore[union-attr]
            assert reply["id"] == id, reply
            return reply

        def send(message: dict[str, Any]) -> None:
            proc.stdin.write((json.dumps(message) + "\n").encode())  # type: ignore[union-attr]
            proc.stdin.flush()  # type: ignore[union-attr]

        hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "test", "version": "0"}}
        assert request(1, "initialize", hello)["result"]["serverInfo"]["name"] == "vexrun"
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        added = request(2, "tools/call", {"name": "add_memory", "arguments": {"text": "Kept after SIGTERM"}})
        new_id = added["result"]["structuredContent"]["result"]
        assert list((tmp_path / "tmp").iterdir())  # the open store's state
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdin.close()
        proc.stdout.close()
        err = proc.stderr.read().decode()
        proc.stderr.close()
    assert "Traceback" not in err, err
    assert not list((tmp_path / "tmp").iterdir())
    with Memory.open(store) as memory:
        assert [item.text for item in memory.get([new_id])] == ["Kept after SIGTERM"]
