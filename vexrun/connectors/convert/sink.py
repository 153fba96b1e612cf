"""The ``convert`` target: the run's records as fine-tuning / chat examples, byte for byte what ``vexrun convert``
writes from the ``.vmig.jsonl`` file a ``vmig`` target of the same run holds.

It *is* that: the records of each batch go to a ``.vmig.jsonl`` spool in the run's state directory, through the
``vmig`` sink itself (without vectors, which no format reads), so the spool is resumable the way that target is
(cut back to its committed length on resume) and follows the rule every target follows (an id written again
replaces the earlier record). When the run completes, the spool is converted with
:func:`vexrun.convert.convert_file`, which writes ``<output>.partial`` and renames it into place, and then
removed. Converting from a spool rather than batch by batch is what makes the output exact: a pair of turn
records may straddle two batches, and a later record of an id takes the place of the earlier one.

While it is open the target holds ``<output>.lock`` on each file it writes (:class:`~vexrun.appendfile.OutputLock`).
A run killed after the examples were published and before it was marked complete finds them in place when
resumed and leaves them as they are. What was dropped, and why, is :meth:`ConvertSink.report`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from ...appendfile import OutputLock, writable_parent
from ...convert import FORMATS, Options, convert_file, resolve_format, split_paths
from ...errors import UsageError
from ...vmig.batch import Batch
from ..base import PluginConfig, RunContext, Sink, WriteResult
from ..vmig.sink import VmigSink, VmigSinkConfig

__all__ = ["ConvertSink", "ConvertSinkConfig"]

#: every name ``vexrun convert --to`` takes: the formats and their aliases
_NAMES = tuple(name for f in FORMATS.values() for name in (f.name, *f.aliases))
FormatName = Literal[_NAMES]  # type: ignore[valid-type]
#: the formats that put a system prompt in each example
_WITH_SYSTEM = ("openai", "anthropic", "chat", "sharegpt")


class ConvertSinkConfig(PluginConfig):
    """``type: convert`` — write the run's records as fine-tuning / chat examples (see `vexrun adapters`)."""

    type: Literal["convert"] = "convert"
    format: FormatName = Field(
        description="The format, as `vexrun convert --to` takes it (`vexrun adapters` lists them)."
    )
    path: str = Field(min_length=1, description="The output file, relative to the recipe (.gz compresses).")
    system: str | None = Field(
        default=None, description="A system prompt for every example (openai, anthropic, chat, sharegpt)."
    )
    split: float | None = Field(
        default=None,
        gt=0,
        lt=1,
        description="Write <stem>.train and <stem>.validation files beside `path`, this share of the "
        "conversations for training (a stable hash of the conversation id: no conversation lands in both).",
    )
    check: bool = Field(
        default=False, description="Hold every example to the format's rules; drop (and count) what fails."
    )
    max_tokens: int = Field(
        default=65_536,
        ge=1,
        description="With check: the longest example, in tokens (tiktoken's o200k_base where installed, else "
        "about 4 characters a token).",
    )
    separator: str | None = Field(
        default=None, description="text: put this between memories instead of one memory per line."
    )

    @model_validator(mode="after")
    def _options_fit_the_format(self) -> ConvertSinkConfig:
        name = resolve_format(self.format).name
        if self.separator is not None and name != "text":
            raise ValueError(f"separator: only the text format takes one (this is {self.format})")
        if self.system is not None and name not in _WITH_SYSTEM:
            raise ValueError(f"system: the {self.format} format has no system prompt")
        if "max_tokens" in self.model_fields_set and not self.check:
            raise ValueError("max_tokens: applies to examples held to the rules: set check: true")
        return self


def _spool_name(output: Path) -> str:
    """The spool's file name in the state directory: one per output path, so two targets never share one."""
    digest = hashlib.blake2b(str(output.absolute()).encode("utf-8", "surrogatepass"), digest_size=6).hexdigest()
    return f"{output.name}.{digest}.vmig.jsonl"


