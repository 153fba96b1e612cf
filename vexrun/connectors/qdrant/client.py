"""Opening qdrant-client (imported here, lazily), turning its errors into one clear line, and converting
between vexrun records and Qdrant points.

A point's payload, as vexrun writes it::

    {"text": "...", "namespace": "...", "metadata": {...},
     "_vexrun": {"model": ..., "created_at": ..., "source_store": ..., "modality": ..., "score": ...,
                 "vex_version": ..., "extra": {...}}}

Absent fields are left out (a missing ``metadata`` reads back as None, ``{}`` as ``{}``). The key names of
text, metadata and namespace are configurable so collections written by other tools (LangChain's
``page_content``) can be read.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

import numpy as np

from ...errors import ConnectError, InvalidInput, UsageError
from ...vmig.batch import Batch
from ...vmig.model import Record
from ..base import RunContext
from .config import QdrantStoreConfig

if TYPE_CHECKING:
    from qdrant_client import QdrantClient

__all__ = [
    "RESERVED",
    "Store",
    "display_location",
    "point_id",
    "points_to_batch",
    "quiet",
]

#: The payload field that holds the Record fields Qdrant has no place for.
RESERVED = "_vexrun"
_RECORD_FIELDS = ("model", "created_at", "source_store", "modality", "score", "vex_version", "extra")
#: Local-mode warnings that are about the engine, not about anything the user can fix in a recipe; vexrun
#: says the same once in its own words (see :meth:`Store.open`).
_QUIET = (
    "Local mode is not recommended",
    "Api key is used with an insecure connection",
)
_CONNECT_TIMEOUT = 5.0


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence qdrant-client's advisory warnings (they would print into vexrun's output)."""
    with warnings.catch_warnings():
        for text in _QUIET:
            warnings.filterwarnings("ignore", message=text, category=UserWarning)
        yield


def display_location(cfg: QdrantStoreConfig, ctx: RunContext) -> str:
    """Where the collection is, for messages: a URL without credentials or query, or the local path."""
    if cfg.url is not None:
        parts = urlsplit(cfg.url if "://" in cfg.url else f"http://{cfg.url}")
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        grpc = f" (gRPC port {cfg.grpc_port})" if cfg.prefer_grpc else ""
        return f"{parts.scheme}://{host}{port}{parts.path.rstrip('/')}{grpc}"
    return str(ctx.resolve_path(cfg.path or "."))


def point_id(rid: str) -> int | str:
    """The Qdrant id of a record id (the runner already turned every other id into a UUID)."""
    return int(rid) if rid.isdigit() else rid


def _fail(exc: BaseException, where: str, doing: str) -> NoReturn:
    """Raise one ConnectError/InvalidInput line for an SDK exception (never with a secret in it)."""
    status: int | None = getattr(exc, "status_code", None)
    code = getattr(exc, "code", None)
    grpc_code = str(code() if callable(code) else "")
    text = str(getattr(exc, "details", lambda: None)() or exc) if grpc_code else str(exc)
    text = " ".join(text.split())[:300]
    if status in (401, 403) or "UNAUTHENTICATED" in grpc_code or "PERMISSION_DENIED" in grpc_code:
        raise ConnectError(f"qdrant at {where} refused the credentials while {doing}", hint="check api_key") from None
    if (
        "UNAVAILABLE" in grpc_code
        or "DEADLINE_EXCEEDED" in grpc_code
        or type(exc).__name__
        in (
            "ResponseHandlingException",
            "ConnectError",
            "ConnectTimeout",
            "ReadTimeout",
            "TimeoutException",
        )
    ):
        if "DEADLINE" in grpc_code or "Timeout" in type(exc).__name__:
            why = "timed out"
        elif "refused" in text.lower():
            why = "connection refused"
        else:
            why = text or "unreachable"
        raise ConnectError(
            f"cannot reach qdrant at {where} ({why})", hint="is the server running, and are url/grpc_port right?"
        ) from None
    if "already accessed by another instance" in text:
        raise ConnectError(
            f"qdrant local store {where} is open in another process",
            hint="local mode allows one process at a time; stop the other one or use a Qdrant server",
        ) from None
    if status is not None or grpc_code:
        raise ConnectError(f"qdrant at {where} answered an error while {doing}: {text}") from None
    raise InvalidInput(f"qdrant at {where}: {doing} failed: {text}") from None


