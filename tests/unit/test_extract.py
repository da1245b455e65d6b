from __future__ import annotations

import codecs
import json
from dataclasses import replace

import pytest

from newsflow.pipeline.decode import decode_payload
from newsflow.pipeline.enrich import Enriched, Enricher
from newsflow.pipeline.extract import ExtractOptions, extract_article, extract_html, warm_up
from newsflow.pipeline.language import _identifier
from newsflow.pipeline.records import CleanArticle, RawArticle, Rejection, Source
from tests.conftest import FIXTURES, raw_from_file

ARTICLES = FIXTURES / "articles"


def test_html_article_comes_out_with_metadata_and_paragraphs():
    article = extract_article(raw_from_file(ARTICLES / "harbourtimes" / "bridge-reopens.html", ARTICLES))
    assert isinstance(article, CleanArticle)
    assert article.source.outlet == "harbourtimes"
    assert article.title == "Old Harbour Bridge reopens after two-year repair"
    assert article.authors == ("Maria Jensen",)
    # the page's own timestamp, not the date its URL holds (which alone would be midnight UTC)
    assert article.published == "2025-03-14T09:30:00Z"
    assert article.published_status == "ok"
    assert article.site_name == "Harbour Times"
    assert article.url == "https://harbourtimes.example/news/2025/03/14/bridge-reopens"
    assert article.language is not None and article.language.code == "en"
    assert article.extraction.method == "trafilatura"
    assert article.extraction.status == "ok"
    lines = article.text.splitlines()
    assert lines[0].startswith("The Old Harbour Bridge reopened to traffic on Friday morning")
    assert lines[-1].startswith("The bridge will carry cars, buses and bicycles")
    assert len(lines) == 6  # one line per paragraph
    for noise in ("Home", "Related stories", "ferry timetable", "Get in touch", "All rights reserved"):
        assert noise not in article.text


def test_json_envelope_fields_are_carried_through():
    article = extract_article(raw_from_file(ARTICLES / "valleypost" / "bridge-traffic.json", ARTICLES))
    assert isinstance(article, CleanArticle)
    assert article.extraction.method == "envelope+plaintext"
    assert article.title == "Commuters return as harbour bridge opens again"
    assert article.published == "2025-03-14T00:00:00Z"  # a date alone is midnight UTC
    assert article.published_status == "ok"
    assert article.source.url == "https://valleypost.example/local/bridge-traffic"
    assert "Sign up to our newsletter" not in article.text
    assert article.text.startswith("Commuters crossed the Old Harbour Bridge")


def test_latin1_text_is_decoded_by_detection():
    article = extract_article(raw_from_file(ARTICLES / "valleypost" / "cafe-rules-latin1.txt", ARTICLES))
    assert isinstance(article, CleanArticle)
    assert "Café owners in Münster" in article.text


def test_declared_meta_charset_is_honoured():
    html = '<html><head><meta charset="windows-1251"></head><body><p>Привет</p></body></html>'.encode(
        "cp1251"
    )
    decoded = decode_payload(html, "text/html", is_html=True)
    assert decoded == (html.decode("cp1251"), "cp1251")


def test_utf8_wins_over_a_wrong_latin1_declaration():
    html = '<html><head><meta charset="iso-8859-1"></head><body><p>Zürich – Genève</p></body></html>'.encode()
    text, encoding = decode_payload(html, "text/html", is_html=True)  # type: ignore[misc]
    assert encoding == "utf-8" and "Zürich – Genève" in text


def test_empty_and_oversized_inputs_are_rejected_with_a_reason():
    raw = raw_from_file(ARTICLES / "valleypost" / "bridge-traffic.json", ARTICLES)
    empty = extract_article(replace(raw, payload=b"  \n "))
    assert isinstance(empty, Rejection) and empty.reason == "empty"
    big = extract_article(raw, ExtractOptions(max_input_bytes=100))
    assert isinstance(big, Rejection) and big.reason == "too_large"


def test_envelope_without_body_is_rejected():
    raw = raw_from_file(FIXTURES / "bad" / "no-body.json")
    result = extract_article(raw)
    assert isinstance(result, Rejection) and result.reason == "bad_envelope"


def _envelope_file(tmp_path, envelope: dict) -> RawArticle:
    (tmp_path / "wire").mkdir(exist_ok=True)
    path = tmp_path / "wire" / "story.json"
    path.write_text(json.dumps(envelope))
    return raw_from_file(path, tmp_path)


FERRIES = {"url": "https://wire.example/1", "text": "Ferries resumed on Monday. " * 20}


@pytest.mark.parametrize(
    ("fields", "authors", "published"),
    [
        ({"authors": [None, "Anna Berg"]}, ("Anna Berg",), None),
        ({"author": {"@type": "Person", "name": "Anna Berg"}}, ("Anna Berg",), None),  # JSON-LD
        ({"authors": [{"name": "Anna Berg"}, {"name": "Li Wei"}]}, ("Anna Berg", "Li Wei"), None),
        ({"published": 1733390000}, (), "2024-12-05T09:13:20Z"),  # a Unix time
        ({"published": 1733390000000}, (), "2024-12-05T09:13:20Z"),  # in milliseconds
    ],
)
def test_an_envelope_names_authors_and_dates_as_senders_write_them(
    tmp_path, fields: dict, authors, published
):
    article = extract_article(_envelope_file(tmp_path, {**FERRIES, **fields}))
    assert isinstance(article, CleanArticle)
    assert article.authors == authors and article.published == published


@pytest.mark.parametrize(
    ("fields", "detail"),
    [
        (
            {"authors": [1, None, "Anna Berg"]},
            "'authors' must be a string, or a list of strings or of objects",
        ),
        ({"published": True}, "'published' must be a string or a Unix time"),
        ({"title": {"text": "Ferries"}}, "'title' must be a string"),
    ],
)
def test_an_envelope_file_with_a_field_of_another_type_is_a_dead_letter_as_a_line_is_a_bad_line(
    tmp_path, fields: dict, detail: str
):
    from newsflow.producer.sources import Skipped, envelope_article

    envelope = {**FERRIES, **fields}
    result = extract_article(_envelope_file(tmp_path, envelope))
    assert (
        isinstance(result, Rejection) and result.reason == "bad_envelope" and result.detail.startswith(detail)
    )
    line = envelope_article(json.dumps(envelope).encode(), "feed.jsonl:1", None)
    assert isinstance(line, Skipped) and line.reason == "bad_line" and line.detail.startswith(detail)


def test_binary_garbage_is_rejected_not_crashing():
    raw = raw_from_file(FIXTURES / "bad" / "no-body.json")
    result = extract_article(
        replace(raw, payload=bytes(range(256)) * 4, source=replace(raw.source, content_type="text/plain"))
    )
    assert isinstance(result, Rejection) and result.reason == "undecodable"


