"""``type: ollama``: Ollama's native ``POST {base_url}/api/embed`` (many texts per request; unit-length vectors).

Ollama needs no key. A model that is not pulled on the server is a terminal error that says which
``ollama pull`` to run. (Ollama's OpenAI-compatible ``/v1/embeddings`` works with ``type: openai`` too.)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from .http import BadResponse, RemoteEmbedderConfig, parse_duration
from .remote import RemoteEmbedder

__all__ = ["OllamaEmbedder", "OllamaEmbedderConfig"]

#: dimensions of common Ollama embedding models, so ``dims`` is known before the first call
KNOWN_DIMS = {
    "nomic-embed-text": 768,
    "mxbai-embed-large": 1024,
    "all-minilm": 384,
    "snowflake-arctic-embed": 1024,
    "bge-m3": 1024,
    "bge-large": 1024,
}


class OllamaEmbedderConfig(RemoteEmbedderConfig):
    """``type: ollama`` — an Ollama server's native embedding endpoint."""

    type: Literal["ollama"] = Field(default="ollama", description="ollama.")
    base_url: str = Field(
        default="http://127.0.0.1:11434", description="The Ollama server; requests go to {base_url}/api/embed."
    )
    model: str = Field(default="nomic-embed-text", min_length=1, description="An embedding model pulled on the server.")
    batch_size: int = Field(default=64, ge=1, le=100_000, description="Most texts per request.")
    concurrency: int = Field(
        default=2, ge=1, le=64, description="Requests in flight at once (Ollama runs OLLAMA_NUM_PARALLEL at a time)."
    )
    timeout: float = Field(
        default=300.0, gt=0, le=3600, description="Seconds to wait for one answer (the first one loads the model)."
    )
    keep_alive: str | int | None = Field(
        default=None,
        description="How long the server keeps the model loaded after a request: a duration ('5m', '1h') or "
        "seconds; negative keeps it loaded. Unset: the server's default (5m).",
    )
    truncate: bool = Field(
        default=True,
        description="Cut texts longer than the model's context (Ollama's default); false makes them an error.",
    )

    @field_validator("keep_alive")
    @classmethod
    def _check_keep_alive(cls, value: str | int | None) -> str | int | None:
        if isinstance(value, str) and parse_duration(value.removeprefix("-")) is None:
            raise ValueError("must be a duration like '5m', '1h30m', '-1' or a number of seconds")
        return value


class OllamaEmbedder(RemoteEmbedder):
    name = "ollama"
    provider = "ollama"
    path = "/api/embed"

    def __init__(self, config: OllamaEmbedderConfig) -> None:
        super().__init__(config)
        self.config: OllamaEmbedderConfig = config

    @property
    def model_id(self) -> str:
        return f"ollama:{self.config.model}"

    @property
    def dims(self) -> int | None:
        return self._dims or KNOWN_DIMS.get(self.config.model.removesuffix(":latest"))

    def _body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "input": texts, "truncate": self.config.truncate}
        if self.config.keep_alive is not None:
            body["keep_alive"] = self.config.keep_alive
        return body

    def _vectors(self, payload: Any, n: int) -> np.ndarray:
        rows = payload.get("embeddings") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            raise BadResponse(f"{self.where}: the answer has no 'embeddings' list")
        if len(rows) != n:
            raise BadResponse(f"{self.where}: the answer holds {len(rows)} vectors for {n} texts")
        return self._as_matrix(rows)

    def _tokens(self, payload: Any) -> int:
        count = payload.get("prompt_eval_count") if isinstance(payload, dict) else None
        return count if isinstance(count, int) else 0

    def _error_text(self, payload: Any) -> tuple[str, str | None]:
        if isinstance(payload, dict):
            return str(payload.get("error", "")), None
        return str(payload), None

    def _hint(self, status: int) -> str | None:
        if status == 404:
            return f"run `ollama pull {self.config.model}` on the server, or check base_url"
        if status == 400:
            return "check the model (an embedding model?) and, with truncate: false, the text lengths"
        return None
