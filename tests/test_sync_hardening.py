"""``vexrun sync`` against a hostile or unlucky remote (issue 11, section 3), through the CLI and real git
servers on this machine: older generations listed and restored byte for byte, compaction that keeps the
last K of them, a push that would shrink the backup refused, damaged remote objects found by ``sync check``
(a single flipped byte in any object with ``--read-data``) and repaired by the next push, the plaintext
``config.json`` no longer steering the client, a lost push race reported as "pull first", a hostile file
name in the manifest refused, and relative paths for the state directory and the remote."""

from __future__ import annotations

import json
import random
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from conftest import vx
from vexrun.testing.data import write_synthetic
from vexrun.testing.git_servers import BareRepo, GitDaemon, GitHttpServer, git

TOKEN = "tok-CANARY-3a9f"
PASS = "pass-CANARY-77e0c"
SMALL = ("--bucket-size", "16k", "--max-object-size", "64k")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("VEXRUN_PASSPHRASE", PASS)
    for k in ("VEXRUN_GIT_TOKEN", "VEXRUN_RECOVERY_CODE", "VEXRUN_NEW_PASSPHRASE", "VEXRUN_SYNC_DIR"):
        monkeypatch.delenv(k, raising=False)


@pytest.fixture
def export(tmp_path: Path) -> Path:
    return write_synthetic(tmp_path / "memories.vmig.jsonl", 60, dims=32)


def _state(tmp_path: Path, name: str) -> list[str]:
    return ["sync", "--state-dir", str(tmp_path / name)]


def _edit(path: Path, line: int) -> None:
    """Change one record (same length), so one bucket changes."""
    lines = path.read_bytes().splitlines(keepends=True)
    for old, new in ((b'"pinned":false', b'"pinned":true '), (b'"pinned":true ', b'"pinned":false')):
        if old in lines[line]:
            lines[line] = lines[line].replace(old, new, 1)
            break
    else:
        lines[line] = lines[line].replace(b'"pinned":true', b'"pinned" :true', 1)
    path.write_bytes(b"".join(lines))


def _keep_lines(path: Path, n: int) -> None:
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:n]))


class Vandal:
    """A clone of the bare repository that commits and pushes as a forge (or a damaged disk) could."""

    def __init__(self, bare: BareRepo, work: Path) -> None:
        self.work = work
        if work.exists():
            shutil.rmtree(work)
        git("clone", "--quiet", bare.url, str(work))

    def pull(self) -> None:
        git("fetch", "--quiet", "origin", cwd=self.work)
        git("reset", "--quiet", "--hard", "origin/main", cwd=self.work)

    def objects(self) -> list[Path]:
        return sorted((self.work / "vexrun" / "objects").glob("*/*"))

    def push(self, message: str = "vandal") -> None:
        git("add", "--all", cwd=self.work)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", message, cwd=self.work)
        git("push", "-q", "origin", "HEAD:main", cwd=self.work)


def _flip(path: Path, pos: int) -> None:
    data = bytearray(path.read_bytes())
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))


# -- 1. older generations ----------------------------------------------------------------------------