def test_page_without_article_text_is_flagged_not_rejected():
    raw = raw_from_file(ARTICLES / "harbourtimes" / "bridge-reopens.html", ARTICLES)
    nav_only = b"<html><body><nav><a href='/'>Home</a> <a href='/news'>News</a></nav></body></html>"
    article = extract_article(replace(raw, payload=nav_only))
    assert isinstance(article, CleanArticle)
    assert article.extraction.status in ("empty", "not_article")


def test_a_parse_over_the_time_bound_is_rejected_and_the_next_one_runs():
    raw = raw_from_file(ARTICLES / "harbourtimes" / "bridge-reopens.html", ARTICLES)
    paragraphs = "".join(
        f"<p>Paragraph {i} of a very long page about the bridge works.</p>" for i in range(4000)
    )
    slow = replace(raw, payload=f"<html><body><article>{paragraphs}</article></body></html>".encode())
    result = extract_article(slow, ExtractOptions(max_parse_seconds=0.01))
    assert isinstance(result, Rejection)
    assert (result.stage, result.reason) == ("extract", "timeout")
    assert "0.01 s" in result.detail
    # The bound was disarmed: the same page parses in full without one.
    assert isinstance(extract_article(slow, ExtractOptions(max_parse_seconds=0)), CleanArticle)


def test_warm_up_loads_the_language_model_before_the_first_article():
    _identifier.cache_clear()
    warm_up()
    assert _identifier.cache_info().currsize == 1


def test_utf8_with_a_stray_latin1_byte_stays_utf8():
    # One byte of Latin-1 pasted into a UTF-8 text: one replacement character, as a browser shows
    # it, not the whole text read in a single-byte code page ("DĂĽsseldorf").
    text = "Düsseldorf, Zürich und Málaga: die Tour geht weiter, sagte der Veranstalter."
    payload = text.encode().replace(b"Tour", b"T\xfcr")
    assert decode_payload(payload) == (text.replace("Tour", "T\ufffdr"), "utf-8")
    # Also where the server declares a single-byte charset by default, which reads any bytes.
    assert decode_payload(payload, "text/html; charset=iso-8859-1")[1] == "utf-8"  # type: ignore[index]
    # A curly quote is three well-formed bytes against the stray one.
    quoted = "The mayor’s plan for the café".encode().replace("é".encode(), b"\xe9")
    assert decode_payload(quoted) == ("The mayor’s plan for the caf\ufffd", "utf-8")
    # Legacy text with a byte pair that happens to be well-formed UTF-8 stays legacy text.
    legacy = "Ã\u00a0 la carte: Café owners in Münster and Zürich say “no” to the new rules.".encode("cp1252")
    assert decode_payload(legacy)[1] == "cp1252"  # type: ignore[index]


def test_utf16_without_a_bom_is_text_not_binary():
    text = "The council approved the new budget on Tuesday after a long debate. " * 10
    for encoding in ("utf-16-le", "utf-16-be"):
        raw = RawArticle(
            "u16", text.encode(encoding), Source("u.txt", "o", "text/plain", "2025-03-14T09:00:00Z")
        )
        article = extract_article(raw)
        assert isinstance(article, CleanArticle)
        assert article.extraction.encoding == encoding and article.text.startswith("The council")


def test_a_page_declaring_utf16_in_ascii_markup_is_read_as_utf8():
    html = '<html><head><meta charset="utf-16"></head><body><article><p>' + "Die Brücke ist offen. " * 30
    raw = RawArticle(
        "m", (html + "</p></article></body></html>").encode(), Source("m.html", "o", "text/html", "")
    )
    article = extract_article(raw)
    assert isinstance(article, CleanArticle) and "Brücke" in article.text


def test_an_empty_extraction_says_why():
    deep = (
        "<html><body>"
        + "<div>" * 1000
        + "<p>"
        + "Text deep inside the page. " * 50
        + "</p>"
        + "</div>" * 1000
    )
    raw = RawArticle("d", deep.encode(), Source("d.html", "o", "text/html", ""))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle)
    assert (article.extraction.status, article.extraction.reason) == ("empty", "markup_too_deep")
    blank = RawArticle(
        "b", b"<html><body><script>var x = 1;</script></body></html>", Source("b.html", "o", "text/html", "")
    )
    nothing = extract_article(blank)
    assert isinstance(nothing, CleanArticle)
    assert (nothing.extraction.status, nothing.extraction.reason) == ("empty", "no_text_found")


def test_a_page_without_main_text_keeps_its_title_url_and_date():
    stub = (
        "<html><head><title>Watch: ferries return to the harbour</title>"
        '<link rel="canonical" href="https://www.harbour.example/video/ferries">'
        '<meta property="article:published_time" content="2026-12-05T08:00:00Z"></head>'
        "<body><video src=ferries.mp4></video></body></html>"
    )
    page = extract_article(RawArticle("v", stub.encode(), Source("v.html", "unknown", "text/html", "")))
    assert isinstance(page, CleanArticle) and page.extraction.status == "empty"
    assert page.title == "Watch: ferries return to the harbour"
    assert page.url == "https://www.harbour.example/video/ferries"
    assert page.published == "2026-12-05T08:00:00Z"
    assert page.source.outlet == "harbour.example"


def _page(body: str) -> RawArticle:
    html = f"<html><head><title>Ferry fares</title></head><body><article>{body}</article></body></html>"
    return RawArticle("links", html.encode(), Source("harbourtimes", "links.html", "text/html", ""))


def test_a_line_that_is_a_whole_link_to_another_story_is_dropped_and_prose_with_links_is_kept():
    prose = [
        "The harbour authority raised ferry fares by ten percent on Monday, citing fuel costs.",
        'Commuters told the <a href="/council">city council</a> the rise would cost them a week of wages a year.',
        "The authority said it would review the fares again in the spring, after the new boats arrive.",
        "A season ticket will now cost more than a monthly bus pass for the first time since 1998.",
    ]
    # Promo headlines between paragraphs (a heading that is a link), which the extractor keeps.
    teaser = '<h3><a href="/news/bridge">Old Harbour Bridge reopens after two-year repair</a></h3>'
    short = '<h3><a href="/fares">Fares explained</a></h3>'  # too short to tell from a subheading
    body = "".join(f"<p>{p}</p>" for p in prose[:2]) + teaser + short
    body += "".join(f"<p>{p}</p>" for p in prose[2:])
    page = _page(body)
    # The extractor alone keeps the promo headline: the line rule is what drops it.
    assert "Old Harbour Bridge reopens" in extract_html(page.payload.decode(), None, ExtractOptions())["text"]
    article = extract_article(page)
    assert isinstance(article, CleanArticle)
    assert "Old Harbour Bridge reopens" not in article.text
    assert "Commuters told the city council the rise would cost them" in article.text
    assert "Fares explained" in article.text
    assert len(article.text.splitlines()) == 5
    assert article.extraction.boilerplate_removed == 1


