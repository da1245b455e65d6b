"""CloudEvents headers (Kafka protocol binding, binary mode) on every record the pipeline outputs.

A generic consumer (kcat, a Kafka Connect sink, an event router) can route and filter the
enriched, story and dead-letter records by these headers without parsing their JSON bodies: the
body is the event's data, the headers are its attributes (CloudEvents 1.0, `ce_` prefix).
"""

from __future__ import annotations

from functools import cache
from urllib.parse import quote

from newsflow.pipeline import jsonio
from newsflow.pipeline.schema import schema_bytes

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
# Event types: reverse-DNS, as the specification recommends, with the record kind.
ARTICLE_ENRICHED = "dev.newsflow.article.enriched"
STORY_UPDATED = "dev.newsflow.story.updated"
STORY_CLOSED = "dev.newsflow.story.closed"
# A story's tombstone (a null value: no data, so neither schema nor content type), as the Kafka
# binding allows, so that a sink that routes by type sees the deletes too.
STORY_DELETED = "dev.newsflow.story.deleted"
ARTICLE_DEAD_LETTERED = "dev.newsflow.article.dead_lettered"
# The source of events not from one outlet (stories).
PIPELINE_SOURCE = "newsflow"
# What an outlet name keeps as it is in `ce_source`, which must be a URI-reference (RFC 3986): its
# unreserved characters, sub-delimiters, "@" and "/"; the rest (a space, "%", "#", ":", non-ASCII
# letters) percent-encoded as UTF-8, so "My Outlet" is "My%20Outlet" and "bbc.co.uk" stays. A ":"
# would make the name before it a scheme, or no reference at all; a leading "//" an authority.
_SOURCE_SAFE = "!$&'()*+,;=@/-._~"

Headers = tuple[tuple[str, bytes], ...]


@cache
def schema_id(name: str) -> str:
    """Return the `$id` of a shipped schema (the records' `ce_dataschema`)."""
    return str(jsonio.loads(schema_bytes(name))["$id"])


def headers(
    event_type: str, event_id: str, source: str, time: str, schema: str | None, subject: str | None = None
) -> Headers:
    """Return the binary-mode headers of one event (`schema`: the name of its data's schema in
    schemas/; None for an event without data, a tombstone)."""
    attributes = [
        ("ce_specversion", SPEC_VERSION),
        ("ce_id", event_id),
        ("ce_source", source_reference(source or PIPELINE_SOURCE)),
        ("ce_type", event_type),
        ("ce_time", time),
    ]
    if schema is not None:
        attributes += [("ce_dataschema", schema_id(schema)), ("content-type", CONTENT_TYPE)]
    if subject:
        attributes.append(("ce_subject", subject))
    return tuple((name, value.encode()) for name, value in attributes)


def source_reference(source: str) -> str:
    """Return an event source (an outlet's name) as the URI-reference `ce_source` must be: a
    relative reference, its first segment not empty."""
    reference = quote(source, safe=_SOURCE_SAFE)
    return "%2F" + reference[1:] if reference.startswith("/") else reference


def as_dict(record_headers: Headers | list[tuple[str, bytes]] | None) -> dict[str, str]:
    """Return the CloudEvents attributes among a record's headers, by name without the prefix."""
    out = {}
    for name, value in record_headers or ():
        if name.startswith("ce_"):
            out[name[3:]] = value.decode(errors="replace")
        elif name == "content-type":
            out["datacontenttype"] = value.decode(errors="replace")
    return out
