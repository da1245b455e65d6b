"""newsflow-deadletters: look at the dead-letter topic and send inputs back through the pipeline.

    newsflow-deadletters list [--stage S] [--reason R] [--outlet O] [--since 2026-12-01T00:00Z] [--status|--open] [--json]
    newsflow-deadletters show ARTICLE_ID [--payload FILE]
    newsflow-deadletters replay ARTICLE_ID [...] | --all [filters] [--dry-run]

`replay` sends each input's original bytes and headers back to the raw topic with the header
`replay-count` one higher than the dead letter's. Bytes a dead letter holds only in part (or not
at all, for the dedup stage) are fetched from the topic and offset it names as its origin, while
that topic still retains them. Replaying one dead letter twice sends it twice, but the pipeline
writes its outcome once: the dedup writer remembers each (article, replay count) it decided.
Only the latest dead letter of an article is shown and replayed. `--status` says what became of
each one's article since it failed (open, enriched by a replay, revised under a new id), and
`--open` keeps the open ones: both read the enriched topic from the earliest failure on.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError

from newsflow.logs import printable
from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import parse_datetime
from newsflow.pipeline.records import H_ARTICLE_ID, H_OUTLET, H_REPLAY_COUNT, latest
from newsflow.settings import (
    CommandLine,
    KafkaSettings,
    client_options,
    env_help,
    load_settings_or_exit,
    reader_gone,
)
from newsflow.topics import committed_reader, topic_partitions, wait_for_broker
from newsflow.worker.replica import read_to_end

PROG = "newsflow-deadletters"
# The stages that dead-letter an input (each `Rejection`'s stage).
STAGES = ("decode", "extract", "enrich", "dedup")
# How long reading the enriched topic's consumer may take to stop (`outcomes`).
STOP_SECONDS = 10.0


class ReplayError(Exception):
    """An input cannot be replayed (its bytes are gone); the message says why."""


async def read_dead_letters(kafka: KafkaSettings) -> dict[str, dict[str, Any]]:
    """Return the latest committed dead letter of every article id, oldest first.

    A record that is not a JSON object (written to the topic by something else) is left out with
    a warning, and a tombstone forgets its key's dead letter, as compaction would."""
    try:
        entries = await read_to_end(kafka, kafka.topic_dead_letter)
    except LookupError:
        raise ReplayError(f"topic {kafka.topic_dead_letter} does not exist") from None
    found: dict[str, dict[str, Any]] = {}
    unreadable = 0
    for key, value in latest(entries).items():
        try:
            record = jsonio.loads(value)
        except ValueError:
            record = None
        if isinstance(record, dict):
            found[key.decode(errors="replace")] = record
        else:
            unreadable += 1
    if unreadable:
        sys.stderr.write(
            f"{PROG}: warning: {unreadable} record(s) on the topic are not dead letters; left out\n"
        )
    return found


class Outcome(NamedTuple):
    """What became of a dead letter's article since it failed (`outcomes`)."""

    kind: str  # "open", "enriched" (a replay went through) or "revised"
    revised_as: str | None = None  # the id its file, changed, came out under

    def __str__(self) -> str:
        return f"{self.kind} as {self.revised_as}" if self.revised_as else self.kind


OPEN = Outcome("open")


async def outcomes(kafka: KafkaSettings, letters: dict[str, dict[str, Any]]) -> dict[str, Outcome]:
    """Return what became of each dead letter's article since it failed: enriched (a replay went
    through), revised (its file, changed, came out under a new id that names it in
    `source.revision_of`), else open. Reads the enriched topic from the earliest failure on."""
    status = dict.fromkeys(letters, OPEN)
    failed = {k: parse_datetime(str(r.get("failed_at") or "")) for k, r in letters.items()}
    known = [t for t in failed.values() if t is not None]
    if not known:
        return status
    consumer = committed_reader(kafka)
    try:
        await consumer.start()
        partitions = await topic_partitions(consumer, kafka.topic_enriched)
        if not partitions:
            return status
        since = int(min(known).timestamp() * 1000)
        # Asked of the broker without an assignment: a consumer assigned partitions starts
        # fetching them, and one whose assignment then went empty waited for ever in stop().
        starts = await consumer.offsets_for_times(dict.fromkeys(partitions, since))
        ends = await consumer.end_offsets(partitions)
        todo = {tp for tp, at in starts.items() if at is not None and at.offset < ends[tp]}
        if not todo:  # nothing enriched since the earliest failure: every one is open
            return status
        consumer.assign(list(todo))
        for tp in todo:
            consumer.seek(tp, starts[tp].offset)
        for tp in todo:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=1000)
                for m in batch.get(tp, ()):
                    _outcome(status, failed, m.key, m.value)
    finally:
        # Bounded: a CLI must not wait for ever on a fetch the consumer's stop waits for.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(consumer.stop(), STOP_SECONDS)
    return status


