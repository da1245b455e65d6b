from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest
from onnx import numpy_helper

from newsflow.pipeline import embed
from newsflow.pipeline.embed import (
    DIM,
    DOWN_KERNELS,
    PREFIX_CHARS,
    ModelNotInstalled,
    TextEncoder,
    _encoder_graph,
    _Graph,
    _model_zip,
    dequantize,
    down_kernel,
    quantize,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    """The model's own arithmetic, to check against its published figures."""
    return TextEncoder.load(precision="float32")


@pytest.fixture(scope="module", params=DOWN_KERNELS)
def int8(request) -> TextEncoder:
    """int8 with each kernel of the feed-forward-down products (the faster is used: both must do)."""
    encoder = TextEncoder.load(precision="int8", down=request.param)
    assert encoder.down == request.param
    return encoder


NEWS = [
    "The central bank raised its main interest rate by a quarter point on Wednesday to slow inflation.",
    "Policymakers lifted borrowing costs again, saying prices were still rising too fast.",
    "Floods forced thousands of people from their homes in the north of the country after days of rain.",
    "Rescue teams used boats to reach villages cut off by the rising river, officials said.",
    "The striker scored twice as the home side won the cup final 3-1 in front of 80,000 fans.",
    "Shares in the carmaker fell 6% after it cut its profit forecast for the year.",
    "Lawmakers reacted angrily to news that the new rail line is two billion dollars over budget.",
    "Scientists said the comet would be visible to the naked eye for about a week in March.",
]


def test_similarities_match_the_models_published_ones(encoder):
    _check_published_similarities(encoder, tolerance=0.002)


def test_int8_similarities_match_the_models_published_ones(int8):
    _check_published_similarities(int8, tolerance=0.01)


def _check_published_similarities(model: TextEncoder, tolerance: float) -> None:
    # The sentence-transformers quickstart prints these cosines for all-MiniLM-L6-v2:
    # [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]].
    weather, sunny, stadium = (
        model.encode(s)
        for s in ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.")
    )
    assert float(weather @ sunny) == pytest.approx(0.6660, abs=tolerance)
    assert float(weather @ stadium) == pytest.approx(0.1046, abs=tolerance)
    assert float(sunny @ stadium) == pytest.approx(0.1411, abs=tolerance)


def test_embeddings_are_unit_vectors_and_long_texts_are_cut(encoder):
    v = encoder.encode("word " * 5000)
    assert v.shape == (DIM,) and v.dtype == np.float32
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)
    # Only the first MAX_TOKENS word pieces count: what follows them changes nothing.
    lead = "The harbour bridge reopened on Friday after two years of repairs. " * 20
    assert np.allclose(encoder.encode(lead), encoder.encode(lead + " An unrelated tail about football."))


def _whole_text_ids(encoder: TextEncoder, text: str) -> list[int]:
    return list(encoder.tokenizer.encode(text).ids)


@pytest.mark.parametrize(
    "text",
    [
        " ".join(NEWS) * 40,  # ordinary prose: the first start read is enough
        "\n\n".join(NEWS) * 40,  # paragraphs: cut at a line break
        "See https://example.org/"
        + "a1b2c3d4e5" * 300
        + " for more. "
        + " ".join(NEWS) * 5,  # a long word first
        "新闻" * 3000 + " " + " ".join(NEWS) * 5,  # no space for thousands of characters
        "Café " * 2000 + "é " * 10,  # accents and a combining mark after the cut
        "x" * (PREFIX_CHARS - 1) + " " + " ".join(NEWS) * 5,  # a space right at the cut
        # Words over 100 characters are one piece each: the last pieces kept are in the word
        # that straddles the first cut, which a cut inside the word would split differently.
        ("x" * 200 + " ") * 9 + "a " * 116 + "internationalization " * 50,
        "word\tword " * 1000,  # tabs are spaces to the tokenizer, but never a cut
        " ".join(NEWS)[:PREFIX_CHARS],  # short: read whole
    ],
)
def test_only_the_start_of_a_long_text_is_tokenized_with_the_same_word_pieces(encoder, text):
    assert list(encoder._ids(text)) == _whole_text_ids(encoder, text)


