"""The stages that act once a run is complete: ``sign`` the ``.vmig.jsonl`` output, then ``sync`` it (push it
to the encrypted git-backed backup). Both act on the output of the recipe's first ``vmig`` target, named
in their settings by the compiler."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from ..vmig.batch import Batch
from .base import Stage, StageContext, StageResult, StageSpec

__all__ = ["SignStage", "SyncStage"]


class _Publish(Stage):
    #: the event the run's log records when the stage has acted
    event: ClassVar[str] = ""

    def __init__(self, settings: Any, output: str) -> None:
        self.settings = settings
        self.output = output

    @classmethod
    def from_spec(cls, spec: StageSpec, ctx: StageContext) -> Stage:
        settings, output = spec.config
        return cls(settings, output)._bind(spec, ctx)

    @property
    def path(self) -> Path:
        """The output file, resolved the way its sink resolves it."""
        assert self.ctx is not None and self.ctx.run is not None
        path: Path = self.ctx.run.resolve_path(self.output)
        return path

    def process(self, batch: Batch) -> StageResult:
        return StageResult.passed(batch)


class SignStage(_Publish):
    name = "sign"
    event = "signed"

    def finish(self) -> StageResult:
        from ..crypto.sign import sign_file

        assert self.ctx is not None
        self.ctx.say(f"Signing {self.path} ...")
        sig = sign_file(self.path, self.settings)
        return StageResult(Batch(records=[]), figures={"sign": {"file": str(self.path), "signature": str(sig)}})


class SyncStage(_Publish):
    name = "sync"
    event = "synced"

    def finish(self) -> StageResult:
        from ..sync.api import push_file

        assert self.ctx is not None
        self.ctx.say(f"Pushing {self.path} to the encrypted backup ...")
        result = push_file(self.path, self.settings)
        figures = {
            "generation": result.generation,
            "objects_uploaded": result.objects_uploaded,
            "objects_total": result.objects_total,
            "bytes_pushed": result.bytes_pushed,
            "unchanged": result.unchanged,
        }
        return StageResult(Batch(records=[]), figures={"sync": figures})
