"""What the HTTP embedders share: the error classes, reading retry hints from a response, and the retry
policy (tenacity: backoff with jitter, or exactly the wait a rate-limited server asked for).

Nothing here imports httpx or tenacity at module level: config models import this module when a recipe is
validated, and that must stay light.
"""

from __future__ import annotations

import email.utils
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from ...connectors.base import PluginConfig
from ...errors import ConnectError, Terminal, Transient

__all__ = [
    "BadResponse",
    "EndpointError",
    "RateGate",
    "RateLimited",
    "Refused",
    "RemoteEmbedderConfig",
    "ServerError",
    "Unreachable",
    "clean_message",
    "describe",
    "host_port",
    "parse_duration",
    "retry_hint",
    "retrying",
    "safe_url",
]

log = logging.getLogger("vexrun.embed")
T = TypeVar("T")


# --- errors -------------------------------------------------------------------------------------------


class EndpointError(ConnectError):
    """An embedding endpoint failed. ``status`` is the HTTP status (None when no answer came back). The message
    names the endpoint (URL without credentials) and never holds a secret."""

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        #: the wait the server asked for (seconds), if it said
        self.retry_after = retry_after
        self.attempts = 1

    def gave_up(self, attempts: int) -> EndpointError:
        """The same error, saying how many attempts were made before giving up (when it was worth retrying)."""
        if attempts > 1 and isinstance(self, Transient):
            self.message = f"{self.message} (gave up after {attempts} attempts)"
        self.attempts = attempts
        return self


