"""Per-key budgets and the key rotation of one provider.

Each key has its own token buckets (tokens per minute, requests per minute, and output tokens per minute
where the provider counts them apart), refilled continuously the way the providers describe their limits. A
request reserves its estimated cost on the first key, in round-robin order, whose buckets hold it and that is
not cooling down after a 429; when none can, the caller waits exactly until the soonest one can (or until a
request in flight settles and frees budget). The estimate is corrected when the answer arrives with the
server's own token counts, and the estimator learns the ratio of real to estimated tokens, so the pace
converges on the real budget: concurrency follows from the budgets, not from a fixed semaphore.

A 429 puts only that key in cooldown for exactly the wait the server asked for (and, for a token limit, lowers
its bucket to what the server's must hold), while the other keys keep working.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..embed.http import RateLimited
from .base import ChatAnswer, ChatProvider, ChatRequest, Price, estimate_tokens

__all__ = ["Bucket", "KeySlot", "ProviderPool", "Reservation", "Unavailable", "Usage"]

_ALPHA = 0.2  # weight of a new observation in the estimators' moving averages
_MARGIN = 0.10  # what a request in flight holds beyond its estimate

#: In a worker of a distributed run: builds a key's bucket (name, per minute, now) on the run's one shared budget
#: (:mod:`vexrun.scaleout.budget`); None: each pool's buckets are its own.
shared_bucket: Callable[[str, int, float], Bucket] | None = None
#: ... and what requests cost, learned from every worker's answers: ``learned(label)`` → :data:`Ratios` or None,
#: ``learn(label, raw_in, input_tokens, output_tokens)``
shared_costs: Any = None


#: (real input tokens per estimated one, output per input token, answers observed, the most output per input
#: token seen): what the estimates of a provider's requests are made from
Ratios = tuple[float, float, int, float]
NO_RATIOS: Ratios = (1.0, 0.5, 0, 0.0)


def learn_ratios(ratios: Ratios, raw_in: float, input_tokens: int, output_tokens: int) -> Ratios:
    """The ratios after one more answer: a mean of the first answers, then a moving average (so the first answer
    corrects a bad guess); and the highest output ratio, which a request in flight holds budget for."""
    ratio_in, ratio_out, observed, high_out = ratios
    if input_tokens <= 0:
        return ratios
    observed += 1
    alpha = max(_ALPHA, 1.0 / observed)
    ratio_in += alpha * (input_tokens / max(raw_in, 1.0) - ratio_in)
    if output_tokens > 0:
        ratio_out += alpha * (output_tokens / input_tokens - ratio_out)
        high_out = max(high_out, output_tokens / input_tokens)
    return ratio_in, ratio_out, observed, high_out


class Unavailable(Exception):
    """This provider cannot take the request now (the message says why); the cascade tries the next."""


class Aborted(Exception):
    """The cascade is closing."""


class Bucket:
    """A token bucket holding at most ``per_minute``, refilled at ``per_minute / 60`` per second. It may go
    below zero when a request cost more than was reserved (the debt is paid by waiting)."""

    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.t = now

    def _refill(self, now: float) -> None:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now

    def wait(self, amount: float, now: float) -> float:
        """Seconds until the bucket holds ``amount`` (at most its capacity)."""
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def take(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level -= amount

    def give(self, amount: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.capacity, self.level + amount)

    def cap_at(self, level: float, now: float) -> None:
        self._refill(now)
        self.level = min(self.level, level)


@dataclass
class Usage:
    calls: int = 0
    cached: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    retries: int = 0
    rate_limited: int = 0
    errors: int = 0

    def add(self, other: dict[str, Any]) -> None:
        for name in ("calls", "cached", "input_tokens", "output_tokens", "retries", "rate_limited", "errors"):
            setattr(self, name, getattr(self, name) + int(other.get(name, 0) or 0))

    def as_dict(self, price: Price | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls,
            "cached": self.cached,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "errors": self.errors,
        }
        if price is not None:
            out["cost_usd"] = (self.input_tokens * price.input + self.output_tokens * price.output) / 1e6
        return out


@dataclass
class KeySlot:
    index: int  # 1-based, for messages: "key 2"
    secret: str | None
    tokens: Bucket | None
    requests: Bucket | None
    output: Bucket | None
    max_in_flight: int | None
    cooldown_until: float = 0.0
    in_flight: int = 0
    alive: bool = True
    #: 429s in a row without a hint: the next wait doubles
    streak: int = 0
    usage: Usage = field(default_factory=Usage)

    @property
    def name(self) -> str:
        return f"key{self.index}"

    def wait(self, tokens: float, output: float, now: float) -> float:
        w = self.cooldown_until - now
        if self.tokens is not None:
            w = max(w, self.tokens.wait(tokens, now))
        if self.requests is not None:
            w = max(w, self.requests.wait(1, now))
        if self.output is not None:
            w = max(w, self.output.wait(output, now))
        return w


@dataclass
class Reservation:
    slot: KeySlot
    tokens: float
    output: float
    est_in: float
    est_out: float
    at: float
    #: the input estimate before the learned correction
    raw_in: float = 0.0


class ProviderPool:
    """The keys, budgets, estimators, health and accounting of one provider in the cascade."""

    def __init__(
        self,
        provider: ChatProvider,
        keys: list[str | None],
        *,
        clock: Callable[[], float] = time.monotonic,
        abort: threading.Event | None = None,
    ) -> None:
        cfg = provider.config
        self.provider = provider
        self.label = provider.label
        self.model = provider.model
        self.price = cfg.effective_price()
        self.clock = clock
        self.abort = abort or threading.Event()
        now = clock()

        def bucket(i: int, kind: str, per_minute: int | None) -> Bucket | None:
            if not per_minute:
                return None
            if shared_bucket is not None:
                return shared_bucket(f"{self.label}/key{i + 1}/{kind}", per_minute, now)
            return Bucket(per_minute, now)

        self.slots = [
            KeySlot(
                index=i + 1,
                secret=k,
                tokens=bucket(i, "tokens", cfg.tpm),
                requests=bucket(i, "requests", cfg.rpm),
                output=bucket(i, "output", cfg.output_tpm),
                max_in_flight=cfg.max_in_flight,
            )
            for i, k in enumerate(keys)
        ]
        self.cond = threading.Condition()
        self.rr = 0
        #: real input tokens per estimated one, and output tokens per input token (moving averages)
        self.ratio_in = 1.0
        self.ratio_out = 0.5
        self.observed = 0
        self.high_out = 0.0
        self.alive = bool(self.slots)
        self.dropped: str | None = None if self.slots else "no API key"
        self.down_until = 0.0
        self.unreachable = 0
        self.usage = Usage()

    # --- estimates ------------------------------------------------------------------------------------------

    def estimate(self, request: ChatRequest) -> tuple[float, float, float]:
        """(input, output) tokens this request is expected to cost, and the uncorrected input estimate."""
        raw = estimate_tokens(request.prompt_text()) + 8 * (len(request.messages) + 1)
        learned = shared_costs.learned(self.label) if shared_costs is not None else None
        with self.cond:
            if learned is not None and learned[2] > self.observed:
                self.ratio_in, self.ratio_out, self.observed, self.high_out = learned
            est_in = raw * self.ratio_in
            est_out = min(float(request.max_tokens), est_in * self.ratio_out + 16)
        return est_in, est_out, float(raw)

    def _learn(self, res: Reservation, answer: ChatAnswer) -> None:
        """A mean of the first answers, then a moving average (so the first answer corrects a bad guess)."""
        if shared_costs is not None:
            shared_costs.learn(self.label, res.raw_in, answer.input_tokens, answer.output_tokens)
        ratios = (self.ratio_in, self.ratio_out, self.observed, self.high_out)
        self.ratio_in, self.ratio_out, self.observed, self.high_out = learn_ratios(
            ratios, res.raw_in, answer.input_tokens, answer.output_tokens
        )

    # --- taking a key ---------------------------------------------------------------------------------------

    def acquire(self, est_in: float, est_out: float, max_rate_wait: float, raw_in: float = 0.0) -> Reservation:
        """Reserve the estimated cost on a key, waiting for budget. Raises :class:`Unavailable` when the
        provider was dropped, is down, cannot ever hold the request, or every key is rate limited for longer
        than ``max_rate_wait``."""
        separate = any(s.output is not None for s in self.slots)
        # a request in flight holds more than its estimate: the server charges the real count on arrival, and an
        # answer may be as long as the longest seen yet (per input token); the surplus comes back when it settles
        est_out_held = max(est_out, est_in * self.high_out) * (1 + _MARGIN)
        tokens = est_in * (1 + _MARGIN) if separate else est_in * (1 + _MARGIN) + est_out_held
        with self.cond:
            while True:
                if self.abort.is_set():
                    raise Aborted
                if not self.alive:
                    raise Unavailable(self.dropped or "dropped")
                now = self.clock()
                if self.down_until > now:
                    raise Unavailable(f"unreachable; skipped for another {self.down_until - now:.0f} s")
                live = [s for s in self.slots if s.alive]
                if not live:
                    self._drop("every key was refused")
                    raise Unavailable(self.dropped or "dropped")
                cap = live[0].tokens.capacity if live[0].tokens is not None else None
                if cap is not None and est_in > cap:
                    raise Unavailable(
                        f"the request (~{est_in:,.0f} input tokens) is larger than the {cap:,.0f} tokens per minute "
                        "a key may use"
                    )
                soonest = float("inf")
                n = len(self.slots)
                for j in range(n):
                    slot = self.slots[(self.rr + j) % n]
                    if not slot.alive:
                        continue
                    busy = slot.max_in_flight is not None and slot.in_flight >= slot.max_in_flight
                    w = slot.wait(tokens, est_out_held, now)
                    if w <= 0 and not busy:
                        self.rr = (slot.index) % n
                        if slot.tokens is not None:
                            slot.tokens.take(tokens, now)
                        if slot.requests is not None:
                            slot.requests.take(1, now)
                        if slot.output is not None:
                            slot.output.take(est_out_held, now)
                        slot.in_flight += 1
                        return Reservation(
                            slot, tokens, est_out_held if separate else 0.0, est_in, est_out, now, raw_in or est_in
                        )
                    soonest = min(soonest, max(w, 0.05) if busy else w)
                cooling = min(s.cooldown_until - now for s in live)
                if cooling > max_rate_wait:
                    raise Unavailable(
                        f"every key is rate limited for another {cooling:.1f} s (more than max_rate_wait "
                        f"{max_rate_wait:g} s)"
                    )
                self.cond.wait(timeout=min(max(soonest, 0.001), 1.0))

    # --- after the request ----------------------------------------------------------------------------------

    def settle(self, res: Reservation, answer: ChatAnswer) -> None:
        """The answer arrived: replace the estimate with the server's counts and learn from it."""
        with self.cond:
            now = self.clock()
            slot = res.slot
            slot.in_flight -= 1
            slot.streak = 0
            actual_in = answer.input_tokens or res.est_in
            actual_out = answer.output_tokens or res.est_out
            if slot.tokens is not None:
                used = actual_in if slot.output is not None else actual_in + actual_out
                slot.tokens.take(used - res.tokens, now)
            if slot.output is not None:
                slot.output.take(actual_out - res.output, now)
            self._learn(res, answer)
            self.unreachable = 0
            for u in (slot.usage, self.usage):
                u.calls += 1
                u.input_tokens += int(actual_in)
                u.output_tokens += int(actual_out)
            self.cond.notify_all()

    def refund(self, res: Reservation, *, requests: bool = True, error: bool = True) -> None:
        """The request failed: give its reserved budget back (the server did not count it)."""
        with self.cond:
            now = self.clock()
            slot = res.slot
            slot.in_flight -= 1
            if slot.tokens is not None:
                slot.tokens.give(res.tokens, now)
            if slot.output is not None:
                slot.output.give(res.output, now)
            if requests and slot.requests is not None:
                slot.requests.give(1, now)
            if error:
                slot.usage.errors += 1
                self.usage.errors += 1
            self.cond.notify_all()

    def rate_limited(self, res: Reservation, exc: RateLimited) -> float:
        """A 429 on this key: it cools down for exactly the wait asked for (doubling waits, from 1 s, when the
        server gave none); a token limit also lowers its bucket to what the server's holds. Returns the wait."""
        with self.cond:
            now = self.clock()
            slot = res.slot
            slot.in_flight -= 1
            if exc.retry_after is not None:
                wait = exc.retry_after
            else:
                wait = min(60.0, 2.0**slot.streak)
            slot.streak += 1
            slot.cooldown_until = max(slot.cooldown_until, now + wait)
            if slot.tokens is not None:
                slot.tokens.give(res.tokens, now)
                text = str(exc).lower()
                if "token" in text or "tpm" in text:
                    slot.tokens.cap_at(res.tokens - slot.tokens.rate * wait, now)
            if slot.output is not None:
                slot.output.give(res.output, now)
            if slot.requests is not None:
                slot.requests.give(1, now)
            for u in (slot.usage, self.usage):
                u.rate_limited += 1
                u.retries += 1
            self.cond.notify_all()
            return wait

    def retried(self, slot: KeySlot) -> None:
        with self.cond:
            slot.usage.retries += 1
            self.usage.retries += 1

    def unreachable_now(self, refused: bool, *, after: int = 3, skip_for: float = 30.0) -> bool:
        """Count a failed connection; after ``after`` in a row the provider is skipped for ``skip_for`` seconds.
        Returns True when that just happened."""
        with self.cond:
            self.unreachable = self.unreachable + 1 if refused else self.unreachable
            if refused and self.unreachable >= after and self.down_until <= self.clock():
                self.down_until = self.clock() + skip_for
                self.unreachable = 0
                self.cond.notify_all()
                return True
            return False

    def drop_key(self, slot: KeySlot) -> bool:
        """Drop a refused key for the run. True the first time."""
        with self.cond:
            first = slot.alive
            slot.alive = False
            if not any(s.alive for s in self.slots):
                self._drop("every key was refused")
            self.cond.notify_all()
            return first

    def drop(self, reason: str) -> bool:
        """Drop the provider for the run. True the first time."""
        with self.cond:
            first = self.alive
            self._drop(reason)
            self.cond.notify_all()
            return first

    def _drop(self, reason: str) -> None:
        if self.alive:
            self.alive = False
            self.dropped = reason

    def cached(self) -> None:
        with self.cond:
            self.usage.cached += 1

    # --- reporting ------------------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        cfg = self.provider.config
        with self.cond:
            out = self.usage.as_dict(self.price)
            out["provider"] = self.provider.kind
            out["model"] = self.model
            out["status"] = "ok" if self.alive else f"dropped: {self.dropped}"
            out["keys"] = {
                s.name: {**s.usage.as_dict(self.price), "status": "ok" if s.alive else "dropped"} for s in self.slots
            }
            out["budget"] = {"tpm": cfg.tpm, "rpm": cfg.rpm, "output_tpm": cfg.output_tpm}
        return out

    def restore(self, saved: dict[str, Any]) -> None:
        """Seed the counters with a previous run's (so a resumed run reports the whole job)."""
        with self.cond:
            self.usage.add(saved)
            for s in self.slots:
                prior = (saved.get("keys") or {}).get(s.name)
                if isinstance(prior, dict):
                    s.usage.add(prior)
