"""Ollama's native chat: ``POST /api/chat`` (``stream: false``, ``format`` = ``"json"`` or a JSON schema,
``options`` such as ``num_predict``, ``num_ctx`` and ``draft_num_predict``), with Ollama's ``{"error": …}``
bodies: 404 ``model "x" not found, try pulling it first`` and, past ``max_parallel`` requests at once, 503
``server busy, please try again.  maximum pending requests exceeded``. No keys, no token budgets.

Add it to a server with :class:`~.ollama.OllamaApp` (the health and tags endpoints) — ``ollama_server(chat=True)``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .chat import prompt_of
from .common import api_key_of, count_tokens
from .extraction import apply_text_fault, extraction_answer
from .faults import TEXT_FAULTS, Fault
from .limits import ChatUsage
from .server import FakeAPIServer, Request, Response, Route

__all__ = ["OLLAMA_CHAT_MODELS", "OllamaChatApp"]

OLLAMA_CHAT_MODELS = ("llama3.2:3b", "llama3.1:8b", "qwen2.5:7b")
_FIELDS = {"model", "messages", "stream", "format", "options", "keep_alive", "tools", "think"}
_OPTIONS = {"temperature", "num_predict", "num_ctx", "draft_num_predict", "seed", "top_p", "top_k", "stop"}


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaChatApp:
    def __init__(self, *, models: Iterable[str] | None = OLLAMA_CHAT_MODELS, max_parallel: int | None = None) -> None:
        self.models = None if models is None else {_tagged(m) for m in models}
        self.max_parallel = max_parallel
        self.server: FakeAPIServer | None = None
        self.usage = ChatUsage()
        #: the ``options`` of every request, in order (tests check what was passed)
        self.options_seen: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._active = 0

    def bind(self, server: FakeAPIServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        return [Route("POST", "/api/chat", self.chat)]

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return Response(status, {"error": message})

    def key_of(self, request: Request) -> str | None:
        return api_key_of(request)

    def authenticate(self, request: Request) -> Response | None:
        return None

    def chat(self, request: Request, fault: Fault | None) -> Response:
        assert self.server is not None
        problem = self._check(request)
        if problem is not None:
            self.server.violation(request, problem)
            return self.error(400, problem)
        if self.models is not None and _tagged(request.json["model"]) not in self.models:
            return self.error(404, f'model "{request.json["model"]}" not found, try pulling it first')
        with self._lock:
            if self.max_parallel is not None and self._active >= self.max_parallel:
                return self.error(503, "server busy, please try again.  maximum pending requests exceeded")
            self._active += 1
        try:
            return self._answer(request, fault)
        finally:
            with self._lock:
                self._active -= 1

    def _answer(self, request: Request, fault: Fault | None) -> Response:
        assert self.server is not None
        body = request.json
        model = body["model"]
        self.options_seen.append(dict(body.get("options") or {}))
        text_in, first_user = prompt_of(body["messages"])
        content = apply_text_fault(
            extraction_answer(first_user), fault if fault is not None and fault.kind in TEXT_FAULTS else None
        )
        prompt_tokens, eval_tokens = count_tokens(text_in), count_tokens(content)
        with self._lock:
            self.usage.calls += 1
            self.usage.input_tokens += prompt_tokens
            self.usage.output_tokens += eval_tokens
        self.server.stats.served(request.key, 1, prompt_tokens + eval_tokens)
        t0 = time.perf_counter_ns()
        payload = {
            "model": model,
            "created_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "message": {"role": "assistant", "content": content},
            "done": True,
            "done_reason": "stop",
            "total_duration": 1_000_000 + (time.perf_counter_ns() - t0),
            "load_duration": 1_019_500,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": 20_000 * prompt_tokens,
            "eval_count": eval_tokens,
            "eval_duration": 40_000 * eval_tokens,
        }
        return Response(200, payload)

    def _check(self, request: Request) -> str | None:
        body = request.json
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = sorted(set(body) - _FIELDS)
        if unknown:
            return f"unknown fields {unknown}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "'model' must be a non-empty string"
        if body.get("stream", True) is not False:
            return "'stream' must be false (vexrun reads one answer)"
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            return "'messages' must be a non-empty list"
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ("system", "user", "assistant"):
                return "each message needs a role of system, user or assistant"
            if not isinstance(m.get("content"), str):
                return "each message's content must be a string"
        fmt = body.get("format")
        if fmt is not None and fmt != "json" and not isinstance(fmt, dict):
            return "'format' must be 'json' or a JSON schema object"
        options = body.get("options")
        if options is not None:
            if not isinstance(options, dict):
                return "'options' must be an object"
            unknown = sorted(set(options) - _OPTIONS)
            if unknown:
                return f"unknown options {unknown}"
        return None
