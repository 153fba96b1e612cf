"""``vexrun sync`` end to end against real git remotes on this machine: the acceptance path (init, push,
restore on a second state dir, pull: identical file, over http-backend with a token), rollback and fork
detection by rewinding the bare repository, wrong passphrase, damaged backups leaving the target alone,
key changes, rekey + compact, two machines pushing in turn, and push --from-recipe."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from conftest import vx
from vexrun.testing.data import write_synthetic  # noqa: E402
from vexrun.testing.git_servers import BareRepo, GitHttpServer, git, vexrun_argv  # noqa: E402

TOKEN = "tok-CANARY-91c2e7"
PASS = "pass-CANARY-4d8b1"
SMALL = ("--bucket-size", "16k", "--max-object-size", "64k")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {
        "XDG_CONFIG_HOME": str(tmp_path / "cfg"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "VEXRUN_PASSPHRASE": PASS,
    }
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    for k in ("VEXRUN_GIT_TOKEN", "VEXRUN_RECOVERY_CODE", "VEXRUN_NEW_PASSPHRASE", "VEXRUN_SYNC_DIR"):
        monkeypatch.delenv(k, raising=False)
    return values


def sub(*args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``vexrun ARGS`` in a child process (the environment of the test, plus ``extra``)."""
    return subprocess.run(
        vexrun_argv(*args), env={**os.environ, **(extra or {})}, capture_output=True, text=True, timeout=300
    )


def _state(tmp_path: Path, name: str) -> list[str]:
    return ["sync", "--state-dir", str(tmp_path / name)]


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "memories.vmig.jsonl", 60, dims=32)


def _edit(path: Path, line: int, old: bytes, new: bytes) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    assert old in lines[line]
    lines[line] = lines[line].replace(old, new, 1)
    path.write_bytes(b"".join(lines))


def test_acceptance_http_backend_with_a_token(tmp_path: Path, env: dict[str, str], export: Path) -> None:
    from vexrun.crypto.keys import generate_key
    from vexrun.crypto.sign import sign_file_detailed

    public, key_path, pub_path = generate_key(passphrase=None, directory=tmp_path / "keys")
    sign_file_detailed(export, key=str(key_path))
    BareRepo(tmp_path / "srv" / "backup.git")
    with GitHttpServer(tmp_path / "srv", token=TOKEN, username="alice") as srv:
        url = srv.url_for("backup.git")
        e = {"VEXRUN_GIT_TOKEN": TOKEN}
        res = sub(*_state(tmp_path, "laptop"), "init", url, "--username", "alice", *SMALL, extra=e)
        assert res.returncode == 0, res.stderr
        assert "RECOVERY CODE" in res.stdout
        res = sub(*_state(tmp_path, "laptop"), "push", str(export), extra=e)
        assert res.returncode == 0 and "pushed generation 2" in res.stdout, res.stderr
        # a new machine: a second state dir, nothing but the URL, the token and the passphrase
        res = sub(*_state(tmp_path, "new"), "init", "--restore", url, "--username", "alice", extra=e)
        assert res.returncode == 0 and "trusting generation 2" in res.stdout, res.stderr
        assert (tmp_path / "new" / "repo" / ".git" / "shallow").exists()
        out = tmp_path / "restored" / "memories.vmig.jsonl"
        out.parent.mkdir()
        res = sub(*_state(tmp_path, "new"), "pull", "--out", str(out), extra=e)
        assert res.returncode == 0, res.stderr
        assert out.read_bytes() == export.read_bytes()
        assert (out.parent / "memories.vmig.jsonl.meta.json").read_bytes() == Path(
            str(export) + ".meta.json"
        ).read_bytes()
        res = sub("verify", str(out), "--pubkey", str(pub_path))
        assert res.returncode == 0, res.stderr
        res = sub(*_state(tmp_path, "new"), "status", extra={"VEXRUN_GIT_TOKEN": TOKEN, "VEXRUN_PASSPHRASE": ""})
        assert res.returncode == 0 and "up to date" in res.stdout and "60 records" in res.stdout, res.stderr
        log = (tmp_path / "srv" / "http-server.log").read_text()
        assert "git-receive-pack 200 user=alice" in log and TOKEN not in log and PASS not in log


