"""HTTP ingest for systems that push: POST /articles, GET /healthz, GET /metrics.

POST /articles   one JSON envelope {url, outlet, html|text, title, published, authors}, or an array
                 -> 200 {"article_ids": [...]} once the broker has acknowledged every one
                 -> 400 with a message naming the first bad envelope (nothing is sent then)
                 -> 413 past NEWSFLOW_PRODUCER_HTTP_MAX_BODY_BYTES, or for an envelope over
                    NEWSFLOW_PRODUCER_MAX_FILE_BYTES (the limit of a file; nothing is sent then)
                 -> 503 while Kafka cannot be reached: the articles may or may not have gone out;
                    sending the same envelopes again is safe (the same envelope is the same
                    article id, which the pipeline enriches once)
"""

from __future__ import annotations

import asyncio
import logging
from typing import NamedTuple

from aiohttp import ClientPayloadError, web
from aiokafka.errors import KafkaError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from newsflow.pipeline import jsonio
from newsflow.pipeline.records import RawArticle
from newsflow.producer.publish import Publisher
from newsflow.producer.sources import Skipped, envelope_article

log = logging.getLogger("newsflow.producer.http")

# How long a request waits for the broker's acknowledgements before answering 503.
SEND_TIMEOUT_SECONDS = 15.0
# How long a request's body may take to arrive (a stalled client is answered 408).
BODY_TIMEOUT_SECONDS = 30.0
# At a stop, how long requests in flight have to finish before their connections are closed.
SHUTDOWN_SECONDS = 3.0


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


class Refusal(NamedTuple):
    status: int
    reason: str
    message: str


def _articles_of(body: bytes, max_article_bytes: int) -> list[RawArticle] | Refusal:
    """Return the articles of a POST body (an envelope or an array of them), or why it is refused
    (nothing is sent of a body with one bad envelope)."""
    try:
        parsed = jsonio.loads(body)
    except ValueError as exc:
        return Refusal(400, "bad_envelope", f"body is not JSON: {exc}")
    envelopes = parsed if isinstance(parsed, list) else [parsed]
    if not envelopes:
        return Refusal(400, "bad_envelope", "an empty array holds no article")
    items = []
    for n, envelope in enumerate(envelopes):
        item = envelope_article(jsonio.dumps(envelope), f"POST /articles[{n}]", None)
        if isinstance(item, Skipped):
            return Refusal(400, "bad_envelope", f"article {n}: {item.detail}")
        if len(item.payload) > max_article_bytes:
            # As a file of that size would be: Kafka may refuse it, which no retry changes.
            return Refusal(
                413, "too_large", f"article {n}: {len(item.payload)} bytes, over {max_article_bytes}"
            )
        items.append(item)
    return items


def create_app(
    publisher: Publisher, registry: CollectorRegistry, max_body_bytes: int, max_article_bytes: int
) -> web.Application:
    """Return the aiohttp application (the caller runs it next to the publisher)."""

    def refused(status: int, reason: str, message: str) -> web.Response:
        """A request refused, counted (outcome "refused") and logged with its reason."""
        publisher.refuse(reason, f"{status} {message}")
        return _error(status, message)

    async def post_articles(request: web.Request) -> web.Response:
        if request.content_length is not None and request.content_length > max_body_bytes:
            return refused(413, "too_large", f"body over {max_body_bytes} bytes")
        try:
            body = await asyncio.wait_for(request.read(), BODY_TIMEOUT_SECONDS)
        except web.HTTPRequestEntityTooLarge:
            return refused(413, "too_large", f"body over {max_body_bytes} bytes")
        except TimeoutError:
            return refused(408, "slow_body", f"the body did not arrive within {BODY_TIMEOUT_SECONDS:.0f}s")
        except (
            web.RequestPayloadError,
            ClientPayloadError,
        ) as exc:  # a Content-Encoding it is not in, cut short
            return refused(400, "bad_body", f"body unreadable: {exc}")
        # Parsed beside the event loop: a body of many envelopes takes seconds, during which
        # /healthz and the sends of other requests would wait.
        read = await asyncio.to_thread(_articles_of, body, max_article_bytes)
        if isinstance(read, Refusal):
            return refused(*read)
        items = read

        async def send_all() -> list[bool]:
            outcomes = [await publisher.publish(item) for item in items]
            return list(await asyncio.gather(*(o for o in outcomes if o is not None)))

        try:
            delivered = await asyncio.wait_for(send_all(), SEND_TIMEOUT_SECONDS)
        except (TimeoutError, KafkaError) as exc:
            # Counted as send errors too: the alert on failing sends is how an operator hears of
            # an outage while input comes in.
            publisher.metrics.send_errors.inc(len(items))
            return refused(503, "unavailable", f"Kafka is unavailable; retry later ({exc!r})"[:300])
        if not all(delivered):
            return _error(503, "Kafka refused the articles; retry later")  # counted as failed sends
        return web.json_response({"article_ids": [item.article_id for item in items]})

    async def healthz(_: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(publisher.producer.client.fetch_all_metadata(), 5)
        except (TimeoutError, KafkaError, OSError) as exc:
            return _error(503, f"Kafka unavailable: {exc!r}")
        return web.json_response({"status": "ok"})

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post("/articles", post_articles)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    return app


async def serve(
    publisher: Publisher,
    registry: CollectorRegistry,
    host: str,
    port: int,
    max_body_bytes: int,
    max_article_bytes: int,
    stop: asyncio.Event,
) -> None:
    """Serve on `host`:`port` until `stop` is set."""
    runner = web.AppRunner(
        create_app(publisher, registry, max_body_bytes, max_article_bytes),
        access_log=None,
        shutdown_timeout=SHUTDOWN_SECONDS,
    )
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    log.info("HTTP ingest on %s:%d: POST /articles, GET /healthz, GET /metrics", host, port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
