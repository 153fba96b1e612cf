"""Signing key files: 0600 in a 0700 directory even under umask 000, refused when group/other-readable or
a symlink, wrapped with the passphrase (a wrong one is its own error), every byte flip detected."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vexrun.crypto.errors import KeyFileError, WrongPassphrase  # noqa: E402
from vexrun.crypto.keys import (  # noqa: E402
    find_secret_key,
    generate_key,
    keyid_for,
    list_public_keys,
    load_secret_key,
    parse_pub_line,
)

posix = pytest.mark.skipif(os.name != "posix", reason="POSIX modes; on Windows keys belong in the OS keyring")


@pytest.fixture
def keydir(tmp_path: Path) -> Path:
    return tmp_path / "cfg" / "vexrun" / "keys"


@posix
def test_modes_under_umask_000(keydir: Path) -> None:
    old = os.umask(0)
    try:
        public, key_path, pub_path = generate_key(passphrase="pw-123456", comment="me", directory=keydir)
    finally:
        os.umask(old)
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(keydir.stat().st_mode) == 0o700
    assert key_path.name == public.keyid.replace(":", "_") + ".key"
    assert parse_pub_line(pub_path.read_text()).raw == public.raw
    assert load_secret_key(key_path, "pw-123456").keyid == public.keyid


def test_wrong_passphrase_is_its_own_error(keydir: Path) -> None:
    _, key_path, _ = generate_key(passphrase="pw-123456", directory=keydir)
    with pytest.raises(WrongPassphrase):
        load_secret_key(key_path, "pw-1234567")
    with pytest.raises(WrongPassphrase):
        load_secret_key(key_path, None)


def test_no_passphrase_key(keydir: Path) -> None:
    public, key_path, _ = generate_key(passphrase=None, directory=keydir)
    body = json.loads(key_path.read_text())
    assert body["kdf"] is None and "seed" in body and "wrap" not in body
    assert load_secret_key(key_path, None).keyid == public.keyid


@posix
def test_group_readable_and_symlinked_keys_are_refused(keydir: Path, tmp_path: Path) -> None:
    _, key_path, _ = generate_key(passphrase=None, directory=keydir)
    os.chmod(key_path, 0o640)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_secret_key(key_path, None)
    os.chmod(key_path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(key_path)
    with pytest.raises(KeyFileError, match="symlink"):
        load_secret_key(link, None)


def test_never_overwrites(keydir: Path) -> None:
    from vexrun.crypto.securefile import write_private

    _, key_path, _ = generate_key(passphrase=None, directory=keydir)
    with pytest.raises(KeyFileError, match="already exists"):
        write_private(key_path, b"x")


def test_every_byte_flip_of_a_wrapped_key_fails(keydir: Path) -> None:
    # scrypt with a small cost would be a different key file; use the real default and flip the bytes of a
    # copy, opening each with the right passphrase: parse errors come first, the tag catches the rest.
    _, key_path, _ = generate_key(passphrase="pw-123456", directory=keydir)
    data = key_path.read_bytes()
    body = json.loads(data)
    fast = {**body["kdf"], "t": 1, "m_kib": 8 * body["kdf"]["p"]}  # cheap to try 300+ times
    from vexrun.crypto import keys as k

    fast_body = {kk: v for kk, v in body.items() if kk != "wrap"} | {"kdf": fast}
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from vexrun.crypto.encoding import b64d, b64e, canonical_json
    from vexrun.crypto.kdf import derive_key

    seed = load_secret_key(key_path, "pw-123456").private.private_bytes_raw()
    nonce = b64d(body["wrap"]["nonce"], what="n", error=ValueError)
    ct = AESGCM(derive_key(b"pw-123456", fast)).encrypt(nonce, seed, k._aad(fast_body))
    fast_body["wrap"] = {"alg": "AES-256-GCM", "nonce": body["wrap"]["nonce"], "ct": b64e(ct)}
    good = canonical_json(fast_body) + b"\n"
    target = keydir / "flip.key"
    target.write_bytes(good)
    os.chmod(target, 0o600)
    assert load_secret_key(target, "pw-123456").keyid == body["keyid"]
    for i in range(len(good)):
        flipped = bytearray(good)
        flipped[i] ^= 0x01
        target.write_bytes(bytes(flipped))
        with pytest.raises((KeyFileError, WrongPassphrase)):
            load_secret_key(target, "pw-123456")


def test_find_and_list(keydir: Path) -> None:
    with pytest.raises(KeyFileError, match="keys generate"):
        find_secret_key(None, keydir)
    a, _, _ = generate_key(passphrase=None, directory=keydir, comment="a")
    assert find_secret_key(None, keydir).name.startswith("vx1_")
    b, _, _ = generate_key(passphrase=None, directory=keydir, comment="b")
    with pytest.raises(KeyFileError, match="choose one"):
        find_secret_key(None, keydir)
    assert find_secret_key(b.keyid, keydir).exists()
    assert {p.keyid for p in list_public_keys(keydir)} == {a.keyid, b.keyid}
    assert keyid_for(a.raw) == a.keyid


def test_pub_line_with_a_wrong_keyid_is_refused() -> None:
    raw = bytes(32)
    line = f"vexrun-ed25519 vx1:0000000000000000 {__import__('base64').b64encode(raw).decode()} x"
    with pytest.raises(KeyFileError, match="does not match"):
        parse_pub_line(line)
