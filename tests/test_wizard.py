"""``vexrun init`` and ``vexrun`` alone: the wizard in a real terminal (tmux), and the same choices as flags.

The terminal tests drive ``vexrun`` in a private tmux server (``tmux -L <unique>``), type with ``send-keys``
and read the screen with ``capture-pane``; they fail, never skip, when tmux is missing.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import DATA, ROOT, vx

EXPORT = DATA / "exports" / "claude" / "conversations.json"
PASTED_KEY = "gsk_live0123456789abcdefABCDEF0123"


class Terminal:
    """A 120x40 terminal in a tmux server of its own, running one command."""

    def __init__(self, command: str, cwd: Path, env: dict[str, str]) -> None:
        self.socket = f"vexrun-wizard-{uuid.uuid4().hex[:12]}"
        assert shutil.which("tmux"), "tmux is not installed (apt-get install tmux): the wizard tests need it"
        unset = " ".join(f"-u {name}" for name in ("GROQ_API_KEYS", "GROQ_API_KEY", "MY_GROQ_KEYS"))
        assigns = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        shell = f"env {unset} {assigns} {command}; echo EXIT=$?; sleep 120"
        self._tmux("new-session", "-d", "-x", "120", "-y", "40", "-c", str(cwd), shell)

    def _tmux(self, *args: str) -> str:
        done = subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, timeout=10)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def screen(self) -> str:
        """What the terminal shows, with the scrollback."""
        return self._tmux("capture-pane", "-p", "-S", "-300")

    def wait(self, pattern: str, timeout: float = 15) -> str:
        """The screen once ``pattern`` (a regex) is on it; fails with the screen after ``timeout`` seconds."""
        end = time.monotonic() + timeout
        while True:
            text = self.screen()
            if re.search(pattern, text):
                return text
            if time.monotonic() > end:
                pytest.fail(f"{pattern!r} did not appear; the screen:\n{text}")
            time.sleep(0.1)

    def type(self, text: str) -> None:
        self._tmux("send-keys", "-l", text)

    def key(self, *keys: str) -> None:
        self._tmux("send-keys", *keys)

    def prompt(self, question: str, timeout: float = 15) -> None:
        """Wait until the last question on the screen (a line starting with '?') matches ``question``."""
        end = time.monotonic() + timeout
        while True:
            asked = [line for line in self.screen().splitlines() if line.startswith("? ")]
            if asked and re.search(question, asked[-1]):
                time.sleep(0.05)  # prompt_toolkit reads keys once the prompt is drawn
                return
            if time.monotonic() > end:
                pytest.fail(f"the question {question!r} was not asked; the screen:\n{self.screen()}")
            time.sleep(0.05)

    def answer(self, question: str, *keys: str, text: str | None = None) -> None:
        """Wait for ``question``, then type ``text`` (replacing what is pre-filled) and press ``keys`` (Enter)."""
        self.prompt(question)
        if text is not None:
            self.key("C-u")
            self.type(text)
        self.key(*(keys or ("Enter",)))

    def confirm(self, question: str, yes: bool) -> None:
        """A yes/no question: one key, no Enter."""
        self.prompt(question)
        self.type("y" if yes else "n")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


@pytest.fixture
def terminal(tmp_path: Path) -> Iterator[type[Terminal]]:
    opened: list[Terminal] = []

    def start(command: str, cwd: Path = tmp_path, env: dict[str, str] | None = None) -> Terminal:
        base = {
            "NO_COLOR": "1",
            "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "PYTHONPATH": str(ROOT),
        }
        t = Terminal(command, cwd, {**base, **(env or {})})
        opened.append(t)
        return t

    yield start  # type: ignore[misc]
    for t in opened:
        t.kill()


VEXRUN = f"{shlex.quote(sys.executable)} -m vexrun"


def test_vexrun_alone_on_a_terminal_writes_a_recipe_that_validates_and_runs(
    terminal: type[Terminal], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copy(EXPORT, tmp_path / "conversations.json")
    t = terminal(VEXRUN)
    screen = t.wait(r"Source:")
    assert re.search(r"claude-export\s+installed", screen) and re.search(r"qdrant\s+(installed|needs: pip)", screen)
    t.answer(r"Source:", text="claude")
    t.answer(r"source path:", "Space", text="nope.json")  # checked as it is typed: the error is on the screen
    t.wait(r"nope\.json: no such file or directory")
    t.answer(r"source path:", text="conversations.json")
    t.answer(r"source chunk:", text="exchange")
    t.answer(r"source sender:")
    t.answer(r"source namespace \(blank: unset\):", text="claude")
    t.answer(r"Set another claude-export setting\?")
    t.answer(r"Target:", text="sqlite")
    t.answer(r"target path:", text="out/memory.db")
    t.answer(r"target namespace")
    t.answer(r"Set another sqlite setting\?")
    t.answer(r"Check now that the source and the target answer")
    screen = t.wait(r"Mode:")
    assert "ok    source (claude-export): claude-export:conversations.json: readable" in screen
    t.answer(r"Mode:", text="raw")
    t.answer(r"Embedder:", text="fake")
    t.answer(r"embedder dims:")
    t.answer(r"embedder model:")
    t.answer(r"Set another fake setting\?")
    t.answer(r"Also keep a \.vmig\.jsonl copy")
    t.answer(r"Write the recipe to:", text="recipes/memory.yaml")
    screen = t.wait(r"Run it now\?")
    assert "wrote recipes/memory.yaml" in screen
    assert re.search(r"plan for recipes/memory\.yaml \(memory\) · mode raw", screen)  # the plan, as `vexrun plan`
    assert "resume   no checkpoint: a run starts at the beginning" in screen
    t.answer(r"Run it now\?")
    screen = t.wait(r"EXIT=\d+", timeout=30)
    assert "EXIT=0" in screen, screen
    assert re.search(r"completed: run 1, 1 batches", screen)
    assert re.search(r"target \(sqlite\)\s+(\d+)\s+\1\s+0\s+0", screen)  # every record read was written

    recipe = tmp_path / "recipes" / "memory.yaml"
    text = recipe.read_text()
    assert text.startswith("# yaml-language-server: $schema=")
    schema = text.splitlines()[0].split("$schema=")[1]
    assert (recipe.parent / schema).resolve() == (ROOT / "schemas" / "recipe.schema.json").resolve()
    data = yaml.safe_load(text)
    assert data["source"] == {
        "type": "claude-export",
        "path": "../conversations.json",  # typed relative to the terminal's directory, kept relative to the recipe
        "chunk": "exchange",
        "namespace": "claude",
    }
    assert data["target"] == {"type": "sqlite", "path": "../out/memory.db"} and data["embed"] == {"type": "fake"}
    assert (tmp_path / "out" / "memory.db").exists()
    code, out, _ = vx(capsys, "validate", str(recipe))
    assert code == 0 and "valid: mode raw" in out


def test_the_wizard_keeps_keys_out_of_the_recipe(
    terminal: type[Terminal], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copy(EXPORT, tmp_path / "conversations.json")
    t = terminal(f"{VEXRUN} init -o smart.yaml", env={"MY_GROQ_KEYS": "k1,k2"})
    t.answer(r"Source:", text="claude")
    t.answer(r"source path:", text="conversations.json")
    for question in (r"source chunk:", r"source sender:", r"source namespace", r"Set another claude-export"):
        t.answer(question)
    t.answer(r"Target:", text="qdrant")
    t.answer(r"target url \(blank: unset\):")
    t.answer(r"target path \(blank: unset\):", text="qdrant-data")
    t.answer(r"target collection:", text="memories")
    # a secret setting: only the name of a variable; a pasted key is refused as it is typed
    t.answer(r"target api_key: the NAME of the environment variable holding it \(e\.g\. QDRANT_API_KEY\)", "Space")
    t.type(PASTED_KEY)
    t.wait(r"looks like a secret itself")
    t.key("C-u")
    t.type("QDRANT_API_KEY")
    t.key("Enter")
    for question in (r"target namespace", r"Set another qdrant setting"):
        t.answer(question)
    t.confirm(r"Check now that the source and the target answer", False)
    t.answer(r"Mode:", text="extract")
    t.answer(r"LLM providers for extraction:", text="choose")
    t.answer(r"Providers \(space to tick", "Space", "Enter")  # groq, the first
    t.answer(r"groq keys: the NAME of the environment variable", text=PASTED_KEY)
    t.wait(r"looks like a secret itself")
    t.answer(r"groq keys: the NAME of the environment variable", text="MY_GROQ_KEYS")
    t.answer(r"Embedder:", text="fake")
    for question in (r"embedder dims:", r"embedder model:", r"Set another fake setting"):
        t.answer(question)
    t.confirm(r"Also keep a \.vmig\.jsonl copy", True)
    t.answer(r"copy path:", text="out/facts.vmig.jsonl")
    t.confirm(r"Sign the \.vmig\.jsonl output", True)
    t.answer(r"signing key id or key file")
    t.confirm(r"Push it to an encrypted git backup", False)
    screen = t.wait(r"Run it now\?")
    assert re.search(r"plan for smart\.yaml \(smart\) · mode extract", screen)
    t.confirm(r"Run it now\?", False)
    screen = t.wait(r"EXIT=\d+")
    assert "EXIT=0" in screen and "run it later with: vexrun smart.yaml" in screen

    text = (tmp_path / "smart.yaml").read_text()
    assert PASTED_KEY not in text
    data = yaml.safe_load(text)
    assert data["llm"]["providers"] == [{"type": "groq", "api_keys": "${MY_GROQ_KEYS}"}]
    assert data["targets"] == [
        {"type": "qdrant", "path": "qdrant-data", "collection": "memories", "api_key": "${QDRANT_API_KEY}"},
        {"type": "vmig", "path": "out/facts.vmig.jsonl"},
    ]
    assert data["signing"] == {} and "sync" not in data
    assert "#   export MY_GROQ_KEYS=…" in text and "#   export QDRANT_API_KEY=…" in text
    monkeypatch.setenv("MY_GROQ_KEYS", "k1,k2")
    monkeypatch.setenv("QDRANT_API_KEY", "q" * 20)
    code, out, err = vx(capsys, "validate", str(tmp_path / "smart.yaml"))
    assert code == 0 and "valid: mode extract" in out, err


def _flags(tmp_path: Path, *more: str) -> list[str]:
    return ["init", "--from", "claude", "-f", f"path={EXPORT}", "--to", "sqlite", "-t", f"path={tmp_path}/m.db", *more]


def test_init_from_flags_writes_the_recipe_the_wizard_would(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "sub" / "flags.yaml"
    code, stdout, err = vx(capsys, *_flags(tmp_path, "--embedder", "fake", "-e", "dims=8", "-o", str(out)))
    assert code == 0, err
    assert f"wrote {out}" in stdout
    data = yaml.safe_load(out.read_text())
    assert data["source"]["type"] == "claude-export" and data["source"]["path"] == str(EXPORT)
    assert data["target"] == {"type": "sqlite", "path": "../m.db"} and data["embed"] == {"type": "fake", "dims": 8}
    code, stdout, err = vx(capsys, "run", str(out))
    assert code == 0 and "completed: run 1" in stdout + err
    # an existing recipe is kept unless --force
    code, _, err = vx(capsys, *_flags(tmp_path, "-o", str(out)))
    assert code == 2 and "exists (--force overwrites it)" in err
    # the cascade: keys only as references, from the variable a person names
    monkeypatch.chdir(tmp_path)
    args = _flags(tmp_path, "--mode", "smart", "--provider", "groq,ollama", "--key-env", "groq=TEAM_GROQ_KEYS")
    code, stdout, err = vx(capsys, *args, "--copy", "m.vmig.jsonl", "--sign", "--sync-url", "/srv/backup.git")
    assert code == 0, err
    assert "set TEAM_GROQ_KEYS before running it" in stdout
    data = yaml.safe_load((tmp_path / "recipe.yaml").read_text())
    assert data["mode"] == "smart" and data["embed"] == {"type": "local"}
    assert data["llm"]["providers"] == [{"type": "groq", "api_keys": "${TEAM_GROQ_KEYS}"}, {"type": "ollama"}]
    assert [t["type"] for t in data["targets"]] == ["sqlite", "vmig"]
    assert data["signing"] == {} and data["sync"] == {"url": "/srv/backup.git"}


@pytest.mark.parametrize(
    ("more", "message"),
    [
        (["-f", "path=missing.json"], "source claude-export path: missing.json: no such file or directory"),
        (["-t", "paht=x.db"], "target sqlite has no setting 'paht' (did you mean 'path'?)"),
        (["--key-env", f"groq={PASTED_KEY}", "--provider", "groq"], "looks like a secret itself"),
        (["--sign"], "--sign and --sync-url publish a .vmig.jsonl file: add --copy PATH"),
        (["--sync-url", "https://me:hunter2@example.com/b.git", "--copy", "c.vmig.jsonl"], "no credentials"),
        (["--embedder", "nope"], "unknown embedder 'nope'"),
    ],
)
def test_init_refuses_what_the_wizard_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], more: list[str], message: str
) -> None:
    code, _, err = vx(capsys, *_flags(tmp_path, *more, "-o", str(tmp_path / "r.yaml")))
    assert code == 2 and message in err, err
    assert not (tmp_path / "r.yaml").exists() and not list(tmp_path.glob(".*partial*"))


@pytest.mark.parametrize(
    ("target", "setting", "message"),
    [
        ("qdrant", f"api_key={PASTED_KEY}", "looks like a secret itself"),
        ("pgvector", "dsn=postgresql://me:hunter2@db.example.com/memory", "a password does not go into the recipe"),
        ("pgvector", "dsn=postgresql://db.example.com:99999/memory", "not a connection URL"),
        ("chroma", "url=localhost", "a URL looks like http://127.0.0.1:6333"),
    ],
)
def test_secrets_and_connection_strings_are_checked(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], target: str, setting: str, message: str
) -> None:
    code, _, err = vx(capsys, "init", "--from", "claude", "-f", f"path={EXPORT}", "--to", target, "-t", setting)
    assert code == 2 and message in err, err


def test_a_dsn_from_the_environment_and_a_key_reference_are_written_as_references(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pg.yaml"
    args = ["init", "--from", "claude", "-f", f"path={EXPORT}", "--to", "pgvector", "-t", "dsn=DATABASE_URL"]
    code, _, err = vx(capsys, *args, "--embedder", "openai", "-e", "api_key=${EMBED_KEY}", "-o", str(out))
    assert code == 0, err
    data = yaml.safe_load(out.read_text())
    assert data["target"]["dsn"] == "${DATABASE_URL}" and data["embed"]["api_key"] == "${EMBED_KEY}"


def test_vexrun_alone_off_a_terminal_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = vx(capsys)
    assert code == 2 and "Usage: vexrun [OPTIONS] COMMAND" in out + err and "  init  " in out + err
    code, _, err = vx(capsys, "init")
    assert code == 2 and "give --from TYPE and --to TYPE" in err
