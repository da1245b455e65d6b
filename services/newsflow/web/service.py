"""newsflow-web: the stories view, an API and a live web page over the pipeline's output topics.

    newsflow-web                      # http://127.0.0.1:8080/ (NEWSFLOW_WEB_PORT)

A service of its own rather than views inside the worker: it reads the enriched and stories
topics as any consumer does (read_committed, no consumer group) into an SQLite database
(web/store.py), so it scales and restarts apart from the pipeline and cannot slow it down; it
resumes from the offsets it stored. Endpoints (documented in web/openapi.json, served at
/api/openapi.json): GET /api/stories, /api/stories/{id}, /api/articles/{id}, /api/entities, and
the pages / and /stories/{id}; /healthz and /metrics for operators. Ctrl-C or SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sqlite3
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from importlib import resources
from urllib.parse import urlencode

from aiohttp import web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

from newsflow.logs import configure as configure_logging
from newsflow.logs import escape_controls, limit_repeats
from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import parse_datetime, rfc3339
from newsflow.registry import service_registry
from newsflow.settings import CommandLine, KafkaSettings, LogSettings, env_help, load_settings_or_exit
from newsflow.web import pages
from newsflow.web.settings import WebSettings
from newsflow.web.store import BadQuery, StoryQuery, StoryStore

PROG = "newsflow-web"
BATCH_RECORDS = 200
# A consumer whose broker went away returns no records rather than an error: the view asks for the
# end offsets this often, within CHECK_TIMEOUT_SECONDS, and counts a failure if it gets none.
CHECK_SECONDS = 30.0
CHECK_TIMEOUT_SECONDS = 10.0
# How often the view deletes what its retention lets go, and how many articles at a time.
PRUNE_SECONDS = 3600.0
PRUNE_BATCH = 500
# Served with every response: no script but the page's own, no framing, no type sniffing.
SECURITY_HEADERS = {
    "Content-Security-Policy": f"default-src 'self'; script-src '{pages.SCRIPT_HASH}'; "
    "style-src 'unsafe-inline'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
# Query parameters of the story list that the page's links carry along.
LIST_PARAMETERS = ("since", "until", "entity", "outlet", "lang", "min_outlets", "limit")
log = logging.getLogger("newsflow.web")


class Follower:
    """Folds the enriched and stories topics into the store, from where it stopped, and deletes
    from it what was not written for `retention_days` (0: nothing), every PRUNE_SECONDS."""

    def __init__(
        self,
        kafka: KafkaSettings,
        store: StoryStore,
        applied: Counter,
        failures: Counter,
        pruned: Counter,
        retention_days: float = 0.0,
    ) -> None:
        self.kafka = kafka
        self.store = store
        self.retention_days = retention_days
        self.pruned = -PRUNE_SECONDS  # once caught up, then every PRUNE_SECONDS
        self.applied = applied
        self.pruned_articles = pruned
        self.failures = failures  # the view serves what it has meanwhile: this says it is going stale
        self.kinds = {kafka.topic_enriched: "enriched", kafka.topic_stories: "story"}
        self.caught_up = asyncio.Event()
        self.last_batch = 0.0

    async def run(self) -> None:
        while True:
            try:
                await self._follow()
            except asyncio.CancelledError:
                raise
            except LookupError as exc:  # expected before the pipeline has made its topics
                self.failures.inc()  # (and a sign of trouble if it lasts: a deleted topic, ACLs)
                log.info("%s; again in 5s", exc)
                await asyncio.sleep(5.0)
            except Exception as exc:  # noqa: BLE001 - the view keeps serving what it has
                self.failures.inc()
                log.warning("reading the output topics failed (%r); again in 5s", exc)
                await asyncio.sleep(5.0)

    async def _follow(self) -> None:
        from newsflow.topics import committed_reader, topic_partitions

        consumer = committed_reader(self.kafka)
        try:
            await consumer.start()
            tps = []
            for topic in self.kinds:
                found = await topic_partitions(consumer, topic)
                if not found:
                    raise LookupError(f"topic {topic} does not exist yet")
                tps += found
            consumer.assign(tps)
            stored = self.store.offsets()
            for tp in tps:
                if (tp.topic, tp.partition) in stored:
                    consumer.seek(tp, stored[(tp.topic, tp.partition)])
                else:
                    await consumer.seek_to_beginning(tp)
            ends = await consumer.end_offsets(tps)
            checked, synced = time.monotonic(), False
            while True:
                if time.monotonic() - checked > CHECK_SECONDS:
                    # Counted here, the consumer kept: it reconnects by itself once the broker is back.
                    try:
                        await asyncio.wait_for(consumer.end_offsets(tps), CHECK_TIMEOUT_SECONDS)
                    except (TimeoutError, KafkaError) as exc:
                        self.failures.inc()
                        log.warning("the broker did not answer for the output topics' end offsets (%r)", exc)
                    checked = time.monotonic()
                # Not before this reading has caught up (again, after an outage): a story's newer
                # record may wait in the backlog.
                if synced and time.monotonic() - self.pruned >= PRUNE_SECONDS:
                    await self.prune()
                # Small batches: folding runs on the event loop, between the API's requests.
                batches = await consumer.getmany(timeout_ms=1000, max_records=BATCH_RECORDS)
                records, offsets = [], {}
                for tp, messages in batches.items():
                    for m in messages:
                        try:
                            record = jsonio.loads(m.value) if m.value is not None else None
                        except ValueError:
                            continue  # not a record of ours
                        records.append((self.kinds[tp.topic], record))
                        offsets[(tp.topic, tp.partition)] = m.offset + 1
                if records or offsets:
                    self.applied.inc(self.store.apply(records, offsets))
                    self.last_batch = time.time()
                    await asyncio.sleep(0)  # let waiting requests in before the next batch
                if not synced and all([await consumer.position(tp) >= end for tp, end in ends.items()]):
                    synced = True
                    if not self.caught_up.is_set():
                        self.caught_up.set()
                        log.info("caught up with the output topics: %s", self.store.counts())
        finally:
            await consumer.stop()

    async def prune(self) -> int:
        """Delete what the retention lets go, in batches between the API's requests; return how
        many articles went."""
        self.pruned = time.monotonic()
        if self.retention_days <= 0:
            return 0
        before = rfc3339(datetime.now(UTC) - timedelta(days=self.retention_days))
        total, cursor = self.store.prune(before, PRUNE_BATCH)
        while cursor is not None:
            await asyncio.sleep(0)
            n, cursor = self.store.prune(before, PRUNE_BATCH, cursor)
            total += n
        if total:
            self.pruned_articles.inc(total)
            log.info("deleted %d articles not written since %s (NEWSFLOW_WEB_RETENTION_DAYS)", total, before)
        return total


def rfc3339_or_none(ts: float) -> str | None:
    return rfc3339(datetime.fromtimestamp(ts, UTC)) if ts else None


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadQuery(f"{name} must be an integer, not {raw!r}") from None


def _time(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    if not raw:
        return None
    when = parse_datetime(raw)
    if when is None:
        raise BadQuery(f"{name} must be an ISO 8601 time, not {raw!r}")
    if name == "since" and when.microsecond:
        # Stories hold whole seconds: a story of 10:00:49 is before since=10:00:49.5.
        when = when.replace(microsecond=0) + timedelta(seconds=1)
    return rfc3339(when)


def story_query(request: web.Request, default_limit: int = 50) -> StoryQuery:
    """Return the story-list query of a request's parameters; BadQuery for any it cannot take."""
    known = {*LIST_PARAMETERS, "cursor"}
    unknown = sorted(set(request.query) - known - {"fragment"})
    if unknown:
        raise BadQuery(f"unknown parameter {unknown[0]!r} (known: {', '.join(sorted(known))})")
    # The store checks the values' ranges.
    return StoryQuery(
        since=_time(request, "since"),
        until=_time(request, "until"),
        entity=request.query.get("entity") or None,
        outlet=request.query.get("outlet") or None,
        lang=request.query.get("lang") or None,
        min_outlets=_int(request, "min_outlets", 1),
        limit=_int(request, "limit", default_limit),
        cursor=request.query.get("cursor") or None,
    )