@pytest.mark.parametrize(
    "canonical",
    [
        None,
        # A date in the URL says less than the page's own timestamp: it must not win over it.
        "https://harbour.example/world/ferries-resume-2026-12-05/",
        "https://harbour.example/2026/12/05/ferries-resume",
    ],
)
def test_a_publication_time_with_an_offset_keeps_its_time_of_day_in_utc(canonical):
    # 08:00 in Sydney is 22:00 UTC the day before; a date alone would say midnight of the 5th.
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    page = (
        '<html><head><meta property="article:published_time" content="2026-12-05T08:00:00+10:00">'
        f"<title>Harbour ferries resume</title>{link}</head><body><article>"
        + "<p>Ferries resumed across the harbour on Saturday morning after a two-day strike ended.</p>" * 4
        + "</article></body></html>"
    )
    raw = RawArticle("t1", page.encode(), Source("a.html", "sydney", "text/html", "2026-12-05T00:00:00Z"))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle)
    assert (article.published, article.published_status) == ("2026-12-04T22:00:00Z", "ok")


def test_a_date_in_the_url_is_used_when_the_page_gives_none():
    page = (
        '<html><head><title>Harbour ferries resume</title><link rel="canonical" '
        'href="https://harbour.example/2026/12/05/ferries-resume"></head><body><article>'
        + "<p>Ferries resumed across the harbour on Saturday morning after a two-day strike ended.</p>" * 4
        + "</article></body></html>"
    )
    raw = RawArticle("t1", page.encode(), Source("a.html", "sydney", "text/html", "2026-12-06T00:00:00Z"))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle)
    assert article.published == "2026-12-05T00:00:00Z"


def _ferry_page(canonical: str | None, outlet: str) -> RawArticle:
    link = f'<link rel="canonical" href="{canonical}">' if canonical else ""
    body = "".join(
        f"<p>The ferry service resumed on route {n} after the storm, the operator said.</p>" for n in range(6)
    )
    html = (
        f"<html><head><title>Ferries resume</title>{link}</head><body><article>{body}</article></body></html>"
    )
    return RawArticle(
        "p1", html.encode(), Source("ferries.html", outlet, "text/html", "2025-03-14T08:00:00Z")
    )


def test_a_page_that_came_under_no_outlet_is_its_sites_and_a_named_outlet_wins():
    flat = extract_article(
        raw_from_file(ARTICLES / "harbourtimes" / "bridge-reopens.html")
    )  # no outlet folder
    assert isinstance(flat, CleanArticle) and flat.source.outlet == "harbourtimes.example"
    named = extract_article(_ferry_page("https://www.tidings.example/ferries", "harbourtimes"))
    assert isinstance(named, CleanArticle) and named.source.outlet == "harbourtimes"
    site = extract_article(_ferry_page("https://www.tidings.example/ferries", "unknown"))
    assert isinstance(site, CleanArticle) and site.source.outlet == "tidings.example"
    nowhere = extract_article(_ferry_page(None, "unknown"))
    assert isinstance(nowhere, CleanArticle) and nowhere.source.outlet == "unknown"
    envelope = b'{"url": "https://www.tidings.example/ferries", "text": "Ferries resumed on Monday."}'
    sent = extract_article(RawArticle("e", envelope, Source("e.json", "unknown", "application/json", "")))
    assert isinstance(sent, CleanArticle) and sent.source.outlet == "tidings.example"
    text = extract_article(raw_from_file(ARTICLES / "valleypost" / "cafe-rules-latin1.txt"))
    assert isinstance(text, CleanArticle) and text.source.outlet == "unknown"  # a text names no site


def test_the_outlet_an_article_names_is_the_one_its_boilerplate_is_learned_and_removed_under():
    enricher = Enricher()
    footer = "Tidings: ferries, tides and the town, every day."
    harbours = "north south east west upper lower old new inner outer far near".split()
    for n, harbour in enumerate(harbours):
        page = _ferry_page(f"https://tidings.example/{n}", "unknown")
        html = page.payload.replace(b"The ferry", f"The {harbour} harbour ferry".encode()).replace(
            b"</article>", f"<p>Report {n} of the day.</p><p>{footer}</p></article>".encode()
        )
        result = enricher.clean(replace(page, article_id=f"p{n}", payload=html))
        assert isinstance(result, Enriched) and result.article.source.outlet == "tidings.example"
    assert set(enricher.boilerplate.outlets) == {"tidings.example"}
    assert footer not in result.article.text  # learned from the site's pages, then removed


def test_an_article_its_outlet_repeats_is_not_erased_as_the_outlets_boilerplate():
    """Learned boilerplate is what an outlet repeats around its articles: a report it sends again
    and again, or a template report whose lines differ in their figures only, is all repeated
    lines, and keeps its text (a copy is for the dedup stage to find). A footer still goes."""
    enricher = Enricher()
    report = (
        "The DAX closed at {0},{1}00 points on Tuesday, up {1}.{0} percent, as carmakers gained.\n"
        "Trading volume was {1}{0} million shares, against a {0}{1} million average this month.\n"
        "The euro traded at 1.0{1}{0} dollars in Frankfurt late in the afternoon session.\n"
        "Bund yields fell {0} basis points to 2.{1}{0} percent, the lowest level since March."
    )
    footer = "Markets Daily: figures from the exchange, compiled by our desk every evening."
    texts = []
    for n in range(12):
        body = report.format(n % 10, (n + 3) % 10) + f"\n{footer}"
        raw = RawArticle(f"m{n}", body.encode(), Source(f"m{n}.txt", "markets", "text/plain", ""))
        result = enricher.clean(raw)
        assert isinstance(result, Enriched)
        texts.append(result.article)
    for n, article in enumerate(texts):
        assert article.text.startswith("The DAX closed at") and article.extraction.status == "ok", n
    # Articles with their own text: the footer the outlet repeats is removed from them.
    story = "\n".join(
        f"Paragraph {w} tells how the {w} market moved on news from the central bank." for w in "abc"
    )
    own = enricher.clean(
        RawArticle("own", f"{story}\n{footer}".encode(), Source("own.txt", "markets", "text/plain", ""))
    )
    assert isinstance(own, Enriched) and own.article.text == story
    assert own.article.extraction.boilerplate_removed >= 1


