"""Throughput, latency and the profile of the whole chain, each against the libraries alone.

    python bench/throughput_bench.py ../shared/data [--size 300] [--record]

On a corpus built by bench/corpus.py (real pages, wire texts and their copies), one run measures:
  (a) the libraries alone, serial: trafilatura.extract (HTML) and spaCy NER-only `nlp.pipe`;
  (b) the worker's stage chain in one process: `Enricher` (clean, NER, dedup features), the
      features message, and the single writer's `DedupDesk.decide`, with each stage's share;
  (c) end to end through a real Kafka broker (its own, on a free port) with one worker;
  (d) two worker processes, on the many-outlet corpus and on the same files as one outlet (each
      against one worker on the same stream);
  (e) produce-to-enriched latency (p50/p99) of a steady stream at 50 % of (c)'s rate;
  (f) the worker's memory (RSS) over a stream at (c)'s rate for `--soak-seconds`, with a story
      window of `--soak-window-seconds` so that the index reaches its steady size within the run
      (the corpus again and again, its wire texts with new names each time);
  (g) each in-process stage's share of the time.
(b) runs three times: as the worker does, keeping the NER spans and embeddings of recent texts (a
page served again, a wire text carried verbatim is not computed again: see pipeline/recent.py);
with every text computed afresh; and with the embedding model in float32 rather than int8 (also
end to end, as a second (c)).
Every rate is also given as a ratio to (a), measured in the same run. Workers are warmed up
(models loaded, partitions assigned, a first batch through) before their timing starts, and
the broker by an untimed run of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import broker_pid, local_broker, publish, rss_mib  # noqa: E402
from bench.corpus import build  # noqa: E402
from newsflow.pipeline.options import EMBED_PRECISION  # noqa: E402
from newsflow.pipeline.recent import RECENT_INPUTS  # noqa: E402

BATCH = 32  # the worker's default batch
BESIDE_ROW = "NEWSFLOW_WORKER_COMPUTE_THREADS=2"


def raws_of(files: list[Path]) -> list:  # noqa: ANN001 - list of RawArticle
    from newsflow.pipeline.records import RawArticle
    from newsflow.producer.sources import read_article

    out = []
    for path in files:
        item = read_article(path.parent.parent, path)
        if isinstance(item, RawArticle):
            out.append(item)
    return out


def libraries_alone(raws: list) -> tuple[float, float, float]:  # noqa: ANN001
    """(a) Seconds for trafilatura + spaCy NER-only over the corpus, serially, and the CPU seconds
    they took; and the seconds the sentence-embedding model (the dedup stage's third model) adds
    on the same texts."""
    import trafilatura
    from threadpoolctl import threadpool_limits

    from newsflow.pipeline.embed import default_encoder
    from newsflow.pipeline.entities import load_ner_pipeline
    from newsflow.pipeline.options import NER_MAX_CHARS, NER_MODEL

    threadpool_limits(1)
    nlp = load_ner_pipeline(NER_MODEL)  # the NER component and what it reads, nothing else
    encoder = default_encoder()
    trafilatura.extract("<html><body><p>warm up</p></body></html>")
    started, cpu = time.perf_counter(), time.process_time()
    texts = []
    for raw in raws:
        if raw.source.content_type == "text/html":
            texts.append(trafilatura.extract(raw.payload.decode(errors="replace")) or "")
        else:
            texts.append(raw.payload.decode(errors="replace"))
    for _ in nlp.pipe((t[:NER_MAX_CHARS] for t in texts), batch_size=BATCH):
        pass
    libraries, cpu = time.perf_counter() - started, time.process_time() - cpu
    started = time.perf_counter()
    for text in texts:
        encoder.encode(text)
    return libraries, cpu, time.perf_counter() - started


def partition_counts(raws: list) -> list[int]:  # noqa: ANN001
    """How many of the articles each raw partition gets (the producer's key hash, as in Kafka)."""
    from aiokafka.partitioner import DefaultPartitioner

    from newsflow.settings import KafkaSettings

    partitions = list(range(KafkaSettings().raw_partitions))
    choose = DefaultPartitioner()
    counts = Counter(choose(r.article_id.encode(), partitions, partitions) for r in raws)
    return [counts[p] for p in partitions]


def stage_chain(
    raws: list,  # noqa: ANN001
    recent: int,
    precision: str = EMBED_PRECISION,
    threads: int = 1,
) -> tuple[float, float, dict[str, float], dict[str, int]]:
    """(b) Seconds for the worker's stages in one process, the CPU seconds they took, seconds per
    stage, and how many articles' NER spans and embeddings were those of a text seen lately
    (`recent` texts kept; 0: none), with the embedding model in `precision`, on `threads` threads
    (NEWSFLOW_WORKER_COMPUTE_THREADS: 2 runs the embeddings beside NER)."""
    from threadpoolctl import threadpool_limits

    from newsflow.pipeline.desk import DedupDesk, article_message
    from newsflow.pipeline.embed import TextEncoder
    from newsflow.pipeline.enrich import Enriched, Enricher
    from newsflow.pipeline.entities import EntityTagger
    from newsflow.pipeline.extract import warm_up
    from newsflow.pipeline.records import Origin

    threadpool_limits(1)  # as the worker (NEWSFLOW_WORKER_COMPUTE_THREADS)
    shares: dict[str, float] = defaultdict(float)

    features = [0.0]

    def timer(stage: str, seconds: float) -> None:
        if stage == "features":  # once per article (extract is timed here, entities per batch)
            features[0] += seconds

    tagger = EntityTagger(recent_texts=recent)
    encoder = TextEncoder.load(precision=precision, recent_texts=recent)
    enricher = Enricher(
        tagger=tagger, encoder=encoder, learn_boilerplate=False, on_stage_time=timer, threads=threads
    )
    warm_up()
    desk = DedupDesk()
    origin = Origin("raw", 0, 0)
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(raws), BATCH):
        batch = raws[start : start + BATCH]
        t0 = time.perf_counter()
        cleaned = [enricher.clean(r) for r in batch]
        t1 = time.perf_counter()
        before = features[0]
        results = enricher.finish(cleaned, time.time())
        t2 = time.perf_counter()
        messages = [article_message(r, 0, origin) for r in results if isinstance(r, Enriched)]
        t3 = time.perf_counter()
        for m in messages:
            desk.decide(m, origin)
        desk.learned()
        t4 = time.perf_counter()
        shares["extract + clean"] += t1 - t0
        shares["dedup features (embedding, MinHash)"] += features[0] - before
        shares["NER"] += (t2 - t1) - (features[0] - before)
        shares["features message (JSON)"] += t3 - t2
        shares["dedup decide"] += t4 - t3
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    enricher.close()
    return elapsed, cpu, dict(shares), enricher.reused()


@contextmanager
def workers(
    kafka, count: int, workdir: Path, app_id: str, env: dict[str, str] | None = None
) -> Iterator[list]:  # noqa: ANN001
    from tests.integration.kafka_helpers import start_worker

    procs = []
    try:
        for i in range(count):
            procs.append(start_worker(kafka, workdir / f"{app_id}-{i}.log", app_id, env or {}))
        yield procs
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=60)


