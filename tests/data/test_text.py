"""Tests for the sentence generators (GRID grammar, free sentences)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from avse.data import text as T


def _grid_slots(sentence: str) -> list[str]:
    words = sentence.split()
    assert len(words) == 6, sentence
    return words


def test_grid_sentence_follows_the_grammar():
    rng = np.random.default_rng(0)
    spelled_to_letter = {v: k for k, v in T.GRID_LETTER_SPELLING.items()}
    letters = set()
    for _ in range(2000):
        cmd, colour, prep, letter, digit, adverb = _grid_slots(T.grid_sentence(rng))
        assert cmd in T.GRID_COMMANDS
        assert colour in T.GRID_COLOURS
        assert prep in T.GRID_PREPOSITIONS
        assert digit in T.GRID_DIGITS
        assert adverb in T.GRID_ADVERBS
        assert letter in spelled_to_letter
        letters.add(spelled_to_letter[letter])
    # every letter a..z except w shows up, never w
    assert letters == set("abcdefghijklmnopqrstuvxyz")
    assert "w" not in T.GRID_LETTERS and len(T.GRID_LETTERS) == 25


def test_grid_letter_spelling():
    # a lone "A" reads as the article, so it is spelt "eigh"; every other letter is its capital
    assert T.GRID_LETTER_SPELLING["a"] == "eigh"
    assert T.GRID_LETTER_SPELLING["f"] == "F"
    assert all(len(v) == 1 and v.isupper() for k, v in T.GRID_LETTER_SPELLING.items() if k != "a")


def test_grid_words_and_sentence_agree():
    words = T.grid_words(7)
    sentence = T.grid_sentence(7)
    assert sentence.split()[3] == T.GRID_LETTER_SPELLING[words[3]]
    assert [w for i, w in enumerate(sentence.split()) if i != 3] == [w for i, w in enumerate(words) if i != 3]


@pytest.mark.parametrize("make", [T.grid_sentence, T.free_sentence])
def test_deterministic_for_seed_and_generator(make):
    assert make(123) == make(123)
    a, b = np.random.default_rng(5), np.random.default_rng(5)
    seq_a = [make(a) for _ in range(20)]
    seq_b = [make(b) for _ in range(20)]
    assert seq_a == seq_b
    assert len(set(seq_a)) > 10  # the generator state advances


def test_free_sentence_length_and_alphabet():
    rng = np.random.default_rng(1)
    sentences = [T.free_sentence(rng) for _ in range(3000)]
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) >= 5 and max(lengths) <= 14
    assert min(lengths) <= 6 and max(lengths) >= 12  # the range is used, not a single length
    assert all(re.fullmatch(r"[A-Za-z]+( [A-Za-z]+)*", s) for s in sentences)
    assert len(set(sentences)) > 2900  # varied


def test_free_sentence_uses_only_the_word_bank():
    vocab = {w.lower() for words in T._WORDS.values() for phrase in words for w in phrase.split()}
    vocab |= {w.lower() for t in T._TEMPLATES for w in t.split() if not w.startswith("{")}
    rng = np.random.default_rng(2)
    for _ in range(500):
        assert set(T.free_sentence(rng).lower().split()) <= vocab


def test_as_rng_passes_a_generator_through():
    g = np.random.default_rng(0)
    assert T._as_rng(g) is g
    assert isinstance(T._as_rng(None), np.random.Generator)
