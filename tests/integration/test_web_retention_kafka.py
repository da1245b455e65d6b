"""The stories view's retention against the real broker: it deletes only once it has read what waits."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import rfc3339
from newsflow.settings import KafkaSettings
from newsflow.web import service
from newsflow.web.store import StoryStore


def _at(days_ago: float) -> str:
    return rfc3339(datetime.now(UTC) - timedelta(days=days_ago))


def _article(article_id: str, story_id: str, days_ago: float) -> dict[str, Any]:
    return {
        "article_id": article_id,
        "story_id": story_id,
        "source": {"outlet": "wire.example"},
        "title": f"title of {article_id}",
        "processed_at": _at(days_ago),
        "entities": [],
    }


def _story(story_id: str, members: list[str], days_ago: float) -> dict[str, Any]:
    return {
        "story_id": story_id,
        "headline": f"headline of {story_id}",
        "last_seen": _at(days_ago),
        "version": len(members),
        "member_count": len(members),
        "members": members,
        "outlets": ["wire.example"],
        "updated_at": _at(days_ago),
        "status": "open",
    }


def test_the_view_deletes_old_stories_only_after_reading_the_backlog(kafka: KafkaSettings, tmp_path: Path):
    store = StoryStore(tmp_path / "view.db")
    # What the view had folded before it stopped: two stories last updated 31 days ago.
    store.apply(
        [
            ("enriched", _article("s1", "S", 31)),
            ("story", _story("S", ["s1"], 31)),
            ("enriched", _article("t1", "T", 31)),
            ("story", _story("T", ["t1"], 31)),
        ]
    )

    async def scenario() -> None:
        # Meanwhile S got a new member yesterday: its record waits in the topics.
        producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(
                kafka.topic_enriched, jsonio.dumps(_article("s2", "S", 1)), key=b"s2"
            )
            await producer.send_and_wait(
                kafka.topic_stories, jsonio.dumps(_story("S", ["s1", "s2"], 1)), key=b"S"
            )
        finally:
            await producer.stop()
        follower = service.Follower(
            kafka, store, *service.follow_metrics(CollectorRegistry()), retention_days=30
        )
        following = asyncio.ensure_future(follower.run())
        try:
            await asyncio.wait_for(follower.caught_up.wait(), 60)
            for _ in range(100):  # the prune runs at the loop's next turn
                if follower.pruned >= 0:
                    break
                await asyncio.sleep(0.1)
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following

    asyncio.run(scenario())
    assert store.story("T") is None and store.article("t1") is None  # it did delete
    story = store.story("S")  # updated yesterday, as the backlog said: kept whole
    assert story is not None and [m["article_id"] for m in story["members"]] == ["s1", "s2"]
    store.close()
