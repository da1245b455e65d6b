"""The producer's sources: every file, line and archive record ends as an article or a reasoned skip."""

from __future__ import annotations

import gzip
import io
import json
import os
import time
import zlib
from pathlib import Path

import pytest

from newsflow.pipeline import jsonio
from newsflow.pipeline.records import RawArticle, raw_from_message, raw_headers
from newsflow.producer.publish import Tally
from newsflow.producer.settings import parse_outlet_map
from newsflow.producer.sources import (
    MAX_BLANK_LINES,
    Skipped,
    envelope_article,
    iter_inputs,
    iter_jsonl,
    read_article,
    unusable_paths,
)
from tests.conftest import FIXTURES, ROOT
from tests.warc_fixtures import ARTICLE_TEXT, page, record, response, write_warc

TEXT = b"The council approved the new budget on Tuesday after a long debate about schools and roads."


def _articles(items) -> list[RawArticle]:  # type: ignore[no-untyped-def]
    return [i for i in items if isinstance(i, RawArticle)]


def test_outlet_is_the_first_folder_below_the_root():
    items = list(iter_inputs([FIXTURES / "articles"]))
    assert {i.source.outlet for i in _articles(items)} == {"harbourtimes", "valleypost"}
    assert {i.source.content_type for i in _articles(items)} == {
        "text/html",
        "application/json",
        "text/plain",
    }


def test_article_id_is_stable_and_depends_on_outlet_and_content(tmp_path: Path):
    f = tmp_path / "a.txt"
    f.write_text("Some news text.")
    a1, a2 = read_article(tmp_path, f), read_article(tmp_path, f)
    other_outlet = read_article(tmp_path, f, outlet="metro")
    assert isinstance(a1, RawArticle) and isinstance(a2, RawArticle) and isinstance(other_outlet, RawArticle)
    assert a1.article_id == a2.article_id != other_outlet.article_id
    f.write_text("Some news text, updated.")
    a3 = read_article(tmp_path, f)
    assert isinstance(a3, RawArticle) and a3.article_id != a1.article_id


def test_unusable_files_are_skipped_with_a_reason(tmp_path: Path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "big.html").write_bytes(b"x" * 2000)
    (tmp_path / "broken.html.gz").write_bytes(b"not gzip")
    (tmp_path / "none.jsonl").write_bytes(b"")  # archives holding nothing are counted too
    (tmp_path / "blank.jsonl.gz").write_bytes(gzip.compress(b"\n\n"))
    (tmp_path / "none.warc.gz").write_bytes(gzip.compress(b""))
    reasons = {
        Path(i.path).name: i.reason for i in iter_inputs([tmp_path], max_bytes=1000) if isinstance(i, Skipped)
    }
    assert reasons == {
        "empty.txt": "empty",
        "image.png": "unsupported_extension",
        "big.html": "too_large",
        "broken.html.gz": "unreadable",
        "none.jsonl": "empty",
        "blank.jsonl.gz": "empty",
        "none.warc.gz": "empty",
    }


def test_odd_names_fifos_and_vanished_files_never_stop_a_run(tmp_path: Path):
    odd = os.fsencode(tmp_path) + b"/caf\xe9-\xff.txt"  # not UTF-8
    with open(odd, "wb") as fh:
        fh.write(TEXT)
    os.mkfifo(tmp_path / "pipe.txt")
    (tmp_path / "z-after.txt").write_bytes(TEXT + b" Again.")
    started = time.monotonic()
    items = list(iter_inputs([tmp_path, tmp_path / "gone.txt", tmp_path / "pipe.txt"]))
    assert time.monotonic() - started < 5  # a FIFO is never opened for a blocking read
    articles = _articles(items)
    assert [Path(a.source.path).name for a in articles] == ["caf\\xe9-\\xff.txt", "z-after.txt"]
    # the name's escaped form travels in a header and comes back as the same article
    again = raw_from_message(articles[0].article_id.encode(), articles[0].payload, raw_headers(articles[0]))
    assert again == articles[0]
    reasons = sorted(i.reason for i in items if isinstance(i, Skipped))
    assert reasons == ["not_regular", "not_regular", "vanished"]


