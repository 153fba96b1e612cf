"""``vexrun keys``, ``vexrun sign`` and ``vexrun verify`` through the CLI: the exit codes of the design, a
golden envelope, every tampered byte of a signed export detected (exit 1), every damaged signature
reported (1 or 3), and a 3 GiB file verified in flat memory."""

from __future__ import annotations

import base64
import importlib
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DATA  # noqa: E402
from vexrun.crypto.envelope import PAYLOAD_TYPE, pae, serialize_envelope  # noqa: E402
from vexrun.crypto.keys import PublicKey, keyid_for  # noqa: E402
from vexrun.testing.git_servers import vexrun_argv  # noqa: E402

GOLD = DATA / "crypto"
SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")  # RFC 8032 TEST 1
CANARY_PASS = "pass-CANARY-7f3a9"


def _register() -> None:
    from vexrun.cli import cli

    for name in ("keys", "sync"):
        for command in importlib.import_module(f"vexrun.cli.{name}").COMMANDS:
            cli.commands.setdefault(command.name, command)  # type: ignore[arg-type]


def run_main(*args: str) -> int:
    """``vexrun ARGS`` in this process (the real exit-code mapping of ``vexrun.cli.main``)."""
    from vexrun.cli import main

    _register()
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(vexrun_argv(*args), env=full, capture_output=True, text=True, timeout=120, input=stdin)


