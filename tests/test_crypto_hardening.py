"""Issue 11 §3, the key-handling items: one bad key file no longer locks a backup; KDF memory, work and the
number of key files are capped; new passphrases need 12 characters (8 with --weak-passphrase-ok) while old
short ones still unlock; directories are 0700 and key files 0600 under umask 000; redaction masks no
ordinary word; decryption runs through cryptography's Cobblestone-256 and agrees with the framing here."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import vx
from vexrun.crypto import cobblestone as cb  # noqa: E402
from vexrun.crypto.encoding import b64e, canonical_json  # noqa: E402
from vexrun.crypto.errors import DecryptionFailed, KeyFileError, WrongPassphrase  # noqa: E402
from vexrun.testing.git_servers import BareRepo, git, vexrun_argv  # noqa: E402

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")

MS = bytes(range(32))
REPO = bytes.fromhex("00112233445566778899aabbccddeeff")
PASS = "pass-CANARY-hardening-3c7e"
CHEAP_SCRYPT = {"alg": "scrypt", "salt": b64e(b"\x11" * 16), "log_n": 10, "r": 1, "p": 1}


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for k, v in values.items():
        monkeypatch.setenv(k, v)
    for k in ("VEXRUN_PASSPHRASE", "VEXRUN_GIT_TOKEN", "VEXRUN_RECOVERY_CODE", "VEXRUN_NEW_PASSPHRASE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.delenv("VEXRUN_SYNC_DIR", raising=False)
    return values


@pytest.fixture(autouse=True)
def _secrets_registry() -> Iterator[None]:
    """Leave the process-wide redaction registry as this test found it."""
    from vexrun import redact

    before = set(redact._secrets)
    yield
    redact._secrets.clear()
    redact._secrets.update(before)


# -- 1. one malformed key file no longer blocks every unlock ----------------------------------------------


def _keyfile(kind: str = "passphrase", secret: str | bytes = PASS, **kw: Any) -> dict[str, Any]:
    from vexrun.sync.masterkey import make_keyfile

    return make_keyfile(MS, REPO, kind=kind, secret=secret, **kw)


def _fake_keyfile(key_id: str, kdf: dict[str, Any] | None = None) -> dict[str, Any]:
    """A well-formed passphrase key file whose wrap opens with nothing (a cheap KDF unless told)."""
    return {
        "v": 1,
        "key_id": key_id,
        "kind": "passphrase",
        "created_at": "2026-12-01T00:00:00Z",
        "label": "fake",
        "kdf": kdf or CHEAP_SCRYPT,
        "wrap": {"alg": "AES-256-GCM", "nonce": b64e(b"\x00" * 12), "ct": b64e(b"\x01" * 48)},
    }


def _write(directory: Path, body: dict[str, Any], name: str | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / (name or f"{body['key_id']}.json")
    path.write_bytes(canonical_json(body) + b"\n")
    return path


HOSTILE_SCRYPT = {"alg": "scrypt", "salt": b64e(b"\x22" * 16), "log_n": 20, "r": 32, "p": 2}


def _bad_file(directory: Path, kind: str) -> str:
    """Put one bad key file that sorts before the good ones into ``directory``; return its name."""
    name = "0000000000000000.json"
    path = directory / name
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(b"{not json")
    elif kind == "unknown-field":
        body = _fake_keyfile("0000000000000000")
        body["extra"] = 1
        path.write_bytes(canonical_json(body))
    elif kind == "oversized":
        path.write_bytes(b" " * (70 * 1024) + canonical_json(_fake_keyfile("0000000000000000")))
    elif kind == "symlink-to-dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    elif kind == "name-mismatch":
        path.write_bytes(canonical_json(_fake_keyfile("0123456789abcdef")))
    elif kind == "hostile-kdf":
        path.write_bytes(canonical_json(_fake_keyfile("0000000000000000", HOSTILE_SCRYPT)))
    else:  # pragma: no cover
        raise AssertionError(kind)
    return name


BAD_KINDS = [
    "garbage",
    "unknown-field",
    "oversized",
    "symlink-to-dev-zero",
    "fifo",
    "directory",
    "name-mismatch",
    "hostile-kdf",
]


@pytest.mark.parametrize("bad", BAD_KINDS)
def test_a_bad_key_file_is_skipped_and_the_others_unlock(tmp_path: Path, bad: str) -> None:
    """Through Workspace.unlock, which every sync verb uses (before: the bad file raised KeyFileError)."""
    from vexrun.sync.local import LocalConfig
    from vexrun.sync.masterkey import format_recovery_code, new_recovery_code
    from vexrun.sync.workspace import KEYS, RepoConfig, Secrets, Workspace

    ws = Workspace(tmp_path, LocalConfig("file:///nowhere", "main", "x", REPO.hex(), "d" * 16))
    keys = ws.path(KEYS)
    name = _bad_file(keys, bad)
    code = new_recovery_code()
    _write(keys, _keyfile())
    _write(keys, _keyfile("recovery", code))
    repo = RepoConfig(REPO, 1)
    assert ws.unlock(repo, Secrets(passphrase=PASS))[0] == MS
    assert ws.unlock(repo, Secrets(recovery=format_recovery_code(code)))[0] == MS
    with pytest.raises(WrongPassphrase, match="1 unusable key file"):
        ws.unlock(repo, Secrets(passphrase="not the passphrase"))
    from vexrun.sync.masterkey import load_keyfiles

    bodies, warnings = load_keyfiles(keys, label=KEYS)
    assert len(bodies) == 2
    assert len(warnings) == 1 and f"{KEYS}/{name}" in warnings[0], warnings


def test_only_bad_key_files_fail_as_damage(tmp_path: Path) -> None:
    from vexrun.sync.errors import BackupDamaged
    from vexrun.sync.local import LocalConfig
    from vexrun.sync.workspace import KEYS, RepoConfig, Secrets, Workspace

    ws = Workspace(tmp_path, LocalConfig("file:///nowhere", "main", "x", REPO.hex(), "d" * 16))
    _bad_file(ws.path(KEYS), "garbage")
    with pytest.raises(BackupDamaged, match=r"no usable key files in vexrun/keys \(1 skipped; .*0000000000000000"):
        ws.unlock(RepoConfig(REPO, 1), Secrets(passphrase=PASS))


def test_a_mistyped_recovery_code_still_tries_the_passphrase(tmp_path: Path) -> None:
    from vexrun.sync.masterkey import unlock_master

    bodies = [_keyfile()]
    assert unlock_master(bodies, REPO, passphrase=PASS, recovery="AAAA-BBBB") == MS
    with pytest.raises(WrongPassphrase, match="recovery code is (not valid|mistyped)"):
        unlock_master(bodies, REPO, recovery="AAAA-BBBB")


def test_sync_pull_warns_about_a_bad_key_file_and_goes_on(tmp_path: Path, env: dict[str, str]) -> None:
    """End to end: a forge commits a malformed key file; pull and init --restore still work, and say so."""
    from vexrun.sync.engine import init_new
    from vexrun.sync.remote import resolve_remote

    bare = BareRepo(tmp_path / "backup.git")
    init_new(tmp_path / "m1", resolve_remote(url=bare.url), token=None, passphrase=PASS)
    work = tmp_path / "forge"
    git("clone", "--quiet", bare.url, str(work))
    (work / "vexrun" / "keys" / "0000000000000000.json").write_bytes(b'{"v": 1, "kind": "passphrase"')
    git("add", "-A", cwd=work)
    git("-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "a bad key file", cwd=work)
    git("push", "-q", "origin", "HEAD:main", cwd=work)
    full = {**os.environ, "VEXRUN_PASSPHRASE": PASS}
    for args in (
        ["sync", "--state-dir", str(tmp_path / "m1"), "pull", "--out", str(tmp_path / "out.vmig.jsonl")],
        ["sync", "--state-dir", str(tmp_path / "m2"), "init", "--restore", bare.url],
    ):
        res = subprocess.run(vexrun_argv(*args), env=full, capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stderr
        assert "vexrun/keys/0000000000000000.json" in res.stderr and "skipped key file" in res.stderr
        assert PASS not in res.stderr + res.stdout


# -- 2. caps on KDF memory, KDF work and the number of key files -------------------------------------------


@pytest.mark.parametrize(
    "kdf",
    [
        HOSTILE_SCRYPT,  # the issue's: 4 GiB, about 22 s
        {"alg": "scrypt", "log_n": 20, "r": 16, "p": 1},  # 2 GiB
        {"alg": "scrypt", "log_n": 17, "r": 8, "p": 16},  # 128 MiB but 16x the default work
        {"alg": "scrypt", "log_n": 15, "r": 32, "p": 16},  # 128 MiB, 2**24 work
        {"alg": "argon2id", "t": 10, "m_kib": 1024 * 1024, "p": 4},  # 1 GiB x 10 passes
        {"alg": "argon2id", "t": 3, "m_kib": 1024 * 1024, "p": 16},
        {"alg": "argon2id", "t": 10, "m_kib": 256 * 1024, "p": 4},  # 256 MiB but 2.5 GiB of work
    ],
)
def test_kdf_memory_and_work_are_capped(kdf: dict[str, Any]) -> None:
    from vexrun.crypto.kdf import check_params
    from vexrun.sync.masterkey import parse_keyfile

    params = {"salt": b64e(b"\x33" * 16), **kdf}
    with pytest.raises(KeyFileError, match="refusing a hostile key file"):
        check_params(params)
    with pytest.raises(KeyFileError):
        parse_keyfile(canonical_json(_fake_keyfile("00000000000000aa", params)), source="k")


@pytest.mark.parametrize(
    "kdf",
    [
        {"alg": "scrypt", "log_n": 17, "r": 8, "p": 1},  # the default
        {"alg": "scrypt", "log_n": 20, "r": 8, "p": 1},  # 1 GiB, 2**23 work: at the caps
        {"alg": "argon2id", "t": 3, "m_kib": 65536, "p": 4},  # the default
        {"alg": "argon2id", "t": 2, "m_kib": 1024 * 1024, "p": 16},  # 1 GiB, 2 GiB of work: at the caps
        {"alg": "argon2id", "t": 8, "m_kib": 256 * 1024, "p": 4},  # 2 GiB of work: at the cap
    ],
)
def test_parameters_within_the_caps_are_accepted(kdf: dict[str, Any]) -> None:
    from vexrun.crypto.kdf import MAX_KDF_MEMORY, check_params, estimated_seconds, kdf_memory

    params = {"salt": b64e(b"\x33" * 16), **kdf}
    assert check_params(params) is params
    assert kdf_memory(params) <= MAX_KDF_MEMORY and estimated_seconds(params) < 4


def test_a_signing_key_with_hostile_kdf_is_refused_before_running_it(tmp_path: Path) -> None:
    from vexrun.crypto.keys import generate_key, load_secret_key

    _, key_path, _ = generate_key(passphrase=PASS, directory=tmp_path / "keys", kdf_alg="scrypt")
    body = json.loads(key_path.read_bytes())
    body["kdf"] = {**HOSTILE_SCRYPT}
    key_path.chmod(0o600)
    key_path.write_bytes(canonical_json(body))
    with pytest.raises(KeyFileError, match="GiB of memory"):
        load_secret_key(key_path, PASS)


def test_at_most_32_key_files_are_read_and_tried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vexrun.sync import masterkey
    from vexrun.sync.local import LocalConfig
    from vexrun.sync.workspace import KEYS, RepoConfig, Secrets, Workspace

    ws = Workspace(tmp_path, LocalConfig("file:///nowhere", "main", "x", REPO.hex(), "d" * 16))
    for i in range(40):
        _write(ws.path(KEYS), _fake_keyfile(f"{i:016x}"))
    tried: list[str] = []
    real = masterkey.unwrap_keyfile

    def counting(body: dict[str, Any], repo_id: bytes, secret: str | bytes) -> bytes:
        tried.append(body["key_id"])
        return real(body, repo_id, secret)

    monkeypatch.setattr(masterkey, "unwrap_keyfile", counting)
    with pytest.raises(WrongPassphrase):
        ws.unlock(RepoConfig(REPO, 1), Secrets(passphrase=PASS))
    assert len(tried) == masterkey.MAX_KEY_FILES == 32
    bodies, warnings = masterkey.load_keyfiles(ws.path(KEYS))
    assert len(bodies) == 32 and "holds 40 key files" in warnings[0]


def test_cheap_key_files_are_tried_first(monkeypatch: pytest.MonkeyPatch) -> None:
    from vexrun.sync import masterkey

    costly = _fake_keyfile("00000000000000a1", {**CHEAP_SCRYPT, "log_n": 14})
    cheap = _fake_keyfile("00000000000000a2")
    order: list[str] = []
    monkeypatch.setattr(masterkey, "unwrap_keyfile", lambda b, r, s: order.append(b["key_id"]) or MS)
    masterkey.unlock_master([costly, cheap], REPO, passphrase=PASS)
    assert order == ["00000000000000a2"]


# -- 3. a minimum length for new passphrases, with an explicit override ------------------------------------


@pytest.mark.parametrize(
    ("passphrase", "flag", "code"),
    [
        ("x", False, 2),
        ("x", True, 2),  # below 8 even the override refuses
        ("eleven-char", False, 2),
        ("eleven-char", True, 0),
        ("twelve-chars", False, 0),
    ],
)
def test_keys_generate_needs_a_long_passphrase(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    passphrase: str,
    flag: bool,
    code: int,
) -> None:
    monkeypatch.setenv("VEXRUN_PASSPHRASE", passphrase)
    got, out, err = vx(capsys, "keys", "generate", *(["--weak-passphrase-ok"] if flag else []))
    assert got == code, err
    keys = tmp_path / "cfg" / "vexrun" / "keys"
    made = sorted(keys.glob("*.key")) if keys.exists() else []
    assert len(made) == (1 if code == 0 else 0)
    if code:
        assert "at least 12" in err or "shorter than 12" in err, err
        assert str(len(passphrase)) + " char" not in err  # the length of a refused passphrase is not told


def test_passphrase_file_is_held_to_the_same_rule(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    f = tmp_path / "pass.txt"
    f.write_text("short\n")
    got, _, err = vx(capsys, "keys", "generate", "--passphrase-file", str(f))
    assert got == 2 and "shorter than 8" in err


@pytest.mark.parametrize(
    "args",
    [
        ["init", "{url}"],
        ["keys", "add"],
        ["rekey"],
    ],
)
def test_sync_verbs_that_create_a_passphrase_refuse_a_short_one(
    env: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    args: list[str],
) -> None:
    bare = BareRepo(tmp_path / "backup.git")
    state = tmp_path / "st"
    if args[0] == "init":
        monkeypatch.setenv("VEXRUN_PASSPHRASE", "a")
    else:
        monkeypatch.setenv("VEXRUN_PASSPHRASE", PASS)
        monkeypatch.setenv("VEXRUN_NEW_PASSPHRASE", "a")
    argv = [a.replace("{url}", bare.url) for a in args]
    got, _, err = vx(capsys, "sync", "--state-dir", str(state), *argv)
    assert got == 2 and "at least 12" in err, err
    assert git("for-each-ref", cwd=bare.path).strip() == "" and not state.exists()  # nothing made, nothing pushed
    got, _, err = vx(capsys, "sync", "--state-dir", str(state), *argv, "--weak-passphrase-ok")
    assert got == 2 and "never fewer" in err, err


def test_an_existing_short_passphrase_still_unlocks(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vexrun.crypto.keys import generate_key
    from vexrun.sync.masterkey import unlock_master, unwrap_keyfile
    from vexrun.testing.data import write_synthetic

    assert unwrap_keyfile(_keyfile(secret="x"), REPO, "x") == MS  # made before the rule
    assert unlock_master([_keyfile(secret="abc")], REPO, passphrase="abc") == MS
    generate_key(passphrase="x", directory=tmp_path / "cfg" / "vexrun" / "keys")
    data = write_synthetic(tmp_path / "d.vmig.jsonl", 3, dims=4)
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "x")
    got, out, err = vx(capsys, "sign", str(data))
    assert got == 0, err


# -- 4. private directories and files whatever the umask ----------------------------------------------------


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@posix
def test_config_and_state_directories_are_0700_under_umask_000(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vexrun.crypto.paths import state_dir
    from vexrun.sync.local import LocalConfig, save_config

    monkeypatch.setenv("VEXRUN_PASSPHRASE", PASS)
    old = os.umask(0)
    try:
        got, out, err = vx(capsys, "keys", "generate")
        assert got == 0, err
        cfg = tmp_path / "cfg"
        key = next((cfg / "vexrun" / "keys").glob("*.key"))
        pub = key.with_suffix(".pub")
        got, _, err = vx(capsys, "keys", "trust", str(pub))
        assert got == 0, err
        save_config(state_dir() / "sync", LocalConfig("u", "main", "x", REPO.hex(), "d" * 16))
    finally:
        os.umask(old)
    for d in (cfg, cfg / "vexrun", cfg / "vexrun" / "keys", cfg / "vexrun" / "trusted_keys"):
        assert _mode(d) == 0o700, d
    assert _mode(key) == 0o600
    assert _mode(pub) == 0o644
    assert all(_mode(p) == 0o644 for p in (cfg / "vexrun" / "trusted_keys").iterdir())
    state = tmp_path / "state"
    for d in (state, state / "vexrun", state / "vexrun" / "sync"):
        assert _mode(d) == 0o700, d
    assert _mode(state / "vexrun" / "sync" / "config.json") == 0o600


@posix
def test_sync_init_state_directories_under_umask_000(env: dict[str, str], tmp_path: Path) -> None:
    from vexrun.crypto.paths import state_dir
    from vexrun.sync.engine import init_new
    from vexrun.sync.remote import resolve_remote

    bare = BareRepo(tmp_path / "backup.git")
    old = os.umask(0)
    try:
        init_new(state_dir() / "sync", resolve_remote(url=bare.url), token=None, passphrase=PASS)
    finally:
        os.umask(old)
    for d in (tmp_path / "state", tmp_path / "state" / "vexrun", tmp_path / "state" / "vexrun" / "sync"):
        assert _mode(d) == 0o700, d


@posix
def test_a_loose_vexrun_directory_left_by_an_older_version_is_tightened(env: dict[str, str], tmp_path: Path) -> None:
    from vexrun.crypto.keys import generate_key
    from vexrun.crypto.paths import keys_dir

    root = tmp_path / "cfg" / "vexrun"
    root.mkdir(parents=True)
    (tmp_path / "cfg").chmod(0o755)
    root.chmod(0o777)
    generate_key(passphrase=None, directory=keys_dir())
    assert _mode(root) == 0o700 and _mode(keys_dir()) == 0o700
    assert _mode(tmp_path / "cfg") == 0o755  # $XDG_CONFIG_HOME existed: not vexrun's to change


# -- 5. redaction masks no ordinary word ---------------------------------------------------------------------


def test_a_short_secret_does_not_mask_ordinary_words() -> None:
    from vexrun.redact import redact, register_secret

    register_secret("wrong")
    assert redact("wrong passphrase (or the key file was altered)") == "wrong passphrase (or the key file was altered)"
    assert register_secret("s3cret-value") is True
    assert redact("token s3cret-value refused; s3cret-value!") == "token *** refused; ***!"


def test_the_wrong_passphrase_message_survives_a_passphrase_called_wrong(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vexrun.crypto.keys import generate_key
    from vexrun.testing.data import write_synthetic

    generate_key(passphrase=PASS, directory=tmp_path / "cfg" / "vexrun" / "keys")
    data = write_synthetic(tmp_path / "d.vmig.jsonl", 3, dims=4)
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "wrong")
    got, out, err = vx(capsys, "sign", str(data))
    assert got == 6 and "wrong passphrase" in err and "*** passphrase" not in err, err


def test_secrets_of_8_or_more_characters_are_still_masked_everywhere(
    env: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VEXRUN_PASSPHRASE", "8-chars!")
    got, _, err = vx(capsys, "keys", "generate", "--weak-passphrase-ok")
    assert got == 0
    from vexrun.redact import redact

    assert redact("x 8-chars! y") == "x *** y"


# -- 6. cryptography's Cobblestone-256 decrypts; the framing here is the fallback, and both agree ----------

KEY = bytes(range(32))
CTX = b"vexrun/v1/object\x00" + b"R" * 16 + b"O" * 32


def test_decryption_uses_cryptography_when_it_has_cobblestone(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("cryptography.cobblestone")
    assert cb.builtin_available()
    pt = os.urandom(40000)
    ct = bytes(cb.encrypt(KEY, CTX, pt))

    def forbidden(*a: Any, **k: Any) -> Any:
        raise AssertionError("the hand-written framing ran")

    monkeypatch.setattr(cb, "_decrypt_here", forbidden)
    monkeypatch.setattr(cb, "_open", forbidden)
    assert cb.decrypt(KEY, CTX, ct) == pt
    out = bytearray()
    assert cb.decrypt_stream(KEY, CTX, io.BytesIO(ct), out.extend) == len(pt)
    assert bytes(out) == pt


def _stream(ct: bytes, builtin: bool) -> tuple[bytes, str | None]:
    out = bytearray()
    try:
        cb.decrypt_stream(KEY, CTX, io.BytesIO(ct), out.extend, builtin=builtin)
    except DecryptionFailed as exc:
        return bytes(out), str(exc)
    return bytes(out), None


def _whole(ct: bytes, builtin: bool) -> tuple[bytes | None, str | None]:
    try:
        return bytes(cb.decrypt(KEY, CTX, ct, builtin=builtin)), None
    except DecryptionFailed as exc:
        return None, str(exc)


def _variants() -> Iterator[tuple[str, bytes, bytes]]:
    """(name, plaintext, message): good messages at the chunk boundaries, and damaged ones."""
    for n in (0, 1, 16383, 16384, 16385, 32768, 40000):
        pt = bytes(i % 251 for i in range(n))
        yield f"good-{n}", pt, bytes(cb.encrypt(KEY, CTX, pt, salt=bytes([n % 256]) * 24))
    pt = bytes(i % 253 for i in range(40 * 1024 - 100))
    ct = bytes(cb.encrypt(KEY, CTX, pt, salt=b"s" * 24))
    for i in (0, 23, 24, 55, 56, 100, 16455, 16456, 30000, len(ct) - 17, len(ct) - 1):
        bad = bytearray(ct)
        bad[i] ^= 0x40
        yield f"flip-{i}", pt, bytes(bad)
    for cut in (0, 30, 56, 57, 56 + 16400, 56 + 16400 + 15, 56 + 2 * 16400, len(ct) - 1):
        yield f"cut-{cut}", pt, ct[:cut]
    head, body = ct[:56], ct[56:]
    c0, c1, last = body[:16400], body[16400:32800], body[32800:]
    yield "swap", pt, head + c1 + c0 + last
    yield "dup", pt, head + c0 + c0 + c1 + last
    yield "append", pt, ct + b"\0"
    yield "no-final", pt, head + c0 + c1


VARIANTS = list(_variants())


@pytest.mark.parametrize(("name", "pt", "ct"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_builtin_and_handwritten_decryption_agree(name: str, pt: bytes, ct: bytes) -> None:
    pytest.importorskip("cryptography.cobblestone")
    ours, ours_err = _whole(ct, builtin=False)
    lib, lib_err = _whole(ct, builtin=True)
    assert (ours, ours_err) == (lib, lib_err)  # the same plaintext, or the same error
    if name.startswith("good"):
        assert lib == pt
    s_ours, s_ours_err = _stream(ct, builtin=False)
    s_lib, s_lib_err = _stream(ct, builtin=True)
    assert (s_ours_err is None) == (s_lib_err is None) == (ours_err is None)
    if s_ours_err is None:
        assert s_ours == s_lib == pt
    else:
        # streaming never hands out a byte that was not authenticated: what was written is a prefix of the
        # plaintext, whole chunks only
        for got in (s_ours, s_lib):
            assert pt.startswith(got) and len(got) % cb.CHUNK == 0


def test_commitment_failure_reads_the_same_through_the_builtin() -> None:
    ct = bytes(cb.encrypt(KEY, CTX, b"hello"))
    for builtin in (True, False):
        with pytest.raises(DecryptionFailed, match="commitment"):
            cb.decrypt(KEY, CTX[:-1] + b"P", ct, builtin=builtin)
        with pytest.raises(DecryptionFailed, match="commitment"):
            cb.decrypt_stream(bytes(32), CTX, io.BytesIO(ct), lambda b: None, builtin=builtin)