def test_unreadable_folders_are_skipped_not_fatal(tmp_path: Path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "a.txt").write_bytes(TEXT)
    (tmp_path / "b.txt").write_bytes(TEXT)
    real_scandir = os.scandir

    def scandir(path):  # type: ignore[no-untyped-def]
        # The tests run as root, for whom permissions do not stop a listing: refuse as the OS would.
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    items = list(iter_inputs([tmp_path]))
    assert [(Path(i.path).name, i.reason) for i in items if isinstance(i, Skipped)] == [
        ("locked", "unreadable")
    ]
    assert len(_articles(items)) == 1


def test_a_gzip_bomb_is_stopped_at_the_limit(tmp_path: Path):
    bomb = tmp_path / "bomb.html.gz"
    with gzip.open(bomb, "wb") as fh:
        for _ in range(64):
            fh.write(b"\0" * (1 << 20))  # 64 MiB of zeros in about 64 kB
    assert bomb.stat().st_size < 200_000
    (item,) = list(iter_inputs([bomb], max_bytes=5_000_000))
    assert isinstance(item, Skipped) and item.reason == "too_large"


def test_a_json_lines_bomb_of_newlines_is_a_counted_skip_not_minutes_of_reading(tmp_path: Path):
    bomb = tmp_path / "feed.jsonl.gz"
    with gzip.open(bomb, "wb") as fh:
        fh.write(json.dumps({"url": "https://wire.example/1", "text": "First report."}).encode() + b"\n")
        for _ in range(200):
            fh.write(b"\n" * (1 << 20))  # 200 million blank lines in about 200 kB
    items = list(iter_inputs([bomb]))
    assert len(_articles(items)) == 1
    (skip,) = [i for i in items if isinstance(i, Skipped)]
    assert skip.reason == "bad_line" and "blank lines in a row" in skip.detail
    # Read no further than the blank lines allowed, not through all of them.
    assert skip.path.endswith(f"feed.jsonl.gz:{MAX_BLANK_LINES + 1}")


def test_json_lines_give_one_article_a_line_and_a_bad_line_is_a_numbered_skip(tmp_path: Path):
    lines = [
        json.dumps({"url": "https://wire.example/1", "text": "First report."}),
        "{not json",
        json.dumps({"outlet": "metro", "html": "<p>Second.</p>"}),
        "",
        json.dumps(["not", "an", "object"]),
        json.dumps({"title": "no body"}),
        json.dumps({"url": 12, "text": "A number for a URL."}),
        json.dumps({"text": "Authors as a number.", "authors": 3}),
    ]
    path = tmp_path / "feed.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write("\n".join(lines) + "\n")
    items = list(iter_inputs([path]))
    articles = _articles(items)
    assert [a.source.outlet for a in articles] == ["wire.example", "metro"]
    assert articles[0].source.url == "https://wire.example/1"
    assert [(Path(i.path).name, i.reason) for i in items if isinstance(i, Skipped)] == [
        ("feed.jsonl.gz:2", "bad_line"),
        ("feed.jsonl.gz:5", "bad_line"),
        ("feed.jsonl.gz:6", "bad_line"),
        ("feed.jsonl.gz:7", "bad_line"),
        ("feed.jsonl.gz:8", "bad_line"),
    ]
    assert [i.detail for i in items if isinstance(i, Skipped)][-2:] == [
        "'url' must be a string",
        "'authors' must be a string, or a list of strings or of objects with a string 'name'",
    ]
    # the same envelope is the same article, wherever it comes from
    (from_stdin,) = _articles(iter_jsonl(io.BytesIO(lines[0].encode() + b"\n"), "<stdin>", None, 1000))
    assert from_stdin.article_id == articles[0].article_id