def _outcome(
    status: dict[str, Outcome], failed: dict[str, datetime | None], key: bytes | None, value: bytes | None
) -> None:
    """Note what one enriched record says of the dead letters (`outcomes`)."""
    if value is None:
        return
    article_id = (key or b"").decode(errors="replace")
    if article_id not in status and b'"revision_of"' not in value:
        return  # most records: read no further
    try:
        record = jsonio.loads(value)
        source = record.get("source") or {}
        processed = parse_datetime(str(record.get("processed_at") or ""))
    except (ValueError, AttributeError):
        return
    revises = source.get("revision_of") if isinstance(source, dict) else None
    for letter, outcome in ((article_id, Outcome("enriched")), (revises, Outcome("revised", article_id))):
        if isinstance(letter, str) and letter in status:
            when = failed.get(letter)
            if when is None or processed is None or processed > when:
                status[letter] = outcome


def matches(record: dict[str, Any], args: argparse.Namespace) -> bool:
    """Return whether a dead letter passes the --stage/--reason/--outlet/--since filters."""
    if args.stage and record.get("stage") != args.stage:
        return False
    if args.reason and record.get("reason") != args.reason:
        return False
    if args.outlet and (record.get("headers") or {}).get(H_OUTLET) != args.outlet:
        return False
    if args.since is not None:
        failed = parse_datetime(record.get("failed_at") or "")
        if failed is None or failed < args.since:
            return False
    return True


def _columns(
    article_id: str,
    failed_at: str,
    stage: str,
    reason: str,
    outlet: str,
    size: str,
    status: str | None,
    detail: str,
) -> str:
    return (
        f"{article_id:<26} {failed_at:<24} {stage:<8} {reason:<17} {outlet[:16]:<16} {size:>9}  "
        + (f"{status:<8} " if status is not None else "")
        + detail
    )


def header(with_status: bool) -> str:
    """The line over `list`'s lines (`summary`)."""
    status = "status" if with_status else None
    return _columns("article", "failed at", "stage", "reason", "outlet", "bytes", status, "detail")


def summary(article_id: str, record: dict[str, Any], status: Outcome | None = None) -> str:
    """One line of `list`, under `header` (`status`: from `outcomes`, when asked for)."""
    detail = " ".join(str(record.get("detail", "")).split())[:80]
    return _columns(
        article_id,
        str(record.get("failed_at", "-")),
        str(record.get("stage", "-")),
        str(record.get("reason", "-")),
        str((record.get("headers") or {}).get(H_OUTLET, "-")),
        str(record.get("payload_bytes", 0)),
        status.kind if status is not None else None,
        f"as {status.revised_as}: {detail}" if status is not None and status.revised_as else detail,
    )


def _as_json(article_id: str, record: dict[str, Any], status: Outcome | None) -> dict[str, Any]:
    out = {"article_id": article_id, **record}
    if status is not None:
        out["status"] = status.kind
        if status.revised_as:
            out["revised_as"] = status.revised_as
    return out


async def fetch(kafka: KafkaSettings, origin: dict[str, Any]) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Return the value and headers of the message at a dead letter's origin."""
    consumer = committed_reader(kafka)
    try:
        await consumer.start()
        tp = TopicPartition(str(origin["topic"]), int(origin["partition"]))
        consumer.assign([tp])
        offset = int(origin["offset"])
        first = (await consumer.beginning_offsets([tp]))[tp]
        if offset < first:
            raise ReplayError(f"{tp.topic}[{tp.partition}] no longer holds offset {offset} (retention)")
        consumer.seek(tp, offset)
        for _ in range(20):
            for message in (await consumer.getmany(tp, timeout_ms=1000)).get(tp, ()):
                if message.offset == offset:
                    return message.value or b"", list(message.headers or ())
                if message.offset > offset:
                    break
        raise ReplayError(f"{tp.topic}[{tp.partition}] offset {offset} could not be read")
    finally:
        await consumer.stop()


