"""`Enricher.finish` never raises for an article: a fault outside the per-article guards costs
only the article it concerns, never its batch."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from newsflow.pipeline import enrich
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.records import CleanArticle, EntityResult, RawArticle, Rejection
from tests.conftest import SEEDS, raw_from_file


class _Tagger:
    """Tags every article with no names; `short` drops the last result of a batch of several
    (a tagger that miscounts)."""

    def __init__(self, short: bool = False) -> None:
        self.short = short
        self.reused = 0
        self.batches: list[int] = []

    def tag_batch(self, articles: Sequence[CleanArticle]) -> list[EntityResult]:
        self.batches.append(len(articles))
        results = [EntityResult((), "ok", "fake") for _ in articles]
        return results[:-1] if self.short and len(results) > 1 else results


class _Encoder:
    def __init__(self) -> None:
        self.recent = SimpleNamespace(hits=0)

    def encode(self, _text: str) -> np.ndarray:
        vector = np.ones(384, dtype=np.float32)
        return vector / np.linalg.norm(vector)


def _seeds() -> list[RawArticle]:
    return [raw_from_file(p) for p in sorted(SEEDS.glob("*.txt"))]


def _cleaned(enricher: Enricher) -> list[enrich.Result]:
    return [enricher.clean(raw) for raw in _seeds()]


def test_a_batch_the_tagger_miscounts_is_finished_article_by_article():
    tagger = _Tagger(short=True)
    enricher = Enricher(tagger=tagger)  # type: ignore[arg-type]
    cleaned = _cleaned(enricher)
    assert len(cleaned) == 2 and all(isinstance(c, Enriched) for c in cleaned)

    finished = enricher.finish(cleaned)

    assert [r.article.article_id for r in finished] == [c.article.article_id for c in cleaned]  # type: ignore[union-attr]
    assert all(isinstance(r, Enriched) and r.entities is not None for r in finished)
    assert tagger.batches == [2, 1, 1]


class _PoisonedTagger(_Tagger):
    """Miscounts any batch that holds the poison article, alone too (a fault outside the guards)."""

    def tag_batch(self, articles: Sequence[CleanArticle]) -> list[EntityResult]:
        results = super().tag_batch(articles)
        return results[:-1] if any(a.text.startswith("Poison") for a in articles) else results


def _with_poison(tmp_path: Path) -> list[RawArticle]:
    poison = tmp_path / "poison.txt"
    poison.write_text("Poison headline\n\n" + "The council met on Tuesday to discuss the budget. " * 20)
    return [*_seeds()[:1], raw_from_file(poison, tmp_path, outlet="wire"), *_seeds()[1:]]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_article_whose_finish_fails_alone_becomes_its_rejection_and_the_others_go_on(tmp_path, threads):
    enricher = Enricher(tagger=_PoisonedTagger(), encoder=_Encoder(), threads=threads)  # type: ignore[arg-type]
    try:
        cleaned = [enricher.clean(raw) for raw in _with_poison(tmp_path)]
        assert all(isinstance(c, Enriched) for c in cleaned)
        finished = enricher.finish(cleaned, received=1.0)
    finally:
        enricher.close()

    good, bad, other = finished
    assert isinstance(bad, Rejection) and (bad.stage, bad.reason) == ("enrich", "internal_error")
    for result in (good, other):
        assert isinstance(result, Enriched) and result.features is not None and result.entities is not None


def test_a_fault_every_article_fails_on_alone_dead_letters_each_rather_than_stop_the_stream():
    class _Broken(_Tagger):
        def tag_batch(self, _articles: Sequence[CleanArticle]) -> list[EntityResult]:
            return []  # a model that answers nothing: every batch, every article

    enricher = Enricher(tagger=_Broken())  # type: ignore[arg-type]
    finished = enricher.finish(_cleaned(enricher))
    assert [(r.stage, r.reason) for r in finished] == [("enrich", "internal_error")] * 2  # type: ignore[union-attr]


def test_an_embedding_input_that_fails_costs_its_article_only_not_the_batch(monkeypatch, tmp_path):
    from newsflow.pipeline import features

    real_input = features.embedding_input

    def embedding_input(article: CleanArticle) -> str:
        if article.text.startswith("Poison"):
            raise ValueError("no embedding input")
        return real_input(article)

    monkeypatch.setattr(features, "embedding_input", embedding_input)
    monkeypatch.setattr(enrich, "embedding_input", embedding_input)
    tagger = _Tagger()
    enricher = Enricher(tagger=tagger, encoder=_Encoder(), threads=2)  # type: ignore[arg-type]
    try:
        finished = enricher.finish([enricher.clean(raw) for raw in _with_poison(tmp_path)], received=1.0)
    finally:
        enricher.close()
    assert [type(r).__name__ for r in finished] == ["Enriched", "Rejection", "Enriched"]
    assert tagger.batches == [3]  # one NER batch: no article by article


def test_rejections_pass_through_a_failed_batch_unchanged():
    enricher = Enricher(tagger=_Tagger(short=True))  # type: ignore[arg-type]
    rejection = Rejection("decode", "binary_content", "NUL bytes")
    cleaned = [rejection, *_cleaned(enricher)]

    finished = enricher.finish(cleaned)

    assert finished[0] is rejection
    assert all(isinstance(r, Enriched) for r in finished[1:])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_whole_batch_finishes_in_one_pass_when_nothing_fails(threads):
    tagger = _Tagger()
    enricher = Enricher(tagger=tagger, encoder=_Encoder(), threads=threads)  # type: ignore[arg-type]
    try:
        finished = enricher.finish(_cleaned(enricher), received=1.0)
    finally:
        enricher.close()
    assert tagger.batches == [2]
    assert all(isinstance(r, Enriched) and r.features is not None for r in finished)
