"""Records of a ``.vmig.jsonl`` file → dialogues (alternating user / assistant turns) for the chat formats.

Conversation exports become records in several chunk modes (docs/import-contract.md). A multi-turn record
(``exchange``, ``conversation``, ``window``, ``smart``) holds its turns as ``"<label>: <text>"`` joined by blank
lines, with ``metadata.roles`` naming each turn's role in order: it is split back into turns, one dialogue per
record, in turn order. ``turn`` records (one message each) are paired: a user turn with the assistant turn that
follows it in the same conversation. What cannot become a dialogue is returned as a :class:`Drop` with a reason,
never guessed at: a record the ``chunk`` stage split into parts (their texts overlap), a record that is not a
conversation turn (a plain memory, a fact), an assistant turn with no user turn before it, a user turn with no
answer, text whose turns do not match its ``roles``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ["EXCHANGE_ROLES", "Dialogue", "Drop", "DialogueAssembler", "Turn", "split_turns"]

LABELS = {"user": "User", "assistant": "Assistant"}
#: ``metadata.roles`` of an exchange record: a user turn and its answer
EXCHANGE_ROLES = ["user", "assistant"]


class Turn(NamedTuple):
    role: str  # "user" or "assistant"
    text: str


@dataclass(slots=True)
class Dialogue:
    """Turns in order, starting with a user turn and ending with an assistant turn, never two of one role in a
    row. ``key`` (the conversation id, else the record id) decides the train/validation split."""

    key: str
    turns: list[Turn]


@dataclass(frozen=True)
class Drop:
    reason: str
    record_id: str | None = None


def split_turns(text: str, roles: list[str], labels: dict[str, str] | None = None) -> list[Turn] | None:
    """The turns of a multi-turn record's text, or None when the text does not read as ``roles`` labelled turns
    separated by blank lines."""
    labels = labels or LABELS
    if len(roles) == 2 and roles[0] == "user" and roles[1] == "assistant":  # the common case, an exchange
        u, a = f"{labels['user']}: ", f"\n\n{labels['assistant']}: "
        end = text.find(a, len(u))
        if not text.startswith(u) or end < 0:
            return None
        return [Turn("user", text[len(u) : end]), Turn("assistant", text[end + len(a) :])]
    out: list[Turn] = []
    pos = 0
    for k, role in enumerate(roles):
        label = labels.get(role)
        if label is None:
            return None
        prefix = f"{label}: "
        if not text.startswith(prefix, pos):
            return None
        start = pos + len(prefix)
        if k + 1 < len(roles):
            nxt = labels.get(roles[k + 1])
            if nxt is None:
                return None
            end = text.find(f"\n\n{nxt}: ", start)
            if end < 0:
                return None
            out.append(Turn(role, text[start:end]))
            pos = end + 2
        else:
            out.append(Turn(role, text[start:]))
    return out


def _shape(turns: list[Turn]) -> tuple[list[Turn], int]:
    """Trim to start with a user turn and end with an assistant turn; merge consecutive turns of one role
    (joined by a blank line, as the importer joins blocks). Returns the turns and how many were merged."""
    if len(turns) == 2 and turns[0].role == "user" and turns[1].role == "assistant":
        return turns, 0
    while turns and turns[0].role != "user":
        turns = turns[1:]
    while turns and turns[-1].role != "assistant":
        turns = turns[:-1]
    merged = 0
    out: list[Turn] = []
    for t in turns:
        if out and out[-1].role == t.role:
            out[-1] = Turn(t.role, f"{out[-1].text}\n\n{t.text}")
            merged += 1
        else:
            out.append(t)
    return out, merged


class DialogueAssembler:
    """Feed records (decoded JSON objects) in file order; get dialogues and drops. Holds at most one pending user
    turn: memory does not grow with the file."""

    def __init__(self, labels: dict[str, str] | None = None) -> None:
        self.labels = labels or LABELS
        self._u, self._a = f"{self.labels['user']}: ", f"\n\n{self.labels['assistant']}: "
        self._lu, self._la = len(self._u), len(self._a)
        self._pending: tuple[str, Turn, str] | None = None  # (conversation id, user turn, record id)
        self.merged = 0

    def feed(self, rec: dict[str, Any]) -> list[Dialogue | Drop]:
        """What ``rec`` completes: usually one dialogue or one drop; a pending user turn ends with a drop when
        its conversation does; nothing while a user turn waits for its answer."""
        d = self.exchange(rec)
        return [d] if d is not None else self._feed(rec, rec.get("metadata"))

    def exchange(self, rec: dict[str, Any]) -> Dialogue | None:
        """The hot path of a file of exchanges: the dialogue of a record holding a user turn and its answer
        (both with text) when no turn is pending, else None (then :meth:`feed` decides)."""
        meta = rec.get("metadata")
        if meta.__class__ is dict and meta.get("roles") == EXCHANGE_ROLES and not meta.get("parts"):
            text = rec.get("text")
            pair = self.exchange_turns(text) if text.__class__ is str else None
            if pair is not None:
                conv = meta.get("conversation_id")
                key = str(rec.get("id", "")) if conv is None else str(conv)
                return Dialogue(key, [Turn("user", pair[0]), Turn("assistant", pair[1])])
        return None

    def exchange_turns(self, text: str) -> tuple[str, str] | None:
        """The user turn and its answer in the text of an exchange record (``metadata.roles`` is ``[user,
        assistant]``, no ``parts``) when no turn is pending and both have text, else None (then :meth:`feed`
        decides). What :meth:`exchange` does, for callers that hold the record's fields rather than a dict."""
        if self._pending is None and text.startswith(self._u):
            end = text.find(self._a, self._lu)
            if end >= 0:
                user, answer = text[self._lu : end], text[end + self._la :]
                if user and answer and not user.isspace() and not answer.isspace():
                    return user, answer
        return None

    def _feed(self, rec: dict[str, Any], meta: Any) -> list[Dialogue | Drop]:
        if meta.__class__ is not dict:
            meta = {}
        text = rec.get("text")
        roles = meta.get("roles")
        conv = meta.get("conversation_id")
        out: list[Dialogue | Drop] = []
        if roles.__class__ is not list or not roles or text.__class__ is not str or not text or text.isspace():
            self._flush_other(conv, out)
            out.append(Drop("not_a_conversation_turn", str(rec.get("id", ""))))
            return out
        rid = str(rec.get("id", ""))
        if meta.get("parts"):
            self._flush_other(conv, out)
            out.append(Drop("split_by_chunk_stage", rid))
            return out
        key = rid if conv is None else str(conv)
        if len(roles) == 1 and meta.get("role") in ("user", "assistant"):
            self._turn(key, Turn(str(roles[0]), text), rid, out)
            return out
        if self._pending is not None:
            self._flush_other(conv, out)
        turns = split_turns(text, [str(r) for r in roles], self.labels)
        if turns is None:
            out.append(Drop("turns_do_not_match_roles", rid))
            return out
        shaped, merged = _shape(turns)
        if not shaped:
            out.append(Drop("no_user_turn_with_answer", rid))
            return out
        self.merged += merged
        out.append(Dialogue(key, shaped))
        return out

    def _turn(self, key: str, turn: Turn, rid: str, out: list[Dialogue | Drop]) -> None:
        pending = self._pending
        if pending is not None and pending[0] != key:
            out.append(Drop("user_turn_without_answer", pending[2]))
            pending = self._pending = None
        if turn.role == "user":
            if pending is not None:
                out.append(Drop("user_turn_without_answer", pending[2]))
            self._pending = (key, turn, rid)
            return
        if pending is None:
            out.append(Drop("assistant_turn_without_user_turn", rid))
            return
        self._pending = None
        out.append(Dialogue(key, [pending[1], turn]))

    def _flush_other(self, conv: Any, out: list[Dialogue | Drop]) -> None:
        if self._pending is not None and (conv is None or str(conv) != self._pending[0]):
            out.append(Drop("user_turn_without_answer", self._pending[2]))
            self._pending = None

    def close(self) -> list[Dialogue | Drop]:
        out: list[Dialogue | Drop] = []
        if self._pending is not None:
            out.append(Drop("user_turn_without_answer", self._pending[2]))
            self._pending = None
        return out
