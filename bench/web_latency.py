"""Latency and memory of the stories view (newsflow-web) with many stories loaded.

    python bench/web_latency.py [--articles 100000 --stories 20000] [--requests 500] [--record]

Builds the view's SQLite database from synthetic enriched and story records (articles spread over
stories with a long tail, 200 outlets, 8 entities per article from a 20k-key pool, 1.5 kB of text),
in a child process, then serves it with the real aiohttp app and times requests over loopback:
the story list (plain, filtered by entity, outlet, language, paged by cursor), a story, an article,
entities by prefix and the front page with 50 stories. Baseline: /healthz in the same run (the
HTTP floor of this machine). Memory: the serving process's RSS growth while it answers, per article
stored (the view keeps records on disk; its page cache is bounded at ~32 MB).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import random
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import record, rss_mib  # noqa: E402
from newsflow.web.service import PRUNE_BATCH  # noqa: E402

OUTLETS = [f"outlet{i:03d}.example" for i in range(200)]
LANGS = ["en"] * 8 + ["de", "fr"]


def build(path: str, articles: int, stories: int, seed: int = 7) -> None:
    from newsflow.web.store import StoryStore

    rng = random.Random(seed)
    store = StoryStore(path)
    text = " ".join(f"word{rng.randrange(5000)}" for _ in range(180))
    # A long tail: most stories have one or two articles, a few have hundreds.
    weights = [1.0 / (k + 1) ** 0.8 for k in range(stories)]
    owners = rng.choices(range(stories), weights=weights, k=articles - stories) + list(range(stories))
    members: dict[int, list[str]] = {}
    batch: list[tuple[str, dict[str, Any] | None]] = []
    for n, owner in enumerate(owners):
        article_id = f"a{n:07d}"
        story_id = f"s{owner:06d}"
        minute = n * 72 * 60 // articles
        when = f"2026-11-{1 + minute // 1440:02d}T{minute // 60 % 24:02d}:{minute % 60:02d}:00Z"
        keys = [f"entity {rng.randrange(20_000)}" for _ in range(8)]
        members.setdefault(owner, []).append(article_id)
        batch.append(
            (
                "enriched",
                {
                    "article_id": article_id,
                    "story_id": story_id,
                    "source": {"outlet": rng.choice(OUTLETS)},
                    "title": f"Title {n}",
                    "url": f"https://example.com/{n}",
                    "published": when,
                    "language": {"code": rng.choice(LANGS), "confidence": 0.99},
                    "description": None,
                    "text": text,
                    "duplicate_of": None,
                    "processed_at": when,
                    "entities": [{"key": k, "name": k.title(), "label": "ORG"} for k in keys],
                },
            )
        )
        ids = members[owner]
        batch.append(
            (
                "story",
                {
                    "story_id": story_id,
                    "headline": f"Headline of story {owner}",
                    "first_seen": when if len(ids) == 1 else None,
                    "last_seen": when,
                    "version": len(ids),
                    "member_count": len(ids),
                    "members": ids[:100],
                    "outlets": sorted({OUTLETS[(owner + i) % 200] for i in range(min(len(ids), 5))}),
                    "top_entities": keys[:5],
                    "updated_at": when,
                    "status": "open",
                },
            )
        )
        if len(batch) >= 20_000:
            store.apply(batch)
            batch = []
    store.apply(batch)
    store.close()


async def measure(path: str, articles: int, requests: int) -> tuple[list[tuple[str, float, float]], int]:
    from aiohttp import ClientSession
    from aiohttp.test_utils import TestServer

    from newsflow.web.service import build_app
    from newsflow.web.store import StoryStore

    before = rss_mib()
    store = StoryStore(path)
    rng = random.Random(11)
    # A plain session (the test client keeps every response until it closes).
    async with TestServer(build_app(store)) as server, ClientSession(str(server.make_url(""))) as client:
        first = (await (await client.get("/api/stories", params={"limit": "50"})).json())["next_cursor"]
        cases: dict[str, Any] = {
            "GET /healthz (baseline)": lambda: ("/healthz", {}),
            "GET /api/stories (50)": lambda: ("/api/stories", {"limit": "50"}),
            "GET /api/stories page 2 (cursor)": lambda: ("/api/stories", {"limit": "50", "cursor": first}),
            "GET /api/stories?entity=": lambda: (
                "/api/stories",
                {"entity": f"entity {rng.randrange(20000)}"},
            ),
            "GET /api/stories?outlet=": lambda: ("/api/stories", {"outlet": rng.choice(OUTLETS)}),
            "GET /api/stories?lang=de&min_outlets=2": lambda: (
                "/api/stories",
                {"lang": "de", "min_outlets": "2"},
            ),
            "GET /api/stories/{id}": lambda: (f"/api/stories/s{rng.randrange(2000):06d}", {}),
            "GET /api/articles/{id}": lambda: (f"/api/articles/a{rng.randrange(articles):07d}", {}),
            "GET /api/entities?q=": lambda: ("/api/entities", {"q": f"entity {rng.randrange(2000)}"}),
            "GET / (front page, 50 stories)": lambda: ("/", {}),
        }
        rows = []
        for name, make in cases.items():
            times = []
            for _ in range(requests):
                url, params = make()
                started = time.perf_counter()
                response = await client.get(url, params=params)
                await response.read()
                times.append(time.perf_counter() - started)
                assert response.status == 200, (name, response.status)
            times.sort()
            rows.append((name, statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000))
    grown = round(1024 * (rss_mib() - before))
    store.close()
    return rows, grown


def prune(path: str) -> tuple[int, list[float]]:
    """Delete what was not written in the built database's last 7.2 of 72 hours, as the view's
    retention does (every story gets its last member in the last fifth: `build`); return the
    articles deleted and each batch's seconds."""
    from newsflow.web.store import StoryStore

    store = StoryStore(path)
    deleted, batches, cursor = 0, [], None
    while not batches or cursor is not None:
        started = time.perf_counter()
        n, cursor = store.prune("2026-11-03T16:48:00Z", PRUNE_BATCH, cursor)
        batches.append(time.perf_counter() - started)
        deleted += n
    store.close()
    return deleted, batches


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=100_000)
    parser.add_argument("--stories", type=int, default=20_000)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "stories.sqlite3")
        started = time.perf_counter()
        child = multiprocessing.get_context("fork").Process(
            target=build, args=(path, args.articles, args.stories)
        )
        child.start()
        child.join()
        built = time.perf_counter() - started
        size = Path(path).stat().st_size
        rows, grown = asyncio.run(measure(path, args.articles, args.requests))
        pruned, batches = prune(path)
    floor = rows[0][2]
    lines = [
        f"{args.articles:,} articles, {args.stories:,} stories: built in {built:.0f} s "
        f"({args.articles / built:,.0f} articles/s folded), database {size / 1e6:.0f} MB "
        f"({size / args.articles / 1024:.1f} KB per article, on disk); serving RSS grew "
        f"{grown / 1024:.0f} MiB ({grown * 1024 / args.articles:.0f} B per article stored); "
        f"{args.requests} requests each, loopback, one process.",
        "",
        "| request | p50 ms | p99 ms | p99 / baseline p99 |",
        "|---|---|---|---|",
        *[f"| {name} | {p50:.2f} | {p99:.2f} | {p99 / floor:.1f}x |" for name, p50, p99 in rows],
        "",
        f"retention (`StoryStore.prune`, as the view runs it hourly): all but the last tenth of the time, "
        f"{pruned:,} articles and their stories, deleted in {len(batches)} batches of {PRUNE_BATCH:,}: "
        f"{max(batches) * 1000:.0f} ms at most each (the API waits that long), {sum(batches):.1f} s in all",
    ]
    body = "\n".join(lines)
    print(body)
    print(f"max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.record:
        record("Stories view latency (bench/web_latency.py)", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
