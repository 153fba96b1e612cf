"""The Ollama dialect: native ``POST /api/embed`` plus the health endpoints ``GET /``, ``GET /api/version`` and
``GET /api/tags``, with Ollama's ``{"error": "..."}`` bodies, ``model:tag`` names (a bare name means
``:latest``) and a context length that ``truncate: false`` enforces.

Requests our clients should never send (unknown fields, wrong types, not JSON) are answered 400 and recorded in
the server's ``violations``. Serve Ollama's OpenAI-compatible ``/v1`` too by adding an ``OpenAIApp()``
(no keys) to the same server.
"""

from __future__ import annotations

from collections.abc import Mapping

from .common import api_key_of, count_tokens, embedding_matrix
from .faults import Fault
from .server import FakeAPIServer, Request, Response, Route

__all__ = ["OLLAMA_MODELS", "OllamaApp"]

OLLAMA_MODELS = {"nomic-embed-text": 768, "all-minilm": 384, "mxbai-embed-large": 1024}
_EMBED_FIELDS = {"model", "input", "truncate", "keep_alive", "options", "dimensions"}


def _tagged(name: str) -> str:
    return name if ":" in name.rsplit("/", 1)[-1] else f"{name}:latest"


class OllamaApp:
    def __init__(self, *, models: Mapping[str, int] | None = None, context_length: int = 2048, version: str = "0.12.6"):
        """``models``: name → dimension (pulled on this fake server); ``context_length`` in (fake) tokens."""
        self.models = {_tagged(m): d for m, d in (models or OLLAMA_MODELS).items()}
        self.context_length = context_length
        self.version = version
        self.server: FakeAPIServer | None = None

    def bind(self, server: FakeAPIServer) -> None:
        self.server = server

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/", self.root, faultable=False),
            Route("GET", "/api/version", self.get_version, faultable=False),
            Route("GET", "/api/tags", self.tags, faultable=False),
            Route("POST", "/api/embed", self.embed),
        ]

    def error(self, status: int, message: str, code: str | None = None) -> Response:
        return Response(status, {"error": message})

    def key_of(self, request: Request) -> str | None:
        return api_key_of(request)

    def authenticate(self, request: Request) -> Response | None:
        return None

    # --- endpoints -------------------------------------------------------------------------------------

    def root(self, request: Request, fault: Fault | None) -> Response:
        return Response(200, body=b"Ollama is running", content_type="text/plain; charset=utf-8")

    def get_version(self, request: Request, fault: Fault | None) -> Response:
        return Response(200, {"version": self.version})

    def tags(self, request: Request, fault: Fault | None) -> Response:
        models = [
            {
                "name": name,
                "model": name,
                "modified_at": "2026-01-01T00:00:00Z",
                "size": 274302450,
                "digest": "0a109f422b47e3a30ba2b10eca18548e944e8a23073ee3f3e947efcf3c45e59f",
                "details": {"format": "gguf", "family": "nomic-bert", "embedding_length": dims},
            }
            for name, dims in self.models.items()
        ]
        return Response(200, {"models": models})

    def embed(self, request: Request, fault: Fault | None) -> Response:
        problem = self._check(request)
        if problem is not None:
            assert self.server is not None
            self.server.violation(request, problem)
            return self.error(400, problem)
        body = request.json
        model = body["model"]
        dims = self.models.get(_tagged(model))
        if dims is None:
            return self.error(404, f'model "{model}" not found, try pulling it first')
        texts = [body["input"]] if isinstance(body["input"], str) else body["input"]
        counts = [count_tokens(t) for t in texts]
        if not body.get("truncate", True) and counts and max(counts) > self.context_length:
            return self.error(400, "the input length exceeds the context length")
        counts = [min(c, self.context_length) for c in counts]
        vectors = embedding_matrix(texts, dims, fault)
        assert self.server is not None
        self.server.stats.served(request.key, len(texts), sum(counts))
        payload = {
            "model": model,
            "embeddings": vectors,
            "total_duration": 14_143_917 + 1000 * len(texts),
            "load_duration": 1_019_500,
            "prompt_eval_count": sum(counts),
        }
        if fault is not None and fault.kind == "non_finite":
            import json

            raw = json.dumps({**payload, "embeddings": vectors.tolist()})
            return Response(200, body=raw.encode())
        return Response(200, payload)

    def _check(self, request: Request) -> str | None:
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
        if not isinstance(inputs, list) or not all(isinstance(t, str) for t in inputs):
            return "'input' must be a string or a list of strings"
        if "truncate" in body and not isinstance(body["truncate"], bool):
            return "'truncate' must be a boolean"
        keep = body.get("keep_alive")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, str | int | float)):
            return "'keep_alive' must be a duration string or a number"
        if "options" in body and not isinstance(body["options"], dict):
            return "'options' must be an object"
        return None
