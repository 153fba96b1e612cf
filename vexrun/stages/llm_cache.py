"""Content-addressed cache of LLM answers, kept in the state directory (the embedding cache's sibling).

The key is BLAKE3 over the model and the whole provider-independent request (system prompt, messages — the
chunk is in them —, the answer's schema, the prompt version, max tokens, temperature). Whichever provider
serves that model, a resumed run, a repeated run, ``--fresh`` and ``--retry-rejected`` get the same answer
back without a call. Every answer that arrived is stored (committed before the caller sees it), including
ones that later fail to parse: the repair request then hits the cache too, so a replay is exact. Each entry
counts how often it was stored, so a test can prove that nothing was paid for twice.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import blake3

from ..cache import named, open_shared
from ..providers.llm.base import ChatAnswer, ChatRequest
from ..providers.llm.cascade import CachedAnswer

__all__ = ["LLMCache", "llm_cache_key"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    key BLOB PRIMARY KEY,
    model TEXT NOT NULL,
    provider TEXT NOT NULL,
    text TEXT NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    created REAL NOT NULL,
    puts INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;
"""


def llm_cache_key(model: str, request: ChatRequest) -> bytes:
    h = blake3.blake3(b"llm\x00")
    h.update(model.encode("utf-8"))
    h.update(b"\x00")
    h.update(request.canonical())
    digest: bytes = h.digest(16)
    return digest


class LLMCache:
    """Thread-safe (the cascade's workers write to it); every ``put`` is durable on return."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.db = open_shared(self.path, "opening the LLM answer cache", _SCHEMA, check_same_thread=False)
        self.hits = 0
        self.misses = 0

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> LLMCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def key(self, model: str, request: ChatRequest) -> bytes:
        return llm_cache_key(model, request)

    def get(self, key: bytes) -> CachedAnswer | None:
        with self._lock, named(self.path, "reading the LLM answer cache"):
            row = self.db.execute(
                "SELECT text, model, provider, input_tokens, output_tokens FROM answers WHERE key = ?", (key,)
            ).fetchone()
            if row is None:
                self.misses += 1
                return None
            self.hits += 1
        return CachedAnswer(str(row[0]), str(row[1]), str(row[2]), int(row[3]), int(row[4]))

    def put(self, key: bytes, model: str, provider: str, answer: ChatAnswer) -> None:
        with self._lock, named(self.path, "writing the LLM answer cache"):
            self.db.execute(
                "INSERT INTO answers (key, model, provider, text, input_tokens, output_tokens, created) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO UPDATE SET puts = puts + 1, text = excluded.text",
                (key, model, provider, answer.text, answer.input_tokens, answer.output_tokens, time.time()),
            )

    def stats(self) -> dict[str, int]:
        with self._lock:
            row = self.db.execute(
                "SELECT COUNT(*), COALESCE(SUM(puts), 0), COALESCE(MAX(puts), 0) FROM answers"
            ).fetchone()
        return {"entries": int(row[0]), "puts": int(row[1]), "max_puts": int(row[2])}
