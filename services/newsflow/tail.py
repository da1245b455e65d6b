"""newsflow-tail: follow the enriched (or stories) topic, one readable line per record.

    newsflow-tail                                  # new enriched records from now on
    newsflow-tail --from beginning --outlet reuters
    newsflow-tail --from 2026-12-01T08:00:00Z --entity "united states" --json
    newsflow-tail --topic stories --story s-e94a7aaea844a998

Reads read_committed (what the pipeline committed, once), with no consumer group: nothing is
committed and any number of tails can run. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from newsflow.logs import printable
from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import parse_datetime
from newsflow.pipeline.headline import untitled_headline
from newsflow.settings import CommandLine, KafkaSettings, env_help, load_settings_or_exit, reader_gone

PROG = "newsflow-tail"


@dataclass(frozen=True, slots=True)
class Filters:
    entity: str | None = None  # an entity key ("united states")
    outlet: str | None = None
    story: str | None = None
    lang: str | None = None
    article: str | None = None


def matches(record: Mapping[str, Any], f: Filters) -> bool:
    """Return whether an enriched or story record passes every filter given."""
    if "article_id" in record:  # enriched
        outlets = [str((record.get("source") or {}).get("outlet", ""))]
        entities = [str(e.get("key")) for e in record.get("entities") or ()]
        lang = (record.get("language") or {}).get("code")
    else:  # story
        outlets = [str(o) for o in record.get("outlets") or ()]
        entities = [str(k) for k in record.get("top_entities") or ()]
        lang = None
    return (
        (f.entity is None or f.entity.casefold() in entities)
        and (f.outlet is None or f.outlet in outlets)
        and (f.story is None or record.get("story_id") == f.story)
        and (f.lang is None or lang == f.lang)
        and (f.article is None or record.get("article_id") == f.article)
    )


def line(record: Mapping[str, Any]) -> str:
    """Return one readable line for an enriched or story record."""
    if "article_id" in record:
        source = record.get("source") or {}
        top = ", ".join(str(e.get("name")) for e in (record.get("entities") or ())[:3])
        copy = f" copy of {record['duplicate_of']}" if record.get("duplicate_of") else ""
        lang = (record.get("language") or {}).get("code") or "--"
        # Plain texts have no title: the headline their story shows for them (a first line that
        # reads as one, else the first words).
        title = record.get("title") or untitled_headline(str(record.get("text") or "")) or "(no text)"
        return (
            f"{source.get('received_at', '')[:19]}  {source.get('outlet', '')[:14]:<14}  "
            f"{record.get('story_id') or '--'}  {lang}  {title[:70]}"
            f"{copy}  [{top}]"
        )
    lineage = ""
    if record.get("status") == "closed":  # its last record: out of the window, or merged into another
        lineage = (
            f"closed, merged into {record['merged_into']}  " if record.get("merged_into") else "closed  "
        )
    if record.get("split_from"):
        lineage += f"split from {record['split_from']}  "
    if record.get("split_into"):
        lineage += f"split into {', '.join(map(str, record['split_into']))}  "
    return (
        f"{str(record.get('updated_at', ''))[:19]}  story {record.get('story_id')}  {lineage}"
        f"{record.get('member_count')} {'article' if record.get('member_count') == 1 else 'articles'} "
        f"from {', '.join(record.get('outlets') or ())}  "
        f"{(record.get('headline') or '')[:70]}"
    )


def deletion(key: bytes | None, timestamp_ms: int | None, f: Filters, as_json: bool) -> str | None:
    """Return the line of a story's deletion (the tombstone that ends its retention), or None
    when a filter rules it out (all but --story: a deletion says nothing else of the story)."""
    story_id = key.decode(errors="backslashreplace") if key else ""
    if not story_id or any((f.entity, f.outlet, f.lang, f.article)) or f.story not in (None, story_id):
        return None
    if as_json:
        return jsonio.dumps({"story_id": story_id, "deleted": True}).decode()
    at = ""
    if timestamp_ms is not None and timestamp_ms > 0:  # -1: the record has none
        at = datetime.fromtimestamp(timestamp_ms / 1000, UTC).isoformat()[:19]
    return printable(f"{at}  story {story_id}  deleted (its retention after closing ended)")


def start_position(value: str) -> str | datetime:
    """Return 'now', 'beginning' or a time, from --from's value; ValueError if it is none of them."""
    if value in ("now", "beginning"):
        return value
    when = parse_datetime(value)
    if when is None:
        raise ValueError(f"--from {value!r}: not 'now', 'beginning' or an ISO 8601 time")
    return when


