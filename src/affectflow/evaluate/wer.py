"""Word error rate of transcripts: how the ASR models are compared (benchmarks/asr.py) and tested.

Words are compared after normalisation (lower case, punctuation removed,
Unicode folded), so "The cat, sat!" and "the cat sat" are the same words.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

_PUNCT = re.compile(r"[^\w\s']")


def normalize_words(text: str) -> list[str]:
    """Lower-case words with punctuation removed (apostrophes inside words kept), accents folded."""
    text = unicodedata.normalize("NFKC", text).lower().replace("\u2019", "'")
    text = _PUNCT.sub(" ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_error_rate(reference: str | Sequence[str], hypothesis: str | Sequence[str]) -> float:
    """(substitutions + deletions + insertions) / reference words, on normalised words.

    Several utterances can be given as sequences; errors and reference words
    are summed over them (corpus WER).
    """
    refs = [reference] if isinstance(reference, str) else list(reference)
    hyps = [hypothesis] if isinstance(hypothesis, str) else list(hypothesis)
    if len(refs) != len(hyps):
        raise ValueError("reference and hypothesis lists differ in length")
    errors = n_ref = 0
    for r, h in zip(refs, hyps, strict=True):
        rw, hw = normalize_words(r), normalize_words(h)
        errors += _edit_distance(rw, hw)
        n_ref += len(rw)
    if n_ref == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / n_ref


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]
