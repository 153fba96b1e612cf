"""Scripted faults for the fake API servers, shared by every dialect (OpenAI, Ollama, later Anthropic and chat).

A :class:`Fault` says what goes wrong (an HTTP error, a slow answer, a reset connection, a broken body) and
which requests it hits: the next ``times`` matching requests after letting ``skip`` through, optionally only on
one ``path`` or for one API ``key``, optionally at random (seeded). Faults are tried in the order they were
added; the first that matches and still has uses fires. A queue of one-shot faults is just several of them.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["TEXT_FAULTS", "Fault", "FaultKind", "FaultScript", "go_duration"]

#: ``status``: answer with an error; ``delay``: wait, then answer normally (past a client timeout it is a
#: timeout); ``reset``: read the request, then reset the connection; the rest change a good answer:
#: ``malformed`` (cut JSON), ``wrong_count`` (one vector fewer), ``wrong_dims`` (one dimension fewer),
#: ``non_finite`` (a NaN in the first vector); and for the chat dialects, the model's text itself: ``fenced``
#: (JSON in a code fence), ``prose`` (prose around the JSON), ``broken_json`` (the JSON cut short) and
#: ``schema_invalid`` (valid JSON that breaks the extraction schema).
FaultKind = Literal[
    "status",
    "delay",
    "reset",
    "malformed",
    "wrong_count",
    "wrong_dims",
    "non_finite",
    "fenced",
    "prose",
    "broken_json",
    "schema_invalid",
]

#: faults applied to a good answer by the route's handler (the rest are handled before it runs)
BODY_FAULTS = frozenset(
    {"malformed", "wrong_count", "wrong_dims", "non_finite", "fenced", "prose", "broken_json", "schema_invalid"}
)
#: the faults that change a chat model's text (the HTTP answer itself stays well-formed)
TEXT_FAULTS = frozenset({"fenced", "prose", "broken_json", "schema_invalid"})


def go_duration(seconds: float) -> str:
    """Seconds as the Go-style duration OpenAI's ``x-ratelimit-reset-*`` headers use: ``20ms``, ``1.5s``, ``6m0s``."""
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    text = f"{rest:.3f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{hours}h{minutes}m{text}"
    return f"{minutes}m{text}" if minutes else text


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    status: int = 500
    #: the error message (rendered in the dialect's error body); None: a default for the status
    message: str | None = None
    #: the dialect's error code (OpenAI's ``error.code``: ``rate_limit_exceeded``, ``insufficient_quota`` …)
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: for ``delay``: how long; for ``status``: also send ``retry-after`` as an HTTP date this far ahead
    seconds: float = 0.0
    retry_after_date: bool = False
    times: int | None = 1
    skip: int = 0
    path: str | None = None
    key: str | None = None
    probability: float = 1.0

    # --- constructors; ``when`` takes times / skip / path / key / probability ---------------------------

    @classmethod
    def http(
        cls,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        **when: Any,
    ) -> Fault:
        return cls("status", status=status, message=message, code=code, headers=dict(headers or {}), **when)

    @classmethod
    def server_error(cls, status: int = 500, message: str | None = None, **when: Any) -> Fault:
        return cls.http(status, message or "The server had an error while processing your request.", **when)

    @classmethod
    def rate_limit(
        cls,
        *,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        retry_after_date: float | None = None,
        reset_requests: float | str | None = None,
        reset_tokens: float | str | None = None,
        exhausted: Literal["requests", "tokens"] = "requests",
        try_again_in: float | None = None,
        **when: Any,
    ) -> Fault:
        """A 429 the way OpenAI sends it, carrying the hints asked for: ``retry-after`` (seconds), ``retry-after-ms``,
        ``retry-after`` as an HTTP date ``retry_after_date`` seconds ahead, the ``x-ratelimit-*`` headers (the
        ``exhausted`` limit has 0 remaining), and "Please try again in …" in the message."""
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        if retry_after_ms is not None:
            headers["retry-after-ms"] = f"{retry_after_ms:g}"
        if reset_requests is not None or reset_tokens is not None:
            headers.update(
                {
                    "x-ratelimit-limit-requests": "3000",
                    "x-ratelimit-limit-tokens": "1000000",
                    "x-ratelimit-remaining-requests": "0" if exhausted == "requests" else "2999",
                    "x-ratelimit-remaining-tokens": "0" if exhausted == "tokens" else "999000",
                }
            )
            for kind, value in (("requests", reset_requests), ("tokens", reset_tokens)):
                if value is not None:
                    headers[f"x-ratelimit-reset-{kind}"] = value if isinstance(value, str) else go_duration(value)
        limit = (
            "requests per min (RPM): Limit 3000, Used 3000"
            if exhausted == "requests"
            else ("tokens per min (TPM): Limit 1000000, Used 999900")
        )
        message = f"Rate limit reached in organization org-fake on {limit}, Requested 1."
        if try_again_in is not None:
            message += f" Please try again in {go_duration(try_again_in)}."
        message += " Visit https://platform.openai.com/account/rate-limits to learn more."
        return cls(
            "status",
            status=429,
            message=message,
            code="rate_limit_exceeded",
            headers=headers,
            seconds=retry_after_date or 0.0,
            retry_after_date=retry_after_date is not None,
            **when,
        )

    @classmethod
    def quota(cls, **when: Any) -> Fault:
        """OpenAI's 429 for an account out of credit: retrying cannot help."""
        message = (
            "You exceeded your current quota, please check your plan and billing details. For more information on "
            "this error, read the docs: https://platform.openai.com/docs/guides/error-codes/api-errors."
        )
        return cls.http(429, message, code="insufficient_quota", **when)

    @classmethod
    def delay(cls, seconds: float, **when: Any) -> Fault:
        """Answer normally, ``seconds`` late; longer than the client's timeout, it is a timeout."""
        return cls("delay", seconds=seconds, **when)

    timeout = delay

    @classmethod
    def reset(cls, **when: Any) -> Fault:
        return cls("reset", **when)

    @classmethod
    def malformed(cls, **when: Any) -> Fault:
        return cls("malformed", **when)

    @classmethod
    def wrong_count(cls, **when: Any) -> Fault:
        return cls("wrong_count", **when)

    @classmethod
    def wrong_dims(cls, **when: Any) -> Fault:
        return cls("wrong_dims", **when)

    @classmethod
    def non_finite(cls, **when: Any) -> Fault:
        return cls("non_finite", **when)

    @classmethod
    def fenced(cls, **when: Any) -> Fault:
        """A chat answer whose JSON is wrapped in a ```json code fence."""
        return cls("fenced", **when)

    @classmethod
    def prose(cls, **when: Any) -> Fault:
        """A chat answer with prose before and after the JSON."""
        return cls("prose", **when)

    @classmethod
    def broken_json(cls, **when: Any) -> Fault:
        """A chat answer whose JSON is cut in the middle (the HTTP answer itself is fine)."""
        return cls("broken_json", **when)

    @classmethod
    def schema_invalid(cls, **when: Any) -> Fault:
        """A chat answer that is valid JSON but breaks the extraction schema (one question instead of three,
        importance as a word, no tags)."""
        return cls("schema_invalid", **when)

    def matches(self, path: str, key: str | None) -> bool:
        return (self.path is None or self.path == path) and (self.key is None or self.key == key)


class _Rule:
    def __init__(self, fault: Fault) -> None:
        self.fault = fault
        self.skip = fault.skip
        self.left = fault.times


class FaultScript:
    """The faults of one server, thread-safe. ``fired`` lists the faults in the order they hit requests."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._rng = random.Random(seed)
        self.fired: list[Fault] = []

    def add(self, *faults: Fault) -> None:
        with self._lock:
            self._rules.extend(_Rule(f) for f in faults)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    @property
    def pending(self) -> int:
        """How many more requests the counted faults will hit (faults with ``times=None`` not included)."""
        with self._lock:
            return sum(r.left for r in self._rules if r.left is not None)

    def pick(self, path: str, key: str | None) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if not rule.fault.matches(path, key) or rule.left == 0:
                    continue
                if rule.skip > 0:
                    rule.skip -= 1
                    continue
                if rule.fault.probability < 1 and self._rng.random() >= rule.fault.probability:
                    continue
                if rule.left is not None:
                    rule.left -= 1
                self.fired.append(rule.fault)
                return rule.fault
        return None