def _close_lock_file(exc: BaseException) -> None:
    """qdrant-client's local mode opens its ``.lock`` file before locking it and leaves it open when the lock
    is held by another process; close it (found on the failed constructor's frame)."""
    tb = exc.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        lock = getattr(owner, "_flock_file", None)
        if lock is not None and hasattr(lock, "close"):
            with contextlib.suppress(Exception):
                lock.close()
        tb = tb.tb_next


class Store:
    """One open client on a collection, local or server."""

    def __init__(self, cfg: QdrantStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.where = display_location(cfg, ctx)
        self.local = cfg.path is not None
        self.client: QdrantClient | None = None

    @property
    def name(self) -> str:
        return self.cfg.collection

    def open(self, *, create_dir: bool) -> QdrantClient:
        from qdrant_client import QdrantClient

        cfg = self.cfg
        try:
            with quiet():
                if cfg.path is not None:
                    path = Path(self.ctx.resolve_path(cfg.path))
                    if path.exists() and not path.is_dir():
                        raise UsageError(f"{path}: not a directory (qdrant local mode needs a directory)")
                    if not path.exists() and not create_dir:
                        raise UsageError(f"{path}: no such directory (a qdrant local store)")
                    self.client = QdrantClient(path=str(path))
                else:
                    self.client = QdrantClient(
                        url=cfg.url,
                        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                        prefer_grpc=cfg.prefer_grpc,
                        grpc_port=cfg.grpc_port,
                        timeout=int(min(cfg.timeout, _CONNECT_TIMEOUT)) or 1,
                        check_compatibility=False,
                    )
                    self.client.get_collections()  # fail fast: reachable, and the key is accepted
                    self.client.close()
                    self.client = QdrantClient(
                        url=cfg.url,
                        api_key=cfg.api_key.get_secret_value() if cfg.api_key else None,
                        prefer_grpc=cfg.prefer_grpc,
                        grpc_port=cfg.grpc_port,
                        timeout=int(cfg.timeout) or 1,
                        check_compatibility=False,
                    )
        except UsageError:
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            self.close()
            _close_lock_file(exc)
            _fail(exc, self.where, "connecting")
        return self.client

    @property
    def api(self) -> QdrantClient:
        if self.client is None:
            raise RuntimeError("qdrant store used before open()")
        return self.client

    def call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK; any failure becomes one clear line."""
        try:
            with quiet():
                return fn(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001
            _fail(exc, self.where, doing)

    def exists(self) -> bool:
        return bool(self.call("looking up the collection", self.api.collection_exists, self.name))

    def count(self, namespace: str | None = None) -> int:
        flt = self.namespace_filter(namespace)
        res = self.call("counting points", self.api.count, self.name, count_filter=flt, exact=True)
        return int(res.count)

    def vector_params(self) -> tuple[int, str] | None:
        """(size, distance) of the collection's vector (the configured named one), None if it has none."""
        info = self.call("reading the collection", self.api.get_collection, self.name)
        vectors = info.config.params.vectors
        if vectors is None:
            return None
        if isinstance(vectors, dict):
            if self.cfg.vector_name is not None:
                params = vectors.get(self.cfg.vector_name)
            elif len(vectors) == 1:
                params = next(iter(vectors.values()))
            else:
                raise InvalidInput(
                    f"qdrant collection '{self.name}' at {self.where} has named vectors {sorted(vectors)}",
                    hint="set vector_name",
                )
            if params is None:
                raise InvalidInput(
                    f"qdrant collection '{self.name}' at {self.where} has no vector named '{self.cfg.vector_name}' "
                    f"(it has {', '.join(sorted(vectors)) or 'none'})"
                )
        else:
            params = vectors
        distance = getattr(params.distance, "value", params.distance)
        return int(params.size), str(distance)

    def namespace_filter(self, namespace: str | None) -> Any:
        if namespace is None:
            return None
        from qdrant_client import models

        return models.Filter(
            must=[models.FieldCondition(key=self.cfg.namespace_key, match=models.MatchValue(value=namespace))]
        )

    def close(self) -> None:
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception), quiet():
                client.close()


