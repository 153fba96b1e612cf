"""Opening redis-py (imported here, lazily), turning its errors into one clear line, and the commands around the
records: the search index (FT.INFO read into :class:`IndexInfo`, FT.CREATE from the config, FT.DROPINDEX), the
meta hash, SCAN of the key prefix, and counting and listing through the index or, without one, by SCAN.

A record's key is ``prefix + id`` (the id's UTF-8 bytes): every id fits, none is mapped. The namespace is a
field (a TAG of the index), not part of the key, so a record is found by its id alone, as in every other
vexrun store. vexrun's own facts about the index (dims, metric, model, embedder, storage) are kept in the hash
``vexrun-meta:<collection>``, outside the prefix.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ...errors import ConnectError, InvalidInput
from ..base import RunContext
from .codec import Item, Layout, json_loads, record_from_hash, record_from_json
from .config import RedisSinkConfig, RedisStoreConfig

if TYPE_CHECKING:
    import redis

__all__ = ["DISTANCES", "IndexInfo", "Store", "display_location", "tag_query"]

#: vexrun's metric → RediSearch's DISTANCE_METRIC
DISTANCES = {"cosine": "COSINE", "l2": "L2", "dot": "IP"}
_METRICS = {v: k for k, v in DISTANCES.items()}
#: The TAG separator of the namespace field: a character no namespace holds, so a namespace is one tag.
TAG_SEPARATOR = "\x1f"
_CONNECT_TIMEOUT = 5.0
_TYPES = {"hash": "hash", "json": "ReJSON-RL"}
_NO_INDEX = ("no such index", "unknown index name", "unknown: index name")
_TAG_SPECIAL = re.compile(r"([\x00-\x2f\x3a-\x40\x5b-\x5e\x60\x7b-\x7f])")
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\^])")


def display_location(url: str) -> str:
    """Where the database is, for messages: scheme, host, port and database, without user or password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/') or '/0'}"


def tag_query(field_name: str, value: str) -> str:
    """``@field:{value}`` with the value's punctuation and spaces escaped (a namespace is matched exactly)."""
    escaped = _TAG_SPECIAL.sub(r"\\\1", value)
    return f"@{field_name}:{{{escaped}}}"


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _fail(exc: BaseException, where: str, doing: str) -> NoReturn:
    """Raise one ConnectError/InvalidInput line for a redis-py exception (never with a secret in it)."""
    import redis.exceptions as rex

    text = " ".join(str(exc).split())[:300]
    low = text.lower()
    auth = ("noauth", "wrongpass", "invalid password", "invalid username-password", "auth <password>")
    if isinstance(exc, rex.AuthenticationError | rex.AuthorizationError) or any(a in low for a in auth):
        raise ConnectError(
            f"redis at {where} refused the credentials while {doing}", hint="check password (and username)"
        ) from None
    if isinstance(exc, rex.NoPermissionError) or low.startswith("noperm"):
        raise ConnectError(f"redis at {where}: the user may not run what {doing} needs ({text})") from None
    if isinstance(exc, rex.TimeoutError | TimeoutError):
        raise ConnectError(f"cannot reach redis at {where} (timed out while {doing})", hint="raise timeout?") from None
    if isinstance(exc, rex.ConnectionError | OSError):
        why = "connection refused" if "refused" in low else (text or "unreachable")
        raise ConnectError(
            f"cannot reach redis at {where} ({why})", hint="is the server running, and is url right?"
        ) from None
    if "unknown command" in low and ("ft." in low or "json." in low):
        module = "RedisJSON" if "json." in low else "search (RediSearch)"
        raise ConnectError(
            f"redis at {where} has no {module} module, needed for {doing}",
            hint="use Redis Stack, Redis 8 or Redis Cloud",
        ) from None
    if isinstance(exc, rex.OutOfMemoryError) or low.startswith("oom"):
        raise ConnectError(f"redis at {where} is out of memory (maxmemory) while {doing}") from None
    if isinstance(exc, rex.ReadOnlyError | rex.BusyLoadingError):
        raise ConnectError(f"redis at {where} refused {doing}: {text}") from None
    raise InvalidInput(f"redis at {where}: {doing} failed: {text}") from None


