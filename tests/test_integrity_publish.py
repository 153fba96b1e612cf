"""HIGH (issue 11): a run in which every LLM call failed (exit 3) used to sign and push its empty export as the
backup's newest generation (18 records → 0). Now a run that rejected records publishes nothing unless the
recipe says `publish: {on_rejects: publish}`: it still exits 3, its summary says why, and the remote's current
generation is the one the last good run pushed. (`sync.max_shrink: 1` turns off the other guard, which refuses
a push that drops records, so that this test sees the publish gate alone.)"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import ROOT, run_cli
from vexrun.testing.fake_api import Fault, chat_server
from vexrun.testing.git_servers import BareRepo

KEY = "gsk_publish_gate_CANARY_1"
PASS = "publish-gate-pass-CANARY-77"


def _recipe(tmp: Path, name: str, base_url: str, bare: BareRepo, extra: str = "") -> Path:
    recipe = tmp / f"{name}.yaml"
    recipe.write_text(
        f"""version: 1
mode: extract
source: {{type: claude-export, path: conversations.json, chunk: exchange}}
llm:
  providers:
    - type: groq
      base_url: {base_url}
      api_keys: "${{GROQ_TEST_KEYS}}"
      max_retries: 1
      retry_backoff: 0.01
embed: {{type: fake, dims: 16}}
target: {{type: vmig, path: out/facts.vmig.jsonl}}
signing: {{comment: nightly}}
sync:
  url: {bare.url}
  state_dir: {tmp / "sync"}
  passphrase: ${{VEXRUN_PASSPHRASE}}
  max_shrink: 1
{extra}"""
    )
    return recipe


def test_a_run_whose_llm_calls_all_fail_leaves_the_remote_generation_unchanged(tmp_path: Path) -> None:
    env = {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "xdg-state"),
        "VEXRUN_PASSPHRASE": PASS,
        "VEXRUN_GIT_TOKEN": None,
        "VEXRUN_SYNC_DIR": None,
        "GROQ_TEST_KEYS": KEY,
    }
    assert run_cli("keys", "generate", "--no-passphrase", env=env).code == 0
    bare = BareRepo(tmp_path / "backup.git")
    init = run_cli("sync", "--state-dir", str(tmp_path / "sync"), "init", bare.url, env=env)
    assert init.code == 0, init.output
    shutil.copy(ROOT / "examples" / "exports" / "claude" / "conversations.json", tmp_path / "conversations.json")
    with chat_server(api_keys=[KEY]) as srv:
        good = run_cli("run", "--json", str(_recipe(tmp_path, "good", srv.url("/v1"), bare)), env=env)
        assert good.code == 0, good.output
        assert json.loads(good.out)["counts"]["sync"]["generation"] >= 1
        published = bare.head()
        signature = (tmp_path / "out" / "facts.vmig.jsonl.sig").read_bytes()

        # another machine (a fresh state dir: nothing cached) runs while the provider answers 500 to everything
        srv.fail(Fault.server_error(500, times=None))
        failed = run_cli("run", "--json", str(_recipe(tmp_path, "failing", srv.url("/v1"), bare)), env=env)
        assert failed.code == 3, failed.output
        summary = json.loads(failed.out)
        assert summary["rejected"] > 0 and summary["exit_code"] == 3
        assert "sign" not in summary["counts"] and "sync" not in summary["counts"]
        reason = summary["publish_skipped"]
        assert "not published (sign and sync skipped)" in reason and "publish.on_rejects is 'skip'" in reason
        assert reason in failed.err
        assert bare.head() == published  # the backup's current generation is still the good one
        assert (tmp_path / "out" / "facts.vmig.jsonl.sig").read_bytes() == signature  # nothing signed either

        # the run table says it too
        again = run_cli("run", "--fresh", str(_recipe(tmp_path, "failing", srv.url("/v1"), bare)), env=env)
        assert again.code == 3
        assert again.out.splitlines()[-1].startswith("not published (sign and sync skipped)")
        assert bare.head() == published

        # a recipe that asks for it publishes anyway
        forced = _recipe(tmp_path, "forced", srv.url("/v1"), bare, "publish: {on_rejects: publish}\n")
        plan = run_cli("plan", str(forced), env=env)
        assert "publish  on_rejects publish" in plan.out
        pushed = run_cli("run", "--json", str(forced), env=env)
        assert pushed.code == 3, pushed.output
        assert json.loads(pushed.out)["publish_skipped"] is None
        assert bare.head() != published
    for res in (good, failed, again, pushed):
        assert KEY not in res.output and PASS not in res.output
