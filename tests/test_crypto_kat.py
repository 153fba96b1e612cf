"""Known-answer tests of the primitives vexrun builds on: BLAKE3, Ed25519 (RFC 8032), AES-256-GCM (NIST
CAVP), HKDF (RFC 5869), scrypt (RFC 7914), Argon2id (RFC 9106), and Cobblestone-256 (Wycheproof).

Small vectors are inline and always run. The full vector files of the ``cryptography-vectors`` package
run: the test group installs it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import zlib
from pathlib import Path

import blake3
import pytest
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

from vexrun.crypto import cobblestone  # noqa: E402
from vexrun.crypto.errors import DecryptionFailed  # noqa: E402
from vexrun.crypto.kdf import derive_key, hkdf  # noqa: E402

# -- BLAKE3: BLAKE3-team/BLAKE3 test_vectors/test_vectors.json (first 32 bytes of each output) ------------
B3_KEY = b"whats the Elvish word for friend"
B3 = [
    (0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
        "92b2b75604ed3c761f9d6f62392c8a9227ad0ea3f09573e783f1498a4ed60d26"),
    (1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213",
        "6d7878dfff2f485635d39013278ae14f1454b8c0a3a2d34bc1ab38228a80c95b"),
    (1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11",
           "c951ecdf03288d0fcc96ee3413563d8a6d3589547f2c2fb36d9786470f1b9d6e"),
    (1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7",
           "75c46f6f3d9eb4f55ecaaee480db732e6c2105546f1e675003687c31719c7ba4"),
    (1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444",
           "357dc55de0c7e382c900fd6e320acc04146be01db6a8ce7210b7189bd664ea69"),
    (3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3",
           "68dede9bef00ba89e43f31a6825f4cf433389fedae75c04ee9f0cf16a427c95a"),
]  # fmt: skip


@pytest.mark.parametrize(("length", "digest", "keyed"), B3)
def test_blake3_vectors(length: int, digest: str, keyed: str) -> None:
    data = bytes(i % 251 for i in range(length))
    assert blake3.blake3(data).hexdigest() == digest
    assert blake3.blake3(data, key=B3_KEY).hexdigest() == keyed
    streamed = blake3.blake3(max_threads=blake3.blake3.AUTO)
    for i in range(0, length, 7):
        streamed.update(data[i : i + 7])
    assert streamed.hexdigest() == digest


def test_blake3_extended_output() -> None:
    assert blake3.blake3(b"").hexdigest(length=64).startswith(B3[0][1] + "e00f03e7b69af26b7faaf09fcd333050")


# -- Ed25519: RFC 8032 §7.1 TEST 1-3 ----------------------------------------------------------------------
ED25519 = [
    ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
     "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
     "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),  # noqa: E501
    ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
     "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
     "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),  # noqa: E501
    ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
     "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
     "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),  # noqa: E501
]  # fmt: skip


@pytest.mark.parametrize(("seed", "pub", "msg", "sig"), ED25519)
def test_ed25519_rfc8032(seed: str, pub: str, msg: str, sig: str) -> None:
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(seed))
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert raw.hex() == pub
    assert key.sign(bytes.fromhex(msg)).hex() == sig
    key.public_key().verify(bytes.fromhex(sig), bytes.fromhex(msg))


# -- AES-256-GCM: NIST CAVP gcmEncryptExtIV256.rsp, PTlen 256, AADlen 128, Count 0 -----------------------
def test_aes256gcm_nist() -> None:
    key = bytes.fromhex("37ccdba1d929d6436c16bba5b5ff34deec88ed7df3d15d0f4ddf80c0c731ee1f")
    iv = bytes.fromhex("5c1b21c8998ed6299006d3f9")
    pt = bytes.fromhex("ad4260e3cdc76bcc10c7b2c06b80b3be948258e5ef20c508a81f51e96a518388")
    aad = bytes.fromhex("22ed235946235a85a45bc5fad7140bfa")
    ct = "3b335f8b08d33ccdcad228a74700f1007542a4d1e7fc1ebe3f447fe71af29816" + "1fbf49cc46f458bf6e88f6370975e6d4"
    assert AESGCM(key).encrypt(iv, pt, aad).hex() == ct
    assert AESGCM(key).decrypt(iv, bytes.fromhex(ct), aad) == pt


# -- HKDF: RFC 5869 A.1; and our HKDF-Expand-SHA-512 against an independent HMAC construction ----------
def test_hkdf_rfc5869_case1() -> None:
    okm = HKDF(hashes.SHA256(), 42, bytes.fromhex("000102030405060708090a0b0c"), bytes.fromhex("f0f1f2f3f4f5f6f7f8f9"))
    out = okm.derive(bytes.fromhex("0b" * 22))
    assert out.hex() == "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"


def test_hkdf_expand_sha512_matches_rfc_construction() -> None:
    prk, info = bytes(range(32)), b"vexrun/v1/objects\x00\x00\x00\x01"
    t, okm = b"", b""
    for i in range(1, 3):
        t = hmac.new(prk, t + info + bytes([i]), "sha512").digest()
        okm += t
    assert hkdf(prk, info, 76) == okm[:76]


# -- scrypt: RFC 7914 §12 ---------------------------------------------------------------------------------
def test_scrypt_rfc7914() -> None:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    assert Scrypt(salt=b"", length=64, n=16, r=1, p=1).derive(b"").hex() == (
        "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
        "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"
    )
    assert Scrypt(salt=b"NaCl", length=64, n=1024, r=8, p=16).derive(b"password").hex() == (
        "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
        "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"
    )


# -- Argon2id: RFC 9106 §5.3 (with secret and associated data), and the same parameters through ours ----
def test_argon2id_rfc9106() -> None:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id

    kdf = Argon2id(
        salt=b"\x02" * 16, length=32, iterations=3, lanes=4, memory_cost=32, ad=b"\x04" * 12, secret=b"\x03" * 8
    )
    assert kdf.derive(b"\x01" * 32).hex() == "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    params = {"alg": "argon2id", "salt": base64.b64encode(b"\x02" * 16).decode(), "t": 3, "m_kib": 32, "p": 4}
    assert derive_key(b"\x01" * 32, params).hex() == "03aab965c12001c9d7d0d2de33192c0494b684bb148196d73c1df1acaf6d0c2e"


# -- Cobblestone-256: Wycheproof c2sp_chunked_encryption_aes_256_gcm_test.json (small vectors) ----------
W_KEY = "59454c4c4f57205355424d4152494e452059454c4c4f57205355424d4152494e"
SHA512_7 = (
    "e85f32a85f1d4f7c9b2d36d20eca8435d81253e7075e9dea069eb1b6da48daf9"
    "2ef1797367b520d8a46c4f72cecb85b1daff8887fcb41721d39943d1952fc180"
)
WYCHEPROOF_VALID = [
    (1, W_KEY, "", "78da004800b7ff43a2e39431cbae0389d3fc86adf46f7c3a24de88d9311617e53f3164cc1d5dc738a66b97f0bf786565c31799c2f463d50a7e10046011dc6fc3c939e3a5db7affb6191551669554fb010000ffff4bc124df", 0,  # noqa: E501
     "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"),  # noqa: E501
    (2, W_KEY, "", "78da004f00b0ffa1a1b56f6db58cd1ede0c5c9db62aef20d3f96a6c594bb9252bb38122de91236502b42a1d7fcab820ffa292940d2f86add212cfa42c38df19d3cc9139ee61a5990d3db57433514229beea49a8a72bd010000ffffdb4f2a44", 7, SHA512_7),  # noqa: E501
    (9, W_KEY, "7465737420636f6e74657874", "78da004f00b0ffdbedaefc1c35dc6c0f22b743b03e488747166a51f33479e7ceb8b7e11cc0d2710f624a127501bc4aea7d0af6f83cfe359b9e69415aa537f36adf86eb35b070475baa039bb7791432adbca49578bbd3010000ffff2fed280a", 7, SHA512_7),  # noqa: E501
    (10, W_KEY, "7465737400636f6e74657874", "78da004f00b0ff12ede102c3ef730da4f3d4dbfaf11003683238315befe73b21ebb2246ac19f3a7d50abd2a5a365f7652bda670814dbc883ce618256d2d513bd238c2c0dded7614d52bef77bc04273656df97a294323010000ffff7d862843", 7, SHA512_7),  # noqa: E501
]  # fmt: skip
WYCHEPROOF_INVALID = [
    (11, W_KEY, "", "78da004900b6ff0093274a932cb4340ca678d500719d80ccc21f69c49586a8cae519f1ae94a13a97038610177fe840ac755f6604849272444b0de559508a2a00538b8dd8cc3a83e14df1343fa14630a2010000ffffc0482101"),  # noqa: E501
    (16, W_KEY, "", "78dad270329c9ddec7ada418b04767c7923331ee2c87262f125d59a0c8be7373eb2fa924762df7ae29ded2bfa34de6579c357a702440af45d1be6fae3c03200000ffff94c01721"),  # noqa: E501
    (17, W_KEY, "", "78da004400bbff679551dfcc4221c2c5f3dfcff2f94fcd7df0dc5d0dac8ceb294cda58ffffbe199532a141b16102b69550faa5e1315a3c823e58b9e3141839e1fd278b80a7dabc12eaa4ed010000ffff54b5266f"),  # noqa: E501
    (20, W_KEY, "", "78da003800c7ffe728f14e89526f8830991f461c0fd07601a246a0c94b753ba4fab29386d9e39e72d5e8955f709651b6dedb825c64c984364f74e1b6ac93d6010000ffff198a1ded"),  # noqa: E501
    (21, W_KEY, "", "78da004900b6ffa7bf214ab87afe86ae30940aba6d25aa92d1c26a7c4de03ece1f5f63bd31ca5d9517ce97effb9ce62c4f01433335d070ca3de6243f4cb67a00a4deb622c6b80140d1c88f54ade32fdc010000ffff59a52514"),  # noqa: E501
    (22, "4f52414e4745205355424d4152494e45204f52414e4745205355424d4152494e", "", "78da004900b6ffabeb3f4f4a3ea1f1f76bc25808b37063d4cb21425ca6a8b16271ed22f6a3f51ec7e7fa4dcef196179d3c77b5b42103766ae1975bae6ae0690079aa245e53811c13d45a553b0365b499010000ffffa0d324a1"),  # noqa: E501
    (25, W_KEY, "77726f6e6720636f6e74657874", "78da004900b6ff36201844cafc0e596bec8782c560b7b1d065b90a94d227007f07a7185f0c1f449310232a0ff1d5667ece42aff4e7c0359df78ece43b312d50034c80236b5c7900f7eebe540d242b8eb010000ffffc64f22fe"),  # noqa: E501
    (26, W_KEY, "", "78da004900b6ff7c510aa191fdb799b3715106fb9da30a3e314a08a12bf1eed6084369ad9560c21c856d0087e1206c5c1e9a994b3ca98542e0fe1ffef9e23c0091398606b7077f679901eea490bb8f6b010000fffff4792294"),  # noqa: E501
    (27, W_KEY, "", "78da010000ffff00000001"),
]  # fmt: skip


@pytest.mark.parametrize(("tc", "key", "ctx", "ct", "length", "sha"), WYCHEPROOF_VALID)
def test_cobblestone256_wycheproof_valid(tc: int, key: str, ctx: str, ct: str, length: int, sha: str) -> None:
    message = zlib.decompress(bytes.fromhex(ct))
    pt = cobblestone.decrypt(bytes.fromhex(key), bytes.fromhex(ctx), message)
    assert len(pt) == length and hashlib.sha512(pt).hexdigest() == sha
    # encryption with the vector's salt reproduces the ciphertext byte for byte
    assert cobblestone.encrypt(bytes.fromhex(key), bytes.fromhex(ctx), pt, salt=message[:24]) == message


@pytest.mark.parametrize(("tc", "key", "ctx", "ct"), WYCHEPROOF_INVALID)
def test_cobblestone256_wycheproof_invalid(tc: int, key: str, ctx: str, ct: str) -> None:
    with pytest.raises(DecryptionFailed):
        cobblestone.decrypt(bytes.fromhex(key), bytes.fromhex(ctx), zlib.decompress(bytes.fromhex(ct)))


def test_cobblestone_rejects_bad_key_sizes() -> None:
    for size in (31, 33, 0):
        with pytest.raises(ValueError):
            cobblestone.decrypt(b"k" * size, b"", b"\0" * 72)


def test_cobblestone_matches_cryptography_builtin() -> None:
    import importlib

    mod = importlib.import_module("cryptography.cobblestone")  # cryptography >= 50 (the test group pins it)
    key, ctx = bytes(range(32)), b"vexrun/v1/object\x00" + bytes(48)
    for n in (0, 1, 16383, 16384, 16385, 40000):
        pt = bytes(i % 253 for i in range(n))
        ours = bytes(cobblestone.encrypt(key, ctx, pt))
        dec = mod.Cobblestone256Decryptor(key, ctx)
        assert dec.update(ours) + dec.finalize() == pt
        enc = mod.Cobblestone256Encryptor(key, ctx)
        assert cobblestone.decrypt(key, ctx, enc.update(pt) + enc.finalize()) == pt


# -- the full vector files of cryptography-vectors (optional test extra) ----------------------------------
def _vectors() -> Path:
    import cryptography_vectors as mod  # the test group installs it

    return Path(mod.__file__).parent  # type: ignore[arg-type]


def _nist_blocks(path: Path) -> list[dict[str, str]]:
    blocks, cur = [], {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or line.startswith("["):
            if cur:
                blocks.append(cur)
                cur = {}
            continue
        if "=" in line:
            k, _, v = line.partition("=")
            cur[k.strip().lower()] = v.strip()
        elif line.upper() == "FAIL":
            cur["fail"] = "1"
    if cur:
        blocks.append(cur)
    return blocks


def _kv(line: str) -> tuple[str, str]:
    k, _, v = line.partition("=")
    return k.strip().lower(), v.strip()


def test_vectors_ed25519_all() -> None:
    lines = (_vectors() / "asymmetric/Ed25519/sign.input").read_text().splitlines()
    assert len(lines) >= 1024
    for line in lines:
        sk_pk, pk, msg, sig, _ = line.split(":")
        key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sk_pk[:64]))
        assert key.sign(bytes.fromhex(msg)).hex() == sig[:128]


def test_vectors_aes256gcm_all() -> None:
    base = _vectors() / "ciphers/AES/GCM"
    n = 0
    for block in _nist_blocks(base / "gcmEncryptExtIV256.rsp"):
        if "key" not in block or len(block.get("tag", "")) != 32 or len(block.get("iv", "")) != 24:
            continue
        aead = AESGCM(bytes.fromhex(block["key"]))
        out = aead.encrypt(bytes.fromhex(block["iv"]), bytes.fromhex(block["pt"]), bytes.fromhex(block["aad"]))
        assert out.hex() == block["ct"] + block["tag"]
        n += 1
    assert n > 100


def test_vectors_scrypt_argon2id_hkdf() -> None:
    from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    kdf_dir = _vectors() / "KDF"
    for b in _nist_blocks(kdf_dir / "scrypt.txt"):
        if int(b["n"]) > 1 << 16:
            continue
        out = Scrypt(salt=b["salt"].encode(), length=int(b["length"]), n=int(b["n"]), r=int(b["r"]), p=int(b["p"]))
        assert out.derive(b["password"].encode()).hex() == b["derived_key"]
    for b in _nist_blocks(kdf_dir / "argon2id.txt"):
        if int(b["memcost"]) > 1 << 17:
            continue
        kdf = Argon2id(
            salt=bytes.fromhex(b["salt"]), length=int(b["length"]), iterations=int(b["iter"]), lanes=int(b["lanes"]),
            memory_cost=int(b["memcost"]), ad=bytes.fromhex(b["ad"]) if b.get("ad") else None,
            secret=bytes.fromhex(b["secret"]) if b.get("secret") else None,
        )  # fmt: skip
        assert kdf.derive(bytes.fromhex(b.get("pass", ""))).hex() == b["output"]
    text = (kdf_dir / "rfc-5869-HKDF-SHA256.txt").read_text()
    cases = [dict(_kv(line) for line in chunk.splitlines() if "=" in line) for chunk in text.split("COUNT =")[1:]]
    assert len(cases) >= 3
    for b in cases:
        out = HKDF(hashes.SHA256(), int(b["l"]), bytes.fromhex(b["salt"]) or None, bytes.fromhex(b["info"]))
        assert out.derive(bytes.fromhex(b["ikm"])).hex() == b["okm"]


def test_vectors_chunked_encryption_generic() -> None:
    """The generic c2sp chunked-encryption vectors (HKDF-SHA-256) through the same code path."""
    vectors = json.loads((_vectors() / "chunked-encryption/vectors.json").read_text())["vectors"]
    n = 0
    for v in vectors:
        if "AES" not in v["aead"]:
            continue
        ct = base64.b64decode(v["ciphertext"] or "")
        if ct[:1] == b"\x78":
            try:
                ct = zlib.decompress(ct)
            except zlib.error:
                pass
        key, ctx = bytes.fromhex(v["key"]), v["context"].encode()
        if v["expect"] == "success":
            pt = cobblestone.decrypt(key, ctx, ct, hash_name="sha256")
            assert hashlib.sha256(pt).hexdigest() == v["payload_sha256"]
            assert cobblestone.encrypt(key, ctx, pt, salt=ct[:24], hash_name="sha256") == ct
        else:
            with pytest.raises((DecryptionFailed, ValueError)):
                cobblestone.decrypt(key, ctx, ct, hash_name="sha256")
        n += 1
    assert n >= 60
