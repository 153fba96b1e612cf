"""A deterministic embedder for tests and dry runs: the vector of a text is derived from its BLAKE3
hash, so it is stable across runs and processes (but carries no meaning).

With ``log_file``, every text it computes is appended (as its hash) to that file, so a test can count how
many embeddings were computed across crashed and resumed runs.
"""

from __future__ import annotations

import os
import time
from typing import Literal

import blake3
import numpy as np
from pydantic import Field

from ..connectors.base import PluginConfig
from ..providers.base import Embedder

__all__ = ["FakeEmbedder", "FakeEmbedderConfig", "fake_vector"]


class FakeEmbedderConfig(PluginConfig):
    """``type: fake`` — deterministic, offline, instant (or slowed down with ``delay_ms``)."""

    type: Literal["fake"] = "fake"
    dims: int = Field(default=384, ge=1, le=65536, description="Output dimension.")
    model: str = Field(default="fake", description="Model name recorded on the records.")
    batch_size: int = Field(default=64, ge=1, description="Texts per call.")
    delay_ms: float = Field(default=0.0, ge=0, description="Sleep this long per call (to simulate a model).")
    log_file: str | None = Field(default=None, description="Append the hash of every computed text here.")


def fake_vector(text: str, dims: int) -> np.ndarray:
    """The unit-norm float32 vector the fake embedder gives ``text``."""
    seed = int.from_bytes(blake3.blake3(text.encode("utf-8", "surrogatepass")).digest(8), "little")
    v = np.random.default_rng(seed).standard_normal(dims).astype(np.float32)
    v /= np.float32(np.linalg.norm(v))
    return v


class FakeEmbedder(Embedder):
    name = "fake"

    def __init__(self, config: FakeEmbedderConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.calls = 0
        self.computed = 0

    @property
    def model_id(self) -> str:
        return f"{self.cfg.model}-{self.cfg.dims}"

    @property
    def dims(self) -> int:
        return self.cfg.dims

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.empty((len(texts), self.cfg.dims), dtype=np.float32)
        for start in range(0, len(texts), self.cfg.batch_size):
            part = texts[start : start + self.cfg.batch_size]
            self.calls += 1
            if self.cfg.delay_ms:
                time.sleep(self.cfg.delay_ms / 1000)
            for i, text in enumerate(part):
                out[start + i] = fake_vector(text, self.cfg.dims)
            self.computed += len(part)
            if self.cfg.log_file:
                lines = "".join(blake3.blake3(t.encode("utf-8", "surrogatepass")).hexdigest(8) + "\n" for t in part)
                fd = os.open(self.cfg.log_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
                try:
                    os.write(fd, lines.encode())
                finally:
                    os.close(fd)
        return out
