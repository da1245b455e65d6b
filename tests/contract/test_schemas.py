"""Records produced by the real pipeline code, on seeds and fixtures, validate against schemas/."""

from __future__ import annotations

from dataclasses import replace

import pytest

from newsflow.pipeline import jsonio
from newsflow.pipeline.dedup import StoryIndex
from newsflow.pipeline.embed import default_encoder
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.entities import EntityTagger
from newsflow.pipeline.features import article_features
from newsflow.pipeline.records import (
    DEAD_LETTER_SCHEMA_VERSION,
    ENRICHED_SCHEMA_VERSION,
    STORY_SCHEMA_VERSION,
    Rejection,
    article_fields,
    dead_letter_record,
    enriched_record,
    raw_from_message,
    raw_headers,
    story_record,
)
from newsflow.pipeline.schema import schema_errors, validator
from tests.conftest import FIXTURES


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher(tagger=EntityTagger())


def test_schemas_are_valid_draft_2020_12():
    for name in ("enriched-article", "dead-letter", "story"):
        assert validator(name).schema["$id"].endswith("/v1")


def test_each_schema_file_says_the_minor_version_the_records_it_describes_carry():
    # A consumer holding a copy of a schema can tell which 1.x it is (the $id names only the major).
    assert {
        name: validator(name).schema["x-schema-version"]
        for name in ("enriched-article", "dead-letter", "story")
    } == {
        "enriched-article": ENRICHED_SCHEMA_VERSION,
        "dead-letter": DEAD_LETTER_SCHEMA_VERSION,
        "story": STORY_SCHEMA_VERSION,
    }


def test_enriched_and_story_records_validate(enricher, seed_raws, fixture_raws):
    index = StoryIndex()
    results = enricher.enrich_batch(seed_raws + fixture_raws)
    assert all(isinstance(r, Enriched) for r in results)
    for result in results:
        assert isinstance(result, Enriched)
        f = article_features(result.article, result.entities, default_encoder())
        # the record's fields cross the features topic as JSON before the story is added
        fields = jsonio.loads(jsonio.dumps(article_fields(result.article, result.entities)))
        out = jsonio.loads(jsonio.dumps(enriched_record(fields, index.assign(f))))
        assert schema_errors("enriched-article", out) == []
        assert out["schema_version"] == ENRICHED_SCHEMA_VERSION
        assert out["story_id"]
    for story in index.stories.values():
        assert schema_errors("story", jsonio.loads(jsonio.dumps(story_record(story)))) == []


def test_dead_letters_of_the_real_stages_validate(enricher, fixture_raws):
    bad = raw_from_message(b"k", b"x", [("content-type", b"image/png")])
    assert isinstance(bad, Rejection)
    records = [dead_letter_record(bad, b"x", b"k", {"content-type": "image/png"})]
    no_body = (FIXTURES / "bad" / "no-body.json").read_bytes()
    raw = fixture_raws[0]
    from dataclasses import replace

    rejected = enricher.enrich_batch(
        [replace(raw, payload=no_body, source=replace(raw.source, content_type="application/json"))]
    )
    assert isinstance(rejected[0], Rejection)
    headers = {k: v.decode() for k, v in raw_headers(raw)}
    records.append(dead_letter_record(rejected[0], no_body, raw.article_id.encode(), headers))
    for record in records:
        assert schema_errors("dead-letter", jsonio.loads(jsonio.dumps(record))) == []


def test_a_record_missing_a_field_is_refused():
    assert schema_errors("story", {"story_id": "s-1"})  # the validator is not a rubber stamp


def test_a_later_minor_versions_added_field_is_accepted_by_the_published_schema_not_by_ours(
    enricher, seed_raws
):
    # A consumer validating with the schema it has (1.x) must accept records of a later 1.y,
    # which only add fields; this pipeline's own records are checked with no field unlisted.
    (result,) = enricher.enrich_batch(seed_raws[:1])
    fields = jsonio.loads(jsonio.dumps(article_fields(result.article, result.entities)))
    record = jsonio.loads(
        jsonio.dumps(
            enriched_record(
                fields,
                StoryIndex().assign(article_features(result.article, result.entities, default_encoder())),
            )
        )
    )
    later = {**record, "sentiment": 0.2, "source": {**record["source"], "paywalled": False}}
    assert schema_errors("enriched-article", later, strict=False) == []
    assert len(schema_errors("enriched-article", later)) == 2
    assert schema_errors("enriched-article", {**record, "title": 5}, strict=False)  # still a contract


def test_a_revised_file_names_the_version_it_revises(enricher, fixture_raws):
    raw = fixture_raws[0]
    revised = replace(raw, article_id="v2", source=replace(raw.source, revision_of=raw.article_id))
    again = raw_from_message(b"v2", revised.payload, raw_headers(revised))
    assert again == revised
    (result,) = enricher.enrich_batch([again])
    record = enriched_record(
        jsonio.loads(jsonio.dumps(article_fields(result.article, result.entities))), None
    )
    assert record["source"]["revision_of"] == raw.article_id
    assert schema_errors("enriched-article", jsonio.loads(jsonio.dumps(record))) == []


def test_only_revisions_carry_revision_of(enricher, fixture_raws):
    # Records a consumer on a 1.4 schema (closed objects) could read before still read the same.
    (result,) = enricher.enrich_batch(fixture_raws[:1])
    assert "revision_of" not in article_fields(result.article, result.entities)["source"]
