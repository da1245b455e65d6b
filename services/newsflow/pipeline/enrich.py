"""The per-article stages that run in parallel across partitions: extract, clean, tag, features.

`Enricher` holds what those stages need (the outlets' learned boilerplate, the NER model, the
sentence encoder) and turns raw articles into results, one per input, in order. It never raises
for an article: whatever goes wrong with one becomes its `Rejection`, and the others go on.

It runs in two steps so that a shell can place them: `clean` (decode, extract, boilerplate; one
article at a time, on the thread that can bound a parse with a signal, see deadline.py) and
`finish` (NER over the batch, then the dedup features: CPU-bound library code that may run on
another thread). `enrich_batch` is both, for code that needs no such placement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from newsflow.pipeline.embed import TextEncoder
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, extract_article, with_outlet_boilerplate_removed
from newsflow.pipeline.features import StoryFeatures, article_features
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
            article = with_outlet_boilerplate_removed(result, self.boilerplate)
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

        `received` is the dedup clock's reading for these articles (see `article_features`).
        """
        tagged = self._tag(cleaned)
        if self.encoder is None:
            return tagged
        return [self._features(r, received) if isinstance(r, Enriched) else r for r in tagged]

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
            self.on_stage_time("entities", (time.perf_counter() - started) / len(articles))
        return [replace(c, entities=next(tags)) if isinstance(c, Enriched) else c for c in cleaned]

    def _tag_one(self, enriched: Enriched) -> Result:
        assert self.tagger is not None
        try:
            (tags,) = self.tagger.tag_batch([enriched.article])
        except Exception as exc:  # noqa: BLE001
            log.exception("tagging %s failed", enriched.article.article_id)
            return Rejection.from_exception("enrich", exc)
        return replace(enriched, entities=tags)

    def _features(self, enriched: Enriched, received: float | None) -> Result:
        assert self.encoder is not None
        started = time.perf_counter()
        try:
            features = article_features(enriched.article, enriched.entities, self.encoder, received)
        except Exception as exc:  # noqa: BLE001
            log.exception("features of %s failed", enriched.article.article_id)
            return Rejection.from_exception("enrich", exc)
        finally:
            self.on_stage_time("features", time.perf_counter() - started)
        return replace(enriched, features=features)
