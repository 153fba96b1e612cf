"""Opening the ``pinecone`` SDK (imported here, lazily), finding the index (its host given, or looked up by
name on the control plane, or created there), and turning the SDK's errors into one clear line that names the
index and its host, never the API key."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast
from urllib.parse import urlsplit

from ...errors import ConnectError, InvalidInput
from ..base import RunContext
from .config import PineconeStoreConfig
from .pacing import retrying

if TYPE_CHECKING:
    from pinecone import Pinecone
    from pinecone.index import Index

__all__ = ["METRICS", "Store", "VEXRUN_METRICS", "display_url", "sdk_major", "status_of"]

T = TypeVar("T")
#: vexrun's metric names -> Pinecone's, and back
METRICS = {"cosine": "cosine", "l2": "euclidean", "dot": "dotproduct"}
VEXRUN_METRICS = {v: k for k, v in METRICS.items()}
DEFAULT_CONTROLLER = "https://api.pinecone.io"
_UNREACHABLE = ("PineconeConnectionError", "PineconeTimeoutError", "ConnectError", "ConnectTimeout", "ReadTimeout")


@functools.cache
def sdk_major() -> int | None:
    """The installed ``pinecone`` SDK's major version (None when it is not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return int(version("pinecone").split(".")[0])
    except (PackageNotFoundError, ValueError):
        return None


