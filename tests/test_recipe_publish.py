"""A recipe's `signing:` and `sync:` sections: the run signs its .vmig.jsonl output and pushes it to the
encrypted git-backed backup as plan stages, and a second machine restores the same file."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import run_cli
from vexrun.testing.data import write_synthetic
from vexrun.testing.git_servers import BareRepo

PASS = "publish-pass-CANARY-8e1f"


def test_run_signs_and_pushes_its_output(tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "VEXRUN_PASSPHRASE": PASS,
        "VEXRUN_GIT_TOKEN": None,
        "VEXRUN_SYNC_DIR": None,
    }
    assert run_cli("keys", "generate", "--no-passphrase", env=env).code == 0
    bare = BareRepo(tmp_path / "backup.git")
    init = run_cli("sync", "--state-dir", str(tmp_path / "sync-a"), "init", bare.url, env=env)
    assert init.code == 0, init.output
    write_synthetic(tmp_path / "in.vmig.jsonl", 300, dims=16)
    recipe = tmp_path / "nightly.yaml"
    recipe.write_text(
        f"""version: 1
source: {{type: vmig, path: in.vmig.jsonl}}
target: {{type: vmig, path: out/memories.vmig.jsonl}}
signing:
  comment: nightly export
sync:
  url: {bare.url}
  state_dir: {tmp_path / "sync-a"}
  passphrase: ${{VEXRUN_PASSPHRASE}}
"""
    )
    plan = run_cli("plan", str(recipe), env=env)
    assert (
        plan.code == 0 and "sign (out/memories.vmig.jsonl)" in plan.out and "sync (out/memories.vmig.jsonl)" in plan.out
    )
    assert "sync.passphrase  ${VEXRUN_PASSPHRASE} (set)" in plan.out
    res = run_cli("run", "--json", str(recipe), env=env)
    assert res.code == 0, res.output
    counts = json.loads(res.out)["counts"]
    out = tmp_path / "out" / "memories.vmig.jsonl"
    assert counts["sign"]["signature"] == str(out) + ".sig"
    assert counts["sync"]["generation"] >= 1 and counts["sync"]["objects_uploaded"] >= 1
    verify = run_cli("verify", str(out), env=env)
    assert verify.code == 0, verify.output
    again = run_cli("run", "--json", str(recipe), env=env)
    assert again.code == 0 and json.loads(again.out)["counts"]["sync"]["unchanged"] is True
    # a second machine restores the same bytes
    restore = run_cli("sync", "--state-dir", str(tmp_path / "sync-b"), "init", "--restore", bare.url, env=env)
    assert restore.code == 0, restore.output
    pulled = tmp_path / "restored.vmig.jsonl"
    pull = run_cli("sync", "--state-dir", str(tmp_path / "sync-b"), "pull", "--out", str(pulled), env=env)
    assert pull.code == 0, pull.output
    assert pulled.read_bytes() == out.read_bytes()
    for r in (plan, res, again, restore, pull):
        assert PASS not in r.output


def test_signing_needs_a_vmig_target(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: sqlite, path: m.db}\nsigning: {}\n"
    )
    res = run_cli("validate", str(recipe))
    assert res.code == 1
    assert "r.yaml:4:1: error[needs-vmig-target] signing: 'signing' acts on the run's .vmig.jsonl output" in res.out
