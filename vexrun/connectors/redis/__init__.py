"""Redis with vector search (RediSearch: Redis Stack, Redis 8, Redis Cloud): records as HASH or JSON documents
under a key prefix, a vector index over them. The SDK (redis-py) is imported only when a source or sink opens."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...lazy import lazy_exports

if TYPE_CHECKING:
    from .config import RedisSinkConfig, RedisSourceConfig
    from .sink import RedisSink
    from .source import RedisSource

__all__ = ["RedisSink", "RedisSinkConfig", "RedisSource", "RedisSourceConfig"]

# the sink and source modules are imported when a run uses them, not when the plugins are listed
__getattr__, __dir__ = lazy_exports(
    __name__,
    {"RedisSinkConfig": ".config", "RedisSourceConfig": ".config", "RedisSink": ".sink", "RedisSource": ".source"},
)
