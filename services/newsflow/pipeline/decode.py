"""Bytes to text: declared charset first, then the document's own meta charset, then detection.

Bytes that are UTF-8 but for a few stray bytes are UTF-8, with a replacement character for each.
Detection (charset_normalizer) tells single-byte code pages apart by how messy and how coherent
each reading looks, and on a news paragraph several readings look equally clean: "Muñoz" read as
cp1250 is "Muńoz", "Zürich" as cp775 "Z³rich". Of the readings it finds least messy (and
windows-1252, the web's default for undeclared legacy text, WHATWG), the one kept is the one
whose accented words are words of the text's language (py3langid) or of English, by wordfreq's
frequencies: a misread letter makes a word no dictionary holds.
"""

from __future__ import annotations

import codecs
import re
from functools import lru_cache

from charset_normalizer import from_bytes
from wordfreq import available_languages, zipf_frequency

from newsflow.pipeline.language import identify_language
from newsflow.pipeline.records import Rejection

# Browsers only honour a <meta charset> in the first 1024 bytes; we look a little further
# because some CMSs put long comments first.
_META_WINDOW = 4096
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_\-:.]+)""", re.IGNORECASE)
# UTF-32's before UTF-16's: the little-endian UTF-32 mark starts with UTF-16's.
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


def _known(name: str | None) -> str | None:
    if not name:
        return None
    try:
        return codecs.lookup(name.strip().lower()).name
    except LookupError:
        return None


def declared_charset(payload: bytes, content_type: str | None = None, is_html: bool = False) -> str | None:
    """Return the charset the input declares (BOM, content-type parameter, HTML meta), if valid."""
    for bom, name in _BOMS:
        if payload.startswith(bom):
            return name
    if content_type and "charset=" in content_type.lower():
        found = _known(content_type.lower().split("charset=", 1)[1].split(";")[0].strip("\"' "))
        if found:
            return found
    if is_html:
        m = _META_CHARSET.search(payload[:_META_WINDOW])
        if m:
            found = _known(m.group(1).decode("ascii", "ignore"))
            # A meta tag readable as ASCII cannot be in UTF-16: browsers read such a page as
            # UTF-8 (WHATWG encoding sniffing), and so do we.
            return "utf-8" if found and found.startswith("utf-16") else found
    return None


def utf16_without_bom(payload: bytes) -> str | None:
    """Return "utf-16-le"/"utf-16-be" when the bytes look like BOM-less UTF-16 text, else None.

    Text in a Latin script has a NUL in every other byte in UTF-16 and none in any 8-bit encoding.
    """
    sample = payload[:4096]
    half = len(sample) // 2
    if half < 8:
        return None
    odd_nuls, even_nuls = sample[1::2].count(0), sample[0::2].count(0)
    if odd_nuls > 0.4 * half and even_nuls < 0.05 * half:
        return "utf-16-le"
    if even_nuls > 0.4 * half and odd_nuls < 0.05 * half:
        return "utf-16-be"
    return None


def decode_payload(
    payload: bytes, content_type: str | None = None, is_html: bool = False
) -> tuple[str, str] | Rejection:
    """Return (text, encoding used), or a Rejection when no encoding fits the bytes."""
    if payload.startswith(codecs.BOM_UTF8):
        # The mark it is (Windows tools write one), not a character of the text.
        payload = payload[len(codecs.BOM_UTF8) :]
    declared = declared_charset(payload, content_type, is_html) or utf16_without_bom(payload)
    # Valid UTF-8 with non-ASCII bytes almost never happens by accident, while pages that
    # declare windows-1252/latin-1 but are really UTF-8 are common: try UTF-8 first.
    candidates = [] if declared and declared.startswith("utf-16") else ["utf-8"]
    if declared and declared not in candidates:
        candidates.append(declared)
    for enc in candidates:
        try:
            return payload.decode(enc), enc
        except (UnicodeDecodeError, LookupError):
            # Before a declared single-byte charset, which reads any bytes: UTF-8 but for a stray
            # byte (servers that declare windows-1252 by default serve UTF-8 files too).
            if enc == "utf-8" and (mostly := _mostly_utf8(payload)) is not None:
                return mostly, "utf-8"
    detected = _detected(payload, is_html)
    if detected is None:
        return Rejection("extract", "undecodable", "no character encoding fits the bytes")
    return detected


# UTF-8 with a few stray bytes (a Latin-1 character pasted into a UTF-8 file, a file cut in the
# middle of a character) is UTF-8 with a few replacement characters, not a single-byte text: at
# least this many bytes of well-formed multi-byte characters per malformed sequence. Legacy
# single-byte text almost never holds a well-formed UTF-8 sequence (a letter from C2-F4 followed
# by a symbol from 80-BF), and never many.
_UTF8_BYTES_PER_STRAY = 3


def _mostly_utf8(payload: bytes) -> str | None:
    """Return the text of bytes that are UTF-8 but for a few malformed sequences (each read as
    U+FFFD, as browsers do), or None."""
    text = payload.decode("utf-8", errors="replace")
    stray = text.count("\ufffd") - payload.count("\ufffd".encode())
    if stray <= 0:
        return None
    # Bytes of well-formed characters beyond ASCII: all bytes, less ASCII ones and the U+FFFDs.
    wellformed = (
        len(payload) - len(text.encode("ascii", "ignore")) - 3 * payload.count("\ufffd".encode()) - stray
    )
    return text if wellformed >= _UTF8_BYTES_PER_STRAY * stray else None


# Readings this much messier than the least messy one (charset_normalizer's chaos, 0-1) are not
# compared.
_CHAOS_SLACK = 0.01
# The words that decide: the first this many with a letter beyond ASCII, anywhere in the document
# (a page's <head> and scripts hold none); the language, from this much of the best reading's text.
_SCORED_WORDS = 200
_LANGUAGE_CHARS = 4000
_WORD = re.compile(r"[^\W\d_]+")
_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.S | re.I)
# What a word no dictionary holds costs: more than a stray letter that happens to be a word ("û").
_NONWORD = 3.0


def _detected(payload: bytes, is_html: bool) -> tuple[str, str] | None:
    """Return (text, encoding) of bytes that declare no charset and are not UTF-8, or None."""
    matches = [m for m in from_bytes(payload) if m.encoding]  # least messy first
    if matches and not _single_byte(matches[0].encoding):
        return str(matches[0]), matches[0].encoding  # Shift_JIS, GBK, Big5...: told apart well
    least = matches[0].chaos if matches else 0.0
    readings = {
        m.encoding: str(m) for m in matches if m.chaos <= least + _CHAOS_SLACK and _single_byte(m.encoding)
    }
    try:
        web_default = payload.decode("cp1252")
    except UnicodeDecodeError:
        pass
    else:
        if web_default in readings.values():  # among the least messy: it goes first, to win a tie
            readings = {"cp1252": web_default, **{k: v for k, v in readings.items() if v != web_default}}
        else:
            readings.setdefault("cp1252", web_default)
    if not readings:
        return None
    best = next(iter(readings.values())) if not matches else str(matches[0])
    sample = _MARKUP.sub(" ", best[: _LANGUAGE_CHARS * 4]) if is_html else best
    found = identify_language(sample[:_LANGUAGE_CHARS])
    lang = found.code if found is not None else "en"
    encoding = max(readings, key=lambda name: _word_score(readings[name], lang))
    return readings[encoding], encoding


def _word_score(text: str, lang: str) -> float:
    """How much the first words with characters beyond ASCII look like words of `lang` or English:
    the sum of their wordfreq Zipf frequencies, less _NONWORD for a word neither knows."""
    score, seen = 0.0, 0
    for match in _WORD.finditer(text):
        word = match.group()
        if not word.isascii():
            # A misread byte is often a symbol inside a word ("Z³rich"), which is no word at all
            # (and which wordfreq would split into words it knows).
            known = word.isalpha() and max(_zipf(word.lower(), lang), _zipf(word.lower(), "en"))
            score += known or -_NONWORD
            seen += 1
            if seen == _SCORED_WORDS:
                break
    return score


def _zipf(word: str, lang: str) -> float:
    # The small lists: a few MB per language, loaded once (the large ones are 30-120 MB each).
    if lang not in _wordfreq_languages():
        return 0.0
    try:
        return float(zipf_frequency(word, lang, wordlist="small"))
    except ImportError:  # ja, zh, ko: wordfreq's tokenizers for them are not installed
        return 0.0


@lru_cache(maxsize=1)
def _wordfreq_languages() -> frozenset[str]:
    return frozenset(available_languages(wordlist="small"))


@lru_cache(maxsize=64)
def _single_byte(encoding: str) -> bool:
    """Whether every byte is one character in `encoding` (cp1252, iso8859_2, koi8_r...)."""
    try:
        return len(bytes(range(0x80, 0x100)).decode(encoding, errors="replace")) == 0x80
    except LookupError:
        return False