class Unreachable(EndpointError, Transient):
    """No answer: connection refused or reset, DNS failure, timeout. ``refused`` is True when no connection
    could be made at all (nothing listens there, or the name does not resolve)."""

    def __init__(self, message: str, *, refused: bool = False, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.refused = refused


class ServerError(EndpointError, Transient):
    """The server answered 5xx (or 408/409): it may work a moment later."""


class RateLimited(EndpointError, Transient):
    """HTTP 429. ``retry_after`` is the wait the server asked for, in seconds, if it said."""


class BadResponse(EndpointError, Transient):
    """The answer could not be used (not JSON, wrong number of vectors, non-finite values); retried, since a
    proxy or an overloaded server produces these now and then."""


class Refused(EndpointError, Terminal):
    """Retrying cannot help: bad key, no access, unknown model, invalid request, quota used up, vectors of the
    wrong dimension."""


# --- reading hints -------------------------------------------------------------------------------------

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_TRY_AGAIN = re.compile(r"try again in\s+(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\b", re.IGNORECASE)
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (``"1.5s"``, ``"6m0s"``, ``"20ms"``, ``"1h2m3s"``) or a bare number of
    seconds; None when it is neither."""
    text = text.strip()
    if not text:
        return None
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNIT_SECONDS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def _retry_after(value: str, now: float) -> float | None:
    seconds = parse_duration(value) if re.fullmatch(r"\s*\d+(\.\d+)?\s*", value) else None
    if seconds is not None:
        return seconds
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - now)


def retry_hint(headers: Mapping[str, str], message: str = "", *, now: float | None = None) -> float | None:
    """How long the server asked us to wait, in seconds, or None if it did not say. In order: ``retry-after-ms``,
    ``retry-after`` (seconds or an HTTP date), a "Please try again in 3.435s" message, then the
    ``x-ratelimit-reset-{requests,tokens}`` headers of the limits that are used up (all of them when the
    ``x-ratelimit-remaining-*`` headers do not say which)."""
    now = time.time() if now is None else now
    h = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in h:
        try:
            return max(0.0, float(h["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    if "retry-after" in h and (seconds := _retry_after(h["retry-after"], now)) is not None:
        return seconds
    if m := _TRY_AGAIN.search(message):
        return float(m.group(1)) * _UNIT_SECONDS[m.group(2) or "s"]
    resets: dict[str, float] = {}
    for kind in ("requests", "tokens"):
        value = h.get(f"x-ratelimit-reset-{kind}")
        if value is not None and (seconds := parse_duration(value)) is not None:
            resets[kind] = seconds
    exhausted = [k for k in resets if h.get(f"x-ratelimit-remaining-{k}", "").strip() == "0"]
    chosen = exhausted or list(resets)
    return max(resets[k] for k in chosen) if chosen else None


# --- messages ------------------------------------------------------------------------------------------

_KEYLIKE = re.compile(r"\b(sk|pk|rk|gsk|xai|key)[-_][A-Za-z0-9_*\-.]{4,}", re.IGNORECASE)


def clean_message(text: str, secrets: Iterable[str] = (), limit: int = 300) -> str:
    """A server's error text made safe for one line: secrets and key-like tokens masked, whitespace collapsed,
    cut to ``limit`` characters."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = _KEYLIKE.sub(lambda m: m.group(1) + "-***", text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def safe_url(url: str) -> str:
    """``url`` without credentials, query or fragment: fit for messages and plans."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return f"{parts.scheme}://{netloc}{parts.path}"


def host_port(url: str) -> str:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return f"{parts.hostname}:{port}"


# --- config --------------------------------------------------------------------------------------------


class RemoteEmbedderConfig(PluginConfig):
    """Settings every HTTP embedder shares. Subclasses narrow ``type`` to their names."""

    type: str = Field(description="The embedder kind.")
    base_url: str = Field(description="The API root; requests go to a path below it.")
    model: str = Field(min_length=1, description="The model name the endpoint knows.")
    batch_size: int = Field(default=64, ge=1, le=100_000, description="Most texts sent in one request.")
    concurrency: int = Field(default=4, ge=1, le=64, description="Requests in flight at once.")
    timeout: float = Field(default=60.0, gt=0, le=3600, description="Seconds to wait for one answer.")
    max_retries: int = Field(
        default=6, ge=0, le=100, description="Retries of a request after a 429, a 5xx, a timeout or a lost connection."
    )
    retry_backoff: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="First wait (seconds) between retries when the server gives no hint; "
        "doubles each time, with jitter.",
    )
    max_retry_wait: float = Field(
        default=60.0, gt=0, le=3600, description="Longest single wait between retries, even if the server asks more."
    )

    @field_validator("base_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an http:// or https:// URL with a host")
        if parts.username or parts.password:
            raise ValueError("must not hold credentials (give the key in api_key)")
        if parts.query or parts.fragment:
            raise ValueError("must not have a query or fragment")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"has a bad port: {exc}") from None
        return value.strip().rstrip("/")


# --- retrying ------------------------------------------------------------------------------------------


class RateGate:
    """Shared by the threads of one embedder: when one of them is told to wait (a 429 with a hint), the others
    hold back their next request until then too, instead of spending their own 429s."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until = 0.0

    def hold(self, seconds: float) -> None:
        with self._lock:
            self._until = max(self._until, time.monotonic() + seconds)

    def wait(self, abort: threading.Event) -> None:
        while (left := self._until - time.monotonic()) > 0:
            if abort.wait(left):
                return


class Aborted(Exception):
    """Another request of the same call failed for good: stop retrying this one."""


def retrying(
    call: Callable[[], T],
    *,
    max_retries: int,
    backoff: float,
    max_wait: float,
    gate: RateGate,
    abort: threading.Event,
    retry_refused: bool = True,
    on_retry: Callable[[], None] | None = None,
) -> T:
    """Run ``call``; retry it on :class:`~vexrun.errors.Transient` errors with exponential backoff and jitter,
    or the server's own hint (plus at most 10% jitter), never longer than ``max_wait`` per wait. The last
    error is re-raised, saying how many attempts were made. ``retry_refused=False`` gives up at once when no
    connection can be made (used when opening: nothing listens there, so say so now)."""
    import tenacity

    def wait(state: tenacity.RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hint: float | None = getattr(exc, "retry_after", None)
        if hint is not None:
            seconds = min(max_wait, hint + random.uniform(0, 0.1 * hint + 0.005))
            gate.hold(seconds)
            return seconds
        step: float = min(max_wait, backoff * 2.0 ** (state.attempt_number - 1))
        return step / 2 + random.uniform(0, step / 2)

    def sleep(seconds: float) -> None:
        if abort.wait(seconds):
            raise Aborted

    def before_sleep(state: tenacity.RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.next_action.sleep if state.next_action else 0.0
        log.warning("%s; retry %d/%d in %.2f s", exc, state.attempt_number, max_retries, delay)
        if on_retry is not None:
            on_retry()

    def attempt() -> T:
        if abort.is_set():
            raise Aborted
        gate.wait(abort)
        return call()

    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(max_retries + 1),
        wait=wait,
        retry=tenacity.retry_if_exception(
            lambda e: isinstance(e, Transient) and (retry_refused or not getattr(e, "refused", False))
        ),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retryer(attempt)
    except EndpointError as exc:
        stats = retryer.statistics
        raise exc.gave_up(int(stats.get("attempt_number", 1))) from exc.__cause__


def describe(provider: str, model: str, url: str) -> str:
    """How messages name an endpoint: ``openai embeddings (text-embedding-3-small) at https://…/embeddings``."""
    return f"{provider} embeddings ({model}) at {safe_url(url)}"
