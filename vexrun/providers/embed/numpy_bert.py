"""A torch-free engine for BERT-style sentence-transformers models: tokenizers + numpy.

:class:`NumpyBert` reads a sentence-transformers model directory (``modules.json``, ``config.json``,
``tokenizer.json``, ``model.safetensors``, ``sentence_bert_config.json``, ``1_Pooling/config.json``) and runs
the same computation as sentence-transformers on torch, in float32 numpy: word + position + token-type
embeddings, LayerNorm, the encoder layers (multi-head self-attention with the padding mask, GELU feed-forward,
LayerNorm), then pooling over the attention mask and L2 normalisation. Its vectors match the torch path to
~1e-6 (``tests/test_embed_numpy.py``); ``bench/bench_embed_numpy.py`` compares the speed.

Only what these models need is supported: ``model_type: bert`` with absolute positions, GELU (exact erf) /
tanh-GELU / ReLU, cls / max / mean / mean-sqrt-len pooling and a final Normalize. Anything else is refused
with a :class:`ModelError` that says so. The only imports besides numpy are ``tokenizers`` (in :meth:`load`)
and the standard library: ``model.safetensors`` is read by a small parser of its own, memory-mapped.

Threads: matrix products run on numpy's BLAS; :func:`set_blas_threads` sets its thread count at run time
(``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` set before Python starts work for any BLAS).
"""

from __future__ import annotations

import ctypes
import json
import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Tokenizer

__all__ = ["ModelError", "NumpyBert", "erf", "gelu", "read_safetensors", "set_blas_threads"]

F32 = np.float32
#: pooling modes in the order sentence-transformers concatenates them
_POOLING = ("cls_token", "max_tokens", "mean_tokens", "mean_sqrt_len_tokens")
_SKIPPED_MODULES = ("Transformer", "Pooling", "Normalize")


class ModelError(ValueError):
    """The model directory cannot be used by this engine. ``str()`` is one line."""


# ---- erf and GELU --------------------------------------------------------------------------------------------
#
# Phi(-|x|) = erfc(|x| / sqrt 2) / 2 = exp(-x*x/2) * sum(C[k] * t**(k+1)) with t = 1 / (1 + P * |x|), |x| clipped
# at CLIP (erfc(4.5) = 2e-10). The seven coefficients were fitted for this module: linear least squares of
# erfc(z) against t**k * exp(-z*z) on 6000 points of z in [0, 4.5] (t = 1 / (1 + 0.45 z)), reweighted towards
# the largest errors (Lawson), then halved and rewritten for x = z * sqrt 2. In float64 the error is 5e-10;
# evaluated in float32, GELU is within 2.4e-7 of exact (torch's float32 GELU: 1.1e-6). Abramowitz & Stegun
# 7.1.26 (1.5e-7 for erf in exact arithmetic) would do too: after float32 rounding both are near one float32
# step; this one is a little more exact for two more multiply-adds. The test checks it against math.erf.
_PHI_P = 0.31819805153394637
_PHI_CLIP = 6.3639610306789285
_PHI_C = (
    0.12949478344655846,
    0.10050516639657425,
    0.23008377755701984,
    -0.18789875706362255,
    0.4285813509701196,
    -0.24705086741626084,
    0.046284546630164264,
)


