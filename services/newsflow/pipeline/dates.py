"""Publication dates as consumers can trust them: UTC, parseable and plausible, or set aside.

A page's own date is a claim (a CMS default of 1970, a typo of 2099, "yesterday"). Only a claim
that parses to an absolute time, lies after `EARLIEST` and no later than a day after the article
was received is published; any other is kept verbatim as `published_raw` with a status saying why.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime

from dateutil import parser as dateutil_parser
from dateutil import tz

# Online news archives start in the 1990s; earlier dates are CMS defaults or reprint metadata.
EARLIEST = datetime(1990, 1, 1, tzinfo=UTC)
# Time zones and clock skew put honest dates up to a day after receipt; more is a wrong date.
LATEST_AFTER_RECEIPT = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class Published:
    """A checked publication date: `value` is RFC 3339 UTC or None, `raw` the claim when it was refused."""

    value: str | None
    status: str  # ok | missing | unparseable | implausible
    raw: str | None = None


# A date written for people ("5 December 2026", "Dec. 5, 2026 10:30 AM"): an English month name
# and a four-digit year, so that neither the order of day and month nor the year is a guess.
_MONTH = re.compile(r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec)[a-z]*\b", re.I)
_YEAR = re.compile(r"\b(19|20)\d\d\b")
_DEFAULTS = (datetime(2000, 1, 1), datetime(2001, 2, 2))


def parse_datetime(text: str) -> datetime | None:
    """Return the absolute time an ISO 8601 or RFC 2822 string, or a date written with its month's
    English name and a four-digit year, names (naive means UTC), else None: never an exception,
    whatever the text (the parsers raise on some, such as a UTC offset of a day: "-2400")."""
    try:
        return _parse_datetime(text)
    except (ValueError, OverflowError, TypeError, IndexError):
        return None


def _parse_datetime(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    dt: datetime | None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        try:
            dt = _iso_with_zone(text) or parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            dt = None
        if dt is None or dt.tzinfo is None:
            # Naive from RFC 2822's parser also means a zone it skipped ("CET", "+01:00"): only a
            # date written without one, or with one known, is read (as for people, below).
            dt = _written_date(text)
    if dt is None:
        return None
    try:
        return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
    except OverflowError:  # "0001-01-01T00:00:00+01:00" is before the first representable instant
        return None


# Zone abbreviations read in dates written for people: RFC 822's North American zones, as the
# RFC 2822 dates of feeds are read (so "CST" is the US's Central time, not China's or Cuba's),
# the same without "S"/"D" (AP style: "10:30 a.m. ET", standard or daylight time by the date, as
# the United States have switched since 2007), and Europe's. Others are refused, being several
# zones at once ("IST" is India's, Ireland's or Israel's; "BST" Britain's or Bangladesh's).
_HOUR = 3600
_ZONES: dict[str, int | tz.tzrangebase] = {
    "EST": -5 * _HOUR,
    "EDT": -4 * _HOUR,
    "CST": -6 * _HOUR,
    "CDT": -5 * _HOUR,
    "MST": -7 * _HOUR,
    "MDT": -6 * _HOUR,
    "PST": -8 * _HOUR,
    "PDT": -7 * _HOUR,
    **{
        z: tz.tzstr(f"{z[0]}ST{h}{z[0]}DT,M3.2.0,M11.1.0")
        for z, h in (("ET", 5), ("CT", 6), ("MT", 7), ("PT", 8))
    },
    "WET": 0,
    "WEST": _HOUR,
    "CET": _HOUR,
    "CEST": 2 * _HOUR,
    "EET": 2 * _HOUR,
    "EEST": 3 * _HOUR,
}


# An ISO 8601 date and time followed by a zone's abbreviation, as some feeds write them
# ("2026-12-07T10:00:00 ET", "2026-12-07 10:00 GMT").
_ISO_THEN_ZONE = re.compile(r"(\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d{1,6})?)?) ?([A-Za-z]{2,4})")


def _iso_with_zone(text: str) -> datetime | None:
    """Read an ISO date and time with a zone abbreviation of _ZONES (or UTC, GMT); None for any other."""
    if not (written := _ISO_THEN_ZONE.fullmatch(text)):
        return None
    local, zone = datetime.fromisoformat(written.group(1)), written.group(2).upper()
    if zone in ("UTC", "GMT"):
        return local.replace(tzinfo=UTC)
    offset = _ZONES.get(zone)
    if offset is None:
        return None  # refused, as for people ("IST"): hours off otherwise
    return local.replace(tzinfo=timezone(timedelta(seconds=offset)) if isinstance(offset, int) else offset)


def _written_date(text: str) -> datetime | None:
    if not (_MONTH.search(text) and _YEAR.search(text)):
        return None
    try:
        with warnings.catch_warnings():
            # A zone abbreviation not in _ZONES ("IST") would be dropped, hours off: refused.
            warnings.simplefilter("error", dateutil_parser.UnknownTimezoneWarning)
            # Read against two defaults: a date without its day ("May 2026") or year differs.
            first, second = (dateutil_parser.parse(text, default=d, tzinfos=_ZONES) for d in _DEFAULTS)
    except (ValueError, OverflowError, dateutil_parser.UnknownTimezoneWarning):
        return None
    return first if first == second else None


def rfc3339(dt: datetime) -> str:
    """Return `dt` as an RFC 3339 UTC string with second precision ("2024-03-01T12:00:00Z")."""
    return dt.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


MAX_CLAIM_CHARS = 200


def check_published(claim: str | None, received_at: str | None) -> Published:
    """Return the claim as a trusted UTC date, or set it aside with the reason."""
    if claim is None or not claim.strip():
        return Published(None, "missing")
    # No date is written in more (the parser's time grows with the words: 3 MB took 10 s).
    dt = parse_datetime(claim) if len(claim) <= MAX_CLAIM_CHARS else None
    if dt is None:
        return Published(None, "unparseable", claim)
    received = parse_datetime(received_at or "") or datetime.now(UTC)
    if dt < EARLIEST or dt > received + LATEST_AFTER_RECEIPT:
        return Published(None, "implausible", claim)
    return Published(rfc3339(dt), "ok")


# How far a producer's clock may run ahead of the worker's.
RECEIVED_SKEW = timedelta(minutes=5)


def checked_received(claim: str | None, fallback: float | None = None, now: datetime | None = None) -> str:
    """Return when an input was received: its producer's claim (the time it read the file, an
    archive's WARC-Date), as written if RFC 3339 and else as RFC 3339 UTC; where the claim is
    missing, unreadable or not a time an input can have been received (over RECEIVED_SKEW ahead
    of now, before EARLIEST), `fallback` (the Kafka message's timestamp, in epoch seconds: the same
    at every delivery) if it is such a time, else now. A received time is the article's time when
    it states none, and the reference a stated one is checked against: one in 2099 would let a
    story claim to be from 2099 and never close."""
    now = now or datetime.now(UTC)

    def possible(dt: datetime | None) -> bool:
        return dt is not None and EARLIEST <= dt <= now + RECEIVED_SKEW

    dt = parse_datetime(claim) if claim and len(claim) <= MAX_CLAIM_CHARS else None
    if claim is not None and dt is not None and possible(dt):
        return claim if _RFC3339.fullmatch(claim) else rfc3339(dt)
    try:
        at = datetime.fromtimestamp(fallback, UTC) if fallback is not None else None
    except (ValueError, OverflowError, OSError):
        at = None
    return rfc3339(at if at is not None and possible(at) else now)


_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
