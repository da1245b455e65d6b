"""Extraction stage: a raw article (HTML page, plain text or JSON envelope) to clean text and metadata."""

from __future__ import annotations

import codecs
import copy
import logging
import re
from configparser import ConfigParser
from dataclasses import replace
from functools import lru_cache
from html import unescape as html_unescape
from typing import Any

import lxml.html
import trafilatura
from courlan import normalize_url, validate_url
from lxml.html import HtmlElement
from trafilatura.metadata import examine_title_element, extract_metadata
from trafilatura.settings import use_config

from newsflow.pipeline import jsonio
from newsflow.pipeline.dates import check_published
from newsflow.pipeline.deadline import DeadlineExceeded, deadline
from newsflow.pipeline.decode import decode_payload
from newsflow.pipeline.language import identify_language
from newsflow.pipeline.options import ExtractOptions as ExtractOptions
from newsflow.pipeline.records import (
    UNKNOWN_OUTLET,
    CleanArticle,
    Extraction,
    RawArticle,
    Rejection,
    Source,
    author_names,
    count_words,
    envelope_problem,
    envelope_published,
    host_of,
    outlet_or_host,
)
from newsflow.pipeline.textclean import (
    BoilerplateModel,
    CleanResult,
    apply_rules,
    link_key,
    normalize_text,
    one_line,
)

# trafilatura warns "discarding data: None" for every page it finds no text in, which this stage
# handles (a fallback, then extraction.status) and counts; its warnings say nothing more.
logging.getLogger("trafilatura.core").setLevel(logging.ERROR)
log = logging.getLogger("newsflow.extract")

STAGE = "extract"


def _find_date_or_none(tree: Any, **params: Any) -> str | None:
    """htmldate's `find_date` as trafilatura calls it for a page's date, but None for a date it
    cannot read rather than an exception that costs the whole article (htmldate 1.11 raises on a
    UTC offset of a day or more, "+24:00"). The page's date is then looked for as when it has
    none (`stated_date`, `check_published`)."""
    try:
        return _find_date(tree, **params)
    except Exception:  # noqa: BLE001 - a date is never worth an article
        log.debug("htmldate could not read a page's date", exc_info=True)
        return None


_find_date = trafilatura.metadata.find_date  # type: ignore[attr-defined]
trafilatura.metadata.find_date = _find_date_or_none  # type: ignore[attr-defined,assignment]


# libxml2 stops building a tree this many elements deep (without its "huge" option): text nested
# deeper never reaches the extractor.
MAX_MARKUP_DEPTH = 255
# ("<" ends a tag here: a page of unclosed tags would otherwise be read to its end from each one.)
_TAG = re.compile(rb"<(/?)([a-zA-Z][a-zA-Z0-9]*)[^<>]*?(/?)>")
_VOID = frozenset(b"area base br col embed hr img input link meta param source track wbr".split())


def markup_depth(html: str) -> int:
    """Return the deepest nesting of elements in the markup (void and self-closed tags excluded)."""
    depth = deepest = 0
    for closing, name, self_closed in _TAG.findall(html.encode("utf-8", "replace")):
        if name.lower() in _VOID or self_closed:
            continue
        depth = max(0, depth - 1) if closing else depth + 1
        deepest = max(deepest, depth)
    return deepest


