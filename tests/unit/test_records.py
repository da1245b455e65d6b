"""The wire records: one rule for an input's id, whichever path the input takes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

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


def test_a_received_time_no_input_can_have_is_the_time_the_worker_reads_it():
    # A WARC-Date in 2099 made a story claim 2099 (and a publication date in 2099 plausible).
    def received(claim: bytes | None) -> str:
        headers = [("content-type", b"text/plain"), *([("received-at", claim)] if claim is not None else [])]
        raw = raw_from_message(b"k", b"text", headers)
        assert isinstance(raw, RawArticle)
        return raw.source.received_at

    assert received(b"2025-03-14T10:30:00+02:00") == "2025-03-14T10:30:00+02:00"  # a crawl's past is kept
    assert received(b"Fri, 14 Mar 2025 10:30:00 +0200") == "2025-03-14T08:30:00Z"  # and written as RFC 3339
    # Else the message's own timestamp, the same at every delivery; else the worker's clock.
    stamped = raw_from_message(
        b"k", b"text", [("content-type", b"text/plain"), ("received-at", b"2099")], "", 1.7e9
    )
    assert isinstance(stamped, RawArticle) and stamped.source.received_at == "2023-11-14T22:13:20Z"
    before = datetime.now(UTC) - timedelta(seconds=1)
    for claim in (None, b"", b"garbage", b"2099-01-01T00:00:00Z", b"1969-12-31T23:59:59Z", b"2" * 10_000):
        at = datetime.fromisoformat(received(claim).replace("Z", "+00:00"))
        assert before <= at <= datetime.now(UTC), claim
