"""The OpenAI-compatible chat dialect: ``POST /v1/chat/completions`` as OpenAI, Groq, Mistral and Together speak
it, with per-key budgets (:mod:`.limits`) answered by the real 429s — OpenAI's ("Rate limit reached for
gpt-4o-mini in organization org-… on tokens per min (TPM): Limit 6000, Used 5950, Requested 320. Please try
again in 3.435s.", ``x-ratelimit-*`` headers) or Groq's (the same message in Groq's words, plus an integer
``retry-after``) — 401 for a wrong key, 404 ``model_not_found``, OpenAI's rule that ``json_object`` needs the
word "json" in the messages, and Groq's 413 for a request larger than the minute's budget.

Answers are :func:`~.extraction.extraction_answer` of the prompt, broken by text faults when scripted.
Requests our clients should never send are answered 400 and recorded in the server's ``violations``.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from .common import api_key_of, count_tokens, mask_key
from .extraction import apply_text_fault, extraction_answer
from .faults import TEXT_FAULTS, Fault, go_duration
from .limits import KeyBudget, Limited, RateLimiter
from .server import FakeAPIServer, Request, Response, Route

__all__ = ["CHAT_MODELS", "ChatApp", "prompt_of"]

CHAT_MODELS = (
    "gpt-4o-mini",
    "llama-3.1-8b-instant",
    "mistral-small-latest",
    "meta-llama/Llama-3.2-3B-Instruct-Turbo",
    "llama3.2:3b",
)
_FIELDS = {
    "model",
    "messages",
    "temperature",
    "max_tokens",
    "max_completion_tokens",
    "response_format",
    "top_p",
    "seed",
    "stream",
    "n",
    "stop",
    "user",
}
_LIMIT_NAMES = {"tokens": ("tokens per min (TPM)", "TPM"), "requests": ("requests per min (RPM)", "RPM")}


def prompt_of(messages: list[dict[str, Any]]) -> tuple[str, str]:
    """(all the text the model reads, the first user message)."""
    texts = [str(m.get("content", "")) for m in messages if isinstance(m, dict)]
    first_user = next((str(m.get("content", "")) for m in messages if m.get("role") == "user"), "")
    return "\n".join(texts), first_user


class ChatApp:
    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        models: Iterable[str] | None = CHAT_MODELS,
        prefix: str = "/v1",
        budget: KeyBudget | None = None,
        key_budgets: Mapping[str | None, KeyBudget] | None = None,
        style: Literal["openai", "groq"] = "openai",
        organization: str = "org-fake",
    ) -> None:
        """``api_keys``: keys accepted (None: any or none). ``models``: models served (None: any). ``budget``:
        each key's limits (``key_budgets`` per key). ``style``: whose 429s and headers to send."""
        self.api_keys = None if api_keys is None else set(api_keys)
        self.models = None if models is None else set(models)
        self.prefix = prefix.rstrip("/")
        self.limiter = RateLimiter(budget, key_budgets)
        self.style = style
        self.organization = organization
        self.server: FakeAPIServer | None = None

    def bind(self, server: FakeAPIServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("POST", f"{self.prefix}/chat/completions", self.completions)]

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        kind = {401: "invalid_request_error", 404: "invalid_request_error", 429: "tokens", 413: "tokens"}.get(
            status, "server_error" if status >= 500 else "invalid_request_error"
        )
        return Response(status, {"error": {"message": message, "type": kind, "param": None, "code": code}})

    def key_of(self, request: Request) -> str | None:
        return api_key_of(request)

    def authenticate(self, request: Request) -> Response | None:
        if self.api_keys is None:
            return None
        if request.key is None:
            return self.error(401, "You didn't provide an API key.", "invalid_api_key")
        if request.key not in self.api_keys:
            return self.error(401, f"Incorrect API key provided: {mask_key(request.key)}.", "invalid_api_key")
        return None

    # --- the endpoint ---------------------------------------------------------------------------------------

    def completions(self, request: Request, fault: Fault | None) -> Response:
        assert self.server is not None
        problem = self._check(request)
        if problem is not None:
            self.server.violation(request, problem)
            return self.error(400, f"Invalid request: {problem}.")
        body = request.json
        model = body["model"]
        if self.models is not None and model not in self.models:
            return self.error(
                404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
            )
        text_in, first_user = prompt_of(body["messages"])
        rf = body.get("response_format") or {}
        if rf.get("type") == "json_object" and "json" not in text_in.lower():
            return self.error(
                400,
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type 'json_object'.",
            )
        answer = extraction_answer(first_user)
        content = apply_text_fault(answer, fault if fault is not None and fault.kind in TEXT_FAULTS else None)
        prompt_tokens = count_tokens(text_in)
        completion_tokens = count_tokens(content)
        limited = self.limiter.admit(request.key, prompt_tokens, completion_tokens)
        if limited is not None:
            return self._limited(model, limited, request.key)
        self.server.stats.served(request.key, 1, prompt_tokens + completion_tokens)
        payload = {
            "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return Response(200, payload, headers=self._limit_headers(request.key))

    def _limit_headers(self, key: str | None) -> dict[str, str]:
        headers = {"x-request-id": f"req_{uuid.uuid4().hex}"}
        for kind, (limit, remaining, reset) in self.limiter.snapshot(key).items():
            if kind == "output_tokens":
                continue
            headers[f"x-ratelimit-limit-{kind}"] = str(limit)
            headers[f"x-ratelimit-remaining-{kind}"] = str(remaining)
            headers[f"x-ratelimit-reset-{kind}"] = go_duration(round(reset, 3))
        return headers

    def _limited(self, model: str, lim: Limited, key: str | None) -> Response:
        long_name, short = _LIMIT_NAMES.get(lim.kind, ("tokens per min (TPM)", "TPM"))
        if self.style == "groq":  # Groq spells it out
            long_name = long_name.replace(" per min ", " per minute ")
        if lim.too_large:
            if self.style == "groq":
                msg = (
                    f"Request too large for model `{model}` in organization `{self.organization}` service tier "
                    f"`on_demand` on {long_name}: Limit {lim.limit}, Requested {lim.requested}, please reduce your "
                    "message size and try again."
                )
                return self.error(413, msg, "rate_limit_exceeded")
            msg = (
                f"Request too large for {model} in organization {self.organization} on {long_name}: Limit "
                f"{lim.limit}, Requested {lim.requested}. The input or output tokens must be reduced in order to run "
                "successfully."
            )
            return self.error(429, msg, "rate_limit_exceeded")
        wait = go_duration(round(lim.wait, 3))
        if self.style == "groq":
            msg = (
                f"Rate limit reached for model `{model}` in organization `{self.organization}` service tier "
                f"`on_demand` on {long_name}: Limit {lim.limit}, Used {lim.used}, Requested {lim.requested}. "
                f"Please try again in {wait}. Need more tokens? Upgrade to Dev Tier today at "
                "https://console.groq.com/settings/billing"
            )
        else:
            msg = (
                f"Rate limit reached for {model} in organization {self.organization} on {long_name}: Limit "
                f"{lim.limit}, Used {lim.used}, Requested {lim.requested}. Please try again in {wait}. Visit "
                "https://platform.openai.com/account/rate-limits to learn more."
            )
        response = self.error(429, msg, "rate_limit_exceeded")
        response.headers.update(self._limit_headers(key))
        if self.style == "groq":
            response.headers["retry-after"] = str(max(1, math.ceil(lim.wait)))
        return response

    def _check(self, request: Request) -> str | None:
        if not request.headers.get("content-type", "").startswith("application/json"):
            return "content-type is not application/json"
        body = request.json
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            return f"unknown fields {unknown}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "'model' must be a non-empty string"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                return "each message needs a role of system, user or assistant"
            if not isinstance(m.get("content"), str):
                return "each message's content must be a string"
        if body.get("stream"):
            return "streaming was not expected"
        rf = body.get("response_format")
        if rf is not None:
            if not isinstance(rf, dict) or rf.get("type") not in ("text", "json_object", "json_schema"):
                return "'response_format.type' must be text, json_object or json_schema"
            if rf["type"] == "json_schema":
                js = rf.get("json_schema")
                if (
                    not isinstance(js, dict)
                    or not isinstance(js.get("name"), str)
                    or not isinstance(js.get("schema"), dict)
                ):
                    return "'response_format.json_schema' needs a name and a schema"
        for name in ("max_tokens", "max_completion_tokens"):
            v = body.get(name)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                return f"'{name}' must be a positive integer"
        return None
