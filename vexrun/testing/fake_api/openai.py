"""The OpenAI dialect: ``POST /v1/embeddings`` and ``GET /v1/models``, with OpenAI's error bodies, 401 for a
wrong ``Authorization: Bearer`` key, its per-request limits (2,048 inputs, 300,000 tokens; 8,192 tokens per
input), ``dimensions`` for text-embedding-3 models and ``encoding_format: base64``.

A request our clients should never send (unknown fields, wrong types, empty inputs, not JSON) is answered
400, as OpenAI does, and recorded in the server's ``violations``.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Mapping

import numpy as np

from .common import api_key_of, count_tokens, embedding_matrix, mask_key
from .faults import Fault
from .server import FakeAPIServer, Request, Response, Route

__all__ = ["OPENAI_MODELS", "OpenAIApp"]

OPENAI_MODELS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}

_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error"}
_TYPES |= {404: "invalid_request_error", 429: "requests", 500: "server_error", 503: "server_error"}
_EMBED_FIELDS = {"model", "input", "encoding_format", "dimensions", "user"}


class OpenAIApp:
    def __init__(
        self,
        *,
        api_keys: Iterable[str] | None = None,
        models: Mapping[str, int] | None = None,
        prefix: str = "/v1",
        max_inputs: int = 2048,
        max_request_tokens: int = 300_000,
        max_input_tokens: int = 8192,
        resizable: tuple[str, ...] = ("text-embedding-3",),
    ) -> None:
        """``api_keys``: the keys accepted (None: no key needed, like a local server). ``models``: name → native
        dimension. ``resizable``: model-name prefixes that accept ``dimensions``."""
        self.api_keys = None if api_keys is None else set(api_keys)
        self.models = dict(models or OPENAI_MODELS)
        self.prefix = prefix.rstrip("/")
        self.max_inputs = max_inputs
        self.max_request_tokens = max_request_tokens
        self.max_input_tokens = max_input_tokens
        self.resizable = resizable
        self.server: FakeAPIServer | None = None

    # --- the App protocol ------------------------------------------------------------------------------

    def bind(self, server: FakeAPIServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        return [
            Route("POST", f"{self.prefix}/embeddings", self.embeddings),
            Route("GET", f"{self.prefix}/models", self.list_models, faultable=False),
        ]

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        err = {"message": message, "type": _TYPES.get(status, "invalid_request_error"), "param": None, "code": code}
        return Response(status, {"error": err})

    def key_of(self, request: Request) -> str | None:
        return api_key_of(request)

    def authenticate(self, request: Request) -> Response | None:
        if self.api_keys is None:
            return None
        if "authorization" not in request.headers:
            return self.error(
                401,
                "You didn't provide an API key. You need to provide your API key in an Authorization header using "
                "Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        if request.key not in self.api_keys:
            shown = mask_key(request.key or "")
            return self.error(
                401,
                f"Incorrect API key provided: {shown}. You can find your API key at "
                "https://platform.openai.com/account/api-keys.",
                "invalid_api_key",
            )
        return None

    # --- endpoints -------------------------------------------------------------------------------------

    def list_models(self, request: Request, fault: Fault | None) -> Response:
        data = [{"id": m, "object": "model", "created": 1705953180, "owned_by": "system"} for m in self.models]
        return Response(200, {"object": "list", "data": data})

    def embeddings(self, request: Request, fault: Fault | None) -> Response:
        problem = self._check(request)
        if problem is not None:
            assert self.server is not None
            self.server.violation(request, problem)
            return self.error(400, f"Invalid request: {problem}.")
        body = request.json
        model = body["model"]
        if model not in self.models:
            return self.error(
                404, f"The model `{model}` does not exist or you do not have access to it.", "model_not_found"
            )
        native = self.models[model]
        dims = body.get("dimensions", native)
        if "dimensions" in body and not model.startswith(self.resizable):
            return self.error(400, "This model does not support specifying dimensions.")
        if dims > native:
            return self.error(400, f"This model's maximum dimensions is {native}, you requested {dims}.")
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        counts = [count_tokens(t) for t in texts]
        if max(counts) > self.max_input_tokens:
            return self.error(
                400,
                f"This model's maximum context length is {self.max_input_tokens} tokens, however you requested "
                f"{max(counts)} tokens (0 for the completion). Please reduce your prompt; or completion length.",
            )
        tokens = sum(counts)
        if tokens > self.max_request_tokens:
            return self.error(
                400,
                f"Requested {tokens} tokens, max {self.max_request_tokens} tokens per request",
                "max_tokens_per_request",
            )
        vectors = embedding_matrix(texts, dims, fault)
        as_base64 = body.get("encoding_format") == "base64"
        data = [
            {"object": "embedding", "index": i, "embedding": _b64(v) if as_base64 else v} for i, v in enumerate(vectors)
        ]
        payload = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        assert self.server is not None
        self.server.stats.served(request.key, len(texts), tokens)
        headers = {
            "openai-model": model,
            "openai-processing-ms": "12",
            "x-request-id": f"req_{uuid.uuid4().hex}",
            "x-ratelimit-limit-requests": "3000",
            "x-ratelimit-remaining-requests": "2999",
            "x-ratelimit-reset-requests": "20ms",
        }
        if fault is not None and fault.kind == "non_finite" and not as_base64:
            # JSON has no NaN; a broken server writes it anyway (orjson would write null)
            rows = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
            raw = json.dumps({**payload, "data": rows})
            return Response(200, body=raw.encode(), headers=headers)
        return Response(200, payload, headers=headers)

    def _check(self, request: Request) -> str | None:
        """What is wrong with an embeddings request, or None."""
        if not request.headers.get("content-type", "").startswith("application/json"):
            return f"content-type is {request.headers.get('content-type')!r}, not application/json"
        body = request.json
        if not isinstance(body, dict):
            return "the body is not a JSON object"
        unknown = sorted(set(body) - _EMBED_FIELDS)
        if unknown:
            return f"unknown fields {unknown}"
        if not isinstance(body.get("model"), str) or not body["model"]:
            return "'model' must be a non-empty string"
        inputs = body.get("input")
        if isinstance(inputs, str):
            inputs = [inputs]
        if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) for t in inputs):
            return "'input' must be a string or a non-empty list of strings"
        if len(inputs) > self.max_inputs:
            return f"'input' has {len(inputs)} items, at most {self.max_inputs} allowed"
        if any(not t for t in inputs):
            return "'input' holds an empty string"
        if body.get("encoding_format", "float") not in ("float", "base64"):
            return f"'encoding_format' must be 'float' or 'base64', not {body['encoding_format']!r}"
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
            return "'dimensions' must be a positive integer"
        return None


def _b64(vector: np.ndarray) -> str:
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")
