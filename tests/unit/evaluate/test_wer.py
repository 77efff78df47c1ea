"""Word error rate: substitutions, deletions and insertions over reference words, on normalised words."""

import pytest

from affectflow.evaluate.wer import normalize_words, word_error_rate


def test_word_error_rate() -> None:
    assert word_error_rate("the cat sat", "the cat sat") == 0.0
    assert word_error_rate("the cat sat", "The cat, sat!") == 0.0
    assert word_error_rate("the cat sat", "the dog sat") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "cat") == pytest.approx(2 / 3)
    assert word_error_rate(["a b", "c d"], ["a b", "c x"]) == pytest.approx(1 / 4)
    assert word_error_rate("", "") == 0.0
    assert normalize_words("It's  ALL—right.") == ["it's", "all", "right"]
