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

The chat dialects answer extraction prompts deterministically (:mod:`.extraction`) and enforce per-key budgets
(:class:`KeyBudget`) with each provider's real 429s::

    with chat_server(api_keys=["k1", "k2"], budget=KeyBudget(tpm=6000, rpm=30), style="groq") as srv:
        srv.fail(Fault.fenced(), Fault.rate_limit(try_again_in=0.5, key="k1"))
        base_url = srv.url("/v1")
        ...
        srv.apps[0].limiter.usage()["k1"].input_tokens    # calls and tokens per key

:func:`anthropic_server` (``/v1/messages``) and ``ollama_server(chat=True)`` (``/api/chat``) likewise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Literal

from .anthropic import ANTHROPIC_MODELS, AnthropicApp
from .chat import CHAT_MODELS, ChatApp
from .extraction import extraction_answer
from .faults import Fault, FaultScript, go_duration
from .limits import ChatUsage, KeyBudget, RateLimiter
from .ollama import OLLAMA_MODELS, OllamaApp
from .ollama_chat import OLLAMA_CHAT_MODELS, OllamaChatApp
from .openai import OPENAI_MODELS, OpenAIApp
from .server import FakeAPIServer, Request, Response, Route, Stats, unused_port

__all__ = [
    "ANTHROPIC_MODELS",
    "CHAT_MODELS",
    "OLLAMA_CHAT_MODELS",
    "OLLAMA_MODELS",
    "OPENAI_MODELS",
    "AnthropicApp",
    "ChatApp",
    "ChatUsage",
    "FakeAPIServer",
    "Fault",
    "FaultScript",
    "KeyBudget",
    "OllamaApp",
    "OllamaChatApp",
    "OpenAIApp",
    "RateLimiter",
    "Request",
    "Response",
    "Route",
    "Stats",
    "anthropic_server",
    "chat_server",
    "extraction_answer",
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
    chat: bool = False,
    chat_models: Iterable[str] | None = OLLAMA_CHAT_MODELS,
    max_parallel: int | None = None,
) -> FakeAPIServer:
    """A server with an :class:`OllamaApp` (and, like Ollama, the OpenAI-compatible ``/v1`` without keys); with
    ``chat``, also ``/api/chat`` (:class:`OllamaChatApp`, its models listed by ``/api/tags`` too) and the
    OpenAI-compatible ``/v1/chat/completions``."""
    embed_models = dict(models or OLLAMA_MODELS)
    listed = {**embed_models, **{m: 0 for m in (chat_models or ())}} if chat else embed_models
    apps: list[OllamaApp | OpenAIApp | OllamaChatApp | ChatApp] = [OllamaApp(models=listed)]
    if openai_compat:
        apps.append(OpenAIApp(models=embed_models, resizable=()))
    if chat:
        apps.append(OllamaChatApp(models=chat_models, max_parallel=max_parallel))
        if openai_compat:
            apps.append(ChatApp(models=chat_models))
    return FakeAPIServer(*apps, latency=latency, seed=seed)


def chat_server(
    *,
    api_keys: Iterable[str] | None = None,
    models: Iterable[str] | None = CHAT_MODELS,
    budget: KeyBudget | None = None,
    key_budgets: Mapping[str | None, KeyBudget] | None = None,
    style: Literal["openai", "groq"] = "openai",
    latency: float | Callable[[Request], float] = 0.0,
    seed: int = 0,
) -> FakeAPIServer:
    """An OpenAI-compatible chat server (:class:`ChatApp` at ``/v1``) for the openai, groq, mistral and together
    providers: ``budget`` per key, 429s in ``style``."""
    app = ChatApp(api_keys=api_keys, models=models, budget=budget, key_budgets=key_budgets, style=style)
    return FakeAPIServer(app, latency=latency, seed=seed)


def anthropic_server(
    *,
    api_keys: Iterable[str] | None = None,
    models: Iterable[str] | None = ANTHROPIC_MODELS,
    budget: KeyBudget | None = None,
    key_budgets: Mapping[str | None, KeyBudget] | None = None,
    latency: float | Callable[[Request], float] = 0.0,
    seed: int = 0,
) -> FakeAPIServer:
    """A server with Anthropic's ``/v1/messages`` (:class:`AnthropicApp`)."""
    app = AnthropicApp(api_keys=api_keys, models=models, budget=budget, key_budgets=key_budgets)
    return FakeAPIServer(app, latency=latency, seed=seed)
