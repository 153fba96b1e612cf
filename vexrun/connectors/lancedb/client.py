"""Opening a LanceDB database (lancedb imported here, lazily), turning its errors into one clear line, and the
small SQL pieces the connector builds (quoted literals, ``id IN (...)`` filters).

LanceDB is embedded: ``path`` is a directory of ``<table>.lance`` datasets, opened in this process; ``uri`` may
also name object storage, with ``storage_options`` (secrets) passed through and never printed.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ...errors import ConnectError, InvalidInput, UsageError
from ...mallocarena import limit_arenas
from ..base import RunContext
from .config import LanceDBStoreConfig

if TYPE_CHECKING:
    from lancedb.db import DBConnection
    from lancedb.table import Table

__all__ = ["IN_CHUNK", "Store", "id_filters", "literal", "namespace_filter", "sdk"]

#: ids per ``id IN (...)`` filter
IN_CHUNK = 1000


#: Lance's read-ahead budget per scan (its default is 2 GiB): a scan (an export, a compaction) reads ahead of a
#: slower consumer until the budget is full, so peak RSS grows with the table up to that size. Measured on a
#: 1M × 384-d table read by a consumer slower than the disk: 583 MB of heap by default, 268 MB with 32 MiB,
#: at the same speed. A user's own LANCE_DEFAULT_IO_BUFFER_SIZE wins.
IO_BUFFER_BYTES = 32 << 20
#: Lance's cache of table metadata (its default is large): it keeps the manifest of every version it saw, and
#: a load commits one version per batch, each listing every fragment so far, so the cache grew with the square
#: of the batches: +73 MB of heap over 500 appends of 2,000 rows by default, +25 MB with 16 MiB. Over a 1M-record load
#: (500 appends) the run's process grew 195 → 222 MB with 16 MiB, 183 → 204 MB with 4 MiB (its id set of 8 MB
#: included), at the same speed: only the latest manifest is needed.
METADATA_CACHE_BYTES = 4 << 20
#: Lance's cache of index pages (BTREE on id, the vector index): enough for one run's fetches and searches.
INDEX_CACHE_BYTES = 128 << 20


def sdk() -> Any:
    """The lancedb module. Its Rust logger prints warnings (``No existing dataset at …, it will be created``)
    into vexrun's output unless told otherwise before the import, its scans get a bounded read-ahead, and the
    process fewer malloc arenas (:mod:`vexrun.mallocarena`: its runtime's threads would each keep one)."""
    limit_arenas()
    os.environ.setdefault("LANCEDB_LOG", "error")
    os.environ.setdefault("LANCE_DEFAULT_IO_BUFFER_SIZE", str(IO_BUFFER_BYTES))
    if "lancedb" not in sys.modules:
        defer_package_init(NAMESPACE_CLIENT)
    import lancedb

    return lancedb


#: the REST client of Lance's namespaces, imported by ``import lancedb`` for its models: its package's own
#: ``__init__`` imports every API module too (0.35-0.4 s of a 0.8-0.95 s ``import lancedb``), which a run on a
#: directory or a cloud URI never calls
NAMESPACE_CLIENT = "lance_namespace_urllib3_client"


def defer_package_init(name: str) -> None:
    """Put package ``name`` in ``sys.modules`` without running its ``__init__``: its submodules import as usual
    (its ``__path__`` is the real one), and the first attribute it does not have yet (``ApiClient``) runs the
    real ``__init__`` into it, so nothing changes for code that uses it. Nothing happens when it is imported
    already, is not installed, or is not a package."""
    if name in sys.modules:
        return
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return
    module = importlib.util.module_from_spec(spec)
    loader = spec.loader

    def __getattr__(attr: str) -> Any:  # noqa: N807 - PEP 562's module attribute hook
        module.__dict__.pop("__getattr__", None)
        loader.exec_module(module)
        return getattr(module, attr)

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    sys.modules[name] = module


def literal(value: str) -> str:
    """A SQL string literal (DataFusion: quotes doubled, backslashes are plain characters)."""
    return "'" + value.replace("'", "''") + "'"


def namespace_filter(namespace: str | None, column: str = "namespace") -> str | None:
    return None if namespace is None else f"{column} = {literal(namespace)}"


def id_filters(ids: Sequence[str], namespace: str | None, column: str = "id") -> Iterator[str]:
    """``id IN (...)`` filters over chunks of ``ids`` (and the namespace, if given)."""
    ns = namespace_filter(namespace)
    for start in range(0, len(ids), IN_CHUNK):
        part = ", ".join(literal(i) for i in ids[start : start + IN_CHUNK])
        yield f"{column} IN ({part})" + (f" AND {ns}" if ns else "")


def _local(cfg: LanceDBStoreConfig) -> bool:
    uri = cfg.uri
    return uri is None or "://" not in uri or uri.startswith("file://")


def _display(cfg: LanceDBStoreConfig, ctx: RunContext) -> str:
    if _local(cfg):
        raw = cfg.path if cfg.path is not None else (cfg.uri or "").removeprefix("file://")
        return str(ctx.resolve_path(raw))
    parts = urlsplit(cfg.uri or "")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path}"


