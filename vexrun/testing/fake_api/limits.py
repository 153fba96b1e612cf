"""Per-key rate limits for the fake chat servers, modelled on the providers' own: a token bucket per key for
tokens per minute (and output tokens per minute, Anthropic's OTPM) and one for requests per minute, refilled
continuously. A request is charged its real prompt + completion tokens when it arrives (the fake knows its
answer in advance); one that does not fit is refused with the wait that would make it fit, which the dialect
renders as its real 429 (headers and message). A request larger than a whole minute's budget is refused as
too large.

Counters per key: calls answered, input and output tokens, 429s sent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

__all__ = ["ChatUsage", "KeyBudget", "Limited", "RateLimiter", "sustained"]


@dataclass(frozen=True)
class KeyBudget:
    """Limits per key; None means no limit. With ``output_tpm``, ``tpm`` counts input tokens only."""

    tpm: int | None = None
    rpm: int | None = None
    output_tpm: int | None = None


@dataclass(frozen=True)
class Limited:
    """Why a request was refused: which limit (``requests``, ``tokens``, ``input_tokens``, ``output_tokens``),
    the wait that would make it fit, and the figures the message quotes."""

    kind: str
    wait: float
    limit: int
    used: int
    requested: int
    too_large: bool = False


@dataclass
class ChatUsage:
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    limited: int = 0


class _Bucket:
    def __init__(self, per_minute: int, now: float) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.level = self.capacity
        self.t = now

    def refill(self, now: float) -> None:
        if now > self.t:
            self.level = min(self.capacity, self.level + (now - self.t) * self.rate)
            self.t = now

    def wait(self, amount: float) -> float:
        return 0.0 if self.level >= amount else (amount - self.level) / self.rate

    def reset_in(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.level) / self.rate


@dataclass
class _KeyState:
    tokens: _Bucket | None
    requests: _Bucket | None
    output: _Bucket | None
    usage: ChatUsage = field(default_factory=ChatUsage)


class RateLimiter:
    def __init__(
        self,
        default: KeyBudget | None = None,
        per_key: Mapping[str | None, KeyBudget] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.default = default or KeyBudget()
        self.per_key = dict(per_key or {})
        self.clock = clock
        self._lock = threading.Lock()
        self._keys: dict[str | None, _KeyState] = {}
        #: every admitted request: (clock time, key, tokens charged: input + output)
        self.log: list[tuple[float, str | None, int]] = []

    def _state(self, key: str | None) -> _KeyState:
        st = self._keys.get(key)
        if st is None:
            b = self.per_key.get(key, self.default)
            now = self.clock()
            st = _KeyState(
                tokens=_Bucket(b.tpm, now) if b.tpm else None,
                requests=_Bucket(b.rpm, now) if b.rpm else None,
                output=_Bucket(b.output_tpm, now) if b.output_tpm else None,
            )
            self._keys[key] = st
        return st

    def admit(self, key: str | None, input_tokens: int, output_tokens: int) -> Limited | None:
        """Charge the request to the key's budgets, or say why it does not fit (charging nothing)."""
        with self._lock:
            st = self._state(key)
            now = self.clock()
            for b in (st.tokens, st.requests, st.output):
                if b is not None:
                    b.refill(now)
            separate = st.output is not None
            tokens = input_tokens if separate else input_tokens + output_tokens
            checks: list[tuple[str, _Bucket | None, int]] = [
                ("requests", st.requests, 1),
                ("input_tokens" if separate else "tokens", st.tokens, tokens),
                ("output_tokens", st.output, output_tokens),
            ]
            for kind, bucket, amount in checks:
                if bucket is None:
                    continue
                used = int(bucket.capacity - bucket.level)
                if amount > bucket.capacity:
                    st.usage.limited += 1
                    return Limited(kind, 0.0, int(bucket.capacity), used, amount, too_large=True)
                wait = bucket.wait(amount)
                if wait > 0:
                    st.usage.limited += 1
                    return Limited(kind, wait, int(bucket.capacity), used, amount)
            for _, bucket, amount in checks:
                if bucket is not None:
                    bucket.level -= amount
            st.usage.calls += 1
            st.usage.input_tokens += input_tokens
            st.usage.output_tokens += output_tokens
            self.log.append((now, key, input_tokens + output_tokens))
            return None

    def snapshot(self, key: str | None) -> dict[str, tuple[int, int, float]]:
        """limit, remaining and seconds until full, per limit kind, for the answer's headers."""
        with self._lock:
            st = self._state(key)
            now = self.clock()
            out: dict[str, tuple[int, int, float]] = {}
            for kind, b in (("requests", st.requests), ("tokens", st.tokens), ("output_tokens", st.output)):
                if b is not None:
                    b.refill(now)
                    out[kind] = (int(b.capacity), max(0, int(b.level)), b.reset_in())
            return out

    def usage(self) -> dict[str | None, ChatUsage]:
        with self._lock:
            return {k: ChatUsage(**v.usage.__dict__) for k, v in self._keys.items()}

    def total(self) -> ChatUsage:
        out = ChatUsage()
        for u in self.usage().values():
            out.calls += u.calls
            out.input_tokens += u.input_tokens
            out.output_tokens += u.output_tokens
            out.limited += u.limited
        return out


def sustained(log: list[tuple[float, str | None, int]], burst: float) -> float:
    """Tokens per second admitted (``RateLimiter.log``) after the first ``burst`` tokens (a full bucket's), up to
    the last admission: how much of a key's budget a client kept using once the initial burst was spent."""
    total, start = 0.0, None
    for i, (_, _, tokens) in enumerate(log):
        total += tokens
        if total > burst:
            start = i + 1
            break
    if start is None or start >= len(log) - 1:
        return 0.0
    after = log[start:]
    span = after[-1][0] - log[start - 1][0]
    return sum(tok for _, _, tok in after) / span if span > 0 else 0.0
