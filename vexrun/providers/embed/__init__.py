"""Embedders: ``local`` (sentence-transformers on CPU, offline), ``openai`` (``/v1/embeddings`` and compatible
endpoints) and ``ollama`` (native ``/api/embed``).

Each module holds a config model (light: pydantic only, imported when a recipe is validated) and its
implementation, which imports its heavy dependencies (torch, httpx, tenacity) only when it is opened.
"""
