"""Comparing a record with what a store gave back, and the report of the differences.

Two records are equal when their text is identical, their metadata equal after decoding, their namespace the
same (when the reference has one) and their vectors equal within the store's declared precision: bit-exact
float32 stores within 1e-6 relative, stores that normalise (``Capabilities.vectors == "normalized"``) compared
after normalising both sides, within 1e-5. Timestamps and provenance fields are not compared: stores do not all
keep them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from ..connectors.encoding import from_store, store_id
from ..vmig.model import Record

if TYPE_CHECKING:
    from ..connectors.base import Capabilities, Sink
    from ..vmig.batch import Batch

__all__ = ["SHOWN", "Diff", "differs", "read_back"]

#: how many ids of each kind a report names
SHOWN = 10

Item = tuple[Record, "np.ndarray | None"]


def _vectors_differ(want: np.ndarray | None, got: np.ndarray | None, normalized: bool) -> str | None:
    if want is None:
        return None  # the reference has no vector: whatever the store made up for it is not compared
    if got is None:
        return "vector missing"
    a = np.asarray(want, dtype=np.float32)
    b = np.asarray(got, dtype=np.float32)
    if a.shape != b.shape:
        return f"vector has {b.shape[-1]} dims, expected {a.shape[-1]}"
    if a.tobytes() == b.tobytes():
        return None  # bit-exact, as most stores give them back (np.allclose cost 27 µs a record)
    if normalized:
        na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
        if na > 0 and nb > 0:
            a, b = a / na, b / nb
        close = np.abs(a - b) <= 1e-5
    else:
        close = np.abs(a - b) <= 1e-7 + 1e-6 * np.abs(b)
    return None if bool(close.all()) else "vector differs"  # a NaN is never close


def differs(want: Item, got: Item, *, normalized: bool = False) -> str | None:
    """Why ``got`` (read back from a store) is not ``want`` (what was written), or None when it is."""
    w, g = want[0], got[0]
    if (w.text or None) != (g.text or None):
        return "text differs"
    if w.namespace is not None and w.namespace != g.namespace:
        return f"namespace is {g.namespace!r}, expected {w.namespace!r}"
    if (w.metadata or {}) != (g.metadata or {}):
        keys = sorted(set(w.metadata or {}) ^ set(g.metadata or {})) or sorted(
            k for k in (w.metadata or {}) if (w.metadata or {}).get(k) != (g.metadata or {}).get(k)
        )
        return f"metadata differs ({', '.join(map(str, keys[:3]))})"
    return _vectors_differ(want[1], got[1], normalized)


def read_back(sink: Sink, caps: Capabilities | None, ids: Sequence[str], namespace: str | None = None) -> Batch:
    """``sink.fetch`` by vexrun ids, decoded: the store's own ids are derived as the runner derives them
    (:func:`store_id` is idempotent, so a connector that maps ids itself gets the same key), and records come
    back with their original ids and metadata whether or not the connector decoded them."""
    as_is = caps is None or (caps.ids == "any" and caps.max_id_bytes is None)  # store_id would return each id
    return from_store(sink.fetch(list(ids) if as_is else [store_id(i, caps) for i in ids], namespace))


@dataclass
class Diff:
    """What a comparison found, per namespace, with the first ids of each kind."""

    checked: int = 0
    equal: int = 0
    missing: int = 0
    extra: int = 0
    changed: int = 0
    missing_ids: list[str] = field(default_factory=list)
    extra_ids: list[str] = field(default_factory=list)
    changed_ids: list[tuple[str, str]] = field(default_factory=list)
    namespaces: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def _ns(self, namespace: str | None, kind: str, n: int = 1) -> None:
        slot = self.namespaces.setdefault(namespace or "", {})
        slot[kind] = slot.get(kind, 0) + n

    def add_equal(self, namespace: str | None, n: int = 1) -> None:
        self.checked += n
        self.equal += n
        self._ns(namespace, "equal", n)

    def add_missing(self, rid: str, namespace: str | None) -> None:
        self.checked += 1
        self.missing += 1
        self._ns(namespace, "missing")
        if len(self.missing_ids) < SHOWN:
            self.missing_ids.append(rid)

    def add_changed(self, rid: str, reason: str, namespace: str | None) -> None:
        self.checked += 1
        self.changed += 1
        self._ns(namespace, "changed")
        if len(self.changed_ids) < SHOWN:
            self.changed_ids.append((rid, reason))

    def add_extra(self, rid: str, namespace: str | None) -> None:
        self.extra += 1
        self._ns(namespace, "extra")
        if len(self.extra_ids) < SHOWN:
            self.extra_ids.append(rid)

    def check(self, want: Item, got: Item | None, *, normalized: bool) -> None:
        rec = want[0]
        if got is None:
            self.add_missing(rec.id, rec.namespace)
            return
        reason = differs(want, got, normalized=normalized)
        if reason is None:
            self.add_equal(rec.namespace)
        else:
            self.add_changed(rec.id, reason, rec.namespace)

    def to_json(self) -> dict[str, Any]:
        return {
            "checked": self.checked,
            "equal": self.equal,
            "missing": self.missing,
            "extra": self.extra,
            "changed": self.changed,
            "missing_ids": self.missing_ids,
            "extra_ids": self.extra_ids,
            "changed_ids": [{"id": i, "reason": r} for i, r in self.changed_ids],
            "namespaces": self.namespaces,
        }

    def lines(self) -> list[str]:
        """The differences in a few lines, naming namespaces and the first ids."""
        out = []
        for kind, ids in (("missing", self.missing_ids), ("extra", self.extra_ids)):
            n = getattr(self, kind)
            if n:
                per_ns = sorted(self.namespaces.items())
                where = ", ".join(f"{ns or '(none)'}: {c[kind]}" for ns, c in per_ns if c.get(kind))
                more = f" (first {len(ids)})" if n > len(ids) else ""
                out.append(f"{n:,} {kind} [{where}]: {', '.join(map(repr, ids))}{more}")
        if self.changed:
            shown = ", ".join(f"{i!r} ({r})" for i, r in self.changed_ids)
            out.append(f"{self.changed:,} changed: {shown}")
        return out