def _phi_of_minus_abs(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Phi(-|x|), |x|) as new float32 arrays, Phi being the standard normal CDF."""
    a = np.abs(x)
    c = np.minimum(a, F32(_PHI_CLIP))
    t = c * F32(_PHI_P)
    t += F32(1.0)
    np.reciprocal(t, out=t)
    acc = t * F32(_PHI_C[-1])
    acc += F32(_PHI_C[-2])
    for coef in _PHI_C[-3::-1]:
        acc *= t
        acc += F32(coef)
    acc *= t
    np.square(c, out=c)
    c *= F32(-0.5)
    np.exp(c, out=c)
    acc *= c
    return acc, a


def erf(x: np.ndarray) -> np.ndarray:
    """The error function, vectorised, float32 (within 3e-7 of the exact value)."""
    z = np.asarray(x, dtype=F32)
    phi, _ = _phi_of_minus_abs(z * F32(math.sqrt(2)))  # erf(|z|) = 1 - 2 Phi(-|z| sqrt 2)
    phi *= F32(-2.0)
    phi += F32(1.0)
    out: np.ndarray = np.copysign(phi, z)
    return out


def gelu(x: np.ndarray) -> np.ndarray:
    """GELU as BERT defines it, ``x * Phi(x) = 0.5 * x * (1 + erf(x / sqrt 2))``, as a new float32 array.
    Written ``max(x, 0) - |x| * Phi(-|x|)`` (the same function): no cancellation, and few passes over x."""
    phi, a = _phi_of_minus_abs(x)
    phi *= a
    out: np.ndarray = np.maximum(x, F32(0.0))
    out -= phi
    return out


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    inner = np.tanh(F32(math.sqrt(2 / math.pi)) * (x + F32(0.044715) * x * x * x))
    out: np.ndarray = F32(0.5) * x * (F32(1.0) + inner)
    return out


_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": gelu,
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "relu": lambda x: np.maximum(x, F32(0.0)),
}


# ---- safetensors ---------------------------------------------------------------------------------------------

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a ``.safetensors`` file as a numpy array (floats as float32; bfloat16 widened), read
    through a memory map. The format: an 8-byte little-endian header size, a JSON header naming each tensor's
    dtype, shape and byte range, then the bytes."""
    try:
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        (size,) = struct.unpack("<Q", raw[:8].tobytes())
        header: dict[str, Any] = json.loads(raw[8 : 8 + size].tobytes())
    except (OSError, ValueError, struct.error) as exc:
        raise ModelError(f"{path.name} is not a readable safetensors file ({exc})") from None
    data = raw[8 + size :]
    out: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        chunk = data[begin:end]
        if info["dtype"] == "BF16":
            arr = (chunk.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif info["dtype"] in _DTYPES:
            arr = chunk.view(np.dtype(_DTYPES[info["dtype"]]).newbyteorder("<"))
        else:
            raise ModelError(f"{path.name}: tensor {name} has dtype {info['dtype']}, which this engine cannot read")
        arr = arr.reshape(shape).view(np.ndarray)  # not a memmap subclass: plain arrays downstream
        out[name] = np.asarray(arr, dtype=F32) if arr.dtype.kind == "f" else arr
    return out


# ---- the model -----------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    qkv_w: np.ndarray  # (hidden, 3 * hidden): query, key, value side by side, transposed for x @ w
    qkv_b: np.ndarray
    out_w: np.ndarray
    out_b: np.ndarray
    ln1_w: np.ndarray
    ln1_b: np.ndarray
    ff_in_w: np.ndarray
    ff_in_b: np.ndarray
    ff_out_w: np.ndarray
    ff_out_b: np.ndarray
    ln2_w: np.ndarray
    ln2_b: np.ndarray


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{path.name} is missing from {path.parent}") from None
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path} cannot be read ({exc})") from None


