"""A LangGraph long-term memory store over any searchable vexrun target (``pip install 'vexrun[langgraph]'``).

::

    from langgraph.graph import StateGraph
    from vexrun.integrations.langgraph import VexrunStore

    store = VexrunStore.from_store("out/quickstart/memory.db")        # or a recipe .yaml
    graph = builder.compile(store=store)                              # nodes get it as ``runtime.store``
    store.search(("claude",), query="half marathon", limit=3)

How LangGraph items map to vexrun records (see :class:`vexrun.recall.Memory`, which does the storing):

- **namespace**: the tuple's labels joined with ``/``, each label with ``%`` and ``/`` percent-escaped
  (``("users", "a/b")`` ↔ ``"users/a%2Fb"``); so a store's own namespaces (``claude``) read as ``("claude",)``.
- **key**: the record id is ``record_id(namespace, "langgraph", key)`` (unique across namespaces, as LangGraph
  keys need not be); the key itself is kept in ``metadata["langgraph_key"]``. A record vexrun imported (no key
  kept) reads with its id as the key, and ``get``/``delete`` by that id work too.
- **value**: kept whole in ``metadata["langgraph_value"]``, with ``metadata["langgraph_updated_at"]``; the
  record's text (what is embedded and searched) is ``value["text"]`` when it is a string, else the fields a
  put's ``index`` (or the store's ``text_fields``) names, else the value as JSON. A record vexrun imported
  reads as ``{"text": ..., "metadata": {...}}``.
- **search**: ``query`` → an embedded search (hybrid with BM25 on the local store), ``score`` the cosine when
  the store gives one; ``filter`` on value keys (exact, or ``$eq $ne $gt $gte $lt $lte``), applied to an
  over-fetched list; ``limit``/``offset``. Without a query, the newest items first, from at most
  10,000 candidates of the namespace. ``index=False`` still embeds the item (every record carries a vector).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..errors import UsageError
from ..ids import record_id
from ..recall import EPISODIC, Hit, Item, Memory

try:
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        ListNamespacesOp,
        MatchCondition,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
    )
    from langgraph.store.base import Item as GraphItem
    from langgraph.store.base.embed import get_text_at_path
except ImportError:  # pragma: no cover - the extra is not installed
    raise UsageError(
        "vexrun.integrations.langgraph needs LangGraph, which is not installed", hint="pip install 'vexrun[langgraph]'"
    ) from None

__all__ = ["KEY", "SOURCE", "UPDATED", "VALUE", "VexrunStore", "from_namespace", "to_namespace"]

#: metadata keys of a record written through the store
KEY = "langgraph_key"
VALUE = "langgraph_value"
UPDATED = "langgraph_updated_at"
#: the source name in the ids of items
SOURCE = "langgraph"
#: candidates of one no-query search (it returns the newest of them)
_LIST_DEPTH = 10_000
_FILTER_OPS = ("$eq", "$ne", "$gt", "$gte", "$lt", "$lte")
_ESCAPE = re.compile("%(25|2F)")


def to_namespace(labels: Sequence[str]) -> str | None:
    """A LangGraph namespace tuple as a vexrun namespace (``()`` → None: every namespace)."""
    if not labels:
        return None
    return "/".join(str(label).replace("%", "%25").replace("/", "%2F") for label in labels)


def from_namespace(namespace: str | None) -> tuple[str, ...]:
    """A vexrun namespace as a LangGraph namespace tuple (the inverse of :func:`to_namespace`)."""
    if not namespace:
        return ()
    return tuple(_ESCAPE.sub(lambda m: "/" if m.group(1) == "2F" else "%", label) for label in namespace.split("/"))


def _stamp(value: str | None) -> datetime:
    if not value:
        return datetime.fromtimestamp(0, UTC)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return datetime.fromtimestamp(0, UTC)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _compare(have: Any, want: Any) -> bool:
    """LangGraph's filter semantics: equality (nested dicts key by key), or operators ``{"$gt": 3}``."""
    if isinstance(want, Mapping):
        if any(str(k).startswith("$") for k in want):
            return all(_apply(have, str(op), arg) for op, arg in want.items())
        return isinstance(have, Mapping) and all(_compare(have.get(k), v) for k, v in want.items())
    if isinstance(want, list | tuple):
        return (
            isinstance(have, list | tuple)
            and len(have) == len(want)
            and all(_compare(h, w) for h, w in zip(have, want, strict=True))
        )
    return bool(have == want)


