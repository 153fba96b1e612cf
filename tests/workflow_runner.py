"""Run a GitHub / Forgejo Actions workflow job here, step by step, the way a runner would.

Not a mock of Actions: the ``run:`` steps are executed as written, in order, by bash, with the job's and the
step's ``env:`` (``${{ … }}`` expressions resolved from the contexts a runner provides), and composite actions
(``uses:`` with an ``action.yml``, like vexrun's own) are expanded and their steps executed the same way, with
``inputs`` from ``with:`` and the ``action.yml`` defaults. ``GITHUB_ENV``, ``GITHUB_PATH``,
``GITHUB_STEP_SUMMARY`` and ``GITHUB_OUTPUT`` are real files, read between steps as a runner reads them.

What cannot run here is never skipped silently: a step is either executed, or matched by a named entry of
``Runner.replacements`` (``uses:`` prefix or step name → the local equivalent, e.g. ``actions/checkout`` →
copy the repository into the workspace), or the job fails. An expression this runner does not understand,
a step ``if:``, an unknown input or a secret the test did not provide fails the job too.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
NAME = re.compile(r"[A-Za-z_][\w-]*")


class WorkflowError(AssertionError):
    """The job failed, or uses something this runner cannot execute."""


@dataclass
class StepLog:
    name: str
    how: str  # "run", "replaced: <why>", "action <ref>"
    code: int = 0
    output: str = ""


@dataclass
class Runner:
    """One job of one workflow. ``env`` is the process environment the runner itself has (PATH, HOME…);
    ``overrides`` replace values the job's ``env:`` declares (each one is a place the test departs from the
    file, e.g. a backup URL pointing at a local server), ``extra_env`` adds variables the file does not
    declare."""

    workspace: Path
    temp: Path
    env: dict[str, str]
    secrets: dict[str, str]
    github: dict[str, str]
    overrides: dict[str, str] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: ``uses:`` prefix, or ``name:`` of a run step → (why, what to do instead)
    replacements: dict[str, tuple[str, Callable[[Runner, dict[str, Any]], None]]] = field(default_factory=dict)
    #: ``uses:`` of a remote action → the directory holding its action.yml at the pinned ref
    remote_actions: dict[str, Callable[[str], Path]] = field(default_factory=dict)
    log: list[StepLog] = field(default_factory=list)
    path_prepend: list[str] = field(default_factory=list)
    job_env: dict[str, str] = field(default_factory=dict)

    # -- expressions --------------------------------------------------------------------------------------------
    def contexts(self, inputs: dict[str, str] | None = None, action_path: Path | None = None) -> dict[str, Any]:
        github = dict(self.github, workspace=str(self.workspace))
        if action_path is not None:
            github["action_path"] = str(action_path)
        ctx: dict[str, Any] = {
            "secrets": self.secrets,
            "github": github,
            "runner": {"temp": str(self.temp), "os": "Linux"},
            "env": self.job_env,
        }
        if inputs is not None:
            ctx["inputs"] = inputs
        return ctx

    def expand(self, value: Any, ctx: dict[str, Any]) -> str:
        """Resolve every ``${{ context.name }}`` in ``value`` (a scalar from the YAML)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value)

        def one(m: re.Match[str]) -> str:
            expr = m.group(1)
            head, _, name = expr.partition(".")
            if head not in ctx or not NAME.fullmatch(name):
                raise WorkflowError(f"unsupported expression ${{{{ {expr} }}}}")
            if name not in ctx[head]:
                raise WorkflowError(f"${{{{ {expr} }}}} is not provided by the test (context {head})")
            return str(ctx[head][name])

        return EXPR.sub(one, text)

    def expand_map(self, mapping: dict[str, Any] | None, ctx: dict[str, Any]) -> dict[str, str]:
        return {str(k): self.expand(v, ctx) for k, v in (mapping or {}).items()}

    # -- the job ------------------------------------------------------------------------------------------------
    def run_job(self, workflow: Path, job: str) -> None:
        doc = yaml.safe_load(workflow.read_text())
        spec = doc["jobs"][job]
        self.job_env = self.expand_map(spec.get("env"), self.contexts())
        unknown = set(self.overrides) - set(self.job_env)
        if unknown:
            raise WorkflowError(f"overrides of variables the job does not declare: {sorted(unknown)}")
        self.job_env.update(self.overrides)
        self.job_env.update(self.extra_env)
        for i, step in enumerate(spec["steps"]):
            self.step(step, f"{workflow.name} step {i + 1}", self.contexts(), {})

    def step(self, step: dict[str, Any], where: str, ctx: dict[str, Any], scope_env: dict[str, str]) -> None:
        name = str(step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0])
        if "if" in step:
            raise WorkflowError(f"{where} ({name}): `if:` is not supported by this runner")
        uses = step.get("uses")
        replaced = self._replacement(uses if uses else name)
        if replaced is not None:
            why, do = replaced
            self.log.append(StepLog(name, f"replaced: {why}"))
            do(self, step)
            return
        env = {**scope_env, **self.expand_map(step.get("env"), ctx)}
        if uses:
            self.action(str(uses), self.expand_map(step.get("with"), ctx), env, where)
            return
        if "run" not in step:
            raise WorkflowError(f"{where} ({name}): neither run nor uses")
        script = self.expand(step["run"], ctx)
        self.shell(name, script, step.get("shell"), env, step.get("working-directory"))

    def _replacement(self, key: str) -> tuple[str, Callable[[Runner, dict[str, Any]], None]] | None:
        for prefix, value in self.replacements.items():
            if key == prefix or key.startswith(prefix + "@"):
                return value
        return None

    def action(self, uses: str, with_: dict[str, str], env: dict[str, str], where: str) -> None:
        if uses.startswith("./"):
            path = self.workspace / uses[2:]
        else:
            repo, _, ref = uses.rpartition("@")
            if repo not in self.remote_actions:
                raise WorkflowError(f"{where}: no local equivalent for the action {uses}")
            path = self.remote_actions[repo](ref)
        meta = yaml.safe_load((path / "action.yml").read_text())
        if meta["runs"]["using"] != "composite":
            raise WorkflowError(f"{where}: {uses} is not a composite action")
        declared = meta.get("inputs", {})
        unknown = set(with_) - set(declared)
        if unknown:
            raise WorkflowError(f"{where}: {uses} has no input(s) {sorted(unknown)}")
        inputs = {k: str(v.get("default", "")) for k, v in declared.items()}
        inputs.update(with_)
        for k, v in declared.items():
            if v.get("required") and not inputs.get(k):
                raise WorkflowError(f"{where}: {uses} needs input {k!r}")
        self.log.append(StepLog(uses, f"action {uses}"))
        ctx = self.contexts(inputs, path)
        scope = {**env, "GITHUB_ACTION_PATH": str(path)}
        for i, step in enumerate(meta["runs"]["steps"]):
            if "run" in step and "shell" not in step:
                raise WorkflowError(f"{uses} step {i + 1}: composite run steps need a shell")
            self.step(step, f"{uses} step {i + 1}", ctx, scope)

    def shell(self, name: str, script: str, shell: str | None, env: dict[str, str], cwd: str | None) -> None:
        files = {k: self.temp / f"{k.lower()}-{len(self.log)}" for k in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT")}
        for f in files.values():
            f.write_text("")
        script_file = self.temp / f"step-{len(self.log)}.sh"
        script_file.write_text(script)
        if shell in (None, ""):
            argv = ["bash", "-e", str(script_file)]
        elif shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script_file)]
        else:
            raise WorkflowError(f"{name}: shell {shell!r} is not supported here")
        path = os.pathsep.join([*reversed(self.path_prepend), self.env.get("PATH", "")])
        full = {
            **self.env,
            "PATH": path,
            "CI": "true",
            "GITHUB_ACTIONS": "true",
            "GITHUB_WORKSPACE": str(self.workspace),
            "RUNNER_TEMP": str(self.temp),
            "GITHUB_STEP_SUMMARY": str(self.summary_file),
            **{k: str(v) for k, v in files.items()},
            **{f"GITHUB_{k.upper()}": v for k, v in self.github.items()},
            **self.job_env,
            **env,
        }
        proc = subprocess.run(
            argv,
            cwd=self.workspace / (cwd or ""),
            env=full,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=900,
        )
        out = proc.stdout.decode("utf-8", "replace")
        self.log.append(StepLog(name, "run", proc.returncode, out))
        if proc.returncode != 0:
            raise WorkflowError(f"step {name!r} failed with exit {proc.returncode}:\n{out[-4000:]}")
        for line in files["GITHUB_PATH"].read_text().splitlines():
            if line.strip():
                self.path_prepend.append(line.strip())
        self.job_env.update(_env_file(files["GITHUB_ENV"].read_text()))

    @property
    def summary_file(self) -> Path:
        return self.temp / "step-summary.md"

    def output(self) -> str:
        return "\n".join(f"--- {s.name} [{s.how}] exit {s.code}\n{s.output}" for s in self.log)


def snapshot_repo(repo: Path, root: Path, tag: str | None = None) -> str:
    """Commit the working tree of ``root`` as it is (tracked and new files, its .gitignore honoured) into a new
    repository at ``repo``, tag it, and return its ``file://`` URL: what a forge would serve at that ref."""
    from vexrun.testing.git_servers import git

    git("init", "-q", "-b", "main", str(repo))
    gd = ["--git-dir", str(repo / ".git"), "--work-tree", str(root)]
    git(*gd, "add", "-A")
    git(*gd, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "snapshot")
    if tag:
        git(*gd, "tag", tag)
    return f"file://{repo / '.git'}"


def _env_file(text: str) -> dict[str, str]:
    """``NAME=value`` lines and ``NAME<<DELIM`` blocks, as a runner reads ``$GITHUB_ENV``."""
    out: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        if "<<" in line and ("=" not in line or line.index("<<") < line.index("=")):
            key, delim = line.split("<<", 1)
            body = []
            for more in lines:
                if more == delim:
                    break
                body.append(more)
            out[key] = "\n".join(body)
        elif "=" in line:
            key, value = line.split("=", 1)
            out[key] = value
    return out