def test_quantized_embeddings_keep_their_cosines(encoder):
    a, b = (
        encoder.encode("The council approved the budget."),
        encoder.encode("Lawmakers passed the spending plan."),
    )
    qa, qb = dequantize(quantize(a)), dequantize(quantize(b))
    assert len(quantize(a)) == DIM
    assert abs(float(qa @ qb) / float(np.linalg.norm(qa) * np.linalg.norm(qb)) - float(a @ b)) < 0.01


def test_other_weights_are_refused(tmp_path: Path):
    fake = tmp_path / "model.zip"
    with zipfile.ZipFile(_model_zip()) as real, zipfile.ZipFile(fake, "w") as zf:
        for name in ("tokenizer.json", "config.json"):
            zf.writestr(name, real.read(name))
        zf.writestr("model.safetensors", b"not the model")
    with pytest.raises(ModelNotInstalled, match="not all-MiniLM-L6-v2"):
        TextEncoder.load(fake)


def test_the_graph_gives_what_the_float32_numpy_pass_it_replaced_gave(encoder):
    reference = json.loads((FIXTURES / "embeddings-reference.json").read_text())
    for item in reference["vectors"]:
        expected = np.frombuffer(base64.b64decode(item["float32"]), dtype="<f4")
        assert np.abs(encoder.encode(item["text"]) - expected).max() < 1e-4, item["text"][:40]


def test_the_same_word_pieces_are_not_run_through_the_model_twice(encoder):
    from newsflow.pipeline.recent import Recent

    text = "The harbour authority reopened the north quay on Tuesday after a fire in March."
    first = encoder.encode(text)
    hits = encoder.recent.hits
    # Again, and with a tail past the model's word pieces: the same input to the model.
    assert np.array_equal(encoder.encode(text), first) and encoder.recent.hits == hits + 1
    assert not np.array_equal(encoder.encode(text * 30), first) and encoder.recent.hits == hits + 1
    assert np.array_equal(encoder.encode(text * 30), encoder.encode(text * 31))
    assert encoder.recent.hits == hits + 3
    kept, encoder.recent = encoder.recent, Recent(size=0)
    try:
        assert np.array_equal(encoder.encode(text), first)  # what the model gives, bit for bit
    finally:
        encoder.recent = kept
    # What every caller gets is a view of immutable bytes: none can change what the next one gets.
    with pytest.raises(ValueError):
        first.flags.writeable = True


def test_int8_cosines_stay_close_to_float32s(encoder, int8):
    reference = json.loads((FIXTURES / "embeddings-reference.json").read_text())
    texts = NEWS + [item["text"] for item in reference["vectors"] if len(item["text"]) > 20]
    exact = np.stack([encoder.encode(t) for t in texts])
    fast = np.stack([int8.encode(t) for t in texts])
    assert np.abs(exact - fast).max() > 1e-3  # not the float32 graph under another name
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)
    assert float((exact * fast).sum(axis=1).min()) > 0.995
    change = np.abs(exact @ exact.T - fast @ fast.T)
    # Per-tensor int8 without the smoothing moves these by 0.028 on average, per-channel by 0.008.
    assert float(change.mean()) < 0.005 and float(change.max()) < 0.03
    # The pairs that are one event stay the closest.
    for i in range(0, 4, 2):
        assert int(np.argsort(-(fast[i] @ fast.T))[1]) == i + 1


def test_int8_runs_the_weights_products_in_integers(encoder, int8):
    # float32: every product is a MatMul (4 weights and 2 attention products in each of 6 layers).
    assert encoder.operators["MatMul"] == 36 and not encoder.operators["MatMulInteger"]
    # int8: attention's two products stay float; qkv, out and up are integer products; down in
    # 8-bit blocks or float32.
    assert int8.operators["MatMulInteger"] == 18
    if int8.down == "blocks":
        assert int8.operators["MatMul"] == 12 and int8.operators["MatMulNBits"] == 6
    else:
        assert int8.operators["MatMul"] == 18 and not int8.operators["MatMulNBits"]


X86 = (
    "processor\t: 0\nvendor_id\t: {vendor}\nflags\t\t: fpu sse2 avx avx2 fma {extra}\n"
    "vmx flags\t: vnmi preemption_timer invvpid ept_x_only\nbugs\t\t: spectre_v1 spectre_v2\n\n"
)
ARM = "processor\t: 0\nFeatures\t: fp asimd evtstrm aes crc32 {extra}\nCPU implementer\t: 0x41\n"


