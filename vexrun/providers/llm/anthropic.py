"""``type: anthropic`` — Anthropic's native Messages API (``POST {base_url}/v1/messages``), not a compatibility
shim.

Structured output is a forced tool call (``tool_choice: {type: tool}``) whose ``input_schema`` is the answer's
schema: the model must answer with the tool's input, a JSON object, which is serialised as the answer text.
Anthropic counts input and output tokens per minute apart (ITPM, OTPM): ``tpm`` is the input budget and
``output_tpm`` the output budget. A 429 carries ``retry-after`` (seconds) and ``anthropic-ratelimit-*-reset``
times (RFC 3339); 529 means overloaded (retried like a 5xx).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import orjson
from pydantic import Field

from ..embed.http import BadResponse, EndpointError
from .base import ChatAnswer, ChatProvider, ChatRequest, KeyRefused, LLMProviderConfig, ModelRefused

__all__ = ["ANTHROPIC_VERSION", "AnthropicConfig", "AnthropicProvider", "anthropic_reset_hint"]

ANTHROPIC_VERSION = "2023-06-01"
_LIMITS = ("requests", "tokens", "input-tokens", "output-tokens")


class AnthropicConfig(LLMProviderConfig):
    """``type: anthropic`` (defaults: usage tier 1 of Claude Haiku 4.5: 50 requests, 50,000 input tokens and
    10,000 output tokens per minute per key)."""

    key_env = "ANTHROPIC_API_KEY"
    official_host = "api.anthropic.com"
    known_prices = {"claude-haiku-4-5-20251001": (1.00, 5.00), "claude-haiku-4-5": (1.00, 5.00)}

    type: Literal["anthropic", "claude"] = Field(default="anthropic", description="anthropic (alias claude)")
    model: str = Field(default="claude-haiku-4-5-20251001", min_length=1, description="The Claude model.")
    base_url: str = Field(
        default="https://api.anthropic.com", description="The API root (requests go to /v1/messages)."
    )
    tpm: int | None = Field(default=50_000, ge=1, description="Input tokens per minute per key (ITPM).")
    output_tpm: int | None = Field(default=10_000, ge=1, description="Output tokens per minute per key (OTPM).")
    rpm: int | None = Field(default=50, ge=1, description="Requests per minute per key.")
    structured_output: Literal["tool", "none"] = Field(
        default="tool", description="tool: a forced tool call carries the JSON; none: plain text (parsed tolerantly)."
    )
    anthropic_version: str = Field(default=ANTHROPIC_VERSION, description="The anthropic-version header.")


def anthropic_reset_hint(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds until the exhausted ``anthropic-ratelimit-*`` limits reset (all of them when none says 0)."""
    now = time.time() if now is None else now
    resets: dict[str, float] = {}
    for kind in _LIMITS:
        value = headers.get(f"anthropic-ratelimit-{kind}-reset")
        if not value:
            continue
        try:
            when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            continue
        resets[kind] = max(0.0, when.timestamp() - now)
    exhausted = [k for k in resets if headers.get(f"anthropic-ratelimit-{k}-remaining", "").strip() == "0"]
    chosen = exhausted or list(resets)
    return max(resets[k] for k in chosen) if chosen else None


class AnthropicProvider(ChatProvider):
    kind = "anthropic"
    path = "/v1/messages"

    def __init__(self, config: AnthropicConfig, *, label: str | None = None) -> None:
        super().__init__(config, label=label)
        self.config: AnthropicConfig = config

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"anthropic-version": self.config.anthropic_version}
        if key:
            headers["x-api-key"] = key
        return headers

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.config.model,
            "max_tokens": request.max_tokens,
            "system": request.system,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
            "temperature": request.temperature,
        }
        if self.config.structured_output == "tool":
            body["tools"] = [
                {
                    "name": request.schema_name,
                    "description": "Record the answer. Always call this tool with the complete answer.",
                    "input_schema": dict(request.schema),
                }
            ]
            body["tool_choice"] = {"type": "tool", "name": request.schema_name}
        return body

    def _answer(self, payload: Any, headers: dict[str, str]) -> ChatAnswer:
        blocks = payload.get("content") if isinstance(payload, dict) else None
        if not isinstance(blocks, list):
            raise BadResponse(f"{self.where}: the answer has no content blocks")
        text = ""
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                text = orjson.dumps(block["input"]).decode("utf-8")
                break
        else:
            text = "".join(str(b.get("text", "")) for b in blocks if isinstance(b, dict) and b.get("type") == "text")
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        cached_in = _int(usage.get("cache_read_input_tokens")) + _int(usage.get("cache_creation_input_tokens"))
        return ChatAnswer(
            text=text,
            input_tokens=_int(usage.get("input_tokens")) + cached_in,
            output_tokens=_int(usage.get("output_tokens")),
            model=str(payload.get("model") or self.config.model),
            truncated=payload.get("stop_reason") == "max_tokens",
        )

    def _error_text(self, payload: Any) -> tuple[str, str | None]:
        if isinstance(payload, dict) and isinstance(payload.get("error"), dict):
            err = payload["error"]
            return str(err.get("message") or ""), str(err.get("type") or "") or None
        return super()._error_text(payload)

    def _classify(self, status: int, text: str, code: str | None, payload: Any) -> EndpointError | None:
        where = f"{self.where}: HTTP {status}"
        if code == "authentication_error" or status == 401:
            return KeyRefused(f"{where}: the API key was refused", status=status, hint="check ANTHROPIC_API_KEY")
        if code == "not_found_error" and "model" in text.lower():
            return ModelRefused(f"{where}: {text}", status=status, hint="check the model name")
        return None

    def _rate_hint(self, headers: Mapping[str, str], message: str) -> float | None:
        hint = super()._rate_hint(headers, message)
        return hint if hint is not None else anthropic_reset_hint(headers)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
