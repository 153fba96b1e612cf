"""The cascade: an ordered list of LLM providers, each with its keys and budgets, that answers a request with
the first provider that can, and says exactly why when none could.

For one request, provider by provider:

1. the content-addressed cache is asked first (keyed by the model and the whole provider-independent request):
   an answer paid for once is never paid for again, whichever run, resume or retry asks;
2. a key is reserved from the provider's budgets (see :mod:`.budget`); the call is made;
3. errors are classified: a **rate limit** (429) cools that key down for exactly the wait the server asked for
   and the request goes to another key (or waits for one) — unless every key is cooling down for longer than
   ``max_rate_wait``, then it goes to the next provider; a **transient** error (5xx, timeout, connection refused,
   an unreadable answer) is retried with exponential backoff and jitter, up to ``max_retries``, then the next
   provider; a refused **key** (401/403, no credit) is dropped for the run with one warning and the request
   goes to the next key; a refused **model** (unknown, no access) drops the provider for the run with one
   warning; a request **too large** for this provider goes to the next one;
4. the answer is committed to the cache as soon as it arrives, then parsed by the caller's ``parse``; an answer
   that does not parse or fit the schema gets ONE repair request (the answer and what was wrong with it); if
   that fails too, the next provider gets the original request.

When every provider has failed, the :class:`Outcome` says so, with each provider's reason; nothing is dropped
silently. Requests run concurrently on a thread pool of ``max_concurrency`` workers, but how many are really in
flight follows from the budgets: a worker waits until a key can afford its request.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from ...errors import ConnectError
from ..embed.http import BadResponse, RateLimited, Refused, ServerError, Unreachable
from .base import ChatAnswer, ChatProvider, ChatRequest, InvalidOutput, KeyRefused, ModelRefused, TooLarge
from .budget import Aborted, ProviderPool, Unavailable

__all__ = ["AnswerCache", "CachedAnswer", "Cascade", "InvalidAnswer", "Outcome"]

log = logging.getLogger("vexrun.llm")
T = TypeVar("T")


class InvalidAnswer(ValueError):
    """Raised by a ``parse`` function: the answer cannot be used; the message says why (it is shown to the model
    in the repair request, so keep it short and concrete)."""


@dataclass(frozen=True)
class CachedAnswer:
    text: str
    model: str
    provider: str
    input_tokens: int
    output_tokens: int


class AnswerCache(Protocol):
    """What the cascade needs of a cache (see :class:`vexrun.stages.llm_cache.LLMCache`)."""

    def key(self, model: str, request: ChatRequest) -> bytes: ...
    def get(self, key: bytes) -> CachedAnswer | None: ...
    def put(self, key: bytes, model: str, provider: str, answer: ChatAnswer) -> None: ...


@dataclass
class Outcome(Generic[T]):
    """The result of one request: ``value`` (what ``parse`` returned) when ``ok``, else ``reason``."""

    ok: bool
    value: T | None = None
    provider: str | None = None
    model: str | None = None
    #: answered from the cache without any call
    cached: bool = False
    repaired: bool = False
    #: calls this request made (repairs included; cached answers are not calls)
    calls: int = 0
    reason: str | None = None


class _Skip(Exception):
    """This provider cannot answer this request: the message says why."""


class Cascade:
    """Ordered providers with key rotation, budgets, retries, cache and accounting. Use as a context manager, or
    call :meth:`open` / :meth:`close`."""

    def __init__(
        self,
        providers: Sequence[ChatProvider],
        *,
        cache: AnswerCache | None = None,
        max_concurrency: int = 16,
        max_rate_retries: int = 30,
        log_fn: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        reask_invalid: bool = False,
    ) -> None:
        self.providers = list(providers)
        #: a cached answer that does not parse is asked for again (``--retry-rejected``: otherwise the replay of
        #: the cache would fail the same way); a fresh answer replaces it in the cache
        self.reask_invalid = reask_invalid
        self.cache = cache
        self.max_concurrency = max_concurrency
        self.max_rate_retries = max_rate_retries
        self.log_fn = log_fn
        self.clock = clock
        self.abort = threading.Event()
        self.pools: list[ProviderPool] = []
        #: one line per key or provider dropped (and other things worth telling once)
        self.warnings: list[str] = []
        self._warned: set[str] = set()
        self._lock = threading.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._opened = False

    # --- lifecycle --------------------------------------------------------------------------------------------

    def open(self) -> Cascade:
        """Resolve keys and open the HTTP clients. A provider without keys is left out with a warning; raises
        :class:`~vexrun.errors.ConnectError` when no provider is left."""
        if self._opened:
            return self
        problems: list[str] = []
        seen: dict[str, int] = {}
        for provider in self.providers:  # two providers of one kind: groq, groq-2
            n = seen[provider.label] = seen.get(provider.label, 0) + 1
            if n > 1:
                provider.label = f"{provider.label}-{n}"
        for provider in self.providers:
            keys = provider.keys()
            if not keys:
                reason = f"no API key ({provider.missing_key_hint()})"
                problems.append(f"{provider.label}: {reason}")
                self._warn(f"llm {provider.label}: {reason}; it is left out of the cascade")
                continue
            provider.open(pool_size=self.max_concurrency)
            self.pools.append(ProviderPool(provider, keys, clock=self.clock, abort=self.abort))
        if not self.pools:
            raise ConnectError(
                "no LLM provider can be used: " + ("; ".join(problems) or "none configured"),
                hint="set a provider's API key, or start Ollama",
            )
        self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="vexrun-llm")
        self._opened = True
        return self

    def close(self) -> None:
        self.abort.set()
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        for p in self.providers:
            p.close()
        self._opened = False

    def __enter__(self) -> Cascade:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- requests ---------------------------------------------------------------------------------------------

    def complete(self, request: ChatRequest, parse: Callable[[str], T]) -> Outcome[T]:
        """Answer one request (in the calling thread)."""
        if not self._opened:
            self.open()
        reasons: list[str] = []
        calls = [0]
        for pool in self.pools:
            try:
                value, cached, repaired = self._with(pool, request, parse, calls)
            except _Skip as exc:
                reasons.append(f"{pool.label}: {exc}")
                continue
            except Aborted:
                return Outcome(False, reason="interrupted", calls=calls[0])
            return Outcome(True, value, pool.label, pool.model, cached, repaired, calls[0])
        return Outcome(False, reason="every provider failed: " + "; ".join(reasons), calls=calls[0])

    def complete_many(
        self,
        items: Sequence[tuple[ChatRequest, Callable[[str], T]]],
        on_done: Callable[[int, Outcome[T]], None] | None = None,
    ) -> list[Outcome[T]]:
        """Answer many requests concurrently; results in input order. ``on_done(i, outcome)`` is called from the
        worker thread as each finishes. Identical requests are asked once."""
        if not self._opened:
            self.open()
        assert self._executor is not None
        first: dict[bytes, int] = {}
        futures: dict[int, Future[Outcome[T]]] = {}
        for i, (request, parse) in enumerate(items):
            canon = request.canonical()
            if canon in first:
                continue
            first[canon] = i
            futures[i] = self._executor.submit(self._job, i, request, parse, on_done)
        results: list[Outcome[T]] = []
        for i, (request, _) in enumerate(items):
            j = first[request.canonical()]
            results.append(futures[j].result())
            if j != i and on_done is not None:
                on_done(i, results[-1])
        return results

    def _job(
        self, i: int, request: ChatRequest, parse: Callable[[str], T], on_done: Callable[[int, Outcome[T]], None] | None
    ) -> Outcome[T]:
        outcome = self.complete(request, parse)
        if on_done is not None:
            on_done(i, outcome)
        return outcome

    # --- one provider -----------------------------------------------------------------------------------------

    def _with(
        self, pool: ProviderPool, request: ChatRequest, parse: Callable[[str], T], calls: list[int]
    ) -> tuple[T, bool, bool]:
        text, cached = self._ask(pool, request, calls)
        try:
            return parse(text), cached, False
        except InvalidAnswer as exc:
            problem = str(exc)
        if cached and self.reask_invalid:
            text, cached = self._ask(pool, request, calls, fresh=True)
            try:
                return parse(text), False, False
            except InvalidAnswer as exc:
                problem = str(exc)
        log.debug("%s: the answer did not fit (%s); asking once to repair it", pool.label, problem)
        repair = request.repair(text, problem)
        text2, cached2 = self._ask(pool, repair, calls, fresh=self.reask_invalid and cached)
        try:
            return parse(text2), cached and cached2, True
        except InvalidAnswer as exc:
            raise _Skip(f"the answer did not fit the schema, even after one repair ({exc})") from None

    def _ask(self, pool: ProviderPool, request: ChatRequest, calls: list[int], fresh: bool = False) -> tuple[str, bool]:
        """The answer text to ``request`` from this provider: cached (unless ``fresh``), or from a call (then
        cached)."""
        key = self.cache.key(pool.model, request) if self.cache is not None else None
        if self.cache is not None and key is not None and not fresh:
            hit = self.cache.get(key)
            if hit is not None:
                pool.cached()
                return hit.text, True
        cfg = pool.provider.config
        est_in, est_out, raw_in = pool.estimate(request)
        transient = rate = 0
        while True:
            try:
                res = pool.acquire(est_in, est_out, cfg.max_rate_wait, raw_in)
            except Unavailable as exc:
                raise _Skip(str(exc)) from None
            try:
                answer = pool.provider.complete(request, res.slot.secret)
            except RateLimited as exc:
                wait = pool.rate_limited(res, exc)
                rate += 1
                log.debug("%s %s: rate limited; that key waits %.3f s", pool.label, res.slot.name, wait)
                if rate > self.max_rate_retries:
                    raise _Skip(f"rate limited {rate} times in a row ({exc})") from None
                continue
            except KeyRefused as exc:
                pool.refund(res)
                if pool.drop_key(res.slot):
                    self._warn(f"llm {pool.label}: {res.slot.name} was refused and is dropped for this run: {exc}")
                if not pool.alive and pool.dropped == "every key was refused":
                    self._warn(f"llm {pool.label}: every key was refused; the provider is dropped for this run")
                continue
            except ModelRefused as exc:
                pool.refund(res)
                if pool.drop(str(exc)):
                    self._warn(f"llm {pool.label}: dropped for this run: {exc}")
                raise _Skip(str(exc)) from None
            except TooLarge as exc:
                pool.refund(res)
                raise _Skip(str(exc)) from None
            except InvalidOutput as exc:
                calls[0] += 1
                pool.settle(res, ChatAnswer(text=exc.text))
                return exc.text, False
            except Refused as exc:
                pool.refund(res)
                raise _Skip(str(exc)) from None
            except (ServerError, Unreachable, BadResponse) as exc:
                pool.refund(res, requests=False)
                refused = isinstance(exc, Unreachable) and exc.refused
                if pool.unreachable_now(refused):
                    self._warn(f"llm {pool.label}: cannot connect ({exc}); skipping it for 30 s")
                transient += 1
                if transient > cfg.max_retries:
                    raise _Skip(f"{exc} (gave up after {transient} attempts)") from None
                pool.retried(res.slot)
                self._backoff(cfg.retry_backoff, cfg.max_retry_wait, transient, exc.retry_after)
                continue
            calls[0] += 1
            pool.settle(res, answer)
            if self.cache is not None and key is not None:
                self.cache.put(key, pool.model, pool.label, answer)
            return answer.text, False

    def _backoff(self, base: float, cap: float, attempt: int, hint: float | None) -> None:
        if hint is not None:
            seconds = min(cap, hint)
        else:
            step = min(cap, base * 2.0 ** (attempt - 1))
            seconds = step / 2 + random.uniform(0, step / 2)
        if self.abort.wait(seconds):
            raise Aborted

    def _warn(self, message: str) -> None:
        with self._lock:
            if message in self._warned:
                return
            self._warned.add(message)
            self.warnings.append(message)
        if self.log_fn is not None:
            self.log_fn("warning: " + message)
        else:
            log.warning("%s", message)

    # --- reporting --------------------------------------------------------------------------------------------

    def usage(self) -> dict[str, Any]:
        """Calls, cached answers, input/output tokens, retries, 429s, errors and estimated cost (where a price
        is known), per provider and per key (keys are named key1, key2 … never by value)."""
        out: dict[str, Any] = {pool.label: pool.snapshot() for pool in self.pools}
        costs = [p["cost_usd"] for p in out.values() if "cost_usd" in p]
        total = {
            name: sum(int(p.get(name, 0)) for p in out.values())
            for name in ("calls", "cached", "input_tokens", "output_tokens", "retries", "rate_limited", "errors")
        }
        result: dict[str, Any] = {"providers": out, "total": total}
        if costs:
            result["total"]["cost_usd"] = sum(costs)
        return result

    def restore_usage(self, saved: dict[str, Any]) -> None:
        """Add a previous run's :meth:`usage` to the counters (a resumed run reports the whole job)."""
        providers = saved.get("providers") or {}
        for pool in self.pools:
            prior = providers.get(pool.label)
            if isinstance(prior, dict):
                pool.restore(prior)

    def describe(self) -> list[dict[str, Any]]:
        """The cascade for ``vexrun plan``: provider, model, endpoint, how many keys (never their values),
        budgets and price."""
        return [describe_provider(p) for p in self.providers]


def describe_provider(provider: ChatProvider) -> dict[str, Any]:
    from ..embed.http import safe_url

    cfg = provider.config
    price = cfg.effective_price()
    return {
        "provider": provider.label,
        "type": provider.kind,
        "model": cfg.model,
        "url": safe_url(provider.url),
        "keys": 0 if provider.keyless and provider.keys() == [None] else len(provider.keys()),
        "tpm": cfg.tpm,
        "rpm": cfg.rpm,
        "output_tpm": cfg.output_tpm,
        "max_in_flight": cfg.max_in_flight,
        "price_per_1m": None if price is None else {"input": price.input, "output": price.output},
    }