async def original_input(
    kafka: KafkaSettings, record: dict[str, Any]
) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Return the original bytes and headers of a dead letter's input."""
    headers = [(k, v.encode()) for k, v in (record.get("headers") or {}).items()]
    payload = base64.b64decode(record.get("payload_base64") or "")
    origin = record.get("origin")
    if record.get("stage") == "dedup" and origin:
        # The writer's input is the features message; the article's bytes are where that says.
        features_message, _ = await fetch(kafka, origin)
        try:
            inner = jsonio.loads(features_message).get("origin")
        except (ValueError, AttributeError):
            inner = None
        if not inner:
            raise ReplayError("the dedup stage's input names no original input to fetch")
        return await fetch(kafka, inner)
    if record.get("payload_truncated") or (not payload and record.get("payload_bytes")):
        if not origin:
            raise ReplayError("the dead letter holds part of the input and names no origin")
        payload, _ = await fetch(kafka, origin)
    want = record.get("payload_sha256")
    if want and hashlib.sha256(payload).hexdigest() != want:
        raise ReplayError("the bytes found do not match the dead letter's sha256")
    return payload, headers


async def replay(
    kafka: KafkaSettings, chosen: dict[str, dict[str, Any]], dry_run: bool
) -> tuple[int, list[str]]:
    """Send the chosen dead letters' inputs back to the raw topic; return (sent, errors)."""
    errors: list[str] = []
    prepared: list[tuple[str, bytes, list[tuple[str, bytes]]]] = []
    for article_id, record in chosen.items():
        try:
            payload, headers = await original_input(kafka, record)
        except ReplayError as exc:
            errors.append(f"{article_id}: {exc}")
            continue
        count = int(record.get("replay_count") or 0) + 1
        headers = [(k, v) for k, v in headers if k not in (H_REPLAY_COUNT, H_ARTICLE_ID)]
        headers += [(H_ARTICLE_ID, article_id.encode()), (H_REPLAY_COUNT, str(count).encode())]
        prepared.append((article_id, payload, headers))
    if dry_run or not prepared:
        return len(prepared), errors
    producer = AIOKafkaProducer(
        **client_options(kafka),
        enable_idempotence=True,
        acks="all",
        max_request_size=kafka.max_message_bytes,
        client_id=PROG,
    )
    await producer.start()
    try:
        for article_id, payload, headers in prepared:
            await producer.send_and_wait(kafka.topic_raw, payload, key=article_id.encode(), headers=headers)
    finally:
        await producer.stop()
    return len(prepared), errors


def _since(text: str) -> datetime:
    dt = parse_datetime(text)
    if dt is None:
        raise argparse.ArgumentTypeError(f"not a date or time: {text!r} (e.g. 2026-12-01T08:00Z)")
    return dt.astimezone(UTC)


