"""``type: openai`` (alias ``openai-compatible``): ``POST {base_url}/embeddings`` on OpenAI or any endpoint that
speaks its protocol (Groq, Mistral, Together, vLLM, Ollama's ``/v1``, LiteLLM …).

Vectors are asked for base64-encoded float32 (a quarter of the bytes of JSON numbers, and exact); an answer
with JSON numbers is read too, so servers that ignore ``encoding_format`` still work.

The API key comes from ``api_key`` (a recipe passes ``${OPENAI_API_KEY}``); when it is not set and the endpoint
is OpenAI's own, ``OPENAI_API_KEY`` from the environment. It is never sent to any other host unless given
explicitly, and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import base64
import os
from typing import Any, Literal
from urllib.parse import urlsplit

import numpy as np
from pydantic import Field, SecretStr

from .http import BadResponse, Refused, RemoteEmbedderConfig
from .remote import RemoteEmbedder

__all__ = ["OpenAIEmbedder", "OpenAIEmbedderConfig"]

OPENAI_HOST = "api.openai.com"
KEY_ENV = "OPENAI_API_KEY"

#: native dimensions of OpenAI's models, so ``dims`` is known before the first call
KNOWN_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


class OpenAIEmbedderConfig(RemoteEmbedderConfig):
    """``type: openai`` — OpenAI's embeddings API or any OpenAI-compatible endpoint."""

    type: Literal["openai", "openai-compatible"] = Field(
        default="openai", description="openai, or its alias openai-compatible."
    )
    base_url: str = Field(
        default="https://api.openai.com/v1", description="The API root; requests go to {base_url}/embeddings."
    )
    model: str = Field(default="text-embedding-3-small", min_length=1, description="The embedding model.")
    api_key: SecretStr | None = Field(
        default=None,
        description="The API key, sent as 'Authorization: Bearer'. Give it as ${VAR}. Unset: OPENAI_API_KEY from "
        "the environment when base_url is OpenAI's own, otherwise no key (local servers).",
    )
    dimensions: int | None = Field(
        default=None, ge=1, le=65536, description="Ask for shorter vectors (text-embedding-3 models only)."
    )
    encoding_format: Literal["base64", "float"] = Field(
        default="base64", description="How vectors travel: base64 float32 (smaller, exact) or JSON numbers."
    )
    batch_size: int = Field(default=256, ge=1, le=2048, description="Most texts per request (OpenAI allows 2048).")
    max_request_tokens: int = Field(
        default=250_000,
        ge=1,
        description="Most (estimated, rounded up) tokens per request; OpenAI refuses requests over 300,000.",
    )


class OpenAIEmbedder(RemoteEmbedder):
    name = "openai"
    provider = "openai"
    path = "/embeddings"

    def __init__(self, config: OpenAIEmbedderConfig) -> None:
        super().__init__(config)
        self.config: OpenAIEmbedderConfig = config
        self._key: str | None = None

    @property
    def model_id(self) -> str:
        suffix = f"@{self.config.dimensions}" if self.config.dimensions else ""
        return f"openai:{self.config.model}{suffix}"

    @property
    def dims(self) -> int | None:
        return self._dims or self.config.dimensions or KNOWN_DIMS.get(self.config.model)

    def _secrets(self) -> tuple[str, ...]:
        return (self._key,) if self._key else ()

    def _prepare(self) -> dict[str, str]:
        key = self.config.api_key.get_secret_value() if self.config.api_key is not None else None
        official = urlsplit(self.config.base_url).hostname == OPENAI_HOST
        if key is None and official:
            key = os.environ.get(KEY_ENV) or None
            if key is None:
                raise Refused(
                    f"{self.where}: no API key",
                    hint=f"set {KEY_ENV}, or give api_key: ${{{KEY_ENV}}} in the recipe",
                )
        self._key = key
        return {"authorization": f"Bearer {key}"} if key else {}

    def _body(self, texts: list[str]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.config.model, "input": texts}
        body["encoding_format"] = self.config.encoding_format
        if self.config.dimensions is not None:
            body["dimensions"] = self.config.dimensions
        return body

    def _vectors(self, payload: Any, n: int) -> np.ndarray:
        data = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(data, list) or not all(isinstance(item, dict) for item in data):
            raise BadResponse(f"{self.where}: the answer has no 'data' list of embeddings")
        if len(data) != n:
            raise BadResponse(f"{self.where}: the answer holds {len(data)} vectors for {n} texts")
        indices = [item.get("index") for item in data]
        if indices != list(range(n)):
            if sorted(i for i in indices if isinstance(i, int)) != list(range(n)):
                raise BadResponse(f"{self.where}: the answer's indices are not 0..{n - 1}")
            data = sorted(data, key=lambda item: int(item["index"]))
        rows = [item.get("embedding") for item in data]
        if all(isinstance(r, str) for r in rows):
            return self._from_base64([str(r) for r in rows])
        return self._as_matrix(rows)

    def _from_base64(self, rows: list[str]) -> np.ndarray:
        try:
            raw = [base64.b64decode(r, validate=True) for r in rows]
        except ValueError:
            raise BadResponse(f"{self.where}: an embedding is not valid base64") from None
        sizes = {len(b) for b in raw}
        if len(sizes) != 1 or next(iter(sizes)) % 4:
            raise BadResponse(f"{self.where}: the base64 vectors are not float32 of one length")
        return np.frombuffer(b"".join(raw), dtype="<f4").reshape(len(raw), -1).astype(np.float32)

    def _tokens(self, payload: Any) -> int:
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return tokens if isinstance(tokens, int) else 0

    def _error_text(self, payload: Any) -> tuple[str, str | None]:
        if isinstance(payload, dict):
            err = payload.get("error", payload)
            if isinstance(err, dict):
                message = err.get("message") or err.get("detail") or ""
                code = err.get("code") or err.get("type")
                return str(message), str(code) if code else None
            return str(err), None
        return str(payload), None

    def _expected_dims(self) -> int | None:
        return self.config.dimensions or self._dims

    def _hint(self, status: int) -> str | None:
        if status in (401, 403):
            return f"check the API key ({KEY_ENV} or api_key) and its access to this model"
        if status == 404:
            return "check the model name and base_url"
        if status == 400:
            return "check the model, dimensions and batch settings"
        return None

    def _token_estimate(self, text: str) -> int:
        # No tokenizer here: 3 bytes per token over-counts English text (~4.5) and matches CJK (3 bytes/char).
        return len(text.encode("utf-8", "surrogatepass")) // 3 + 1

    def _max_request_tokens(self) -> int | None:
        return self.config.max_request_tokens
