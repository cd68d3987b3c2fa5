"""Phone sets: ARPAbet, and the maps from espeak-ng, festival and flite phones into it."""

from __future__ import annotations

from avse.data.tts.errors import TtsError

PAUSE = "pau"
ARPABET = frozenset(
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split()
)
PHONES = ARPABET | {PAUSE}  # every symbol an Utterance may hold
VOWELS = frozenset("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw".split())

# espeak-ng English phoneme mnemonics (en, en-us, en-gb-x-rp, en-gb-scotland,
# en-029; every one seen when speaking the 100k words of the CMU dictionary)
# plus a few rarer ones. Stress marks are stripped before the lookup; names
# that start with "_" are pauses.
ESPEAK_TO_ARPABET = {
    # vowels
    "@": "ah", "@2": "ah", "@5": "ah", "@-": "ah", "V": "ah", "a#": "ah",
    "3": "er", "3:": "er", "VR": "er", "IR": "er",
    "a": "ae", "aa": "ae", "a2": "ae",
    "A:": "aa", "A@": "aa", "A~": "aa", "0": "aa", "Q": "aa",
    "O": "ao", "O:": "ao", "O2": "ao", "O@": "ao", "o@": "ao", "O~": "ao",
    "OI": "oy", "oU": "ow", "o": "ow", "o:": "ow",
    "aI": "ay", "aI2": "ay", "aI3": "ay", "aI@": "ay", "aU": "aw", "aU@": "aw",
    "eI": "ey", "e": "eh", "e@": "eh", "E": "eh", "E2": "eh", "E3": "eh",
    "I": "ih", "I2": "ih", "I#": "ih", "i@": "ih", "i@3": "ih",
    "i": "iy", "i:": "iy",
    "U": "uh", "U@": "uh", "u:": "uw", "u": "uw",
    # syllabic consonants
    "@L": "l", "n-": "n", "m-": "m", "r-": "r",
    # consonants
    "p": "p", "b": "b", "t": "t", "d": "d", "k": "k", "g": "g",
    "t#": "d", "t2": "t", "t[": "t", "d#": "d", "?": "t",
    "f": "f", "v": "v", "T": "th", "D": "dh", "s": "s", "z": "z", "z#": "z", "S": "sh", "Z": "zh",
    "h": "hh", "x": "hh", "tS": "ch", "dZ": "jh",
    "m": "m", "n": "n", "N": "ng", "n^": "n",
    "l": "l", "l#": "l", "L": "l", "l/": "l", "r": "r", "w": "w", "w#": "w", "W": "w",
    "j": "y", ";": "y",  # ";" is espeak's short glide between vowels ("austria")
}
# In British English espeak's "aa" is the BATH vowel /A:/, in American /ae/.
_ESPEAK_GB_OVERRIDES = {"aa": "aa"}
_ESPEAK_STRESS = "',%=\u02c8\u02cc"

# festival/flite "radio" (CMU/DARPA) phone set: closures and allophones folded.
RADIO_TO_ARPABET = {
    **{p: p for p in ARPABET},
    "ax": "ah", "axr": "er", "ix": "ih", "dx": "d", "el": "l", "em": "m", "en": "n", "nx": "n", "hv": "hh",
    "pau": PAUSE, "h#": PAUSE, "brth": PAUSE, "ssil": PAUSE, "sil": PAUSE,
}
# festival "mrpa" (British) phone set.
MRPA_TO_ARPABET = {
    "uh": "ah", "e": "eh", "a": "ae", "o": "aa", "i": "ih", "u": "uh", "ii": "iy", "uu": "uw", "oo": "ao",
    "aa": "aa", "@@": "er", "ai": "ay", "ei": "ey", "oi": "oy", "au": "aw", "ou": "ow", "e@": "eh",
    "i@": "ih", "u@": "uh", "@": "ah",
    "p": "p", "t": "t", "k": "k", "b": "b", "d": "d", "g": "g", "s": "s", "z": "z", "sh": "sh", "zh": "zh",
    "f": "f", "v": "v", "th": "th", "dh": "dh", "ch": "ch", "jh": "jh", "h": "hh", "m": "m", "n": "n",
    "ng": "ng", "l": "l", "y": "y", "r": "r", "w": "w", "#": PAUSE, "pau": PAUSE,
}


def strip_stress(name: str) -> str:
    """An espeak-ng phoneme mnemonic without surrounding space and leading stress marks."""
    return name.strip().lstrip(_ESPEAK_STRESS)


def espeak_to_arpabet(mnemonic: str, language: str = "en-us") -> str:
    """ARPAbet symbol (or "pau") for an espeak-ng phoneme mnemonic; TtsError if unknown."""
    name = strip_stress(mnemonic)
    if not name or name.startswith("_"):
        return PAUSE
    if language.startswith("en-gb") and name in _ESPEAK_GB_OVERRIDES:
        return _ESPEAK_GB_OVERRIDES[name]
    try:
        return ESPEAK_TO_ARPABET[name]
    except KeyError:
        raise TtsError(f"espeak-ng phoneme {mnemonic!r} has no ARPAbet mapping") from None


def festival_to_arpabet(phone: str, phoneset: str, engine: str) -> str:
    """ARPAbet symbol (or "pau") for a festival/flite phone of ``phoneset`` ("radio" or "mrpa"); TtsError if unknown."""
    table = MRPA_TO_ARPABET if phoneset == "mrpa" else RADIO_TO_ARPABET
    try:
        return table[phone]
    except KeyError:
        raise TtsError(f"{engine} phone {phone!r} (phone set {phoneset}) has no ARPAbet mapping") from None