def display_url(url: str) -> str:
    """A URL for messages: scheme, host and port only (no credentials, path or query)."""
    parts = urlsplit(url if "://" in url else f"https://{url}")
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}"


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an SDK error; 0 when no answer came back; None for anything else (a bug, a value the
    SDK refused before sending)."""
    if type(exc).__name__ in _UNREACHABLE or any(c.__name__ in _UNREACHABLE for c in type(exc).__mro__):
        return 0
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None


def retry_after_of(exc: BaseException) -> float | None:
    value = getattr(exc, "retry_after", None)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _message(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return " ".join(str(text).split())[:300]


class Store:
    """The SDK clients of one index: the control plane (only when the index is named) and the data plane."""

    def __init__(self, cfg: PineconeStoreConfig, ctx: RunContext) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.host: str | None = cfg.host
        self.dims: int | None = None
        self.metric: str | None = None
        self._control: Pinecone | None = None
        self._index: Index | None = None

    # -- naming ---------------------------------------------------------------------------------------------
    @property
    def controller(self) -> str:
        import os

        return self.cfg.controller_host or os.environ.get("PINECONE_CONTROLLER_HOST") or DEFAULT_CONTROLLER

    @property
    def where(self) -> str:
        """How messages name the index: ``index 'memories' at https://memories-….pinecone.io``."""
        name = f"index '{self.cfg.index}'" if self.cfg.index else "index"
        if self.host:
            return f"{name} at {display_url(self.host)}"
        return f"{name} (control plane {display_url(self.controller)})"

    def _key(self) -> str:
        return self.cfg.api_key.get_secret_value()

    def fail(self, exc: BaseException, doing: str) -> NoReturn:
        """Raise one ConnectError/InvalidInput line for an SDK exception (the key masked if it ever shows)."""
        status = status_of(exc)
        text = _message(exc).replace(self._key(), "***") if self._key() else _message(exc)
        where = self.where
        if status in (401, 403):
            raise ConnectError(
                f"pinecone {where} refused the credentials while {doing}",
                hint="check that api_key is a key of this index's project",
            ) from None
        if status == 0:
            why = (
                "timed out"
                if "timed out" in text.lower() or "Timeout" in type(exc).__name__
                else ("connection refused" if "refused" in text.lower() else text or "no answer")
            )
            raise ConnectError(
                f"cannot reach pinecone {where} ({why})", hint="is host / controller_host right, and the network up?"
            ) from None
        if status == 429:
            raise ConnectError(
                f"pinecone {where} kept refusing {doing} for its rate limit (429) after {self.cfg.retries} retries",
                hint="another writer may share the namespace; lower upserts_per_second or parallel",
            ) from None
        if status is not None and status >= 500:
            raise ConnectError(f"pinecone {where} failed while {doing} (HTTP {status}): {text}") from None
        if status is not None:
            raise InvalidInput(f"pinecone {where}: {doing} was refused (HTTP {status}): {text}") from None
        raise InvalidInput(f"pinecone {where}: {doing} failed: {text}") from None

    def call(
        self,
        doing: str,
        fn: Callable[..., T],
        *args: Any,
        retries: int = 0,
        before: Callable[[], None] | None = None,
        on_refused: Callable[[float | None], None] | None = None,
        unanswered: bool = True,
        **kwargs: Any,
    ) -> T:
        """Call the SDK, retrying throttling and server failures ``retries`` times; any failure left becomes
        one clear line."""
        try:
            return retrying(
                lambda: fn(*args, **kwargs),
                retries=retries,
                status_of=status_of,
                retry_after_of=retry_after_of,
                on_refused=on_refused,
                before=before,
                unanswered=unanswered,
            )
        except (ConnectError, InvalidInput):
            raise
        except Exception as exc:  # noqa: BLE001 - every SDK failure becomes one line
            self.fail(exc, doing)

    # -- clients --------------------------------------------------------------------------------------------
    def control(self) -> Pinecone:
        if self._control is None:
            from pinecone import Pinecone

            self._control = self.call(
                "connecting", Pinecone, api_key=self._key(), host=self.controller, timeout=self.cfg.timeout
            )
        return self._control

    @property
    def index(self) -> Index:
        if self._index is None:
            if self.host is None:
                raise RuntimeError("pinecone index used before its host is known")
            index = cast("Index", self.call("connecting", self.control().Index, host=self.host))
            self._index = index
        return self._index

    def describe(self) -> bool:
        """Look the named index up on the control plane: its host, dimension and metric. False if it does not
        exist."""
        assert self.cfg.index is not None
        try:
            model = self.control().describe_index(self.cfg.index)
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) == 404:
                return False
            self.fail(exc, "looking up the index")
        self._learn(model)
        return True

    def _learn(self, model: Any) -> None:
        host = getattr(model, "host", None)
        if host and self.cfg.host is None:
            self.host = str(host)
        with contextlib.suppress(AttributeError):
            dims = model.dimension
            self.dims = int(dims) if dims is not None else None
        with contextlib.suppress(AttributeError):
            self.metric = VEXRUN_METRICS.get(str(model.metric), str(model.metric))

    def create(self, dims: int, metric: str, cloud: str, region: str) -> None:
        """Create the named serverless index and wait until it is ready."""
        from pinecone import ServerlessSpec

        assert self.cfg.index is not None
        model = self.call(
            "creating the index",
            self.control().create_index,
            name=self.cfg.index,
            dimension=dims,
            metric=METRICS[metric],
            spec=ServerlessSpec(cloud=cloud, region=region),
            timeout=300,
        )
        self._learn(model)
        if self.host is None:
            self.describe()

    def locate(self, *, must_exist: bool) -> bool:
        """Find the index: by name on the control plane unless its host is given, then one stats request on
        the host (which proves the host and the key, and gives the dimension and metric). Returns False when a
        named index does not exist (an error when ``must_exist``)."""
        if self.host is None and not self.describe():
            if must_exist:
                raise InvalidInput(f"pinecone {self.where}: the index does not exist")
            return False
        stats = self.stats(unanswered=False)
        if stats.dimension is not None:
            self.dims = int(stats.dimension)
        metric = getattr(stats, "metric", None)
        if metric:
            self.metric = VEXRUN_METRICS.get(str(metric), str(metric))
        return True

    def stats(self, *, unanswered: bool = True) -> Any:
        """``describe_index_stats``; ``unanswered=False`` (when opening) gives up at once when no connection
        can be made, instead of backing off: nothing listens there, so say so now."""
        return self.call(
            "reading the index stats",
            self.index.describe_index_stats,
            retries=self.cfg.retries,
            unanswered=unanswered,
        )

    def counts(self) -> dict[str, int]:
        """Records per Pinecone namespace ('' is the default namespace), empty ones left out."""
        stats = self.stats()
        return {name: int(ns.vector_count) for name, ns in stats.namespaces.items() if int(ns.vector_count)}

    def close(self) -> None:
        for client in (self._index, self._control):
            if client is not None and hasattr(client, "close"):
                with contextlib.suppress(Exception):
                    client.close()
        self._index = None
        self._control = None
