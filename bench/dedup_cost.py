"""State size and lookup latency of the dedup index at growing sizes (synthetic articles).

    python bench/dedup_cost.py [--sizes 10000 100000] [--story-size K] [--record]

Each synthetic article has the shape of a real one (15 weighted terms from a 50k-word vocabulary,
10 entities from a 20k-name pool, 64-value MinHash, a few quote shingles, a 384-dimension
embedding) and its own story, all inside one window (with `--story-size K`, every K consecutive
articles are one story: what its members cost, among them the member logs splits read). Reported: serialized state per article (the
state topic value) and the process memory per article, and p50/p99 of `StoryIndex.assign`
measured on 1,000 further articles after the index is filled. Baseline: a linear scan over the
same stories (on the first 2,000), which is what the inverted index and LSH avoid.

The fill decides the first 2,000 articles with `assign` (each starts its own story, which is
checked) and indexes the rest with `restore` under that same decision: the index ends in the
same state, without paying a lookup per filled article.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from bench.common import local_broker, publish, rss_mib  # noqa: E402
from newsflow.pipeline import jsonio  # noqa: E402
from newsflow.pipeline.dedup import DedupOptions, StoryIndex, story_similarity  # noqa: E402
from newsflow.pipeline.desk import DedupDesk  # noqa: E402
from newsflow.pipeline.embed import DIM, quantize  # noqa: E402
from newsflow.pipeline.features import NUM_PERM, StoryFeatures  # noqa: E402
from newsflow.pipeline.records import StoryAssignment, assignment_dict  # noqa: E402
from newsflow.topics import create_topics, topic_specs  # noqa: E402


def synthetic(i: int, rng: random.Random) -> StoryFeatures:
    # Weights rounded as `article_features` rounds them.
    terms = {f"w{rng.randrange(50_000)}": round(rng.random(), 3) for _ in range(15)}
    ents = {f"e{rng.randrange(20_000)}": round(rng.random(), 3) for _ in range(10)}
    vector = np.random.default_rng(i).standard_normal(DIM)
    return StoryFeatures(
        article_id=f"a{i}",
        outlet=f"o{i % 50}",
        # Five articles a second (a large firehose): 1M articles span 56 hours, inside the 72-hour
        # window, so nothing expires and the index really holds every article.
        timestamp=1_741_000_000 + i / 5,
        title=f"headline {i}",
        terms=terms,
        entities=ents,
        quotes=frozenset(rng.getrandbits(32) for _ in range(6)),
        signature=tuple(int(x) for x in np.random.default_rng(i).integers(0, 2**32, NUM_PERM)),
        shingle_count=400,
        embedding=quantize(vector / np.linalg.norm(vector)),
    )


def new_story(f: StoryFeatures) -> StoryAssignment:
    return StoryAssignment(f"s-{f.article_id}", None, None, None, True)


def story_of(i: int, f: StoryFeatures, size: int) -> StoryAssignment:
    """The i-th article's place when every `size` consecutive articles are one story."""
    if i % size == 0:
        return new_story(f)
    return StoryAssignment(f"s-a{i - i % size}", None, None, 0.9, False)


def measure(n: int, story_size: int = 1) -> tuple[float, float, float, float]:
    rng = random.Random(n)
    index = StoryIndex()
    before = rss_mib()
    state_bytes = 0
    for i in range(n):
        f = synthetic(i, rng)
        if i < 2000:
            a = index.assign(f)
            assert a == new_story(f), a
            state_bytes += len(
                jsonio.dumps({"seq": i, "features": f.as_dict(), "assignment": assignment_dict(a)})
            )
        else:
            index.restore(f, story_of(i, f, story_size))
    mem_per_article = (rss_mib() - before) * 1024 * 1024 / n
    assert len(index) == n, f"{n - len(index)} articles expired: the sizes would be wrong"
    lat = []
    for i in range(n, n + 1000):
        f = synthetic(i, rng)
        t = time.perf_counter()
        index.assign(f)
        lat.append(time.perf_counter() - t)
    lat.sort()
    return state_bytes / min(n, 2000), mem_per_article, lat[500] * 1000, lat[989] * 1000


def state_records(n: int) -> Iterator[tuple[bytes, bytes]]:
    """The dedup state topic's records for `n` synthetic articles, each its own story."""
    rng = random.Random(n)
    for i in range(n):
        f = synthetic(i, rng)
        value = {"features": f.as_dict(), "assignment": assignment_dict(new_story(f))}
        yield f"a/{f.article_id}".encode(), jsonio.dumps(value)


# Records written after the latest snapshot, in the restart measurement.
TAIL = 1000


