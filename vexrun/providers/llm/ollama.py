"""``type: ollama`` — Ollama's native ``POST /api/chat`` with ``format`` set to the answer's JSON schema (Ollama
0.5+ constrains the output to it; older servers read any ``format`` as plain JSON mode).

A local server has no keys and no token budgets; its concurrency is ``max_in_flight`` (Ollama serves
``OLLAMA_NUM_PARALLEL`` requests at once and queues the rest). Speculative decoding: a draft model is attached
to a model in its Modelfile on the server; ``draft_num_predict`` sets how many tokens it proposes per step
(``0`` turns it off), passed as an option only when set, so servers without drafts are unaffected.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import Field

from ..embed.http import BadResponse, EndpointError, ServerError
from .base import ChatAnswer, ChatProvider, ChatRequest, LLMProviderConfig, ModelRefused

__all__ = ["OllamaChatConfig", "OllamaChatProvider", "default_ollama_url"]


def default_ollama_url() -> str:
    """``OLLAMA_HOST`` (as the ollama CLI reads it) or the local default."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return "http://127.0.0.1:11434"
    if "://" not in host:
        host = "http://" + host
    if host.count(":") < 2:
        host += ":11434"
    return host.rstrip("/")


class OllamaChatConfig(LLMProviderConfig):
    """``type: ollama`` — a local (or remote) Ollama server."""

    type: Literal["ollama"] = Field(default="ollama", description="ollama")
    model: str = Field(default="llama3.2:3b", min_length=1, description="The model (pulled on the server).")
    base_url: str = Field(
        default_factory=default_ollama_url, description="The server (default OLLAMA_HOST or http://127.0.0.1:11434)."
    )
    max_in_flight: int | None = Field(
        default=2, ge=1, le=256, description="Requests in progress at once (match the server's OLLAMA_NUM_PARALLEL)."
    )
    structured_output: Literal["schema", "json", "none"] = Field(
        default="schema",
        description="schema: format is the answer's JSON schema; json: format 'json'; none: no format.",
    )
    num_ctx: int | None = Field(default=None, ge=256, description="Context window to load the model with.")
    keep_alive: str | None = Field(default="10m", description="How long the server keeps the model loaded.")
    draft_num_predict: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Tokens the model's draft model proposes per step (speculative "
        "decoding; the draft is set in the Modelfile). None: the server's default.",
    )
    timeout: float = Field(default=600.0, gt=0, le=7200, description="Seconds to wait for one answer (CPU is slow).")


class OllamaChatProvider(ChatProvider):
    kind = "ollama"
    path = "/api/chat"
    keyless = True

    def __init__(self, config: OllamaChatConfig, *, label: str | None = None) -> None:
        super().__init__(config, label=label)
        self.config: OllamaChatConfig = config

    def probe(self, timeout: float = 1.0) -> str | None:
        """Whether the server answers and has the model pulled."""
        import httpx

        try:
            r = httpx.get(self.config.base_url + "/api/tags", timeout=timeout)
        except httpx.HTTPError:
            return f"no Ollama server answers at {self.config.base_url}"
        if r.status_code != 200:
            return f"{self.config.base_url}/api/tags answered HTTP {r.status_code}"
        try:
            names = {str(m.get("name")) for m in r.json().get("models", []) if isinstance(m, dict)}
        except ValueError:
            return f"{self.config.base_url}/api/tags did not answer JSON"
        want = self.config.model if ":" in self.config.model.rsplit("/", 1)[-1] else self.config.model + ":latest"
        if want not in names and self.config.model not in names:
            return f"Ollama answers but has no model {self.config.model} (run: ollama pull {self.config.model})"
        return None

    def _headers(self, key: str | None) -> dict[str, str]:
        return {"authorization": f"Bearer {key}"} if key else {}

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        options: dict[str, Any] = {"temperature": request.temperature, "num_predict": request.max_tokens}
        if self.config.num_ctx is not None:
            options["num_ctx"] = self.config.num_ctx
        if self.config.draft_num_predict is not None:
            options["draft_num_predict"] = self.config.draft_num_predict
        body: dict[str, Any] = {"model": self.config.model, "messages": messages, "stream": False, "options": options}
        if self.config.structured_output == "schema":
            body["format"] = dict(request.schema)
        elif self.config.structured_output == "json":
            body["format"] = "json"
        if self.config.keep_alive is not None:
            body["keep_alive"] = self.config.keep_alive
        return body

    def _answer(self, payload: Any, headers: dict[str, str]) -> ChatAnswer:
        message = payload.get("message") if isinstance(payload, dict) else None
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise BadResponse(f"{self.where}: the answer has no message content")
        return ChatAnswer(
            text=message["content"],
            input_tokens=_int(payload.get("prompt_eval_count")),
            output_tokens=_int(payload.get("eval_count")),
            model=str(payload.get("model") or self.config.model),
            truncated=payload.get("done_reason") == "length",
        )

    def _classify(self, status: int, text: str, code: str | None, payload: Any) -> EndpointError | None:
        lowered = text.lower()
        if "not found" in lowered and "model" in lowered:
            return ModelRefused(
                f"{self.where}: HTTP {status}: {text}",
                status=status,
                hint=f"run: ollama pull {self.config.model}",
            )
        if status == 503 or "server busy" in lowered:
            return ServerError(f"{self.where}: HTTP {status}: {text}", status=status)
        return None


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
