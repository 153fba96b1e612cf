"""Docs cannot drift: every `$ vexrun …` transcript in the README is re-run, in order, in a copy of the
repository's recipes and examples, and compared (timings and the state hash normalised)."""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

_VOLATILE = [
    (re.compile(r"\d+m\d+\.\ds\b"), "<time>"),
    (re.compile(r"(\.vexrun/state/[\w.-]+)-[0-9a-f]{8}"), r"\1-<hash>"),
]


def _normal(text: str) -> str:
    for pattern, repl in _VOLATILE:
        text = pattern.sub(repl, text)
    return text.rstrip("\n")


def _transcripts() -> list[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    out: list[tuple[str, str]] = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        command: str | None = None
        lines: list[str] = []
        for line in block.splitlines():
            if line.startswith("$ "):
                if command is not None:
                    out.append((command, "\n".join(lines)))
                command, lines = line[2:], []
            else:
                lines.append(line)
        if command is not None:
            out.append((command, "\n".join(lines)))
    return out


TRANSCRIPTS = _transcripts()


def test_readme_has_transcripts() -> None:
    commands = [c.split()[1] for c, _ in TRANSCRIPTS]
    for verb in ("run", "search", "validate", "inspect"):
        assert verb in commands


@pytest.mark.slow
def test_readme_transcripts_are_real(tmp_path: Path, update_goldens: bool) -> None:
    for name in ("recipes", "examples"):
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns(".vexrun", "out"))
    shutil.copytree(ROOT / "tests" / "data", tmp_path / "tests" / "data")
    readme = (ROOT / "README.md").read_text()
    for command, expected in TRANSCRIPTS:
        argv = shlex.split(command)
        assert argv[0] == "vexrun"
        res = run_cli(*argv[1:], cwd=tmp_path, env={"COLUMNS": "100"})
        assert "Traceback" not in res.output, command
        if update_goldens:
            old = f"$ {command}\n{expected}\n" if expected else f"$ {command}\n"
            readme = readme.replace(old, f"$ {command}\n{res.out}", 1)
            continue
        assert _normal(res.out) == _normal(expected), f"$ {command}\n{res.out}"
    if update_goldens:
        (ROOT / "README.md").write_text(readme)


def test_readme_recipes_validate(tmp_path: Path) -> None:
    text = (ROOT / "README.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "version: 1" in b]
    assert blocks
    (tmp_path / "recipes").mkdir()
    for i, block in enumerate(blocks):
        recipe = tmp_path / "recipes" / f"readme-{i}.yaml"
        recipe.write_text(block)
        res = run_cli("validate", str(recipe))
        assert res.code == 0, res.output