def test_rollback_fork_and_tofu(
    tmp_path: Path, env: dict[str, str], export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0  # generation 1
    for gen in range(2, 6):  # generations 2..5
        _edit(export, gen, b'"pinned":', b'"pinned" :')
        code, out, err = vx(capsys, *m1, "push", str(export))
        assert code == 0 and f"generation {gen}" in out, err
    commits = bare.history()  # newest first: gen 5, 4, 3, 2, 1
    bare.rewind(commits[2])  # generation 3
    code, _, err = vx(capsys, *m1, "pull", "--out", str(tmp_path / "o.vmig.jsonl"))
    assert code == 7 and "remote is older than what this machine last saw" in err
    assert not (tmp_path / "o.vmig.jsonl").exists()
    code, _, err = vx(capsys, *m1, "status")
    assert code == 0
    code, _, err = vx(capsys, *m1, "pull", "--out", str(tmp_path / "o.vmig.jsonl"), "--allow-rollback")
    assert code == 0 and "accepted a rollback" in err
    # a fresh machine trusts what it finds, and says so
    code, out, _ = vx(capsys, *m2, "init", "--restore", bare.url, "--expect-generation", "3")
    assert code == 0 and "trusting generation 3" in out
    # back to generation 5; both machines see it
    bare.rewind(commits[0])
    assert vx(capsys, *m1, "pull", "--out", str(tmp_path / "o.vmig.jsonl"))[0] == 0
    assert vx(capsys, *m2, "pull", "--out", str(tmp_path / "o2.vmig.jsonl"))[0] == 0
    # two different generation-6 manifests: m1 pushes A; the forge rewinds; m2 pushes B
    _edit(export, 10, b'"pinned":', b'"pinned" :')
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    bare.rewind(commits[0])
    other = write_synthetic(tmp_path / "other.vmig.jsonl", 30, dims=32, seed=7)
    code, out, err = vx(capsys, *m2, "push", str(other), "--allow-shrink")
    assert code == 0 and "generation 6" in out, err
    code, _, err = vx(capsys, *m1, "pull", "--out", str(tmp_path / "o.vmig.jsonl"))
    assert code == 8 and "fork" in err
    code, _, err = vx(capsys, *m1, "push", str(export))
    assert code == 8
    assert vx(capsys, *m1, "pull", "--out", str(tmp_path / "o.vmig.jsonl"), "--accept-fork")[0] == 0
    assert (tmp_path / "o.vmig.jsonl").read_bytes() == other.read_bytes()


def _vandalise(bare: BareRepo, tmp_path: Path, change: str) -> None:
    """Commit a change to the backup as a forge (or a disk) could: straight into the bare repository."""
    work = tmp_path / "vandal"
    if work.exists():
        import shutil

        shutil.rmtree(work)
    git("clone", "--quiet", bare.url, str(work))
    objects = sorted((work / "vexrun" / "objects").glob("*/*"))
    target = max(objects, key=lambda p: p.stat().st_size)
    if change == "missing-object":
        target.unlink()
    elif change == "truncated-object":
        target.write_bytes(target.read_bytes()[:-100])
    elif change == "missing-final-chunk":
        data = target.read_bytes()
        body = len(data) - 56
        full = body // 16400
        target.write_bytes(data[: 56 + full * 16400])
    elif change == "truncated-manifest":
        m = work / "vexrun" / "manifest.vxm"
        m.write_bytes(m.read_bytes()[:40])
    elif change == "all-objects":
        for p in objects:
            p.unlink()
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qam", change, cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("missing-object", "missing"),
        ("truncated-object", "damaged"),
        ("missing-final-chunk", "final short chunk is missing"),
        ("truncated-manifest", "manifest.vxm"),
    ],
)
def test_damaged_backup_leaves_the_target_untouched(
    tmp_path: Path, env: dict[str, str], export: Path, capsys: pytest.CaptureFixture[str], change: str, message: str
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    _vandalise(bare, tmp_path, change)
    out_dir = tmp_path / "restore"
    out_dir.mkdir()
    target = out_dir / "memories.vmig.jsonl"
    target.write_bytes(b"the previous good copy\n")
    code, _, err = vx(capsys, *m1, "pull", "--out", str(target), "--accept-fork")
    assert code == 1 and message in err and "Traceback" not in err, err
    assert target.read_bytes() == b"the previous good copy\n"
    assert sorted(p.name for p in out_dir.iterdir()) == ["memories.vmig.jsonl"]


def test_wrong_passphrase_fails_before_any_object_is_read(
    tmp_path: Path,
    env: dict[str, str],
    export: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    code, out, _ = vx(capsys, *m1, "init", bare.url, *SMALL)
    recovery = out.split("\n")[3].strip()
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    _vandalise(bare, tmp_path, "all-objects")  # any object read would fail with "missing"
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "not the passphrase")
    code, _, err = vx(capsys, *m1, "pull", "--out", str(tmp_path / "x.vmig.jsonl"), "--accept-fork")
    assert code == 6 and "wrong passphrase" in err and "missing" not in err
    monkeypatch.delenv("VEXRUN_PASSPHRASE")
    monkeypatch.setenv("VEXRUN_RECOVERY_CODE", recovery[:-1] + ("A" if recovery[-1] != "A" else "B"))
    code, _, err = vx(capsys, *m1, "pull", "--out", str(tmp_path / "x.vmig.jsonl"), "--accept-fork")
    assert code == 6 and "recovery code" in err


def test_passphrase_change_keeps_the_recovery_code_working(
    tmp_path: Path,
    env: dict[str, str],
    export: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
    code, out, _ = vx(capsys, *m1, "init", bare.url, *SMALL)
    recovery = out.split("\n")[3].strip()
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    code, out, _ = vx(capsys, *m1, "keys", "list", "--json")
    import json

    keys = json.loads(out)
    old = next(k["key_id"] for k in keys if k["kind"] == "passphrase")
    monkeypatch.setenv("VEXRUN_NEW_PASSPHRASE", "the new passphrase 2")
    code, out, err = vx(capsys, *m1, "keys", "add", "--label", "new")
    assert code == 0, err
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "the new passphrase 2")
    code, out, err = vx(capsys, *m1, "keys", "remove", old)
    assert code == 0 and "stays in git history" in err
    restored = tmp_path / "r.vmig.jsonl"
    monkeypatch.delenv("VEXRUN_PASSPHRASE")
    monkeypatch.setenv("VEXRUN_RECOVERY_CODE", recovery)
    assert vx(capsys, *m2, "init", "--restore", bare.url)[0] == 0
    assert vx(capsys, *m2, "pull", "--out", str(restored))[0] == 0
    assert restored.read_bytes() == export.read_bytes()
    monkeypatch.delenv("VEXRUN_RECOVERY_CODE")
    monkeypatch.setenv("VEXRUN_PASSPHRASE", PASS)
    assert vx(capsys, *m2, "pull", "--out", str(restored))[0] == 6
    code, _, err = vx(
        capsys, *m1, "keys", "remove", keys[0]["key_id"] if keys[0]["key_id"] != old else keys[1]["key_id"]
    )
    assert code in (2, 6)


def test_status_diff_and_one_object_per_changed_record(
    tmp_path: Path,
    env: dict[str, str],
    export: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    code, out, _ = vx(capsys, *m1, "push", str(export), "--json")
    import json

    first = json.loads(out)
    assert first["objects_uploaded"] == first["objects_total"] > 3
    code, out, _ = vx(capsys, *m1, "push", str(export))
    assert code == 0 and "unchanged" in out
    _edit(export, 17, b'"pinned":false', b'"pinned":true')
    code, out, _ = vx(capsys, *m1, "diff", str(export), "--json")
    d = json.loads(out)
    assert (d["records_changed"], d["records_added"], d["buckets_changed"], d["objects_to_upload"]) == (1, 0, 1, 1)
    code, out, _ = vx(capsys, *m1, "push", str(export), "--json")
    second = json.loads(out)
    assert second["objects_uploaded"] == 1 and second["generation"] == 3
    monkeypatch.delenv("VEXRUN_PASSPHRASE")
    code, out, _ = vx(capsys, *m1, "status")
    assert code == 0 and "generation:  3" in out and "not verified" in out
    monkeypatch.setenv("VEXRUN_PASSPHRASE", PASS)
    code, out, _ = vx(capsys, *m1, "status", "--verify", "--json")
    assert json.loads(out)["status_verified"] is True


def test_rekey_and_compact(
    tmp_path: Path,
    env: dict[str, str],
    export: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    assert vx(capsys, *m2, "init", "--restore", bare.url)[0] == 0
    monkeypatch.setenv("VEXRUN_NEW_PASSPHRASE", "after the leak")
    code, out, err = vx(capsys, *m1, "rekey")
    assert code == 0 and "NEW RECOVERY CODE" in out, err
    new_code = out.split("NEW RECOVERY CODE (shown once; the old one no longer works): ")[1].split()[0]
    assert len(bare.history()) == 3
    code, _, err = vx(capsys, *m1, "compact")
    assert code == 2 and "--yes" in err
    assert vx(capsys, *m1, "compact", "--yes")[0] == 0
    assert len(bare.history()) == 1
    restored = tmp_path / "r.vmig.jsonl"
    assert vx(capsys, *m2, "pull", "--out", str(restored))[0] == 6  # the old passphrase no longer opens it
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "after the leak")
    code, _, err = vx(capsys, *m2, "pull", "--out", str(restored))
    assert code == 0, err
    assert restored.read_bytes() == export.read_bytes()
    monkeypatch.delenv("VEXRUN_PASSPHRASE")
    monkeypatch.setenv("VEXRUN_RECOVERY_CODE", new_code)
    assert vx(capsys, *m2, "pull", "--out", str(restored))[0] == 0


def test_two_machines_push_in_turn_without_force(tmp_path: Path, env: dict[str, str], export: Path) -> None:
    """m2 fetched before m1 pushed; git's non-fast-forward rejection stops m2's push (no --force, ever)."""
    from vexrun.sync import engine
    from vexrun.sync import git as gitmod
    from vexrun.sync.errors import PullFirst
    from vexrun.sync.remote import resolve_remote
    from vexrun.sync.snapshot import build_snapshot
    from vexrun.sync.workspace import Secrets

    argvs: list[list[str]] = []
    gitmod.on_spawn.append(lambda p: argvs.append([str(a) for a in p.args]))  # type: ignore[union-attr]
    try:
        bare = BareRepo(tmp_path / "backup.git")
        remote = resolve_remote(url=bare.url)
        s = Secrets(PASS)
        engine.init_new(tmp_path / "m1", remote, token=None, passphrase=PASS, bucket_target=16384, max_object=65536)
        engine.init_restore(tmp_path / "m2", remote, token=None, secrets=s)
        session = engine.open_session(tmp_path / "m2", token=None, secrets=s)  # m2 has fetched generation 1
        assert engine.push(tmp_path / "m1", export, token=None, secrets=s).generation == 2
        other = write_synthetic(tmp_path / "other.vmig.jsonl", 20, dims=32, seed=3)
        built = build_snapshot(
            session.ws, session.keys, session.repo.repo_id, other, bucket_target=16384, max_object=65536,
            previous=session.manifest,
        )  # fmt: skip
        session.write_manifest(session.next_manifest(objects=built.entries, records=built.records))
        with pytest.raises(PullFirst, match="another device pushed first"):
            session.ws.commit_and_push("racing")
        with pytest.raises(PullFirst, match="has not pulled"):
            engine.push(tmp_path / "m2", other, token=None, secrets=s)
        assert engine.pull(tmp_path / "m2", tmp_path / "got.vmig.jsonl", token=None, secrets=s).generation == 2
        assert engine.push(tmp_path / "m2", other, token=None, secrets=s, max_shrink=None).generation == 3
    finally:
        gitmod.on_spawn.clear()
    pushes = [argv for argv in argvs if argv[1:2] == ["push"]]
    assert len(pushes) == 4 and not any(a.startswith("--force") or a == "-f" for argv in pushes for a in argv)


def test_push_from_recipe(
    tmp_path: Path, env: dict[str, str], export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    recipe = tmp_path / "job.vexrun.yaml"
    recipe.write_text(
        "version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: vmig, path: memories.vmig.jsonl}\n"
    )
    code, out, err = vx(capsys, *m1, "push", "--from-recipe", str(recipe))
    assert code == 0 and "pushed generation 2" in out, err
    bad = tmp_path / "nosink.vexrun.yaml"
    bad.write_text("version: 1\nsource: {type: vmig, path: in.vmig.jsonl}\ntarget: {type: sqlite, path: m.db}\n")
    code, _, err = vx(capsys, *m1, "push", "--from-recipe", str(bad))
    assert code != 0 and "no .vmig.jsonl target" in err and "Traceback" not in err
    code, _, err = vx(capsys, *m1, "push")
    assert code == 2


def test_usage_errors_are_one_line(tmp_path: Path, env: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = vx(capsys, "sync", "--state-dir", str(tmp_path / "none"), "pull")
    assert code == 2 and "no sync repository" in err and "Traceback" not in err
    code, _, err = vx(
        capsys, "sync", "--state-dir", str(tmp_path / "x"), "init", "https://u:secret@example.invalid/r.git"
    )
    assert code == 2 and "secret" not in err and "VEXRUN_GIT_TOKEN" in err
