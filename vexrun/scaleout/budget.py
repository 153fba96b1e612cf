"""One rate budget for every worker of a distributed run.

A provider key's budget (tokens, requests and output tokens per minute) belongs to the key, not to a process:
four workers on one free-tier key must share its budget, not use four times it. The driver starts one
:class:`GlobalBudget` actor; in each worker, every key's buckets are :class:`LeasedBucket` s that hold no
budget of their own and lease exactly what a request needs from the actor's buckets (the real ones, refilled
there as the provider refills its own). Corrections after an answer (the server's real token counts), refunds
of failed requests and the lowering after a token-limit 429 go to the actor's buckets too, so no worker sits
on budget another could use and the sum of all workers never exceeds the key's rate.

The actor also learns what a request costs (real tokens per estimated one) from every worker's answers, and
until a provider's first answer it lets one request at a time go to it (a probe): the first requests' estimates
are the least accurate, and four workers sending a burst of them at once would overrun the key.

Keys are named by provider label and position (``groq/key1``), never by their secret.
"""

from __future__ import annotations

import time
from typing import Any

from ..providers.llm.budget import NO_RATIOS, Bucket, Ratios, learn_ratios

__all__ = ["GlobalBudget", "LeasedBucket", "install"]


class GlobalBudget:
    """The budget actor: a real token bucket per (key, kind), created at its first lease."""

    #: seconds a probe may stay unanswered before another worker may send one
    PROBE_TIMEOUT = 30.0

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}
        self.leased: dict[str, float] = {}
        self.costs: dict[str, Ratios] = {}
        self.probing: dict[str, float] = {}

    def _bucket(self, name: str, per_minute: int) -> Bucket:
        bucket = self.buckets.get(name)
        if bucket is None:
            bucket = self.buckets[name] = Bucket(per_minute, time.monotonic())
        return bucket

    def lease(self, name: str, per_minute: int, amount: float) -> float:
        """Take ``amount`` if the bucket holds it (returns 0.0), else the seconds until it will."""
        bucket, now = self._bucket(name, per_minute), time.monotonic()
        wait = bucket.wait(amount, now)
        if wait <= 0:
            bucket.take(amount, now)
            self.leased[name] = self.leased.get(name, 0.0) + amount
        return wait

    def learned(self, label: str) -> tuple[str, Ratios | None]:
        """Before a request is estimated: ("costs", ratios) once the provider answered, else ("probe", None) for
        the one caller that may send the first request, ("wait", None) for the others while it is out."""
        costs = self.costs.get(label)
        if costs is not None:
            return "costs", costs
        now = time.monotonic()
        probe = self.probing.get(label)
        if probe is not None and now - probe < self.PROBE_TIMEOUT:
            return "wait", None
        self.probing[label] = now
        return "probe", None

    def learn(self, label: str, raw_in: float, input_tokens: int, output_tokens: int) -> None:
        # an answer without token counts teaches nothing, but the probe is answered all the same
        self.costs[label] = learn_ratios(self.costs.get(label, NO_RATIOS), raw_in, input_tokens, output_tokens)
        self.probing.pop(label, None)

    def take(self, name: str, per_minute: int, amount: float) -> None:
        self._bucket(name, per_minute).take(amount, time.monotonic())
        self.leased[name] = self.leased.get(name, 0.0) + amount

    def give(self, name: str, per_minute: int, amount: float) -> None:
        self._bucket(name, per_minute).give(amount, time.monotonic())
        self.leased[name] = self.leased.get(name, 0.0) - amount
        self.probing.pop(name.rpartition("/key")[0], None)  # a refund: the probe failed, another may go

    def cap_at(self, name: str, per_minute: int, level: float) -> None:
        self._bucket(name, per_minute).cap_at(level, time.monotonic())

    def figures(self) -> dict[str, float]:
        """What each bucket handed out in all (net of refunds and corrections)."""
        return dict(self.leased)


class LeasedBucket(Bucket):
    """A key's bucket in a worker: no budget of its own; what a request needs is leased from the actor."""

    def __init__(self, actor: Any, name: str, per_minute: int, now: float) -> None:
        super().__init__(per_minute, now)
        self.actor, self.name, self.per_minute = actor, name, per_minute
        self.level = 0.0

    def _refill(self, now: float) -> None:
        """Budget comes from the actor only."""

    def wait(self, amount: float, now: float) -> float:
        import ray

        need = min(amount, self.capacity)
        if self.level >= need:
            return 0.0
        wait: float = ray.get(self.actor.lease.remote(self.name, self.per_minute, need - self.level))
        if wait <= 0:
            self.level = need
            return 0.0
        return wait

    def take(self, amount: float, now: float) -> None:
        self.level -= amount
        if self.level < 0:  # a debt (the answer cost more than reserved): the actor's bucket carries it
            self.actor.take.remote(self.name, self.per_minute, -self.level)
            self.level = 0.0
        elif amount < 0:  # a correction downwards: the budget goes back at once
            self.give(0.0, now)

    def give(self, amount: float, now: float) -> None:
        self.level += amount
        if self.level > 0:
            self.actor.give.remote(self.name, self.per_minute, self.level)
            self.level = 0.0

    def cap_at(self, level: float, now: float) -> None:
        self.actor.cap_at.remote(self.name, self.per_minute, level)


class _Costs:
    """What requests cost, as the budget actor learned it (``budget.shared_costs`` in a worker)."""

    def __init__(self, actor: Any) -> None:
        self.actor = actor

    def learned(self, label: str) -> Ratios | None:
        """What requests to ``label`` cost, waiting while another worker's first request is out (the estimate of
        a request is made once, before it waits for budget: it must be made from what the probe taught)."""
        import ray

        while True:
            answer: tuple[str, Ratios | None] = ray.get(self.actor.learned.remote(label))
            if answer[0] != "wait":
                return answer[1]
            time.sleep(0.05)

    def learn(self, label: str, raw_in: float, input_tokens: int, output_tokens: int) -> None:
        # waited for: the actor then holds this answer's correction (sent before it, by the same caller) and its
        # lesson before the next probe or lease is answered
        import ray

        ray.get(self.actor.learn.remote(label, raw_in, input_tokens, output_tokens))


def install(actor: Any) -> None:
    """Make every provider pool built from now on in this process lease its keys' budgets from ``actor``."""
    from ..providers.llm import budget

    def bucket(name: str, per_minute: int, now: float) -> Bucket:
        return LeasedBucket(actor, name, per_minute, now)

    budget.shared_bucket = bucket
    budget.shared_costs = _Costs(actor)
