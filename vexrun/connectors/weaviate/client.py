"""Opening weaviate-client v4 (imported here, lazily), turning its errors into one clear line, and what the
source, the sink and the read-back share: the collection's shape (tenants or not, its vectors and distance, its
properties) and its tenants.

The client is connected with ``skip_init_checks`` (it would otherwise ask pypi.org for its latest version on
every connect); what those checks prove is checked here instead: REST answers ``/v1/meta`` with the key, and
the gRPC port answers Weaviate's health check (within 10 s, not the client's minute of retries).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn
from urllib.parse import urlsplit

from ...errors import ConnectError, InvalidInput
from ..base import RunContext
from .config import WeaviateStoreConfig

if TYPE_CHECKING:
    from weaviate import WeaviateClient
    from weaviate.collections import Collection

__all__ = ["DISTANCES", "Shape", "Store", "display_location"]

#: vexrun's metric -> Weaviate's distance
DISTANCES = {"cosine": "cosine", "dot": "dot", "l2": "l2-squared"}
METRICS = {v: k for k, v in DISTANCES.items()}
_CONNECT_TIMEOUT = 10.0


def display_location(cfg: WeaviateStoreConfig) -> str:
    """The REST URL without credentials or query (and the gRPC address when it differs in host)."""
    parts = urlsplit(cfg.url)
    port = f":{parts.port}" if parts.port else ""
    where = f"{parts.scheme}://{parts.hostname or ''}{port}{parts.path.rstrip('/')}"
    grpc_host = cfg.grpc_host or parts.hostname or ""
    return where + (f" (gRPC {grpc_host}:{_grpc_port(cfg)})" if grpc_host != parts.hostname else "")


def _grpc_port(cfg: WeaviateStoreConfig) -> int:
    return cfg.grpc_port or (443 if cfg.url.startswith("https://") else 50051)


@dataclass
class Shape:
    """What the sink and the source need to know of an existing collection."""

    name: str
    multi_tenant: bool
    #: the vector written and read: a named vector, or ``""`` for the class-level (legacy) one; None: none
    vector: str | None
    distance: str | None
    #: property name -> data type (``text``, ``int[]``, ...)
    props: dict[str, str]
    #: whether that vector is the collection's only one (then a write sends it unnamed: cheaper for the client,
    #: and Weaviate gives an unnamed vector to the only named one)
    only_vector: bool = True


def _fail(exc: BaseException, where: str, doing: str, secret: str | None = None) -> NoReturn:
    """Raise one ConnectError/InvalidInput line for an SDK exception (never with a secret in it)."""
    name = type(exc).__name__
    text = str(getattr(exc, "message", "") or exc)
    causes = " ".join(f"{type(c).__name__} {c}" for c in _chain(exc)).lower()
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(text.split())[:400]
    low = text.lower()
    status = getattr(exc, "status_code", None)
    if (
        status in (401, 403)
        or name in ("AuthenticationFailedError", "InsufficientPermissionsError")
        or ("unauthorized" in low or "unauthenticated" in low or "permission_denied" in low)
    ):
        raise ConnectError(f"weaviate at {where} refused the credentials while {doing}", hint="check api_key") from None
    if name in (
        "WeaviateStartUpError",
        "WeaviateConnectionError",
        "WeaviateGRPCUnavailableError",
        "WeaviateTimeoutError",
        "WeaviateRetryError",
        "ConnectError",
        "ConnectTimeout",
    ):
        if "timed out" in causes or "timeout" in causes or "deadline" in causes:
            why = "timed out"
        elif "refused" in causes or "unavailable" in causes:
            why = "connection refused"
        elif "name or service not known" in causes or "nodename nor servname" in causes:
            why = "unknown host"
        else:
            why = "no answer"
        part = "its gRPC port" if name == "WeaviateGRPCUnavailableError" else "it"
        raise ConnectError(
            f"cannot reach weaviate at {where} ({why}{'' if part == 'it' else ', ' + part})",
            hint="is the server running, and are url and grpc_port right?",
        ) from None
    if status is not None and 400 <= int(status) < 500:
        raise InvalidInput(f"weaviate at {where}: {doing} failed: {text}") from None
    raise ConnectError(f"weaviate at {where} answered an error while {doing}: {text}") from None


def _chain(exc: BaseException) -> list[BaseException]:
    """The exception and its causes (the client wraps httpx's and grpc's errors in its own)."""
    found: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and len(found) < 10:
        found.append(cur)
        cur = cur.__cause__ or cur.__context__
    return found


class Store:
    """One open client on one collection."""

    def __init__(self, cfg: WeaviateStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.where = display_location(cfg)
        self.client: WeaviateClient | None = None
        self.shape: Shape | None = None
        self._secret = cfg.api_key.get_secret_value() if cfg.api_key is not None else None

    @property
    def name(self) -> str:
        return self.cfg.collection[:1].upper() + self.cfg.collection[1:]

    def open(self) -> WeaviateClient:
        if self.client is not None:
            return self.client
        import weaviate
        from weaviate.classes.init import AdditionalConfig, Timeout

        cfg = self.cfg
        parts = urlsplit(cfg.url)
        secure = parts.scheme == "https"
        try:
            client = weaviate.connect_to_custom(
                http_host=parts.hostname or "127.0.0.1",
                http_port=parts.port or (443 if secure else 80),
                http_secure=secure,
                grpc_host=cfg.grpc_host or parts.hostname or "127.0.0.1",
                grpc_port=_grpc_port(cfg),
                grpc_secure=secure,
                auth_credentials=weaviate.auth.AuthApiKey(self._secret) if self._secret else None,
                additional_config=AdditionalConfig(
                    timeout=Timeout(init=_CONNECT_TIMEOUT, query=cfg.timeout, insert=cfg.timeout)
                ),
                skip_init_checks=True,
            )
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            _fail(exc, self.where, "connecting", self._secret)
        self.client = client
        try:
            ping = getattr(client._connection, "_ping_grpc", None)  # the check skip_init_checks skipped
            if callable(ping):
                ping("sync")
        except Exception as exc:  # noqa: BLE001
            self.close()
            _fail(exc, self.where, "connecting", self._secret)
        return client

    @property
    def api(self) -> WeaviateClient:
        if self.client is None:
            raise RuntimeError("weaviate store used before open()")
        return self.client

    def call(self, doing: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the SDK; any failure becomes one clear line."""
        try:
            return fn(*args, **kwargs)
        except (ConnectError, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001
            _fail(exc, self.where, doing, self._secret)

    def fail(self, exc: BaseException, doing: str) -> NoReturn:
        """Raise the one-line error for an SDK exception."""
        if isinstance(exc, ConnectError | InvalidInput):
            raise exc
        _fail(exc, self.where, doing, self._secret)

    def collection(self, tenant: str | None = None) -> Collection[Any, Any]:
        colls = self.api.collections
        use = getattr(colls, "use", None) or colls.get
        coll: Collection[Any, Any] = use(self.name)
        return coll.with_tenant(tenant) if tenant else coll

    def exists(self) -> bool:
        return bool(self.call("looking up the collection", self.api.collections.exists, self.name))

    def read_shape(self) -> Shape:
        """The collection's shape, read from the schema (kept until :meth:`forget`)."""
        if self.shape is not None:
            return self.shape
        cfg = self.call("reading the collection", self.collection().config.get)
        want = self.cfg.vector_name
        vector: str | None = None
        distance: str | None = None
        named = cfg.vector_config or {}
        if named:
            if want not in named:
                raise InvalidInput(
                    f"weaviate collection '{self.name}' at {self.where} has no vector named '{want}' "
                    f"(it has {', '.join(sorted(named))})",
                    hint="set vector_name",
                )
            vector = want
            distance = _distance(named[want].vector_index_config)
        elif cfg.vector_index_config is not None:
            if want != "default":
                raise InvalidInput(
                    f"weaviate collection '{self.name}' at {self.where} has one unnamed vector, not '{want}'",
                    hint="leave vector_name unset",
                )
            vector, distance = "", _distance(cfg.vector_index_config)
        props = {p.name: str(getattr(p.data_type, "value", p.data_type)) for p in cfg.properties}
        only = len(named) <= 1
        self.shape = Shape(self.name, bool(cfg.multi_tenancy_config.enabled), vector, distance, props, only)
        return self.shape

    def forget(self) -> None:
        self.shape = None

    def tenants(self) -> list[str]:
        """The collection's tenants, sorted (a collection without multi-tenancy has none)."""
        if not self.read_shape().multi_tenant:
            return []
        got = self.call("listing tenants", self.collection().tenants.get)
        return sorted(got)

    def close(self) -> None:
        self.shape = None
        if self.client is not None:
            client, self.client = self.client, None
            with contextlib.suppress(Exception):
                client.close()


def _distance(index: Any) -> str | None:
    metric = getattr(index, "distance_metric", None)
    return str(getattr(metric, "value", metric)) if metric is not None else None
