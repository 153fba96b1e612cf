"""``.vmig.jsonl`` files as a source and as a resumable sink.

The sink appends to a partial file beside the target (``.<name>.partial``); the checkpoint stores its
committed length with every batch, so a resumed run truncates away whatever a killed run wrote after its
last commit, and the finished file is renamed into place (with its sidecar) only when the run completes.
Edges, when a run produces them, go to ``<file>.edges.jsonl`` the same way.
"""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field

from ...appendfile import AppendFile
from ...errors import UsageError
from ...vmig.batch import Batch
from ...vmig.reader import read_batches
from ...vmig.sidecar import write_meta
from ...vmig.writer import encode_record
from ..base import Cursor, Edge, PluginConfig, RunContext, Sink, Source, WriteResult

__all__ = ["VmigSink", "VmigSinkConfig", "VmigSource", "VmigSourceConfig", "edges_path"]


class VmigSourceConfig(PluginConfig):
    """``type: vmig`` — read a ``.vmig.jsonl`` or ``.vmig.jsonl.gz`` file."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The file, relative to the recipe.")
    namespace: str | None = Field(default=None, description="Set this namespace on records that have none.")
    read_workers: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="Worker processes that parse the file while the run writes (default: 2 for a file of 48 MB "
        "or more on a machine with 2 cores or more, else 0: parse in the run's own process).",
    )


class VmigSinkConfig(PluginConfig):
    """``type: vmig`` — write a ``.vmig.jsonl`` file (``.gz`` compresses) with its sidecar."""

    type: Literal["vmig"] = "vmig"
    path: str = Field(min_length=1, description="The output file, relative to the recipe.")
    compress: bool | None = Field(default=None, description="gzip the output (default: when the name ends in .gz).")
    edges: bool = Field(default=True, description="Also write edges to <file>.edges.jsonl when the run makes any.")


def edges_path(data: Path) -> Path:
    return data.with_name(data.name + ".edges.jsonl")


class VmigSource(Source):
    name = "vmig"

    def __init__(self, config: VmigSourceConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.counts: Counter[str] = Counter()

    @property
    def workers(self) -> int:
        """How many worker processes parse the file (see :mod:`vexrun.procread`); 0: none."""
        from ...procread import MIN_BYTES
        from ...vmig.scan import default_jobs

        if self.cfg.read_workers is not None:
            return self.cfg.read_workers
        try:
            big = self.path.stat().st_size >= MIN_BYTES
        except OSError:
            return 0
        return 2 if big and default_jobs() >= 2 else 0

    @property
    def prefetch(self) -> bool:  # type: ignore[override]
        # Worker processes already read ahead; a thread on top of them only competes for the GIL.
        return self.workers == 0

    def open(self) -> None:
        if not self.path.is_file():
            raise UsageError(f"{self.cfg.path}: no such file" if not self.path.exists() else f"{self.path}: not a file")

    def identity(self) -> str:
        return f"vmig:{self.path.name}"

    def estimate(self) -> int | None:
        from ...vmig.sidecar import read_meta

        meta = read_meta(self.path)
        if meta and meta[1] and isinstance(meta[1].get("record_count"), int):
            return int(meta[1]["record_count"])
        return None

    def batches(self, cursor: Cursor | None, batch_size: int) -> Iterator[tuple[Batch, Cursor]]:
        start = (int(cursor["offset"]), int(cursor["line"])) if cursor else (0, 0)
        workers = self.workers
        if workers:
            from ... import procread

            # parse on the other cores while the runner encodes and writes the batches before
            batches = procread.read_batches_in_process(self.path, batch_size=batch_size, start=start, jobs=workers)
        else:
            batches = read_batches(self.path, batch_size=batch_size, start=start)
        for batch in batches:
            if self.cfg.namespace is not None:
                for rec in batch.records:
                    if rec.namespace is None:
                        rec.namespace = self.cfg.namespace
            self.counts["warnings"] += len(batch.warnings)
            assert batch.cursor is not None
            yield batch, {"offset": batch.cursor[0], "line": batch.cursor[1]}

    @classmethod
    def declared_models(cls, config: Any, base_dir: Any) -> list[str]:
        """The models the file's sidecar names (no record is read)."""
        from ...vmig.sidecar import read_meta

        path = Path(base_dir) / config.path
        meta = read_meta(path) if path.is_file() else None
        models = meta[1].get("models") if meta and meta[1] else None
        return [str(m) for m in models if m] if isinstance(models, list) else []

    def report(self) -> dict[str, Any]:
        return dict(self.counts)


