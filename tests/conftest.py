from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

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