def test_a_warc_gives_articles_for_html_responses_and_counts_the_rest(tmp_path: Path):
    path = write_warc(tmp_path / "crawl.warc.gz")
    items = list(iter_inputs([path], outlet_by_host=parse_outlet_map("example.net=Example News")))
    articles = _articles(items)
    assert [(a.source.outlet, a.source.url, a.source.charset) for a in articles] == [
        ("example.com", "https://www.example.com/news/bridge", "windows-1251"),
        ("Example News", "https://example.net/story", None),
    ]
    assert articles[0].source.received_at == "2026-11-30T10:00:00Z"
    assert ARTICLE_TEXT.encode("cp1251") in articles[0].payload
    reasons = sorted(i.reason for i in items if isinstance(i, Skipped))
    assert reasons == ["http_status", "not_html", "not_response", "not_response", "not_response"]


def test_a_warc_body_kept_as_sent_is_decoded_as_its_http_headers_say(tmp_path: Path):
    # wget, warcprox and Heritrix keep a body chunked or compressed as the server sent it.
    html = page("The council approved the budget. " * 20).encode()
    chunked = b"".join(
        b"%x\r\n%s\r\n" % (len(html[i : i + 100]), html[i : i + 100]) for i in range(0, len(html), 100)
    )
    bodies = {
        "chunked": (chunked + b"0\r\n\r\n", "Transfer-Encoding: chunked\r\n"),
        "gzip": (gzip.compress(html), "Content-Encoding: gzip\r\n"),
        "deflate": (zlib.compress(html), "Content-Encoding: deflate\r\n"),
        "raw deflate": (zlib.compress(html, wbits=-15), "Content-Encoding: deflate\r\n"),  # as IIS sends it
        # what RFC 9112 allows too: chunk extensions and trailers, and bare LFs read leniently
        "extensions": (
            chunked.replace(b"\r\n", b";ext=1\r\n", 1) + b"0\r\nX-Trailer: 1\r\n\r\n",
            "Transfer-Encoding: chunked\r\n",
        ),
        "bare LF": (chunked.replace(b"\r\n", b"\n") + b"0\n\n", "Transfer-Encoding: chunked\r\n"),
        "two members": (gzip.compress(html[:300]) + gzip.compress(html[300:]), "Content-Encoding: gzip\r\n"),
        "a list": (gzip.compress(html), "Content-Encoding: gzip, identity\r\n"),
        "both": (
            b"%x\r\n%s\r\n0\r\n\r\n" % (len(gz := gzip.compress(html)), gz),
            "Transfer-Encoding: chunked\r\nContent-Encoding: gzip\r\n",
        ),
        # decoded by the crawler but still labelled: the bytes are believed
        "relabelled": (html, "Content-Encoding: gzip\r\n"),
    }
    path = tmp_path / "kept.warc"
    path.write_bytes(
        b"".join(
            record("response", f"https://example.com/{k}", response(200, "text/html", b, h))
            for k, (b, h) in bodies.items()
        )
    )
    items = list(iter_inputs([path]))
    assert [a.payload for a in _articles(items)] == [html] * len(bodies), [
        i for i in items if isinstance(i, Skipped)
    ]


