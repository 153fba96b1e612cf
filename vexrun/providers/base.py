"""The embedder interface."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

__all__ = ["Embedder"]


class Embedder:
    """Turns texts into float32 vectors. Implementations batch, bound their concurrency and retry
    transient failures themselves; the runner adds the content-addressed cache around them."""

    name: ClassVar[str] = "embedder"

    def __init__(self, config: Any) -> None:
        self.config = config

    @property
    def model_id(self) -> str:
        """Identifies the model for the cache key and the records' ``model`` field, e.g.
        ``all-MiniLM-L6-v2`` or ``openai:text-embedding-3-small@512``."""
        raise NotImplementedError

    @property
    def dims(self) -> int | None:
        """The output dimension, if known before the first call (from config or the model card)."""
        return None

    def open(self) -> None:
        """Load the model or check the endpoint. Raise ConnectError / UsageError with one clear line."""

    def embed(self, texts: list[str]) -> np.ndarray:
        """Return an ``(len(texts), dims)`` float32 matrix, in order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the model or HTTP client."""

    def check(self) -> str:
        """``vexrun check``: load the model / reach the endpoint and embed one short text."""
        self.open()
        vec = self.embed(["vexrun check"])
        return f"{self.model_id}: answers with {vec.shape[1]}-d vectors"
