from __future__ import annotations

import pytest

from newsflow.pipeline.dates import check_published

RECEIVED = "2025-03-14T09:00:00Z"


@pytest.mark.parametrize(
    ("claim", "value", "status"),
    [
        ("2025-03-14T10:30:00+02:00", "2025-03-14T08:30:00Z", "ok"),
        ("2025-03-14T10:30:00", "2025-03-14T10:30:00Z", "ok"),  # naive means UTC
        ("2025-03-13", "2025-03-13T00:00:00Z", "ok"),
        ("Thu, 13 Mar 2025 10:00:00 -0500", "2025-03-13T15:00:00Z", "ok"),  # RFC 2822, as in feeds
        ("2025-03-15T08:00:00Z", "2025-03-15T08:00:00Z", "ok"),  # within a day of receipt: time zones
        ("2025-03-16T09:00:01Z", None, "implausible"),
        ("2099-01-01", None, "implausible"),
        ("1970-01-01T00:00:00Z", None, "implausible"),
        # written for people: a month's name and a four-digit year; the day and year never guessed
        ("13 March 2025", "2025-03-13T00:00:00Z", "ok"),
        ("March 13, 2025 10:30 AM", "2025-03-13T10:30:00Z", "ok"),
        ("Mar. 13, 2025 10:30 +0530", "2025-03-13T05:00:00Z", "ok"),
        # zones news is dated in that name one offset or one rule: ET is daylight time in mid-March
        ("March 13, 2025 at 10:30 p.m. ET", "2025-03-14T02:30:00Z", "ok"),
        ("March 1, 2025 10:30 PM ET", "2025-03-02T03:30:00Z", "ok"),
        ("Mar 13, 2025 10:00 AM EST", "2025-03-13T15:00:00Z", "ok"),  # AP style: AM and a zone
        ("Thu, 13 Mar 2025 10:00:00 CET", "2025-03-13T09:00:00Z", "ok"),
        ("March 13, 2025 10:30 IST", None, "unparseable"),  # India's, Ireland's or Israel's
        # ISO dates followed by a zone's abbreviation, as some feeds write them
        ("2025-03-13T10:00:00 ET", "2025-03-13T14:00:00Z", "ok"),  # daylight time by then
        ("2025-03-13T10:00:00 CEST", "2025-03-13T08:00:00Z", "ok"),
        ("2025-03-13 10:00 EST", "2025-03-13T15:00:00Z", "ok"),
        ("2025-03-13T10:00:00.5 GMT", "2025-03-13T10:00:00Z", "ok"),
        ("2025-03-13T10:00:00 IST", None, "unparseable"),
        ("13 March 2025 10:30 BST", None, "unparseable"),  # Britain's or Bangladesh's
        ("13 March 2025 10:30 +01:00", "2025-03-13T09:30:00Z", "ok"),
        ("Thu, 13 Mar 2025 10:00:00", "2025-03-13T10:00:00Z", "ok"),
        ("March 2025", None, "unparseable"),
        ("March 13", None, "unparseable"),
        ("03/04/2025", None, "unparseable"),  # March 4 or 3 April
        ("yesterday", None, "unparseable"),
        ("2025-02-30", None, "unparseable"),
        ("5 December 2026 " + "of " * 100_000, None, "unparseable"),  # read no further than a date's length
        # offsets of a day or more, which the parsers raise on (an envelope's was an internal error)
        ("1 Dec 2025 10:00 -2400", None, "unparseable"),
        ("19 2025 'Sept 2025+24:00", None, "unparseable"),
        ("Mon, 01 Dec 2025 10:00:00 +9999", None, "unparseable"),
        ("", None, "missing"),
        (None, None, "missing"),
    ],
)
def test_a_publication_date_is_used_only_when_it_parses_and_is_plausible(claim, value, status):
    checked = check_published(claim, RECEIVED)
    assert (checked.value, checked.status) == (value, status)
    assert checked.raw == (claim if status in ("implausible", "unparseable") else None)
