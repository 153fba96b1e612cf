"""A wire-level fake of Pinecone for tests and benchmarks: the real ``pinecone`` SDK talks to it over HTTP on
127.0.0.1, as it would to a Pinecone project (a control plane, and one host per index).

It speaks the REST endpoints the SDK calls (``POST /vectors/upsert``, ``POST /query``, ``GET /vectors/list``,
``GET /vectors/fetch``, ``POST /vectors/delete``, ``POST /describe_index_stats``; ``GET/POST /indexes``,
``GET/DELETE /indexes/{name}``) and enforces what a serverless index enforces: request sizes and counts,
record ids, dimensions, metadata types and size, and request rates per namespace and per index (429 above
them). See :mod:`.limits` for the figures and :mod:`.data` for the rules.

In this process (``FakePinecone``), or as its own process so it does not share the GIL with the code under
test: ``python -m vexrun.testing.pinecone`` (see :mod:`vexrun.testing.services.pinecone`).
"""

from __future__ import annotations

from .data import IndexData, Refused
from .limits import Limits, Stats
from .server import FakePinecone

__all__ = ["FakePinecone", "IndexData", "Limits", "Refused", "Stats"]
