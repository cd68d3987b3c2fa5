"""Sentence generators for the synthetic corpus: the GRID grammar and free English sentences."""

from __future__ import annotations

import numpy as np

# ---------------------------------------------------------------------------
# GRID (Cooke et al. 2006): "command colour preposition letter digit adverb".
# ---------------------------------------------------------------------------

GRID_COMMANDS = ("bin", "lay", "place", "set")
GRID_COLOURS = ("blue", "green", "red", "white")
GRID_PREPOSITIONS = ("at", "by", "in", "with")
GRID_LETTERS = tuple(c for c in "abcdefghijklmnopqrstuvwxyz" if c != "w")  # 25 letters, no "w"
GRID_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GRID_ADVERBS = ("again", "now", "please", "soon")

# How each letter is written so that espeak-ng, flite and festival all say its
# name (checked on all three): a capital letter is read as its name, except a
# lone "A", which every engine reads as the article; "eigh" gives /ey/ in all.
GRID_LETTER_SPELLING = {c: ("eigh" if c == "a" else c.upper()) for c in GRID_LETTERS}


def _as_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A numpy Generator from a Generator (returned as is), a seed, or None (fresh entropy)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def grid_words(rng: np.random.Generator | int | None) -> tuple[str, str, str, str, str, str]:
    """One GRID sentence as its six grammar slots: (command, colour, preposition, letter a-z sans w, digit, adverb)."""
    rng = _as_rng(rng)
    return (
        _pick(rng, GRID_COMMANDS),
        _pick(rng, GRID_COLOURS),
        _pick(rng, GRID_PREPOSITIONS),
        _pick(rng, GRID_LETTERS),
        _pick(rng, GRID_DIGITS),
        _pick(rng, GRID_ADVERBS),
    )


def grid_sentence(rng: np.random.Generator | int | None) -> str:
    """A GRID sentence as text to speak, e.g. ``"place blue at F nine now"``.

    The letter slot is written so that the TTS engines say the letter's name
    (see GRID_LETTER_SPELLING); deterministic for a given Generator state or seed.
    """
    command, colour, prep, letter, digit, adverb = grid_words(rng)
    return " ".join((command, colour, prep, GRID_LETTER_SPELLING[letter], digit, adverb))


# ---------------------------------------------------------------------------
# Free sentences: templates over a small word bank (common words only, every
# one in the CMU dictionary, no digits or abbreviations, so that all engines
# pronounce them the same way).
# ---------------------------------------------------------------------------

_WORDS: dict[str, tuple[str, ...]] = {
    "name": ("Anna", "Peter", "Maria", "David", "Laura", "James", "Sarah", "Thomas", "Emma", "Daniel",
             "Helen", "Robert", "Julia", "Martin", "Susan", "Oliver"),
    "person": ("teacher", "doctor", "farmer", "driver", "neighbor", "student", "baker", "pilot", "nurse",
               "painter", "child", "captain", "singer", "lawyer", "gardener", "waiter"),
    "relation": ("brother", "sister", "mother", "father", "uncle", "aunt", "cousin", "friend", "daughter", "son"),
    "noun": ("book", "letter", "window", "garden", "basket", "bottle", "picture", "table", "candle", "jacket",
             "ladder", "blanket", "kettle", "bicycle", "ticket", "parcel", "hammer", "mirror", "lamp", "rope",
             "wallet", "umbrella", "carpet", "bucket", "violin", "map", "key", "box", "bag", "coat"),
    "food": ("bread", "soup", "cheese", "apples", "rice", "cake", "fish", "tea", "coffee", "honey", "pasta",
             "oranges", "butter", "salad", "potatoes", "biscuits"),
    "place": ("kitchen", "station", "market", "library", "river", "village", "harbour", "office", "garden",
              "museum", "bridge", "forest", "hospital", "school", "beach", "church", "theatre", "hotel"),
    "adj": ("old", "small", "heavy", "bright", "quiet", "broken", "yellow", "wooden", "narrow", "clean",
            "empty", "warm", "strange", "little", "golden", "dusty", "simple", "shiny", "green", "tall"),
    "adj_pred": ("ready", "happy", "tired", "late", "busy", "hungry", "careful", "certain", "worried", "calm"),
    "verb": ("carry", "open", "paint", "clean", "find", "mend", "move", "sell", "bring", "check", "wrap",
             "count", "fetch", "borrow", "hide", "lift"),
    "verb_past": ("carried", "opened", "painted", "cleaned", "found", "mended", "moved", "sold", "brought",
                  "checked", "wrapped", "counted", "fetched", "borrowed", "hid", "lifted", "dropped", "washed"),
    "eat_past": ("cooked", "ate", "bought", "shared", "baked", "served", "ordered", "packed"),
    "motion_past": ("walked", "drove", "ran", "cycled", "hurried", "travelled", "wandered", "rushed"),
    "adv": ("slowly", "quickly", "carefully", "quietly", "happily", "gently", "early", "together", "again",
            "twice", "yesterday", "today"),
    "time": ("this morning", "after lunch", "before dinner", "last night", "every day", "on Sunday",
             "next week", "in the evening", "at noon", "in the spring", "before the storm", "on Monday"),
    "prep": ("near", "behind", "beside", "under", "inside", "across", "around", "past"),
    "weather": ("rain", "snow", "wind", "sun", "fog", "storm"),
}

# Each template is a sequence of literal words and {slot} names.
_TEMPLATES: tuple[str, ...] = (
    "the {adj} {person} {verb_past} the {noun} {adv}",
    "{name} {verb_past} a {adj} {noun} {prep} the {place}",
    "my {relation} {eat_past} some {food} {time}",
    "can you {verb} the {adj} {noun} before {time}",
    "we should {verb} the {noun} {prep} the {place} {time}",
    "{name} and {name} {motion_past} to the {place} {time}",
    "the {person} was too {adj_pred} to {verb} the {noun}",
    "please {verb} my {noun} and put it {prep} the {adj} {noun}",
    "I think the {noun} is {prep} the {place}",
    "{name} told her {relation} about the {adj} {noun} in the {place}",
    "after the {weather} the {person} {motion_past} home {adv}",
    "there is a {adj} {noun} {prep} the {noun} in the {place}",
    "why did the {person} {verb} the {noun} {time}",
    "our {relation} is {adj_pred} because the {food} is cold",
    "{name} {eat_past} {food} and {food} for the {person}",
    "the {person} felt {adj_pred} {time}",
    "{name} {verb_past} the {adj} {noun}",
    "do not {verb} the {adj} {noun} until {name} is {adj_pred}",
    "the {person} {verb_past} a {noun} and {verb_past} it {prep} the {place}",
    "when the {weather} stopped {name} {verb_past} the {noun} {prep} the {place} {time}",
)


def free_sentence(rng: np.random.Generator | int | None) -> str:
    """A varied English sentence of 5-14 words from built-in templates and a word bank.

    Plain lowercase text (proper names capitalised), no punctuation, no digits;
    deterministic for a given Generator state or seed.
    """
    rng = _as_rng(rng)
    template = _pick(rng, _TEMPLATES)
    words: list[str] = []
    for token in template.split():
        if token.startswith("{") and token.endswith("}"):
            words.append(_pick(rng, _WORDS[token[1:-1]]))
        else:
            words.append(token)
    return " ".join(words)
