"""The GitOps examples are valid workflows whose every ``vexrun …`` command (and option) exists, whose
secrets come from the CI's secret store, and whose recipe validates. Also: signing and sync stay out of
``import vexrun`` and ``vexrun --help`` (cryptography is imported lazily)."""

from __future__ import annotations

import importlib
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from conftest import ROOT, run_cli

GITOPS = ROOT / "examples" / "gitops"
WORKFLOWS = sorted(GITOPS.glob("*-actions.yml"))


def _cli() -> click.Group:
    from vexrun.cli import cli

    for name in ("keys", "sync"):
        for command in importlib.import_module(f"vexrun.cli.{name}").COMMANDS:
            cli.commands.setdefault(command.name, command)  # type: ignore[arg-type]
    return cli


def _commands(text: str) -> list[list[str]]:
    """Every ``vexrun`` invocation in a shell script (one per line; shell variables left as words)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("vexrun "):
            continue
        out.append(shlex.split(line.split(" && ")[0].split(" | ")[0]))
    return out


def _resolve(argv: list[str]) -> tuple[click.Command, list[click.Command]]:
    """The command ``argv`` names, and the groups on the way; fails on an unknown subcommand or option."""
    cmd: click.Command = _cli()
    chain = [cmd]
    args = argv[1:]
    while isinstance(cmd, click.Group):
        ctx = click.Context(cmd)
        i = 0
        while i < len(args) and args[i].startswith("-"):
            i += 1 + _takes_value(cmd, args[i])
        if i == len(args) and args:  # options of the group alone: `vexrun --version`
            break
        assert i < len(args), f"{argv}: a group without a subcommand"
        sub = cmd.get_command(ctx, args[i])
        assert sub is not None, f"{argv}: no command {args[i]!r} in {cmd.name}"
        _check_options(cmd, args[:i], argv)
        cmd, args = sub, args[i + 1 :]
        chain.append(cmd)
    _check_options(cmd, args, argv)
    return cmd, chain


def _takes_value(cmd: click.Command, opt: str) -> int:
    for p in cmd.params:
        if isinstance(p, click.Option) and opt.split("=")[0] in p.opts + p.secondary_opts:
            return 0 if p.is_flag or "=" in opt else 1
    return 0


def _check_options(cmd: click.Command, args: list[str], argv: list[str]) -> None:
    known = {o for p in cmd.params if isinstance(p, click.Option) for o in p.opts + p.secondary_opts}
    known |= {"--help", "-h"}
    for a in args:
        if a.startswith("-") and not a.startswith("$"):
            assert a.split("=")[0] in known, f"{argv}: {cmd.name} has no option {a}"


@pytest.mark.parametrize("path", WORKFLOWS, ids=[p.name for p in WORKFLOWS])
def test_workflow_is_valid_and_runs_only_real_commands(path: Path) -> None:
    doc: dict[Any, Any] = yaml.safe_load(path.read_text())
    triggers = doc.get("on", doc.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "schedule" in triggers and triggers["schedule"][0]["cron"]
    steps = [s for job in doc["jobs"].values() for s in job["steps"]]
    assert steps and all(isinstance(s, dict) and ("run" in s or "uses" in s) for s in steps)
    (action,) = [s for s in steps if "vexrun" in str(s.get("uses", ""))]  # vexrun's own action (action.yml)
    action_steps = yaml.safe_load((ROOT / "action.yml").read_text())["runs"]["steps"]
    commands = [c for s in steps + action_steps if "run" in s for c in _commands(s["run"])]
    verbs = {" ".join(c.name or "" for c in _resolve(argv)[1][1:]) for argv in commands}
    assert {"validate", "plan", "run", "sign", "verify", "sync init", "sync push"} <= verbs, verbs
    envs = [doc["jobs"][j].get("env", {}) for j in doc["jobs"]] + [s.get("env", {}) for s in steps]
    secrets = {k: v for e in envs for k, v in e.items() if k in ("VEXRUN_GIT_TOKEN", "VEXRUN_PASSPHRASE")}
    secrets["sign-key"] = action["with"]["sign-key"]
    assert set(secrets) == {"VEXRUN_GIT_TOKEN", "VEXRUN_PASSPHRASE", "sign-key"}
    assert all(re.fullmatch(r"\$\{\{ secrets\.\w+ \}\}", v) for v in secrets.values()), secrets
    for argv in commands:
        assert not any("secrets." in a for a in argv), argv  # secrets never on a command line


def test_the_gitops_recipe_validates() -> None:
    res = run_cli("validate", str((GITOPS / "nightly.vexrun.yaml").relative_to(ROOT)), env={"OPENAI_API_KEY": "x"})
    assert res.code == 0, res.output


def test_resolver_catches_typos() -> None:
    with pytest.raises(AssertionError, match="no command"):
        _resolve(["vexrun", "sync", "pish", "f"])
    with pytest.raises(AssertionError, match="no option"):
        _resolve(["vexrun", "sync", "push", "--form-recipe", "r"])


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys, json; print(json.dumps(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return {m.split(".")[0] for m in json.loads(out.splitlines()[-1])}


@pytest.mark.parametrize(
    "code",
    [
        "import vexrun",
        "import vexrun.cli.keys, vexrun.cli.sync",
        "import vexrun.crypto, vexrun.sync",
        "from vexrun.cli import cli\nimport vexrun.cli.sync as s\ncli.add_command(s.sync)\n"
        "try:\n    cli.main(['sync', '--help'], standalone_mode=False)\nexcept SystemExit:\n    pass",
    ],
)
def test_signing_and_sync_are_lazy(code: str) -> None:
    roots = _modules_after(code)
    assert "cryptography" not in roots and "pydantic" not in roots and "numpy" not in roots