def test_a_few_words_left_of_a_page_read_in_part_are_not_an_article():
    """A text cut at max_text_chars or read in part is `truncated`, unless what is left is too
    short to be an article: then `not_article`, so that it opens no story."""
    word = RawArticle("word", b"x" * 5000, Source("word.txt", "wire", "text/plain", ""))
    article = extract_article(word, ExtractOptions(max_text_chars=1000))
    assert isinstance(article, CleanArticle) and article.extraction.status == "not_article"
    long = " ".join(["The council met on Tuesday about roads."] * 200).encode()
    cut = extract_article(
        RawArticle("long", long, Source("long.txt", "wire", "text/plain", "")),
        ExtractOptions(max_text_chars=1000),
    )
    assert isinstance(cut, CleanArticle) and cut.extraction.status == "truncated"


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        (
            "cp1252",
            "Café in Zürich: Swiss banks report record profits. UBS said on Tuesday its income doubled.",
        ),
        ("cp1252", "José Muñoz, the mayor of Málaga, said the new port will open in spring."),
        ("cp1252", "Naïve visitors ordered crème brûlée at the café near the Hôtel de Ville."),
        ("cp1252", "El presidente del Gobierno español anunció el lunes una reducción de impuestos."),
        ("latin-1", "Reykjavík: Íslendingar kusu á laugardaginn nýjan forseta, sagði kjörstjórnin."),
        ("cp1250", "Předseda vlády řekl, že vláda schválí nový zákon o médiích příští týden."),
        ("cp1250", "Prezydent Polski powiedział, że rząd przygotuje nową ustawę o mediach."),
        ("cp1251", "Президент России Владимир Путин провёл переговоры с президентом США в пятницу."),
        ("cp1253", "Ο πρωθυπουργός της Ελλάδας συναντήθηκε με τον πρόεδρο της Κύπρου την Τρίτη."),
        ("cp1254", "Türkiye Cumhurbaşkanı salı günü Ankara'da yaptığı açıklamada yeni bir anlaşma duyurdu."),
    ],
)
def test_undeclared_legacy_text_is_read_in_the_code_page_whose_words_are_words(encoding, text):
    decoded = decode_payload(text.encode(encoding), "text/plain")
    assert not isinstance(decoded, Rejection)
    assert decoded[0] == text


@pytest.mark.parametrize(
    ("encoding", "text"),
    [
        (
            "shift_jis",
            "東京都は火曜日、新しい防災計画を発表した。住民の安全を守るための対策が盛り込まれている。",
        ),
        ("gbk", "北京市政府周二宣布了新的交通计划，以减少市中心的拥堵和空气污染。"),
        ("big5", "台北市政府週二宣布新的交通計畫，以減少市中心的壅塞和空氣污染。"),
        ("euc_kr", "서울시는 화요일 시내 교통 혼잡을 줄이기 위한 새로운 계획을 발표했다."),
    ],
)
def test_undeclared_multibyte_text_is_read_as_detected(encoding, text):
    decoded = decode_payload(text.encode(encoding), "text/plain")
    assert not isinstance(decoded, Rejection) and decoded[0] == text


def test_an_undeclared_legacy_page_is_judged_by_its_words_not_its_head():
    head = "<style>" + "body { margin: 0; padding: 0 } " * 200 + "</style>"  # 6 KB without a word of text
    body = "<p>Předseda vlády řekl, že vláda schválí nový zákon o médiích příští týden.</p>" * 3
    page = f"<html><head><title>Zprávy</title>{head}</head><body>{body}</body></html>"
    decoded = decode_payload(page.encode("cp1250"), "text/html", is_html=True)
    assert not isinstance(decoded, Rejection) and decoded[0] == page


def test_undeclared_legacy_text_with_only_typographic_marks_beyond_ascii_is_read_as_windows_1252():
    text = "The minister said \u201cwe will not give up\u201d \u2013 and left the room at 5pm\u2026"
    assert decode_payload(text.encode("cp1252"), "text/plain") == (text, "cp1252")


@pytest.mark.parametrize(
    ("title", "headline"),
    [
        ("Ferries resume - Harbour Times", "Ferries resume"),  # the site's name goes
        ("Ferries resume | harbourtimes.example", "Ferries resume"),
        ("Macron in Zürich – a historic deal", "Macron in Zürich – a historic deal"),
        (
            "Le président français visite Zürich – « accord historique »",
            "Le président français visite Zürich – « accord historique »",
        ),
        # a site whose name starts in lower case: named by its host, or its og:site_name
        ("Apple stellt neues iPhone vor | heise online", "Apple stellt neues iPhone vor"),
        ("Governo, nuovo decreto - la Gazzetta", "Governo, nuovo decreto"),
    ],
)
def test_a_headline_from_the_title_element_loses_the_sites_name_not_its_own_end(title, headline):
    body = "<p>The ferry service resumed on the northern route after the storm, the operator said.</p>" * 5
    head = '<link rel="canonical" href="https://www.heise.de/news/a"><meta property="og:site_name" content="La Gazzetta">'
    html = f"<html><head><title>{title}</title>{head}</head><body><article>{body}</article></body></html>"
    article = extract_article(RawArticle("t", html.encode(), Source("t.html", "o", "text/html", "")))
    assert isinstance(article, CleanArticle) and article.title == headline


def test_a_title_elements_part_names_the_site_only_in_whole_words():
    body = "<p>The ferry service resumed on the northern route after the storm, the operator said.</p>" * 5
    for title, headline in [
        ("Macron in Zürich - after the shift", "Macron in Zürich - after the shift"),  # "ft" inside
        ("Macron in Zürich - ft live", "Macron in Zürich"),
    ]:
        head = f'<title>{title}</title><link rel="canonical" href="https://www.ft.com/content/a">'
        html = f"<html><head>{head}</head><body><article>{body}</article></body></html>"
        article = extract_article(RawArticle("t", html.encode(), Source("t.html", "o", "text/html", "")))
        assert isinstance(article, CleanArticle) and article.title == headline, title


def test_a_headline_the_page_states_is_never_lengthened_by_its_title_element():
    body = "<p>The ferry service resumed on the northern route after the storm, the operator said.</p>" * 5
    head = "<title>Ferries resume | tidings weekly</title><meta property='og:title' content='Ferries resume'>"
    html = f"<html><head>{head}</head><body><article>{body}</article></body></html>"
    article = extract_article(RawArticle("t", html.encode(), Source("t.html", "o", "text/html", "")))
    assert isinstance(article, CleanArticle) and article.title == "Ferries resume"


