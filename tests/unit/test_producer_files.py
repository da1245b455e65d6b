from __future__ import annotations

from pathlib import Path

from newsflow.pipeline.records import RawArticle, raw_from_message, raw_headers
from newsflow.producer.__main__ import summary_line
from newsflow.producer.files import Skipped, iter_files, read_article
from tests.conftest import FIXTURES


def test_outlet_is_the_first_folder_below_the_root():
    root = FIXTURES / "articles"
    items = [read_article(r, p) for r, p in iter_files([root])]
    assert {i.source.outlet for i in items if isinstance(i, RawArticle)} == {"harbourtimes", "valleypost"}
    assert {i.source.content_type for i in items if isinstance(i, RawArticle)} == {
        "text/html",
        "application/json",
        "text/plain",
    }


def test_article_id_is_stable_and_depends_on_outlet_and_content(tmp_path: Path):
    f = tmp_path / "a.txt"
    f.write_text("Some news text.")
    a1 = read_article(tmp_path, f)
    a2 = read_article(tmp_path, f)
    other_outlet = read_article(tmp_path, f, outlet="metro")
    assert isinstance(a1, RawArticle) and isinstance(a2, RawArticle) and isinstance(other_outlet, RawArticle)
    assert a1.article_id == a2.article_id
    assert other_outlet.article_id != a1.article_id
    f.write_text("Some news text, updated.")
    a3 = read_article(tmp_path, f)
    assert isinstance(a3, RawArticle) and a3.article_id != a1.article_id


def test_unusable_files_are_skipped_with_a_reason(tmp_path: Path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    (tmp_path / "big.html").write_bytes(b"x" * 2000)
    (tmp_path / "broken.html.gz").write_bytes(b"not gzip")
    results = {p.name: read_article(tmp_path, p, max_bytes=1000) for _, p in iter_files([tmp_path])}
    assert results["empty.txt"] == Skipped(str(tmp_path / "empty.txt"), "empty")
    assert results["image.png"] == Skipped(str(tmp_path / "image.png"), "unsupported_extension")
    assert results["big.html"] == Skipped(str(tmp_path / "big.html"), "too_large")
    assert results["broken.html.gz"] == Skipped(str(tmp_path / "broken.html.gz"), "unreadable")


def test_headers_round_trip_to_the_same_raw_article():
    root = FIXTURES / "articles"
    raw = read_article(root, root / "harbourtimes" / "bridge-reopens.html")
    assert isinstance(raw, RawArticle)
    again = raw_from_message(raw.article_id.encode(), raw.payload, raw_headers(raw))
    assert again == raw


def test_message_without_provenance_is_rejected():
    result = raw_from_message(b"k", b"payload", [("content-type", b"image/png")])
    assert not isinstance(result, RawArticle) and result.reason == "unsupported_type"


def test_summary_line_counts_skips_by_reason():
    from collections import Counter

    tally = Counter({"sent": 3, "skipped:empty": 2, "skipped:too_large": 1})
    assert summary_line(tally) == "sent 3, skipped 3 (empty: 2, too_large: 1)"
