"""Loopback fake servers that speak the real wire protocols of the LLM and embedding APIs vexrun talks to, so
tests drive the real HTTP clients against them: no mocks, no network.

::

    from vexrun.testing.fake_api import Fault, openai_server

    with openai_server(api_keys=["sk-test"]) as srv:
        srv.fail(Fault.rate_limit(retry_after=0.2), Fault.server_error(503))
        base_url = srv.url("/v1")          # give this to the client
        ...
        assert srv.stats.texts == 10 and not srv.violations

One :class:`FakeAPIServer` hosts one or more dialect apps (:class:`OpenAIApp`, :class:`OllamaApp`) behind a small
router; faults (:class:`Fault`), latency and counters are shared by all of them. Vectors are
:func:`vexrun.testing.fake_embedder.fake_vector` of each text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from .faults import Fault, FaultScript, go_duration
from .ollama import OLLAMA_MODELS, OllamaApp
from .openai import OPENAI_MODELS, OpenAIApp
from .server import FakeAPIServer, Request, Response, Route, Stats, unused_port

__all__ = [
    "OLLAMA_MODELS",
    "OPENAI_MODELS",
    "FakeAPIServer",
    "Fault",
    "FaultScript",
    "OllamaApp",
    "OpenAIApp",
    "Request",
    "Response",
    "Route",
    "Stats",
    "go_duration",
    "ollama_server",
    "openai_server",
    "unused_port",
]


def openai_server(
    *,
    api_keys: Iterable[str] | None = None,
    models: Mapping[str, int] | None = None,
    latency: float | Callable[[Request], float] = 0.0,
    seed: int = 0,
    max_request_tokens: int = 300_000,
    max_inputs: int = 2048,
) -> FakeAPIServer:
    """A server with an :class:`OpenAIApp` at ``/v1`` (not started: use it in a ``with``)."""
    app = OpenAIApp(api_keys=api_keys, models=models, max_request_tokens=max_request_tokens, max_inputs=max_inputs)
    return FakeAPIServer(app, latency=latency, seed=seed)


def ollama_server(
    *,
    models: Mapping[str, int] | None = None,
    latency: float | Callable[[Request], float] = 0.0,
    seed: int = 0,
    openai_compat: bool = True,
) -> FakeAPIServer:
    """A server with an :class:`OllamaApp` (and, like Ollama, the OpenAI-compatible ``/v1`` without keys)."""
    apps: list[OllamaApp | OpenAIApp] = [OllamaApp(models=models)]
    if openai_compat:
        apps.append(OpenAIApp(models=models or OLLAMA_MODELS, resizable=()))
    return FakeAPIServer(*apps, latency=latency, seed=seed)