@pytest.mark.parametrize(
    ("og_title", "site", "headline"),
    [
        ("Ferries resume | Harbour Times", "Harbour Times", "Ferries resume"),
        ("Harbour Times - Ferries resume", "Harbour Times", "Ferries resume"),
        ("Ferries resume - HarbourTimes.example", None, "Ferries resume"),  # the page's host, as a domain
        # Not the site's: a section, a headline naming the site, a part that only starts its name
        # ("Storm closes bridges - Boston" on bostonglobe.com), the host's name not written as one
        ("Ferries resume | Editorial", "Harbour Times", "Ferries resume | Editorial"),
        (
            "Take care - Harbour Times at the boat show",
            "Harbour Times",
            "Take care - Harbour Times at the boat show",
        ),
        ("Ferries resume | Harbour", "Harbour Times", "Ferries resume | Harbour"),
        ("Harbour - Ferries resume", "Harbour Times", "Harbour - Ferries resume"),
        ("Ferries resume - HarbourTimes", None, "Ferries resume - HarbourTimes"),
        ("Ferries resume - Harbour", "Harbour.example", "Ferries resume - Harbour"),  # "Boston" on Boston.com
        ("Ferries resume", "Harbour Times", "Ferries resume"),
        # Without og:site_name trafilatura guesses a site's name from the <title>, taking the part
        # with a dot: a guess, not a name the page states.
        ("U.S. ferries resume | Business", None, "U.S. ferries resume | Business"),
    ],
)
def test_a_stated_headline_loses_the_sites_name_beside_it(og_title, site, headline):
    body = "<p>The ferry service resumed on the northern route after the storm, the operator said.</p>" * 5
    site_meta = f'<meta property="og:site_name" content="{site}">' if site else ""
    head = (
        f'<title>{og_title}</title><meta property="og:title" content="{og_title}">{site_meta}'
        '<link rel="canonical" href="https://harbourtimes.example/news/ferries">'
    )
    html = f"<html><head>{head}</head><body><article>{body}</article></body></html>"
    article = extract_article(RawArticle("t", html.encode(), Source("t.html", "o", "text/html", "")))
    assert isinstance(article, CleanArticle) and article.title == headline


def test_a_page_saved_as_text_is_read_as_a_page_and_text_about_html_stays_text():
    page = (ARTICLES / "harbourtimes" / "bridge-reopens.html").read_bytes()
    saved = extract_article(RawArticle("s", page, Source("bridge.txt", "o", "text/plain", "")))
    assert isinstance(saved, CleanArticle) and saved.extraction.method == "trafilatura"
    assert saved.title == "Old Harbour Bridge reopens after two-year repair" and "<" not in saved.text
    xhtml = b'<?xml version="1.0" encoding="utf-8"?>\n' + page
    saved_xhtml = extract_article(RawArticle("x", xhtml, Source("bridge.txt", "o", "text/plain", "")))
    assert isinstance(saved_xhtml, CleanArticle) and saved_xhtml.extraction.method == "trafilatura"
    utf16 = page.decode().encode("utf-16")  # with its byte order mark, as Windows saves it
    saved_utf16 = extract_article(RawArticle("u", utf16, Source("bridge.txt", "o", "text/plain", "")))
    assert isinstance(saved_utf16, CleanArticle) and saved_utf16.extraction.method == "trafilatura"
    assert saved_utf16.title == saved.title and saved_utf16.text == saved.text
    prose = b"The <html> tag opens every web page, the course notes say, and students learn it first. " * 3
    text = extract_article(RawArticle("p", prose, Source("notes.txt", "o", "text/plain", "")))
    assert isinstance(text, CleanArticle) and text.extraction.method == "plaintext"


JAPANESE_REPORT = (
    "気象庁によると、六日午前、東北地方の太平洋沖を震源とする地震があり、宮城県で震度五強を観測した。\n"
    "この地震による津波の心配はないという。各地の鉄道は安全確認のため一時運転を見合わせた。\n"
    "宮城県内では、住宅の窓ガラスが割れるなどの被害が報告されているが、けが人の情報は入っていない。\n"
    "気象庁は今後一週間ほどは同じ程度の揺れに注意するよう呼びかけている。"
)


@pytest.mark.parametrize(
    ("text", "status"),
    [
        (JAPANESE_REPORT, "ok"),  # four paragraphs, no spaces: about a hundred words
        ("地震があり、宮城県で震度五強を観測した。", "not_article"),  # a one-line flash
        ("据新华社报道，" * 12 + "当地政府已启动应急预案，救援人员正在现场搜救被困人员。", "ok"),
        # Thai leaves words unspaced too, but its letters carry separate vowel and tone marks: a
        # one-line flash of some seventeen words stays one.
        ("ด่วน! แผ่นดินไหวขนาด 6.2 เขย่าภาคเหนือของประเทศไทย ประชาชนในเชียงใหม่รู้สึกได้ถึงแรงสั่นสะเทือน", "not_article"),
    ],
)
def test_texts_written_without_spaces_are_counted_in_words(tmp_path, text: str, status: str):
    (tmp_path / "wire").mkdir()
    path = tmp_path / "wire" / "report.txt"
    path.write_text(text, encoding="utf-8")
    article = extract_article(raw_from_file(path, tmp_path))
    assert isinstance(article, CleanArticle)
    assert article.extraction.status == status
    assert (article.word_count >= 40) == (status == "ok")


@pytest.mark.parametrize(
    "href",
    [
        "https://www.harbour.example/news/ferries-resume-1",
        "//WWW.Harbour.Example/news/ferries-resume-1?utm_source=twitter",  # normalised as trafilatura does
    ],
)
def test_a_canonical_link_the_markup_pushed_into_the_body_still_names_the_page(href: str):
    # A script or stray element that closes <head> early leaves the canonical link in the body,
    # where trafilatura does not look: the page's URL and, without an outlet folder, its outlet.
    paragraph = (
        b"<p>Ferries resumed on Monday after a week of storms kept them in port, the operator said.</p>"
    )
    html = (
        b"<html><head><title>Ferries resume</title></head><body><div>menu</div>"
        + f"<link rel='canonical' href='{href}'>".encode()
        + b"<article><h1>Ferries resume</h1>"
        + paragraph * 8
        + b"</article></body></html>"
    )
    raw = RawArticle(
        article_id="x",
        payload=html,
        source=Source(
            path="a.html", outlet="unknown", content_type="text/html", received_at="2026-12-06T00:00:00Z"
        ),
    )
    article = extract_article(raw)
    assert isinstance(article, CleanArticle)
    assert article.url == "https://www.harbour.example/news/ferries-resume-1"
    assert article.source.outlet == "harbour.example"


def test_a_file_saved_with_a_byte_order_mark_reads_as_without_it(tmp_path):
    body = "Ferries resumed on Monday after the storm. " * 10
    (tmp_path / "wire").mkdir()
    (tmp_path / "wire" / "ferries.txt").write_bytes(b"\xef\xbb\xbf" + body.encode())
    (tmp_path / "wire" / "ferries.json").write_bytes(b"\xef\xbb\xbf" + json.dumps({"text": body}).encode())
    for name in ("ferries.txt", "ferries.json"):
        article = extract_article(raw_from_file(tmp_path / "wire" / name, tmp_path))
        assert isinstance(article, CleanArticle), article
        assert article.text == body.strip() and article.extraction.encoding == "utf-8"


@pytest.mark.parametrize("envelope", [{"html": "   "}, {"text": ""}, {"html": " ", "text": "\n"}])
def test_an_envelope_file_without_any_text_is_a_dead_letter_as_a_line_is_a_bad_line(tmp_path, envelope):
    result = extract_article(_envelope_file(tmp_path, envelope))
    assert isinstance(result, Rejection) and result.reason == "bad_envelope"
    assert result.detail == "no 'html' or 'text' string with anything in it"


