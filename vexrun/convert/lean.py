"""The part of a ``.vmig.jsonl`` line a conversion reads, decoded without the rest.

:data:`decode` turns a line into a :class:`LeanRecord`: its ``id``, ``text`` and the ``metadata`` keys the formats
read (``conversation_id``, ``roles``, ``role``, ``parts``, ``potential``). Every other field, the vector first, is
skipped by msgspec without being built, which is most of the cost of decoding a line with ``orjson``.

The struct's types are those of a well-formed record. A line they do not fit (not JSON, an id that is no string,
a conversation id that is a number, roles that are not strings) raises ``ValueError``, and the caller decodes that
line with ``orjson`` as before: a line that fits means exactly what its ``orjson`` decoding means to the formats,
and one that does not is read the old way. (The one difference: a line whose *unread* fields hold invalid UTF-8 or
a number out of a double's range, which ``orjson`` refuses as a whole, is converted from the fields it has.)
"""

from __future__ import annotations

from typing import Any

import msgspec

__all__ = ["LeanMeta", "LeanRecord", "decode"]


class LeanMeta(msgspec.Struct):
    """The metadata keys the formats read. A key that is missing and one that is null read alike (the formats
    only ever ask ``metadata.get(key)``)."""

    conversation_id: str | None = None
    roles: list[str] | None = None
    role: str | None = None
    parts: int | None = None
    potential: list[str] | None = None


class LeanRecord(msgspec.Struct):
    id: str
    text: str | None = None
    metadata: LeanMeta | None = None

    def as_dict(self) -> dict[str, Any]:
        """The record as the formats read the dict ``orjson.loads`` gives for its line."""
        m = self.metadata
        meta = (
            None
            if m is None
            else {
                "conversation_id": m.conversation_id,
                "roles": m.roles,
                "role": m.role,
                "parts": m.parts,
                "potential": m.potential,
            }
        )
        return {"id": self.id, "text": self.text, "metadata": meta}


#: ``decode(line) -> LeanRecord``; raises ``ValueError`` (msgspec's errors, ``UnicodeDecodeError``) for a line that
#: does not fit
decode = msgspec.json.Decoder(LeanRecord).decode
