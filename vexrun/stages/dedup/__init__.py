"""The ``dedup`` stage (see :mod:`.stage`): exact, then embedding-cosine duplicates, within a namespace."""

from .index import CosineIndex, normalise
from .stage import DedupCounts, DedupResult, DedupStage, informativeness, merge
from .store import FactStore, text_hash

__all__ = [
    "CosineIndex",
    "DedupCounts",
    "DedupResult",
    "DedupStage",
    "FactStore",
    "informativeness",
    "merge",
    "normalise",
    "text_hash",
]
