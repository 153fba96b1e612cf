"""The ``vexrun-backup/1`` formats: golden files (key files, object, manifest, status) so the format cannot
change silently; exhaustive tampering of a manifest and a key file; hostile KDF parameters; recovery
codes; bucketing (deterministic, one changed record = one changed object) and byte-exact restores."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from conftest import DATA  # noqa: E402
from vexrun.crypto.encoding import canonical_json  # noqa: E402
from vexrun.crypto.errors import DecryptionFailed, KeyFileError, WrongPassphrase  # noqa: E402
from vexrun.sync import formats  # noqa: E402
from vexrun.sync.bucketing import index_file, iter_buckets, order_bytes  # noqa: E402
from vexrun.sync.errors import BackupDamaged, ForkDetected, RollbackRefused  # noqa: E402
from vexrun.sync.local import Freshness, check_freshness  # noqa: E402
from vexrun.sync.masterkey import (  # noqa: E402
    SubKeys,
    format_recovery_code,
    make_keyfile,
    parse_keyfile,
    parse_recovery_code,
    unwrap_keyfile,
)

GOLD = DATA / "crypto"
MS = bytes(range(32))
REPO = bytes.fromhex("00112233445566778899aabbccddeeff")
PASS = "correct horse battery staple"
CODE = bytes(range(100, 132))
KEYS = SubKeys.derive(MS, 1)
LINES = (
    b'{"id":"mem-a","text":"likes tea","vector":[0.5,-0.25],"model":"m","dims":2,"namespace":"default"}\n'
    b'{"id":"mem-b","text":"lives in Lisbon","vector":[1.0,0.0],"model":"m","dims":2,"namespace":"default"}\n'
)


def _manifest() -> dict:
    oid = KEYS.object_id(LINES)
    return {
        "v": 1, "repo_id": REPO.hex(), "epoch": 1, "generation": 42, "prev": "ab" * 32,
        "ancestors": [[41, "ab" * 32]], "created_at": "2026-01-01T00:00:00Z", "device_id": "0011223344556677",
        "vexrun_version": "0.1.0", "buckets": 1, "compression": "none", "records": 2,
        "file": {"name": "golden.vmig.jsonl", "size": len(LINES), "blake3": "cd" * 32, "final_newline": True,
                 "lines": 2},
        "sidecar": None,
        "objects": [{"id": oid.hex(), "kind": "bucket", "bucket": 0, "part": 0, "records": 2,
                     "size_pt": len(LINES), "size_ct": 0, "compression": "none"}],
    }  # fmt: skip


def golden_artifacts() -> dict[str, bytes]:
    pass_key = make_keyfile(
        MS, REPO, kind="passphrase", secret=PASS, label="golden", kdf_alg="argon2id", key_id="0123456789abcdef",
        salt=b"\x11" * 16, nonce=b"\x22" * 12, created_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    rec_key = make_keyfile(
        MS, REPO, kind="recovery", secret=CODE, label="recovery", key_id="fedcba9876543210", nonce=b"\x33" * 12,
        created_at="2026-01-01T00:00:00Z",
    )  # fmt: skip
    oid = KEYS.object_id(LINES)
    return {
        "keyfile-passphrase.json": canonical_json(pass_key) + b"\n",
        "keyfile-recovery.json": canonical_json(rec_key) + b"\n",
        "object.bin": bytes(formats.encrypt_object(KEYS, REPO, oid, LINES, salt=b"\x44" * 24)),
        "manifest.vxm": formats.encrypt_manifest(KEYS, REPO, _manifest(), salt=b"\x55" * 24),
        "status.json": formats.make_status(KEYS, REPO, 42, "2026-01-01T00:00:00Z", 2),
    }


def test_golden_files_are_stable(update_goldens: bool) -> None:
    for name, data in golden_artifacts().items():
        path = GOLD / name
        if update_goldens:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        assert path.read_bytes() == data, f"{name}: the format changed; if on purpose, bump v and run --update-goldens"


def test_golden_files_decrypt() -> None:
    body = parse_keyfile((GOLD / "keyfile-passphrase.json").read_bytes(), source="golden")
    assert unwrap_keyfile(body, REPO, PASS) == MS
    rec = parse_keyfile((GOLD / "keyfile-recovery.json").read_bytes(), source="golden")
    assert unwrap_keyfile(rec, REPO, format_recovery_code(CODE)) == MS
    m = formats.decrypt_manifest(KEYS, REPO, (GOLD / "manifest.vxm").read_bytes())
    assert m["generation"] == 42 and m["records"] == 2
    oid = bytes.fromhex(m["objects"][0]["id"])
    assert formats.decrypt_object(KEYS, REPO, oid, (GOLD / "object.bin").read_bytes()) == LINES
    st_, ok = formats.parse_status((GOLD / "status.json").read_bytes(), REPO, KEYS)
    assert ok is True and st_["generation"] == 42


def test_every_manifest_byte_flip_and_truncation_fails() -> None:
    data = (GOLD / "manifest.vxm").read_bytes()
    buf = bytearray(data)
    for i in range(len(buf)):
        buf[i] ^= 0x01
        with pytest.raises(BackupDamaged):
            formats.decrypt_manifest(KEYS, REPO, bytes(buf))
        buf[i] ^= 0x01
    for n in range(len(data)):
        with pytest.raises(BackupDamaged):
            formats.decrypt_manifest(KEYS, REPO, data[:n])


def test_manifest_replayed_under_another_generation_or_repo_fails() -> None:
    data = (GOLD / "manifest.vxm").read_bytes()
    with pytest.raises(BackupDamaged, match="commitment"):
        formats.decrypt_manifest(KEYS, REPO, (43).to_bytes(8, "big") + data[8:])
    with pytest.raises(BackupDamaged, match="commitment"):
        formats.decrypt_manifest(KEYS, bytes(16), data)


def test_object_moved_or_copied_to_another_repo_fails() -> None:
    data = (GOLD / "object.bin").read_bytes()
    oid = KEYS.object_id(LINES)
    other = bytes(32)
    with pytest.raises(DecryptionFailed, match="commitment"):
        formats.decrypt_object(KEYS, REPO, other, data)
    with pytest.raises(DecryptionFailed, match="commitment"):
        formats.decrypt_object(KEYS, bytes(16), oid, data)
    with pytest.raises(DecryptionFailed, match="commitment"):
        formats.decrypt_object(SubKeys.derive(MS, 2), REPO, oid, data)


def test_every_keyfile_byte_flip_fails() -> None:
    data = (GOLD / "keyfile-recovery.json").read_bytes()  # a recovery key: no slow KDF per attempt
    code = format_recovery_code(CODE)
    buf = bytearray(data)
    for i in range(len(buf)):
        buf[i] ^= 0x01
        with pytest.raises((KeyFileError, WrongPassphrase)):
            unwrap_keyfile(parse_keyfile(bytes(buf), source="k"), REPO, code)
        buf[i] ^= 0x01
    for n in range(len(data) - 1):
        with pytest.raises(KeyFileError):
            parse_keyfile(data[:n], source="k")
    assert unwrap_keyfile(parse_keyfile(bytes(buf), source="k"), REPO, code) == MS


@pytest.mark.parametrize(
    ("field", "value"),
    [("kind", "recovery"), ("label", "other"), ("created_at", "2027-01-01T00:00:00Z"), ("key_id", "0" * 16)],
)
def test_keyfile_edits_fail_the_tag(field: str, value: str) -> None:
    body = json.loads((GOLD / "keyfile-passphrase.json").read_bytes())
    body[field] = value
    with pytest.raises((WrongPassphrase, KeyFileError)):
        unwrap_keyfile(parse_keyfile(canonical_json(body), source="k"), REPO, PASS)


def test_keyfile_from_another_repo_or_kdf_edit_fails() -> None:
    body = parse_keyfile((GOLD / "keyfile-passphrase.json").read_bytes(), source="k")
    with pytest.raises(WrongPassphrase):
        unwrap_keyfile(body, bytes(16), PASS)
    with pytest.raises(WrongPassphrase):
        unwrap_keyfile(body, REPO, PASS + "!")
    edited = json.loads(canonical_json(body))
    edited["kdf"]["t"] = 2
    with pytest.raises(WrongPassphrase):
        unwrap_keyfile(parse_keyfile(canonical_json(edited), source="k"), REPO, PASS)


@pytest.mark.parametrize(
    "kdf",
    [
        {"alg": "argon2id", "salt": "ERERERERERERERERERERERE=", "t": 3, "m_kib": 64 * 1024 * 1024, "p": 4},
        {"alg": "argon2id", "salt": "ERERERERERERERERERERERE=", "t": 1000, "m_kib": 65536, "p": 4},
        {"alg": "scrypt", "salt": "ERERERERERERERERERERERE=", "log_n": 30, "r": 8, "p": 1},
        {"alg": "argon2id", "salt": "ERE=", "t": 3, "m_kib": 65536, "p": 4},
        {"alg": "pbkdf2", "salt": "ERERERERERERERERERERERE="},
    ],
)
def test_hostile_kdf_parameters_are_refused_before_allocation(kdf: dict) -> None:
    body = json.loads((GOLD / "keyfile-passphrase.json").read_bytes())
    body["kdf"] = kdf
    with pytest.raises(KeyFileError):
        parse_keyfile(canonical_json(body), source="hostile")


def test_recovery_code_format() -> None:
    text = format_recovery_code(CODE)
    assert len(text.split("-")) == 7 and all(len(g) == 8 for g in text.split("-"))
    assert parse_recovery_code(text.lower().replace("-", " ")) == CODE
    typo = ("A" if text[0] != "A" else "B") + text[1:]
    with pytest.raises(WrongPassphrase, match="mistyped"):
        parse_recovery_code(typo)
    with pytest.raises(WrongPassphrase):
        parse_recovery_code("not a code")


# -- freshness -------------------------------------------------------------------------------------------
SEEN = Freshness(5, "h5", "2026-01-01T00:00:00Z")


def test_freshness_rules() -> None:
    assert check_freshness(None, 3, "x", []) == "tofu"
    assert check_freshness(SEEN, 5, "h5", []) == "same"
    assert check_freshness(SEEN, 7, "h7", [[6, "h6"], [5, "h5"]]) == "newer"
    assert check_freshness(SEEN, 900, "h", [[899, "x"]]) == "newer-unchecked"
    with pytest.raises(ForkDetected):
        check_freshness(SEEN, 5, "other", [])
    with pytest.raises(ForkDetected):
        check_freshness(SEEN, 7, "h7", [[6, "h6"], [5, "not-h5"]])
    with pytest.raises(RollbackRefused, match="older than what this machine last saw"):
        check_freshness(SEEN, 3, "h3", [])
    assert check_freshness(SEEN, 3, "h3", [], allow_rollback=True) == "rollback"
    assert check_freshness(SEEN, 5, "other", [], accept_fork=True) == "fork"


# -- bucketing -------------------------------------------------------------------------------------------
def _record(i: int, extra: str = "") -> bytes:
    return json.dumps({"id": f"r{i:05d}", "text": f"memory {i} {extra}", "vector": [i / 7, 1.0]}).encode() + b"\n"


def _parts(path: Path, k_id: bytes = KEYS.k_id, buckets: int = 8, max_part: int = 1 << 20) -> tuple[list, bytes]:
    idx = index_file(path, k_id, buckets)
    parts = list(iter_buckets(idx, max_part))
    return parts, order_bytes(idx)


def _restore(parts: list, order: bytes, final_newline: bool) -> bytes:
    import numpy as np

    stream = b"".join(p.data for p in parts)
    lines = [x + b"\n" for x in stream.split(b"\n")[:-1]]
    out = b"".join(lines[i] for i in np.frombuffer(order, "<u4"))
    return out[:-1] if not final_newline and out.endswith(b"\n") else out


def test_bucketing_is_deterministic_and_order_independent(tmp_path: Path) -> None:
    recs = [_record(i) for i in range(300)]
    a, b = tmp_path / "a.vmig.jsonl", tmp_path / "b.vmig.jsonl"
    a.write_bytes(b"".join(recs))
    b.write_bytes(b"".join(reversed(recs)))
    ids_a = [KEYS.object_id(p.data) for p in _parts(a)[0]]
    ids_b = [KEYS.object_id(p.data) for p in _parts(b)[0]]
    assert ids_a == ids_b and len(ids_a) == 8


def test_one_changed_record_changes_one_object(tmp_path: Path) -> None:
    recs = [_record(i) for i in range(300)]
    f = tmp_path / "a.vmig.jsonl"
    f.write_bytes(b"".join(recs))
    before, order_before = _parts(f)
    recs[123] = _record(123, "edited")
    f.write_bytes(b"".join(recs))
    after, order_after = _parts(f)
    changed = [x for x, y in zip(before, after, strict=True) if x.data != y.data]
    assert len(changed) == 1 and order_before == order_after


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.builds(_record, st.integers(0, 50)),
            st.sampled_from([b"\n", b"# comment\n", b"not json\n", b"  \n", b'{"id": "spaced" }\r\n', b"[1,2]\n"]),
            st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"") + b"\n"),
        ),
        max_size=60,
    ),
    st.booleans(),
)
def test_restore_is_byte_exact(tmp_path_factory: pytest.TempPathFactory, lines: list[bytes], strip: bool) -> None:
    data = b"".join(lines)
    if strip and data.endswith(b"\n"):
        data = data[:-1]
    f = tmp_path_factory.mktemp("b") / "x.vmig.jsonl"
    f.write_bytes(b"\xef\xbb\xbf" + data if strip else data)
    want = f.read_bytes()
    parts, order = _parts(f, buckets=4, max_part=200)
    assert _restore(parts, order, want.endswith(b"\n") or not want) == want
    os.remove(f)
