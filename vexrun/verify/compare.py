"""``vexrun compare``: any two stores or files, record by record.

The ``--from`` side is the reference and is streamed; each batch's ids are read back from the ``--to`` side by
id (``Sink.fetch``) and compared (:func:`vexrun.verify.diff.differs`): ids it lacks are *missing*, records that
differ are *changed*. Records the ``--to`` side holds beyond those are *extra*: when its count says there are
some (or it cannot count), it is streamed once and the ids the reference did not have are named. A ``--to`` side
that cannot be read by id (a file) is streamed into memory first (one entry per record: fine for files up to a
few million records).

Both sides are built from flags exactly as ``vexrun migrate`` builds them (``${VAR}`` secrets, relative paths),
without writing anything: the ``--to`` side is opened with ``connect()``, read-only.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..build import Connectors, build_connectors, decoded, run_context
from ..connectors.base import Capabilities, Sink, Source
from ..planner import compile_plan
from ..stages.base import StageSpec
from ..vmig.model import Record
from .diff import Diff, read_back

__all__ = ["Compared", "compare_stores"]

Item = tuple[Record, "np.ndarray | None"]


@dataclass
class Compared:
    source: str
    target: str
    source_records: int = 0
    target_records: int | None = None
    diff: Diff = field(default_factory=Diff)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.diff.ok

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "target": self.target,
            "identical": self.ok,
            "source_records": self.source_records,
            "target_records": self.target_records,
            "seconds": round(self.seconds, 3),
            **self.diff.to_json(),
        }

    def lines(self) -> list[str]:
        held = "?" if self.target_records is None else f"{self.target_records:,}"
        d = self.diff
        head = (
            f"{self.source} ({self.source_records:,} records) vs {self.target} ({held} records): "
            f"{d.equal:,} equal, {d.missing:,} missing, {d.extra:,} extra, {d.changed:,} changed "
            f"in {self.seconds:.1f}s"
        )
        return [head, *d.lines(), "equal" if self.ok else "DIFFERENT"]


def _caps(spec: StageSpec) -> Capabilities | None:
    return spec.plugin.capabilities if spec.plugin is not None else None


def _build(
    source: str, source_opts: dict[str, Any], target: str, target_opts: dict[str, Any], env_file: str | None
) -> Connectors:
    from ..migrate import build_recipe, recipe_text, virtual_path
    from ..recipe.loader import load_recipe as load_text

    recipe = build_recipe(
        source=source, target=target, source_options=source_opts, target_options=target_opts, name="compare"
    )
    text = recipe_text(recipe)
    cwd = Path.cwd()
    doc = load_text(virtual_path(recipe, cwd), text=text, base_dir=cwd, env_file=env_file)
    plan = compile_plan(doc)
    return build_connectors(plan, run_context(plan))


def _stream(spec: StageSpec, source: Source, batch_size: int) -> Iterator[list[Item]]:
    source.open()
    for batch, _ in decoded(spec, source.batches(None, batch_size)):
        yield list(batch)


def _as_source(target: str, opts: dict[str, Any], env_file: str | None, scratch: Path) -> Connectors:
    """The ``--to`` side built as a source (to stream it), with a throwaway file target that is never opened."""
    sink = {"path": str(scratch / "unused.vmig.jsonl")}
    return _build(target, opts, "vmig", sink, env_file)


def compare_stores(
    source: str,
    source_opts: dict[str, Any],
    target: str,
    target_opts: dict[str, Any],
    *,
    env_file: str | None = None,
    batch_size: int = 1000,
    say: Callable[[str], None] | None = None,
) -> Compared:
    """Compare everything ``source`` holds with ``target``."""
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vexrun-compare-") as tmp:
        built = _build(source, source_opts, target, target_opts, env_file)
        try:
            (src_spec, src), (dst_spec, dst) = built.sources[0], built.sinks[0]
            out = Compared(source=src.identity(), target=dst.identity())
            caps_a, caps_b = _caps(src_spec), _caps(dst_spec)
            normalized = any(c is not None and c.vectors == "normalized" for c in (caps_a, caps_b))
            try:
                dst.connect()
                readable = True
            except NotImplementedError:
                readable = False
            if readable:
                _by_fetch(out, src_spec, src, dst, caps_b, normalized, batch_size, target, target_opts, env_file, tmp)
            else:
                _by_index(out, src_spec, src, normalized, batch_size, target, target_opts, env_file, Path(tmp))
        finally:
            built.close()
    out.seconds = time.perf_counter() - t0
    if say is not None:
        for line in out.lines():
            say(line)
    return out


def _by_fetch(
    out: Compared,
    src_spec: StageSpec,
    src: Source,
    dst: Sink,
    caps_b: Capabilities | None,
    normalized: bool,
    batch_size: int,
    target: str,
    target_opts: dict[str, Any],
    env_file: str | None,
    tmp: str,
) -> None:
    seen: set[str] = set()
    for items in _stream(src_spec, src, batch_size):
        out.source_records += len(items)
        got = {rec.id: (rec, vec) for rec, vec in read_back(dst, caps_b, [rec.id for rec, _ in items])}
        for item in items:
            seen.add(item[0].id)
            out.diff.check(item, got.get(item[0].id), normalized=normalized)
    try:
        out.target_records = dst.count(None)
    except NotImplementedError:
        out.target_records = None
    found = out.diff.equal + out.diff.changed
    if out.target_records is not None and out.target_records <= found:
        return
    other = _as_source(target, target_opts, env_file, Path(tmp))
    try:
        spec, source = other.sources[0]
        n = 0
        for items in _stream(spec, source, batch_size):
            n += len(items)
            for rec, _ in items:
                if rec.id not in seen:
                    out.diff.add_extra(rec.id, rec.namespace)
        if out.target_records is None:
            out.target_records = n
    finally:
        other.close()


def _by_index(
    out: Compared,
    src_spec: StageSpec,
    src: Source,
    normalized: bool,
    batch_size: int,
    target: str,
    target_opts: dict[str, Any],
    env_file: str | None,
    tmp: Path,
) -> None:
    other = _as_source(target, target_opts, env_file, tmp)
    try:
        spec, source = other.sources[0]
        index: dict[str, Item] = {}
        for items in _stream(spec, source, batch_size):
            for item in items:
                index[item[0].id] = item
    finally:
        other.close()
    out.target_records = len(index)
    for items in _stream(src_spec, src, batch_size):
        out.source_records += len(items)
        for item in items:
            out.diff.check(item, index.pop(item[0].id, None), normalized=normalized)
    for rid, (rec, _) in sorted(index.items()):
        out.diff.add_extra(rid, rec.namespace)