@pytest.fixture
def xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {"XDG_CONFIG_HOME": str(tmp_path / "cfg"), "XDG_STATE_HOME": str(tmp_path / "state")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("VEXRUN_PASSPHRASE", raising=False)
    return env


def _golden_signer() -> tuple[object, PublicKey]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.from_private_bytes(SEED)
    raw = key.public_key().public_bytes_raw()
    return key, PublicKey(keyid_for(raw), raw, "golden")


def golden_signature() -> bytes:
    import blake3

    data = (GOLD / "signed.vmig.jsonl").read_bytes()
    key, pub = _golden_signer()
    statement = {
        "v": 1, "file": {"name": "signed.vmig.jsonl", "size": len(data), "blake3": blake3.blake3(data).hexdigest()},
        "records": 3, "dims": [2], "models": ["m"], "namespaces": ["default"], "created_at": "2026-01-01T00:00:00Z",
        "signed_at": "2026-01-01T00:00:01Z", "vexrun_version": "0.1.0", "comment": "golden",
    }  # fmt: skip
    payload = json.dumps(statement, separators=(",", ":")).encode()
    return serialize_envelope(payload, pub.keyid, key.sign(pae(PAYLOAD_TYPE, payload)))  # type: ignore[attr-defined]


@pytest.fixture
def signed(tmp_path: Path) -> tuple[Path, Path, Path]:
    """A copy of the golden signed export, its signature and the signer's public key."""
    data = tmp_path / "signed.vmig.jsonl"
    data.write_bytes((GOLD / "signed.vmig.jsonl").read_bytes())
    sig = tmp_path / "signed.vmig.jsonl.sig"
    sig.write_bytes((GOLD / "signed.vmig.jsonl.sig").read_bytes())
    pub = tmp_path / "signer.pub"
    pub.write_text(_golden_signer()[1].line() + "\n")
    return data, sig, pub


def test_golden_signature(update_goldens: bool, signed: tuple[Path, Path, Path], xdg: dict[str, str]) -> None:
    if update_goldens:
        (GOLD / "signed.vmig.jsonl.sig").write_bytes(golden_signature())
        (GOLD / "signer.pub").write_text(_golden_signer()[1].line() + "\n")
    assert (GOLD / "signed.vmig.jsonl.sig").read_bytes() == golden_signature()
    data, sig, pub = signed
    assert run_main("verify", str(data), "--pubkey", str(GOLD / "signer.pub")) == 0


def test_every_tampered_byte_of_the_export_exits_1(signed: tuple[Path, Path, Path], xdg: dict[str, str]) -> None:
    data, _, pub = signed
    good = data.read_bytes()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        data.write_bytes(bytes(bad))
        assert run_main("verify", str(data), "--pubkey", str(pub)) == 1, i
    for n in (0, len(good) // 2, len(good) - 1):
        data.write_bytes(good[:n])
        assert run_main("verify", str(data), "--pubkey", str(pub)) == 1
    data.write_bytes(good + b"\n")
    assert run_main("verify", str(data), "--pubkey", str(pub)) == 1


def test_every_damaged_signature_byte_exits_1_or_3(signed: tuple[Path, Path, Path], xdg: dict[str, str]) -> None:
    data, sig, pub = signed
    good = sig.read_bytes()
    seen = set()
    for i in range(len(good)):
        bad = bytearray(good)
        bad[i] ^= 0x01
        sig.write_bytes(bytes(bad))
        code = run_main("verify", str(data), "--pubkey", str(pub))
        assert code in (1, 3), (i, code)
        seen.add(code)
    assert seen == {1, 3}
    for n in range(len(good)):
        sig.write_bytes(good[:n])
        assert run_main("verify", str(data), "--pubkey", str(pub)) == 3, n


def test_exit_codes(signed: tuple[Path, Path, Path], xdg: dict[str, str], tmp_path: Path) -> None:
    data, sig, pub = signed
    other = tmp_path / "other.pub"
    raw = bytes.fromhex("3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c")
    other.write_text(PublicKey(keyid_for(raw), raw).line() + "\n")
    assert run_main("verify", str(data), "--pubkey", str(other)) == 4  # unknown key
    assert run_main("verify", str(data)) == 4  # empty trust store
    trust = tmp_path / "trust"
    trust.mkdir()
    (trust / "a.pub").write_text(pub.read_text())
    assert run_main("verify", str(data), "--trust-dir", str(trust)) == 0
    assert run_main("verify", str(data), "--sig", str(tmp_path / "missing.sig"), "--pubkey", str(pub)) == 3
    assert run_main("verify", str(data), "--sig", "/proc/self/mem", "--pubkey", str(pub)) == 5
    assert run_main("verify", str(data), "--pubkey", str(pub), "--trust-dir", str(trust)) == 2
    assert run_main("verify", str(tmp_path / "nope.vmig.jsonl"), "--sig", str(sig), "--pubkey", str(pub)) == 2
    # a valid signature of another file
    data2 = tmp_path / "two.vmig.jsonl"
    data2.write_bytes(data.read_bytes().replace(b"tea", b"tee"))
    (tmp_path / "two.vmig.jsonl.sig").write_bytes(sig.read_bytes())
    assert run_main("verify", str(data2), "--pubkey", str(pub)) == 1


def test_foreign_payload_type_exits_3(signed: tuple[Path, Path, Path], xdg: dict[str, str]) -> None:
    data, sig, pub = signed
    key, public = _golden_signer()
    env = json.loads(sig.read_bytes())
    payload = base64.b64decode(env["payload"])
    other = "application/vnd.in-toto+json"
    env["payloadType"] = other
    env["signatures"][0]["sig"] = base64.b64encode(key.sign(pae(other, payload))).decode()  # type: ignore[attr-defined]
    sig.write_text(json.dumps(env))
    assert run_main("verify", str(data), "--pubkey", str(pub)) == 3


def _without_dac_override() -> None:
    """In the child, before exec: drop the capabilities that let root read any file (CAP_DAC_OVERRIDE,
    CAP_DAC_READ_SEARCH) from the bounding set, so a mode-0 file is unreadable for root as for anyone."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            os._exit(97)


def test_unreadable_file_exits_5(tmp_path: Path) -> None:
    """A file nobody may read (root included: the CLI runs without the capabilities that bypass modes)."""
    for name in ("signed.vmig.jsonl", "signed.vmig.jsonl.sig", "signer.pub"):
        (tmp_path / name).write_bytes((GOLD / name).read_bytes())
    (tmp_path / "signed.vmig.jsonl").chmod(0o000)
    try:
        argv = vexrun_argv("verify", str(tmp_path / "signed.vmig.jsonl"), "--pubkey", str(tmp_path / "signer.pub"))
        proc = subprocess.run(
            argv, capture_output=True, text=True, timeout=60, cwd=tmp_path, preexec_fn=_without_dac_override
        )
        assert proc.returncode == 5, proc.stderr
        assert "cannot read" in proc.stderr and "Traceback" not in proc.stderr
    finally:
        (tmp_path / "signed.vmig.jsonl").chmod(0o644)


def test_keys_sign_verify_cli(tmp_path: Path, xdg: dict[str, str]) -> None:
    env = {**xdg, "VEXRUN_PASSPHRASE": CANARY_PASS}
    res = run("keys", "generate", "--comment", "alice", env=env)
    assert res.returncode == 0, res.stderr
    keyid = res.stdout.split()[2]
    keydir = Path(xdg["XDG_CONFIG_HOME"]) / "vexrun" / "keys"
    assert stat.S_IMODE((keydir / f"{keyid.replace(':', '_')}.key").stat().st_mode) == 0o600
    export = tmp_path / "memories.vmig.jsonl"
    from vexrun.testing.data import write_synthetic

    write_synthetic(export, 40)
    res = run("sign", str(export), "--comment", "nightly", env=env)
    assert res.returncode == 0 and "40 records" in res.stdout, res.stderr
    res = run("verify", str(export), "--json", env=xdg)
    out = json.loads(res.stdout)
    assert res.returncode == 0 and out["valid"] and out["statement"]["records"] == 40
    assert out["statement"]["comment"] == "nightly" and out["statement"]["dims"] == [384]
    res = run("keys", "export", env=xdg)
    assert res.stdout.startswith(f"vexrun-ed25519 {keyid} ")
    pub = tmp_path / "alice.pub"
    pub.write_text(res.stdout)
    renamed = tmp_path / "renamed.vmig.jsonl"
    export.rename(renamed)
    (tmp_path / "memories.vmig.jsonl.sig").rename(tmp_path / "renamed.vmig.jsonl.sig")
    res = run("verify", str(renamed), "--pubkey", str(pub), env=xdg)
    assert res.returncode == 0 and "signed as 'memories.vmig.jsonl'" in res.stderr
    res = run("sign", str(renamed), env={**xdg, "VEXRUN_PASSPHRASE": "wrong-passphrase"})
    assert res.returncode == 6 and "Traceback" not in res.stderr
    for out_text in (res.stdout, res.stderr):
        assert CANARY_PASS not in out_text


def test_keys_generate_needs_a_passphrase_source(xdg: dict[str, str]) -> None:
    res = run("keys", "generate", env=xdg, stdin="")
    assert res.returncode == 2 and "VEXRUN_PASSPHRASE" in res.stderr
    res = run("keys", "generate", "--no-passphrase", env=xdg)
    assert res.returncode == 0 and "without a passphrase" in res.stderr


@pytest.mark.slow
def test_3gib_sign_and_verify_in_flat_memory(tmp_path: Path, xdg: dict[str, str]) -> None:
    from vexrun.testing.rss import measure

    big = tmp_path / "big.vmig.jsonl"
    with open(big, "wb") as fh:
        fh.truncate(3 * 1024**3)  # sparse: fast to make, read like any file
    env = {**os.environ, **xdg}
    assert run("keys", "generate", "--no-passphrase", env=xdg).returncode == 0
    for cmd in (["sign", str(big)], ["verify", str(big)]):
        m = measure(vexrun_argv(*cmd), env=env)
        assert m.code == 0, m.err
        assert m.rss_mb < 100, (cmd[0], m.rss_mb)
    assert sys.platform != "win32"
