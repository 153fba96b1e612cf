"""Docs cannot drift: every `$ vexrun …` transcript in the README is re-run and compared."""

from __future__ import annotations

import re
import shlex

import pytest

from conftest import ROOT, run_cli


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
    assert any(c.startswith("vexrun inspect") for c, _ in TRANSCRIPTS)
    assert any(c.startswith("vexrun validate") for c, _ in TRANSCRIPTS)


@pytest.mark.parametrize(("command", "expected"), TRANSCRIPTS, ids=[c for c, _ in TRANSCRIPTS])
def test_readme_transcript_is_real(command: str, expected: str) -> None:
    argv = shlex.split(command)
    assert argv[0] == "vexrun"
    res = run_cli(*argv[1:])
    assert "Traceback" not in res.output
    assert res.out.rstrip("\n") == expected.rstrip("\n")
