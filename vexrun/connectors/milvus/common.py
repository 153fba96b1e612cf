"""What the Milvus source and sink share: the store's config fields, connecting (with one-line errors), and
the collection layout vexrun writes.

A collection written by vexrun has these fields (``COLUMNS``)::

    id         VARCHAR(512), primary key     the record id (longer ids arrive as UUIDs from the runner)
    vector     FLOAT_VECTOR(dims)            float32, kept bit-exact
    text       VARCHAR(65535)                "" when the record has none (see "null" below)
    namespace  VARCHAR(65535)                a plain scalar field, filtered with ``namespace == "..."``
    metadata   JSON                          the record's metadata as given (at most 64 KiB)
    _vexrun    JSON                          the other Record fields: model, created_at, source_store,
                                             modality, score, vex_version, extra; "null" lists which of
                                             text / namespace / metadata were None

and collection properties ``vexrun.schema``, ``vexrun.metric``, ``vexrun.model``, ``vexrun.embedder``.

The namespace is not a partition key: Milvus 2.3's upsert routes rows of a partition-key collection to other
partitions than its queries look in (a filtered count finds a fraction of the rows), so a scalar field with a
filter is the layout that reads back what was written on every server version.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import orjson
from pydantic import Field, SecretStr, field_validator

from ...errors import ConnectError, UsageError, VexrunError
from ..base import PluginConfig, RunContext

__all__ = [
    "COLUMNS",
    "MAX_ID_BYTES",
    "MAX_JSON_BYTES",
    "MAX_QUERY_ROWS",
    "MAX_VARCHAR_BYTES",
    "METRICS",
    "MilvusStoreConfig",
    "Store",
    "dumps",
    "literal",
    "milvus_error",
    "open_store",
]

ID, VECTOR, TEXT, NAMESPACE, METADATA, VEXRUN = "id", "vector", "text", "namespace", "metadata", "_vexrun"
COLUMNS = (ID, VECTOR, TEXT, NAMESPACE, METADATA, VEXRUN)
SCHEMA_VERSION = "1"
MAX_ID_BYTES = 512
MAX_VARCHAR_BYTES = 65_535
MAX_JSON_BYTES = 65_536
#: Milvus refuses a query whose limit (plus offset) is over 16384.
MAX_QUERY_ROWS = 16_384
#: vexrun's metric names → Milvus's
METRICS = {"cosine": "COSINE", "l2": "L2", "dot": "IP"}
_LOGGERS = ("pymilvus", "pymilvus.milvus_client", "pymilvus.bulk_writer", "pymilvus.decorators", "milvus_lite")


class MilvusStoreConfig(PluginConfig):
    """The fields that name a Milvus collection (shared by the source and the sink)."""

    type: Literal["milvus", "zilliz"] = "milvus"
    uri: str = Field(
        default="http://127.0.0.1:19530",
        min_length=1,
        description="The server: http(s)://host:port (Milvus, or a Zilliz Cloud endpoint), or a local Milvus "
        "Lite database path ending in .db, relative to the recipe.",
    )
    token: SecretStr | None = Field(
        default=None, description="Credentials: 'user:password', or a Zilliz Cloud API key. None without auth."
    )
    db_name: str | None = Field(default=None, description="The database (Milvus's default database when unset).")
    collection: str = Field(min_length=1, max_length=255, description="The collection.")
    connect_timeout: float = Field(default=10.0, gt=0, le=300, description="Seconds to wait for the server.")

    @field_validator("uri")
    @classmethod
    def _check_uri(cls, value: str) -> str:
        if _is_local(value):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "tcp", "grpc") or not parts.hostname:
            raise ValueError("expected http(s)://host:port, or a Milvus Lite path ending in .db")
        return value


def _is_local(uri: str) -> bool:
    return "://" not in uri and uri.rstrip("/").endswith(".db")


def display_uri(uri: str) -> str:
    """The uri without credentials, query or fragment (safe to print)."""
    if _is_local(uri):
        return uri
    parts = urlsplit(uri)
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    return f"{parts.scheme}://{netloc}{parts.path.rstrip('/')}"


def sdk() -> Any:
    """Import pymilvus quietly: no ``.env`` loading from the working directory, no log lines or tracebacks
    on stderr (every error reaches the user as one line through :func:`milvus_error`)."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    unset = "PYTHON_DOTENV_DISABLED" not in os.environ
    if unset:
        os.environ["PYTHON_DOTENV_DISABLED"] = "1"
    try:
        pymilvus = importlib.import_module("pymilvus")
    finally:
        if unset:
            os.environ.pop("PYTHON_DOTENV_DISABLED", None)
    for name in _LOGGERS:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    return pymilvus


def _grpc_code(exc: BaseException) -> str | None:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        code = getattr(cur, "code", None)
        if callable(code):
            try:
                value = code()
            except Exception:  # noqa: BLE001 - a foreign object with a code attribute
                value = None
            name = getattr(value, "name", None)
            if isinstance(name, str):
                return name
        cur = cur.__cause__ or cur.__context__
    return None


def _message(exc: BaseException) -> str:
    msg = getattr(exc, "message", None)
    text = msg if isinstance(msg, str) and msg else str(exc)
    return " ".join(text.split())[:300]


