"""A LangChain ``VectorStore`` over any searchable vexrun target (``pip install 'vexrun[langchain]'``).

::

    from vexrun.integrations.langchain import VexrunVectorStore

    store = VexrunVectorStore.from_store("out/quickstart/memory.db")     # or a recipe .yaml
    retriever = store.as_retriever(search_kwargs={"k": 3, "filter": {"type": "fact"}})
    retriever.invoke("when is the half marathon")

- Texts and queries are embedded with the store's own embedder (see :class:`vexrun.recall.Memory`), offered
  to LangChain as :class:`VexrunEmbeddings`. ``from_texts`` with any other LangChain ``Embeddings`` and a new
  ``store=`` path creates a local store embedded by them.
- A search is the store's search (on the local store: BM25 fused with cosine); the score returned with each
  document is the cosine similarity to the query (higher is closer), where the store reports it.
- ``filter``: exact matches on metadata keys (or a callable on a :class:`~vexrun.connectors.base.Hit`).
- A document's ``id`` is the record id; its metadata is the record's (``memory_type`` included).
- Needs no ``langchain`` / ``langchain-classic``: only ``langchain-core``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import UsageError
from ..providers.base import Embedder
from ..recall import EPISODIC, Hit, Item, Memory

try:
    from langchain_core.documents import Document
    from langchain_core.embeddings import Embeddings
    from langchain_core.vectorstores import VectorStore
except ImportError:  # pragma: no cover - the extra is not installed
    raise UsageError(
        "vexrun.integrations.langchain needs langchain-core, which is not installed",
        hint="pip install 'vexrun[langchain]'",
    ) from None

__all__ = ["LangChainEmbedder", "VexrunEmbeddings", "VexrunVectorStore"]

Filter = Mapping[str, Any] | Callable[[Hit], bool] | None


class VexrunEmbeddings(Embeddings):
    """LangChain ``Embeddings`` that embed with a vexrun store's embedder (the one its vectors were made with)."""

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        out: list[list[float]] = self.memory.embed(texts).tolist()
        return out

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class LangChainEmbedder(Embedder):
    """A LangChain ``Embeddings`` as a vexrun embedder (to fill a new store with LangChain's embeddings)."""

    name = "langchain"

    def __init__(self, embeddings: Embeddings, model: str | None = None) -> None:
        super().__init__(None)
        self.embeddings = embeddings
        self._model = model or f"langchain:{type(embeddings).__name__}"

    @property
    def model_id(self) -> str:
        return self._model

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.asarray(self.embeddings.embed_documents(list(texts)), dtype=np.float32)


def _document(rec: Hit | Item) -> Document:
    return Document(id=rec.id, page_content=rec.text or "", metadata=dict(rec.metadata or {}))


class VexrunVectorStore(VectorStore):
    """LangChain's ``VectorStore`` over a vexrun :class:`~vexrun.recall.Memory`.

    ``memory``: an open :class:`Memory` (kept open: the caller closes it), or the path of a store or recipe
    (opened here, closed by :meth:`close`). ``namespace``: where texts are added and searched (None: added
    without one, searched across all). ``memory_type``: the ``metadata.memory_type`` of added texts."""

    def __init__(
        self,
        memory: Memory | str | os.PathLike[str],
        *,
        namespace: str | None = None,
        memory_type: str = EPISODIC,
    ) -> None:
        self._owns = not isinstance(memory, Memory)
        self.memory = memory if isinstance(memory, Memory) else Memory.open(memory)
        self.namespace = namespace
        self.memory_type = memory_type

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
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        store: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> VexrunVectorStore:
        """Add ``texts`` to a store: the store of a :class:`VexrunEmbeddings`, or the local store file ``store``
        (created when missing, embedded by ``embedding``)."""
        if isinstance(embedding, VexrunEmbeddings) and store is None:
            vs = cls(embedding.memory, **kwargs)
        elif store is not None:
            embedder: Any = embedding.memory.embedder if isinstance(embedding, VexrunEmbeddings) else None
            vs = cls.from_store(store, embedder=embedder or LangChainEmbedder(embedding), **kwargs)
        else:
            raise UsageError("from_texts needs store= (a local store file) or a VexrunEmbeddings of an open store")
        vs.add_texts(texts, metadatas, ids=ids)
        return vs

    def close(self) -> None:
        """Close the memory if this store opened it."""
        if self._owns:
            self.memory.close()

    def __enter__(self) -> VexrunVectorStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def embeddings(self) -> Embeddings:
        return VexrunEmbeddings(self.memory)

    # -- writing ---------------------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[Any, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store the texts; ids are derived from namespace and text where none is given (so adding
        the same text twice stores it once)."""
        items = list(texts)
        ids_: list[str | None] | None = list(ids) if ids else None
        return self.memory.put_many(
            items,
            ids=ids_,
            namespace=kwargs.get("namespace", self.namespace),
            metadatas=metadatas,
            memory_type=kwargs.get("memory_type", self.memory_type),
        )

    def delete(self, ids: list[str] | None = None, **kwargs: Any) -> bool | None:
        if ids is None:
            raise UsageError("delete needs the ids to delete (deleting a whole store is not offered here)")
        self.memory.delete(ids, kwargs.get("namespace", self.namespace))
        return True

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        return [_document(item) for item in self.memory.get(list(ids), self.namespace)]

    # -- searching -------------------------------------------------------------------------------------

    def similarity_search(self, query: str, k: int = 4, **kwargs: Any) -> list[Document]:
        return [doc for doc, _ in self.similarity_search_with_score(query, k, **kwargs)]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents with the cosine similarity to ``query`` (the store's rank score where it gives no cosine)."""
        hits = self.memory.search(query, k=k, namespace=kwargs.get("namespace", self.namespace), filter=filter)
        return [(_document(h), h.cosine if h.cosine is not None else h.score) for h in hits]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        vector = np.asarray(embedding, dtype=np.float32)
        hits = self.memory.search(vector=vector, k=k, namespace=kwargs.get("namespace", self.namespace), filter=filter)
        return [_document(h) for h in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Cosine similarity in [-1, 1] → relevance in [0, 1]."""
        return lambda score: max(0.0, min(1.0, (1.0 + score) / 2.0))
