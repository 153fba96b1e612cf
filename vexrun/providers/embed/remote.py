"""The part of an HTTP embedder that does not depend on the API's dialect: splitting texts into requests,
bounded parallel requests on a thread pool, retries, checking the vectors that come back, and putting them
back in input order. A dialect (``openai``, ``ollama``) says how to build a request and read an answer.
"""

from __future__ import annotations

import math
import re
import threading
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import orjson

from ..._version import __version__
from ..base import Embedder
from .http import (
    Aborted,
    BadResponse,
    EndpointError,
    RateGate,
    RateLimited,
    Refused,
    RemoteEmbedderConfig,
    ServerError,
    Unreachable,
    clean_message,
    describe,
    host_port,
    retry_hint,
    retrying,
)

if TYPE_CHECKING:
    import httpx

__all__ = ["RemoteEmbedder"]

_ERRNO = re.compile(r"^\[Errno -?\d+\]\s*")

#: what ``open`` embeds to check the endpoint, the key and the model, and to learn the dimension
PROBE = "vexrun connection check"


class RemoteEmbedder(Embedder):
    """Base of the HTTP embedders. Subclasses set ``provider`` and ``path`` and implement the hooks."""

    provider: ClassVar[str] = "remote"
    #: the endpoint's path below ``base_url``
    path: ClassVar[str] = "/embeddings"

    def __init__(self, config: RemoteEmbedderConfig) -> None:
        super().__init__(config)
        self.cfg = config
        self.url = config.base_url + self.path
        self.where = describe(self.provider, config.model, self.url)
        self._client: httpx.Client | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._gate = RateGate()
        self._dims: int | None = None
        self._lock = threading.Lock()
        #: what this embedder spent: requests answered, texts embedded, tokens the server counted, retries
        self.usage = {"requests": 0, "texts": 0, "tokens": 0, "retries": 0}

    # --- dialect hooks ---------------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        """Strings that must never appear in a message (the API key)."""
        return ()

    def _prepare(self) -> dict[str, str]:
        """Check the settings before connecting; return extra request headers."""
        return {}

    def _body(self, texts: list[str]) -> dict[str, Any]:
        raise NotImplementedError

    def _vectors(self, payload: Any, n: int) -> np.ndarray:
        """The vectors of an answer, in input order, as a float32 matrix (shape not yet checked)."""
        raise NotImplementedError

    def _tokens(self, payload: Any) -> int:
        return 0

    def _error_text(self, payload: Any) -> tuple[str, str | None]:
        """(message, error code) of an error answer."""
        return "", None

    def _expected_dims(self) -> int | None:
        return self._dims

    def _hint(self, status: int) -> str | None:
        """What to do about a terminal HTTP status."""
        return None

    def _token_estimate(self, text: str) -> int:
        return 0

    def _max_request_tokens(self) -> int | None:
        return None

    # --- the interface ---------------------------------------------------------------------------------

    @property
    def dims(self) -> int | None:
        return self._dims

    def open(self) -> None:
        if self._client is not None:
            return
        import httpx

        headers = {
            "content-type": "application/json",
            "accept": "application/json",
            "user-agent": f"vexrun/{__version__}",
            **self._prepare(),
        }
        n = self.cfg.concurrency
        self._client = httpx.Client(
            headers=headers,
            timeout=httpx.Timeout(self.cfg.timeout),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n),
        )
        try:
            self._call([PROBE], threading.Event(), retry_refused=False)
        except BaseException:
            self.close()
            raise
        if n > 1:
            self._pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix=f"vexrun-{self.provider}-embed")

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._client is None:
            self.open()
        if not texts:
            return np.empty((0, self._dims or 0), dtype=np.float32)
        spans = self.spans(texts)
        abort = threading.Event()
        if self._pool is None or len(spans) == 1:
            parts = [self._call(texts[a:b], abort) for a, b in spans]
        else:
            parts = self._parallel(texts, spans, abort)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._client is not None:
            self._client.close()
            self._client = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where}>"

    # --- batching --------------------------------------------------------------------------------------

    def spans(self, texts: list[str]) -> list[tuple[int, int]]:
        """Contiguous ``[start, end)`` slices, one per request: at most ``batch_size`` texts, split evenly
        (300 texts at 256 per request go as 150 + 150), and no more estimated tokens than the request limit
        (a single text over it still goes alone)."""
        n = len(texts)
        k = math.ceil(n / self.cfg.batch_size)
        per = math.ceil(n / k)
        limit = self._max_request_tokens()
        if limit is None:
            bounds = [i * n // k for i in range(k + 1)]
            return list(zip(bounds, bounds[1:], strict=False))
        spans: list[tuple[int, int]] = []
        start, budget = 0, 0
        for i, text in enumerate(texts):
            cost = self._token_estimate(text)
            if i > start and (i - start >= per or budget + cost > limit):
                spans.append((start, i))
                start, budget = i, 0
            budget += cost
        spans.append((start, n))
        return spans

    def _parallel(self, texts: list[str], spans: list[tuple[int, int]], abort: threading.Event) -> list[np.ndarray]:
        assert self._pool is not None
        futures: list[Future[np.ndarray]] = [self._pool.submit(self._call, texts[a:b], abort) for a, b in spans]
        try:
            _, pending = wait(futures, return_when=FIRST_EXCEPTION)
        except BaseException:  # interrupted: let the other requests stop at their next wait
            abort.set()
            for f in futures:
                f.cancel()
            raise
        if pending:  # one request failed for good: stop the others, then report it
            abort.set()
            for f in pending:
                f.cancel()
            wait(futures)
        errors = [f.exception() for f in futures if not f.cancelled()]
        real = [e for e in errors if e is not None and not isinstance(e, Aborted)]
        if real:
            raise real[0]
        return [f.result() for f in futures]

    # --- one request -----------------------------------------------------------------------------------

    def _call(self, texts: list[str], abort: threading.Event, *, retry_refused: bool = True) -> np.ndarray:
        def count_retry() -> None:
            with self._lock:
                self.usage["retries"] += 1

        return retrying(
            lambda: self._post(texts),
            max_retries=self.cfg.max_retries,
            backoff=self.cfg.retry_backoff,
            max_wait=self.cfg.max_retry_wait,
            gate=self._gate,
            abort=abort,
            retry_refused=retry_refused,
            on_retry=count_retry,
        )

    def _post(self, texts: list[str]) -> np.ndarray:
        import httpx

        client = self._client
        if client is None:
            raise Aborted
        try:
            response = client.post(self.url, content=orjson.dumps(self._body(texts)))
        except httpx.TimeoutException:
            raise Unreachable(f"{self.where}: no answer within {self.cfg.timeout:g} s") from None
        except httpx.ConnectError as exc:
            reason = _ERRNO.sub("", clean_message(str(exc), self._secrets(), 120)) or type(exc).__name__
            raise Unreachable(
                f"{self.where}: cannot connect to {host_port(self.url)}: {reason}",
                refused=True,
                hint="is the server running and the base_url right?",
            ) from None
        except httpx.TransportError as exc:
            reason = _ERRNO.sub("", clean_message(str(exc), self._secrets(), 120)) or type(exc).__name__
            raise Unreachable(f"{self.where}: connection lost: {reason}") from None
        if response.status_code >= 400:
            raise self._status_error(response)
        payload = self._json(response.content)
        vectors = self._check(self._vectors(payload, len(texts)), len(texts))
        with self._lock:
            self.usage["requests"] += 1
            self.usage["texts"] += len(texts)
            self.usage["tokens"] += self._tokens(payload)
        return vectors

    def _json(self, content: bytes) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError:
            pass
        import json

        try:  # the stdlib reads NaN / Infinity, so that _check can name the real problem
            return json.loads(content)
        except ValueError:
            snippet = clean_message(content[:60].decode("utf-8", "replace"), self._secrets(), 60)
            raise BadResponse(f"{self.where}: the answer is not valid JSON (starts {snippet!r})") from None

    def _check(self, vectors: np.ndarray, n: int) -> np.ndarray:
        if vectors.ndim != 2 or vectors.shape[0] != n:
            got = vectors.shape[0] if vectors.ndim else 0
            raise BadResponse(f"{self.where}: the answer holds {got} vectors for {n} texts")
        d = vectors.shape[1]
        expected = self._expected_dims()
        if expected is not None and d != expected:
            raise Refused(
                f"{self.where}: the answer holds {d}-d vectors, expected {expected}-d",
                hint="check the model and dimensions settings",
            )
        if d == 0:
            raise BadResponse(f"{self.where}: the answer holds empty vectors")
        if not np.isfinite(vectors).all():
            raise BadResponse(f"{self.where}: the answer holds non-finite values (NaN or infinity)")
        if self._dims is None:
            self._dims = d
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _status_error(self, response: httpx.Response) -> EndpointError:
        status = response.status_code
        try:
            payload = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            payload = response.content.decode("utf-8", "replace")
        raw, code = self._error_text(payload)
        text = clean_message(raw, self._secrets()) or response.reason_phrase or "no message"
        where, hint = f"{self.where}: HTTP {status}", self._hint(status)
        headers = {k.lower(): v for k, v in response.headers.items()}
        if status == 401:  # OpenAI's text echoes part of the key: leave it out altogether
            return Refused(f"{where}: the API key was refused", status=status, hint=hint)
        if status == 429 and code == "insufficient_quota":
            return Refused(
                f"{where}: quota exceeded: {text}", status=status, hint="check the account's plan and billing"
            )
        if status == 429:
            wait = retry_hint(headers, raw)
            asked = f" (the server asks to wait {wait:.3g} s)" if wait is not None else ""
            return RateLimited(f"{where}: rate limited{asked}: {text}", status=status, retry_after=wait)
        if status in (408, 409) or status >= 500:
            return ServerError(f"{where}: {text}", status=status, retry_after=retry_hint(headers))
        return Refused(f"{where}: {text}", status=status, hint=hint)

    def _as_matrix(self, rows: list[Any]) -> np.ndarray:
        try:
            return np.array(rows, dtype=np.float32)
        except (ValueError, TypeError):
            lengths = sorted({len(r) for r in rows if isinstance(r, list)})
            raise BadResponse(f"{self.where}: the vectors are not numbers of one length (lengths {lengths})") from None
