"""examples/gitops/README.md walks a team from zero; every ``sh`` block in it runs here, in order, as the
person it is written for would run it: the set-up on the person's machine (create the backup, make the CI
key, check the recipe), then what the nightly job does (run, sign, push, with the same commands as the
action), then the restore on a second machine, whose last command verifies the restored file's signature.

Substitutions, and nothing else: the forge URL becomes the local smart-HTTP git server, the ``"<… token …>"``
placeholders the server's token; the passphrase is in the environment (VEXRUN_PASSPHRASE), as the page says.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, run_cli
from vexrun.testing.fake_api import openai_server
from vexrun.testing.git_servers import BareRepo, GitHttpServer, git

PAGE = ROOT / "examples" / "gitops" / "README.md"
FORGE_URL = "https://codeberg.org/alice/memory-backup.git"
TOKEN = "tok-CANARY-docs-31f0"
PASS = "pass-CANARY-docs-a9e4"


def _blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", PAGE.read_text(), re.S)


def _bash(script: str, cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", script],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, f"{script}\n--- exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout + proc.stderr


def test_the_page_has_the_walkthrough() -> None:
    text = "\n".join(_blocks())
    for command in ("vexrun sync init", "vexrun keys generate", "vexrun validate", "--restore", "sync pull", "verify"):
        assert command in text, command


@pytest.mark.slow
def test_every_command_on_the_page_runs(tmp_path: Path) -> None:
    blocks = _blocks()
    repo = tmp_path / "recipes-repo"
    shutil.copytree(ROOT / "examples", repo / "examples", ignore=shutil.ignore_patterns(".vexrun", "out"))
    git("init", "-q", "-b", "main", str(repo))
    (tmp_path / "srv").mkdir()
    BareRepo(tmp_path / "srv" / "memory-backup.git")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("VEXRUN_", "OPENAI_", "XDG_"))}
    base["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base.get("PATH", "")])

    def machine(name: str) -> dict[str, str]:
        return {
            **base,
            "HOME": str(tmp_path / name),
            "XDG_CONFIG_HOME": str(tmp_path / name / "config"),
            "XDG_STATE_HOME": str(tmp_path / name / "state"),
            "VEXRUN_PASSPHRASE": PASS,
            "NO_COLOR": "1",
        }

    with GitHttpServer(tmp_path / "srv", token=TOKEN, username="alice") as srv, openai_server() as api:
        url = srv.url_for("memory-backup.git")

        def sub(block: str) -> str:
            block = block.replace(FORGE_URL, url)
            return re.sub(r'"<[^>]*token[^>]*>"', TOKEN, block)

        assert FORGE_URL in blocks[0] and FORGE_URL in blocks[-1]
        person = machine("person")
        *setup, restore = blocks
        out = "".join(_bash(sub(b), repo, person) for b in setup)
        assert "RECOVERY CODE" in out and "valid" in out

        # the nightly job, with the action's commands, on a CI machine that has only the secrets
        keyfile = next((tmp_path / "person" / "config" / "vexrun" / "keys").glob("*.key"))
        ci = {**machine("ci"), "VEXRUN_GIT_TOKEN": TOKEN, "OPENAI_API_KEY": "sk-x", "OPENAI_BASE_URL": api.url("/v1")}
        recipe = "examples/gitops/nightly.vexrun.yaml"
        for argv in (
            ["run", recipe],
            ["sign", "--from-recipe", recipe, "--key", str(keyfile)],
            ["sync", "init", "--restore", url, "--username", "alice"],
            ["sync", "push", "--from-recipe", recipe],
        ):
            res = run_cli(*argv, cwd=repo, env=ci)  # type: ignore[arg-type]
            assert res.code == 0, f"{argv}: {res.output}"

        # the laptop: a second machine with the recipes repository (for the committed .pub)
        laptop = machine("laptop")
        out = _bash(sub(restore), repo, laptop)
        assert "valid:" in out
    export = repo / "out" / "nightly" / "memories.vmig.jsonl"
    assert (repo / "restored" / "memories.vmig.jsonl").read_bytes() == export.read_bytes()
    for secret in (TOKEN, PASS):
        assert secret not in out
