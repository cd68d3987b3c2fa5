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
# espeak-ng phoneme mnemonics of other languages, by the nearest English phone in lip shape (they
# drive visemes, not recognition): every one seen speaking the Czech and Dutch fillets-ng dialogue
# (about 3,500 lines), plus common ones of other European languages. Looked up before the English
# table for a non-English voice; an unknown mnemonic is retried without its modifiers (": # ^ - digits").
ESPEAK_OTHER_TO_ARPABET = {
    # vowels (short / long monophthongs by openness and rounding)
    "a": "aa", "a:": "aa", "A": "aa", "A:": "aa", "&": "ae", "&:": "ae",
    "e": "eh", "e:": "ey", "E": "eh", "E:": "eh", "E2": "eh", "@": "ah", "@:": "ah", "3": "er",
    "i": "iy", "i:": "iy", "I": "ih", "I:": "ih", "i.": "ih", "y": "uw", "y:": "uw", "Y": "uh", "Y:": "uh",
    "o": "ao", "o:": "ow", "O": "ao", "O:": "ao", "Q": "aa", "u": "uh", "u:": "uw", "U": "uh",
    "8": "uh", "W": "uh", "W:": "uh", "V": "ah", "0": "aa",
    # diphthongs
    "aI": "ay", "ai": "ay", "aU": "aw", "au": "aw", "eI": "ey", "ei": "ey", "EI": "ey", "eU": "ow",
    "oU": "ow", "ou": "ow", "VU": "aw", "OI": "oy", "OY": "oy", "Wy": "oy", "yU": "uw", "Au": "aw",
    # syllabic consonants
    "r-": "r", "l-": "l", "m-": "m", "n-": "n",
    # consonants
    "R": "r", "R^": "zh", "r": "r", "*": "r", "R2": "r", "l": "l", "l^": "l", "L": "l",
    "n^": "n", "N": "ng", "J": "d", "c": "t", "c2": "t", "t": "t", "d": "d",
    "ts": "s", "dz": "z", "tS": "ch", "dZ": "jh", "S": "sh", "Z": "zh", "s^": "sh", "z^": "zh",
    "x": "hh", "X": "hh", "h": "hh", "Q2": "hh", "!": "hh", "?": "hh", "C": "hh", "G": "g", "j": "y", ";": "y",
    "v#": "v", "w": "w", "B": "v", "f": "f", "v": "v", "T": "th", "D": "dh",
}
_ESPEAK_MODIFIERS = ":#^-0123456789"
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


# MBROLA voices' phones (SAMPA of each voice's language, as espeak-ng's mbrola tables write them),
# by the nearest English phone in lip shape, where the espeak-ng tables above do not already have
# the symbol: every one seen when the 67 usable voices of scripts/fetch_mbrola speak 2,000 of the corpus's sentences.
# mbrola_to_arpabet first drops what does not move the lips (a glottal onset, aspiration, length,
# nasality, a doubled letter, a vowel's nasal coda) and retries.
MBROLA_TO_ARPABET = {
    "{": "ae", "@U": "ow", "AI": "ay", "EI": "ey", "Ei": "ey", "ei": "ey", "ey": "ey", "ow": "ow", "ai": "ay",
    "a:y": "ay", "au": "aw", "au:": "aw", "A@": "aa", "I@": "ih", "e@": "eh", "O@": "ao", "i@": "ih",
    "r=": "er", "l=": "l", "4": "d", "5": "l", "6": "ah", "9": "ah", "9y": "oy", "2": "uh", "}": "uw", "&": "ae",
    "$": "ah", "a*": "aa", "e*": "eh", "i*": "iy", "o*": "ao", "u*": "uw", "e/": "eh", "o/": "ao", "i/": "iy",
    "P": "v", "K": "l", "M": "m", "F": "f", "H": "w", "X": "hh", "c": "k", "rs": "sh", "L/": "l", "l/": "l",
    "VV": "ah", "RR": "r", "q": "g", "sh": "sh", "ay": "ay", "J-": "d", "tj": "ch", "h\\": "hh", "6~j~": "ay",
    "UR": "uh", "tl#": "t", "nY": "n", "oy": "oy", "ng": "ng", "ie": "iy", "nf": "f",
}