class VmigSink(Sink):
    name = "vmig"

    def __init__(self, config: VmigSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.path = Path(ctx.resolve_path(config.path))
        self.compress = self.path.name.endswith(".gz") if config.compress is None else config.compress
        self.partial = self.path.with_name(f".{self.path.name}.partial")
        self.edges_partial = self.path.with_name(f".{edges_path(self.path).name}.partial")
        self.done = False
        self.data: AppendFile | None = None
        self.edges: AppendFile | None = None
        self.count = 0
        self.edge_count = 0
        self.dims: Counter[int] = Counter()
        self.models: Counter[str] = Counter()
        self.namespaces: Counter[str] = Counter()
        self.stores: Counter[str] = Counter()

    def identity(self) -> str:
        return str(self.path)

    def check(self) -> str:
        parent = self.path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent  # the first existing ancestor is where the directory would be made
        if not parent.is_dir():
            raise UsageError(f"{parent}: not a directory (for the output {self.cfg.path})")
        if not os.access(parent, os.W_OK):
            raise UsageError(f"{parent}: not writable (for the output {self.cfg.path})")
        return f"{self.path}: directory writable" + (
            " (the file exists and will be replaced)" if self.path.exists() else ""
        )

    def open(self, state: dict[str, Any] | None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"{self.path.parent}: cannot create the output directory ({exc.strerror or exc})"
            ) from None
        if self.path.is_dir():
            raise UsageError(f"{self.path}: is a directory (the output must be a file name)")
        state = state or {}
        self.done = bool(state) and not self.partial.exists() and self.path.exists()
        if self.done:
            # A run that was killed after the file was published: it is complete as it stands.
            self.data = AppendFile(self.partial, None)
            self.data.size = int(state.get("bytes", 0))
        else:
            self.data = AppendFile(self.partial, state.get("bytes"))
        self.edges = AppendFile(self.edges_partial, state.get("edge_bytes"))
        self.count = int(state.get("count", 0))
        self.edge_count = int(state.get("edges", 0))
        self.dims = Counter({int(k): v for k, v in state.get("dims", {}).items()})
        self.models = Counter(state.get("models", {}))
        self.namespaces = Counter(state.get("namespaces", {}))
        self.stores = Counter(state.get("stores", {}))

    def write(self, batch: Batch) -> WriteResult:
        assert self.data is not None
        vectors, mask = batch.vectors, batch.has_vector
        records = batch.records
        if vectors is None:
            lines = [encode_record(rec, None) for rec in records]
        elif mask is None or mask.all():
            lines = [encode_record(rec, vectors[i]) for i, rec in enumerate(records)]
            self.dims[int(vectors.shape[1])] += len(records)
        else:
            lines = [encode_record(rec, vectors[i] if mask[i] else None) for i, rec in enumerate(records)]
            self.dims[int(vectors.shape[1])] += int(mask.sum())
        self.count += len(records)
        self.models.update(r.model for r in records if r.model)
        self.namespaces.update(r.namespace for r in records if r.namespace)
        self.stores.update(r.source_store for r in records if r.source_store)
        blob = b"".join(lines)
        if self.compress:
            blob = gzip.compress(blob, mtime=0)  # one gzip member per batch: concatenated members are valid gzip
        self.data.write(blob)
        self.data.sync()
        return WriteResult(written=len(records))

    def write_edges(self, edges: list[Edge]) -> None:
        if not edges or not self.cfg.edges or self.edges is None:
            return
        blob = b"".join(
            orjson.dumps({"src": e.src, "dst": e.dst, "type": e.type, "weight": e.weight, "metadata": e.metadata})
            + b"\n"
            for e in edges
        )
        self.edges.write(blob)
        self.edges.sync()
        self.edge_count += len(edges)

    def state(self) -> dict[str, Any]:
        assert self.data is not None and self.edges is not None
        return {
            "bytes": self.data.size,
            "edge_bytes": self.edges.size,
            "count": self.count,
            "edges": self.edge_count,
            "dims": {str(k): v for k, v in self.dims.items()},
            "models": dict(self.models),
            "namespaces": dict(self.namespaces),
            "stores": dict(self.stores),
        }

    def finalize(self) -> None:
        assert self.data is not None and self.edges is not None
        if self.done:
            self.partial.unlink(missing_ok=True)
            self.edges_partial.unlink(missing_ok=True)
            return
        self.data.sync()
        os.replace(self.partial, self.path)
        if self.edge_count:
            self.edges.sync()
            os.replace(self.edges_partial, edges_path(self.path))
        else:
            self.edges_partial.unlink(missing_ok=True)
        stores = sorted(self.stores)
        write_meta(
            self.path,
            {
                "source_store": stores[0] if len(stores) == 1 else None,
                "record_count": self.count,
                "dims": sorted(self.dims),
                "models": sorted(self.models),
                "namespaces": sorted(self.namespaces),
                "bytes": self.data.size,
                "checksum": "blake3:" + self.data.hasher.hexdigest(),
                **({"edge_count": self.edge_count} if self.edge_count else {}),
            },
        )

    def close(self) -> None:
        for appender in (self.data, self.edges):
            if appender is not None:
                appender.close()
