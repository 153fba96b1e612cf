"""Run a plan: stream batches from the sources through the stages to the sinks, with checkpoints.

The rules that make a crash cost nothing but the time to re-run the same command:

- a batch is committed (cursor advanced, counts, stage and sink states) in ONE transaction, only after
  every sink acknowledged it;
- record ids are deterministic and sink writes are upserts (file sinks truncate back to their committed
  length), so re-sending the batch in flight changes nothing;
- embeddings go through the content-addressed cache, committed as soon as they are computed;
- a checkpoint made under another plan is never reused silently.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from .appendfile import AppendFile
from .cache import EmbedCache
from .checkpoint import Checkpoint, EventLog, Progress, StateDir
from .connectors.base import Capabilities, Edge, RunContext, Sink, Source
from .connectors.encoding import from_store, split_for, store_id, to_store
from .errors import Interrupted, PlanMismatch, UsageError, VexrunError

if TYPE_CHECKING:
    from .facts import FactsPipeline
from .plan import Plan, compile_plan
from .prefetch import prefetch
from .providers.base import Embedder
from .recipe.loader import RecipeDoc, load_recipe
from .registry import resolve
from .reporting import Reporter
from .stages.adapt import AdaptStage
from .stages.chunk import ChunkStage
from .stages.embed import EmbedStage
from .stages.graph import GraphStage
from .vmig.batch import Batch
from .vmig.model import Record
from .vmig.writer import encode_record

__all__ = ["RunOptions", "RunSummary", "run"]


@dataclass
class RunOptions:
    env_file: str | None = None
    fresh: bool = False
    #: "auto" (bars on a terminal, log lines otherwise), "bar", "log" or "none"
    progress: str = "auto"
    #: how the user invoked us, for the "resume with" hint
    command: str | None = None
    #: re-feed the records a completed run rejected after its source (extract/embed/store failures)
    retry_rejected: bool = False


@dataclass
class RunSummary:
    recipe: str
    run_id: int
    status: str
    state_dir: str
    resumed_at_batch: int | None
    batches: int
    elapsed_s: float
    counts: dict[str, Any]
    rejects: int
    rejects_file: str | None
    targets: list[str]
    exit_code: int
    messages: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe,
            "run": self.run_id,
            "status": self.status,
            "state_dir": self.state_dir,
            "resumed_at_batch": self.resumed_at_batch,
            "batches": self.batches,
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": self.counts,
            "rejected": self.rejects,
            "rejects_file": self.rejects_file,
            "targets": self.targets,
            "exit_code": self.exit_code,
        }

    def table(self) -> list[str]:
        c = self.counts
        # (stage, read, written, skipped, rejected, retried, note)
        rows: list[tuple[str, int, int, int, int, int, str]] = []
        src = c.get("source", {})
        rows.append(("source", src.get("read", 0), src.get("passed", 0), 0, src.get("rejected", 0), 0, ""))
        ch = c.get("chunk", {})
        if ch:
            note = f"+{ch.get('split', 0):,} parts from long texts" if ch.get("split") else ""
            rows.append(("chunk", ch.get("in", 0), ch.get("out", 0), ch.get("skipped", 0), 0, 0, note))
        ad = c.get("adapt")
        if ad:
            fit = c.get("adapt_fit")
            note = f"adapted {ad.get('adapted', 0):,}"
            if fit and "mean_cosine" in fit:
                note += f"; fit mean cosine {fit['mean_cosine']:.3f} on {fit['holdout']:,} held back"
            rows.append(("adapt", ad.get("in", 0), ad.get("out", 0), 0, ad.get("rejected", 0), 0, note))
        for name in ("extract", "score", "dedup"):
            st = c.get(name)
            if st:
                rows.append(
                    (
                        name,
                        st.get("in", 0),
                        st.get("out", 0),
                        st.get("skipped", 0),
                        st.get("rejected", 0),
                        st.get("retries", 0),
                        st.get("note", ""),
                    )
                )
        em = c.get("embed")
        if em:
            note = f"computed {em.get('computed', 0):,}, cached {em.get('cached', 0):,}, kept {em.get('kept', 0):,}"
            rows.append(
                ("embed", em.get("in", 0), em.get("out", 0), 0, em.get("rejected", 0), em.get("retries", 0), note)
            )
        gr = c.get("graph", {})
        if gr:
            rows.append(("graph", gr.get("in", 0), gr.get("in", 0), 0, 0, 0, f"{gr.get('edges', 0):,} edges"))
        for title, st in c.get("store", {}).items():
            rows.append((title, st.get("in", 0), st.get("written", 0), 0, st.get("rejected", 0), 0, ""))
        if c.get("sign"):
            rows.append(("sign", 0, 0, 0, 0, 0, f"signature {c['sign']['signature']}"))
        if c.get("sync"):
            sy = c["sync"]
            note = (
                "unchanged"
                if sy.get("unchanged")
                else (
                    f"generation {sy['generation']}: {sy['objects_uploaded']} of {sy['objects_total']} objects, "
                    f"{sy['bytes_pushed']:,} bytes pushed"
                )
            )
            rows.append(("sync", 0, 0, 0, 0, 0, note))
        width = max(len(r[0]) for r in rows)
        head = f"{'stage':<{width}}  {'read':>8}  {'written':>8}  {'skipped':>7}  {'rejected':>8}  {'retried':>7}"
        out = [head]
        for name, read, written, skipped, rejected, retried, note in rows:
            line = f"{name:<{width}}  {read:>8,}  {written:>8,}  {skipped:>7,}  {rejected:>8,}  {retried:>7,}"
            out.append(line + (f"  {note}" if note else ""))
        mins, secs = divmod(self.elapsed_s, 60)
        tail = f"{self.status}: run {self.run_id}, {self.batches:,} batches in {int(mins)}m{secs:04.1f}s"
        if self.rejects:
            tail += f"; {self.rejects:,} rejected records in {self.rejects_file}"
        out.append(tail)
        return out


class _Stop:
    """First SIGINT/SIGTERM: finish the batch in flight, commit, exit. Second: exit at once."""

    def __init__(self, say: Any) -> None:
        self.signum = 0
        self.say = say

    def __call__(self, signum: int, frame: Any) -> None:
        if self.signum:
            os._exit(128 + signum)
        self.signum = signum
        self.say("Stopping after the batch in flight (press Ctrl-C again to stop at once)...")

    @contextmanager
    def installed(self) -> Iterator[_Stop]:
        if threading_main():
            old = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        else:  # pragma: no cover - the library used from a worker thread
            old = {}
        try:
            yield self
        finally:
            for s, h in old.items():
                signal.signal(s, h)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _reject_line(
    stage: str,
    reason: str,
    source: str,
    *,
    record: Record | None = None,
    vector: Any = None,
    raw: bytes | None = None,
    line: int | None = None,
) -> bytes:
    info = {"stage": stage, "reason": reason, "source": source, "line": line}
    if record is not None:
        obj = orjson.loads(encode_record(record, vector))
    else:
        obj = {"id": f"{source}:line-{line}", "text": (raw or b"").decode("utf-8", "replace").rstrip("\n")}
    obj["reject"] = info
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def _dedupe(batch: Batch) -> tuple[Batch, int]:
    """Drop earlier records whose id repeats later in the same batch (an upsert would keep the last)."""
    seen: dict[str, int] = {}
    for i, rec in enumerate(batch.records):
        seen[rec.id] = i
    if len(seen) == len(batch.records):
        return batch, 0
    rows = sorted(seen.values())
    out = Batch(
        records=[batch.records[i] for i in rows], rejects=batch.rejects, warnings=batch.warnings, cursor=batch.cursor
    )
    if batch.vectors is not None and batch.has_vector is not None:
        out.vectors = batch.vectors[rows]
        out.has_vector = batch.has_vector[rows]
    return out, len(batch.records) - len(rows)


class Runner:
    def __init__(self, plan: Plan, options: RunOptions) -> None:
        self.plan = plan
        self.doc = plan.doc
        self.options = options
        self.state = StateDir(plan.state_dir)
        self.reporter = Reporter(options.progress)
        self.say = self.reporter.say
        self.sources: list[Source] = []
        self.sinks: list[tuple[str, Sink]] = []
        self.sink_caps: dict[str, Capabilities | None] = {}
        self.source_caps: list[Capabilities | None] = []
        self.embedder: Embedder | None = None
        self.cache: EmbedCache | None = None
        self.events: EventLog | None = None
        self.rejects: AppendFile | None = None
        self.retries_base = 0
        self.adapt: AdaptStage | None = None
        self.facts: FactsPipeline | None = None

    # -- set-up ------------------------------------------------------------------------------------
    def resume_command(self) -> str:
        if self.options.command:
            return self.options.command
        parts = ["vexrun", "run", self.doc.display]
        if self.options.env_file:
            parts += ["--env-file", self.options.env_file]
        return " ".join(shlex.quote(p) for p in parts)

    def _context(self) -> RunContext:
        spec = None
        if self.doc.model.embed is not None:
            spec = {k: v for k, v in self.doc.model.embed.model_dump(mode="json").items() if v is not None}
            for spath in self.doc.secrets:
                if spath[:1] == ("embed",) and len(spath) == 2:
                    spec.pop(str(spath[1]), None)
        return RunContext(
            state_dir=self.state.path,
            recipe_dir=self.doc.directory.resolve(),
            log=lambda m: self.say(m),
            embedder_spec=spec,
        )

    def _build(self, ctx: RunContext, retry_file: str | None = None) -> None:
        if retry_file is not None:
            from .connectors.vmig_file import VmigSource, VmigSourceConfig

            self.sources.append(VmigSource(VmigSourceConfig(path=retry_file), ctx))
            self.source_caps.append(None)
        else:
            for cfg in self.doc.effective_sources():
                self.sources.append(resolve("source", cfg.type).implementation()(cfg, ctx))
                self.source_caps.append(resolve("source", cfg.type).capabilities)
        for stage, cfg in zip([s for s in self.plan.stages if s.name == "store"], self.doc.targets, strict=True):
            spec = resolve("sink", cfg.type)
            self.sinks.append((stage.title, spec.implementation()(cfg, ctx)))
            self.sink_caps[stage.title] = spec.capabilities
        if self.doc.model.embed is not None:
            cfg = self.doc.model.embed
            self.embedder = resolve("embedder", cfg.type).implementation()(cfg)

    def _decide(self, ck: Checkpoint) -> tuple[Progress, int | None]:
        """Resume, restart or refuse. Returns the progress to run from and the batch resumed at."""
        plan_json = orjson.dumps(self.plan.to_json())
        stored = ck.get_meta("fingerprint")
        progress = ck.read()
        if stored is not None and stored != self.plan.fingerprint and not self.options.fresh:
            before = orjson.loads(ck.get_meta("stages") or "{}")
            now = self.plan.stage_fingerprints
            differ = sorted({t for t in set(before) | set(now) if before.get(t) != now.get(t)})
            raise PlanMismatch(
                f"{self.state.path}: the checkpoint was made under another plan; stages that differ: "
                f"{', '.join(differ)}",
                hint=f"run `{self.resume_command()} --fresh` to start over (embeddings stay cached), "
                "or restore the recipe",
            )
        if progress is None or self.options.fresh or progress.status == "completed" or stored is None:
            if progress is not None and progress.status == "completed" and not self.options.fresh:
                self.say(f"Run {progress.run_id} of this recipe completed; starting a new run (cached work is reused).")
            elif self.options.fresh and progress is not None:
                self.say("Starting over (--fresh): the checkpoint is reset, the embedding cache is kept.")
            progress = ck.start(self.plan.fingerprint, self.plan.stage_fingerprints, plan_json)
            return progress, None
        ck.resume(progress)
        return progress, progress.batches

    # -- the run -----------------------------------------------------------------------------------
    def run(self) -> RunSummary:
        t0 = time.perf_counter()
        self.state.ensure()
        with self.state.lock(self.resume_command()):
            ck = self.state.open_checkpoint()
            try:
                return self._run_locked(ck, t0)
            finally:
                self._close()
                ck.close()

    def _close(self) -> None:
        for _, sink in self.sinks:
            try:
                sink.close()
            except Exception:  # noqa: BLE001 - closing after a failure must not hide the failure
                pass
        for source in self.sources:
            try:
                source.close()
            except Exception:  # noqa: BLE001
                pass
        if self.embedder is not None:
            try:
                self.embedder.close()
            except Exception:  # noqa: BLE001
                pass
        if self.facts is not None:
            self.facts.close()
        for res in (self.cache, self.events, self.rejects):
            if res is not None:
                res.close()

    def _prepare_retry(self, ck: Checkpoint) -> Progress:
        """--retry-rejected: the records a completed run rejected after its source become the input of a new
        run; the rejects it cannot retry (bad input lines) stay in the rejects file."""
        progress = ck.read()
        stored = ck.get_meta("fingerprint")
        if progress is None or progress.status != "completed":
            raise UsageError(
                "nothing to retry: the last run of this recipe did not complete",
                hint=f"finish it first with `{self.resume_command().replace(' --retry-rejected', '')}`",
            )
        if stored != self.plan.fingerprint:
            raise PlanMismatch(f"{self.state.path}: the rejects belong to a run of another plan")
        retry: list[bytes] = []
        keep: list[bytes] = []
        path = self.state.rejects_path
        for line in path.read_bytes().splitlines(keepends=True) if path.exists() else []:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                keep.append(line)
                continue
            stage = (obj.get("reject") or {}).get("stage")
            if stage in (None, "source"):
                keep.append(line)
                continue
            obj.pop("reject", None)
            retry.append(orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n")
        retry_file = self.state.path / "retry.vmig.jsonl"
        retry_file.write_bytes(b"".join(retry))
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(keep))
        os.replace(tmp, path)
        self.say(f"Retrying {len(retry):,} rejected record(s); {len(keep):,} bad input line(s) stay rejected.")
        progress = ck.start(self.plan.fingerprint, self.plan.stage_fingerprints, orjson.dumps(self.plan.to_json()))
        progress.stage_state["retry_file"] = str(retry_file)
        progress.rejects_bytes = sum(len(x) for x in keep)
        ck.commit(progress)
        return progress

    def _run_locked(self, ck: Checkpoint, t0: float) -> RunSummary:
        if self.options.retry_rejected:
            progress, resumed_at = self._prepare_retry(ck), None
        else:
            progress, resumed_at = self._decide(ck)
        self.state.write_plan(orjson.dumps(self.plan.to_json(), option=orjson.OPT_INDENT_2))
        self.events = EventLog(self.state.events_path)
        ctx = self._context()
        retry_file = progress.stage_state.get("retry_file")
        self._build(ctx, retry_file)
        total_est = self._estimate()
        if resumed_at is not None:
            of = f"/{total_est}" if total_est else ""
            done = progress.counts.get("source", {}).get("read", 0)
            self.say(
                f"Resuming run {progress.run_id} of {self.doc.name} at batch {resumed_at + 1}{of} "
                f"({done:,} records already done)"
            )
            self.events.emit("resumed", run=progress.run_id, batch=resumed_at)
        else:
            self.events.emit("started", run=progress.run_id, fingerprint=self.plan.fingerprint)

        fresh_rejects = resumed_at is None and not retry_file
        self.rejects = AppendFile(self.state.rejects_path, None if fresh_rejects else progress.rejects_bytes)
        self.cache = EmbedCache(self.state.cache_path)

        for source in self.sources:
            source.open()
        for title, sink in self.sinks:
            sink.open(progress.sink_state.get(title) if resumed_at is not None else None)
        if self.embedder is not None:
            self.say(f"Loading embedder {self.embedder.model_id} ...")
            self.embedder.open()

        chunk = ChunkStage(self.doc.model.chunk)
        graph = GraphStage(self.doc.model.graph)
        self.adapt = self._adapt_stage(progress, resumed_at is not None)
        embed = None
        if self.embedder is not None:
            embed_stage = next(s for s in self.plan.stages if s.name == "embed")
            embed = EmbedStage(self.embedder, self.cache, settings_key=embed_stage.fingerprint)
        if resumed_at is not None:
            graph.restore(progress.stage_state.get("graph", {}))
        if self.doc.model.mode in ("extract", "smart"):
            from .facts import FactsPipeline  # the LLM stack (httpx) only when a run needs it

            self.facts = FactsPipeline(
                self.doc.model, self.state.path, embed, say=self.say, retry=self.options.retry_rejected
            )
            self.facts.open(
                progress.stage_state.get("facts") if resumed_at is not None else None,
                progress.counts.get("llm") if resumed_at is not None else None,
            )
        counts = progress.counts
        counts.setdefault("source", {})
        self.retries_base = int(counts.get("embed", {}).get("retries", 0))
        prepared: set[str] = set()
        stop = _Stop(self.say)
        status = "completed"
        batch_size = self.doc.model.run.batch_size
        with stop.installed(), self.reporter.live(total_est):
            for index in range(progress.source_index, len(self.sources)):
                source = self.sources[index]
                cursor = progress.cursor if index == progress.source_index else None
                batches = source.batches(cursor, batch_size)
                overlap = source.prefetch and any(sink.io_bound for _, sink in self.sinks)
                for batch, next_cursor in prefetch(batches) if overlap else batches:
                    if self.source_caps[index] is not None:
                        batch = from_store(batch)
                    self._process(batch, index, next_cursor, progress, chunk, embed, graph, prepared)
                    ck.commit(progress)
                    self.events.emit("batch", run=progress.run_id, batch=progress.batches, records=len(batch))
                    self.reporter.update(counts)
                    if stop.signum:
                        status = "interrupted"
                        break
                    limit = self.doc.model.run.max_rejects
                    if limit is not None and counts.get("rejected", 0) > limit:
                        status = "too-many-rejects"
                        break
                if status != "completed":
                    break
                progress.source_index = index + 1
                progress.cursor = None
                counts.setdefault("source_reports", {})[source.identity()] = source.report()
                ck.commit(progress)

        if status == "completed":
            for _, sink in self.sinks:
                sink.finalize()
            self._publish(counts)
        elapsed = time.perf_counter() - t0
        self._check_counts(counts)
        rejected = int(counts.get("rejected", 0))
        exit_code = {"completed": 3 if rejected else 0, "interrupted": 128 + (stop.signum or 2)}.get(status, 1)
        summary = RunSummary(
            recipe=self.doc.display,
            run_id=progress.run_id,
            status=status,
            state_dir=str(self.state.path),
            resumed_at_batch=resumed_at,
            batches=progress.batches,
            elapsed_s=elapsed,
            counts=counts,
            rejects=rejected,
            rejects_file=str(self.state.rejects_path) if rejected else None,
            targets=[s.identity() for _, s in self.sinks],
            exit_code=exit_code,
        )
        ck.finish(progress, status if status != "interrupted" else "interrupted", summary.to_json())
        self.state.write_summary(progress.run_id, summary.to_json())
        self.events.emit("finished", run=progress.run_id, status=status, counts=counts)
        if status == "interrupted":
            raise Interrupted(
                f"interrupted after batch {progress.batches}; the checkpoint is saved",
                signum=stop.signum or 2,
                hint=f"resume with: {self.resume_command()}",
            )
        if status == "too-many-rejects":
            raise VexrunError(
                f"stopped: {rejected:,} records rejected (run.max_rejects is {self.doc.model.run.max_rejects}); "
                f"see {self.state.rejects_path}",
                hint=f"fix the input, then resume with: {self.resume_command()}",
            )
        return summary

    def _adapt_stage(self, progress: Progress, resumed: bool) -> AdaptStage | None:
        settings = self.doc.model.adapt
        if settings is None or settings.strategy == "reembed":
            return None
        emb = self.embedder
        stage = AdaptStage(
            settings,
            target_model=emb.model_id if emb is not None else None,
            target_dims=emb.dims if emb is not None else None,
        )
        if settings.strategy != "project":
            return stage
        if resumed and stage.load(self.state.path):
            return stage
        assert emb is not None and self.cache is not None
        self.say(f"Fitting the projection on up to {settings.sample:,} records ...")
        xs, texts = self._sample(settings.sample)
        if len(texts) < 16:
            raise VexrunError(
                f"adapt 'project' needs records with both a vector and a text to fit the map; found {len(texts)}"
            )
        key = next(st.fingerprint for st in self.plan.stages if st.name == "embed")
        embed = EmbedStage(emb, self.cache, settings_key=key)
        sample = Batch(records=[Record(id=f"fit-{i}", text=t) for i, t in enumerate(texts)])
        ys = embed.process(sample)[0].vectors
        assert ys is not None
        report = stage.fit(np.stack(xs), ys, self.state.path)
        progress.counts["adapt_fit"] = report
        self.say(
            f"Projection {len(xs[0])}-d → {ys.shape[1]}-d fitted on {report['train']:,} records; mean cosine "
            f"{report.get('mean_cosine', float('nan')):.3f} on {report['holdout']:,} held back"
        )
        return stage

    def _sample(self, limit: int) -> tuple[list[np.ndarray], list[str]]:
        """Records that have both a vector and a text, from the start of the sources (a separate read)."""
        xs: list[np.ndarray] = []
        texts: list[str] = []
        ctx = self._context()
        for cfg, caps in zip(self.doc.sources, self.source_caps, strict=True):
            source = resolve("source", cfg.type).implementation()(cfg, ctx)
            source.open()
            try:
                for batch, _ in source.batches(None, 500):
                    if caps is not None:
                        batch = from_store(batch)
                    for i, rec in enumerate(batch.records):
                        vec = batch.vector(i)
                        if vec is not None and rec.text:
                            xs.append(vec.copy())
                            texts.append(rec.text)
                            if len(texts) >= limit:
                                return xs, texts
            finally:
                source.close()
        return xs, texts

    def _publish(self, counts: dict[str, Any]) -> None:
        """After a complete run: sign the .vmig.jsonl output, then push it to the encrypted backup."""
        model = self.doc.model
        if model.signing is None and model.sync is None:
            return
        from .connectors.vmig_file import VmigSink

        output = next(s.path for _, s in self.sinks if isinstance(s, VmigSink))
        if model.signing is not None:
            from .crypto.sign import sign_file

            self.say(f"Signing {output} ...")
            sig = sign_file(output, model.signing)
            counts["sign"] = {"file": str(output), "signature": str(sig)}
            assert self.events is not None
            self.events.emit("signed", file=str(output), signature=str(sig))
        if model.sync is not None:
            from .sync.api import push_file

            self.say(f"Pushing {output} to the encrypted backup ...")
            result = push_file(output, model.sync)
            counts["sync"] = {
                "generation": result.generation,
                "objects_uploaded": result.objects_uploaded,
                "objects_total": result.objects_total,
                "bytes_pushed": result.bytes_pushed,
                "unchanged": result.unchanged,
            }
            assert self.events is not None
            self.events.emit("synced", **counts["sync"])

    def _estimate(self) -> int | None:
        total = 0
        for source in self.sources:
            try:
                n = source.estimate()
            except Exception:  # noqa: BLE001 - an estimate is a nicety
                n = None
            if n is None:
                return None
            total += n
        size = self.doc.model.run.batch_size
        return max(1, -(-total // size)) if total else None

    def _facts(self, batch: Batch, counts: dict[str, Any], src_id: str) -> tuple[Batch, list[str], int]:
        """extract → score → dedup. Chunks every provider failed on go to the rejects file (stage extract),
        from where `--retry-rejected` takes them again."""
        assert self.facts is not None
        n_chunks = len(batch)
        step = self.facts.process(batch)
        ex_counts = self.facts.last_extract
        dd_counts = self.facts.last_dedup
        for rec, reason in step.failed.values():
            self._reject("extract", reason, src_id, record=rec)
        usage = self.facts.usage()["total"]
        ex = counts.setdefault("extract", {})
        ex["in"] = ex.get("in", 0) + n_chunks
        ex["out"] = ex.get("out", 0) + ex_counts.facts
        ex["rejected"] = ex.get("rejected", 0) + len(step.failed)
        ex["skipped"] = ex.get("skipped", 0) + ex_counts.skipped
        ex["retries"] = int(usage.get("retries", 0))
        cost = f", ${usage['cost_usd']:.4f}" if "cost_usd" in usage else ""
        ex["note"] = (
            f"{usage.get('calls', 0):,} calls ({usage.get('cached', 0):,} cached), "
            f"{usage.get('input_tokens', 0):,} in / {usage.get('output_tokens', 0):,} out tokens{cost}"
        )
        n_facts = len(step.facts) - len(step.updated)
        sc = counts.setdefault("score", {})
        sc["in"] = sc.get("in", 0) + ex_counts.facts
        sc["out"] = sc.get("out", 0) + ex_counts.facts
        dd = counts.setdefault("dedup", {})
        merged = dd_counts.exact + dd_counts.semantic
        dd["in"] = dd.get("in", 0) + ex_counts.facts
        dd["out"] = dd.get("out", 0) + n_facts
        dd["skipped"] = dd.get("skipped", 0) + merged
        dd["exact"] = dd.get("exact", 0) + dd_counts.exact
        dd["semantic"] = dd.get("semantic", 0) + dd_counts.semantic
        dd["note"] = f"merged {dd['exact']:,} exact and {dd['semantic']:,} near duplicates"
        if step.failed and self.doc.model.run.on_error == "fail":
            first = next(iter(step.failed.values()))[1]
            raise VexrunError(
                f"{len(step.failed)} chunk(s) failed on every LLM provider ({first}) and run.on_error is 'fail'",
                hint=f"resume with: {self.resume_command()}",
            )
        return step.facts, step.updated, len(step.failed)

    def _reject(self, stage: str, reason: str, source: str, **kw: Any) -> None:
        assert self.rejects is not None
        self.rejects.write(_reject_line(stage, reason, source, **kw))

    def _process(
        self,
        batch: Batch,
        index: int,
        next_cursor: dict[str, Any],
        progress: Progress,
        chunk: ChunkStage,
        embed: EmbedStage | None,
        graph: GraphStage,
        prepared: set[str],
    ) -> None:
        counts = progress.counts
        src_id = self.sources[index].identity()
        src = counts["source"]
        src["read"] = src.get("read", 0) + len(batch) + len(batch.rejects)
        src["passed"] = src.get("passed", 0) + len(batch)
        src["rejected"] = src.get("rejected", 0) + len(batch.rejects)
        rejected = len(batch.rejects)
        for rej in batch.rejects:
            self._reject("source", rej.reason, src_id, raw=rej.raw, line=rej.line)
        src["warnings"] = src.get("warnings", 0) + len(batch.warnings)

        n_in = len(batch)
        batch = chunk.process(batch)
        batch, dupes = _dedupe(batch)
        updated: list[str] = []
        if self.facts is not None:
            batch, updated, failed = self._facts(batch, counts, src_id)
            rejected += failed
        if self.adapt is not None:
            before = {rec.id: (rec, batch.vector(i)) for i, rec in enumerate(batch.records)}
            n_adapt = len(batch)
            batch, ac = self.adapt.process(batch)
            ad = counts.setdefault("adapt", {})
            ad["in"] = ad.get("in", 0) + n_adapt
            ad["out"] = ad.get("out", 0) + len(batch)
            ad["adapted"] = ad.get("adapted", 0) + ac.adapted
            ad["rejected"] = ad.get("rejected", 0) + len(ac.rejected)
            for rid, reason in ac.rejected.items():
                rec, vec = before[rid]
                self._reject("adapt", reason, src_id, record=rec, vector=vec)
            rejected_adapt = len(ac.rejected)
        else:
            rejected_adapt = 0
        ch = counts.setdefault("chunk", {})
        ch["in"] = ch.get("in", 0) + n_in
        ch["out"] = ch.get("out", 0) + len(batch)
        ch["split"] = ch.get("split", 0) + len(batch) + dupes - n_in
        ch["skipped"] = ch.get("skipped", 0) + dupes
        counts["skipped"] = counts.get("skipped", 0) + dupes

        if embed is not None:
            n_in = len(batch)
            before = {rec.id: (rec, batch.vector(i)) for i, rec in enumerate(batch.records)}
            batch, ec = embed.process(batch)
            em = counts.setdefault("embed", {})
            em["in"] = em.get("in", 0) + n_in
            em["out"] = em.get("out", 0) + len(batch)
            em["computed"] = em.get("computed", 0) + ec.computed
            em["cached"] = em.get("cached", 0) + ec.cached
            em["kept"] = em.get("kept", 0) + ec.kept
            em["rejected"] = em.get("rejected", 0) + len(ec.rejected)
            usage = getattr(embed.embedder, "usage", None)
            if isinstance(usage, dict):
                em["retries"] = self.retries_base + int(usage.get("retries", 0))
            for rid, reason in ec.rejected.items():
                rec, vec = before[rid]
                self._reject("embed", reason, src_id, record=rec, vector=vec)
            rejected += len(ec.rejected)
            if ec.rejected and self.doc.model.run.on_error == "fail":
                raise VexrunError(
                    f"a record failed terminally ({next(iter(ec.rejected.values()))}) and run.on_error is 'fail'",
                    hint=f"fix it, then resume with: {self.resume_command()}",
                )

        rejected += rejected_adapt
        edges = self.facts.edges(batch, updated) if self.facts is not None else graph.process(batch)
        gr = counts.setdefault("graph", {})
        gr["in"] = gr.get("in", 0) + len(batch)
        gr["edges"] = gr.get("edges", 0) + len(edges)

        dims = batch.dims
        for title, sink in self.sinks:
            if title not in prepared:
                sink.prepare(dims, batch.records[0].model if batch.records and dims else None)
                prepared.add(title)
            caps = self.sink_caps.get(title)
            stored = to_store(batch, caps)
            written, refused = 0, {}
            for part in split_for(stored, caps) if len(stored) else ():
                result = sink.write(part)
                written += result.written
                refused.update(result.rejected)
            if edges:
                if caps is not None and caps.ids != "any":
                    edges = [
                        Edge(store_id(e.src, caps), store_id(e.dst, caps), e.type, e.weight, e.metadata) for e in edges
                    ]
                sink.write_edges(edges)
            st = counts.setdefault("store", {}).setdefault(title, {})
            st["in"] = st.get("in", 0) + len(batch)
            st["written"] = st.get("written", 0) + written
            st["rejected"] = st.get("rejected", 0) + len(refused)
            if refused:
                by_id = {
                    s.id: (rec, batch.vector(i))
                    for i, (s, rec) in enumerate(zip(stored.records, batch.records, strict=True))
                }
                for rid, reason in refused.items():
                    found = by_id.get(rid)
                    self._reject(
                        "store",
                        f"{title}: {reason}",
                        src_id,
                        record=found[0] if found else None,
                        vector=found[1] if found else None,
                    )
                rejected += len(refused)
        if batch.rejects and self.doc.model.run.on_error == "fail":
            raise VexrunError(
                f"{len(batch.rejects)} input record(s) rejected ({batch.rejects[0].reason}) and run.on_error is 'fail'",
                hint=f"fix the input, then resume with: {self.resume_command()}",
            )

        assert self.rejects is not None
        self.rejects.sync()
        counts["rejected"] = counts.get("rejected", 0) + rejected
        progress.source_index = index
        progress.cursor = next_cursor
        progress.batches += 1
        progress.stage_state = {**progress.stage_state, "graph": graph.state()}
        if self.facts is not None:
            progress.stage_state["facts"] = self.facts.state()
            counts["llm"] = self.facts.usage()
        progress.sink_state = {title: sink.state() for title, sink in self.sinks}
        progress.rejects_bytes = self.rejects.size

    def _check_counts(self, counts: dict[str, Any]) -> None:
        """Every record that reached a store was written or rejected there; say so loudly if not."""
        for title, st in counts.get("store", {}).items():
            if st.get("in", 0) != st.get("written", 0) + st.get("rejected", 0):
                self.say(
                    f"warning: {title} received {st.get('in', 0):,} records but reports "
                    f"{st.get('written', 0):,} written and {st.get('rejected', 0):,} rejected"
                )
                counts["count_mismatch"] = True


def run(recipe: str | os.PathLike[str] | RecipeDoc, options: RunOptions | None = None) -> RunSummary:
    """Load, compile and run a recipe (a path, or an already loaded :class:`RecipeDoc`). Raises a
    :class:`~vexrun.errors.VexrunError` subclass on failure (an interrupted run raises
    :class:`~vexrun.errors.Interrupted` after saving its checkpoint)."""
    options = options or RunOptions()
    doc = recipe if isinstance(recipe, RecipeDoc) else load_recipe(recipe, env_file=options.env_file)
    plan = compile_plan(doc)
    return Runner(plan, options).run()