def test_log_lists_generations_and_pull_restores_an_older_one_byte_for_byte(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vexrun.crypto.keys import generate_key
    from vexrun.crypto.sign import sign_file_detailed

    _, key_path, pub_path = generate_key(passphrase=None, directory=tmp_path / "keys")
    BareRepo(tmp_path / "srv" / "backup.git")
    with GitDaemon(tmp_path / "srv") as daemon:
        url = daemon.url_for("backup.git")
        m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
        assert vx(capsys, *m1, "init", url, *SMALL, "--label", "laptop")[0] == 0
        versions: dict[int, bytes] = {}
        sign_file_detailed(export, key=str(key_path))
        signature = Path(str(export) + ".sig").read_bytes()
        for gen in range(2, 6):
            if gen > 2:
                Path(str(export) + ".sig").unlink(missing_ok=True)
                _edit(export, gen * 7)
            code, out, err = vx(capsys, *m1, "push", str(export))
            assert code == 0 and f"generation {gen}" in out, err
            versions[gen] = export.read_bytes()
        code, out, err = vx(capsys, *m1, "log", "--json")
        assert code == 0, err
        log = json.loads(out)
        assert [g["generation"] for g in log] == [5, 4, 3, 2, 1]
        assert all(g["in_chain"] and g["readable"] for g in log) and log[0]["current"]
        assert [g["records"] for g in log] == [60, 60, 60, 60, 0]
        assert [g["bytes"] for g in log[:4]] == [len(versions[n]) for n in (5, 4, 3, 2)]
        assert {g["device"] for g in log} == {"laptop"}
        code, out, _ = vx(capsys, *m1, "log", "--limit", "2")
        assert code == 0 and "laptop (current)" in out and len(out.strip().splitlines()) == 3

        # a new machine: a shallow clone of generation 5; generation 2 comes from the history it fetches
        assert vx(capsys, *m2, "init", "--restore", url)[0] == 0
        assert (tmp_path / "m2" / "repo" / ".git" / "shallow").exists()
        restored = tmp_path / "restored" / "memories.vmig.jsonl"
        restored.parent.mkdir()
        code, out, err = vx(capsys, *m2, "pull", "--generation", "2", "--out", str(restored))
        assert code == 0 and "restored generation 2" in out and "restoring generation 2" in err, err
        assert restored.read_bytes() == versions[2] != versions[5]
        assert Path(str(restored) + ".sig").read_bytes() == signature
        assert vx(capsys, "verify", str(restored), "--pubkey", str(pub_path))[0] == 0
        for gen in (4, 3):
            code, _, err = vx(capsys, *m2, "pull", "--generation", str(gen), "--out", str(restored))
            assert code == 0 and restored.read_bytes() == versions[gen], err
        # restoring an old copy is not syncing: this machine still knows generation 5 as the current one
        code, out, _ = vx(capsys, *m2, "status")
        assert code == 0 and "up to date" in out
        code, _, err = vx(capsys, *m2, "pull", "--generation", "9", "--out", str(restored))
        assert code == 2 and "no generation 9" in err
        code, _, err = vx(capsys, *m2, "pull", "--generation", "5", "--out", str(restored))
        assert code == 0 and restored.read_bytes() == versions[5]


def test_compact_keeps_the_last_k_generations_restorable(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    versions: dict[int, bytes] = {}
    for gen in range(2, 8):
        if gen > 2:
            _edit(export, gen * 5)
        assert vx(capsys, *m1, "push", str(export))[0] == 0
        versions[gen] = export.read_bytes()
        if gen == 4:  # a commit that writes no generation
            monkeypatch.setenv("VEXRUN_NEW_PASSPHRASE", "a second passphrase")
            assert vx(capsys, *m1, "keys", "add", "--label", "second")[0] == 0
    # an object only generation 2 has: after compaction and gc it is gone from the server
    history = bare.history()  # generations 7, 6, 5, the key, 4, 3, 2, 1

    def blobs(commit: str) -> set[str]:
        return {w for w in git("ls-tree", "-r", commit, "vexrun/objects", cwd=bare.path).split() if len(w) == 40}

    only2 = blobs(history[-2]) - blobs(history[0]) - blobs(history[1]) - blobs(history[2])
    assert only2
    assert len(bare.history()) == 8
    code, out, err = vx(capsys, *m1, "compact", "--keep", "3", "--yes")
    assert code == 0 and "keeping generations 5..7" in out, err
    # commits of generations 5, 6, 7 (and nothing older) are left, with the same trees
    assert len(bare.history()) == 3
    git("gc", "--quiet", "--prune=now", cwd=bare.path)
    for blob in only2:
        assert subprocess.run(["git", "cat-file", "-e", blob], cwd=bare.path, capture_output=True).returncode != 0
    assert vx(capsys, *m2, "init", "--restore", bare.url)[0] == 0
    code, out, _ = vx(capsys, *m2, "log", "--json")
    assert [g["generation"] for g in json.loads(out)] == [7, 6, 5]
    restored = tmp_path / "r.vmig.jsonl"
    assert vx(capsys, *m2, "pull", "--generation", "5", "--out", str(restored))[0] == 0
    assert restored.read_bytes() == versions[5]
    code, _, err = vx(capsys, *m2, "pull", "--generation", "4", "--out", str(restored))
    assert code == 2 and "no longer in the backup's history" in err and "5..7" in err
    code, out, _ = vx(capsys, *m1, "compact", "--keep", "3", "--yes")
    assert code == 0 and "nothing to compact" in out
    # the machine that compacted keeps working
    _edit(export, 3)
    code, out, err = vx(capsys, *m1, "push", str(export))
    assert code == 0 and "generation 8" in out, err
    assert vx(capsys, *m2, "pull", "--out", str(restored))[0] == 0 and restored.read_bytes() == export.read_bytes()


# -- 2. a push that would shrink the backup ----------------------------------------------------------


def test_a_push_that_shrinks_the_backup_is_refused(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    tip = bare.head()
    _keep_lines(export, 50)  # -16.7%
    code, out, err = vx(capsys, *m1, "push", str(export))
    assert code == 10 and "from 60 to 50 records" in err and "--allow-shrink" in err and "Traceback" not in err
    assert bare.head() == tip
    code, out, err = vx(capsys, *m1, "push", str(export), "--max-shrink", "20%")
    assert code == 0 and "generation 3" in out, err
    export.write_bytes(b"")  # an empty export: what a run whose every call failed leaves
    code, _, err = vx(capsys, *m1, "push", str(export))
    assert code == 10 and "from 50 to 0 records" in err
    code, _, err = vx(capsys, *m1, "push", str(export), "--max-shrink", "0.5")
    assert code == 10
    code, _, err = vx(capsys, *m1, "push", str(export), "--max-shrink", "2")
    assert code == 2
    code, out, err = vx(capsys, *m1, "push", str(export), "--allow-shrink")
    assert code == 0 and "generation 4" in out, err


def test_the_recipe_sync_section_carries_max_shrink(tmp_path: Path, env: None, export: Path) -> None:
    from vexrun.sync.api import push_file
    from vexrun.sync.engine import init_new
    from vexrun.sync.errors import ShrinkRefused
    from vexrun.sync.remote import resolve_remote
    from vexrun.sync.settings import SyncSettings

    bare = BareRepo(tmp_path / "backup.git")
    init_new(tmp_path / "m1", resolve_remote(url=bare.url), token=None, passphrase=PASS)
    settings = SyncSettings(url=bare.url, state_dir=str(tmp_path / "m1"))
    assert settings.max_shrink == 0.1
    assert push_file(export, settings).generation == 2
    _keep_lines(export, 40)
    with pytest.raises(ShrinkRefused, match="from 60 to 40 records") as exc:
        push_file(export, settings)
    assert exc.value.exit_code == 10
    wider = SyncSettings.model_validate({"url": bare.url, "state_dir": str(tmp_path / "m1"), "max_shrink": "50%"})
    assert wider.max_shrink == 0.5 and push_file(export, wider).records == 40


# -- 3. the remote's objects are checked -------------------------------------------------------------


def test_push_repairs_damaged_remote_objects_so_a_fresh_pull_works(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bare = BareRepo(tmp_path / "srv" / "backup.git")
    with GitHttpServer(tmp_path / "srv", token=TOKEN, username="alice") as srv:
        url = srv.url_for("backup.git")
        monkeypatch.setenv("VEXRUN_GIT_TOKEN", TOKEN)
        m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
        assert vx(capsys, *m1, "init", url, "--username", "alice", *SMALL)[0] == 0
        assert vx(capsys, *m1, "push", str(export))[0] == 0
        vandal = Vandal(bare, tmp_path / "vandal")
        rng = random.Random(11)
        objects = vandal.objects()
        assert len(objects) >= 4
        for i, p in enumerate(objects):  # every object: random bytes, truncated, a flipped header byte
            if i % 3 == 0:
                p.write_bytes(rng.randbytes(p.stat().st_size))
            elif i % 3 == 1:
                p.write_bytes(p.read_bytes()[:-7])
            else:
                _flip(p, rng.randrange(56))
        vandal.push()
        checked = vx(capsys, *m1, "check")
        _edit(export, 20)
        code, out, err = vx(capsys, *m1, "push", str(export), "--json")
        assert code == 0, err
        # the symptom: the push exited 0 and a fresh machine could not restore the backup
        assert vx(capsys, *m2, "init", "--restore", url, "--username", "alice")[0] == 0
        restored = tmp_path / "r.vmig.jsonl"
        code, _, pull_err = vx(capsys, *m2, "pull", "--out", str(restored))
        assert code == 0, pull_err
        assert restored.read_bytes() == export.read_bytes()
        res = json.loads(out)
        assert res["objects_repaired"] == len(objects) - 1 and res["objects_uploaded"] == len(objects)
        assert "uploaded again" in err and "verify-reused" in res["timings"]
        assert checked[0] == 1 and checked[1].count("broken: object ") == len(objects)  # before the push
        assert vx(capsys, *m1, "check", "--read-data")[0] == 0


def test_check_read_data_finds_a_single_flipped_byte_in_any_object(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    code, out, err = vx(capsys, *m1, "check", "--read-data")
    assert code == 0 and "no problems" in out and "broken" not in out, err
    vandal = Vandal(bare, tmp_path / "vandal")
    objects = vandal.objects()
    assert len(objects) >= 4
    rng = random.Random(20261202)
    for i, p in enumerate(objects):
        size = p.stat().st_size
        # the salt, the commitment, a chunk's body, the final tag, then random places
        pos = [rng.randrange(24), rng.randrange(24, 56), rng.randrange(56, size - 16), size - 1 - rng.randrange(16)][
            i % 4
        ]
        _flip(p, pos)
        vandal.push(f"flip {p.name[:8]} at {pos}")
        code, out, err = vx(capsys, *m1, "check", "--read-data")
        assert code == 1 and f"object {p.name[:16]}" in out and out.count("broken:") == 1, (pos, out, err)
        code, out, _ = vx(capsys, *m1, "check")
        assert code == (1 if pos < 56 else 0), (pos, out)  # without --read-data: only the header is read
        _flip(p, pos)
        vandal.push("unflip")
    assert vx(capsys, *m1, "check", "--read-data")[0] == 0
    # a missing object and a stray one
    objects[0].unlink()
    (vandal.work / "vexrun" / "objects" / "00").mkdir(exist_ok=True)
    (vandal.work / "vexrun" / "objects" / "00" / ("00" * 32)).write_bytes(b"stray")
    vandal.push("missing")
    code, out, err = vx(capsys, *m1, "check", "--json")
    res = json.loads(out)
    assert code == 1 and not res["ok"] and any("missing" in p for p in res["problems"])
    assert any("not listed by the manifest" in w for w in res["warnings"])


# -- 4. config.json does not steer the client --------------------------------------------------------


def _forge_config(vandal: Vandal, **values: int) -> None:
    path = vandal.work / "vexrun" / "config.json"
    body = json.loads(path.read_text())
    body.update(values)
    path.write_text(json.dumps(body, sort_keys=True, separators=(",", ":")) + "\n")
    vandal.push("forge settings")


def test_config_json_bucket_settings_are_authenticated(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    code, out, _ = vx(capsys, *m1, "push", str(export), "--json")
    total = json.loads(out)["objects_total"]
    vandal = Vandal(bare, tmp_path / "vandal")
    _forge_config(vandal, bucket_target=1024, max_object=4096)
    checked = vx(capsys, *m1, "check")
    _edit(export, 30)
    code, out, err = vx(capsys, *m1, "push", str(export), "--json")
    assert code == 0, err
    res = json.loads(out)
    assert (res["objects_uploaded"], res["objects_total"]) == (1, total)  # the changed bucket only
    assert "config.json says bucket_target=1024" in err
    code, out, _ = checked  # before the push
    assert code == 1 and "bucket_target=1024" in out and "authenticated" in out, out
    assert json.loads(bare.show(bare.head(), "vexrun/config.json"))["bucket_target"] == 16384  # undone
    assert vx(capsys, *m1, "check")[0] == 0


def test_an_older_backup_without_authenticated_settings_is_bounded_then_pinned(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from vexrun.sync import engine
    from vexrun.sync.workspace import Secrets

    bare = BareRepo(tmp_path / "backup.git")
    m1 = _state(tmp_path, "m1")
    assert vx(capsys, *m1, "init", bare.url)[0] == 0
    # what an earlier vexrun wrote: a manifest without "settings"
    s = engine.open_session(tmp_path / "m1", token=None, secrets=Secrets(PASS))
    body = s.next_manifest()
    del body["settings"], body["device_label"]
    s.record(s.write_manifest(body), body["generation"])
    s.ws.commit_and_push("an older vexrun")
    code, out, _ = vx(capsys, *m1, "push", str(export), "--json")
    assert code == 0 and json.loads(out)["objects_total"] == 2
    s = engine.open_session(tmp_path / "m1", token=None, secrets=Secrets(PASS))
    assert s.manifest["settings"]["bucket_target"] == 8 << 20
    body = s.next_manifest()
    del body["settings"]
    s.record(s.write_manifest(body), body["generation"])
    s.ws.commit_and_push("an older vexrun again")
    vandal = Vandal(bare, tmp_path / "vandal")
    _forge_config(vandal, bucket_target=1024, max_object=4096)
    _edit(export, 30)
    code, out, err = vx(capsys, *m1, "push", str(export), "--json")
    assert code == 0, err
    assert json.loads(out)["objects_total"] == 2 and "outside" in err  # bounded, not 64 buckets
    s = engine.open_session(tmp_path / "m1", token=None, secrets=Secrets(PASS))
    settings = s.manifest["settings"]
    assert (settings["bucket_target"], settings["max_object"]) == (256 * 1024, 1 << 20)


# -- 5. a lost race is "pull first" ------------------------------------------------------------------

_RACE_HOOK = """#!/bin/sh
# another device's push lands between this push's ref advertisement and its ref update
cat >/dev/null
env -u GIT_QUARANTINE_PATH -u GIT_OBJECT_DIRECTORY -u GIT_ALTERNATE_OBJECT_DIRECTORIES \\
    git update-ref refs/heads/main refs/heads/racer
"""


def test_a_push_that_loses_a_race_exits_9_pull_first(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bare = BareRepo(tmp_path / "srv" / "backup.git")
    with GitDaemon(tmp_path / "srv") as daemon:
        url = daemon.url_for("backup.git")
        m1 = _state(tmp_path, "m1")
        assert vx(capsys, *m1, "init", url, *SMALL)[0] == 0
        assert vx(capsys, *m1, "push", str(export))[0] == 0
        vandal = Vandal(bare, tmp_path / "racer")
        (vandal.work / "racer.txt").write_text("another device\n")
        git("add", "racer.txt", cwd=vandal.work)
        git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "racer", cwd=vandal.work)
        git("push", "-q", "origin", "HEAD:refs/heads/racer", cwd=vandal.work)
        hook = bare.path / "hooks" / "pre-receive"
        hook.write_text(_RACE_HOOK)
        hook.chmod(0o755)
        _edit(export, 12)
        code, _, err = vx(capsys, *m1, "push", str(export))
        assert code == 9 and "another device pushed first" in err and "pull" in err, err
        assert "file-size" not in err and "Traceback" not in err
        # a forge's own refusal (the branch did not move) is still exit 1 with its words
        bare.set_size_limit(1000)
        code, _, err = vx(capsys, *m1, "push", str(export))
        assert code == 1 and "refuses files over 1000 bytes" in err and "file-size limit" in err, err


# -- 6. the manifest's file name -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../../escaped.vmig.jsonl", "/tmp/abs.vmig.jsonl", "a/b.vmig.jsonl", "..", "x\0y"])
def test_safe_file_name_refuses_names_that_leave_the_directory(name: str) -> None:
    from vexrun.sync.errors import BackupDamaged
    from vexrun.sync.formats import safe_file_name

    with pytest.raises(BackupDamaged, match="not a plain file name"):
        safe_file_name(name)
    assert safe_file_name("memories 2026-12-02.vmig.jsonl") == "memories 2026-12-02.vmig.jsonl"


def test_pull_refuses_a_manifest_file_name_with_a_path(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vexrun.sync import engine
    from vexrun.sync.workspace import Secrets

    bare = BareRepo(tmp_path / "backup.git")
    m1, m2 = _state(tmp_path, "m1"), _state(tmp_path, "m2")
    assert vx(capsys, *m1, "init", bare.url, *SMALL)[0] == 0
    assert vx(capsys, *m1, "push", str(export))[0] == 0
    # a key holder (another device, compromised) names the file with a path
    s = engine.open_session(tmp_path / "m1", token=None, secrets=Secrets(PASS))
    info: dict[str, Any] = dict(s.manifest["file"])
    info["name"] = "../../escaped.vmig.jsonl"
    body = s.next_manifest(file=info)
    s.write_manifest(body)
    s.ws.commit_and_push("hostile name")
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    monkeypatch.chdir(work)
    assert vx(capsys, *m2, "init", "--restore", bare.url)[0] == 0
    code, _, err = vx(capsys, *m2, "pull")
    assert code == 1 and "not a plain file name" in err and "--out" in err
    code, _, err = vx(capsys, *m2, "pull", "--out", str(work))
    assert code == 1 and "not a plain file name" in err
    assert not list(tmp_path.rglob("escaped.vmig.jsonl"))
    code, _, err = vx(capsys, *m2, "pull", "--out", "mine.vmig.jsonl")
    assert code == 0 and (work / "mine.vmig.jsonl").read_bytes() == export.read_bytes(), err


# -- 7. relative paths ---------------------------------------------------------------------------------


def test_relative_state_dir_and_remote_path(
    tmp_path: Path, env: None, export: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    BareRepo(tmp_path / "backup.git")
    monkeypatch.chdir(tmp_path)
    code, _, err = vx(capsys, "sync", "--state-dir", "state-a", "init", "./backup.git", *SMALL)
    assert code == 0, err
    code, out, err = vx(capsys, "sync", "--state-dir", "state-a", "push", "memories.vmig.jsonl")
    assert code == 0 and "generation 2" in out, err
    monkeypatch.chdir(tmp_path / "state-a")
    code, _, err = vx(capsys, "sync", "--state-dir", "../state-b", "init", "--restore", "../backup.git")
    assert code == 0, err
    code, _, err = vx(capsys, "sync", "--state-dir", "../state-b", "pull", "--out", "../r.vmig.jsonl")
    assert code == 0 and (tmp_path / "r.vmig.jsonl").read_bytes() == export.read_bytes(), err
    cfg = json.loads((tmp_path / "state-b" / "config.json").read_text())
    assert cfg["url"] == str(tmp_path / "backup.git")


def test_scp_like_and_url_remotes_are_left_alone() -> None:
    from vexrun.sync.remote import resolve_remote

    assert resolve_remote(url="git@example.org:alice/backup.git").url == "git@example.org:alice/backup.git"
    assert resolve_remote(url="https://example.org/a/b.git").url == "https://example.org/a/b.git"
    assert resolve_remote(url="backup.git").url == str(Path.cwd() / "backup.git")
    assert resolve_remote(url="./x:y/backup.git").url == str(Path.cwd() / "x:y" / "backup.git")