class Outputs:
    """Reads the output topics read_committed; remembers when each key arrived."""

    def __init__(self, kafka) -> None:  # noqa: ANN001
        from tests.integration.crash import CommittedReader

        self.reader = CommittedReader(kafka)

    def __enter__(self) -> Outputs:
        self.reader.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.reader.__exit__(*exc)

    def arrived(self) -> dict[str, tuple[float, dict]]:
        with self.reader.collected.lock:
            return {k: (t, r) for t, _, k, r in self.reader.collected.records}

    def wait_for(self, keys: set[str], timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while not keys <= self.arrived().keys():
            if time.monotonic() > deadline:
                missing = len(keys - self.arrived().keys())
                raise TimeoutError(f"{missing} of {len(keys)} articles did not come out in {timeout:.0f}s")
            time.sleep(0.1)
        return max(self.arrived()[k][0] for k in keys)


def send(kafka, raws: list, rate: float | None = None) -> list[str]:  # noqa: ANN001
    """Send raw articles (received-at = when sent), as fast as possible or at `rate` per second."""
    from aiokafka import AIOKafkaProducer

    from newsflow.pipeline.records import raw_headers, utc_now_iso

    async def run() -> list[str]:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap,
            acks="all",
            max_request_size=kafka.max_message_bytes,
            linger_ms=5,
        )
        await producer.start()
        try:
            started = time.monotonic()
            futures = []
            for n, raw in enumerate(raws):
                if rate:
                    await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
                raw = replace(raw, source=replace(raw.source, received_at=utc_now_iso()))
                futures.append(
                    await producer.send(
                        kafka.topic_raw, raw.payload, key=raw.article_id.encode(), headers=raw_headers(raw)
                    )
                )
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        return [r.article_id for r in raws]

    return asyncio.run(run())


