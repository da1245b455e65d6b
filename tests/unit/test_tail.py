"""newsflow-tail's filters and lines, without Kafka; its error when there is none."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest

from newsflow.tail import Filters, deletion, line, matches, parser, start_position

ARTICLE = {
    "article_id": "a1",
    "source": {"outlet": "wire", "received_at": "2026-12-01T08:00:00.000Z"},
    "title": "Ceasefire talks resume",
    "language": {"code": "en", "confidence": 0.99},
    "entities": [{"key": "united states", "name": "United States"}, {"key": "russia", "name": "Russia"}],
    "story_id": "s-1",
    "duplicate_of": None,
}
STORY = {
    "story_id": "s-1",
    "headline": "Talks",
    "member_count": 2,
    "outlets": ["wire", "metro"],
    "top_entities": ["russia"],
}


@pytest.mark.parametrize(
    ("filters", "article", "story"),
    [
        (Filters(), True, True),
        (Filters(entity="United States"), True, False),
        (Filters(entity="russia", outlet="metro"), False, True),
        (Filters(story="s-1", lang="en"), True, False),
        (Filters(story="s-2"), False, False),
        (Filters(article="a1"), True, False),
        (Filters(article="a2"), False, False),
    ],
)
def test_filters_apply_to_articles_and_stories(filters, article, story):
    assert matches(ARTICLE, filters) is article
    assert matches(STORY, filters) is story


def test_one_readable_line_per_record():
    assert line(ARTICLE).split() == [
        "2026-12-01T08:00:00",
        "wire",
        "s-1",
        "en",
        "Ceasefire",
        "talks",
        "resume",
        "[United",
        "States,",
        "Russia]",
    ]
    assert "2 articles from wire, metro" in line(STORY) and "closed" not in line(STORY)
    assert "story s-1  closed  2 articles" in line({**STORY, "status": "closed"})
    assert "story s-1  closed, merged into s-0  2 articles" in line(
        {**STORY, "status": "closed", "merged_into": "s-0"}
    )
    assert "story s-2  split from s-1  1 article" in line(
        {**STORY, "story_id": "s-2", "member_count": 1, "split_from": "s-1"}
    )
    assert "story s-1  split into s-2, s-3  2 articles" in line({**STORY, "split_into": ["s-2", "s-3"]})
    # An article in no story (too short, empty, another language's without an embedding): "--"
    assert line({**ARTICLE, "story_id": None, "language": None}).split()[2:4] == ["--", "--"]
    assert "1 article from wire " in line({**STORY, "member_count": 1, "outlets": ["wire"]})


def test_a_plain_text_without_a_title_is_shown_by_the_headline_its_story_shows():
    text = "Port fire contained after six hours\n\nFirefighters brought the blaze under control on Monday."
    assert "  Port fire contained after six hours  [" in line({**ARTICLE, "title": None, "text": text})
    # A first line too long for a headline: its first twelve words.
    lead = (
        "Crews put out the fire at the port on Monday night after six hours, as the wind fell and rain came."
    )
    assert "  Crews put out the fire at the port on Monday night after …  [" in line(
        {**ARTICLE, "title": None, "text": lead}
    )
    assert "  (no text)  [" in line({**ARTICLE, "title": None, "text": ""})


def test_from_takes_now_beginning_or_a_time():
    assert start_position("now") == "now" and start_position("beginning") == "beginning"
    assert start_position("2026-12-01T08:00:00Z") == datetime(2026, 12, 1, 8, tzinfo=UTC)
    with pytest.raises(ValueError, match="not 'now', 'beginning'"):
        start_position("yesterday-ish")


def test_no_broker_ends_in_one_error_line_after_progress_lines_and_leaves_nothing_open():
    proc = subprocess.run(
        [sys.executable, "-m", "newsflow.tail", "--max", "1"],
        env={**os.environ, "NEWSFLOW_KAFKA_BOOTSTRAP": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    *waiting, error = proc.stderr.splitlines()
    assert error == "newsflow-tail: error: Kafka at 127.0.0.1:9 did not answer within 15s"
    assert waiting and all(
        line.startswith("Kafka at 127.0.0.1:9 has not answered so far") for line in waiting
    )


def test_a_max_below_one_is_a_usage_error_not_a_silent_empty_run(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit) as exited:
        parser().parse_args(["--max", "-1"])
    assert exited.value.code == 2 and "-1 is not a positive number" in capsys.readouterr().err


def test_a_language_for_stories_is_a_usage_error_not_a_wait_for_ever(capsys: pytest.CaptureFixture[str]):
    from newsflow.tail import main

    with pytest.raises(SystemExit) as exited:
        main(["--topic", "stories", "--lang", "en"])
    assert exited.value.code == 2 and "story records have no language" in capsys.readouterr().err


def test_an_article_for_stories_is_a_usage_error_not_a_wait_for_ever(capsys: pytest.CaptureFixture[str]):
    from newsflow.tail import main

    with pytest.raises(SystemExit) as exited:
        main(["--topic", "stories", "--article", "a1"])
    assert exited.value.code == 2 and "--article filters articles" in capsys.readouterr().err


def test_a_language_is_matched_in_any_case():
    args = parser().parse_args(["--lang", "EN"])
    assert matches(ARTICLE, Filters(lang=args.lang))  # records carry ISO 639-1 in lower case


def test_a_reader_that_stops_reading_ends_the_tail_quietly():
    # `newsflow-tail --from beginning | head -1`: a closed pipe is the reader's way of saying enough.
    script = (
        "import sys\n"
        "from newsflow import tail\n"
        "async def many(*args, **kwargs):\n"
        "    for _ in range(200_000):\n"
        "        print('a record line ' * 8)\n"
        "tail.tail = many\n"
        "sys.exit(tail.main([]))\n"
    )
    run = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ
    )
    assert run.stdout is not None
    run.stdout.readline()
    run.stdout.close()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 0 and err == b"", err


def test_a_storys_deletion_is_a_line_of_its_own_and_filters_still_apply():
    # A tombstone was skipped without a word, even with --json.
    ms = 1_796_671_454_000
    assert deletion(b"s-1", ms, Filters(), False) == (
        "2026-12-07T19:24:14  story s-1  deleted (its retention after closing ended)"
    )
    assert deletion(b"s-1", ms, Filters(story="s-1"), True) == '{"deleted":true,"story_id":"s-1"}'
    assert deletion(b"s-1", ms, Filters(story="s-2"), False) is None
    assert deletion(b"s-1", ms, Filters(outlet="bbc"), False) is None  # nothing says whose it was
    assert deletion(None, ms, Filters(), False) is None
    assert (
        deletion(b"s-1", -1, Filters(), False) == "  story s-1  deleted (its retention after closing ended)"
    )
    assert (
        deletion(b"s-\xff", ms, Filters(), True) == '{"deleted":true,"story_id":"s-\\\\xff"}'
    )  # distinct ids stay so
