"""A wire-level fake of Weaviate for tests and benchmarks: the real ``weaviate-client`` v4 talks to it over
REST and gRPC on 127.0.0.1, as it would to a Weaviate node (no Weaviate server can run here).

gRPC is built on the client's own generated servicer (``weaviate.proto.v1``); REST speaks the endpoints the
client calls. It keeps collections with named or class-level vectors (hnsw / flat / dynamic configs, every
default filled in as a server fills it), multi-tenancy, auto-schema, and refuses what a real server refuses,
with its messages: unknown collections and properties, vectors of another dimension than a shard holds,
malformed filters, a missing or unknown tenant, a wrong API key. See :mod:`.data` for the rules, :mod:`.schema`
for the defaults, :mod:`.grpc_api` and :mod:`.rest` for the endpoints.

In this process (``FakeWeaviate``), or as its own process so it does not share the GIL with the code under
test: ``python -m vexrun.testing.fake_weaviate`` (see :mod:`vexrun.testing.services.weaviate`).
"""

from __future__ import annotations

from .schema import Refused
from .server import VERSION, FakeWeaviate, connect

__all__ = ["VERSION", "FakeWeaviate", "Refused", "connect"]
