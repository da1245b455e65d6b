"""The wire records: one rule for an input's id, whichever path the input takes."""

from __future__ import annotations

from newsflow.pipeline.records import RawArticle, message_article_id, raw_from_message


def test_the_article_id_of_a_message_is_the_same_for_an_article_and_its_dead_letter():
    cases = [
        (b"abc", [("article-id", b""), ("content-type", b"text/plain")], "abc"),  # empty header: the key
        (b"abc", [("article-id", b"id-1"), ("content-type", b"text/plain")], "id-1"),
        (None, [("content-type", b"text/plain")], "@raw/0/5"),  # neither: where it was read
    ]
    for key, headers, expected in cases:
        raw = raw_from_message(key, b"text", headers, "@raw/0/5")
        assert isinstance(raw, RawArticle) and raw.article_id == expected
        text_headers = {k: v.decode() for k, v in headers}
        assert message_article_id(key, text_headers, "@raw/0/5") == expected