# libxml2 checks each attribute of an element against those before it, in one C call that no
# deadline interrupts: a tag of 40,000 attributes takes 11 s to parse, 80,000 over a minute. And it
# keeps every attribute in memory: 1.6 million short ones (a 5 MB page) took 1.6 GB. No page's
# element has near the first bound nor a page near the second; attributes beyond are dropped
# before the parse.
MAX_TAG_ATTRIBUTES = 1000
MAX_PAGE_ATTRIBUTES = 100_000
# The page's markup as the HTML tokenizer reads it, in one pass: comments (closed by "-->", "--!>"
# or at once by "<!-->") and the raw text of scripts, styles and the like (no tags within, though
# their start tags have attributes), then start tags with their attributes: a name (which may
# start with "="), maybe "=" and a value, quoted only where a quote follows "=" (a stray quote
# elsewhere is part of a name); after a quoted value the next attribute needs no space. White
# space is HTML's (_WS: Python's \s is wider, and a no-break space is part of a name there). What
# is never closed runs to the end, as for the tokenizer, and each part is a run of characters that
# cannot end it: the pass is linear whatever the page. (Where it errs it counts more attributes
# than the parser would, never fewer.)
_WS = "\t\n\f\r "
_ATTRIBUTE = rf"""(?:=|[^{_WS}/>=])[^{_WS}/>=]*+(?:[{_WS}]*+=[{_WS}]*+(?:"[^"]*+(?:"|\Z)|'[^']*+(?:'|\Z)|[^{_WS}>]*+))?+"""
_IN_TAG = rf"(?:[{_WS}/]++|{_ATTRIBUTE})*+"
_MARKUP = re.compile(
    r"<!--(?:-?>|[^-]*+(?:-(?!-!?>)[^-]*+)*+(?:--!?>|\Z))"
    # (A raw-text element's start tag closed by "/>" has no raw text for libxml2: what follows
    # is markup.)
    rf"|<(?P<raw>script|style|textarea|title|xmp|iframe|noembed|noframes)(?=[{_WS}/>])(?P<raw_attributes>{_IN_TAG})"
    r"(?:(?<=/)>|>[^<]*+(?:<(?!/(?P=raw))[^<]*+)*+(?:</(?P=raw)|\Z)|\Z)"
    rf"|<(?P<name>[a-zA-Z][^{_WS}/>]*+)(?P<attributes>{_IN_TAG})",
    re.I,
)
_ATTRIBUTES = re.compile(_ATTRIBUTE)
# A tag shorter than this cannot have more than MAX_TAG_ATTRIBUTES attributes (two characters each).
_LONG_TAG_CHARS = 2 * MAX_TAG_ATTRIBUTES


def with_attributes_bounded(html: str) -> tuple[str, bool]:
    """Return the page with no element of more than MAX_TAG_ATTRIBUTES attributes and no more than
    MAX_PAGE_ATTRIBUTES in all (the first ones are kept), and whether any were dropped."""
    # Each attribute follows a separator or a value's "=": a page with fewer of them cannot pass
    # the page's bound, and only its long tags are read (most pages: a few passes of C over it).
    every_tag = sum(map(html.count, " \t\n\r\f/=")) > MAX_PAGE_ATTRIBUTES
    left = MAX_PAGE_ATTRIBUTES
    parts: list[str] = []
    at = 0
    for tag in _MARKUP.finditer(html):
        group = (
            "attributes" if tag["name"] is not None else "raw_attributes" if tag["raw"] is not None else None
        )
        if group is None or (not every_tag and tag.end(group) - tag.start() < _LONG_TAG_CHARS):
            continue
        attributes = _ATTRIBUTES.findall(tag[group])
        kept = min(len(attributes), MAX_TAG_ATTRIBUTES, left if every_tag else len(attributes))
        left -= kept
        if kept < len(attributes):
            # A self-closed element stays so (a "/" after its last attribute, not in its value).
            after_last = tag[group].rfind(attributes[-1]) + len(attributes[-1])
            closed = " /" if "/" in tag[group][after_last:] else ""
            name = tag["name"] or tag["raw"]
            parts += [html[at : tag.start()], f"<{name} ", " ".join(attributes[:kept]), closed]
            at = tag.end(group)
    if not parts:
        return html, False
    parts.append(html[at:])
    return "".join(parts), True


def empty_reason(document: str, is_html: bool, options: ExtractOptions) -> str:
    """Return why a document gave no text: markup_too_deep, tree_too_large or no_text_found."""
    if is_html:
        if markup_depth(document) > MAX_MARKUP_DEPTH:
            return "markup_too_deep"
        if document.count("<") > options.max_tree_size:
            return "tree_too_large"
    return "no_text_found"


# Metadata is as long as a sender makes it: bounded, so that no envelope can make its record too
# large to send (the text has its own bound, ExtractOptions.max_text_chars).
MAX_FIELD_CHARS = {
    "title": 1000,
    "description": 5000,
    "site_name": 500,
    "url": 4096,
    "author": 200,
    "published_raw": 200,
}
MAX_AUTHORS = 50


