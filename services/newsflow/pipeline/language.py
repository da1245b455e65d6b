"""Language identification of cleaned text (py3langid: langid.py's model, bundled in the package)."""

from __future__ import annotations

from functools import lru_cache

from py3langid.langid import MODEL_FILE, LanguageIdentifier

from newsflow.pipeline.records import Language

# langid's features are byte n-grams; beyond a paragraph or two the answer no longer changes but
# the cost keeps growing linearly.
MAX_CHARS = 1500
MIN_CHARS = 20


@lru_cache(maxsize=1)
def _identifier() -> LanguageIdentifier:
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def identify_language(text: str) -> Language | None:
    """Return the ISO 639-1 code and probability of the text's language, or None if too short to tell."""
    sample = text[:MAX_CHARS]
    if len(sample.strip()) < MIN_CHARS:
        return None
    code, prob = _identifier().classify(sample)
    return Language(code=str(code), confidence=float(prob))