def test_the_outlet_the_producer_gave_is_the_articles_and_the_envelope_names_it_where_it_gave_none(tmp_path):
    envelope = {"outlet": "envelope-outlet", "url": "https://host.example/a", "text": FERRIES["text"]}

    def outlet_of(envelope: dict, given: str | None = None) -> str:
        raw = _envelope_file(tmp_path, envelope)  # a file under wire/
        if given:
            raw = replace(raw, source=replace(raw.source, outlet=given))
        article = extract_article(raw)
        assert isinstance(article, CleanArticle), article
        return article.source.outlet

    # The producer's: an envelope file names its own, as a JSON line does, before its folder's.
    assert outlet_of(envelope) == "envelope-outlet"
    assert outlet_of({**envelope, "outlet": " "}) == "wire"
    # The worker keeps what the message's header says (--outlet), and reads the envelope where
    # the header names none (another producer's message).
    assert outlet_of(envelope, given="desk") == "desk"
    assert outlet_of(envelope, given="unknown") == "envelope-outlet"
    assert outlet_of({**envelope, "outlet": "  "}, given="unknown") == "host.example"


def test_an_envelopes_text_is_used_when_its_html_yields_less_than_half_of_it(tmp_path):
    report = "Fire broke out at the port of Genoa on Tuesday, and two warehouses burned down. " * 6
    teaser = {**FERRIES, "text": report, "html": "<div class='teaser'><b>Fire at Genoa port</b></div>"}
    article = extract_article(_envelope_file(tmp_path, teaser))
    assert isinstance(article, CleanArticle) and article.extraction.method == "envelope+plaintext"
    assert article.text.startswith("Fire broke out at the port of Genoa")  # was '' (no_text_found)
    # A page that holds the report beats a sender's short summary.
    page = (
        "<html><body><article>"
        + "".join(f"<p>{s}.</p>" for s in report.split(". ") if s)
        + "</article></body></html>"
    )
    summary = {**FERRIES, "text": "Fire at Genoa port.", "html": page}
    article = extract_article(_envelope_file(tmp_path, summary))
    assert isinstance(article, CleanArticle) and article.extraction.method == "envelope+trafilatura"
    assert "two warehouses burned down" in article.text


_REEF = (
    "Divers found a coral reef off the coast of Queensland on Tuesday, scientists at the university said. "
    * 5
)


@pytest.mark.parametrize(
    "html",
    [f"<p>{_REEF}</p>", f"<div>{_REEF}</div>", _REEF, f"<p>{_REEF}<br>{_REEF}</p>"],
    ids=["paragraph", "div", "no markup", "paragraph with a break"],
)
def test_a_fragment_of_html_is_read_as_the_body_of_a_page(html):
    """A feed item's one paragraph, a .html file holding only a body's text: as a browser shows it."""
    raw = RawArticle("frag", html.encode(), Source("feed", "item.html", "text/html", "2026-01-01T00:00:00Z"))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle) and article.extraction.status == "ok"
    assert article.text.startswith("Divers found a coral reef") and article.extraction.method == "trafilatura"
    envelope = json.dumps({"html": html, "outlet": "feed"}).encode()
    raw = RawArticle("env", envelope, Source("feed", "item.json", "application/json", "2026-01-01T00:00:00Z"))
    assert extract_article(raw).text == article.text  # type: ignore[union-attr]


def _scripted_page(body_html: str, article_body: object) -> RawArticle:
    data = {
        "@context": "https://schema.org",
        "@graph": [
            {"@type": "WebSite"},
            {"@type": "NewsArticle", "headline": "Reef", "articleBody": article_body},
        ],
    }
    html = (
        f'<html><head><title>Reef</title><script type="application/ld+json">{json.dumps(data)}</script>'
        f"</head><body>{body_html}</body></html>"
    )
    return RawArticle(
        "jsonld", html.encode(), Source("site", "reef.html", "text/html", "2026-01-01T00:00:00Z")
    )


def test_a_page_drawn_by_script_gives_the_article_its_structured_data_holds():
    article = extract_article(_scripted_page('<div id="app">Loading...</div>', f"{_REEF}\n\n{_REEF}"))
    assert isinstance(article, CleanArticle) and article.extraction.status == "ok"
    assert article.text == f"{_REEF.strip()}\n{_REEF.strip()}"
    # Markup in it is read as a page's: its text, one paragraph a line.
    article = extract_article(_scripted_page("", f"<p>{_REEF}</p><p>Second &amp; last.</p>"))
    assert article.text == f"{_REEF.strip()}\nSecond & last."  # type: ignore[union-attr]


def test_a_page_with_its_text_keeps_it_over_a_shorter_structured_summary():
    body = "".join(f"<p>{_REEF} Paragraph {i}.</p>" for i in range(3))
    article = extract_article(_scripted_page(f"<article>{body}</article>", "Divers found a reef."))
    assert isinstance(article, CleanArticle) and "Paragraph 2." in article.text
    assert "Divers found a reef." not in article.text.split("\n")


def test_control_characters_an_envelope_carries_never_reach_a_record():
    """A title with a line break and terminal colour codes, an author with a bell: a record that
    prints on a terminal prints as text, each field on its line."""
    envelope = {
        "title": "Lyon trams\n\x1b[31mRED\x1b[0m",
        "authors": ["Ana\x07 Lopes"],
        "url": "https://example.org/a\x1b[2J",
        "text": f"{_REEF}\x1b[1mbold\x1b[0m\x00\n\x1b]0;window title\x07{_REEF}",
    }
    raw = RawArticle("ctl", json.dumps(envelope).encode(), Source("wire", "a.json", "application/json", ""))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle)
    assert (article.title, article.authors, article.url) == (
        "Lyon trams RED",
        ("Ana Lopes",),
        "https://example.org/a",
    )
    assert article.text == f"{_REEF}bold\n{_REEF.strip()}"


def test_a_book_length_page_is_read_only_as_far_as_twice_the_text_kept():
    """The extractor's time grows faster than a page: what lies past twice the text an article
    keeps (max_text_chars) is not read. Scripts and styles do not count as text."""
    import lxml.html

    from newsflow.pipeline.extract import cut_after

    paragraphs = "".join(f"<p>Paragraph {i:03d} says shares rose on demand.</p>" for i in range(300))
    script = f"<script>{'x' * 5000}</script>"
    tree = lxml.html.fromstring(
        f"<html><head>{script}</head><body><article>{paragraphs}</article></body></html>"
    )
    assert cut_after(tree, 400, 10_000)
    kept = [p.text for p in tree.iter("p")]
    assert kept == [f"Paragraph {i:03d} says shares rose on demand." for i in range(len(kept))]
    assert 400 / 41 <= len(kept) <= 400 / 41 + 1 and tree.find(".//script") is not None
    assert not cut_after(tree, 10_000, 10_000)  # a page within the bound is left whole
    page = f"<html><head><title>Markets</title></head><body><article>{paragraphs}</article></body></html>"
    raw = RawArticle("book", page.encode(), Source("wire", "book.html", "text/html", ""))
    article = extract_article(raw, ExtractOptions(max_text_chars=2000))
    assert isinstance(article, CleanArticle) and article.extraction.status == "truncated"
    assert article.text.startswith("Paragraph 000 says") and len(article.text) <= 2000