class NumpyBert:
    """A loaded model. :meth:`load` reads a directory; :meth:`encode` embeds texts."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        config: dict[str, Any],
        weights: dict[str, np.ndarray],
        pooling: tuple[str, ...],
        normalize: bool,
        max_seq_length: int,
        lowercase: bool = False,
    ) -> None:
        self.tokenizer = tokenizer
        self.hidden = int(config["hidden_size"])
        self.heads = int(config["num_attention_heads"])
        self.eps = F32(config.get("layer_norm_eps", 1e-12))
        self.pooling = pooling
        self.normalize = normalize
        self.max_seq_length = max_seq_length
        self.lowercase = lowercase
        act = str(config.get("hidden_act", "gelu"))
        if act not in _ACTIVATIONS:
            raise ModelError(f"hidden_act '{act}' is not supported by the numpy engine (use engine: torch)")
        self.act = _ACTIVATIONS[act]
        w = _strip_prefix(weights)
        try:
            self.word = w["embeddings.word_embeddings.weight"]
            self.position = w["embeddings.position_embeddings.weight"]
            self.token_type = w.get("embeddings.token_type_embeddings.weight")
            self.emb_ln = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
            self.layers = [_layer(w, i) for i in range(int(config["num_hidden_layers"]))]
        except KeyError as exc:
            raise ModelError(f"model.safetensors has no tensor {exc}: not a BERT model this engine can run") from None
        if self.max_seq_length > self.position.shape[0]:
            raise ModelError(
                f"max_seq_length {self.max_seq_length} is more than the model's {self.position.shape[0]} positions"
            )
        tokenizer.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length, strategy="longest_first")

    @property
    def dims(self) -> int:
        return self.hidden * len(self.pooling)

    @classmethod
    def load(cls, folder: str | Path, max_seq_length: int | None = None) -> NumpyBert:
        """Read a sentence-transformers model directory. Raises :class:`ModelError` (one line) when it is
        missing a file or uses something this engine does not implement."""
        root = Path(folder)
        if not root.is_dir():
            raise ModelError(f"{root} is not a directory")
        modules = _read_json(root / "modules.json") if (root / "modules.json").exists() else None
        body, pooling, normalize = _modules(root, modules)
        config = _read_json(body / "config.json")
        if config.get("model_type") != "bert" or config.get("position_embedding_type", "absolute") != "absolute":
            raise ModelError(
                f"model_type '{config.get('model_type')}' is not supported by the numpy engine, only BERT "
                "with absolute positions (use engine: torch)"
            )
        st_config = (
            _read_json(body / "sentence_bert_config.json") if (body / "sentence_bert_config.json").exists() else {}
        )
        length = max_seq_length or st_config.get("max_seq_length") or int(config.get("max_position_embeddings", 512))
        if not (body / "model.safetensors").exists():
            raise ModelError(f"the numpy engine reads model.safetensors, which {body} does not have")
        if not (body / "tokenizer.json").exists():
            raise ModelError(f"the numpy engine needs tokenizer.json, which {body} does not have")
        from tokenizers import Tokenizer

        try:
            tokenizer = Tokenizer.from_file(str(body / "tokenizer.json"))
        except Exception as exc:  # noqa: BLE001 - the tokenizers library raises its own Exception type
            raise ModelError(f"tokenizer.json cannot be read ({' '.join(str(exc).split())[:120]})") from None
        weights = read_safetensors(body / "model.safetensors")
        return cls(
            tokenizer,
            config,
            weights,
            pooling,
            normalize,
            int(length),
            lowercase=bool(st_config.get("do_lower_case", False)),
        )

    def encode(self, texts: list[str], batch_size: int = 32, normalize: bool = False) -> np.ndarray:
        """``(len(texts), dims)`` float32 vectors in input order. Texts are tokenized at once, sorted by token
        count and run ``batch_size`` at a time; the result does not depend on the batching."""
        if not texts:
            return np.empty((0, self.dims), dtype=F32)
        inputs = [t.lower() for t in texts] if self.lowercase else list(texts)
        encodings = self.tokenizer.encode_batch(inputs)
        lengths = np.array([len(e.ids) for e in encodings])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dims), dtype=F32)
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids = np.concatenate([encodings[i].ids for i in idx]).astype(np.intp)
            types = np.concatenate([encodings[i].type_ids for i in idx]).astype(np.intp)
            out[idx] = self._pool(self._forward(ids, types, lengths[idx]), lengths[idx])
        if normalize or self.normalize:
            norms = np.linalg.norm(out, axis=1, keepdims=True)
            out /= np.maximum(norms, F32(1e-12))
        return out

    # -- the forward pass --------------------------------------------------------------------------------------
    #
    # The tokens of a batch are packed into one (tokens, hidden) matrix, without padding: the dense layers work
    # on real tokens only, and attention runs per run of equal-length sequences, each token seeing the tokens of
    # its own sequence. That is what the padding mask achieves in the padded form (masked keys weigh exactly 0).

    def _forward(self, ids: np.ndarray, types: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        positions = np.concatenate([np.arange(n) for n in lengths])
        x = self.word[ids] + self.position[positions]
        if self.token_type is not None:
            x += self.token_type[types]
        x = _layer_norm(x, *self.emb_ln, self.eps)
        groups = _equal_runs(lengths)
        for layer in self.layers:
            x = self._layer(x, layer, groups)
        return x

    def _layer(self, x: np.ndarray, w: _Layer, groups: list[tuple[int, int, int]]) -> np.ndarray:
        heads, size = self.heads, self.hidden // self.heads
        qkv = x @ w.qkv_w
        qkv += w.qkv_b
        context = np.empty_like(x)
        scale = F32(1 / math.sqrt(size))
        for first, count, n in groups:
            rows = slice(first, first + count * n)
            # (count, n, 3, heads, size) -> (3, count, heads, n, size)
            q, k, v = qkv[rows].reshape(count, n, 3, heads, size).transpose(2, 0, 3, 1, 4)
            scores = q @ k.transpose(0, 1, 3, 2)
            scores *= scale
            scores -= scores.max(axis=-1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=-1, keepdims=True)
            context[rows] = (scores @ v).transpose(0, 2, 1, 3).reshape(count * n, self.hidden)
        attended = context @ w.out_w
        attended += w.out_b
        attended += x
        x = _layer_norm(attended, w.ln1_w, w.ln1_b, self.eps)
        out = np.empty_like(x)
        # the feed-forward in blocks of rows, so that its wide activation stays in the CPU cache
        for r in range(0, x.shape[0], _FF_ROWS):
            block = x[r : r + _FF_ROWS]
            inner = block @ w.ff_in_w
            inner += w.ff_in_b
            y = self.act(inner) @ w.ff_out_w
            y += w.ff_out_b
            y += block
            out[r : r + _FF_ROWS] = _layer_norm(y, w.ln2_w, w.ln2_b, self.eps)
        return out

    def _pool(self, tokens: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        counts = np.maximum(lengths.astype(F32), F32(1e-9))[:, None]
        parts = []
        for mode in self.pooling:
            if mode == "cls_token":
                parts.append(tokens[starts])
            elif mode == "max_tokens":
                parts.append(np.maximum.reduceat(tokens, starts, axis=0))
            else:
                summed = np.add.reduceat(tokens, starts, axis=0)
                parts.append(summed / (counts if mode == "mean_tokens" else np.sqrt(counts)))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)


#: rows of the feed-forward computed at once (256 x 1536 float32 = 1.5 MB for MiniLM)
_FF_ROWS = 256


def _equal_runs(lengths: np.ndarray) -> list[tuple[int, int, int]]:
    """(first row, how many sequences, their length) for each run of equal lengths in packed order."""
    runs: list[tuple[int, int, int]] = []
    row = 0
    i = 0
    while i < len(lengths):
        j = i
        while j + 1 < len(lengths) and lengths[j + 1] == lengths[i]:
            j += 1
        n = int(lengths[i])
        runs.append((row, j - i + 1, n))
        row += (j - i + 1) * n
        i = j + 1
    return runs


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: np.float32) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    centred: np.ndarray = x - mean
    var = np.mean(np.square(centred), axis=-1, keepdims=True)
    var += eps
    np.sqrt(var, out=var)
    centred /= var
    centred *= weight
    centred += bias
    return centred


def _strip_prefix(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Tensor names without a wrapper's prefix (``bert.``, ``0.auto_model.``)."""
    anchor = "embeddings.word_embeddings.weight"
    found = [k for k in weights if k.endswith(anchor)]
    if not found:
        return weights
    prefix = min(found, key=len)[: -len(anchor)]
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def _layer(w: dict[str, np.ndarray], i: int) -> _Layer:
    p = f"encoder.layer.{i}."

    def t(name: str) -> np.ndarray:
        return np.ascontiguousarray(w[p + name + ".weight"].T)

    att = p + "attention."
    return _Layer(
        qkv_w=np.ascontiguousarray(
            np.concatenate([w[f"{att}self.{n}.weight"] for n in ("query", "key", "value")], axis=0).T
        ),
        qkv_b=np.concatenate([w[f"{att}self.{n}.bias"] for n in ("query", "key", "value")]),
        out_w=t("attention.output.dense"),
        out_b=w[att + "output.dense.bias"],
        ln1_w=w[att + "output.LayerNorm.weight"],
        ln1_b=w[att + "output.LayerNorm.bias"],
        ff_in_w=t("intermediate.dense"),
        ff_in_b=w[p + "intermediate.dense.bias"],
        ff_out_w=t("output.dense"),
        ff_out_b=w[p + "output.dense.bias"],
        ln2_w=w[p + "output.LayerNorm.weight"],
        ln2_b=w[p + "output.LayerNorm.bias"],
    )