def strip_stress(name: str) -> str:
    """An espeak-ng phoneme mnemonic without surrounding space and leading stress marks."""
    return name.strip().lstrip(_ESPEAK_STRESS)


def espeak_to_arpabet(mnemonic: str, language: str = "en-us") -> str:
    """ARPAbet symbol (or "pau") for an espeak-ng phoneme mnemonic of voice ``language``; TtsError if unknown.

    A non-English ``language`` ("cs", "nl", ...) looks in ESPEAK_OTHER_TO_ARPABET first.
    """
    name = strip_stress(mnemonic)
    if not name or name.startswith("_"):
        return PAUSE
    if language.startswith("en-gb") and name in _ESPEAK_GB_OVERRIDES:
        return _ESPEAK_GB_OVERRIDES[name]
    if not language.startswith("en"):
        if name.startswith("(") and name.endswith(")"):  # a language switch, "(en)": no sound of its own
            return PAUSE
        for key in (name, name.rstrip(_ESPEAK_MODIFIERS), name.strip(_ESPEAK_MODIFIERS)):
            if key in ESPEAK_OTHER_TO_ARPABET:
                return ESPEAK_OTHER_TO_ARPABET[key]
            if key in ESPEAK_TO_ARPABET:
                return ESPEAK_TO_ARPABET[key]
    try:
        return ESPEAK_TO_ARPABET[name]
    except KeyError:
        raise TtsError(f"espeak-ng phoneme {mnemonic!r} ({language}) has no ARPAbet mapping") from None


def festival_to_arpabet(phone: str, phoneset: str, engine: str) -> str:
    """ARPAbet symbol (or "pau") for a festival/flite phone of ``phoneset`` ("radio" or "mrpa"); TtsError if unknown."""
    table = MRPA_TO_ARPABET if phoneset == "mrpa" else RADIO_TO_ARPABET
    try:
        return table[phone]
    except KeyError:
        raise TtsError(f"{engine} phone {phone!r} (phone set {phoneset}) has no ARPAbet mapping") from None


_MBROLA_DROP = ":*/'~=[0123456789\"^"  # length, nasality, dental, stress and other marks


def _mbrola_keys(name: str) -> list[str]:
    """``name`` and what is left of it as lip-neutral marks are dropped, most specific first."""
    keys = [name]
    bare = name[1:] if name.startswith("?") and len(name) > 1 else name  # a glottal onset
    for suffix in ("_h", "h"):  # aspiration of a stop
        if bare.endswith(suffix) and bare[: -len(suffix)] in ("p", "t", "k"):
            bare = bare[: -len(suffix)]
    plain = bare.replace("~", "")
    keys += [bare, plain, plain[:1] + plain[1:].rstrip(_MBROLA_DROP)]  # "2:" -> "2", never to nothing
    core = keys[-1] or plain
    if len(core) == 2 and core[0] == core[1]:  # a doubled letter: long or geminate
        keys.append(core[0])
    if len(core) == 2 and core[1] in "mn" and core[0] in "aeiou":  # a vowel with its nasal coda
        keys.append(core[0])
    return [k for k in dict.fromkeys(keys) if k]


def mbrola_to_arpabet(phone: str, language: str) -> str:
    """ARPAbet symbol (or "pau") for a phone of an MBROLA voice's .pho (SAMPA-like, per language); TtsError if unknown.

    Looked up in MBROLA_TO_ARPABET, then as an espeak-ng mnemonic of a
    non-English language (ESPEAK_OTHER_TO_ARPABET, then the English table),
    with lip-neutral marks dropped one by one (``_mbrola_keys``).
    """
    name = phone.strip()
    if not name or name.startswith("_"):
        return PAUSE
    for key in _mbrola_keys(name):
        if key in MBROLA_TO_ARPABET:
            return MBROLA_TO_ARPABET[key]
        if key in ESPEAK_OTHER_TO_ARPABET:
            return ESPEAK_OTHER_TO_ARPABET[key]
        if key in ESPEAK_TO_ARPABET:
            return ESPEAK_TO_ARPABET[key]
    raise TtsError(f"MBROLA phone {phone!r} ({language}) has no ARPAbet mapping")