def build_app(
    store: StoryStore, registry: CollectorRegistry | None = None, follower: Follower | None = None
) -> web.Application:
    """Return the HTTP application over a store (the follower, if given, fills it separately)."""
    registry = registry or CollectorRegistry()
    latency = Histogram(
        "newsflow_web_request_seconds",
        "time to answer a request, by route",
        ["route"],
        registry=registry,
        buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
    )

    @web.middleware
    async def timed(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        started = time.perf_counter()
        page = not request.path.startswith("/api/")
        try:
            response = await handler(request)
        except BadQuery as exc:
            response = (
                web.Response(text=pages.bad_request(str(exc)), status=400, content_type="text/html")
                if page
                else _error(400, str(exc))
            )
        except web.HTTPException as exc:
            if page or exc.status < 400:
                raise
            response = _error(exc.status, exc.reason)  # the API answers in JSON, an unknown path too
        except Exception:  # noqa: BLE001 - an answer, not a dropped connection
            log.exception("%s %s failed", request.method, request.path_qs)
            response = _error(500, "internal error (logged)")
        finally:
            route = (
                request.match_info.route.resource.canonical if request.match_info.route.resource else "other"
            )
            latency.labels(route).observe(time.perf_counter() - started)
        response.headers.update(SECURITY_HEADERS)
        return response

    async def list_stories(request: web.Request) -> web.Response:
        page, cursor = store.stories(story_query(request))
        return web.json_response({"stories": page, "next_cursor": cursor})

    async def get_story(request: web.Request) -> web.Response:
        story = store.story(request.match_info["story_id"])
        return web.json_response(story) if story else _error(404, "no such story")

    async def get_article(request: web.Request) -> web.Response:
        article = store.article(request.match_info["article_id"])
        return web.json_response(article) if article else _error(404, "no such article")

    async def list_entities(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - {"q", "limit"})
        if unknown:
            raise BadQuery(f"unknown parameter {unknown[0]!r} (known: limit, q)")
        return web.json_response(
            {"entities": store.entities(request.query.get("q", ""), _int(request, "limit", 50))}
        )

    async def openapi(_: web.Request) -> web.Response:
        body = (resources.files("newsflow.web") / "openapi.json").read_bytes()
        return web.Response(body=body, content_type="application/json")

    async def front(request: web.Request) -> web.Response:
        query = story_query(request)
        page, cursor = store.stories(query)
        filters = {k: v for k, v in request.query.items() if k in LIST_PARAMETERS and v}
        # The list refreshes itself only on the first page: an older page stays as it was read.
        src = None if query.cursor else "/?" + urlencode({**filters, "fragment": "1"})
        next_url = "/?" + urlencode({**filters, "cursor": cursor}) if cursor else None
        if request.query.get("fragment"):
            return web.Response(text=pages.story_list(page, src, next_url), content_type="text/html")
        return web.Response(text=pages.front_page(page, filters, src, next_url), content_type="text/html")

    async def story_page(request: web.Request) -> web.Response:
        story = store.story(request.match_info["story_id"])
        if story is None:
            return web.Response(text=pages.not_found("Story"), status=404, content_type="text/html")
        texts = {}
        for m in story["members"]:
            record = store.article(m["article_id"]) or {}
            texts[m["article_id"]] = str(record.get("description") or record.get("text") or "")
        return web.Response(text=pages.story_page(story, texts), content_type="text/html")

    async def healthz(_: web.Request) -> web.Response:
        status: dict[str, object] = {"status": "ok", **store.counts(), "skipped_records": store.skipped}
        if follower is not None:
            # Serving, whatever the topics do; a view that has not caught up says so.
            status["caught_up"] = follower.caught_up.is_set()
            status["last_batch_at"] = rfc3339_or_none(follower.last_batch)
        return web.json_response(status)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(middlewares=[timed])
    app.router.add_get("/api/stories", list_stories)
    app.router.add_get("/api/stories/{story_id}", get_story)
    app.router.add_get("/api/articles/{article_id}", get_article)
    app.router.add_get("/api/entities", list_entities)
    app.router.add_get("/api/openapi.json", openapi)
    app.router.add_get("/", front)
    app.router.add_get("/stories/{story_id}", story_page)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


def follow_metrics(registry: CollectorRegistry) -> tuple[Counter, Counter, Counter]:
    """Return the follower's counters: records folded into the view, failures to read them, and
    articles its retention deleted."""
    applied = Counter("newsflow_web_records", "output records folded into the view", registry=registry)
    failures = Counter(
        "newsflow_web_follow_failures",
        "times reading the output topics failed (tried again after 5 s; the view serves what it has)",
        registry=registry,
    )
    pruned = Counter(
        "newsflow_web_pruned_articles",
        "articles the view deleted as older than its retention (NEWSFLOW_WEB_RETENTION_DAYS)",
        registry=registry,
    )
    return applied, failures, pruned


async def serve(kafka: KafkaSettings, settings: WebSettings, store: StoryStore) -> None:
    registry = service_registry()
    follower = Follower(kafka, store, *follow_metrics(registry), settings.retention_days)
    runner = web.AppRunner(build_app(store, registry, follower), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info(
        "stories view on http://%s:%d/ (API /api/stories), reading %s",
        settings.host,
        settings.port,
        kafka.bootstrap,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(follower.run())
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await runner.cleanup()
        store.close()


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2] + "\n\n" + env_help(WebSettings, KafkaSettings, LogSettings),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.parse_args(argv)
    kafka, settings, log_settings = load_settings_or_exit(PROG, KafkaSettings, WebSettings, LogSettings)
    configure_logging(log_settings.level)
    limit_repeats()
    escape_controls()
    try:
        store = StoryStore(settings.db)
    except (OSError, sqlite3.Error) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        sys.stderr.write(
            f"{PROG}: error: NEWSFLOW_WEB_DB: cannot open {settings.db} as the view's database: {why}\n"
        )
        return 2
    try:
        asyncio.run(serve(kafka, settings, store))
    except OSError as exc:
        sys.stderr.write(f"{PROG}: error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