def _modules(root: Path, modules: list[dict[str, Any]] | None) -> tuple[Path, tuple[str, ...], bool]:
    """(the Transformer module's directory, the pooling modes, whether a Normalize module ends the model).
    Without ``modules.json`` sentence-transformers wraps a plain model with mean pooling; so do we."""
    if modules is None:
        return root, ("mean_tokens",), False
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules]
    unknown = [k for k in kinds if k not in _SKIPPED_MODULES]
    if unknown or kinds[:1] != ["Transformer"]:
        what = ", ".join(unknown) or "a first module other than Transformer"
        raise ModelError(f"modules.json has {what}, which the numpy engine does not run (use engine: torch)")
    body = root / str(modules[0].get("path") or "")
    pooling: tuple[str, ...] = ("mean_tokens",)
    for m, kind in zip(modules, kinds, strict=True):
        if kind == "Pooling":
            cfg = _read_json(root / str(m.get("path") or "") / "config.json")
            pooling = tuple(mode for mode in _POOLING if cfg.get(f"pooling_mode_{mode}"))
            others = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k[13:] not in _POOLING]
            if others or not pooling:
                raise ModelError(f"pooling {others or 'none'} is not supported by the numpy engine (use engine: torch)")
    return body, pooling, "Normalize" in kinds


