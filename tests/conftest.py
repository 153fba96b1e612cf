from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-goldens", action="store_true", help="rewrite golden files from current output")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


def run_cli(
    *args: str, cwd: Path | None = None, env: dict[str, str | None] | None = None, timeout: float = 600
) -> CliResult:
    """Run ``python -m vexrun ARGS`` in a child process, the way a user runs it. ``env`` adds variables to the
    environment; a value of None removes one."""
    merged: dict[str, str | None] = {**os.environ, "NO_COLOR": "1", **(env or {})}
    full_env = {k: v for k, v in merged.items() if v is not None}
    proc = subprocess.run(
        [sys.executable, "-m", "vexrun", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"))


@pytest.fixture
def cli() -> type[CliResult]:
    return run_cli  # type: ignore[return-value]


@pytest.fixture
def update_goldens(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-goldens"))


def vx(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """``vexrun ARGS`` in this process through ``vexrun.cli.main``; (exit code, stdout, stderr)."""
    from vexrun.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


def partitioned_read(
    source: Any, n: int, batch_size: int, meanwhile: Callable[[], object] | None = None
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """A source's ``partitions(n, batch_size)`` read one after the other: (the partitions' names, the ids of the
    serial read's batches, the ids of the partitions' batches in order). Checks on the way that each partition,
    resumed from its own first cursor, gives the rest of its batches and stops at its end. ``meanwhile`` runs
    after the partitions are planned, before they are read (a write behind their back)."""
    serial = [[r.id for r in b.records] for b, _ in source.batches(None, batch_size)]
    parts = source.partitions(n, batch_size)
    if meanwhile is not None:
        meanwhile()
    split: list[list[str]] = []
    for _, cursor in parts:
        pages = [([r.id for r in b.records], cur) for b, cur in source.batches(cursor, batch_size)]
        split += [ids for ids, _ in pages]
        resumed = [[r.id for r in b.records] for b, _ in source.batches(pages[0][1], batch_size)]
        assert resumed == [ids for ids, _ in pages[1:]]
    return [name for name, _ in parts], serial, split