def restart_seconds(n: int, workdir: Path) -> dict[str, float]:
    """Time a writer's restart with `n` articles indexed: replaying the state topic, and the latest
    snapshot plus the TAIL records written after it.

    The records go to a topic on a broker of the bench's own, with the marker record a snapshot
    leaves between the first `n` and the last TAIL; the writer's own code reads them back
    (read_committed) and rebuilds its desk, once by replaying everything, once from the snapshot;
    then the writer is given its partition back by a rebalance with nothing written since, and
    keeps its desk.
    """
    import os

    from aiokafka import AIOKafkaProducer

    from newsflow.settings import KafkaSettings
    from newsflow.worker.replica import read_to_end
    from newsflow.worker.snapshot import Snapshots, marker_key
    from newsflow.worker.writer import TransactionalWriter

    times: dict[str, float] = {}
    with local_broker() as bootstrap:
        kafka = KafkaSettings(bootstrap=bootstrap)
        snapshots = Snapshots(workdir / "dedup.snapshot", 1, kafka.topic_dedup_state)
        marker = "bench"

        async def fill() -> None:
            state = [
                t for t in topic_specs(kafka) if t.name in (kafka.topic_dedup_state, kafka.topic_boilerplate)
            ]
            await create_topics(kafka, state)
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=50, max_batch_size=1 << 20)
            await producer.start()
            try:
                records = list(state_records(n + TAIL))
                records.insert(n, (marker_key(marker), jsonio.dumps({"snapshot": marker})))
                pending = [await producer.send(kafka.topic_dedup_state, v, key=k) for k, v in records]
                await asyncio.gather(*pending)
            finally:
                await producer.stop()

        asyncio.run(fill())
        started = time.perf_counter()
        entries = asyncio.run(read_to_end(kafka, kafka.topic_dedup_state))
        times["read"] = time.perf_counter() - started
        started = time.perf_counter()
        desk = DedupDesk.from_state(entries[:n])
        times["replay"] = time.perf_counter() - started
        # The snapshot a writer takes after the marker's transaction (offset n; the next is n + 1).
        started = time.perf_counter()
        snapshots._pending = marker
        snapshots.take(desk, n, n + 1)
        if snapshots._child is not None:
            os.waitpid(snapshots._child[0], 0)
        times["write"] = time.perf_counter() - started
        times["size_mb"] = snapshots.path.stat().st_size / 1e6 if snapshots.path else 0.0
        started = time.perf_counter()
        desk.replay(entries[n + 1 :])
        times["replay"] += time.perf_counter() - started
        assert len(desk.index) == n + TAIL
        del desk, entries

        writer = TransactionalWriter(kafka, "bench", DedupOptions(), snapshots=snapshots)
        started = time.perf_counter()
        restored, source = asyncio.run(writer._rebuild())
        times["snapshot"] = time.perf_counter() - started
        assert source.startswith("a snapshot and 1000 records"), source
        assert len(restored.index) == n + TAIL

        async def given_back() -> float:
            """A rebalance gives the writer its partition back, nothing written since: it starts a
            new producer (fencing the last) and keeps its desk after a check of the topics' ends."""
            writer.desk, writer._desk_ends = restored, await writer._ends()
            writer.mark_stale()
            started = time.perf_counter()
            try:
                await writer._ready()
                assert writer.desk is restored
                return time.perf_counter() - started
            finally:
                await writer.stop()

        times["given_back"] = asyncio.run(given_back())
    return times


def linear_scan_ms(n: int = 2000) -> float:
    rng = random.Random(0)
    index = StoryIndex()
    for i in range(n):
        f = synthetic(i, rng)
        index.restore(f, new_story(f))
    f = synthetic(n + 1, rng)
    t = time.perf_counter()
    for story in index.stories.values():
        story_similarity(f, story)
    return (time.perf_counter() - t) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument(
        "--restart",
        type=int,
        nargs="*",
        default=[],
        help="sizes at which to time a writer's rebuild from Kafka",
    )
    parser.add_argument("--story-size", type=int, default=1, help="articles per story (default 1)")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()
    rows = [
        "| indexed articles | state bytes/article (state topic value, JSON) | memory bytes/article | assign p50 ms | assign p99 ms |",
        "|---|---|---|---|---|",
    ]
    for n in args.sizes:
        state, mem, p50, p99 = measure(n, args.story_size)
        rows.append(f"| {n:,} | {state:,.0f} | {mem:,.0f} | {p50:.2f} | {p99:.2f} |")
        print(rows[-1], flush=True)
    scan = linear_scan_ms()
    rows += ["", f"baseline: linear scan of 2,000 stories per lookup {scan:.1f} ms"]
    if args.restart:
        rows += [
            "",
            f"| indexed articles | replay the state topic: read + rebuild (s) | snapshot + {TAIL:,} records after it (s) "
            "| ratio | writing the snapshot (s, in a child process) | snapshot size (MB) "
            "| given its partition back, nothing written since (s) |",
            "|---|---|---|---|---|---|---|",
        ]
    for n in args.restart:
        with tempfile.TemporaryDirectory() as workdir:
            t = restart_seconds(n, Path(workdir))
        replay = t["read"] + t["replay"]
        rows.append(
            f"| {n:,} | {t['read']:.1f} + {t['replay']:.1f} = {replay:.1f} | {t['snapshot']:.1f} "
            f"| {replay / t['snapshot']:.1f}x | {t['write']:.1f} | {t['size_mb']:,.0f} | {t['given_back']:.2f} |"
        )
        print(rows[-1], flush=True)
    if args.story_size > 1:
        rows += ["", f"{args.story_size} articles per story"]
    report = "\n".join(rows)
    publish("Dedup state and lookup cost", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
