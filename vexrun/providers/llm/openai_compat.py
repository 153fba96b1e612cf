"""OpenAI-compatible chat completions: ``type: openai``, ``groq``, ``mistral`` and ``together`` (and any server
that speaks ``POST {base_url}/chat/completions``: vLLM, LiteLLM, LM Studio, Ollama's ``/v1``).

Structured output: ``json_schema`` (strict) where the provider enforces a schema (OpenAI's default),
``json_object`` (valid JSON, schema given in the prompt) for the others, ``none`` for servers that know neither.
Groq answers 400 ``json_validate_failed`` when its model breaks the JSON; that is handled as an answer that
did not parse (repair, then the next provider), with the failed generation as the answer.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from ..embed.http import BadResponse, EndpointError
from .base import ChatAnswer, ChatProvider, ChatRequest, InvalidOutput, LLMProviderConfig, message_text

__all__ = [
    "GroqConfig",
    "GroqProvider",
    "MistralConfig",
    "MistralProvider",
    "OpenAIChatConfig",
    "OpenAIChatProvider",
    "OpenAICompatConfig",
    "OpenAICompatProvider",
    "TogetherConfig",
    "TogetherProvider",
]

StructuredOutput = Literal["json_schema", "json_object", "none"]


class OpenAICompatConfig(LLMProviderConfig):
    """Settings of every OpenAI-compatible provider."""

    structured_output: StructuredOutput = Field(
        default="json_object",
        description="json_schema: the server enforces the answer's schema; json_object: valid JSON only (the schema "
        "is in the prompt); none: plain text (parsed tolerantly).",
    )


class GroqConfig(OpenAICompatConfig):
    """``type: groq`` — GroqCloud (free tier defaults: 6,000 tokens and 30 requests per minute per key)."""

    key_env = "GROQ_API_KEY"
    official_host = "api.groq.com"
    known_prices = {"llama-3.1-8b-instant": (0.05, 0.08), "llama-3.3-70b-versatile": (0.59, 0.79)}

    type: Literal["groq"] = Field(default="groq", description="groq")
    model: str = Field(default="llama-3.1-8b-instant", min_length=1, description="The Groq model.")
    base_url: str = Field(default="https://api.groq.com/openai/v1", description="The API root.")
    tpm: int | None = Field(default=6000, ge=1, description="Tokens per minute per key (Groq free tier: 6,000).")
    rpm: int | None = Field(default=30, ge=1, description="Requests per minute per key (Groq free tier: 30).")


class OpenAIChatConfig(OpenAICompatConfig):
    """``type: openai`` (alias ``openai-compatible``) — OpenAI, or any compatible server through ``base_url``
    (defaults: usage tier 1 of gpt-4o-mini, 200,000 tokens and 500 requests per minute per key)."""

    key_env = "OPENAI_API_KEY"
    official_host = "api.openai.com"
    known_prices = {"gpt-4o-mini": (0.15, 0.60), "gpt-4.1-mini": (0.40, 1.60), "gpt-4.1-nano": (0.10, 0.40)}

    type: Literal["openai", "openai-compatible"] = Field(default="openai", description="openai or openai-compatible")
    model: str = Field(default="gpt-4o-mini", min_length=1, description="The model.")
    base_url: str = Field(default="https://api.openai.com/v1", description="The API root.")
    structured_output: StructuredOutput = Field(
        default="json_schema", description="json_schema (strict, the default), json_object or none."
    )
    tpm: int | None = Field(default=200_000, ge=1, description="Tokens per minute per key (tier 1: 200,000).")
    rpm: int | None = Field(default=500, ge=1, description="Requests per minute per key (tier 1: 500).")


class MistralConfig(OpenAICompatConfig):
    """``type: mistral`` — La Plateforme (free tier defaults: 1 request per second, 500,000 tokens per minute)."""

    key_env = "MISTRAL_API_KEY"
    official_host = "api.mistral.ai"
    known_prices = {"mistral-small-latest": (0.10, 0.30)}

    type: Literal["mistral"] = Field(default="mistral", description="mistral")
    model: str = Field(default="mistral-small-latest", min_length=1, description="The Mistral model.")
    base_url: str = Field(default="https://api.mistral.ai/v1", description="The API root.")
    tpm: int | None = Field(default=500_000, ge=1, description="Tokens per minute per key.")
    rpm: int | None = Field(default=60, ge=1, description="Requests per minute per key (free tier: 1 per second).")


class TogetherConfig(OpenAICompatConfig):
    """``type: together`` — Together AI (defaults: 600 requests and 180,000 tokens per minute per key)."""

    key_env = "TOGETHER_API_KEY"
    official_host = "api.together.xyz"
    known_prices = {"meta-llama/Llama-3.2-3B-Instruct-Turbo": (0.06, 0.06)}

    type: Literal["together"] = Field(default="together", description="together")
    model: str = Field(default="meta-llama/Llama-3.2-3B-Instruct-Turbo", min_length=1, description="The model.")
    base_url: str = Field(default="https://api.together.xyz/v1", description="The API root.")
    tpm: int | None = Field(default=180_000, ge=1, description="Tokens per minute per key.")
    rpm: int | None = Field(default=600, ge=1, description="Requests per minute per key.")


class OpenAICompatProvider(ChatProvider):
    kind = "openai-compatible"
    path = "/chat/completions"
    #: the name of the output-length field (OpenAI's own API renamed it)
    max_tokens_field: str = "max_tokens"

    def __init__(self, config: OpenAICompatConfig, *, label: str | None = None) -> None:
        super().__init__(config, label=label)
        self.config: OpenAICompatConfig = config

    def _body(self, request: ChatRequest) -> dict[str, Any]:
        messages = [{"role": "system", "content": request.system}]
        messages += [{"role": m.role, "content": m.content} for m in request.messages]
        body: dict[str, Any] = {
            "model": self.config.model,
            "messages": messages,
            "temperature": request.temperature,
            self.max_tokens_field: request.max_tokens,
        }
        mode = self.config.structured_output
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": request.schema_name, "schema": dict(request.schema), "strict": True},
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def _answer(self, payload: Any, headers: dict[str, str]) -> ChatAnswer:
        choices = payload.get("choices") if isinstance(payload, dict) else None
        if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
            raise BadResponse(f"{self.where}: the answer has no choices")
        choice = choices[0]
        message: dict[str, Any] = choice["message"] if isinstance(choice.get("message"), dict) else {}
        text = message_text(message.get("content"))
        if not text and message.get("refusal"):
            text = ""  # a refusal: nothing to parse; the cascade repairs, then moves on
        usage = payload.get("usage") if isinstance(payload.get("usage"), dict) else {}
        return ChatAnswer(
            text=text,
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            model=str(payload.get("model") or self.config.model),
            truncated=choice.get("finish_reason") == "length",
        )

    def _classify(self, status: int, text: str, code: str | None, payload: Any) -> EndpointError | None:
        if code == "json_validate_failed":
            err = payload.get("error") if isinstance(payload, dict) else None
            failed = err.get("failed_generation") if isinstance(err, dict) else None
            return InvalidOutput(
                f"{self.where}: the model's JSON failed the server's validation", text=str(failed or ""), status=status
            )
        return None


class OpenAIChatProvider(OpenAICompatProvider):
    kind = "openai"

    def __init__(self, config: OpenAICompatConfig, *, label: str | None = None) -> None:
        super().__init__(config, label=label)
        if config.is_official():
            self.max_tokens_field = "max_completion_tokens"


class GroqProvider(OpenAICompatProvider):
    kind = "groq"


class MistralProvider(OpenAICompatProvider):
    kind = "mistral"


class TogetherProvider(OpenAICompatProvider):
    kind = "together"


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
