"""The wire records: one rule for an input's id, whichever path the input takes."""

from __future__ import annotations

from newsflow.pipeline.records import (
    MAX_DETAIL_CHARS,
    RawArticle,
    Rejection,
    message_article_id,
    raw_from_message,
)


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


def test_a_rejection_from_an_exception_names_it_and_keeps_its_message_bounded():
    # A parser's error may quote the whole input it choked on.
    rejection = Rejection.from_exception("extract", ValueError("bad byte in " + "x" * 50_000))
    assert rejection.stage == "extract" and rejection.reason == "internal_error"
    assert (
        rejection.detail.startswith("ValueError: bad byte in xxx")
        and len(rejection.detail) == MAX_DETAIL_CHARS
    )
    assert Rejection.from_exception("dedup", KeyError("kind"), "bad_features").detail == "KeyError: 'kind'"
