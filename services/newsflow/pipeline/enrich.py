"""The per-article stages that run in parallel across partitions: extract, clean, tag, features.

`Enricher` holds what those stages need (the outlets' learned boilerplate, the NER model, the
sentence encoder) and turns raw articles into results, one per input, in order. It never raises
for an article: whatever goes wrong with one becomes its `Rejection`, and the others go on.

It runs in two steps so that a shell can place them: `clean` (decode, extract, boilerplate; one
article at a time, on the thread that can bound a parse with a signal, see deadline.py) and
`finish` (NER over the batch, then the dedup features: CPU-bound library code that may run on
another thread). `enrich_batch` is both, for code that needs no such placement.

With `threads` of 2 or more, `finish` runs the batch's sentence embeddings on a thread of their
own while NER runs: both models spend their time in numeric kernels that release the GIL, so on
two cores the two take about two thirds of the time they take in turn, for a little more CPU
(bench/RESULTS.md).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace

import numpy as np

from newsflow.pipeline.embed import TextEncoder
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, extract_article, with_outlet_boilerplate_removed
from newsflow.pipeline.features import Encoder, StoryFeatures, article_features, embedding_input
from newsflow.pipeline.recent import shared_key, split_shared_key
from newsflow.pipeline.records import CleanArticle, EntityResult, RawArticle, Rejection
from newsflow.pipeline.textclean import BoilerplateModel, fingerprints

log = logging.getLogger("newsflow.enrich")

StageTimer = Callable[[str, float], None]
# Extraction outcomes with text worth cleaning of (and learning from) the outlet's boilerplate.
_CLEANABLE = ("ok", "truncated", "not_article")


def _no_timer(_stage: str, _seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Enriched:
    """A cleaned article with everything the per-article stages found."""

    article: CleanArticle
    entities: EntityResult | None = None
    features: StoryFeatures | None = None
    # The fingerprints of its lines before its outlet's learned boilerplate was removed: what the
    # outlet's boilerplate model learns from.
    lines: tuple[str, ...] = ()


Result = Enriched | Rejection


class _Ahead:
    """The encoder, with the embeddings of a batch's texts computed ahead (on another thread)."""

    def __init__(self, encoder: TextEncoder, texts: Mapping[str, str]) -> None:
        """`texts`: article id -> what its embedding reads (`embedding_input`)."""
        self.encoder = encoder
        self.vectors: dict[str, np.ndarray] = {}
        # How long each article's text took there (a text two articles share: the first's): its
        # features stage time includes it.
        self.seconds: dict[str, float] = {}
        for article_id, text in texts.items():
            if text not in self.vectors:
                started = time.perf_counter()
                self.vectors[text] = encoder.encode(text)
                self.seconds[article_id] = time.perf_counter() - started

    def encode(self, text: str) -> np.ndarray:
        vector = self.vectors.get(text)
        return self.encoder.encode(text) if vector is None else vector