def test_a_page_of_countless_tiny_elements_is_read_only_as_far_as_its_first_elements():
    """A page's elements cost the extractor time whatever text they hold: past max_read_elements
    nothing is read, including what the last element read holds; the article before it is kept."""
    import lxml.html

    from newsflow.pipeline.extract import cut_after

    story = "".join(f"<p>Paragraph {i} says the council met on Tuesday about roads.</p>" for i in range(20))
    junk = "<div>" + "".join(f"<span>{i % 10}</span>" for i in range(5000)) + "</div>"
    page = f"<html><body><article>{story}</article>{junk}<footer><p>Footer.</p></footer></body></html>"
    tree = lxml.html.fromstring(page)
    assert cut_after(tree, 1_000_000, 100)
    assert sum(1 for _ in tree.iter()) <= 100
    assert len(tree.findall(".//article/p")) == 20 and tree.find(".//footer") is None
    whole = lxml.html.fromstring(page)
    assert not cut_after(whole, 1_000_000, 10_000) and whole.find(".//footer") is not None
    # The element the budget runs out at keeps nothing within it: a body of 5,000 spans is cut.
    nested = lxml.html.fromstring(page)
    assert cut_after(nested, 1_000_000, 3) and nested.find(".//span") is None
    raw = RawArticle("tiny", page.encode(), Source("wire", "tiny.html", "text/html", ""))
    article = extract_article(raw, ExtractOptions(max_read_elements=100))
    assert isinstance(article, CleanArticle) and "Paragraph 19 says" in article.text
    assert "Footer" not in article.text and article.extraction.status == "truncated"  # read in part
    whole = extract_article(raw, ExtractOptions(max_read_elements=10_000))
    assert isinstance(whole, CleanArticle) and whole.extraction.status == "ok"