def pack(commands: Iterable[tuple[Any, ...]]) -> bytes:
    """Commands as one RESP buffer, as redis-py's ``pack_commands`` writes them (bytes as they are, str as UTF-8,
    numbers as their text) in a third of its time: it packs each argument through its encoder in Python."""
    out: list[bytes] = []
    add = out.append
    for cmd in commands:
        add(b"*%d\r\n" % len(cmd))
        for arg in cmd:
            kind = type(arg)
            if kind is str:
                arg = arg.encode()
            elif kind is not bytes:
                if kind is bool or not isinstance(arg, int | float | bytes | memoryview):
                    raise TypeError(f"a redis command argument cannot be {kind.__name__}")
                arg = bytes(arg) if isinstance(arg, bytes | memoryview) else repr(arg).encode()
            add(b"$%d\r\n%b\r\n" % (len(arg), arg))
    return b"".join(out)


def _is_reply_error(exc: BaseException) -> bool:
    import redis.exceptions as rex

    return isinstance(exc, rex.ResponseError)


def _pairs(value: Any) -> dict[str, Any]:
    """A reply that redis-py gives as a dict or as a flat [key, value, ...] list, with str keys."""
    if isinstance(value, dict):
        return {_text(k): v for k, v in value.items()}
    out: dict[str, Any] = {}
    if isinstance(value, list | tuple):
        for i in range(0, len(value) - 1, 2):
            if isinstance(value[i], bytes | str):
                out[_text(value[i])] = value[i + 1]
    return out


def _attr(attr: Any, name: str) -> Any:
    """One property of an FT.INFO attribute (a dict, or a list of tokens where flags stand alone)."""
    if isinstance(attr, dict):
        return _pairs(attr).get(name)
    tokens = list(attr) if isinstance(attr, list | tuple) else []
    for i, token in enumerate(tokens[:-1]):
        if isinstance(token, bytes | str) and _text(token) == name:
            return tokens[i + 1]
    return None


@dataclass
class IndexInfo:
    """What FT.INFO says about an index, as far as vexrun needs it."""

    storage: str
    prefixes: list[str]
    num_docs: int
    indexing: bool
    dims: int | None = None
    metric: str | None = None
    algorithm: str | None = None
    fields: dict[str, str] = field(default_factory=dict)  # attribute name → type

    @classmethod
    def parse(cls, reply: Any, vector_field: str) -> IndexInfo:
        info = _pairs(reply)
        definition = _pairs(info.get("index_definition"))
        prefixes = [_text(p) for p in definition.get("prefixes") or []]
        storage = "json" if _text(definition.get("key_type", "HASH")).upper() == "JSON" else "hash"
        try:
            percent = float(_text(info.get("percent_indexed", 1)))
        except ValueError:
            percent = 1.0
        indexing = bool(int(_text(info.get("indexing", 0)) or 0)) or percent < 1.0
        out = cls(storage, prefixes, int(_text(info.get("num_docs", 0)) or 0), indexing)
        for attr in info.get("attributes") or []:
            name = _text(_attr(attr, "attribute") or _attr(attr, "identifier") or "")
            kind = _text(_attr(attr, "type") or "").upper()
            out.fields[name] = kind
            if name == vector_field and kind == "VECTOR":
                dim = _attr(attr, "dim")
                out.dims = int(_text(dim)) if dim is not None else None
                metric = _attr(attr, "distance_metric")
                out.metric = _METRICS.get(_text(metric).upper()) if metric is not None else None
                algo = _attr(attr, "algorithm")
                out.algorithm = _text(algo).lower() if algo is not None else None
        return out