def record_payload(rec: Record, cfg: QdrantStoreConfig, default_ns: str | None) -> dict[str, Any]:
    """The payload vexrun writes for a record."""
    payload: dict[str, Any] = {}
    if rec.text is not None:
        payload[cfg.text_key] = rec.text
    ns = rec.namespace if rec.namespace is not None else default_ns
    if ns is not None:
        payload[cfg.namespace_key] = ns
    if rec.metadata is not None:
        payload[cfg.metadata_key] = rec.metadata
    own = {name: getattr(rec, name) for name in _RECORD_FIELDS if getattr(rec, name) is not None}
    if own:
        payload[RESERVED] = own
    return payload


def _vector_of(vector: Any, name: str | None) -> list[float] | None:
    if vector is None:
        return None
    if isinstance(vector, dict):
        if name is not None:
            found = vector.get(name)
        elif len(vector) == 1:
            found = next(iter(vector.values()))
        else:
            found = vector.get("")
        return found if isinstance(found, list) and (not found or not isinstance(found[0], list)) else None
    if isinstance(vector, list):
        return vector
    return None


def points_to_batch(points: Sequence[Any], cfg: QdrantStoreConfig) -> Batch:
    """Turn scrolled points (``Record`` objects with payload and vector) into a batch."""
    records: list[Record] = []
    vectors: list[list[float] | None] = []
    owned = {cfg.text_key, cfg.namespace_key, cfg.metadata_key, RESERVED}
    for point in points:
        payload: dict[str, Any] = point.payload or {}
        text = payload.get(cfg.text_key)
        ns = payload.get(cfg.namespace_key)
        meta = payload.get(cfg.metadata_key)
        own = payload.get(RESERVED)
        own = own if isinstance(own, dict) else {}
        metadata: dict[str, Any] | None = dict(meta) if isinstance(meta, dict) else None
        foreign = {k: v for k, v in payload.items() if k not in owned}
        if meta is not None and not isinstance(meta, dict):
            foreign[cfg.metadata_key] = meta
        if text is not None and not isinstance(text, str):
            foreign[cfg.text_key] = text
            text = None
        if ns is not None and not isinstance(ns, str):
            foreign[cfg.namespace_key] = ns
            ns = None
        if foreign:
            metadata = {**foreign, **(metadata or {})}
        vec = _vector_of(point.vector, cfg.vector_name)
        score = own.get("score")
        records.append(
            Record(
                id=str(point.id),
                text=text,
                model=own.get("model"),
                dims=len(vec) if vec else None,
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
        vectors.append(vec or None)
    if not any(v is not None for v in vectors):
        return Batch(records=records)
    dims = {len(v) for v in vectors if v is not None}
    if len(dims) != 1:
        raise InvalidInput(f"qdrant points of one collection have vectors of several sizes: {sorted(dims)}")
    (d,) = dims
    mat = np.zeros((len(records), d), dtype=np.float32)
    mask = np.zeros(len(records), dtype=bool)
    for i, v in enumerate(vectors):
        if v is not None:
            mat[i] = v
            mask[i] = True
    return Batch(records=records, vectors=mat, has_vector=mask)