def test_an_element_of_countless_attributes_keeps_its_first_ones_and_the_page_is_read():
    """libxml2's parse time grows with the square of one element's attributes, in one C call that
    the parse bound cannot interrupt: beyond MAX_TAG_ATTRIBUTES they are dropped before the parse.
    The tokenizer's reading holds: quoted values may hold ">" and "<", bare names count too."""
    from newsflow.pipeline.extract import MAX_TAG_ATTRIBUTES, with_attributes_bounded

    story = "".join(f"<p>Paragraph {i} says the council met on Tuesday about roads.</p>" for i in range(20))
    many = " ".join(f'a{i}="v>w<x"' if i % 2 else f"b{i}" for i in range(60_000))
    page = f"<html><body><div {many}><article>{story}</article></div></body></html>"
    bounded, cut = with_attributes_bounded(page)
    assert cut and len(bounded) < len(page) // 20
    import lxml.html

    (div,) = lxml.html.fromstring(bounded).iter("div")
    assert len(div.attrib) == MAX_TAG_ATTRIBUTES and div.get("a1") == "v>w<x" and "b0" in div.attrib
    raw = RawArticle("attrs", page.encode(), Source("attrs.html", "wire", "text/html", ""))
    article = extract_article(raw)  # 60,000 attributes: about half a minute of parsing unbounded
    assert isinstance(article, CleanArticle) and "Paragraph 19 says" in article.text
    assert article.extraction.status == "truncated"  # read in part
    # The element bound still applies to a page cut of attributes: what lies past it is not read.
    junk = "".join(f"<span>{i % 10}</span>" for i in range(5000))
    late = "<p>A late paragraph says the mayor will resign next week, officials confirmed on Monday.</p>"
    both = page.replace("</article>", f"<div>{junk}</div>{late}</article>")
    options = ExtractOptions(max_read_elements=100)
    article = extract_article(
        RawArticle("both", both.encode(), Source("both.html", "wire", "text/html", "")), options
    )
    assert (
        isinstance(article, CleanArticle)
        and "Paragraph 19 says" in article.text
        and "late paragraph" not in article.text
    )
    # A long tag of few attributes (an inline image, a style) is left as it is.
    image = f'<img alt="chart" src="data:image/png;base64,{"A" * 50_000}">'
    ordinary = f"<html><body>{image}<article>{story}</article></body></html>"
    assert with_attributes_bounded(ordinary) == (ordinary, False)
    assert with_attributes_bounded(page.replace(many, many[:4000])) == (
        page.replace(many, many[:4000]),
        False,
    )
    # A quote opens a value only after "=": a stray one ('class="story""', '27" monitor') is part
    # of a name, as the tokenizer reads it, and the article after it is read, not taken for a tag.
    quoted = "".join(f'<p>"We will pass {i}," the mayor said of the plan on Tuesday.</p>' for i in range(60))
    stray = f'<html><body><article class="story"">{quoted}<p>a 27" monitor.</p></article></body></html>'
    assert with_attributes_bounded(stray) == (stray, False)
    article = extract_article(
        RawArticle("stray", stray.encode(), Source("stray.html", "wire", "text/html", ""))
    )
    assert (
        isinstance(article, CleanArticle)
        and article.extraction.status == "ok"
        and "We will pass 59" in article.text
    )
    # Tags never closed, scripts never closed, "<" in scripts: one linear pass; what a tag that
    # runs to the end holds is its attributes, as for the tokenizer.
    unclosed = "<html><body><p>" + "<a " * 40_000
    bounded, cut = with_attributes_bounded(unclosed)
    assert cut and bounded.count("<a") == MAX_TAG_ATTRIBUTES + 1
    script = "<script>" + "if(i<n&&j<m){a[i]=b[j]+'x'}" * 8000 + "</script><p>After the script.</p>"
    assert with_attributes_bounded(script) == (script, False)
    assert with_attributes_bounded("<script>" * 50_000) == ("<script>" * 50_000, False)
    # Every way the tokenizer reads an attribute counts: no space after a quoted value, a start
    # tag of a raw-text element, a stray "=", markup after a comment closed at once ("<!-->") or
    # by "--!>", inside <noscript> (which libxml2 parses as markup); a self-closed tag stays so.
    n = 3 * MAX_TAG_ATTRIBUTES
    for evasive in (
        "<div " + "".join(f'a{i}=""' for i in range(n)) + "><p>x</p></div>",
        "<script " + " ".join(f"a{i}" for i in range(n)) + ">var a = 1 < 2;</script>",
        "<div = " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div>",
        "<!--><div " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div>",
        "<!-- --!><div " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div>",
        "<noscript><div " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div></noscript>",
        # a raw-text element's start tag closed by "/>" has no raw text for libxml2
        "<script/><div " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div>",
        # white space is HTML's: a no-break space is part of a name or a bare value
        '<div x=\xa0" ' + " ".join(f"a{i}" for i in range(n)) + ' "><p>x</p></div>',
        "<script\xa0><div " + " ".join(f"a{i}" for i in range(n)) + "><p>x</p></div>",
    ):
        bounded, cut = with_attributes_bounded(f"<html><body>{evasive}</body></html>")
        assert (
            cut and max(len(e.attrib) for e in lxml.html.fromstring(bounded).iter()) == MAX_TAG_ATTRIBUTES
        ), evasive[:20]
    closed = "<svg><path " + " ".join(f"a{i}" for i in range(n)) + "/><circle r='1'/></svg>"
    (path,) = lxml.html.fromstring(with_attributes_bounded(f"<html><body>{closed}</body></html>")[0]).iter(
        "path"
    )
    assert len(path) == 0  # the circle is its sibling, not its child
    # A bare value ending in "/" does not make an element self-closed.
    opened = "<div " + " ".join(f"a{i}" for i in range(n)) + " href=/x/><p>child</p></div>"
    (div,) = lxml.html.fromstring(with_attributes_bounded(f"<html><body>{opened}</body></html>")[0]).iter(
        "div"
    )
    assert [child.tag for child in div] == ["p"]
    # A page of many elements of many short attributes is held to MAX_PAGE_ATTRIBUTES in all.
    from newsflow.pipeline.extract import MAX_PAGE_ATTRIBUTES

    names = " ".join(chr(97 + j // 26) + chr(97 + j % 26) for j in range(676))
    heavy = "<html><body>" + f"<p {names}>x</p>" * 2400
    bounded, cut = with_attributes_bounded(heavy)
    assert cut and len(lxml.html.fromstring(bounded).xpath("//@*")) == MAX_PAGE_ATTRIBUTES


def test_the_markup_of_a_json_ld_article_body_is_bounded_as_a_page_is(monkeypatch: pytest.MonkeyPatch):
    import lxml.html

    from newsflow.pipeline import extract
    from newsflow.pipeline.extract import MAX_TAG_ATTRIBUTES, structured_body

    parsed: list[str] = []
    parse = lxml.html.fragment_fromstring
    monkeypatch.setattr(
        lxml.html, "fragment_fromstring", lambda html, **kw: parsed.append(html) or parse(html, **kw)
    )
    body = "<div " + " ".join(f"a{i}" for i in range(60_000)) + "><p>Body of the article.</p></div>"
    ld = json.dumps({"@type": "NewsArticle", "articleBody": body})
    page = f'<html><head><script type="application/ld+json">{ld}</script></head><body></body></html>'
    assert structured_body(lxml.html.fromstring(page)) == "Body of the article."
    (html,) = parsed
    assert (
        len(lxml.html.fromstring(html).xpath("//@*")) == MAX_TAG_ATTRIBUTES and extract.lxml.html is lxml.html
    )


def test_a_fragment_of_html_saved_as_text_is_read_as_a_page_and_a_pdf_named_a_page_is_refused():
    """A .txt that holds a feed item's markup is read as a page's body, not as text with tags; a
    text that merely mentions a tag is text; a PDF (uncompressed, so its bytes decode as text) is
    no article whatever its name."""
    body = (
        "<p>The council approved the new budget on Tuesday after a long debate.</p>\n<p>Roads come first.</p>"
    )
    raw = RawArticle("frag", body.encode(), Source("wire", "frag.txt", "text/plain", ""))
    article = extract_article(raw)
    assert isinstance(article, CleanArticle) and article.extraction.method == "trafilatura"
    assert "<p>" not in article.text and "Roads come first." in article.text
    mention = "<p> is the paragraph tag, the tutorial said, and the council met on Tuesday about roads."
    plain = extract_article(RawArticle("t", mention.encode(), Source("wire", "t.txt", "text/plain", "")))
    assert isinstance(plain, CleanArticle) and plain.text.startswith("<p> is the paragraph tag")
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj<</Length 44>>stream\nBT /F1 12 Tf 72 712 Td (Hello) Tj ET\nendstream\n%%EOF\n"
    for name, ctype in (("a.html", "text/html"), ("a.txt", "text/plain")):
        refused = extract_article(RawArticle("pdf", pdf, Source("wire", name, ctype, "")))
        assert isinstance(refused, Rejection) and refused.reason == "undecodable", name
        assert "PDF document" in refused.detail


def test_utf32_with_its_byte_order_mark_is_read_not_taken_for_binary():
    """The little-endian UTF-32 mark begins with UTF-16's: read as UTF-16 the text is full of NULs
    and was refused as binary."""
    text = "Café in Zürich: Swiss banks report record profits. UBS said on Tuesday its income doubled."
    for payload in (text.encode("utf-32"), codecs.BOM_UTF32_BE + text.encode("utf-32-be")):
        raw = RawArticle("u32", payload, Source("u32.txt", "wire", "text/plain", ""))
        article = extract_article(raw)
        assert isinstance(article, CleanArticle) and article.text == text
        assert article.extraction.encoding == "utf-32"


@pytest.mark.parametrize(
    ("head", "published", "status", "raw"),
    [
        (
            '<meta property="article:published_time" content="2099-01-01T00:00:00Z">',
            None,
            "implausible",
            "2099-01-01T00:00:00Z",
        ),
        ('<meta property="article:published_time" content="not a date">', None, "unparseable", "not a date"),
        # An offset of a day or more: htmldate raised, which cost the whole article.
        (
            '<meta property="article:published_time" content="2025-03-13T10:00:00+24:00">',
            None,
            "unparseable",
            "2025-03-13T10:00:00+24:00",
        ),
        (
            '<script type="application/ld+json">{"@type": "NewsArticle", "datePublished": "1900-05-01"}</script>',
            None,
            "implausible",
            "1900-05-01",
        ),
        (
            '<meta property="article:published_time" content="2025-03-13T10:00:00Z">',
            "2025-03-13T10:00:00Z",
            "ok",
            None,
        ),
        ("", None, "missing", None),
    ],
)
def test_a_pages_stated_date_is_kept_as_its_claim_when_refused(head, published, status, raw):
    """A page's date the extractor leaves out as implausible is a claim all the same: kept as
    published_raw with its status, as an envelope's is, not `missing`."""
    body = "".join(
        f"<p>The council met on Tuesday about roads, paragraph {i}, officials said.</p>" for i in range(8)
    )
    page = f"<html><head><title>Roads</title>{head}</head><body><article>{body}</article></body></html>"
    raw_article = RawArticle(
        "d", page.encode(), Source("d.html", "wire", "text/html", "2025-03-14T09:00:00Z")
    )
    article = extract_article(raw_article)
    assert isinstance(article, CleanArticle)
    assert (article.published, article.published_status, article.published_raw) == (published, status, raw)