def _cut(value: str | None, limit: int) -> str | None:
    """Return a field's value as one line (`one_line`), cut to its limit."""
    return (one_line(value)[:limit] or None) if value is not None else None


def _truncate(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    cut = text.rfind("\n", 0, limit)
    return text[: cut if cut > 0 else limit], True


def _status(text: str, truncated: bool, options: ExtractOptions) -> str:
    if not text.strip():
        return "empty"
    # Before truncated: what is left of a page read in part (a 3 MB "word", a page of entities)
    # can be a few words, and such a text must not open a story.
    if count_words(text) < options.min_article_words:
        return "not_article"
    if truncated:
        return "truncated"
    return "ok"


@lru_cache(maxsize=8)
def _trafilatura_config(max_tree_size: int) -> ConfigParser:
    config = use_config()
    config.set("DEFAULT", "MAX_TREE_SIZE", str(max_tree_size))
    # Trafilatura's own timeout uses SIGALRM, which only works on the main thread of a CLI.
    config.set("DEFAULT", "EXTRACTION_TIMEOUT", "0")
    return config


def link_texts(tree: HtmlElement) -> frozenset[str]:
    """Return the `link_key` of the text of each of the page's links."""
    return frozenset(link_key(a.text_content()) for a in tree.iter("a"))


def extract_html(html: str | HtmlElement, url: str | None, options: ExtractOptions) -> dict[str, Any]:
    """Return trafilatura's text and metadata for one page (text "" when it finds no main text).

    The page may be given parsed (`trafilatura.load_html`): extraction leaves the tree unchanged.
    """
    kwargs: dict[str, Any] = {
        "url": url,
        "with_metadata": True,
        "include_comments": False,
        "include_tables": True,
        # Precision mode drops more page furniture (related links, teasers) at a small recall
        # cost: on the dev benchmark F1 0.965 -> 0.975 with comments off.
        "favor_precision": True,
        # htmldate's extensive search scans every text node for date patterns; the markup-based
        # search finds the date on nearly every news page (89 of 91 in the dev set) for much less.
        # With the time of day and offset where the page gives them (meta tags, JSON-LD): a date alone
        # would be midnight UTC, hours off and on another day east of Greenwich. So a date in the
        # URL (/2026/12/05/, -2026-12-05/) comes last, not first as htmldate's default has it.
        "date_extraction_params": {
            "extensive_search": False,
            "original_date": True,
            "deferred_url_extractor": True,
            "outputformat": "%Y-%m-%dT%H:%M:%S%z",
        },
        "config": _trafilatura_config(options.max_tree_size),
    }
    data = _as_dict(trafilatura.bare_extraction(html, fast=True, **kwargs))
    if len(data.get("text") or "") < options.fallback_below_chars:
        data = _as_dict(trafilatura.bare_extraction(html, fast=False, **kwargs)) or data
    if not data:
        # No main text: the page's title, URL and date still say what it was (a stub, a video page).
        tree = copy.deepcopy(html) if isinstance(html, HtmlElement) else html
        meta = extract_metadata(tree, url, kwargs["date_extraction_params"], extensive=False)
        data = {**_as_dict(meta), "text": ""}
    return data


def _as_dict(doc: Any) -> dict[str, Any]:
    if doc is None:
        return {}
    return doc if isinstance(doc, dict) else dict(doc.as_dict())


def _article(
    raw: RawArticle,
    method: str,
    cleaned: CleanResult,
    encoding: str,
    options: ExtractOptions,
    read_in_part: bool = False,
    **meta: Any,
) -> CleanArticle:
    """Return the CleanArticle for cleaned text, with its extraction record and any metadata
    (`read_in_part`: the page was read only as far as its bounds, `cut_after`)."""
    text, truncated = _truncate(cleaned.text, options.max_text_chars)
    extraction = Extraction(
        method=method,
        status=_status(text, truncated or read_in_part, options),
        input_bytes=len(raw.payload),
        encoding=encoding,
        boilerplate_removed=cleaned.removed_total,
    )
    return CleanArticle(
        article_id=raw.article_id, source=raw.source, text=text, extraction=extraction, **meta
    )


# A site name written as a domain ("nytimes.com"), which may start in lower case.
_DOMAIN = re.compile(r"[\w-]+(\.[\w-]+)+")
_OPENING_QUOTES = "«“„‘'\"‹"
_NOT_ALNUM = re.compile(r"[\W_]+")
# Where trafilatura takes a title from before it cuts the <title> element.
_TITLE_SOURCES = (
    "//head/meta[@property='og:title' or @name='twitter:title' or @name='title']/@content"
    " | //script[@type='application/ld+json'][contains(., 'headline')]"
)


def _headline(title: str, tree: HtmlElement, page_url: str | None, site_name: str) -> str:
    """Return trafilatura's title, or the page's whole <title> when trafilatura cut it in two at a
    separator ("Headline - Site") and what it dropped reads as the headline's own continuation.

    The cut assumes a site name on one side, which holds for most pages; but "Macron in Zurich - a
    historic deal" lost its second half, and "... Zurich - « accord historique »" kept its dash.
    Only a title cut from <title> (no og:title, JSON-LD headline or single <h1>) is put back, when
    the dropped side starts in lower case or with an opening quote, as a site's name does not
    (unless it is a domain, or names the site, by its stated name or its host: "heise online" on
    heise.de).
    """
    whole, first, second = examine_title_element(tree)
    if (
        not whole
        or title not in (first, second)
        or tree.xpath(_TITLE_SOURCES)
        or len(tree.findall(".//h1")) == 1
    ):
        return title
    dropped = (second if title == first else first) or ""
    if (
        not dropped
        or _DOMAIN.fullmatch(dropped)
        or not (dropped[0] in _OPENING_QUOTES or dropped[0].islower())
    ):
        return title
    names = {_name_key(site_name), _name_key(host_of(page_url) or "")} - {""}
    return title if _names_site(dropped, names) else whole


def _names_site(part: str, names: set[str]) -> bool:
    """Whether a title's part names the site: holds one of its `_name_key`s as whole words
    ("heise online" on heise.de; not "after the shift" on ft.com), or is part of one ("Gazzetta"
    of "La Gazzetta")."""
    words = [w for w in _NOT_ALNUM.split(part.lower()) if w]
    runs = {"".join(words[i:j]) for i in range(len(words)) for j in range(i + 1, len(words) + 1)}
    key = "".join(words)
    return any(name in runs or (len(key) >= 3 and key in name) for name in names)


def _stated_site(tree: HtmlElement) -> str:
    """Return the site's name as the page states it (og:site_name), or ""."""
    return str(tree.xpath("string(//head/meta[@property='og:site_name']/@content)")).strip()


def _name_key(name: str) -> str:
    """Return a name's letters and digits in lower case; a domain ("SpaceNews.com") by its
    longest label but the last: spacenews (spacenews.com), heise (heise.de), bbc (bbc.co.uk)."""
    if _DOMAIN.fullmatch(name):
        labels = name.split(".")
        name = max(labels[:-1], key=len)
    return _plain(name)


def _plain(name: str) -> str:
    """Return a name's letters and digits in lower case ("Boston.com" -> "bostoncom")."""
    return _NOT_ALNUM.sub("", name).lower()


# Between a headline and the site's name in a page's title: "Headline | Site", "Site - Headline".
_TITLE_SEPARATOR = re.compile(r"\s+(?:[|\-–—·•»]|::)\s+")


def without_site_name(title: str, site_name: str | None, page_url: str | None) -> str:
    """Return a title without the site's name before or after a separator ("... review | MoreBikes",
    "... - SpaceNews.com"; "The Guardian view on ... | Editorial" is kept): a consumer shows its own
    outlet name, and the story stage reads the headline's words as what the report is about.

    A part is the site's when it is the name the page states (og:site_name: "IGN", "9to5Mac"), or
    a domain that is the page's host ("SpaceNews.com"); not a part the name merely starts or
    contains ("Storm closes bridges - Boston" on bostonglobe.com, "Liverpool - Everton" on
    evertonfc.com, "comwrap auf der DMEXCO" on comwrap.com), and not a name guessed from the title
    (trafilatura's sitename is, without og:site_name: "U.S. economy grows | Business").
    """
    separators = list(_TITLE_SEPARATOR.finditer(title))
    stated, host = _plain(site_name or ""), _name_key(host_of(page_url) or "")
    if not separators or not (stated or host):
        return title

    def is_site(part: str) -> bool:
        part = part.strip()
        plain = _plain(part)
        # The stated name as written ("Boston.com" is not "Boston"); the host as a domain.
        return len(plain) >= 2 and (
            plain == stated or (_DOMAIN.fullmatch(part) is not None and _name_key(part) == host)
        )

    first, last = separators[0], separators[-1]
    if is_site(title[last.end() :]):
        return title[: last.start()]
    return title[first.end() :] if is_site(title[: first.start()]) else title


def _canonical_anywhere(tree: Any) -> str | None:
    """Return the page's canonical link (else its og:url) where trafilatura, which reads them in
    <head>, does not: markup that closes the head early leaves them in the body. Checked and
    normalised as trafilatura does its own (courlan); a relative link is no help without a base."""
    for xpath in ("//link[@rel='canonical']/@href", "//meta[@property='og:url']/@content"):
        for found in tree.xpath(xpath):
            candidate = str(found).strip()
            if candidate.startswith("//"):
                candidate = f"https:{candidate}"
            valid, parsed = validate_url(candidate)
            if valid and parsed is not None:
                return str(normalize_url(parsed))
    return None


def _from_html(
    raw: RawArticle, html: str, encoding: str, url: str | None, options: ExtractOptions
) -> CleanArticle:
    html, attributes_cut = with_attributes_bounded(html)
    # Parsed once, for the extractor and for the page's link texts.
    tree = trafilatura.load_html(html)
    if tree is None or tree.tag != "html":
        # A fragment (a feed item's paragraph, a body without its page), which the extractor reads
        # as nothing: read as the body of a page, as a browser shows it.
        page = trafilatura.load_html(f"<html><body>{html}</body></html>")
        tree = tree if page is None else page
    # (Both bounds apply to every page: a page cut of attributes is read as far as the others.)
    read_in_part = (
        tree is not None
        and cut_after(tree, TEXT_READ_FACTOR * options.max_text_chars, options.max_read_elements)
    ) or attributes_cut
    meta = extract_html(html if tree is None else tree, url, options)
    body = structured_body(tree) if tree is not None else ""
    if 2 * len(meta.get("text") or "") < len(body):
        # A page whose text is drawn by script, or mostly so: its structured data (JSON-LD
        # articleBody) holds the article, as an envelope's text stands in for its thin page.
        meta["text"], from_markup = body, False
    else:
        from_markup = True
    page_url = meta.get("url") or url or (_canonical_anywhere(tree) if tree is not None else None)
    if tree is not None and meta.get("title"):
        site = _stated_site(tree)
        meta["title"] = without_site_name(_headline(meta["title"], tree, page_url, site), site, page_url)
    # The headline is metadata, not body: lines repeating it go, and so do lines that are wholly
    # a link to elsewhere (apply_rules' title and link_texts).
    cleaned = apply_rules(
        meta.get("text") or "",
        from_markup=from_markup,
        title=meta.get("title"),
        link_texts=link_texts(tree) if tree is not None and meta.get("text") else frozenset(),
    )
    # A page that came under no outlet (a file directly in the folder given) is its site's: the
    # host of its canonical URL, as an envelope's or a WARC record's URL names theirs.
    if (outlet := outlet_or_host(raw.source.outlet, page_url)) != raw.source.outlet:
        raw = replace(raw, source=replace(raw.source, outlet=outlet))
    return _article(
        raw,
        "trafilatura",
        cleaned,
        encoding,
        options,
        read_in_part,
        title=meta.get("title") or None,
        authors=author_names(meta.get("author")) or (),
        published=meta.get("date") or (stated_date(tree) if tree is not None else None),
        site_name=meta.get("sitename") or None,
        url=page_url,
        description=meta.get("description") or None,
    )


# How much of a page's text the extractor reads, in multiples of the text kept (max_text_chars).
TEXT_READ_FACTOR = 2
_NOT_TEXT = frozenset({"script", "style", "noscript", "template", "svg"})


def cut_after(tree: HtmlElement, chars: int, elements: int) -> bool:
    """Remove what follows the page's first `chars` characters of text (scripts and styles not
    counted) or its first `elements` elements, whichever comes first; return whether anything was.
    The extractor's time grows with the page (70,000 paragraphs: 12 s), and no more than
    max_text_chars of its text is kept: a book-length page, or one of countless tiny elements, is
    read as far as that rather than timing out. News pages are far shorter."""
    seen = 0
    for count, element in enumerate(tree.iter(), 1):
        if count > elements:
            break
        if not isinstance(element.tag, str):  # comments and processing instructions
            continue
        if element.tag not in _NOT_TEXT:
            seen += len(element.text or "")
        if seen > chars:
            break
        seen += len(element.tail or "")
    else:
        return False
    last, cut = element, len(element) > 0
    del element[:]  # what it holds follows it too
    while element is not None and element is not tree:
        parent = element.getparent()
        for later in list(element.itersiblings()):
            parent.remove(later)
            cut = True
        element = parent
    if count > elements and last is not tree:  # the first element over the budget goes too
        last.getparent().remove(last)
        cut = True
    return cut


# Where a page states its publication time for machines: the extractor's reading of them leaves
# out a date it finds implausible (a CMS's 2099 placeholder, 1900), which is then no claim at all;
# read here, such a claim is kept as published_raw with its status, as an envelope's is.
_STATED_DATE = (
    "//meta[@property='article:published_time' or @property='og:published_time'"
    " or @itemprop='datePublished' or @name='pubdate' or @name='publishdate' or @name='date'"
    " or @name='DC.date.issued' or @name='dcterms.created']/@content"
    " | //time[@itemprop='datePublished']/@datetime"
)
_LD_DATE = re.compile(r'"datePublished"\s*:\s*"([^"]{1,200})"')


def stated_date(tree: HtmlElement) -> str | None:
    """Return the publication time a page states in its metadata or JSON-LD, as written, or None."""
    for value in tree.xpath(_STATED_DATE):
        if str(value).strip():
            return str(value).strip()
    for script in tree.xpath("//script[@type='application/ld+json'][contains(., 'datePublished')]"):
        if found := _LD_DATE.search(script.text_content()):
            return found[1]
    return None


def structured_body(tree: HtmlElement) -> str:
    """Return the longest `articleBody` of the page's JSON-LD (schema.org's Article and its kinds:
    NewsArticle, BlogPosting...), one paragraph per line, or "" (none, or not readable)."""
    bodies = []
    for script in tree.xpath("//script[@type='application/ld+json'][contains(., 'articleBody')]"):
        try:
            data = jsonio.loads(script.text_content())
        except ValueError:
            continue
        todo = [data]
        while todo:
            item = todo.pop()
            if isinstance(item, list):
                todo.extend(item)
            elif isinstance(item, dict):
                if isinstance(body := item.get("articleBody"), str):
                    bodies.append(body)
                todo.extend(v for v in item.values() if isinstance(v, list | dict))
    if not bodies:
        return ""
    body = max(bodies, key=len)
    if "<" in body:  # some sites put the body's markup there (as bounded as a page's)
        body = "\n".join(
            lxml.html.fragment_fromstring(with_attributes_bounded(body)[0], create_parent="div").itertext()
        )
    return normalize_text(html_unescape(body))


def _from_text(raw: RawArticle, text: str, encoding: str, options: ExtractOptions) -> CleanArticle:
    return _article(
        raw, "plaintext", apply_rules(normalize_text(text)), encoding, options, url=raw.source.url
    )


def _str_field(env: dict[str, Any], key: str) -> str | None:
    value = env.get(key)
    return value.strip() or None if isinstance(value, str) else None


def _from_envelope(
    raw: RawArticle, document: str, encoding: str, options: ExtractOptions
) -> CleanArticle | Rejection:
    try:
        env = jsonio.loads(document)
    except ValueError as exc:
        return Rejection(STAGE, "bad_envelope", f"not valid JSON: {exc}")
    if not isinstance(env, dict):
        return Rejection(STAGE, "bad_envelope", "a JSON envelope must be an object")
    if problem := envelope_problem(env):
        return Rejection(STAGE, "bad_envelope", problem)
    html, text = env.get("html"), env.get("text")  # strings or None, one with text (envelope_problem)
    url = _str_field(env, "url") or raw.source.url
    # The outlet the producer gave (`--outlet`, else the envelope's own, else the folder's) is the
    # article's, as its message's header says; the envelope names it where the header names none
    # (another producer's message).
    outlet = raw.source.outlet
    if outlet == UNKNOWN_OUTLET:
        outlet = outlet_or_host(_str_field(env, "outlet") or outlet, url)
    inner = replace(raw, source=replace(raw.source, url=url, outlet=outlet))
    article, method = None, "envelope+plaintext"
    if isinstance(html, str) and html.strip():
        article, method = _from_html(inner, html, encoding, url, options), "envelope+trafilatura"
    # The text the sender gave when its page yields less than half of it (a teaser, a page whose
    # body is drawn by script): neither is dropped unread.
    if (
        isinstance(text, str)
        and text.strip()
        and (article is None or 2 * len(article.text) < len(text.strip()))
    ):
        article, method = _from_text(inner, text, encoding, options), "envelope+plaintext"
    assert article is not None  # html or text has something in it (envelope_problem)
    overrides: dict[str, Any] = {"extraction": replace(article.extraction, method=method)}
    # Fields the sender states explicitly beat what we infer from the page.
    for key in ("title", "description"):
        if value := _str_field(env, key):
            overrides[key] = value
    if published := envelope_published(env.get("published")):
        overrides["published"] = published
    if authors := author_names(env.get("authors") if env.get("authors") is not None else env.get("author")):
        overrides["authors"] = authors
    return replace(article, **overrides)


def extract_article(raw: RawArticle, options: ExtractOptions | None = None) -> CleanArticle | Rejection:
    """Return the cleaned article (with language), or a Rejection for input no stage can use."""
    options = options or ExtractOptions()
    size = len(raw.payload)
    if size > options.max_input_bytes:
        return Rejection(STAGE, "too_large", f"{size} bytes is over the {options.max_input_bytes}-byte limit")
    if not raw.payload.strip():
        return Rejection(STAGE, "empty", "the article file is empty")
    try:
        with deadline(options.max_parse_seconds):
            return _parse(raw, options)
    except DeadlineExceeded as exc:
        return Rejection(STAGE, "timeout", f"parsing {size} bytes ran {exc}")


_WARM_UP_TEXT = (
    "The council approved the new budget on Tuesday after a long debate about schools and roads. "
    "Residents said they hoped the plan would fix the old bridge before winter."
)


def warm_up(options: ExtractOptions | None = None) -> None:
    """Load what a first parse would otherwise load lazily (language model, charset tables, ...).

    A worker calls this before it consumes, so that `max_parse_seconds` bounds parsing alone: a
    cold first parse takes up to a second, and a tight bound would dead-letter a good article.
    """
    options = options or ExtractOptions()
    samples = [
        ("text/plain", _WARM_UP_TEXT),
        (
            "text/html",
            f"<html><head><title>Budget</title></head><body><article><p>{_WARM_UP_TEXT}</p></article></body></html>",
        ),
    ]
    for ctype, body in samples:
        _parse(RawArticle("warm-up", body.encode(), Source("warm-up", "warm-up", ctype, "")), options)


# A page saved or sent as plain text: it starts with a doctype or an <html> tag (after a BOM,
# blanks, an XML declaration and comments), as no article text does. Looked for in the bytes,
# so that the page's <meta charset> decodes it, and else in the text (a page in UTF-16).
_HTML_START = r"\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html)[\s>]"
_HTML_START_BYTES = re.compile(rb"(?:\xef\xbb\xbf)?" + _HTML_START.encode(), re.I | re.S)
_HTML_START_TEXT = re.compile(_HTML_START, re.I | re.S)


# A fragment of HTML saved as text (a feed item's paragraph, a page's body): it opens with a block
# of markup and closes one, as no article's text does.
_FRAGMENT_TAGS = r"(?:p|div|article|section|main|body|h[1-6]|blockquote|figure|table|ul|ol|span|a)"
_FRAGMENT_START = re.compile(rf"\s*<{_FRAGMENT_TAGS}(?:\s[^<>]*)?>", re.I)
_FRAGMENT_CLOSE = re.compile(rf"</{_FRAGMENT_TAGS}\s*>", re.I)
# Documents that are text-like bytes but no article (a PDF written without compressed streams,
# PostScript): their own signature says so, whatever their name.
_DOCUMENT_SIGNATURES = ((b"%PDF-", "a PDF document"), (b"%!PS", "a PostScript document"))


def _parse(raw: RawArticle, options: ExtractOptions) -> CleanArticle | Rejection:
    ctype = raw.source.content_type
    head = raw.payload[:2048].removeprefix(codecs.BOM_UTF8).lstrip()
    for signature, what in _DOCUMENT_SIGNATURES:
        if head.startswith(signature):
            return Rejection(STAGE, "undecodable", f"{what}, not an article's text or page")
    if ctype == "text/plain" and _HTML_START_BYTES.match(raw.payload[:2048]):
        ctype = "text/html"
    declared = f"{ctype}; charset={raw.source.charset}" if raw.source.charset else ctype
    decoded = decode_payload(raw.payload, declared, is_html=ctype == "text/html")
    if isinstance(decoded, Rejection):
        return decoded
    document, encoding = decoded
    if "\x00" in document:
        return Rejection(STAGE, "undecodable", "decoded text contains NUL characters (binary file?)")
    if ctype == "text/plain" and (
        _HTML_START_TEXT.match(document[:2048])
        or (_FRAGMENT_START.match(document) and _FRAGMENT_CLOSE.search(document, 0, 65536))
    ):
        ctype = "text/html"
    article: CleanArticle | Rejection
    if ctype == "text/html":
        article = _from_html(raw, document, encoding, raw.source.url, options)
    elif ctype == "application/json":
        article = _from_envelope(raw, document, encoding, options)
    else:
        article = _from_text(raw, document, encoding, options)
    if isinstance(article, Rejection):
        return article
    published = check_published(article.published, raw.source.received_at)
    article = replace(
        article,
        language=identify_language(article.text),
        published=published.value,
        published_raw=_cut(published.raw, MAX_FIELD_CHARS["published_raw"]),
        published_status=published.status,
        title=_cut(article.title, MAX_FIELD_CHARS["title"]),
        description=_cut(article.description, MAX_FIELD_CHARS["description"]),
        site_name=_cut(article.site_name, MAX_FIELD_CHARS["site_name"]),
        url=_cut(article.url, MAX_FIELD_CHARS["url"]),
        authors=tuple(one_line(a)[: MAX_FIELD_CHARS["author"]] for a in article.authors[:MAX_AUTHORS]),
    )
    if article.extraction.status == "empty":
        reason = empty_reason(document, article.extraction.method.endswith("trafilatura"), options)
        article = replace(article, extraction=replace(article.extraction, reason=reason))
    return article


def with_outlet_boilerplate_removed(
    article: CleanArticle, model: BoilerplateModel, options: ExtractOptions
) -> CleanArticle:
    """Return the article without the lines its outlet repeats across articles (the model learns
    apart: `BoilerplateModel.observe_fingerprints`), unless they are most of it.

    An outlet's footer is a small part of an article. Lines that make up most of one are the
    article itself, repeated: a report sent again (a copy, found as such downstream), a template
    report whose lines differ in their figures only. Removing them would leave an article without
    text, so the article is kept whole when less would be left than half its words or than an
    article's least (`min_article_words`), whichever is fewer.
    """
    text, dropped = model.clean(article.source.outlet, article.text, learn=False)
    if not dropped:
        return article
    text = normalize_text(text)
    words = count_words(article.text)
    if count_words(text) < min(options.min_article_words, words / 2):
        return article
    truncated = article.extraction.status == "truncated"
    extraction = replace(
        article.extraction,
        boilerplate_removed=article.extraction.boilerplate_removed + dropped,
        status=_status(text, truncated, options),
    )
    return replace(article, text=text, extraction=extraction)
