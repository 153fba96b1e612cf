"""The statistics ``inspect`` reports, gathered per chunk and merged."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = ["Stats", "value_type"]


def value_type(value: object) -> str:
    """The JSON type name of a metadata value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _instant(value: str) -> datetime | None:
    try:
        ts = datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)


@dataclass
class Stats:
    """Counts over the records of a file (or a chunk of it)."""

    records: int = 0
    with_text: int = 0
    with_vector: int = 0
    with_both: int = 0
    text_chars: int = 0
    namespaces: Counter[str | None] = field(default_factory=Counter)
    dims: Counter[int] = field(default_factory=Counter)
    models: Counter[str | None] = field(default_factory=Counter)
    source_stores: Counter[str | None] = field(default_factory=Counter)
    modalities: Counter[str | None] = field(default_factory=Counter)
    versions: Counter[str | None] = field(default_factory=Counter)
    #: metadata key -> Counter of value types (its total is how many records carry the key)
    metadata: dict[str, Counter[str]] = field(default_factory=dict)
    created_min: tuple[datetime, str] | None = None
    created_max: tuple[datetime, str] | None = None

    def add(
        self,
        text: str | None,
        n_values: int | None,
        dims: int | None,
        namespace: str | None,
        model: str | None,
        source_store: str | None,
        modality: str | None,
        version: str | None,
        metadata: dict[str, Any] | None,
        created_at: str | None,
    ) -> None:
        self.records += 1
        has_text = text is not None
        if has_text:
            self.with_text += 1
            self.text_chars += len(text)  # type: ignore[arg-type]
        if n_values is not None:
            self.with_vector += 1
            self.dims[n_values] += 1
            if has_text:
                self.with_both += 1
        elif dims is not None:
            self.dims[dims] += 1
        self.namespaces[namespace] += 1
        self.models[model] += 1
        self.source_stores[source_store] += 1
        self.modalities[modality] += 1
        self.versions[version] += 1
        if metadata:
            meta = self.metadata
            for key, value in metadata.items():
                types = meta.get(key)
                if types is None:
                    types = meta[key] = Counter()
                types[value_type(value)] += 1
        if created_at is not None:
            ts = _instant(created_at)
            if ts is not None:
                if self.created_min is None or ts < self.created_min[0]:
                    self.created_min = (ts, created_at)
                if self.created_max is None or ts > self.created_max[0]:
                    self.created_max = (ts, created_at)

    def merge(self, other: Stats) -> None:
        for name in ("records", "with_text", "with_vector", "with_both", "text_chars"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("namespaces", "dims", "models", "source_stores", "modalities", "versions"):
            getattr(self, name).update(getattr(other, name))
        for key, types in other.metadata.items():
            self.metadata.setdefault(key, Counter()).update(types)
        if other.created_min and (self.created_min is None or other.created_min[0] < self.created_min[0]):
            self.created_min = other.created_min
        if other.created_max and (self.created_max is None or other.created_max[0] > self.created_max[0]):
            self.created_max = other.created_max