class Store:
    """One database connection and, once opened, one table of it."""

    def __init__(self, cfg: LanceDBStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.local = _local(cfg)
        self.where = _display(cfg, ctx)
        self.db: DBConnection | None = None
        self.tbl: Table | None = None
        self._secrets = [v.get_secret_value() for v in cfg.storage_options.values()]

    @property
    def name(self) -> str:
        return self.cfg.table

    @property
    def label(self) -> str:
        return f"lancedb table '{self.cfg.table}' at {self.where}"

    @property
    def dir(self) -> Path:
        return Path(self.where)

    def open(self, *, create: bool) -> None:
        """Connect to the database; a sink (``create``) makes a missing local directory."""
        lancedb = sdk()
        if self.local:
            path = self.dir
            if path.exists() and not path.is_dir():
                raise UsageError(f"{path}: not a directory (a LanceDB database is a directory)")
            if not path.exists():
                if not create:
                    raise UsageError(f"{path}: no such directory (a LanceDB database)")
                try:
                    path.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise UsageError(f"{path}: cannot create the database directory ({exc.strerror or exc})") from None
            uri: str = str(path)
        else:
            uri = self.cfg.uri or ""
        options = {k: v.get_secret_value() for k, v in self.cfg.storage_options.items()} or None
        session = lancedb.Session(
            index_cache_size_bytes=INDEX_CACHE_BYTES, metadata_cache_size_bytes=METADATA_CACHE_BYTES
        )
        self.db = self.call("connecting", lancedb.connect, uri, storage_options=options, session=session)

    @property
    def api(self) -> DBConnection:
        if self.db is None:
            raise RuntimeError("lancedb store used before open()")
        return self.db

    @property
    def table(self) -> Table:
        if self.tbl is None:
            raise RuntimeError("lancedb table used before it was opened")
        return self.tbl

    def open_table(self, version: int | None = None) -> Table | None:
        """The table (at ``version``, if given), or None if it does not exist."""
        try:
            self.tbl = self.api.open_table(self.name, version=version)
        except ValueError as exc:
            if "not found" in str(exc) or "was not found" in str(exc):
                self.tbl = None
                return None
            self.fail(exc, "opening the table")
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            self.fail(exc, "opening the table" if version is None else f"opening version {version} of the table")
        return self.tbl

    def call(self, doing: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Call the SDK; any failure becomes one clear line."""
        try:
            return fn(*args, **kwargs)
        except (UsageError, ConnectError, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001
            self.fail(exc, doing)

    def fail(self, exc: BaseException, doing: str) -> NoReturn:
        """Raise one ConnectError/InvalidInput line for an SDK exception, with no secret in it."""
        text = " ".join(str(exc).split())
        for secret in self._secrets:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        text = text[:300]
        if isinstance(exc, PermissionError) or "permission denied" in text.lower():
            raise ConnectError(f"{self.label}: {doing} failed: permission denied", hint="check the directory") from None
        if isinstance(exc, ValueError | TypeError):
            raise InvalidInput(f"{self.label}: {doing} failed: {text}") from None
        raise ConnectError(f"{self.label}: {doing} failed: {text}") from None

    def close(self) -> None:
        self.tbl = None
        self.db = None
