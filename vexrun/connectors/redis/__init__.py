"""Redis with vector search (RediSearch: Redis Stack, Redis 8, Redis Cloud): records as HASH or JSON documents
under a key prefix, a vector index over them. The SDK (redis-py) is imported only when a source or sink opens."""

from __future__ import annotations

from .config import RedisSinkConfig, RedisSourceConfig
from .sink import RedisSink
from .source import RedisSource

__all__ = ["RedisSink", "RedisSinkConfig", "RedisSource", "RedisSourceConfig"]
