"""The producer against the real broker, as a user runs it (the CLI in a subprocess)."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from newsflow.pipeline.records import RawArticle
from newsflow.producer.sources import iter_file
from newsflow.settings import KafkaSettings
from tests.integration.kafka_helpers import free_port, kafka_env
from tests.warc_fixtures import write_warc

TEXT = b"The council approved the new budget on Tuesday after a long debate about schools and roads.\n"


def read_raw(kafka: KafkaSettings, want: int, timeout: float = 30) -> list[tuple[str, bytes, dict[str, str]]]:
    """Read (key, value, headers) from the start of the raw topic until `want` arrived or time ran out."""

    async def run() -> list[tuple[str, bytes, dict[str, str]]]:
        consumer = AIOKafkaConsumer(
            kafka.topic_raw,
            bootstrap_servers=kafka.bootstrap,
            auto_offset_reset="earliest",
            group_id=None,
            max_partition_fetch_bytes=kafka.max_message_bytes,
        )
        await consumer.start()
        out: list[tuple[str, bytes, dict[str, str]]] = []
        deadline = time.monotonic() + timeout
        try:
            while len(out) < want and time.monotonic() < deadline:
                for messages in (await consumer.getmany(timeout_ms=300)).values():
                    out += [
                        (m.key.decode(), m.value, {k: v.decode() for k, v in m.headers}) for m in messages
                    ]
        finally:
            await consumer.stop()
        return out

    return asyncio.run(run())


def producer(
    kafka: KafkaSettings, *args: str, env: dict[str, str] | None = None, **kw
) -> subprocess.Popen[str]:  # type: ignore[no-untyped-def]
    return subprocess.Popen(
        [sys.executable, "-m", "newsflow.producer", *args],
        env={**os.environ, **kafka_env(kafka), **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


def test_odd_names_a_gzip_bomb_a_fifo_and_a_link_to_nothing_in_one_run(kafka: KafkaSettings, tmp_path: Path):
    inbox = tmp_path / "inbox" / "metro"
    inbox.mkdir(parents=True)
    with open(os.fsencode(inbox) + b"/caf\xe9 \xff.txt", "wb") as fh:
        fh.write(TEXT)
    (inbox / "日本語.txt").write_bytes(TEXT + b"Second.")
    with gzip.open(inbox / "bomb.html.gz", "wb") as fh:
        for _ in range(1024):
            fh.write(b"\0" * (1 << 20))  # 1 GiB of zeros
    os.mkfifo(inbox / "pipe.txt")
    (inbox / "dangling.txt").symlink_to(tmp_path / "nowhere.txt")
    (inbox / "zz-last.txt").write_bytes(TEXT + b"Last.")
    run = producer(kafka, str(tmp_path / "inbox"), "--no-progress")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "sent 3 " in out and "skipped 3 (not_regular: 1, too_large: 1, unreadable: 1)" in out, out
    records = read_raw(kafka, want=3)
    names = sorted(h["source-path"] for _, _, h in records)
    assert names == ["metro/caf\\xe9 \\xff.txt", "metro/zz-last.txt", "metro/日本語.txt"]
    assert {h["outlet"] for _, _, h in records} == {"metro"}


def test_json_lines_from_stdin_with_a_bad_line(kafka: KafkaSettings):
    lines = [
        {"url": "https://wire.example/a", "text": "First report of the day."},
        "this line is not JSON",
        {"url": "https://wire.example/b", "outlet": "wire", "html": "<p>Second report.</p>"},
    ]
    body = "\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n"
    run = producer(kafka, "-", "--no-progress", stdin=subprocess.PIPE)
    out, err = run.communicate(body, timeout=120)
    assert run.returncode == 0, err
    assert "sent 2 " in out and "skipped 1 (bad_line: 1)" in out
    assert "<stdin>:2" in err  # the bad line's number is logged
    records = read_raw(kafka, want=2)
    assert sorted(h["url"] for _, _, h in records) == ["https://wire.example/a", "https://wire.example/b"]
    assert {h["content-type"] for _, _, h in records} == {"application/json"}


def test_sigterm_stops_a_producer_reading_stdin_whose_writer_is_still_open(kafka: KafkaSettings):
    # `tail -f feed.jsonl | newsflow-producer -`: the next line may never come.
    run = producer(kafka, "-", "--no-progress", stdin=subprocess.PIPE)
    assert run.stdin is not None
    run.stdin.write(json.dumps({"url": "https://wire.example/live", "text": "A live line."}) + "\n")
    run.stdin.flush()
    (record,) = read_raw(kafka, want=1)
    assert record[2]["url"] == "https://wire.example/live"
    run.send_signal(signal.SIGTERM)
    try:
        run.wait(timeout=15)  # with stdin still open: communicate() would close it
    finally:
        run.kill()
        out, _ = run.communicate()
    assert run.returncode == 0 and "sent 1 " in out, out


def test_a_warc_archive_sends_its_html_responses(kafka: KafkaSettings, tmp_path: Path):
    archive = write_warc(tmp_path / "CC-NEWS-test.warc.gz")
    run = producer(kafka, str(archive), "--no-progress")
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert "sent 2 " in out and "skipped 5 (http_status: 1, not_html: 1, not_response: 3)" in out
    records = {h["url"]: h for _, _, h in read_raw(kafka, want=2)}
    assert records["https://www.example.com/news/bridge"]["content-type"] == "text/html; charset=windows-1251"
    assert records["https://www.example.com/news/bridge"]["outlet"] == "example.com"
    assert records["https://www.example.com/news/bridge"]["received-at"] == "2026-11-30T10:00:00Z"


def test_watch_sends_a_slowly_written_file_once_and_nothing_again_after_a_restart(
    kafka: KafkaSettings, tmp_path: Path
):
    inbox = tmp_path / "inbox" / "wire"
    inbox.mkdir(parents=True)
    (inbox / "early.txt").write_bytes(TEXT)
    env = {
        "NEWSFLOW_PRODUCER_STATE_FILE": str(tmp_path / "state.jsonl"),
        "NEWSFLOW_PRODUCER_QUIET_SECONDS": "4",
    }
    first = producer(kafka, "--watch", str(tmp_path / "inbox"), env=env)
    try:
        assert len(read_raw(kafka, want=1, timeout=60)) == 1
        slow = inbox / "slow.txt"
        with slow.open("wb") as fh:  # written in two halves, 2.5 s apart
            fh.write(TEXT)
            fh.flush()
            time.sleep(2.5)
            fh.write(b"The second half arrives later. " * 3)
        records = read_raw(kafka, want=3, timeout=20)
        assert len(records) == 2, "the slow file went out more than once, or never"
        (sent_slow,) = [r for r in records if r[2]["source-path"] == "wire/slow.txt"]
        assert sent_slow[1].endswith(b"later. ")  # complete
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    assert first.returncode == 0

    # The same folder spelled another way (relative to the working directory) is the same folder.
    again = producer(kafka, "--watch", os.path.relpath(tmp_path / "inbox"), env=env)
    try:
        time.sleep(8)  # two quiet periods: anything it were to send again would be out by now
        assert len(read_raw(kafka, want=3, timeout=3)) == 2
        (inbox / "slow.txt").write_bytes(TEXT + b"A correction.")  # a new version of a sent file
        revised = read_raw(kafka, want=3, timeout=30)
        assert len(revised) == 3
        (new,) = [r for r in revised if "revision-of" in r[2]]
        assert new[2]["revision-of"] == sent_slow[0] and new[1] == TEXT + b"A correction."
        # Under the id a one-shot run over the folder sends it with: one article, whoever sends it.
        (one_shot,) = iter_file(tmp_path / "inbox", inbox / "slow.txt")
        assert isinstance(one_shot, RawArticle) and new[0] == one_shot.article_id
        # Put back as it was: a version of its own, not the first one's id, which was enriched already.
        (inbox / "slow.txt").write_bytes(sent_slow[1])
        reverted = read_raw(kafka, want=4, timeout=30)
        assert len(reverted) == 4
        (back,) = [r for r in reverted if r[2].get("revision-of") == new[0]]
        assert back[1] == sent_slow[1] and back[0] not in {sent_slow[0], new[0]}
        os.utime(inbox / "slow.txt")  # touched, not changed: nothing more
        time.sleep(6)
        assert len(read_raw(kafka, want=5, timeout=3)) == 4
    finally:
        again.send_signal(signal.SIGTERM)
        out, _ = again.communicate(timeout=30)
    assert "sent 2 " in out


def test_watch_forgets_a_sent_file_taken_away_and_sends_it_if_it_comes_back(
    kafka: KafkaSettings, tmp_path: Path
):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "a.txt").write_bytes(TEXT)
    (inbox / "loop.txt").symlink_to("loop.txt")  # a link to itself: skipped, not a stopped watcher
    # Links out of the watched folder, to a file and to a folder: skipped once each, never sent
    # (a drop folder others write to is no way to send whatever this process may read).
    (tmp_path / "secret.txt").write_bytes(b"CONFIDENTIAL " + TEXT)
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.txt").write_bytes(b"ELSEWHERE " + TEXT)
    (inbox / "linked.txt").symlink_to(tmp_path / "secret.txt")
    (inbox / "linked-folder").symlink_to(tmp_path / "elsewhere")
    state = tmp_path / "state.jsonl"
    env = {
        "NEWSFLOW_PRODUCER_STATE_FILE": str(state),
        "NEWSFLOW_PRODUCER_QUIET_SECONDS": "0.5",
        "NEWSFLOW_PRODUCER_WATCH_SECONDS": "0.5",
        "NEWSFLOW_PRODUCER_FORGET_HOURS": str(2 / 3600),  # two seconds
        "NEWSFLOW_PRODUCER_METRICS_PORT": str(port := free_port()),
    }
    watching = producer(kafka, "--watch", str(inbox), env=env)
    try:
        (first,) = read_raw(kafka, want=1, timeout=60)
        (inbox / "a.txt").unlink()  # taken away by the inbox's users once sent
        deadline = time.monotonic() + 30
        while b'"forgotten":true' not in state.read_bytes() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert b'"forgotten":true' in state.read_bytes()
        scraped = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        assert "newsflow_producer_forgotten_files_total 1.0" in scraped
        assert 'newsflow_producer_files_total{outcome="skipped",reason="outside_folder"} 2.0' in scraped
        # The link to itself: once, not at every rescan (it was not counted at all).
        assert 'newsflow_producer_files_total{outcome="skipped",reason="unreadable"} 1.0' in scraped
        # Put back: sent again, under the same id (the worker drops it while it remembers it).
        (inbox / "a.txt").write_bytes(TEXT)
        records = read_raw(kafka, want=3, timeout=20)
        assert [r[0] for r in records] == [first[0], first[0]]
    finally:
        watching.send_signal(signal.SIGTERM)
        _, err = watching.communicate(timeout=30)
    assert "forgot 1 sent files that are gone" in err and watching.returncode == 0
    assert f"a.txt: {first[0]}" in err  # each file sent is logged


def test_http_ingest_accepts_good_articles_and_refuses_bad_and_large_ones(
    kafka: KafkaSettings, tmp_path: Path
):
    port = free_port()
    env = {
        "NEWSFLOW_PRODUCER_HTTP_PORT": str(port),
        "NEWSFLOW_PRODUCER_HTTP_MAX_BODY_BYTES": "20000",
        "NEWSFLOW_PRODUCER_MAX_FILE_BYTES": "5000",
        "NEWSFLOW_PRODUCER_STATE_FILE": str(tmp_path / "sent.jsonl"),
    }
    # With a watched folder beside it (empty): each says its own summary at the end.
    (tmp_path / "inbox").mkdir()
    server = producer(kafka, "--serve", "--watch", str(tmp_path / "inbox"), env=env)

    def post(body: bytes, encoding: str | None = None) -> tuple[int, dict[str, object]]:
        request = urllib.request.Request(f"http://127.0.0.1:{port}/articles", data=body, method="POST")
        request.add_header("Content-Type", "application/json")
        if encoding:
            request.add_header("Content-Encoding", encoding)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    assert r.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "the producer's HTTP ingest did not come up"
                time.sleep(0.3)
        one = {"url": "https://wire.example/1", "outlet": "wire", "text": "A report."}
        status, body = post(json.dumps(one).encode())
        assert status == 200 and len(body["article_ids"]) == 1
        many = [{"url": f"https://wire.example/{n}", "text": f"Report {n}."} for n in (2, 3)]
        status, body = post(json.dumps(many).encode())
        assert status == 200 and len(body["article_ids"]) == 2
        status, body = post(b"{nope")
        assert status == 400 and "not JSON" in str(body["error"])
        status, body = post(json.dumps([one, {"title": "no text"}]).encode())
        assert status == 400 and "article 1" in str(body["error"])
        status, body = post(json.dumps({"text": "x" * 30_000}).encode())
        assert status == 413
        # An article over the size of a file, with a good one before it: refused whole, nothing sent.
        status, body = post(
            json.dumps([{"url": "https://wire.example/9", "text": "Fine."}, {"text": "x" * 8000}]).encode()
        )
        assert status == 413 and "article 1" in str(body["error"])
        status, body = post(b"xxxx", encoding="gzip")  # not what it says it is: the client's fault
        assert status == 400 and "body unreadable" in str(body["error"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            scraped = r.read().decode()
        # every refusal counted with its reason, as files are
        assert 'newsflow_producer_files_total{outcome="refused",reason="bad_envelope"} 2.0' in scraped
        assert 'newsflow_producer_files_total{outcome="refused",reason="too_large"} 2.0' in scraped
        assert 'newsflow_producer_files_total{outcome="refused",reason="bad_body"} 1.0' in scraped
    finally:
        server.send_signal(signal.SIGTERM)
        out, _ = server.communicate(timeout=30)
    ingest, watched = out.strip().splitlines()[-2:]
    assert ingest.startswith("HTTP ingest: sent 3 ") and watched.startswith("watched folders: sent 0 "), out
    assert "refused 5 (bad_body: 1, bad_envelope: 2, too_large: 2)" in ingest, out
    ids = sorted(k for k, _, _ in read_raw(kafka, want=3))
    assert len(ids) == 3  # the refused requests sent nothing


def test_a_producer_whose_raw_topic_is_missing_says_so_at_once(tmp_path: Path):
    from tests.integration.kafka_helpers import unique_kafka

    kafka = unique_kafka()  # no topics made
    (tmp_path / "a.txt").write_bytes(TEXT)
    started = time.monotonic()
    out, err = producer(kafka, str(tmp_path), "--no-progress").communicate(timeout=60)
    assert err.strip().splitlines()[-1] == (
        f"newsflow-producer: error: topic '{kafka.topic_raw}' does not exist on {kafka.bootstrap} "
        "(newsflow-topics creates it)"
    )
    assert time.monotonic() - started < 20  # not a failed send per article, 40 s apart


def test_a_stop_while_kafka_is_away_ends_the_producer_at_once_and_says_the_input_was_not_sent(
    tmp_path: Path,
):
    (tmp_path / "a.txt").write_bytes(TEXT)
    away = KafkaSettings(bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    run = producer(away, str(tmp_path), "--no-progress")
    time.sleep(3)
    stopped = time.monotonic()
    run.send_signal(signal.SIGTERM)
    out, _ = run.communicate(timeout=30)
    assert time.monotonic() - stopped < 5  # not at the end of the broker wait's 30 s
    assert (
        run.returncode == 128 + signal.SIGTERM and "interrupted: the rest of the input was not sent" in out
    ), out
