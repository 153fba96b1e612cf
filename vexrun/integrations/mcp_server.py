"""vexrun's memory as an MCP server over stdio: ``vexrun mcp STORE|RECIPE``.

Three tools, on :class:`vexrun.recall.Memory`:

* ``search_memory(query, k=5, namespace=None)``: the hits, best first (id, text, score, namespace,
  metadata, created_at);
* ``get_memory(id)``: one record, or a tool error that names the id;
* ``add_memory(text, namespace=None, metadata=None)``: its id, derived from the text and namespace, so
  adding the same memory again changes nothing (left out with ``read_only``).

A namespace the client leaves out is the server's ``namespace`` (``vexrun mcp --namespace``); without one a
search covers every namespace.

The MCP SDK (``pip install 'vexrun[mcp]'``) is imported when :func:`serve` or :func:`build_server` runs.
One thread owns the Memory: a SQLite connection, like many store clients, must stay on the thread that
opened it, while the SDK would run blocking tools on a pool of threads. So every Memory call goes to that
one thread, in turn.

Nothing but the protocol reaches stdout: the store is opened with fd 1 pointed at stderr (a library that
prints while it loads would corrupt the stream), and while serving, the SDK points fd 1 at stderr itself.
Logs go to stderr.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from pydantic import BaseModel, Field

from .._version import __version__
from ..errors import UsageError, VexrunError
from ..redact import redact

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer

    from ..connectors.base import Hit
    from ..recall import Item, Memory

__all__ = ["MemoryHit", "MemoryRecord", "MemoryThread", "SearchResult", "build_server", "serve"]

T = TypeVar("T")

#: the most hits one search may ask for
MAX_K = 100

Scalar = str | int | float | bool | None
#: what a record's metadata may hold (the VMIG rule): scalars, or flat lists of scalars
MetadataValue = Scalar | list[Scalar]

INSTRUCTIONS = (
    "Long-term memory kept by vexrun. Use search_memory before answering from what you know about the user "
    "or earlier work (preferences, facts, decisions, past conversations); get_memory reads one memory by the "
    "id a search returned; add_memory keeps a new fact for later (adding the same text twice keeps one copy)."
)


class MemoryHit(BaseModel):
    """One search result."""

    id: str = Field(description="The memory's id (pass it to get_memory).")
    text: str | None = Field(description="The memory's text.")
    score: float = Field(description="How well it matches the query (higher is better; only the order matters).")
    namespace: str | None = Field(default=None, description="The namespace it is in.")
    metadata: dict[str, Any] | None = Field(default=None, description="Its metadata, as stored.")
    created_at: str | None = Field(default=None, description="When it was made (RFC 3339), if known.")

    @classmethod
    def of(cls, hit: Hit) -> MemoryHit:
        return cls(
            id=hit.id,
            text=hit.text,
            score=float(hit.score),
            namespace=hit.namespace,
            metadata=hit.metadata,
            created_at=hit.created_at,
        )


class SearchResult(BaseModel):
    """The hits of a search, best first."""

    hits: list[MemoryHit]


class MemoryRecord(BaseModel):
    """One memory, as stored."""

    id: str
    text: str | None = None
    namespace: str | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None

    @classmethod
    def of(cls, record: Item) -> MemoryRecord:
        return cls(
            id=record.id,
            text=record.text,
            namespace=record.namespace,
            metadata=record.metadata,
            created_at=record.created_at,
        )


class MemoryThread:
    """One thread that owns a Memory: it opens it, runs every call on it, one at a time, and closes it."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vexrun-mcp")
        self._memory: Memory | None = None

    def open(self, opener: Callable[[], Memory]) -> None:
        """Open the Memory on the owning thread; its errors are raised here."""
        self._memory = self._pool.submit(opener).result()

    async def call(self, fn: Callable[[Memory], T]) -> T:
        """``fn(memory)`` on the owning thread, awaited without blocking the event loop."""
        memory = self._memory
        if memory is None:
            raise RuntimeError("the memory is not open")
        return await asyncio.wrap_future(self._pool.submit(fn, memory))

    def close(self) -> None:
        memory, self._memory = self._memory, None
        try:
            if memory is not None:
                self._pool.submit(memory.close).result()
        finally:
            self._pool.shutdown(wait=True)