@pytest.mark.parametrize(
    ("cpuinfo", "kernel"),
    [
        (X86.format(vendor="AuthenticAMD", extra="sha_ni"), "float"),  # AVX2 only
        (X86.format(vendor="GenuineIntel", extra="avx512f avx512_vnni"), "blocks"),
        (X86.format(vendor="GenuineIntel", extra="avx_vnni"), "blocks"),  # client cores
        (ARM.format(extra="atomics asimddp"), "blocks"),
        (ARM.format(extra="atomics"), "float"),
        ("processor\t: 0\n", "blocks"),  # says nothing: onnxruntime's own choice stays
    ],
)
def test_int8_runs_the_blocks_only_where_the_cpu_has_an_8_bit_dot_product(
    tmp_path, cpuinfo: str, kernel: str
):
    # Read, not timed: every worker of a host chooses the same, so they share their embeddings.
    (tmp_path / "cpuinfo").write_text(cpuinfo)
    assert down_kernel(tmp_path / "cpuinfo") == kernel


def test_int8_keeps_the_blocks_where_there_is_no_cpuinfo(tmp_path):
    assert down_kernel(tmp_path / "absent") == "blocks"  # not Linux


def test_the_kernel_is_chosen_named_and_only_for_int8(int8, monkeypatch):
    # Two kernels' vectors for one text differ: workers share embeddings only within one kernel.
    assert int8.step.endswith(f"int8-{int8.down}")
    # Unpinned, the encoder runs this CPU's kernel (told the other one, so that a fixed choice fails).
    other = next(k for k in DOWN_KERNELS if k != down_kernel())
    monkeypatch.setattr(embed, "down_kernel", lambda: other)
    auto = TextEncoder.load(precision="int8")
    assert auto.down == other and auto.step.endswith(f"int8-{other}")
    float32 = TextEncoder.load(precision="float32")
    assert float32.down is None and float32.step.endswith(":float32")
    with pytest.raises(ValueError, match="only for int8"):
        TextEncoder.load(precision="float32", down="float")
    with pytest.raises(ValueError, match="down"):
        _Graph({}, down="int4")


def test_int8_weights_use_7_bits_and_whole_blocks():
    rng = np.random.default_rng(7)
    shapes = {
        "attention.self.query.weight": (8, 8),
        "attention.self.key.weight": (8, 8),
        "attention.self.value.weight": (8, 8),
        "attention.output.dense.weight": (8, 8),
        "intermediate.dense.weight": (128, 8),
        "output.dense.weight": (8, 128),
    }
    weights = {
        f"encoder.layer.{i}.{name}": rng.normal(size=shape).astype(np.float32)
        for i in range(2)
        for name, shape in shapes.items()
    }
    weights |= {
        k.replace("weight", "bias"): np.zeros(v.shape[0], np.float32) for k, v in list(weights.items())
    }
    for i in range(2):
        for norm in ("attention.output.LayerNorm", "output.LayerNorm"):
            weights[f"encoder.layer.{i}.{norm}.weight"] = np.ones(8, np.float32)
            weights[f"encoder.layer.{i}.{norm}.bias"] = np.zeros(8, np.float32)
    config = {"hidden_size": 8, "num_attention_heads": 2, "layer_norm_eps": 1e-12, "num_hidden_layers": 2}
    names = [f"l{i}_{part}" for i in range(2) for part in ("qkv", "out", "up", "down")]
    ranges = {name: rng.uniform(0.5, 20, 128 if name.endswith("down") else 8) for name in names}
    model = _encoder_graph(weights, config, ranges)
    constants = {c.name: numpy_helper.to_array(c) for c in model.graph.initializer}
    integer = [n.input[1] for n in model.graph.node if n.op_type == "MatMulInteger"]
    assert len(integer) == 6
    for name in integer:
        # Within +-63, so that CPUs without VNNI (int16 sums of u8*s8 pairs) cannot saturate.
        assert constants[name].dtype == np.int8 and np.abs(constants[name]).max() == 63, name
    blocks = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert [{a.name: a.i for a in n.attribute}["bits"] for n in blocks] == [8, 8]
    # The code of a block's largest weight is 128 +- 127 (unsigned, around the zero point 128).
    assert all(np.abs(constants[n.input[1]].astype(int) - 128).max(axis=-1).min() == 127 for n in blocks)
    with pytest.raises(AssertionError, match="whole blocks"):
        bad = dict(weights) | {"encoder.layer.0.output.dense.weight": np.ones((8, 100), np.float32)}
        _encoder_graph(bad, config, ranges | {"l0_down": np.ones(100)})


