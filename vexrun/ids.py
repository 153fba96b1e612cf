"""Deterministic record ids: the same input always gets the same id, so re-sending a batch is an upsert.

Also the one rule for an id written twice in a run, whatever the target: **the last write wins**, as an
upsert would have it. :class:`IdIndex` is how file targets (which append) apply it across batches: it remembers
every id a run wrote, as a 64-bit hash with the line it went to, in 16 bytes a record; :class:`IdSet` is the
same without the lines (8 bytes a record), for targets that only need to know whether an id came before.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING

import blake3

if TYPE_CHECKING:
    import numpy as np

__all__ = ["DUPLICATES_RULE", "NAMESPACE", "IdIndex", "IdSet", "content_hash", "id_hashes", "record_id", "uuid_for"]

#: How every target treats an id written again in the same run, in the words the run report uses.
DUPLICATES_RULE = "last write wins"

#: The uuid5 namespace of every id vexrun derives.
NAMESPACE = uuid.UUID("6f1d3c52-8a57-5b7e-9c1e-7665787275e0")


def content_hash(text: str | None) -> str:
    """A short, stable digest of a text (16 hex chars of BLAKE3)."""
    return blake3.blake3((text or "").encode("utf-8", "surrogatepass")).hexdigest(8)


def record_id(namespace: str | None, source: str, *parts: str) -> str:
    """``uuid5`` over the namespace, the source identity (e.g. ``claude-export``) and the parts that
    identify the record within it (conversation id, message ids, a content hash)."""
    name = "\x1f".join((namespace or "", source, *parts))
    return str(uuid.uuid5(NAMESPACE, name))


def uuid_for(original_id: str) -> str:
    """A deterministic UUID for an id a store cannot hold as it is (Qdrant wants UUIDs or integers)."""
    return str(uuid.uuid5(NAMESPACE, "id\x1f" + original_id))


def id_hashes(keys: Iterable[bytes]) -> np.ndarray:
    """64-bit hashes (xxh3, as ``vexrun validate`` hashes ids) of encoded ids, stable across processes."""
    import numpy as np
    import xxhash

    return np.fromiter(map(xxhash.xxh3_64_intdigest, keys), dtype=np.uint64)


class IdIndex:
    """The ids a run wrote, each a 64-bit hash mapped to a value (the line of a file it went to).

    Sorted numpy arrays, ``uint64`` hashes and ``int64`` values: 16 bytes a record, no Python object per id.
    They are kept in a few levels, each at least four times larger than the next (a log-structured merge):
    a batch's new hashes become a small level, and levels merge when the rule breaks, so each hash is copied
    about ``log4(n / batch)`` times in all and a batch costs one binary search per level. A merge briefly holds
    the two levels it merges twice. Equal hashes are only candidates: a caller that drops data on a match
    confirms the real ids first.
    """

    #: a level must hold at least this many times the entries of the next one
    RATIO = 4

    def __init__(self) -> None:
        self._levels: list[tuple[np.ndarray, np.ndarray]] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys, _ in self._levels)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds (between merges)."""
        return sum(keys.nbytes + vals.nbytes for keys, vals in self._levels)

    def upsert(self, keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Map each hash of ``keys`` to the value at the same place, in order (the last of a hash repeated
        within ``keys`` wins). Returns ``(replaced, by)``: the values that were replaced, and for each the
        value of a later write of the same hash."""
        import numpy as np

        keys = np.ascontiguousarray(keys, dtype=np.uint64)
        values = np.ascontiguousarray(values, dtype=np.int64)
        replaced: list[np.ndarray] = []
        by: list[np.ndarray] = []
        if len(keys) > 1:
            # sorted, the searches of one batch walk the same paths of each level (far fewer cache misses)
            order = np.argsort(keys, kind="stable")
            keys, values = keys[order], values[order]
            repeats = np.flatnonzero(keys[1:] == keys[:-1])
            if len(repeats):
                # each earlier occurrence is replaced by the next one of the same hash (stable: in write order)
                replaced.append(values[repeats])
                by.append(values[repeats + 1])
                last = np.ones(len(keys), dtype=bool)
                last[repeats] = False
                keys, values = keys[last], values[last]
        for have_keys, have_vals in self._levels:
            if not len(keys):
                break
            pos = np.minimum(np.searchsorted(have_keys, keys), len(have_keys) - 1)
            hit = have_keys[pos] == keys
            if hit.any():
                at = pos[hit]
                replaced.append(have_vals[at].copy())
                by.append(values[hit])
                have_vals[at] = values[hit]
                keys, values = keys[~hit], values[~hit]
        if len(keys):
            self._levels.append((keys.copy(), values.copy()))  # sorted already; copied: never a caller's view
            self._compact()
        if not replaced:
            empty = np.empty(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(replaced), np.concatenate(by)

    def _compact(self) -> None:
        import numpy as np

        levels = self._levels
        while len(levels) > 1 and len(levels[-2][0]) < self.RATIO * len(levels[-1][0]):
            small_keys, small_vals = levels.pop()
            big_keys, big_vals = levels.pop()
            at = np.searchsorted(big_keys, small_keys)
            levels.append((np.insert(big_keys, at, small_keys), np.insert(big_vals, at, small_vals)))


class IdSet:
    """The ids a run wrote, as 64-bit hashes only: sorted ``uint64`` levels merged as :class:`IdIndex`'s are,
    8 bytes a record (a store target that upserts by id needs no more: 8 MB a million records, not 16)."""

    RATIO = IdIndex.RATIO

    def __init__(self) -> None:
        self._levels: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(keys) for keys in self._levels)

    @property
    def nbytes(self) -> int:
        return sum(keys.nbytes for keys in self._levels)

    def add(self, keys: np.ndarray) -> int:
        """Add the hashes of ``keys``; returns how many of them were there before (written earlier, or repeated
        within ``keys``): :meth:`IdIndex.upsert`'s count of replaced values."""
        import numpy as np

        keys = np.asarray(keys, dtype=np.uint64)
        new = np.unique(keys)  # sorted: the searches of one batch walk the same paths of each level
        before = len(keys) - len(new)
        for have in self._levels:
            if not len(new):
                break
            pos = np.minimum(np.searchsorted(have, new), len(have) - 1)
            hit = have[pos] == new
            if hit.any():
                before += int(hit.sum())
                new = new[~hit]
        if len(new):
            self._levels.append(new)  # a new array (np.unique), never a caller's
            self._compact()
        return before

    def contains(self, keys: np.ndarray) -> np.ndarray:
        """Whether each of ``keys`` was added before, as a boolean array (nothing is added)."""
        import numpy as np

        keys = np.asarray(keys, dtype=np.uint64)
        found = np.zeros(len(keys), dtype=bool)
        for have in self._levels:
            if len(have):
                pos = np.minimum(np.searchsorted(have, keys), len(have) - 1)
                found |= have[pos] == keys
        return found

    def _compact(self) -> None:
        import numpy as np

        levels = self._levels
        while len(levels) > 1 and len(levels[-2]) < self.RATIO * len(levels[-1]):
            small = levels.pop()
            big = levels.pop()
            levels.append(np.insert(big, np.searchsorted(big, small), small))
