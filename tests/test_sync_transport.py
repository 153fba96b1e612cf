"""The git transport: ``git daemon`` with receive-pack, ``git http-backend`` behind Basic auth (right and
wrong token), a pre-receive hook emulating a forge's size limit, and canary secrets that must never show
up in output, logs, exceptions, ``.git``, config files, the server log or any process's command line."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from vexrun.testing.data import write_synthetic  # noqa: E402
from vexrun.testing.git_servers import BareRepo, GitDaemon, GitHttpServer, git, vexrun_argv  # noqa: E402

TOKEN = "tok-CANARY-5b0e3d"
PASS = "pass-CANARY-a61f0c"
SMALL = ("--bucket-size", "16k", "--max-object-size", "64k")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith("VEXRUN_")}
    e.update(
        XDG_CONFIG_HOME=str(tmp_path / "cfg"), XDG_STATE_HOME=str(tmp_path / "state"), VEXRUN_PASSPHRASE=PASS,
        VEXRUN_DEBUG="1", NO_COLOR="1",
    )  # fmt: skip
    return e


def sx(env: dict[str, str], state: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    argv = vexrun_argv("sync", "--state-dir", str(state), *args)
    return subprocess.run(argv, env={**env, **extra}, capture_output=True, text=True, timeout=300)


def test_git_daemon_with_receive_pack(tmp_path: Path, env: dict[str, str]) -> None:
    BareRepo(tmp_path / "srv" / "backup.git")
    export = write_synthetic(tmp_path / "m.vmig.jsonl", 40, dims=16)
    with GitDaemon(tmp_path / "srv") as daemon:
        url = daemon.url_for("backup.git")
        assert sx(env, tmp_path / "a", "init", url, *SMALL).returncode == 0
        assert sx(env, tmp_path / "a", "push", str(export)).returncode == 0
        res = sx(env, tmp_path / "b", "init", "--restore", url)
        assert res.returncode == 0, res.stderr
        out = tmp_path / "out.vmig.jsonl"
        assert sx(env, tmp_path / "b", "pull", "--out", str(out)).returncode == 0
    assert out.read_bytes() == export.read_bytes()


def test_forge_size_limit_is_reported_and_small_objects_pass(tmp_path: Path, env: dict[str, str]) -> None:
    export = write_synthetic(tmp_path / "m.vmig.jsonl", 120, dims=64)
    strict = BareRepo(tmp_path / "strict.git")
    strict.set_size_limit(80 * 1024)
    assert (
        sx(env, tmp_path / "a", "init", strict.url, "--bucket-size", "200k", "--max-object-size", "1M").returncode == 0
    )
    res = sx(env, tmp_path / "a", "push", str(export))
    assert res.returncode == 1, res.stderr
    assert "the remote refused the push" in res.stderr and "refuses files over 81920 bytes" in res.stderr
    assert "Traceback" not in res.stderr
    ok = BareRepo(tmp_path / "ok.git")
    ok.set_size_limit(80 * 1024)
    assert sx(env, tmp_path / "b", "init", ok.url, "--bucket-size", "32k", "--max-object-size", "64k").returncode == 0
    res = sx(env, tmp_path / "b", "push", str(export))
    assert res.returncode == 0, res.stderr
    out = tmp_path / "out.vmig.jsonl"
    assert sx(env, tmp_path / "c", "init", "--restore", ok.url).returncode == 0
    assert sx(env, tmp_path / "c", "pull", "--out", str(out)).returncode == 0
    assert out.read_bytes() == export.read_bytes()


def _cmdlines() -> list[str]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                out.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
    return out


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs /proc")
def test_canaries_never_leak(tmp_path: Path, env: dict[str, str]) -> None:
    export = write_synthetic(tmp_path / "m.vmig.jsonl", 80, dims=32)
    BareRepo(tmp_path / "srv" / "backup.git")
    outputs: list[str] = []
    e = {**env, "VEXRUN_GIT_TOKEN": TOKEN}

    def run(state: str, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        res = sx(e, tmp_path / state, *args, **extra)
        outputs.extend([res.stdout, res.stderr])
        return res

    with GitHttpServer(tmp_path / "srv", token=TOKEN, delay=0.0) as srv:
        url = srv.url_for("backup.git")
        assert run("a", "init", url, *SMALL).returncode == 0
        # watch every process's command line while a slowed-down push runs
        srv.set_delay(0.3)
        seen: list[str] = []
        stop = threading.Event()

        def watch() -> None:
            while not stop.is_set():
                seen.extend(c for c in _cmdlines() if "git" in c)
                time.sleep(0.01)

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            assert run("a", "push", str(export)).returncode == 0
        finally:
            stop.set()
            watcher.join()
        srv.set_delay(0.0)
        assert any("receive-pack" in c or "git push" in c or "remote-http" in c for c in seen), seen[:5]
        assert not [c for c in seen if TOKEN in c or PASS in c]
        assert run("b", "init", "--restore", url).returncode == 0
        assert run("b", "pull", "--out", str(tmp_path / "o.vmig.jsonl")).returncode == 0
        assert run("b", "status").returncode == 0
        assert run("b", "keys", "list").returncode == 0
        assert run("b", "diff", str(export)).returncode == 0
        wrong = run("b", "pull", "--out", str(tmp_path / "o.vmig.jsonl"), VEXRUN_GIT_TOKEN="wrong-" + TOKEN[::-1])
        assert wrong.returncode == 1 and "refused the credential" in wrong.stderr
        bad = run("b", "pull", "--out", str(tmp_path / "o.vmig.jsonl"), VEXRUN_PASSPHRASE="nope-" + PASS[::-1])
        assert bad.returncode == 6
        server_log = (tmp_path / "srv" / "http-server.log").read_text()
    assert " 401 " in server_log and " 200 " in server_log
    for text in outputs + [server_log]:
        assert TOKEN not in text and PASS not in text
    for state in ("a", "b"):
        clone = tmp_path / state / "repo"
        config = git("config", "--list", "--show-origin", cwd=clone)
        assert TOKEN not in config and PASS not in config and "@127.0.0.1" not in config
        for path in (tmp_path / state).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                assert TOKEN.encode() not in data and PASS.encode() not in data, path
    assert not list((tmp_path / "cfg").rglob("*")) or all(
        TOKEN.encode() not in p.read_bytes() for p in (tmp_path / "cfg").rglob("*") if p.is_file()
    )


def test_wrong_token_and_urls_with_credentials(tmp_path: Path, env: dict[str, str]) -> None:
    BareRepo(tmp_path / "srv" / "backup.git")
    with GitHttpServer(tmp_path / "srv", token=TOKEN, username="bob") as srv:
        url = srv.url_for("backup.git")
        res = sx(env, tmp_path / "a", "init", url, "--username", "bob", VEXRUN_GIT_TOKEN="not-" + TOKEN)
        assert res.returncode == 1 and "refused the credential" in res.stderr
        assert not (tmp_path / "a" / "config.json").exists()
        res = sx(env, tmp_path / "a", "init", url, "--username", "mallory", VEXRUN_GIT_TOKEN=TOKEN)
        assert res.returncode == 1
        with_user = url.replace("http://", "http://bob@")
        res = sx(env, tmp_path / "a", "init", with_user, VEXRUN_GIT_TOKEN=TOKEN)
        assert res.returncode == 0, res.stderr
        assert "bob@" not in git("config", "remote.origin.url", cwd=tmp_path / "a" / "repo")
        res = sx(env, tmp_path / "z", "init", url.replace("http://", f"http://bob:{TOKEN}@"))
        assert res.returncode == 2 and TOKEN not in res.stderr + res.stdout


def test_provider_urls_and_usernames() -> None:
    from vexrun.sync.remote import resolve_remote

    gh = resolve_remote(provider="github", owner="acme", repo="memory")
    assert (gh.url, gh.username) == ("https://github.com/acme/memory.git", "x-access-token")
    cb = resolve_remote(provider="codeberg", owner="alice", repo="mem.git")
    assert (cb.url, cb.username) == ("https://codeberg.org/alice/mem.git", "alice")
    gl = resolve_remote(provider="gitlab", owner="g", repo="r", username="me")
    assert (gl.url, gl.username) == ("https://gitlab.com/g/r.git", "me")
    gt = resolve_remote(provider="gitea", owner="o", repo="r", host="git.example.org")
    assert gt.url == "https://git.example.org/o/r.git"
    from vexrun.errors import UsageError

    with pytest.raises(UsageError, match="needs host"):
        resolve_remote(provider="gitea", owner="o", repo="r")
