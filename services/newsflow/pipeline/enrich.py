"""The per-article stages that run in parallel across partitions: extract, clean, tag.

`Enricher` holds the state those stages need (learned boilerplate, the NER model) and turns
a batch of raw articles into a batch of results, one per input, in order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.extract import ExtractOptions, extract_article, with_outlet_boilerplate_removed
from newsflow.pipeline.records import CleanArticle, EntityResult, RawArticle, Rejection
from newsflow.pipeline.textclean import BoilerplateModel

StageTimer = Callable[[str, float], None]


def _no_timer(_stage: str, _seconds: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class Enriched:
    """A cleaned article with everything the per-article stages found."""

    article: CleanArticle
    entities: EntityResult | None = None


@dataclass
class Enricher:
    options: ExtractOptions = field(default_factory=ExtractOptions)
    boilerplate: BoilerplateModel = field(default_factory=BoilerplateModel)
    tagger: EntityTagger | None = None
    on_stage_time: StageTimer = _no_timer

    def clean(self, raw: RawArticle) -> CleanArticle | Rejection:
        """Return the extracted article without general or outlet-specific boilerplate."""
        started = time.perf_counter()
        result = extract_article(raw, self.options)
        if isinstance(result, CleanArticle) and result.extraction.status in (
            "ok",
            "truncated",
            "not_article",
        ):
            # Keyed by the outlet the message was routed by (an envelope may rename it later).
            result = with_outlet_boilerplate_removed(result, self.boilerplate, raw.source.outlet)
        self.on_stage_time("extract", time.perf_counter() - started)
        return result

    def tag(self, cleaned: Sequence[CleanArticle | Rejection]) -> list[Enriched | Rejection]:
        """Return one result per cleaned article, in order, with entities tagged as one batch."""
        articles = [c for c in cleaned if isinstance(c, CleanArticle)]
        tags: dict[str, EntityResult] = {}
        if self.tagger is not None and articles:
            started = time.perf_counter()
            tags = {a.article_id: t for a, t in zip(articles, self.tagger.tag_batch(articles), strict=True)}
            self.on_stage_time("entities", (time.perf_counter() - started) / len(articles))
        return [c if isinstance(c, Rejection) else Enriched(c, tags.get(c.article_id)) for c in cleaned]

    def enrich_batch(self, raws: Sequence[RawArticle]) -> list[Enriched | Rejection]:
        """Return one result per raw article, in input order (entities tagged as one batch)."""
        return self.tag([self.clean(r) for r in raws])