def test_a_warc_record_the_archive_cuts_short_is_skipped_as_truncated_never_sent_in_part(tmp_path: Path):
    whole = record(
        "response", "https://example.com/a", response(200, "text/html", page("Whole. " * 80).encode())
    )
    text = " ".join(f"{n * 7919 % 10007:x}" for n in range(400))  # compresses little
    cut = record("response", "https://example.com/b", response(200, "text/html", page(text).encode()))
    gzipped = gzip.compress(page(text).encode())
    cut_gzip = record(
        "response",
        "https://example.com/b",
        response(200, "text/html", gzipped[: len(gzipped) // 2], "Content-Encoding: gzip\r\n"),
    )
    capped = cut.replace(b"WARC-Type: response", b"WARC-Type: response\r\nWARC-Truncated: length", 1)
    cut_chunks = record(
        "response",
        "https://example.com/b",
        response(200, "text/html", b"400\r\n" + page(text).encode()[:300], "Transfer-Encoding: chunked\r\n"),
    )
    status_line = cut.index(b"HTTP/1.1 200")
    for name, data in [
        ("body.warc", whole + cut[: len(cut) // 2]),
        ("headers.warc", whole + cut[:60]),
        ("status.warc", whole + cut[: status_line + 10]),  # "HTTP/1.1 2": not a status 2
        ("member.warc.gz", gzip.compress(whole) + gzip.compress(cut)[: len(gzip.compress(cut)) // 2]),
        ("gzip.warc", whole + cut_gzip),  # the record whole, the page inside it cut
        ("capped.warc", whole + capped),  # the crawler kept only part of it, and said so
        ("chunks.warc", whole + cut_chunks),  # the record whole, its one chunk cut
    ]:
        (tmp_path / name).write_bytes(data)
        items = list(iter_inputs([tmp_path / name]))
        assert [a.source.url for a in _articles(items)] == ["https://example.com/a"], name
        skipped = [i for i in items if isinstance(i, Skipped)]
        assert [i.reason for i in skipped] == ["truncated"], (name, skipped)


def test_the_http_charset_reaches_decoding(tmp_path: Path):
    from newsflow.pipeline.extract import extract_article

    (article, _) = _articles(iter_inputs([write_warc(tmp_path / "crawl.warc.gz")]))
    again = raw_from_message(article.article_id.encode(), article.payload, raw_headers(article))
    assert again == article
    cleaned = extract_article(again)
    assert ARTICLE_TEXT.split(".")[0] in cleaned.text  # type: ignore[union-attr]


def test_the_summary_counts_each_outcome_by_reason():
    tally = Tally()
    tally.counts.update(
        {"sent": 3, "skipped:empty": 2, "skipped:too_large": 1, "failed:KafkaTimeoutError": 1}
    )
    assert tally.summary().startswith(
        "sent 3 (0.0 MB), skipped 3 (empty: 2, too_large: 1), failed 1 (KafkaTimeoutError: 1) in "
    )


def test_a_folder_reached_twice_through_links_is_read_once(tmp_path: Path):
    (tmp_path / "wire").mkdir()
    (tmp_path / "wire" / "a.txt").write_bytes(TEXT)
    (tmp_path / "wire" / "loop").symlink_to(tmp_path)
    (tmp_path / "again").symlink_to(tmp_path / "wire")
    items = list(iter_inputs([tmp_path]))
    assert len(_articles(items)) == 1
    skipped = sorted((Path(i.path).name, i.reason) for i in items if isinstance(i, Skipped))
    assert skipped == [("loop", "already_read"), ("wire", "already_read")]  # accounted for


def test_a_walk_within_its_folder_skips_links_out_of_it_and_follows_those_inside(tmp_path: Path):
    """What a watched drop folder holds: a link to a file or folder elsewhere is a skip
    (`outside_folder`), not read, not listed; a link within the folder is followed. Without
    `within` (files and folders named on the command line) every link is followed."""
    from newsflow.producer.sources import walk

    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    (inbox / "wire").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_bytes(TEXT)
    (inbox / "wire" / "a.txt").write_bytes(TEXT)
    (inbox / "wire" / "secret.txt").symlink_to(elsewhere / "secret.txt")
    (inbox / "elsewhere").symlink_to(elsewhere)
    (inbox / "same").symlink_to("wire")
    (inbox / "up").symlink_to("..")
    found = list(walk(inbox, within=inbox.resolve()))
    files = sorted(p.relative_to(inbox).as_posix() for p in found if isinstance(p, Path))
    skipped = sorted(
        (Path(s.path).relative_to(inbox).as_posix(), s.reason) for s in found if isinstance(s, Skipped)
    )
    assert files == ["same/a.txt"]  # (wire/ is reached through the link first, then again)
    assert skipped == [
        ("elsewhere", "outside_folder"),
        ("same/secret.txt", "outside_folder"),
        ("up", "outside_folder"),
        ("wire", "already_read"),
    ]
    everything = [p for p in walk(inbox) if isinstance(p, Path)]
    assert {p.name for p in everything} >= {"a.txt", "secret.txt"}


def test_a_url_too_malformed_to_parse_does_not_stop_the_lines_after_it(tmp_path: Path):
    path = tmp_path / "feed.jsonl"
    lines = [{"url": "http://[::1/a", "text": "Odd URL."}, {"url": "https://ok.example/b", "text": "Fine."}]
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    articles = _articles(iter_inputs([path]))
    assert [a.source.outlet for a in articles] == ["unknown", "ok.example"]


def test_archives_in_a_folder_are_named_relative_to_it_like_its_files(tmp_path: Path):
    # source.path is "relative to the folder the producer was given", whatever the input kind.
    (tmp_path / "wire").mkdir()
    (tmp_path / "wire" / "a.txt").write_text("Plain text article.")
    (tmp_path / "feeds").mkdir()
    (tmp_path / "feeds" / "feed.jsonl").write_text(json.dumps({"outlet": "metro", "text": "Hello."}) + "\n")
    write_warc(tmp_path / "feeds" / "crawl.warc.gz")
    paths = sorted(a.source.path.split("#")[0] for a in _articles(iter_inputs([tmp_path])))
    assert paths == ["feeds/crawl.warc.gz", "feeds/crawl.warc.gz", "feeds/feed.jsonl:1", "wire/a.txt"]


def test_an_outlet_argument_must_be_text():
    import argparse

    from newsflow.producer.sources import outlet_argument

    assert outlet_argument(" bbc ") == "bbc"
    for bad in (b"x\xff".decode("utf-8", "surrogateescape"), "  "):  # bytes a shell passed; nothing
        with pytest.raises(argparse.ArgumentTypeError):
            outlet_argument(bad)


def test_json_lines_saved_with_a_byte_order_mark_lose_no_line_and_a_blank_outlet_names_none(tmp_path: Path):
    # Windows tools (Notepad, PowerShell's Out-File) start a UTF-8 file with a byte order mark.
    lines = [
        json.dumps({"url": "https://wire.example/1", "text": "First report."}),
        json.dumps({"outlet": "   ", "url": "https://metro.example/2", "text": "Second report."}),
        json.dumps({"outlet": " metro ", "text": "Third report."}),
    ]
    path = tmp_path / "feed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\n".join(lines).encode() + b"\n")
    items = list(iter_inputs([path]))
    assert not [i for i in items if isinstance(i, Skipped)]
    assert [a.source.outlet for a in _articles(items)] == ["wire.example", "metro.example", "metro"]
    # The operator's outlet is every article's.
    assert {a.source.outlet for a in _articles(iter_inputs([path], outlet="desk"))} == {"desk"}
    # The mark is no part of the first article: the same envelope is the same article anywhere.
    path.write_bytes("\n".join(lines).encode() + b"\n")
    assert [a.article_id for a in _articles(items)] == [a.article_id for a in _articles(iter_inputs([path]))]


def test_an_envelope_file_names_its_outlet_before_its_folder_as_a_json_line_does(tmp_path: Path):
    (tmp_path / "metro").mkdir()
    envelope = {"outlet": "wire-desk", "url": "https://wire.example/1", "text": "A report."}
    (tmp_path / "metro" / "one.json").write_text(json.dumps(envelope))
    (tmp_path / "metro" / "feed.jsonl").write_text(json.dumps(envelope) + "\n")
    (tmp_path / "metro" / "unnamed.json").write_text(json.dumps({**envelope, "outlet": None}))
    # Saved by Windows in UTF-16, or in a code page: the worker reads it, so its outlet counts.
    (tmp_path / "metro" / "utf16.json").write_bytes(
        json.dumps({**envelope, "text": "Café."}).encode("utf-16")
    )
    (tmp_path / "metro" / "cp1252.json").write_bytes(
        json.dumps({**envelope, "text": "Café."}, ensure_ascii=False).encode("cp1252")
    )
    outlets = {a.source.path: a.source.outlet for a in _articles(iter_inputs([tmp_path]))}
    assert outlets == {
        "metro/utf16.json": "wire-desk",
        "metro/cp1252.json": "wire-desk",
        "metro/one.json": "wire-desk",
        "metro/feed.jsonl:1": "wire-desk",
        "metro/unnamed.json": "metro",
    }


def test_a_link_that_leads_nowhere_is_unreadable_not_vanished(tmp_path: Path):
    (tmp_path / "dangling.txt").symlink_to(tmp_path / "never-was.txt")
    (tmp_path / "ok.txt").write_bytes(TEXT)
    items = list(iter_inputs([tmp_path]))
    skipped = [(Path(i.path).name, i.reason, i.detail) for i in items if isinstance(i, Skipped)]
    assert skipped == [("dangling.txt", "unreadable", "a link that leads nowhere: No such file or directory")]
    assert len(_articles(items)) == 1


def test_input_paths_that_cannot_be_read_are_named_with_their_reason_in_one_line(tmp_path: Path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "ok.txt").write_bytes(TEXT)
    assert unusable_paths([str(tmp_path / "ok.txt"), "-"]) is None
    problem = unusable_paths(["", str(tmp_path / "loop"), str(tmp_path / "gone.txt")])
    # '' would be the current folder: a script's unset variable must not ingest where it stands
    assert problem == (
        f"an empty path (''); {tmp_path / 'loop'}: Too many levels of symbolic links; "
        f"{tmp_path / 'gone.txt'}: No such file or directory"
    )


def test_the_producer_refuses_an_empty_path_before_it_reads_anything(capsys: pytest.CaptureFixture[str]):
    from newsflow.producer.__main__ import main

    assert main([""]) == 2
    assert capsys.readouterr().err == "newsflow-producer: error: an empty path ('')\n"


def test_a_warc_target_uri_in_angle_brackets_is_the_uri_inside_them(tmp_path: Path):
    path = tmp_path / "bracket.warc"
    path.write_bytes(
        record(
            "response",
            "<https://www.bracket.example/a>",
            response(200, "text/html", page("Text. " * 40).encode()),
        )
    )
    (article,) = _articles(iter_inputs([path]))
    assert (article.source.url, article.source.outlet) == ("https://www.bracket.example/a", "bracket.example")


def test_a_json_file_of_an_array_of_envelopes_gives_one_article_each_as_the_http_ingest_does(tmp_path: Path):
    envelopes = [
        {"url": "https://arr.example/1", "text": "First report."},
        {"outlet": "metro", "html": "<p>Second.</p>"},
        ["not", "an", "object"],
    ]
    (tmp_path / "wire").mkdir()
    (tmp_path / "wire" / "batch.json").write_bytes(b"\xef\xbb\xbf\n" + json.dumps(envelopes).encode())
    (tmp_path / "wire" / "none.json").write_text("[]")
    (tmp_path / "wire" / "one.json").write_text(
        json.dumps({"url": "https://arr.example/9", "text": "Alone."})
    )
    items = list(iter_inputs([tmp_path]))
    articles = _articles(items)
    by_path = {a.source.path: a for a in articles}
    assert set(by_path) == {"wire/batch.json[0]", "wire/batch.json[1]", "wire/one.json"}
    # An envelope's own outlet, else its folder's, as for a file of one envelope (not its URL's host:
    # one folder, one outlet).
    assert [
        by_path[p].source.outlet for p in ("wire/batch.json[0]", "wire/batch.json[1]", "wire/one.json")
    ] == [
        "wire",
        "metro",
        "wire",
    ]
    # Its id is the envelope's wherever it is found: the same as POST /articles' (which, as the
    # array, sends each envelope re-serialised), whatever the folder.
    (posted,) = _articles([envelope_article(jsonio.dumps(envelopes[0]), "POST /articles[0]", None)])
    assert (posted.article_id, posted.source.outlet) == (
        by_path["wire/batch.json[0]"].article_id,
        "arr.example",
    )
    forced = {a.source.path: a.source.outlet for a in _articles(list(iter_inputs([tmp_path], "forced")))}
    assert set(forced.values()) == {"forced"}  # --outlet names them all
    assert json.loads(by_path["wire/batch.json[0]"].payload) == envelopes[0]
    assert by_path["wire/batch.json[0]"].source.url == "https://arr.example/1"
    assert by_path["wire/one.json"].payload.startswith(b"{")  # a single envelope is sent as it is
    skipped = sorted((Path(i.path).name, i.reason) for i in items if isinstance(i, Skipped))
    assert skipped == [("batch.json[2]", "bad_line"), ("none.json", "empty")]
    # The same file read again gives the same ids.
    again = {a.source.path: a.article_id for a in _articles(list(iter_inputs([tmp_path])))}
    assert again == {p: a.article_id for p, a in by_path.items()}


def test_every_skip_reason_the_producer_gives_is_known_and_counted_from_zero():
    """The producer's skips are a bounded vocabulary (SKIP_REASONS), each a series at 0 from
    start-up: the dashboard's rate() sees a file's first skip of any reason."""
    import re

    from prometheus_client import CollectorRegistry

    from newsflow.producer.metrics import create_metrics
    from newsflow.producer.sources import SKIP_REASONS

    source = "".join(p.read_text() for p in (ROOT / "services" / "newsflow" / "producer").glob("*.py"))
    given = set(re.findall(r'Skipped\(\s*[^()]*?(?:\([^()]*\))?[^()]*?,\s*"([a-z_]+)"', source))
    assert given and given <= set(SKIP_REASONS), given - set(SKIP_REASONS)
    registry = CollectorRegistry()
    create_metrics(registry)
    zero = {
        s.labels["reason"]
        for family in registry.collect()
        if family.name == "newsflow_producer_files"
        for s in family.samples
        if s.name.endswith("_total") and s.labels["outcome"] == "skipped" and s.value == 0
    }
    assert zero == set(SKIP_REASONS)


def test_a_file_swapped_for_a_link_after_the_listing_is_not_read_out_of_the_folder(tmp_path: Path):
    """The walk skips links out of a watched folder, but a file listed as regular can be swapped
    for one (or a folder on its path for a link) before it is read: the file opened is checked."""
    from newsflow.producer.sources import iter_file

    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    (inbox / "wire").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "secret.txt").write_bytes(TEXT)
    (elsewhere / "feed.jsonl").write_text(
        json.dumps({"url": "https://x.example/1", "text": "Secret."}) + "\n"
    )
    (inbox / "wire" / "a.txt").symlink_to(elsewhere / "secret.txt")  # swapped in after the listing
    (inbox / "wire" / "feed.jsonl").symlink_to(elsewhere / "feed.jsonl")
    (inbox / "moved").symlink_to(elsewhere)  # a folder on the path
    within = inbox.resolve()
    for path in (inbox / "wire" / "a.txt", inbox / "wire" / "feed.jsonl", inbox / "moved" / "secret.txt"):
        (item,) = iter_file(inbox, path, within=within)
        assert isinstance(item, Skipped) and item.reason == "outside_folder", item
    (inbox / "wire" / "b.txt").write_bytes(TEXT)
    (inbox / "wire" / "c.txt").symlink_to("b.txt")  # a link within the folder is read
    assert all(
        isinstance(i, RawArticle)
        for p in ("b.txt", "c.txt")
        for i in iter_file(inbox, inbox / "wire" / p, within=within)
    )
    (item,) = iter_file(inbox, inbox / "wire" / "a.txt")  # named on the command line: followed
    assert isinstance(item, RawArticle)
