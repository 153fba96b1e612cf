"""Deterministic record ids: the same input always gets the same id, so re-sending a batch is an upsert."""

from __future__ import annotations

import uuid

import blake3

__all__ = ["NAMESPACE", "content_hash", "record_id", "uuid_for"]

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