def build_server(
    memory: MemoryThread, *, namespace: str | None = None, read_only: bool = False, name: str = "vexrun"
) -> MCPServer[Any]:
    """The MCP server over ``memory``: ``search_memory``, ``get_memory`` and, unless ``read_only``,
    ``add_memory``. ``namespace`` stands in for a namespace the client leaves out."""
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from mcp.types import ToolAnnotations

    async def call(fn: Callable[[Memory], T]) -> T:
        try:
            return await memory.call(fn)
        except VexrunError as exc:
            raise ToolError(redact(str(exc))) from None

    server: MCPServer[Any] = MCPServer(name, version=__version__, instructions=INSTRUCTIONS, log_level="WARNING")
    default_ns = namespace
    looks = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)

    async def search_memory(
        query: Annotated[str, Field(description="What to look for, in plain words.")],
        k: Annotated[int, Field(ge=1, le=MAX_K, description="How many memories to return at most.")] = 5,
        namespace: Annotated[
            str | None, Field(description="Search only this namespace (default: the server's, else all).")
        ] = None,
    ) -> SearchResult:
        """Search the long-term memory for memories relevant to QUERY (semantic and keyword search combined).
        Returns the hits best first, each with its id, text, score, namespace, metadata and created_at."""
        if not query.strip():
            raise ToolError("the query is empty")
        ns = namespace if namespace is not None else default_ns
        hits = await call(lambda m: m.search(query, k=k, namespace=ns))
        return SearchResult(hits=[MemoryHit.of(h) for h in hits])

    async def get_memory(
        id: Annotated[str, Field(description="The id of a memory, as search_memory or add_memory gave it.")],
    ) -> MemoryRecord:
        """Read one memory by its id: its text, namespace, metadata and created_at."""
        found = await call(lambda m: m.get([id]))
        if not found and default_ns is not None:  # a store that fetches by id within one namespace
            found = await call(lambda m: m.get([id], namespace=default_ns))
        if not found:
            raise ToolError(f"no memory with id {id!r}")
        return MemoryRecord.of(found[0])

    async def add_memory(
        text: Annotated[str, Field(description="The memory to keep, as a self-contained statement.")],
        namespace: Annotated[
            str | None, Field(description="The namespace to keep it in (default: the server's).")
        ] = None,
        metadata: Annotated[
            dict[str, MetadataValue] | None,
            Field(description="Extra fields to keep with it: strings, numbers, booleans or lists of them."),
        ] = None,
    ) -> str:
        """Keep a new memory for later searches and return its id. The id follows from the text and the
        namespace, so adding the same memory again returns the same id and keeps one copy."""
        if not text.strip():
            raise ToolError("the text is empty")
        ns = namespace if namespace is not None else default_ns
        return await call(lambda m: m.put(text, namespace=ns, metadata=metadata))

    server.add_tool(search_memory, title="Search memory", annotations=looks)
    server.add_tool(get_memory, title="Get a memory", annotations=looks)
    if not read_only:
        adds = ToolAnnotations(
            read_only_hint=False, destructive_hint=False, idempotent_hint=True, open_world_hint=False
        )
        server.add_tool(add_memory, title="Add a memory", annotations=adds)
    return server


@contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Point fd 1 (and ``sys.stdout``) at stderr for the duration: stray prints miss the protocol stream."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def require_sdk() -> None:
    """Raise the install line when the MCP SDK is missing."""
    if importlib.util.find_spec("mcp") is None:
        raise UsageError("`vexrun mcp` needs the MCP SDK, which is not installed", hint="pip install 'vexrun[mcp]'")


def serve(
    store: str,
    *,
    target: int | None = None,
    embedder: dict[str, Any] | str | None = None,
    env_file: str | None = None,
    namespace: str | None = None,
    read_only: bool = False,
) -> None:
    """Open ``store`` (a local store file, or a recipe whose target is served) and serve it over stdio until
    the client closes the connection. Errors in opening it, or in loading its embedder, are raised before
    anything is served. A local store file that does not exist is created when ``embedder`` is given (as
    :meth:`~vexrun.recall.Memory.open` does), unless ``read_only``."""
    require_sdk()
    from ..recall import Memory

    if read_only and not os.path.exists(store):  # Memory.open would make a new, empty store with an embedder
        raise UsageError(f"{store}: no such file")
    memory = MemoryThread()
    try:
        with _stdout_to_stderr():
            memory.open(lambda: _opened(Memory.open(store, target=target, embedder=embedder, env_file=env_file)))
            server = build_server(memory, namespace=namespace, read_only=read_only)
        with _close_on_sigterm(memory):
            server.run("stdio")
    finally:
        memory.close()


def _opened(memory: Memory) -> Memory:
    """``memory`` with its embedder loaded: a bad or missing embedder is a start-up error, not a failure of
    every search, and the first search is not the one that waits for a model to load."""
    try:
        _ = memory.embedder
    except BaseException:
        memory.close()
        raise
    return memory


@contextmanager
def _close_on_sigterm(memory: MemoryThread) -> Iterator[None]:
    """SIGTERM (how a client stops a server that outlives its stdin) closes the memory, so what add_memory
    wrote is finalized, then exits 143 at once: unwinding the event loop would wait on the blocked stdin read."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        try:
            memory.close()
        finally:
            os._exit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
