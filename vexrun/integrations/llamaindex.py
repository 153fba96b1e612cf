"""A LlamaIndex vector store over any searchable vexrun target (``pip install 'vexrun[llamaindex]'``).

::

    from llama_index.core import VectorStoreIndex
    from vexrun.integrations.llamaindex import VexrunEmbedding, VexrunVectorStore

    store = VexrunVectorStore.from_store("out/quickstart/memory.db")     # or a recipe .yaml
    index = VectorStoreIndex.from_vector_store(store, embed_model=VexrunEmbedding(store.memory))
    index.as_retriever(similarity_top_k=3).retrieve("when is the half marathon")

- A node is a record: its id the node id, its text the node's content, its vector the node's embedding (made
  here with the store's embedder when the node has none), its metadata LlamaIndex's node dict (the node's own
  metadata at the top level, so filters see it). Records vexrun imported read as ``TextNode``\\ s.
- ``query``: by ``query_embedding`` (or ``query_str`` embedded here); ``mode=HYBRID`` also passes the text (the
  local store fuses BM25 with cosine); similarities are cosines. ``MetadataFilters`` (every operator LlamaIndex's
  own simple store supports, with and/or/not), ``doc_ids`` and ``node_ids`` are applied to an over-fetched list.
- ``delete(ref_doc_id)`` and ``get_nodes(filters=...)`` find their nodes among at most 10,000 records of the
  namespace (a vexrun store is searched, not scanned); ``get_nodes(node_ids)`` and ``delete_nodes(node_ids)`` are
  exact.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..recall import EPISODIC, Hit, Item, Memory

try:
    from llama_index.core.base.embeddings.base import BaseEmbedding
    from llama_index.core.bridge.pydantic import PrivateAttr
    from llama_index.core.schema import BaseNode, MetadataMode, TextNode
    from llama_index.core.vector_stores.types import (
        BasePydanticVectorStore,
        MetadataFilters,
        VectorStoreQuery,
        VectorStoreQueryMode,
        VectorStoreQueryResult,
    )
    from llama_index.core.vector_stores.utils import (
        build_metadata_filter_fn,
        metadata_dict_to_node,
        node_to_metadata_dict,
    )
except ImportError:  # pragma: no cover - the extra is not installed
    raise UsageError(
        "vexrun.integrations.llamaindex needs llama-index-core, which is not installed",
        hint="pip install 'vexrun[llamaindex]'",
    ) from None

__all__ = ["VexrunEmbedding", "VexrunVectorStore"]

#: records a lookup by metadata (``delete(ref_doc_id)``, ``get_nodes(filters=...)``) looks through at most
_SCAN = 10_000
_NODE_CONTENT = "_node_content"


class VexrunEmbedding(BaseEmbedding):
    """A LlamaIndex embedding model that embeds with a vexrun store's embedder (the one its vectors were made
    with), so ``VectorStoreIndex`` queries match the store."""

    _memory: Memory = PrivateAttr()

    def __init__(self, memory: Memory, **kwargs: Any) -> None:
        super().__init__(model_name=memory.embedder.model_id, **kwargs)
        self._memory = memory

    @classmethod
    def class_name(cls) -> str:
        return "VexrunEmbedding"

    def _get_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return self._get_text_embedding(query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return self._get_text_embeddings([text])[0]

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = self._memory.embed(texts).tolist()
        return out


def _node(rec: Hit | Item) -> BaseNode:
    meta = dict(rec.metadata or {})
    if _NODE_CONTENT in meta:
        try:
            node = metadata_dict_to_node(meta, text=rec.text)
            node.embedding = None
            return node
        except Exception:  # noqa: BLE001 - a record that only looks like a node: read it as text
            pass
    return TextNode(id_=rec.id, text=rec.text or "", metadata=meta)


class VexrunVectorStore(BasePydanticVectorStore):
    """LlamaIndex's vector store over a vexrun :class:`~vexrun.recall.Memory`.

    ``memory``: an open :class:`Memory` (kept open: the caller closes it), or the path of a store or recipe
    (opened here, closed by :meth:`close`). ``namespace``: where nodes are added and searched (None: added
    without one, searched across all). ``memory_type``: the ``metadata.memory_type`` of added nodes."""

    stores_text: bool = True
    is_embedding_query: bool = True
    namespace: str | None = None
    memory_type: str = EPISODIC

    _memory: Memory = PrivateAttr()
    _owns: bool = PrivateAttr(default=False)

    def __init__(
        self,
        memory: Memory | str | os.PathLike[str],
        *,
        namespace: str | None = None,
        memory_type: str = EPISODIC,
    ) -> None:
        super().__init__(namespace=namespace, memory_type=memory_type)  # type: ignore[call-arg]  # pydantic fields
        self._owns = not isinstance(memory, Memory)
        self._memory = memory if isinstance(memory, Memory) else Memory.open(memory)

    @classmethod
    def from_store(cls, store: str | os.PathLike[str], **kwargs: Any) -> VexrunVectorStore:
        """Open a local store file or a recipe (``**kwargs``: :meth:`Memory.open`'s ``target``, ``embedder``,
        ``env_file``, and this class's ``namespace``, ``memory_type``)."""
        opening = {k: kwargs.pop(k) for k in ("target", "embedder", "env_file") if k in kwargs}
        memory = Memory.open(store, **opening)
        try:
            out = cls(memory, **kwargs)
        except BaseException:
            memory.close()
            raise
        out._owns = True
        return out

    @classmethod
    def class_name(cls) -> str:
        return "VexrunVectorStore"

    @property
    def memory(self) -> Memory:
        return self._memory

    @property
    def client(self) -> Any:
        return self._memory

    def close(self) -> None:
        """Close the memory if this store opened it."""
        if self._owns:
            self._memory.close()

    # -- writing ---------------------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Store the nodes (upserts by node id); nodes without an embedding are embedded with the store's."""
        nodes = list(nodes)
        if not nodes:
            return []
        texts = [node.get_content(metadata_mode=MetadataMode.NONE) for node in nodes]
        missing = [i for i, node in enumerate(nodes) if node.embedding is None]
        made = self._memory.embed([texts[i] for i in missing]) if missing else None
        vectors: list[Any] = [node.embedding for node in nodes]
        if made is not None:
            for row, i in enumerate(missing):
                vectors[i] = made[row]
        return self._memory.put_many(
            texts,
            ids=[node.node_id for node in nodes],
            namespace=self.namespace,
            metadatas=[node_to_metadata_dict(node, remove_text=True, flat_metadata=False) for node in nodes],
            memory_type=self.memory_type,
            vectors=np.asarray(vectors, dtype=np.float32),
        )

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete the nodes of a document (found among at most 10,000 records of the namespace)."""
        ids = [h.id for h in self._scan(lambda h: (h.metadata or {}).get("ref_doc_id") == ref_doc_id)]
        if ids:
            self._memory.delete(ids, self.namespace)

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None, **delete_kwargs: Any
    ) -> None:
        if node_ids is None and filters is None:
            raise UsageError("delete_nodes needs node_ids or filters (clearing a whole store is not offered here)")
        if filters is None:
            self._memory.delete(list(node_ids or []), self.namespace)
            return
        wanted = set(node_ids) if node_ids is not None else None
        accept = _accept(filters, wanted, None)
        ids = [h.id for h in self._scan(accept)]
        if ids:
            self._memory.delete(ids, self.namespace)

    # -- reading ---------------------------------------------------------------------------------------

    def get_nodes(self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None) -> list[BaseNode]:
        if node_ids is not None and filters is None:
            return [_node(item) for item in self._memory.get(node_ids, self.namespace)]
        if node_ids is None and filters is None:
            raise UsageError("get_nodes needs node_ids or filters")
        return [_node(h) for h in self._scan(_accept(filters, set(node_ids) if node_ids else None, None))]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        k = query.hybrid_top_k if query.mode == VectorStoreQueryMode.HYBRID and query.hybrid_top_k else None
        k = k or query.similarity_top_k
        if query.query_embedding is not None:
            vector = np.asarray(query.query_embedding, dtype=np.float32)
        elif query.query_str:
            vector = self._memory.embed([query.query_str])[0]
        else:
            raise UsageError("a query needs query_embedding or query_str")
        text = (
            query.query_str if query.mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.TEXT_SEARCH) else None
        )
        accept = _accept(query.filters, query.node_ids, query.doc_ids)
        hits = self._memory.search(text, vector=vector, k=k, namespace=self.namespace, filter=accept)
        return VectorStoreQueryResult(
            nodes=[_node(h) for h in hits],
            similarities=[h.cosine if h.cosine is not None else h.score for h in hits],
            ids=[h.id for h in hits],
        )

    def _scan(self, accept: Callable[[Hit], bool] | None) -> list[Hit]:
        """Records of the namespace that ``accept`` takes, from at most ``_SCAN`` candidates."""
        total = self._memory.count(self.namespace)
        if not total:
            return []
        neutral = self._memory.embed(["memory"])[0]
        return self._memory.search(vector=neutral, k=min(total, _SCAN), namespace=self.namespace, filter=accept)


def _accept(
    filters: MetadataFilters | None, node_ids: Sequence[str] | set[str] | None, doc_ids: Sequence[str] | None
) -> Callable[[Hit], bool] | None:
    """A hit test from LlamaIndex's filters (its own filter function over the record's metadata) and id lists (an
    empty list restricts nothing, as in LlamaIndex's own stores: an index made from a vector store passes one)."""
    node_ids, doc_ids = node_ids or None, doc_ids or None
    if filters is None and node_ids is None and doc_ids is None:
        return None
    current: dict[str, Any] = {}
    matches = build_metadata_filter_fn(lambda _id: current, filters) if filters is not None else None
    node_set = set(node_ids) if node_ids is not None else None
    doc_set = set(doc_ids) if doc_ids is not None else None

    def accept(hit: Hit) -> bool:
        meta = hit.metadata or {}
        if node_set is not None and hit.id not in node_set:
            return False
        if doc_set is not None and meta.get("ref_doc_id") not in doc_set:
            return False
        if matches is None:
            return True
        current.clear()
        current.update(meta)
        return bool(matches(hit.id))

    return accept