def milvus_error(exc: BaseException, where: str, doing: str) -> VexrunError:
    """One line for an SDK exception: refused credentials, unreachable server, or what the server said."""
    if isinstance(exc, VexrunError):
        return exc
    code = _grpc_code(exc)
    if code in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
        return ConnectError(
            f"milvus at {where} refused the credentials", hint="check the token ('user:password' or an API key)"
        )
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
        return ConnectError(f"cannot reach milvus at {where} while {doing} ({code.lower()})")
    if code == "RESOURCE_EXHAUSTED":
        return ConnectError(f"milvus at {where}: {doing} failed: a message is over the size limit ({_message(exc)})")
    return ConnectError(f"milvus at {where}: {doing} failed: {_message(exc)}")


def dumps(value: Any) -> str:
    """Compact JSON text (orjson; the stdlib for what orjson refuses, such as integers over 64 bits)."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def literal(value: str | int) -> str:
    """A value as a Milvus expression literal (strings quoted and escaped; JSON escapes are Milvus's)."""
    if isinstance(value, int):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


class Store:
    """An open client plus what the source and sink both need to know about the target."""

    def __init__(self, client: Any, where: str, collection: str, local: Path | None = None) -> None:
        self.client = client
        self.where = where
        self.collection = collection
        #: the Milvus Lite database, served by a gRPC server in this process while it is open
        self.local = local

    def call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call an SDK method; any failure becomes one line."""
        try:
            return fn(*args, **kwargs)
        except VexrunError:
            raise
        except Exception as exc:  # noqa: BLE001 - the SDK raises many types; each becomes one line
            raise milvus_error(exc, self.where, doing) from None

    def exists(self) -> bool:
        return bool(self.call("listing collections", self.client.has_collection, self.collection))

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = self.call("describing the collection", self.client.describe_collection, self.collection)
        return info

    def fields(self) -> dict[str, dict[str, Any]]:
        return {f["name"]: f for f in self.describe()["fields"]}

    def properties(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.describe().get("properties") or {}).items()}

    def index_metric(self) -> str | None:
        """The metric of the vector index, or None when there is none."""
        names = self.call("listing indexes", self.client.list_indexes, self.collection) or []
        for name in names:
            info = self.call("describing an index", self.client.describe_index, self.collection, name)
            if info and info.get("metric_type"):
                return str(info["metric_type"]).upper()
        return None

    def loaded(self) -> bool:
        state = self.call("asking the load state", self.client.get_load_state, self.collection)
        return "Loaded" in str(state.get("state") if isinstance(state, dict) else state)

    def count(self, expr: str = "") -> int:
        rows = self.call(
            "counting records",
            self.client.query,
            self.collection,
            filter=expr,
            output_fields=["count(*)"],
            consistency_level="Strong",
        )
        return int(rows[0]["count(*)"]) if rows else 0

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing a broken client must not hide the real error
            pass
        if self.local is not None:
            release_lite(self.local)


def release_lite(path: Path) -> None:
    """Stop the in-process Milvus Lite server of ``path`` and release its lock on the database."""
    try:
        manager = importlib.import_module("milvus_lite.server_manager").server_manager_instance
        manager.release_server(str(path))
    except Exception:  # noqa: BLE001 - an older milvus-lite without a server manager holds nothing here
        pass


def _check_reachable(uri: str, timeout: float) -> None:
    parts = urlsplit(uri)
    host = parts.hostname or "127.0.0.1"
    port = parts.port or (443 if parts.scheme == "https" else 19530)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if isinstance(exc, TimeoutError | socket.timeout):
            reason = f"no answer in {timeout:g} s"
        raise ConnectError(
            f"cannot reach milvus at {display_uri(uri)} ({reason.lower()})", hint="is the server running? check uri"
        ) from None


def open_store(cfg: MilvusStoreConfig, ctx: RunContext) -> Store:
    """Connect (Milvus Lite for a ``.db`` path). Raises ConnectError / UsageError with one line."""
    pymilvus = sdk()
    token = cfg.token.get_secret_value() if cfg.token is not None else ""
    local: Path | None = None
    if _is_local(cfg.uri):
        local = path = Path(ctx.resolve_path(cfg.uri))
        try:
            importlib.import_module("milvus_lite")
        except ImportError:
            raise UsageError(
                f"{path}: a Milvus Lite database needs the milvus-lite package", hint="pip install milvus-lite"
            ) from None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"{path.parent}: cannot create the directory ({exc.strerror or exc})") from None
        uri, where = str(path), str(path)
    else:
        uri, where = cfg.uri, display_uri(cfg.uri)
        _check_reachable(uri, cfg.connect_timeout)
    try:
        client = pymilvus.MilvusClient(uri=uri, token=token, db_name=cfg.db_name or "", timeout=cfg.connect_timeout)
    except Exception as exc:  # noqa: BLE001 - see milvus_error
        if local is not None:
            raise ConnectError(
                f"{where}: cannot open the Milvus Lite database ({_message(exc)})",
                hint="is another process using it? Milvus Lite lets one process open a database at a time",
            ) from None
        raise milvus_error(exc, where, "connecting") from None
    return Store(client, where, cfg.collection, local)


def chunks(n: int, parts: int) -> Iterator[tuple[int, int]]:
    """``parts`` contiguous (start, end) ranges covering ``range(n)`` as evenly as possible."""
    parts = max(1, min(parts, n))
    step, extra = divmod(n, parts)
    start = 0
    for i in range(parts):
        end = start + step + (1 if i < extra else 0)
        yield start, end
        start = end