def test_an_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="float16"):
        TextEncoder.load(precision="float16")


def test_how_many_texts_are_kept_is_set_at_load():
    encoder = TextEncoder.load(precision="float32", recent_texts=0)
    text = "The ferry service to the islands resumed on Monday after a week of storms."
    assert encoder.recent.size == 0
    assert np.array_equal(encoder.encode(text), encoder.encode(text)) and encoder.recent.hits == 0


def test_an_embedding_one_worker_computed_is_taken_by_another_of_the_same_precision_only(encoder, int8):
    from newsflow.pipeline.enrich import Enricher
    from newsflow.pipeline.recent import Recent

    text = "The ferry company cancelled every crossing to the islands on Friday as the storm came in."
    computed = {}
    for model in (encoder, int8):
        kept, model.recent = model.recent, Recent(share=True)
        try:
            computed[model.precision] = model.encode(text)
            (computed[f"{model.precision} wire"],) = Enricher(encoder=model).fresh_results()
        finally:
            model.recent = kept
    other = TextEncoder.load(precision="float32")  # another worker
    enricher = Enricher(encoder=other)
    key, value = computed["float32 wire"]
    # int8 workers' embeddings are not float32 ones; a vector of another size or length is no embedding.
    assert enricher.adopt(*computed["int8 wire"]) == "refused"
    assert enricher.adopt(key, value[:-4]) == "refused"
    assert enricher.adopt(key, (2 * np.frombuffer(value, dtype=np.float32)).tobytes()) == "refused"
    assert enricher.adopt(key, value) == "adopted"
    assert np.array_equal(other.encode(text), computed["float32"]) and other.recent.misses == 0


def test_a_batch_embedded_beside_ner_has_the_features_of_one_embedded_in_turn(
    encoder, seed_raws, fixture_raws, caplog
):
    """NEWSFLOW_WORKER_COMPUTE_THREADS=2: the batch's embeddings run on a thread of their own while
    NER runs, and nothing in the results tells the two ways apart; if that thread fails, each
    article is embedded again in turn."""
    import threading

    from newsflow.pipeline.enrich import Enriched, Enricher
    from newsflow.pipeline.entities import EntityTagger
    from newsflow.pipeline.recent import Recent

    calls: list[str] = []
    failures = [0]

    class Watched:  # the encoder, noting where each text is embedded; it may fail once
        recent = Recent(0)

        def encode(self, text: str) -> np.ndarray:
            calls.append(threading.current_thread().name)
            if failures[0]:
                failures[0] -= 1
                raise RuntimeError("onnxruntime failed")
            return encoder.encode(text)

    tagger = EntityTagger()
    raws = [*seed_raws, *fixture_raws]

    timed: list[float] = []

    def run(threads: int) -> list[Any]:
        calls.clear()
        timed.clear()
        enricher = Enricher(
            tagger=tagger,
            encoder=cast(Any, Watched()),
            threads=threads,
            on_stage_time=lambda stage, s: timed.append(s) if stage == "features" else None,
        )
        kept, encoder.recent = encoder.recent, Recent(0)  # every text through the model, each run
        try:
            return enricher.enrich_batch(raws, received=1_700_000_000.0)
        finally:
            encoder.recent = kept
            enricher.close()

    in_turn = run(1)
    assert set(calls) == {threading.current_thread().name}
    embedded, took_in_turn = len(calls), sum(timed)
    beside = run(2)
    assert len(calls) == embedded and all(name.startswith("newsflow-embed") for name in calls)
    # Each article's features time still counts its embedding, wherever it ran.
    assert len(timed) == len(raws) and sum(timed) > 0.5 * took_in_turn
    assert [r.features for r in beside] == [r.features for r in in_turn]
    assert all(isinstance(r, Enriched) and r.features and r.features.embedding for r in beside)

    failures[0] = 1
    again = run(2)
    assert calls.count(threading.current_thread().name) == embedded  # each once more, in turn
    assert [r.features for r in again] == [r.features for r in in_turn]
    assert "embedding a batch failed" in caplog.text
