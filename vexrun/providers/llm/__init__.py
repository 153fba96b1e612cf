"""LLM providers and the cascade that extraction calls.

- :mod:`.openai_compat`: ``openai`` (alias ``openai-compatible``), ``groq``, ``mistral``, ``together`` —
  ``POST {base_url}/chat/completions`` with JSON output (``response_format``);
- :mod:`.ollama`: ``ollama`` — native ``POST /api/chat`` with ``format`` (the answer's JSON schema);
- :mod:`.anthropic`: ``anthropic`` (alias ``claude``) — native ``POST /v1/messages``, a forced tool call;
- :mod:`.cascade`: ordered providers, key rotation with per-key budgets (:mod:`.budget`), retries, the cache,
  accounting; :mod:`.settings`: the recipe's ``llm:`` section.

Config models are light (pydantic only); httpx is imported when a provider is opened.
"""