class ConvertSink(Sink):
    name = "convert"

    def __init__(self, config: ConvertSinkConfig, ctx: RunContext) -> None:
        super().__init__(config, ctx)
        self.cfg = config
        self.format = resolve_format(config.format)
        self.opts = Options(system=config.system, max_tokens=config.max_tokens, separator=config.separator)
        self.path = Path(ctx.resolve_path(config.path))
        self.outputs = list(split_paths(self.path)) if config.split is not None else [self.path]
        self.spool_path = Path(ctx.state_dir) / "convert" / _spool_name(self.path)
        self.report_path = self.spool_path.with_name(self.spool_path.name + ".report.json")
        self.spool = VmigSink(VmigSinkConfig(path=str(self.spool_path), edges=False), ctx)
        self.locks: list[OutputLock] = []
        #: the examples were published by the run this one resumes: nothing left to do
        self.done: dict[str, Any] | None = None
        self.result: dict[str, Any] = {}

    def identity(self) -> str:
        return str(self.path)

    def check(self) -> str:
        writable_parent(self.path, self.cfg.path)
        names = ", ".join(p.name for p in self.outputs)
        return f"{self.path.parent}: directory writable (for {names}, {self.format.name} examples)"

    def _cannot(self, exc: OSError) -> UsageError:
        name = exc.filename or self.path
        return UsageError(f"{name}: cannot write the output {self.cfg.path} ({exc.strerror or exc})")

    def open(self, state: dict[str, Any] | None) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"{self.path.parent}: cannot create the output directory ({exc.strerror or exc})"
            ) from None
        for out in self.outputs:
            if out.is_dir():
                raise UsageError(f"{out}: is a directory (the output must be a file name)")
        # before anything touches the outputs or their partial files: another run may be writing them
        for out in self.outputs:
            self.locks.append(OutputLock(out).acquire())
        spool_state = (state or {}).get("spool")
        if spool_state and self._published():
            self.done = dict(state or {})
            self.result = json.loads(self.report_path.read_text())
            return
        try:
            self.spool_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise self._cannot(exc) from None
        self.spool.open(spool_state)

    def _published(self) -> bool:
        """Whether a run finished publishing the examples (the spool is gone, its report and the outputs are
        there)."""
        spool_left = self.spool.partial.exists() or self.spool_path.exists()
        return not spool_left and self.report_path.exists() and all(p.exists() for p in self.outputs)

    def write(self, batch: Batch) -> WriteResult:
        if self.done is not None:
            return WriteResult(written=len(batch))
        # no format reads a vector: the spool holds records only
        return self.spool.write(Batch(records=batch.records))

    def state(self) -> dict[str, Any]:
        if self.done is not None:
            return self.done
        return {"spool": self.spool.state()}

    def finalize(self) -> None:
        if self.done is not None:
            return
        self.spool.finalize()
        rep = convert_file(
            self.spool_path, self.format, self.path, opts=self.opts, split=self.cfg.split, check=self.cfg.check
        )
        self.result = {
            "format": self.format.name,
            "records": rep.records,
            "examples": rep.examples,
            "written": rep.written,
            "dropped": dict(sorted(rep.dropped.items())),
            "merged_turns": rep.merged_turns,
        }
        try:
            tmp = self.report_path.with_name(self.report_path.name + ".tmp")
            tmp.write_text(json.dumps(self.result, indent=2, ensure_ascii=False))
            os.replace(tmp, self.report_path)
            # the report first: once the spool is gone, a resumed run knows the examples are published from it
            self.spool_path.unlink(missing_ok=True)
            self.spool_path.with_name(self.spool_path.name + ".meta.json").unlink(missing_ok=True)
        except OSError as exc:
            raise self._cannot(exc) from None
        self.ctx.info(self.headline())

    def headline(self) -> str:
        """One line on what was written and dropped."""
        r = self.result
        written = ", ".join(f"{n:,} to {path}" for path, n in r.get("written", {}).items())
        dropped = r.get("dropped", {})
        why = ", ".join(f"{k} {v:,}" for k, v in dropped.items())
        total = sum(dropped.values())
        return (
            f"{self.path}: {r.get('examples', 0):,} {self.format.name} examples ({written}) from "
            f"{r.get('records', 0):,} records; dropped {total:,}" + (f" ({why})" if why else "")
        )

    def count(self, namespace: str | None = None) -> int:
        # what `run.verify` asks first: a target of training examples is reported as not verified
        raise NotImplementedError("it holds training examples, not records: there is nothing to read back")

    def report(self) -> dict[str, Any]:
        """What the run wrote and dropped (by reason), for the run report; empty before :meth:`finalize`."""
        return dict(self.result)

    def close(self) -> None:
        self.spool.close()
        for lock in self.locks:
            lock.release()
        self.locks = []
