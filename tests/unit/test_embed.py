from __future__ import annotations

import base64
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

from newsflow.pipeline.embed import (
    DIM,
    ModelNotInstalled,
    TextEncoder,
    _model_zip,
    default_encoder,
    dequantize,
    quantize,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return default_encoder()


def test_similarities_match_the_models_published_ones(encoder):
    # The sentence-transformers quickstart prints these cosines for all-MiniLM-L6-v2:
    # [[1.0000, 0.6660, 0.1046], [0.6660, 1.0000, 0.1411], [0.1046, 0.1411, 1.0000]].
    weather, sunny, stadium = (
        encoder.encode(s)
        for s in ("The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium.")
    )
    assert float(weather @ sunny) == pytest.approx(0.6660, abs=0.002)
    assert float(weather @ stadium) == pytest.approx(0.1046, abs=0.002)
    assert float(sunny @ stadium) == pytest.approx(0.1411, abs=0.002)


def test_embeddings_are_unit_vectors_and_long_texts_are_cut(encoder):
    v = encoder.encode("word " * 5000)
    assert v.shape == (DIM,) and v.dtype == np.float32
    assert float(np.linalg.norm(v)) == pytest.approx(1.0, abs=1e-5)
    # Only the first MAX_TOKENS word pieces count: what follows them changes nothing.
    lead = "The harbour bridge reopened on Friday after two years of repairs. " * 20
    assert np.allclose(encoder.encode(lead), encoder.encode(lead + " An unrelated tail about football."))


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