def parser() -> argparse.ArgumentParser:
    p = CommandLine(
        prog=PROG,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        epilog=env_help(KafkaSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="command", required=True)
    filters = CommandLine(add_help=False)
    filters.add_argument("--stage", choices=STAGES, help="the stage that refused the input")
    filters.add_argument("--reason", help="e.g. too_large, timeout, bad_envelope")
    filters.add_argument("--outlet", help="the outlet header of the input")
    filters.add_argument("--since", type=_since, help="failed at or after this time (UTC if no zone)")
    filters.add_argument(
        "--open",
        action="store_true",
        help="only those whose article has not come out since, replayed or revised (reads the enriched "
        "topic from the earliest failure on)",
    )
    ls = sub.add_parser("list", parents=[filters], help="one line per dead letter (latest per article)")
    ls.add_argument("--json", action="store_true", help="one JSON record per line instead")
    ls.add_argument(
        "--status",
        action="store_true",
        help="say what became of each one's article since: open, enriched (a replay went through) or "
        "revised (its file came out changed, under a new id); reads the enriched topic as --open does",
    )
    show = sub.add_parser("show", help="one dead letter in full (without its payload)")
    show.add_argument("article_id")
    show.add_argument(
        "--payload", metavar="FILE", help="write the input's original bytes to FILE ('-': stdout)"
    )
    rp = sub.add_parser("replay", parents=[filters], help="send inputs back to the raw topic")
    rp.add_argument("article_ids", nargs="*", help="the dead letters to replay")
    rp.add_argument("--all", action="store_true", help="every dead letter that passes the filters")
    rp.add_argument("--dry-run", action="store_true", help="say what would be sent, send nothing")
    return p


async def run(args: argparse.Namespace, kafka: KafkaSettings) -> int:
    await wait_for_broker(kafka, timeout=15)
    letters = await read_dead_letters(kafka)
    out = sys.stdout
    if args.command == "list":
        chosen = {k: r for k, r in letters.items() if matches(r, args)}
        checked = args.status or args.open
        status: dict[str, Outcome | None] = (
            dict(await outcomes(kafka, chosen)) if checked else dict.fromkeys(chosen)
        )
        if args.open:
            chosen = {k: r for k, r in chosen.items() if status[k] == OPEN}
        if chosen and not args.json:
            out.write(header(checked) + "\n")
        for article_id, record in chosen.items():
            if args.json:
                out.write(jsonio.dumps_line(_as_json(article_id, record, status[article_id])).decode())
            else:
                out.write(printable(summary(article_id, record, status[article_id])) + "\n")
        still = f" ({sum(status[k] == OPEN for k in chosen)} open)" if checked else ""
        sys.stderr.write(f"{PROG}: {len(chosen)} of {len(letters)} dead letters{still}\n")
        return 0
    if args.command == "show":
        found = letters.get(args.article_id)
        if found is None:
            sys.stderr.write(f"{PROG}: error: no dead letter for {args.article_id!r}\n")
            return 1
        shown = {k: v for k, v in found.items() if k != "payload_base64"}
        # With the input's bytes on stdout, the record goes to stderr: `> input.bin` is the input.
        (sys.stderr if args.payload == "-" else out).write(
            jsonio.dumps_line({"article_id": args.article_id, **shown}).decode()
        )
        if args.payload:
            payload, _ = await original_input(kafka, found)
            try:
                if args.payload == "-":
                    sys.stdout.buffer.write(payload)
                else:
                    with open(args.payload, "wb") as fh:
                        fh.write(payload)
            except OSError as exc:
                sys.stderr.write(f"{PROG}: error: cannot write {args.payload}: {exc.strerror or exc}\n")
                return 1
        return 0
    if not args.all and not args.article_ids:
        sys.stderr.write(f"{PROG}: error: name the dead letters to replay, or --all\n")
        return 2
    if args.article_ids:
        unknown = [a for a in args.article_ids if a not in letters]
        if unknown:
            sys.stderr.write(f"{PROG}: error: no dead letter for {', '.join(unknown)}\n")
            return 1
        chosen = {a: letters[a] for a in args.article_ids if matches(letters[a], args)}
        if left := [a for a in args.article_ids if a not in chosen]:
            sys.stderr.write(f"{PROG}: not replayed, not passing the filters: {', '.join(left)}\n")
    else:
        chosen = {k: r for k, r in letters.items() if matches(r, args)}
    if args.open:  # one whose article has come out since (a replay went through, a revision) is done
        done = await outcomes(kafka, chosen)
        if out_since := [f"{k} ({done[k]})" for k in chosen if done[k] != OPEN]:
            sys.stderr.write(f"{PROG}: not replayed, out since: {', '.join(out_since)}\n")
            chosen = {k: r for k, r in chosen.items() if done[k] == OPEN}
    sent, errors = await replay(kafka, chosen, args.dry_run)
    for error in errors:
        sys.stderr.write(f"{PROG}: cannot replay {error}\n")
    if args.dry_run:
        failed = {e.partition(":")[0] for e in errors}
        for article_id, record in chosen.items():
            if article_id not in failed:
                out.write(summary(article_id, record) + "\n")
    verb = "would send" if args.dry_run else "sent"
    sys.stderr.write(f"{PROG}: {verb} {sent} of {len(chosen)} to {kafka.topic_raw}\n")
    return 1 if errors else 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    (kafka,) = load_settings_or_exit(PROG, KafkaSettings)
    try:
        return asyncio.run(run(args, kafka))
    except BrokenPipeError:
        return reader_gone()
    except (TimeoutError, KafkaError, ReplayError) as exc:
        sys.stderr.write(f"{PROG}: error: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
