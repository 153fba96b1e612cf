"""Opening chromadb (imported here, lazily, with telemetry off), turning its errors into one clear line, and
converting between vexrun records and Chroma's ids / embeddings / documents / metadatas.

A record in Chroma: ``document`` = the text, ``metadata`` = the record's metadata plus two reserved keys::

    {...user metadata..., "namespace": "work", "_vexrun": "{\"model\": ..., \"created_at\": ..., ...}"}

``_vexrun`` is JSON text with the Record fields Chroma has no place for (model, created_at, source_store,
modality, score, vex_version, extra; ``"e": 1`` when the metadata was ``{}`` rather than absent).
Values Chroma refuses although the runner passes them (empty lists, integers beyond 64 bits) are stored as
JSON text and listed in ``_vexrun_json``, the runner's own convention, so they decode on the way back.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import msgspec
import numpy as np
import orjson

from ...errors import ConnectError, InvalidInput, UsageError
from ...floatjson import FloatArrays
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import RunContext
from ..encoding import JSON_KEYS
from .config import ChromaStoreConfig

if TYPE_CHECKING:
    from chromadb.api import ClientAPI
    from chromadb.api.models.Collection import Collection

__all__ = ["RESERVED", "Store", "close_client", "display_location", "record_metadata", "rows_to_batch"]

RESERVED = "_vexrun"
_RECORD_FIELDS = ("model", "created_at", "source_store", "modality", "score", "vex_version", "extra")
_SPACES = {"cosine": "cosine", "l2": "l2", "dot": "ip"}
_METRICS = {v: k for k, v in _SPACES.items()}
_CONNECT_TIMEOUT = 5.0
_INT64 = (-(2**63), 2**63 - 1)


def display_location(cfg: ChromaStoreConfig, ctx: RunContext) -> str:
    if cfg.url is not None:
        parts = urlsplit(cfg.url if "://" in cfg.url else f"http://{cfg.url}")
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/')}"
    return str(ctx.resolve_path(cfg.path or "."))


def _import_chromadb() -> Any:
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")  # before chromadb reads its settings
    import chromadb

    return chromadb


def _fail(exc: BaseException, where: str, doing: str) -> NoReturn:
    name = type(exc).__name__
    text = " ".join(str(exc).split())[:300]
    low = text.lower()
    if name in ("AuthorizationError", "ChromaAuthError") or "401" in text[:40] or "unauthorized" in low:
        raise ConnectError(f"chroma at {where} refused the credentials while {doing}", hint="check api_key") from None
    if name in ("ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "RemoteProtocolError"):
        why = "timed out" if "Timeout" in name else ("connection refused" if "refused" in low else text)
        raise ConnectError(
            f"cannot reach chroma at {where} ({why})", hint="is the server running, and is url right?"
        ) from None
    if "could not connect to a chroma server" in low:
        raise ConnectError(f"cannot reach chroma at {where}", hint="is the server running, and is url right?") from None
    if name in ("RateLimitError", "QuotaError"):
        raise ConnectError(f"chroma at {where} refused {doing}: {text}") from None
    if name in ("InvalidArgumentError", "InvalidDimensionException", "NotFoundError", "ValueError"):
        raise InvalidInput(f"chroma at {where}: {doing} failed: {text}") from None
    raise ConnectError(f"chroma at {where}: {doing} failed: {text}") from None


class Store:
    """One open client on a collection, local or server."""

    def __init__(self, cfg: ChromaStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.where = display_location(cfg, ctx)
        self.local = cfg.path is not None
        self.client: ClientAPI | None = None
        self.collection: Collection | None = None

    @property
    def name(self) -> str:
        return self.cfg.collection

    def open(self, *, create_dir: bool) -> None:
        chromadb = _import_chromadb()
        from chromadb.config import DEFAULT_DATABASE, DEFAULT_TENANT, Settings

        cfg = self.cfg
        settings = Settings(anonymized_telemetry=False)
        tenant, database = cfg.tenant or DEFAULT_TENANT, cfg.database or DEFAULT_DATABASE
        try:
            if cfg.path is not None:
                path = Path(self.ctx.resolve_path(cfg.path))
                if path.exists() and not path.is_dir():
                    raise UsageError(f"{path}: not a directory (a Chroma store is a directory)")
                if not path.exists() and not create_dir:
                    raise UsageError(f"{path}: no such directory (a Chroma store)")
                self.client = chromadb.PersistentClient(
                    path=str(path), settings=settings, tenant=tenant, database=database
                )
            else:
                parts = urlsplit(cfg.url if cfg.url and "://" in cfg.url else f"http://{cfg.url}")
                ssl = parts.scheme == "https"
                headers = {k: v.get_secret_value() for k, v in cfg.headers.items()}
                if cfg.api_key is not None:
                    headers["x-chroma-token"] = cfg.api_key.get_secret_value()
                self._check_reachable(parts.hostname or "127.0.0.1", parts.port or (443 if ssl else 8000))
                self.client = chromadb.HttpClient(
                    host=parts.hostname or "127.0.0.1",
                    port=parts.port or (443 if ssl else 8000),
                    ssl=ssl,
                    headers=headers or None,
                    settings=settings,
                    tenant=tenant,
                    database=database,
                )
                self._set_timeout(cfg.timeout)
        except (UsageError, ConnectError):
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            self.close()
            _fail(exc, self.where, "connecting")

    def _check_reachable(self, host: str, port: int) -> None:
        """Fail within a few seconds when nothing answers (the SDK's own requests have no timeout)."""
        import socket

        try:
            with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT):
                pass
        except TimeoutError:
            raise ConnectError(f"cannot reach chroma at {self.where} (timed out)") from None
        except OSError as exc:
            why = "connection refused" if isinstance(exc, ConnectionRefusedError) else (exc.strerror or str(exc))
            raise ConnectError(
                f"cannot reach chroma at {self.where} ({why})", hint="is the server running, and is url right?"
            ) from None

    def _set_timeout(self, seconds: float) -> None:
        """chromadb's HTTP session waits forever by default; give every request a deadline."""
        import httpx

        for owner in (self.client, getattr(self.client, "_admin_client", None)):
            session = getattr(getattr(owner, "_server", None), "_session", None)
            if isinstance(session, httpx.Client):
                session.timeout = httpx.Timeout(seconds, connect=_CONNECT_TIMEOUT)

    @property
    def api(self) -> ClientAPI:
        if self.client is None:
            raise RuntimeError("chroma store used before open()")
        return self.client

    @property
    def coll(self) -> Collection:
        if self.collection is None:
            raise RuntimeError("chroma collection used before it was opened")
        return self.collection

    def call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (UsageError, ConnectError, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001
            _fail(exc, self.where, doing)

    def get_collection(self) -> Collection | None:
        """The collection, or None if it does not exist."""
        names = self.call("listing collections", self.api.list_collections)
        if self.name not in {getattr(c, "name", c) for c in names}:
            return None
        self.collection = self.call(
            "opening the collection", self.api.get_collection, self.name, embedding_function=None
        )
        return self.collection

    def create_collection(self, metric: str) -> Collection:
        self.collection = self.call(
            "creating the collection",
            self.api.create_collection,
            self.name,
            embedding_function=None,
            configuration={"hnsw": {"space": _SPACES[metric]}},
        )
        return self.collection

    def metric(self) -> str | None:
        """The collection's distance as vexrun names it (cosine, l2, dot)."""
        coll = self.coll
        # the raw JSON: the parsed ``configuration`` warns about the "legacy" (absent) embedding function
        config = getattr(coll, "configuration_json", None) or {}
        for index in ("hnsw", "spann"):
            part = config.get(index) if isinstance(config, dict) else None
            if isinstance(part, dict) and part.get("space"):
                return _METRICS.get(str(part["space"]), str(part["space"]))
        legacy = (coll.metadata or {}).get("hnsw:space")
        return _METRICS.get(str(legacy), str(legacy)) if legacy else None

    def dims(self) -> int | None:
        model = getattr(self.coll, "_model", None)
        dim = getattr(model, "dimension", None)
        return int(dim) if isinstance(dim, int) else None

    def raw_getter(self) -> Callable[..., dict[str, Any]] | None:
        """``get`` by offset as the HTTP client sends it (its session, headers, timeout and errors), the reply read
        by vexrun (:func:`decode_get`): the embeddings by simdjson into one float32 matrix, without the client's
        Python float per value and its float64 copy. None for an embedded store, or a client whose internals
        are not what this expects (the source then calls ``Collection.get``). Safe to call from several
        threads (httpx's client is)."""
        coll = self.coll
        api = getattr(coll, "_client", None)
        session, base = getattr(api, "_session", None), getattr(api, "_api_url", None)
        raise_error = getattr(api, "_raise_chroma_error", None)
        if self.local or session is None or not isinstance(base, str) or raise_error is None:
            return None
        from urllib.parse import quote

        path = f"/tenants/{coll.tenant}/databases/{coll.database}/collections/{coll.id}/get"
        url = base + quote(path, safe="/")

        def get(*, limit: int, offset: int, where: dict[str, Any] | None, include: list[str]) -> dict[str, Any]:
            body = {"ids": None, "where": where, "limit": limit, "offset": offset, "where_document": None}
            response = session.request("post", url, content=orjson.dumps({**body, "include": include}))
            raise_error(response)
            return decode_get(response.content)

        return get

    def where_namespace(self, namespace: str | None) -> dict[str, Any] | None:
        return None if namespace is None else {self.cfg.namespace_key: namespace}

    def max_batch(self) -> int:
        limit = self.call("reading the batch limit", self.api.get_max_batch_size)
        return max(1, int(limit))

    def close(self) -> None:
        self.collection = None
        if self.client is not None:
            client, self.client = self.client, None
            close_client(client)


def close_client(client: Any) -> None:
    """Release a chromadb client, including the HTTP sessions (its own and its admin client's) that its
    ``close()`` leaves open."""
    owners = (client, getattr(client, "_admin_client", None))
    sessions = [getattr(getattr(owner, "_server", None), "_session", None) for owner in owners]
    with contextlib.suppress(Exception):
        client.close()
    for session in sessions:
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()


# -- conversion ---------------------------------------------------------------------------------------------
def _needs_json(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return not _INT64[0] <= value <= _INT64[1]
    if isinstance(value, list):
        return not value or any(_needs_json(v) for v in value)
    return False


def _json(value: Any) -> str:
    """JSON text of a value (the stdlib for integers beyond 64 bits, which orjson refuses)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _has_float(value: Any) -> bool:
    return isinstance(value, float) or (isinstance(value, list) and any(isinstance(v, float) for v in value))


def _near(stored: Any, exact: Any) -> bool:
    """Chroma's value is the exact one give or take its rounding (not a value changed since in Chroma)."""
    if isinstance(stored, list) and isinstance(exact, list):
        return len(stored) == len(exact) and all(_near(a, b) for a, b in zip(stored, exact, strict=True))
    if isinstance(stored, int | float) and isinstance(exact, int | float):
        return stored == exact or abs(stored - exact) <= 1e-12 * max(1.0, abs(exact))
    return bool(stored == exact)


def _bad_key(key: str) -> bool:
    return not key or key[0] in "#$"


def record_metadata(rec: Record, cfg: ChromaStoreConfig, default_ns: str | None) -> dict[str, Any] | str:
    """The Chroma metadata of a record (None when it has nothing), or the reason it cannot be stored."""
    meta: dict[str, Any] = {}
    user = rec.metadata
    if user:
        encoded = [k for k, v in user.items() if _needs_json(v)]
        for key, value in user.items():
            if key in (cfg.namespace_key, RESERVED):
                return f"metadata key '{key}' is reserved in this collection (set namespace_key to another name)"
            if _bad_key(key):
                return f"metadata key '{key}' is not allowed in Chroma (keys may not be empty or start with # or $)"
            meta[key] = _json(value) if key in encoded else value
        if encoded:
            before = meta.get(JSON_KEYS)
            keys = orjson.loads(before) if isinstance(before, str) else []
            meta[JSON_KEYS] = orjson.dumps([*keys, *[k for k in encoded if k not in keys]]).decode()
    ns = rec.namespace if rec.namespace is not None else default_ns
    if ns is not None:
        meta[cfg.namespace_key] = ns
    own = {name: getattr(rec, name) for name in _RECORD_FIELDS if getattr(rec, name) is not None}
    if user is not None and not user:
        own["e"] = 1
    floats = {k: v for k, v in (user or {}).items() if _has_float(v) and meta.get(k) is v}
    if floats:  # Chroma returns float metadata up to 1 ulp off: keep the exact values beside them
        own["f"] = floats
    if own:
        try:
            meta[RESERVED] = orjson.dumps(own).decode()
        except TypeError as exc:
            return f"extra fields are not JSON ({exc})"
    return meta


class _GetReply(msgspec.Struct):
    ids: list[str]
    embeddings: list[msgspec.Raw] | None = None
    documents: list[str | None] | None = None
    metadatas: list[dict[str, Any] | None] | None = None


_decode_get_reply = msgspec.json.Decoder(_GetReply).decode


def decode_get(content: bytes) -> dict[str, Any]:
    """A ``get`` reply's JSON as ``Collection.get`` returns it (ids, documents, metadatas deserialized as the client
    does), the embeddings as one float32 matrix read by simdjson (:mod:`vexrun.floatjson`): the same float32 bits
    as the client's doubles cast to float32. An embedding simdjson does not vouch for is read as the client reads
    it."""
    from chromadb.api.types import deserialize_metadata

    reply = _decode_get_reply(content)
    n = len(reply.ids)
    embeddings: Any = None
    if reply.embeddings is not None:
        floats = FloatArrays()
        rows: list[Any] = []
        for raw in reply.embeddings:
            text = bytes(raw)
            got = floats.read(text)
            if got is not None and got[0] is not None:
                rows.append(np.frombuffer(got[0], dtype=np.float64))
            else:  # as the client reads it: orjson's values through numpy (a null becomes NaN)
                rows.append(np.asarray(orjson.loads(text), dtype=np.float64))
        embeddings = np.asarray(rows, dtype=np.float32) if rows else np.zeros((0, 0), np.float32)
    metadatas = reply.metadatas
    if metadatas is not None:
        metadatas = [deserialize_metadata(m) if m is not None else None for m in metadatas]
    if embeddings is not None and len(embeddings) != n:
        raise ValueError(f"the reply holds {len(embeddings)} embeddings for {n} ids")
    return {"ids": reply.ids, "embeddings": embeddings, "documents": reply.documents, "metadatas": metadatas}


def rows_to_batch(got: dict[str, Any], cfg: ChromaStoreConfig) -> Batch:
    """Turn a ``get`` result (ids, embeddings, documents, metadatas) into a batch."""
    ids: list[str] = list(got.get("ids") or [])
    docs = got.get("documents") or [None] * len(ids)
    metas = got.get("metadatas") or [None] * len(ids)
    embeddings = got.get("embeddings")
    records = []
    for rid, doc, meta in zip(ids, docs, metas, strict=True):
        user = dict(meta) if meta else {}
        ns = user.pop(cfg.namespace_key, None)
        if ns is not None and not isinstance(ns, str):
            user[cfg.namespace_key], ns = ns, None
        own: dict[str, Any] = {}
        raw = user.pop(RESERVED, None)
        if isinstance(raw, str):
            try:
                parsed = orjson.loads(raw)
            except orjson.JSONDecodeError:
                parsed = None
            if isinstance(parsed, dict):
                own = parsed
            else:
                user[RESERVED] = raw
        elif raw is not None:
            user[RESERVED] = raw
        exact = own.get("f")
        if isinstance(exact, dict):
            for key, value in exact.items():
                if key in user and _near(user[key], value):
                    user[key] = value
        metadata: dict[str, Any] | None = user or ({} if own.get("e") else None)
        score = own.get("score")
        records.append(
            Record(
                id=str(rid),
                text=doc,
                model=own.get("model"),
                namespace=ns,
                metadata=metadata,
                created_at=own.get("created_at"),
                source_store=own.get("source_store"),
                modality=own.get("modality"),
                score=float(score) if isinstance(score, int | float) and not isinstance(score, bool) else None,
                vex_version=own.get("vex_version"),
                extra=own.get("extra") if isinstance(own.get("extra"), dict) else None,
            )
        )
    if embeddings is None or not len(ids):
        return Batch(records=records)
    mat = np.asarray(embeddings, dtype=np.float32)
    if mat.ndim != 2 or mat.shape[0] != len(records):
        raise InvalidInput(f"chroma returned {mat.shape} embeddings for {len(records)} records")
    for rec in records:
        rec.dims = int(mat.shape[1])
    return Batch(records=records, vectors=np.ascontiguousarray(mat), has_vector=np.ones(len(records), dtype=bool))