# ---- threads -------------------------------------------------------------------------------------------------


def set_blas_threads(n: int) -> bool:
    """Let numpy's BLAS use ``n`` threads from now on (process-wide). Uses threadpoolctl when it is installed,
    else numpy's bundled OpenBLAS through ctypes (Linux). False when neither could be reached: then
    ``OPENBLAS_NUM_THREADS`` (or ``OMP_NUM_THREADS``) set before the process starts is the way."""
    try:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped, import-not-found, unused-ignore]
    except ImportError:
        pass
    else:
        threadpool_limits(limits=n, user_api="blas")
        return True
    done = False
    for lib in _loaded_openblas():
        for symbol in _SETTERS:
            fn = getattr(lib, symbol, None)
            if fn is not None:
                fn(ctypes.c_int(n))
                done = True
                break
    return done


#: the thread-count setter of an OpenBLAS build, by the symbol prefix and suffix it was built with
_SETTERS = tuple(f"{pre}_set_num_threads{suf}" for pre in ("scipy_openblas", "openblas") for suf in ("64_", ""))


def _loaded_openblas() -> list[ctypes.CDLL]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {line.split()[-1] for line in maps.splitlines() if "openblas" in line.rsplit("/", 1)[-1]}
    out = []
    for path in sorted(p for p in paths if p.endswith(".so") or ".so." in p):
        try:
            out.append(ctypes.CDLL(path))
        except OSError:
            continue
    return out
