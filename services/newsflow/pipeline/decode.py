"""Bytes to text: declared charset first, then the document's own meta charset, then detection.

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
_BOMS = ((codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


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
            continue
    detected = _detected(payload)
    if detected is None:
        return Rejection("extract", "undecodable", "no character encoding fits the bytes")
    return detected


# Readings this much messier than the least messy one (charset_normalizer's chaos, 0-1) are not
# compared; the words of the first this many characters decide between the others.
_CHAOS_SLACK = 0.01
_SCORED_CHARS = 4000
_WORD = re.compile(r"[^\W\d_]+")
# What a word no dictionary holds costs: more than a stray letter that happens to be a word ("û").
_NONWORD = 3.0


def _detected(payload: bytes) -> tuple[str, str] | None:
    """Return (text, encoding) of bytes that declare no charset and are not UTF-8, or None."""
    matches = [m for m in from_bytes(payload) if m.encoding]  # least messy first
    readings: dict[str, str] = {}
    try:
        readings["cp1252"] = payload.decode("cp1252")  # first: it wins a tie
    except UnicodeDecodeError:
        pass
    if matches:
        least = matches[0].chaos
        readings.update((m.encoding, str(m)) for m in matches if m.chaos <= least + _CHAOS_SLACK)
    if not readings:
        return None
    encoding = max(readings, key=lambda name: _word_score(readings[name]))
    return readings[encoding], encoding


def _word_score(text: str) -> float:
    """How much the words with letters beyond ASCII look like words of the text's language or of
    English: the sum of their wordfreq Zipf frequencies, less _NONWORD for a word neither knows."""
    sample = text[:_SCORED_CHARS]
    found = identify_language(sample)
    lang = found.code if found is not None and found.code in _wordfreq_languages() else "en"
    score = 0.0
    for word in _WORD.findall(sample):
        if not word.isascii():
            word = word.lower()
            score += max(zipf_frequency(word, lang), zipf_frequency(word, "en")) or -_NONWORD
    return score


@lru_cache(maxsize=1)
def _wordfreq_languages() -> frozenset[str]:
    return frozenset(available_languages())