def _apply(have: Any, op: str, arg: Any) -> bool:
    if op not in _FILTER_OPS:
        raise UsageError(f"unsupported filter operator {op!r} (supported: {', '.join(_FILTER_OPS)})")
    if op == "$eq":
        return bool(have == arg)
    if op == "$ne":
        return bool(have != arg)
    try:
        a, b = float(have), float(arg)
    except (TypeError, ValueError):
        return False
    return {"$gt": a > b, "$gte": a >= b, "$lt": a < b, "$lte": a <= b}[op]


class VexrunStore(BaseStore):
    """LangGraph's ``BaseStore`` over a vexrun :class:`~vexrun.recall.Memory` (a local store or a recipe's target).

    ``memory``: an open :class:`Memory` (kept open: the caller closes it), or the path of a store or recipe
    (opened here, closed by :meth:`close`). ``memory_type``: the ``metadata.memory_type`` of what is put
    (``"episodic"``, or ``"semantic"`` for facts). ``text_fields``: the value fields whose text is embedded when
    a value has no ``"text"`` string (dotted paths, as LangGraph's ``index`` fields)."""

    supports_ttl = False

    def __init__(
        self,
        memory: Memory | str | os.PathLike[str],
        *,
        memory_type: str = EPISODIC,
        text_fields: Sequence[str] | None = None,
    ) -> None:
        self._owns = not isinstance(memory, Memory)
        self.memory = memory if isinstance(memory, Memory) else Memory.open(memory)
        self.memory_type = memory_type
        self.text_fields = list(text_fields) if text_fields else None

    @classmethod
    def from_store(cls, store: str | os.PathLike[str], **kwargs: Any) -> VexrunStore:
        """Open a local store file or a recipe (``**kwargs``: :meth:`Memory.open`'s ``target``, ``embedder``,
        ``env_file``, and this class's ``memory_type``, ``text_fields``)."""
        opening = {k: kwargs.pop(k) for k in ("target", "embedder", "env_file") if k in kwargs}
        memory = Memory.open(store, **opening)
        try:
            out = cls(memory, **kwargs)
        except BaseException:
            memory.close()
            raise
        out._owns = True
        return out

    def close(self) -> None:
        """Close the memory if this store opened it."""
        if self._owns:
            self.memory.close()

    def __enter__(self) -> VexrunStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- the two entry points LangGraph calls ----------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        """Run the operations: reads see the store as it was before the batch, then the puts are applied (the
        last put of a namespace and key wins), as LangGraph's own stores do."""
        ops = list(ops)
        results: list[Result] = []
        puts: dict[tuple[tuple[str, ...], str], PutOp] = {}
        for op in ops:
            if isinstance(op, GetOp):
                results.append(self._get(op))
            elif isinstance(op, SearchOp):
                results.append(self._search(op))
            elif isinstance(op, ListNamespacesOp):
                results.append(self._list_namespaces(op))
            elif isinstance(op, PutOp):
                puts.pop((tuple(op.namespace), op.key), None)
                puts[(tuple(op.namespace), op.key)] = op
                results.append(None)
            else:
                raise UsageError(f"unknown LangGraph store operation {type(op).__name__}")
        if puts:
            self._apply(list(puts.values()))
        return results

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        """:meth:`batch` in a worker thread (the store's calls block)."""
        return await asyncio.get_running_loop().run_in_executor(None, self.batch, list(ops))

    # -- operations ------------------------------------------------------------------------------------

    def _ids(self, namespace: str | None, key: str) -> list[str]:
        """The record id of an item, then the key itself (a record vexrun imported has its id as the key)."""
        rid = record_id(namespace, SOURCE, key)
        return [rid] if rid == key else [rid, key]

    def _get(self, op: GetOp) -> GraphItem | None:
        namespace = to_namespace(op.namespace)
        found = self.memory.get(self._ids(namespace, op.key), namespace)
        # the derived id first: an item put through the store wins over a record whose id equals the key
        found.sort(key=lambda item: (item.metadata or {}).get(KEY) != op.key)
        if not found:
            return None
        got = self._item(found[0])
        return GraphItem(
            value=got.value,
            key=got.key,
            namespace=got.namespace,
            created_at=got.created_at,
            updated_at=got.updated_at,
        )

    def _item(self, rec: Item | Hit, score: float | None = None) -> SearchItem:
        meta = dict(rec.metadata or {})
        if KEY in meta and isinstance(meta.get(VALUE), dict):
            key, value = str(meta[KEY]), dict(meta[VALUE])
            updated = meta.get(UPDATED) or rec.created_at
        else:
            key, value, updated = rec.id, {"text": rec.text, "metadata": meta}, rec.created_at
        return SearchItem(
            namespace=from_namespace(rec.namespace),
            key=key,
            value=value,
            created_at=_stamp(rec.created_at),
            updated_at=_stamp(updated if isinstance(updated, str) else None),
            score=score,
        )

    def _value(self, hit: Hit) -> Mapping[str, Any]:
        meta = hit.metadata or {}
        value = meta.get(VALUE)
        return value if KEY in meta and isinstance(value, dict) else {"text": hit.text, "metadata": dict(meta)}

    def _search(self, op: SearchOp) -> list[SearchItem]:
        if op.limit < 0 or op.offset < 0:
            raise UsageError("search limit and offset must not be negative")
        want = op.offset + op.limit
        if want == 0:
            return []
        prefix = tuple(op.namespace_prefix)
        where = dict(op.filter or {})
        namespace: str | None = None
        if prefix:
            under = [ns for ns in self.memory.namespaces() if from_namespace(ns)[: len(prefix)] == prefix]
            if not under:
                return []
            if len(under) == 1:
                namespace = under[0]

        def accept(hit: Hit) -> bool:
            if prefix and namespace is None and from_namespace(hit.namespace)[: len(prefix)] != prefix:
                return False
            value = self._value(hit)
            return all(_compare(value.get(k), v) for k, v in where.items())

        needs_test = bool(where) or (bool(prefix) and namespace is None)
        if op.query:
            hits = self.memory.search(op.query, k=want, namespace=namespace, filter=accept if needs_test else None)
            items = [self._item(h, h.cosine if h.cosine is not None else h.score) for h in hits]
            return items[op.offset : op.offset + op.limit]
        # no query: the newest items, from the candidates a search around a neutral vector finds
        total = self.memory.count(namespace)
        if not total:
            return []
        neutral = self.memory.embed(["memory"])[0]
        hits = self.memory.search(
            vector=neutral, k=min(total, _LIST_DEPTH), namespace=namespace, filter=accept if needs_test else None
        )
        items = sorted((self._item(h) for h in hits), key=lambda i: (i.updated_at, i.key), reverse=True)
        return items[op.offset : op.offset + op.limit]

    def _list_namespaces(self, op: ListNamespacesOp) -> list[tuple[str, ...]]:
        spaces = [from_namespace(ns) for ns in self.memory.namespaces()]
        if op.match_conditions:
            spaces = [ns for ns in spaces if all(_matches(cond, ns) for cond in op.match_conditions)]
        if op.max_depth is not None:
            spaces = sorted({ns[: op.max_depth] for ns in spaces})
        else:
            spaces = sorted(set(spaces))
        return spaces[op.offset : op.offset + op.limit]

    def _text(self, value: Mapping[str, Any], index: Sequence[str] | None) -> str:
        text = value.get("text")
        fields = index if index else self.text_fields
        if fields:
            parts = [t for path in fields for t in get_text_at_path(dict(value), path) if t]
            if parts:
                return "\n".join(parts)
        if isinstance(text, str) and text.strip():
            return text
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)

    def _apply(self, puts: list[PutOp]) -> None:
        by_space: dict[str | None, list[PutOp]] = {}
        for op in puts:
            if not op.namespace:
                raise UsageError("a LangGraph namespace cannot be empty")
            if any(not isinstance(label, str) or not label for label in op.namespace):
                raise UsageError(f"namespace labels must be non-empty strings: {op.namespace!r}")
            by_space.setdefault(to_namespace(op.namespace), []).append(op)
        stamp = _now()
        for namespace, ops in by_space.items():
            gone = [rid for op in ops if op.value is None for rid in self._ids(namespace, op.key)]
            if gone:
                self.memory.delete(gone, namespace)
            kept = [op for op in ops if op.value is not None]
            if not kept:
                continue
            for op in kept:
                assert op.value is not None
                if not isinstance(op.value, Mapping):
                    raise UsageError(f"a LangGraph value is a dict, not {type(op.value).__name__} (key {op.key!r})")
            self.memory.put_many(
                [self._text(op.value or {}, op.index or None) for op in kept],
                ids=[record_id(namespace, SOURCE, op.key) for op in kept],
                namespace=namespace,
                metadatas=[{KEY: op.key, VALUE: dict(op.value or {}), UPDATED: stamp} for op in kept],
                memory_type=self.memory_type,
            )


def _matches(cond: MatchCondition, ns: tuple[str, ...]) -> bool:
    path = tuple(cond.path)
    if len(ns) < len(path):
        return False
    pairs = (
        zip(ns, path, strict=False) if cond.match_type == "prefix" else zip(reversed(ns), reversed(path), strict=False)
    )
    return all(p == "*" or k == p for k, p in pairs)
