"""Agent frameworks recalling from vexrun stores, each through :class:`vexrun.recall.Memory`:

- :mod:`vexrun.integrations.langgraph` — ``VexrunStore``, a LangGraph ``BaseStore``
  (``pip install 'vexrun[langgraph]'``)
- :mod:`vexrun.integrations.langchain` — ``VexrunVectorStore`` and ``VexrunEmbeddings`` for LangChain
  (``pip install 'vexrun[langchain]'``)
- :mod:`vexrun.integrations.llamaindex` — ``VexrunVectorStore`` for LlamaIndex (``pip install 'vexrun[llamaindex]'``)
- :mod:`vexrun.integrations.mcp_server` — the MCP server behind ``vexrun mcp`` (``pip install 'vexrun[mcp]'``)

This package imports nothing; each module imports its framework when it is imported.
"""

from __future__ import annotations

__all__: list[str] = []