def fresh_topics(bootstrap: str, name: str):  # noqa: ANN201
    from dataclasses import fields

    from newsflow.settings import KafkaSettings
    from tests.integration.kafka_helpers import ensure_topics

    base = KafkaSettings(bootstrap=bootstrap)
    kafka = replace(
        base,
        **{f.name: f"{getattr(base, f.name)}.{name}" for f in fields(base) if f.name.startswith("topic_")},
    )
    ensure_topics(kafka)
    return kafka


@dataclass(frozen=True)
class Timed:
    """One timed run through Kafka: wall seconds and the CPU seconds each party used in them."""

    seconds: float
    workers_cpu: float
    broker_cpu: float | None  # None: the broker's process was not found
    driver_cpu: float  # this process: the producer sending the articles and the read_committed reader

    def cores(self) -> str:
        """How many of the machine's cores each party kept busy, on average over the run."""
        broker = "?" if self.broker_cpu is None else f"{self.broker_cpu / self.seconds:.2f}"
        return (
            f"workers {self.workers_cpu / self.seconds:.2f}, broker {broker}, "
            f"producer and reader {self.driver_cpu / self.seconds:.2f}"
        )


def driver_cpu_seconds() -> float:
    """User and system CPU seconds of this process, all its threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def through_kafka(
    bootstrap: str,
    raws: list,  # noqa: ANN001
    warm: list,  # noqa: ANN001
    count: int,
    workdir: Path,
    name: str,
    env: dict[str, str] | None = None,
) -> Timed:
    """(c)/(d) Seconds from the first send until every article is out, with `count` warmed workers
    (their environment: `env` over the bench's), and the CPU seconds used meanwhile."""
    kafka = fresh_topics(bootstrap, name)
    broker = [pid] if (pid := broker_pid(bootstrap)) else []
    with workers(kafka, count, workdir, name, env) as procs, Outputs(kafka) as out:
        out.wait_for(set(send(kafka, warm)), timeout=300)
        time.sleep(2.0)
        pids = [p.pid for p in procs]
        started = time.monotonic()
        before = cpu_seconds(pids), cpu_seconds(broker), driver_cpu_seconds()
        finished = out.wait_for(set(send(kafka, raws)), timeout=3600)
        after = cpu_seconds(pids), cpu_seconds(broker), driver_cpu_seconds()
    worker_cpu, broker_cpu, driver_cpu = (a - b for a, b in zip(after, before, strict=True))
    return Timed(finished - started, worker_cpu, broker_cpu if broker else None, driver_cpu)


def latency(
    bootstrap: str,
    raws: list,  # noqa: ANN001
    warm: list,  # noqa: ANN001
    rate: float,
    workdir: Path,
    env: dict[str, str] | None = None,
) -> list[float]:
    """(e) Produce-to-enriched seconds of each article of a stream at `rate` per second, to one
    worker (its environment: `env` over the bench's)."""
    from newsflow.pipeline.dates import parse_datetime

    name = "latency-beside" if env else "latency"
    kafka = fresh_topics(bootstrap, name)
    with workers(kafka, 1, workdir, name, env), Outputs(kafka) as out:
        out.wait_for(set(send(kafka, warm)), timeout=300)
        time.sleep(2.0)
        ids = set(send(kafka, raws, rate=rate))
        out.wait_for(ids, timeout=3600)
        arrived = out.arrived()
    # wall clock at arrival, from the monotonic stamp of the reader
    offset = time.time() - time.monotonic()
    waits = []
    for key in ids:
        t, rec = arrived[key]
        sent = parse_datetime(str(rec.get("source", {}).get("received_at", "")))
        if sent is not None:
            waits.append(t + offset - sent.timestamp())
    return sorted(waits)


def cpu_seconds(pids: list[int]) -> float:
    """User and system CPU seconds these processes have used so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def soak(
    bootstrap: str, raws: list, warm: list, rate: float, seconds: float, window: float, workdir: Path
) -> list[tuple[float, float, int]]:  # noqa: ANN001
    """(f) Return (seconds, worker RSS MiB, articles out) samples over a steady stream.

    The corpus is sent again and again, each wire text with new names (`memory_soak.with_new_names`):
    a stream of news brings new strings every day, which the models' memory must not keep."""
    import itertools
    import threading

    from bench.memory_soak import with_new_names

    kafka = fresh_topics(bootstrap, "soak")
    count = max(1, int(rate * seconds))
    fresh = itertools.count()

    def renamed(r):  # noqa: ANN001, ANN202 - RawArticle
        if r.source.content_type != "text/plain":
            return r.payload
        return with_new_names(r.payload.decode(errors="replace"), fresh).encode()

    stream = [
        replace(r, article_id=f"{r.article_id}-s{i}", payload=renamed(r))
        for i, r in enumerate((raws * (1 + count // len(raws)))[:count])
    ]
    env = {"NEWSFLOW_DEDUP_WINDOW_HOURS": str(window / 3600)}
    from tests.integration.kafka_helpers import start_worker

    worker = start_worker(kafka, workdir / "soak.log", "soak", env)
    samples: list[tuple[float, float, int]] = []
    try:
        with Outputs(kafka) as out:
            out.wait_for(set(send(kafka, warm)), timeout=300)
            sender = threading.Thread(target=send, args=(kafka, stream, rate), daemon=True)
            started = time.monotonic()
            sender.start()
            while sender.is_alive() or len(out.arrived()) < len(stream) + len(warm):
                samples.append((time.monotonic() - started, rss_mib(worker.pid), len(out.arrived())))
                if time.monotonic() - started > 2 * seconds + 300:
                    break
                time.sleep(5.0)
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    return samples


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--size", type=int, default=300, help="articles in the corpus")
    parser.add_argument("--latency-seconds", type=float, default=60.0, help="length of the steady stream (e)")
    parser.add_argument("--soak-seconds", type=float, default=180.0, help="length of the memory run (f)")
    parser.add_argument("--soak-window-seconds", type=float, default=60.0, help="story window in (f)")
    parser.add_argument("--record", action="store_true")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="newsflow-throughput-"))
    files = build(args.data_dir, work / "mixed", args.size)
    one = build(args.data_dir, work / "one", args.size, one_outlet=True)
    raws, one_raws = raws_of(files), raws_of(one)
    # Texts unlike any timed article's (the seeds, each with a line of its own), so that a worker's
    # recent texts hold none of the timed articles when timing starts.
    seeds = raws_of(sorted((ROOT / "seeds").glob("*.txt")))
    warm_raws = [
        replace(r, article_id=f"warm-{i}", payload=r.payload + f"\nWarm-up copy number {i}.".encode())
        for i, r in enumerate(seeds * 8)
    ]
    n = len(raws)
    print(f"corpus: {n} articles ({work})", flush=True)

    lib, lib_cpu, embedding = libraries_alone(raws)
    print(
        f"(a) libraries alone: {n / lib:.2f}/s ({n / (lib + embedding):.2f}/s with the embedding model)",
        flush=True,
    )
    chain, chain_cpu, shares, reused = stage_chain(raws, RECENT_INPUTS)
    print(f"(b) stage chain in process: {n / chain:.2f}/s", flush=True)
    afresh, afresh_cpu, _, _ = stage_chain(raws, 0)
    print(f"(b) stage chain in process, every text computed afresh: {n / afresh:.2f}/s", flush=True)
    exact, exact_cpu, _, _ = stage_chain(raws, RECENT_INPUTS, "float32")
    print(f"(b) stage chain in process, embeddings in float32: {n / exact:.2f}/s", flush=True)
    beside, beside_cpu, _, _ = stage_chain(raws, RECENT_INPUTS, threads=2)
    print(f"(b) stage chain in process, embeddings beside NER: {n / beside:.2f}/s", flush=True)
    # (name, articles/s, CPU seconds)
    rows: list[tuple[str, float, float]] = [
        ("(a) trafilatura + spaCy NER-only, serial", n / lib, lib_cpu),
        ("(b) stage chain, one process", n / chain, chain_cpu),
        (
            "(b) the same, every text through the models (NEWSFLOW_WORKER_RECENT_TEXTS=0)",
            n / afresh,
            afresh_cpu,
        ),
        (
            "(b) the same, embeddings in float32 (NEWSFLOW_WORKER_EMBED_PRECISION=float32)",
            n / exact,
            exact_cpu,
        ),
        (f"(b) the same, the embeddings beside NER ({BESIDE_ROW})", n / beside, beside_cpu),
    ]
    os.environ.setdefault("NEWSFLOW_LOG_LEVEL", "warning")
    float32 = {"NEWSFLOW_WORKER_EMBED_PRECISION": "float32"}
    two_threads = {"NEWSFLOW_WORKER_COMPUTE_THREADS": "2"}
    with local_broker() as bootstrap:
        # A fresh broker's JVM runs its first minute of transactions and fetches slower: an
        # untimed run first, or (c), the first timed, pays for it and every ratio to (c) is high.
        through_kafka(bootstrap, raws[: 4 * BATCH], warm_raws, 1, work, "broker-warm-up")
        kafka_runs = [
            ("(c) end to end, real Kafka, one worker", raws, 1, "one-worker", {}),
            ("(c) the same, embeddings in float32", raws, 1, "one-worker-float32", float32),
            (
                f"(c) the same, the embeddings beside NER ({BESIDE_ROW})",
                raws,
                1,
                "one-worker-beside",
                two_threads,
            ),
            ("(d) two workers, many outlets", raws, 2, "two-workers", {}),
            ("(c) one worker, the same files as one outlet", one_raws, 1, "one-worker-one-outlet", {}),
            ("(d) two workers, the same files as one outlet", one_raws, 2, "two-workers-one-outlet", {}),
        ]
        timed: list[Timed] = []
        for row, stream_raws, count, name, env in kafka_runs:
            timed.append(through_kafka(bootstrap, stream_raws, warm_raws, count, work, name, env))
            print(f"{row}: {n / timed[-1].seconds:.2f}/s (cores busy: {timed[-1].cores()})", flush=True)
        one_worker, _, one_beside, two, one_one, two_one = (t.seconds for t in timed)
        rate = 0.5 * n / one_worker
        stream = (raws * (1 + int(rate * args.latency_seconds) // n))[
            : max(1, int(rate * args.latency_seconds))
        ]
        stream = [replace(r, article_id=f"{r.article_id}-l{i}") for i, r in enumerate(stream)]
        waits = latency(bootstrap, stream, warm_raws, rate, work)
        print(f"(e) latency p50 {pct(waits, 50):.2f} s, p99 {pct(waits, 99):.2f} s", flush=True)
        # The same stream, the same rate, to a worker whose embeddings run beside NER.
        waits_beside = latency(bootstrap, stream, warm_raws, rate, work, two_threads)
        print(
            f"(e) the same, beside: p50 {pct(waits_beside, 50):.2f} s, p99 {pct(waits_beside, 99):.2f} s",
            flush=True,
        )
        samples = soak(
            bootstrap, raws, warm_raws, n / one_worker, args.soak_seconds, args.soak_window_seconds, work
        )
    # (a) again: this machine is shared, and its speed moves over the minutes between (a) and (d).
    # Every ratio is to the mean of the two; their spread says how far a ratio can be trusted.
    lib_after, lib_cpu_after, _ = libraries_alone(raws)
    print(f"(a) libraries alone, again: {n / lib_after:.2f}/s", flush=True)
    rows += [(row, n / t.seconds, t.workers_cpu) for (row, *_), t in zip(kafka_runs, timed, strict=True)]
    rows.append(("(a) the same as the first row, again after the Kafka runs", n / lib_after, lib_cpu_after))
    lib, lib_cpu = (lib + lib_after) / 2, (lib_cpu + lib_cpu_after) / 2
    total = sum(shares.values())
    lines = [
        f"{n} articles from `bench/corpus.py {args.data_dir} --size {args.size}` (pages, wire texts, copies); "
        f"{os.cpu_count()} cores; workers with one BLAS thread each, one thread for the models unless said; embeddings in {EMBED_PRECISION} unless said; "
        "(a'): (a) and the embedding model on the same texts",
        "",
        "| what | articles/s | ratio to (a) | ratio to (a') | CPU ms/article |",
        "|---|---|---|---|---|",
        *[
            f"| {name} | {r:.2f} | {r / (n / lib):.2f} | {r / (n / (lib + embedding)):.2f} | {1000 * cpu / n:.1f} |"
            for name, r, cpu in rows
        ],
        "",
        f"ratios to (a): to the mean of its two runs, {rows[0][1]:.2f}/s first and {n / lib_after:.2f}/s "
        "last of the bench; CPU ms/article: the processes timed "
        "(the workers' own, not the broker's), which other tenants of the machine move less than "
        f"the wall clock: one worker end to end uses {timed[0].workers_cpu / lib_cpu:.2f}x the CPU of (a) per article",
        "",
        f"cores kept busy on average, of {os.cpu_count()} (what competes with the workers; the producer "
        "sends the whole corpus at once, the reader reads the output topics read_committed):",
        "",
        *[f"- {row}: {t.cores()}" for (row, *_), t in zip(kafka_runs, timed, strict=True)],
        "",
        f"raw articles per partition (key hash; a worker's share is its partitions'): "
        f"{partition_counts(raws)} (many outlets), {partition_counts(one_raws)} (one outlet)",
        "",
        f"two workers / one worker: {one_worker / two:.2f} (many outlets), "
        f"{one_one / two_one:.2f} (one outlet: against one worker on the same one-outlet stream)",
        "",
        f"(e) produce-to-enriched latency at {rate:.2f} articles/s (50 % of (c)), {len(waits)} articles: "
        f"p50 {pct(waits, 50):.2f} s, p99 {pct(waits, 99):.2f} s, max {waits[-1]:.2f} s; the embeddings beside NER "
        f"({BESIDE_ROW}): p50 {pct(waits_beside, 50):.2f} s, p99 {pct(waits_beside, 99):.2f} s, max {waits_beside[-1]:.2f} s",
        "",
        f"(f) worker RSS over {samples[-1][2]} articles in {samples[-1][0]:.0f} s at (c)'s rate, "
        f"story window {args.soak_window_seconds:.0f} s: "
        + ", ".join(f"{t:.0f} s {m:.0f} MiB" for t, m, _ in samples[:: max(1, len(samples) // 8)])
        + f"; last {samples[-1][1]:.0f} MiB",
        "",
        f"(b) texts seen lately, not run through the models again: NER {reused['entities']}, "
        f"embedding {reused['features']} of {n} articles (the corpus repeats pages and wire texts)",
        "",
        "(g) where the in-process time goes (b):",
        "",
        "| stage | share | ms/article |",
        "|---|---|---|",
        *[
            f"| {stage} | {s / total:.0%} | {1000 * s / n:.1f} |"
            for stage, s in sorted(shares.items(), key=lambda kv: -kv[1])
        ],
        "",
        f"single writer: `DedupDesk.decide` alone runs {n / shares['dedup decide']:.0f} articles/s "
        f"(one core), against {n / (total - shares['dedup decide']):.2f}/s per core for the per-article stages",
    ]
    report = "\n".join(lines)
    publish("Throughput, latency and profile of the chain", report, args.record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
