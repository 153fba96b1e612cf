"""Anthropic's Messages API: ``POST /v1/messages`` with ``x-api-key`` and ``anthropic-version`` headers, tool use
(a forced ``tool_choice`` gets a ``tool_use`` block whose ``input`` is the answer object), Anthropic's error
bodies (``{"type": "error", "error": {"type": "rate_limit_error", …}}``), 529 ``overloaded_error``, and per-key
input and output token budgets (ITPM / OTPM) and requests per minute answered by its real 429: ``retry-after``
in whole seconds and the ``anthropic-ratelimit-*-limit / -remaining / -reset`` headers (RFC 3339 times).

A text fault makes the model ignore the tool and write (broken) text instead, as models do.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from .common import api_key_of, count_tokens
from .extraction import apply_text_fault, extraction_answer
from .faults import TEXT_FAULTS, Fault
from .limits import KeyBudget, Limited, RateLimiter
from .server import FakeAPIServer, Request, Response, Route

__all__ = ["ANTHROPIC_MODELS", "AnthropicApp"]

ANTHROPIC_MODELS = ("claude-haiku-4-5-20251001", "claude-haiku-4-5", "claude-sonnet-4-5")
_FIELDS = {"model", "max_tokens", "system", "messages", "temperature", "tools", "tool_choice", "stop_sequences"}
_FIELDS |= {"top_p", "top_k", "metadata", "stream"}
_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error", 404: "not_found_error"}
_TYPES |= {413: "request_too_large", 429: "rate_limit_error", 500: "api_error", 529: "overloaded_error"}
_LIMIT_WORDS = {
    "requests": "requests per minute",
    "input_tokens": "input tokens per minute",
    "output_tokens": "output tokens per minute",
    "tokens": "tokens per minute",
}


def _rfc3339(seconds_ahead: float) -> str:
    when = datetime.now(UTC) + timedelta(seconds=seconds_ahead)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class AnthropicApp:
    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        models: Iterable[str] | None = ANTHROPIC_MODELS,
        budget: KeyBudget | None = None,
        key_budgets: Mapping[str | None, KeyBudget] | None = None,
    ) -> None:
        self.api_keys = None if api_keys is None else set(api_keys)
        self.models = None if models is None else set(models)
        self.limiter = RateLimiter(budget, key_budgets)
        self.server: FakeAPIServer | None = None

    def bind(self, server: FakeAPIServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("POST", "/v1/messages", self.messages)]

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        kind = code or _TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return Response(status, {"type": "error", "error": {"type": kind, "message": message}})

    def key_of(self, request: Request) -> str | None:
        return request.headers.get("x-api-key") or api_key_of(request)

    def authenticate(self, request: Request) -> Response | None:
        if self.api_keys is None:
            return None
        if request.headers.get("x-api-key") not in self.api_keys:
            return self.error(401, "invalid x-api-key", "authentication_error")
        return None

    # --- the endpoint ---------------------------------------------------------------------------------------

    def messages(self, request: Request, fault: Fault | None) -> Response:
        assert self.server is not None
        problem = self._check(request)
        if problem is not None:
            self.server.violation(request, problem)
            return self.error(400, problem)
        body = request.json
        model = body["model"]
        if self.models is not None and model not in self.models:
            return self.error(404, f"model: {model}", "not_found_error")
        texts = [str(body.get("system") or "")] + [str(m["content"]) for m in body["messages"]]
        first_user = next(str(m["content"]) for m in body["messages"] if m["role"] == "user")
        answer = extraction_answer(first_user)
        tool = None
        choice = body.get("tool_choice")
        if isinstance(choice, dict) and choice.get("type") == "tool":
            tool = str(choice.get("name"))
        text_fault = fault if fault is not None and fault.kind in TEXT_FAULTS else None
        if tool is not None and (text_fault is None or text_fault.kind == "schema_invalid"):
            import json

            tool_input = json.loads(apply_text_fault(answer, text_fault))
            content: list[dict[str, Any]] = [
                {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:24]}", "name": tool, "input": tool_input}
            ]
            out_text = json.dumps(tool_input)
            stop = "tool_use"
        else:
            out_text = apply_text_fault(answer, text_fault)
            content = [{"type": "text", "text": out_text}]
            stop = "end_turn"
        input_tokens = count_tokens("\n".join(texts)) + (40 if body.get("tools") else 0)
        output_tokens = count_tokens(out_text)
        limited = self.limiter.admit(request.key, input_tokens, output_tokens)
        if limited is not None:
            return self._limited(limited, request.key)
        self.server.stats.served(request.key, 1, input_tokens + output_tokens)
        payload = {
            "id": f"msg_{uuid.uuid4().hex[:24]}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }
        return Response(200, payload, headers=self._headers(request.key))

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {"request-id": f"req_{uuid.uuid4().hex[:24]}"}
        for kind, (limit, remaining, reset) in self.limiter.snapshot(key).items():
            name = {"tokens": "input-tokens", "output_tokens": "output-tokens"}.get(kind, kind)
            headers[f"anthropic-ratelimit-{name}-limit"] = str(limit)
            headers[f"anthropic-ratelimit-{name}-remaining"] = str(remaining)
            headers[f"anthropic-ratelimit-{name}-reset"] = _rfc3339(reset)
        return headers

    def _limited(self, lim: Limited, key: str | None) -> Response:
        words = _LIMIT_WORDS.get(lim.kind, "tokens per minute")
        if lim.too_large:
            return self.error(413, f"Request exceeds the maximum allowed number of {words} ({lim.limit:,}).")
        msg = (
            f"This request would exceed the rate limit for your organization (org-fake) of {lim.limit:,} {words}. "
            "For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers "
            "for current usage. Please reduce the prompt length or the maximum tokens requested, or try again "
            "later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options "
            "for a rate limit increase."
        )
        response = self.error(429, msg, "rate_limit_error")
        response.headers.update(self._headers(key))
        response.headers["retry-after"] = str(max(1, math.ceil(lim.wait)))
        return response

    def _check(self, request: Request) -> str | None:
        if not request.headers.get("anthropic-version"):
            return "anthropic-version: header is required"
        body = request.json
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            return f"unknown fields {unknown}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "model: Field required"
        mt = body.get("max_tokens")
        if not isinstance(mt, int) or isinstance(mt, bool) or mt < 1:
            return "max_tokens: Field required (a positive integer)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "messages: at least one message is required"
        roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
        if roles[0] != "user" or any(r not in ("user", "assistant") for r in roles):
            return "messages: roles must be user or assistant, starting with user"
        if any(a == b for a, b in zip(roles, roles[1:], strict=False)):
            return "messages: roles must alternate between user and assistant"
        if any(not isinstance(m.get("content"), str | list) for m in messages):
            return "messages: content must be a string or a list of blocks"
        if body.get("stream"):
            return "streaming was not expected"
        tools = body.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not all(isinstance(t, dict) and "input_schema" in t for t in tools):
                return "tools: each tool needs a name and an input_schema"
        choice = body.get("tool_choice")
        if choice is not None and (not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool")):
            return "tool_choice: type must be auto, any or tool"
        return None