class Store:
    """One open client on a database, and the index and key prefix of one collection."""

    def __init__(self, cfg: RedisStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.where = display_location(cfg.url)
        self.index = cfg.collection
        #: what the records are: the config's, or (read-only, where the config leaves them unset) what the index
        #: or vexrun's meta key says, see :meth:`adopt`
        self.storage: str = cfg.storage
        self.key_prefix = cfg.key_prefix
        self.prefix = self.key_prefix.encode("utf-8", "surrogatepass")
        self.client: redis.Redis | None = None

    def adopt(self, info: IndexInfo | None, meta: dict[str, str]) -> None:
        """For reading: take the storage and key prefix the config does not set from the index (one made by
        another tool too) or from vexrun's meta key."""
        given = self.cfg.model_fields_set
        if "storage" not in given:
            found = info.storage if info is not None else meta.get("storage")
            if found in ("hash", "json"):
                self.storage = found
        if "prefix" not in given:
            prefix = info.prefixes[0] if info is not None and len(info.prefixes) == 1 else meta.get("prefix")
            if prefix and not self.cfg.meta_key.startswith(prefix):
                self.key_prefix = prefix
                self.prefix = prefix.encode("utf-8", "surrogatepass")

    # -- connection -------------------------------------------------------------------------------
    def open(self) -> redis.Redis:
        import redis
        from redis.backoff import ExponentialBackoff
        from redis.retry import Retry

        cfg = self.cfg
        try:
            self.client = redis.Redis.from_url(
                cfg.url,
                username=cfg.username,
                password=cfg.password.get_secret_value() if cfg.password is not None else None,
                protocol=2,
                decode_responses=False,
                socket_connect_timeout=min(cfg.timeout, _CONNECT_TIMEOUT),
                socket_timeout=cfg.timeout,
                retry=Retry(ExponentialBackoff(cap=1.0, base=0.05), 2),
                client_name="vexrun",
            )
            self.client.ping()  # fail fast: reachable, and the credentials are accepted
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            self.close()
            if isinstance(exc, ValueError):
                raise InvalidInput(f"redis url {self.where}: {exc}") from None
            _fail(exc, self.where, "connecting")
        return self.client

    @property
    def api(self) -> redis.Redis:
        if self.client is None:
            raise RuntimeError("redis store used before open()")
        return self.client

    def call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK; any failure becomes one clear line."""
        try:
            return fn(*args, **kwargs)
        except (ConnectError, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001
            _fail(exc, self.where, doing)

    def cmd(self, doing: str, *args: Any) -> Any:
        return self.call(doing, self.api.execute_command, *args)

    def execute(self, doing: str, pipe: Any) -> list[Any]:
        """Run a pipeline; the first command that failed fails the whole call (with its own message)."""
        results: list[Any] = self.call(doing, pipe.execute, raise_on_error=False)
        for res in results:
            if isinstance(res, Exception):
                _fail(res, self.where, doing)
        return results

    def stream(self, doing: str, chunks: Iterable[list[tuple[Any, ...]]]) -> int:
        """Send commands chunk by chunk on one connection without waiting for replies, then read every reply:
        Redis runs a chunk while the next one is built and sent (redis-py's pipeline packs everything before it
        sends, and Redis waits meanwhile). Returns how many commands ran; the first error reply fails the call,
        after every reply was read."""
        pool = self.api.connection_pool
        conn: Any = self.call(doing, pool.get_connection)
        sent = 0
        failed: BaseException | None = None
        try:
            for chunk in chunks:
                if chunk:
                    conn.send_packed_command([pack(chunk)], check_health=sent == 0)
                    sent += len(chunk)
            for _ in range(sent):
                try:
                    conn.read_response()
                except Exception as exc:  # noqa: BLE001 - an error reply: keep reading the others
                    if not _is_reply_error(exc):
                        raise
                    failed = failed or exc
        except Exception as exc:  # noqa: BLE001 - the connection is in an unknown state: drop it
            conn.disconnect()
            pool.release(conn)
            _fail(exc, self.where, doing)
        pool.release(conn)
        if failed is not None:
            _fail(failed, self.where, doing)
        return sent

    def replies(self, doing: str, packed: bytes, n: int) -> list[Any]:
        """Send ``n`` commands already packed as RESP in one write on one connection and read their replies as
        the parser gives them (no redis-py callbacks). A connection failure repeats the whole exchange (the
        client's retry policy: these are reads); the first error reply fails the call, after every reply was
        read."""
        pool = self.api.connection_pool
        conn: Any = self.call(doing, pool.get_connection)
        failed: list[BaseException] = []

        def exchange() -> list[Any]:
            failed.clear()
            conn.send_packed_command([packed], check_health=True)
            out: list[Any] = []
            read = conn.read_response
            for _ in range(n):
                try:
                    out.append(read(disable_decoding=True))
                except Exception as exc:  # noqa: BLE001 - an error reply: keep reading the others
                    if not _is_reply_error(exc):
                        raise
                    failed.append(exc)
                    out.append(None)
            return out

        try:
            out: list[Any] = conn.retry.call_with_retry(exchange, lambda _error: conn.disconnect())
        except Exception as exc:  # noqa: BLE001 - the connection is in an unknown state: drop it
            conn.disconnect()
            pool.release(conn)
            _fail(exc, self.where, doing)
        pool.release(conn)
        if failed:
            _fail(failed[0], self.where, doing)
        return out

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.close()

    # -- keys -------------------------------------------------------------------------------------
    def key(self, rid: str) -> bytes:
        return self.prefix + rid.encode("utf-8", "surrogatepass")

    def rid(self, key: bytes) -> str:
        return key[len(self.prefix) :].decode("utf-8", "surrogatepass")

    def scan(self, cursor: int, count: int) -> tuple[int, list[bytes]]:
        """One SCAN step over the records' keys (of the configured storage type)."""
        pattern = _GLOB_SPECIAL.sub(r"\\\1", self.key_prefix) + "*"
        nxt, keys = self.call(
            "scanning keys",
            self.api.scan,
            cursor,
            match=pattern.encode("utf-8", "surrogatepass"),
            count=count,
            _type=_TYPES[self.storage],
        )
        return int(nxt), list(keys)

    def scan_all(self, count: int = 1000) -> Iterator[list[bytes]]:
        cursor = 0
        while True:
            cursor, keys = self.scan(cursor, count)
            if keys:
                yield keys
            if cursor == 0:
                return

    def read(self, keys: list[bytes], layout: Layout) -> list[Item | None]:
        """The records under these keys (None where a key holds none), in one round trip."""
        if not keys:
            return []
        out: list[Item | None] = []
        if self.storage == "json":
            raws = self.cmd("reading documents", "JSON.MGET", *keys, "$")
            for key, raw in zip(keys, raws, strict=True):
                docs = json_loads(raw) if raw is not None else None
                if isinstance(docs, list) and len(docs) == 1:
                    out.append(record_from_json(self.rid(key), docs[0], layout))
                else:
                    out.append(None)
            return out
        # HGETALL packed at once and the replies read raw (flat [field, value, ...] lists): redis-py's pipeline
        # packs each command and turns each reply into a dict in Python, 0.5 of the 1.0 s it took per 100k
        packed = pack([(b"HGETALL", key) for key in keys])
        for key, fields in zip(keys, self.replies("reading records", packed, len(keys)), strict=True):
            out.append(record_from_hash(self.rid(key), fields, layout) if fields else None)
        return out

    def read_namespaces(self, keys: list[bytes]) -> list[str | None]:
        """The namespace of each key (None: no namespace, or no such key)."""
        if not keys:
            return []
        field_name = self.cfg.namespace_field
        if self.storage == "json":
            raws = self.cmd("reading namespaces", "JSON.MGET", *keys, f"$.{field_name}")
            values = [json_loads(raw) if raw is not None else None for raw in raws]
            return [v[0] if isinstance(v, list) and v and isinstance(v[0], str) else None for v in values]
        pipe = self.api.pipeline(transaction=False)
        for key in keys:
            pipe.hget(key, field_name)
        return [None if v is None else _text(v) for v in self.execute("reading namespaces", pipe)]

    # -- the index --------------------------------------------------------------------------------
    def index_info(self) -> IndexInfo | None:
        """The index, or None if it does not exist."""
        try:
            run: Any = self.api.execute_command
            reply = run("FT.INFO", self.index)
        except Exception as exc:  # noqa: BLE001
            if any(s in str(exc).lower() for s in _NO_INDEX):
                return None
            _fail(exc, self.where, "reading the index")
        return IndexInfo.parse(reply, self.cfg.vector_field)

    def create_index(self, cfg: RedisSinkConfig, dims: int, metric: str) -> None:
        """FT.CREATE over the prefix. Redis then scans the whole keyspace in the background for keys to index
        (and reports ``indexing`` until done, slowing writes meanwhile): when no key under the prefix exists yet,
        the scan is skipped (SKIPINITIALSCAN), and every record is indexed as it is written."""
        fields = [cfg.namespace_field, cfg.text_field, cfg.vector_field]
        names = [f"$.{f}" for f in fields] if cfg.storage == "json" else fields

        def named(i: int) -> list[str]:
            return [names[i], "AS", fields[i]] if cfg.storage == "json" else [names[i]]

        params = ["TYPE", "FLOAT32", "DIM", str(dims), "DISTANCE_METRIC", DISTANCES[metric]]
        if cfg.index == "hnsw":
            params += ["M", str(cfg.hnsw_m), "EF_CONSTRUCTION", str(cfg.hnsw_ef_construction)]
        schema = [*named(0), "TAG", "SEPARATOR", TAG_SEPARATOR, "CASESENSITIVE"]
        if cfg.index_text:
            schema += [*named(1), "TEXT"]
        schema += [*named(2), "VECTOR", cfg.index.upper(), str(len(params)), *params]
        on = "JSON" if cfg.storage == "json" else "HASH"
        skip = [] if any(True for _ in self.scan_all()) else ["SKIPINITIALSCAN"]
        self.cmd(
            "creating the index",
            "FT.CREATE",
            self.index,
            "ON",
            on,
            "PREFIX",
            "1",
            self.prefix,
            *skip,
            "SCHEMA",
            *schema,
        )

    def drop(self) -> None:
        """Drop the index with its documents, any other key under the prefix, and the meta hash."""
        if self.index_info() is not None:
            self.cmd("dropping the index", "FT.DROPINDEX", self.index, "DD")
        for keys in self.scan_all():
            self.call("deleting keys", self.api.unlink, *keys)
        self.call("deleting the meta key", self.api.delete, self.cfg.meta_key)

    # -- vexrun's facts about the collection --------------------------------------------------------
    def read_meta(self) -> dict[str, str]:
        raw = self.call("reading vexrun's meta key", self.api.hgetall, self.cfg.meta_key)
        return {_text(k): _text(v) for k, v in (raw or {}).items()}

    def write_meta(self, values: dict[str, str]) -> None:
        if values:
            self.call("writing vexrun's meta key", self.api.hset, self.cfg.meta_key, mapping=values)

    # -- counting and listing ------------------------------------------------------------------------
    def search_total(self, query: str) -> int:
        reply = self.cmd(
            "counting through the index", "FT.SEARCH", self.index, query, "LIMIT", "0", "0", "DIALECT", "2"
        )
        return int(reply[0]) if isinstance(reply, list | tuple) else int(_pairs(reply).get("total_results", 0))

    def namespaces_by_index(self) -> list[str]:
        reply = self.cmd(
            "listing namespaces",
            "FT.AGGREGATE",
            self.index,
            "*",
            "GROUPBY",
            "1",
            f"@{self.cfg.namespace_field}",
            "LIMIT",
            "0",
            "1000000",
            "DIALECT",
            "2",
        )
        found = set()
        for row in list(reply)[1:]:
            value = _pairs(row).get(self.cfg.namespace_field)
            if value is not None:
                found.add(_text(value))
        return sorted(found)