async def tail(
    kafka: KafkaSettings,
    topic: str,
    start: str | datetime,
    filters: Filters,
    as_json: bool,
    limit: int | None,
) -> int:
    """Print matching records until `limit` of them were printed (None: until cancelled)."""
    from newsflow.topics import committed_reader, topic_partitions, wait_for_broker

    await wait_for_broker(kafka, timeout=15)  # as newsflow-deadletters: a clear error, not a stack
    consumer = committed_reader(kafka)
    printed = 0
    try:
        await consumer.start()
        tps = await topic_partitions(consumer, topic)
        if not tps:
            raise LookupError(f"topic {topic!r} does not exist on {kafka.bootstrap}")
        consumer.assign(tps)
        if start == "beginning":
            await consumer.seek_to_beginning(*tps)
        elif start == "now":
            await consumer.seek_to_end(*tps)
        else:
            assert isinstance(start, datetime)
            found = await consumer.offsets_for_times({tp: int(start.timestamp() * 1000) for tp in tps})
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        while limit is None or printed < limit:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                for m in messages:
                    if m.value is None:
                        out = deletion(m.key, m.timestamp, filters, as_json)
                        if out is None:
                            continue
                    else:
                        try:
                            record = jsonio.loads(m.value)
                        except ValueError:
                            continue  # not a record of ours
                        if not (isinstance(record, dict) and matches(record, filters)):
                            continue
                        out = m.value.decode() if as_json else printable(line(record))
                    sys.stdout.write(out + "\n")
                    sys.stdout.flush()
                    printed += 1
                    if limit is not None and printed >= limit:
                        return printed
    finally:
        await consumer.stop()
    return printed


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def parser() -> argparse.ArgumentParser:
    parser = CommandLine(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=env_help(KafkaSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--topic", choices=("enriched", "stories"), default="enriched")
    parser.add_argument(
        "--from", dest="start", default="now", help="now (default), beginning, or an ISO 8601 time"
    )
    parser.add_argument("--entity", help="only records naming this entity key (e.g. 'united states')")
    parser.add_argument("--outlet", help="only this outlet's records")
    parser.add_argument("--story", help="only this story's records")
    parser.add_argument(
        "--article", help="only this article's record (with --from beginning --max 1: has it come out?)"
    )
    parser.add_argument(
        "--lang", type=str.lower, help="only articles in this language (ISO 639-1, e.g. en; any case)"
    )
    parser.add_argument("--json", action="store_true", help="print each record as JSON")
    parser.add_argument("--max", type=_positive, help="stop after printing this many records")
    return parser


def main(argv: list[str] | None = None) -> int:
    cli = parser()
    args = cli.parse_args(argv)
    if args.topic == "stories" and args.lang:  # it would wait for ever: stories have no language
        cli.error("--lang filters articles; story records have no language (use --topic enriched)")
    if args.topic == "stories" and args.article:
        cli.error("--article filters articles; find a story's members with --story (use --topic enriched)")
    (kafka,) = load_settings_or_exit(PROG, KafkaSettings)
    try:
        start = start_position(args.start)
    except ValueError as exc:
        cli.error(str(exc))
    topic = kafka.topic_stories if args.topic == "stories" else kafka.topic_enriched
    filters = Filters(args.entity, args.outlet, args.story, args.lang, args.article)
    try:
        asyncio.run(tail(kafka, topic, start, filters, args.json, args.max))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return reader_gone()
    except Exception as exc:  # noqa: BLE001 - a one-line error for the terminal
        sys.stderr.write(f"{PROG}: error: {exc or type(exc).__name__}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