@dataclass
class Enricher:
    options: ExtractOptions = field(default_factory=ExtractOptions)
    boilerplate: BoilerplateModel = field(default_factory=BoilerplateModel)
    tagger: EntityTagger | None = None
    # The dedup features are computed only with an encoder.
    encoder: TextEncoder | None = None
    # Learn the outlets' boilerplate here, from the articles cleaned. The worker does not: its
    # model is a replica of what the single dedup writer learns from every worker's articles.
    learn_boilerplate: bool = True
    on_stage_time: StageTimer = _no_timer
    # 2 or more: the embeddings beside NER, on a thread of their own (see the module's notes).
    threads: int = 1
    _beside: ThreadPoolExecutor | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.threads > 1 and self.encoder is not None and self.tagger is not None:
            self._beside = ThreadPoolExecutor(1, thread_name_prefix="newsflow-embed")

    def close(self) -> None:
        """Stop the embedding thread, if any (after the last `finish`)."""
        if self._beside is not None:
            self._beside.shutdown()

    def clean(self, raw: RawArticle) -> Result:
        """Return the extracted article without general or outlet-specific boilerplate."""
        started = time.perf_counter()
        try:
            result = extract_article(raw, self.options)
            if not isinstance(result, CleanArticle):
                return result
            if result.extraction.status not in _CLEANABLE:
                return Enriched(result)
            lines = fingerprints(result.text.split("\n"))
            article = with_outlet_boilerplate_removed(result, self.boilerplate, self.options)
            if self.learn_boilerplate:
                # The article's outlet: the input's, or the one its envelope or page's URL names.
                self.boilerplate.observe_fingerprints(article.source.outlet, lines)
            return Enriched(article, lines=lines)
        except Exception as exc:  # noqa: BLE001 - one bad article must not stop the others
            log.exception("cleaning %s failed", raw.article_id)
            return Rejection.from_exception("extract", exc)
        finally:
            self.on_stage_time("extract", time.perf_counter() - started)

    def finish(self, cleaned: Sequence[Result], received: float | None = None) -> list[Result]:
        """Return the cleaned results tagged (one NER batch) and, with an encoder, with features.

        `received` is the dedup clock's reading for these articles (see `article_features`). The
        stages guard each article; should the batch fail all the same (a fault outside them), its
        articles are finished one by one, and one that fails alone becomes its `Rejection`.
        """
        try:
            finished = self._finish(cleaned, received)
            if len(finished) != len(cleaned):
                raise RuntimeError(f"{len(finished)} results for a batch of {len(cleaned)}")
            return finished
        except Exception:  # noqa: BLE001 - one bad article must not cost the batch
            log.exception("finishing a batch of %d failed; finishing its articles one by one", len(cleaned))
        # Should every article fail alone, they are dead letters all the same: counted, alerted on
        # (NewsflowStageInternalError) and replayable once the fault is mended. Raising instead
        # would restart the worker for ever on two copies of one bad input in a batch.
        return [self._finish_one(c, received) for c in cleaned]

    def _finish_one(self, cleaned: Result, received: float | None) -> Result:
        if not isinstance(cleaned, Enriched):
            return cleaned
        try:
            (finished,) = self._finish([cleaned], received)
        except Exception as exc:  # noqa: BLE001
            log.exception("finishing %s failed", cleaned.article.article_id)
            return Rejection.from_exception("enrich", exc)
        return finished

    def _finish(self, cleaned: Sequence[Result], received: float | None) -> list[Result]:
        ahead = self._embed_ahead(cleaned)
        tagged = self._tag(cleaned)
        if self.encoder is None:
            return tagged
        encoder: Encoder = self.encoder
        if ahead is not None:
            try:
                encoder = ahead.result()
            except Exception:  # noqa: BLE001 - each article's features try again on their own
                log.exception("embedding a batch failed; embedding its articles one by one")
        return [self._features(r, received, encoder) if isinstance(r, Enriched) else r for r in tagged]

    def _embed_ahead(self, cleaned: Sequence[Result]) -> Future[_Ahead] | None:
        """Start the batch's embeddings on the thread beside NER (None: `threads` is 1, or there
        is no NER or no encoder to run beside)."""
        if self._beside is None or self.encoder is None:
            return None
        texts = {}
        for c in cleaned:
            if isinstance(c, Enriched):
                try:
                    texts[c.article.article_id] = embedding_input(c.article)
                except Exception:  # noqa: BLE001 - its features fail on their own (`_features`)
                    continue
        return self._beside.submit(_Ahead, self.encoder, {a: t for a, t in texts.items() if t})

    def reused(self) -> dict[str, int]:
        """Return how many articles' NER spans and embeddings so far were those of the same text
        computed lately (see recent.py), by stage."""
        return {
            "entities": self.tagger.reused if self.tagger else 0,
            "features": self.encoder.recent.hits if self.encoder else 0,
        }

    def fresh_results(self) -> list[tuple[bytes, bytes]]:
        """Return (wire key, result) of the NER spans and embeddings computed since the last call,
        for other workers to `adopt` (only from a tagger and encoder built with `share`)."""
        return [
            (shared_key(model.step, key), value)
            for model in self._models()
            for key, value in model.recent.take_fresh()
        ]

    def adopt(self, wire_key: bytes, value: bytes) -> str:
        """Keep a result another worker computed (`fresh_results`); return "adopted", "known" (kept
        already: this worker's own come back), or "refused" (another model's, or malformed)."""
        parsed = split_shared_key(wire_key)
        for model in self._models():
            if parsed is not None and parsed[0] == model.step and model.accepts(value):
                return "adopted" if model.recent.adopt(parsed[1], value) else "known"
        return "refused"

    def _models(self) -> list[EntityTagger | TextEncoder]:
        return [m for m in (self.tagger, self.encoder) if m is not None]

    def enrich_batch(self, raws: Sequence[RawArticle], received: float | None = None) -> list[Result]:
        """Return one result per raw article, in input order."""
        return self.finish([self.clean(r) for r in raws], received)

    def _tag(self, cleaned: Sequence[Result]) -> list[Result]:
        articles = [c.article for c in cleaned if isinstance(c, Enriched)]
        if self.tagger is None or not articles:
            return list(cleaned)
        started = time.perf_counter()
        try:
            tags = iter(self.tagger.tag_batch(articles))
        except Exception:  # noqa: BLE001 - one bad article must not cost the batch
            log.exception("tagging a batch failed; tagging its articles one by one")
            return [self._tag_one(c) if isinstance(c, Enriched) else c for c in cleaned]
        finally:
            # One observation per article, as for the other stages: the batch's time shared out.
            each = (time.perf_counter() - started) / len(articles)
            for _ in articles:
                self.on_stage_time("entities", each)
        return [replace(c, entities=next(tags)) if isinstance(c, Enriched) else c for c in cleaned]

    def _tag_one(self, enriched: Enriched) -> Result:
        assert self.tagger is not None
        try:
            (tags,) = self.tagger.tag_batch([enriched.article])
        except Exception as exc:  # noqa: BLE001
            log.exception("tagging %s failed", enriched.article.article_id)
            return Rejection.from_exception("enrich", exc)
        return replace(enriched, entities=tags)

    def _features(self, enriched: Enriched, received: float | None, encoder: Encoder) -> Result:
        # What its embedding took on the thread beside NER, if it ran there, counts here too.
        ahead = encoder.seconds.get(enriched.article.article_id, 0.0) if isinstance(encoder, _Ahead) else 0.0
        started = time.perf_counter()
        try:
            features = article_features(enriched.article, enriched.entities, encoder, received)
        except Exception as exc:  # noqa: BLE001
            log.exception("features of %s failed", enriched.article.article_id)
            return Rejection.from_exception("enrich", exc)
        finally:
            self.on_stage_time("features", time.perf_counter() - started + ahead)
        return replace(enriched, features=features)
