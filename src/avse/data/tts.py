"""Offline text-to-speech (espeak-ng, flite, festival): 16 kHz audio with ARPAbet phone and word timings.

``synthesize(text, voice)`` returns an :class:`Utterance` whose phones are
lowercase ARPAbet without stress digits plus ``"pau"``, contiguous, starting at
0 and ending at the last sample, so that they can drive lip motion frame by
frame. The timings come from the engines themselves: espeak-ng's C API
(through ctypes: phoneme events plus sample-counting output hooks, see
``_espeak_phone_starts``), flite's ``-psdur`` segment end times and festival's
``Segment`` relation; measured against the audio energy, the best-fitting
shift is within 6 ms for every voice. Leading and trailing silence is made exactly
``KEEP_SILENCE_S`` long (cut or zero-padded, audio and timings shifted
together); the audio is peak normalised to ``PEAK`` (0.9) so that every
utterance has the same headroom.

Voice parameters are engine independent: ``pitch`` is a shift in semitones
from the voice's own pitch (0 = as shipped) and ``rate`` a speaking-rate
factor (1 = as shipped, 1.2 = 20 % faster). ``VOICE_CATALOG`` lists the voices
known here; ``speaker_voices`` draws distinct speaker identities from it.

The same text and voice give the same samples, whatever was synthesised
before: espeak-ng is loaded afresh for every call (its static state would
otherwise leak between calls), flite and festival run in a fresh process.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from avse import SAMPLE_RATE
from avse.audio.io import resample
from avse.errors import AvseError, ConfigError

ENGINES = ("espeak", "flite", "festival")
PAUSE = "pau"
ARPABET = frozenset(
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh".split()
)
PHONES = ARPABET | {PAUSE}  # every symbol an Utterance may hold
VOWELS = frozenset("aa ae ah ao aw ay eh er ey ih iy ow oy uh uw".split())
KEEP_SILENCE_S = 0.15  # silence before the first and after the last phone of every utterance
PEAK = 0.9  # peak level of every returned utterance
_SUBPROCESS_TIMEOUT_S = 120


class TtsError(AvseError):
    """Speech synthesis failed: an engine or voice is missing, or an engine misbehaved."""


class EngineMissingError(TtsError):
    """A TTS engine is not installed or cannot start on this machine."""


class VoiceMissingError(TtsError):
    """The engine runs but does not have the requested voice."""


# ---------------------------------------------------------------------------
# Voices
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """One speaker identity: an engine voice plus a fixed pitch shift and speaking rate.

    engine: "espeak" | "flite" | "festival".
    name: espeak language ("en-us", "en-gb-x-rp"), flite voice ("slt"), or
        festival voice ("kal_diphone"); see VOICE_CATALOG.
    variant: espeak voice variant ("f3", "m2"), None for the other engines.
    pitch: semitones above (+) or below (-) the voice's own pitch.
    rate: speaking-rate factor, 1.0 = the engine's default speed.
    """

    engine: str
    name: str
    variant: str | None = None
    pitch: int | float = 0.0
    rate: int | float = 1.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ConfigError(f"unknown TTS engine {self.engine!r}; expected one of {', '.join(ENGINES)}")
        if not self.name:
            raise ConfigError("a voice needs a name")
        if self.variant is not None and self.engine != "espeak":
            raise ConfigError(f"{self.engine} voices have no variants (got {self.variant!r})")
        if not (0.5 <= float(self.rate) <= 2.0):
            raise ConfigError(f"voice rate must be within [0.5, 2], got {self.rate}")
        if not (-12.0 <= float(self.pitch) <= 12.0):
            raise ConfigError(f"voice pitch shift must be within +-12 semitones, got {self.pitch}")

    @property
    def id(self) -> str:
        """Stable string id, e.g. ``"espeak-en-us+f3-p+1.50-r1.050"``."""
        base = self.name if self.variant is None else f"{self.name}+{self.variant}"
        return f"{self.engine}-{base}-p{float(self.pitch) + 0.0:+.2f}-r{float(self.rate):.3f}"


@dataclass(frozen=True)
class VoiceInfo:
    """A voice an engine ships: how it sounds and what can be changed."""

    engine: str
    name: str
    variant: str | None
    sex: str  # how it sounds: "male" | "female"
    accent: str
    pitch_control: bool  # whether Voice.pitch can move it

    def voice(self, pitch: float = 0.0, rate: float = 1.0) -> Voice:
        """This voice with a pitch shift (semitones) and a rate factor."""
        return Voice(self.engine, self.name, self.variant, pitch, rate)


ESPEAK_LANGUAGES = {"en-us": "American", "en-gb-x-rp": "British (RP)"}
# espeak-ng variants that sound like a (plain) man or woman; None = the language's default voice (male).
ESPEAK_VARIANTS = {
    None: "male", "m1": "male", "m2": "male", "m3": "male", "m4": "male", "m6": "male", "m7": "male",
    "f1": "female", "f2": "female", "f3": "female", "f4": "female", "f5": "female",
}

# Every voice used here (31 timbres; all present on the project machines):
#   espeak-ng  en-us and en-gb-x-rp, each as the default voice (male) and the
#              variants m1 m2 m3 m4 m6 m7 (male) and f1 f2 f3 f4 f5 (female);
#              other variants (klatt*, whisper, croak, ...) sound unnatural.
#   flite      slt (US female), kal16 (US male), awb (Scottish male), rms (US
#              male). "kal" is the 8 kHz build of kal16 and "awb_time" only says
#              the time, so neither is listed.
#   festival   cmu_us_slt_arctic_hts (US female, HTS), kal_diphone and
#              ked_diphone (US male, diphone).
# flite's rms and festival's HTS voice ignore pitch requests (checked: the
# samples are identical), so only their rate varies.
VOICE_CATALOG: tuple[VoiceInfo, ...] = (
    *(
        VoiceInfo("espeak", lang, var, sex, accent, True)
        for lang, accent in ESPEAK_LANGUAGES.items()
        for var, sex in ESPEAK_VARIANTS.items()
    ),
    VoiceInfo("flite", "slt", None, "female", "American", True),
    VoiceInfo("flite", "kal16", None, "male", "American", True),
    VoiceInfo("flite", "awb", None, "male", "Scottish", True),
    VoiceInfo("flite", "rms", None, "male", "American", False),
    VoiceInfo("festival", "cmu_us_slt_arctic_hts", None, "female", "American", False),
    VoiceInfo("festival", "kal_diphone", None, "male", "American", True),
    VoiceInfo("festival", "ked_diphone", None, "male", "American", True),
)


def _catalog_entry(voice: Voice) -> VoiceInfo | None:
    for info in VOICE_CATALOG:
        if (info.engine, info.name, info.variant) == (voice.engine, voice.name, voice.variant):
            return info
    return None


# ---------------------------------------------------------------------------
# Phone sets -> ARPAbet
# ---------------------------------------------------------------------------

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


def espeak_to_arpabet(mnemonic: str, language: str = "en-us") -> str:
    """ARPAbet symbol (or "pau") for an espeak-ng phoneme mnemonic; TtsError if unknown."""
    name = mnemonic.strip().lstrip(_ESPEAK_STRESS)
    if not name or name.startswith("_"):
        return PAUSE
    if language.startswith("en-gb") and name in _ESPEAK_GB_OVERRIDES:
        return _ESPEAK_GB_OVERRIDES[name]
    try:
        return ESPEAK_TO_ARPABET[name]
    except KeyError:
        raise TtsError(f"espeak-ng phoneme {mnemonic!r} has no ARPAbet mapping") from None


def _festival_to_arpabet(phone: str, phoneset: str, engine: str) -> str:
    table = MRPA_TO_ARPABET if phoneset == "mrpa" else RADIO_TO_ARPABET
    try:
        return table[phone]
    except KeyError:
        raise TtsError(f"{engine} phone {phone!r} (phone set {phoneset}) has no ARPAbet mapping") from None


# ---------------------------------------------------------------------------
# Utterance and the shared post-processing
# ---------------------------------------------------------------------------

Phone = tuple[str, float, float]
Word = tuple[str, float, float]


@dataclass(frozen=True, eq=False)
class Utterance:
    """Synthesised speech: audio [T] float32 at 16 kHz and its timings in seconds.

    phones: (symbol, start_s, end_s), ARPAbet or "pau", contiguous, first start
        0, last end T / 16000.
    words: (word, start_s, end_s) spanning each word's phones; [] when the
        engine gives no word alignment.
    """

    audio: np.ndarray
    phones: list[Phone]
    words: list[Word]
    text: str
    voice: Voice
    sample_rate: int = SAMPLE_RATE

    @property
    def duration(self) -> float:
        """Length of the audio in seconds."""
        return self.audio.shape[0] / self.sample_rate


@dataclass
class _Raw:
    """What an engine hands back: audio at its own rate and phone end times (s) in ARPAbet."""

    audio: np.ndarray  # [T] float32
    sample_rate: int
    phone_ends: list[tuple[str, float]]  # (symbol, end_s); each starts where the previous ended
    words: list[Word]


def _finalize(raw: _Raw, text: str, voice: Voice) -> Utterance:
    """Resample to 16 kHz, make phones contiguous over the audio, set edge silences, peak-normalise.

    The audio [T] float32 at 16 kHz starts and ends with exactly KEEP_SILENCE_S
    of silence before the first / after the last phone or loud sample.
    """
    audio = np.asarray(raw.audio, dtype=np.float32)
    if audio.size == 0 or not np.any(audio):
        raise TtsError(f"{voice.engine} produced no audio for {text!r}")
    audio = resample(audio, raw.sample_rate, SAMPLE_RATE).astype(np.float32, copy=False)
    n = audio.shape[0]

    # Phone boundaries as sample indices at 16 kHz.
    bounds: list[tuple[str, int, int]] = []
    prev = 0
    for sym, end_s in raw.phone_ends:
        end = min(max(int(round(end_s * SAMPLE_RATE)), prev), n)
        bounds.append((sym, prev, end))
        prev = end
    if prev < n:
        bounds.append((PAUSE, prev, n))
    if not any(sym != PAUSE and e > s for sym, s, e in bounds):
        raise TtsError(f"{voice.engine} gave no phones inside the audio for {text!r}")

    # Leading/trailing silence made exactly KEEP_SILENCE_S long (cut, or padded
    # with zeros), never cutting into a phone or into sound.
    speech = [(s, e) for sym, s, e in bounds if sym != PAUSE and e > s]
    loud = np.flatnonzero(np.abs(audio) > 0.01 * np.max(np.abs(audio)))
    first = min(speech[0][0], int(loud[0]))
    last = max(speech[-1][1], int(loud[-1]) + 1)
    keep = int(round(KEEP_SILENCE_S * SAMPLE_RATE))
    head = first - keep  # < 0: pad
    tail = last + keep  # > n: pad
    audio = np.concatenate(
        [
            np.zeros(max(0, -head), np.float32),
            audio[max(0, head) : min(n, tail)],
            np.zeros(max(0, tail - n), np.float32),
        ]
    )
    n = tail - head

    shifted = [(sym, min(max(s - head, 0), n), min(max(e - head, 0), n)) for sym, s, e in bounds]
    shifted = [(PAUSE, 0, shifted[0][1]), *shifted, (PAUSE, shifted[-1][2], n)]  # padded edges
    merged: list[tuple[str, int, int]] = []
    for sym, s, e in shifted:
        if e <= s:
            continue
        if merged and merged[-1][0] == PAUSE and sym == PAUSE:
            merged[-1] = (PAUSE, merged[-1][1], e)
        else:
            merged.append((sym, s, e))
    phones = [(sym, s / SAMPLE_RATE, e / SAMPLE_RATE) for sym, s, e in merged]

    words: list[Word] = []
    for word, ws, we in raw.words:
        s = min(max(int(round(ws * SAMPLE_RATE)) - head, 0), n)
        e = min(max(int(round(we * SAMPLE_RATE)) - head, 0), n)
        if e > s:
            words.append((word, s / SAMPLE_RATE, e / SAMPLE_RATE))

    peak = float(np.max(np.abs(audio)))
    audio = (audio * (PEAK / peak)).astype(np.float32)
    return Utterance(audio=audio, phones=phones, words=words, text=text, voice=voice)


def _words_from_phone_groups(
    words: list[str], groups: list[list[str]], phone_spans: list[tuple[str, float, float]]
) -> list[Word]:
    """Word spans from each word's phone count; [] when the counts do not match the phones."""
    speech = [(s, e) for sym, s, e in phone_spans if sym != PAUSE]
    if len(groups) != len(words) or sum(len(g) for g in groups) != len(speech) or any(not g for g in groups):
        return []
    out: list[Word] = []
    i = 0
    for word, group in zip(words, groups):
        out.append((word, speech[i][0], speech[i + len(group) - 1][1]))
        i += len(group)
    return out


def _spans(phone_ends: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    out, prev = [], 0.0
    for sym, end in phone_ends:
        out.append((sym, prev, end))
        prev = end
    return out


def _read_wav(path: Path, engine: str) -> tuple[np.ndarray, int]:
    if not path.exists() or path.stat().st_size <= 44:
        raise TtsError(f"{engine} wrote no audio")
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return data.mean(axis=1), int(sr)


def _run(cmd: list[str], engine: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=_SUBPROCESS_TIMEOUT_S, cwd=cwd, check=False
        )
    except FileNotFoundError:
        raise EngineMissingError(f"{engine} is not installed ({cmd[0]} not found)") from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{engine} did not finish within {_SUBPROCESS_TIMEOUT_S} s") from None


def _last_line(s: str) -> str:
    lines = [ln.strip() for ln in s.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "no message"


# ---------------------------------------------------------------------------
# espeak-ng through its C API
# ---------------------------------------------------------------------------

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_DONT_EXIT = 0x8000  # never let the library call exit() when its data is missing
_EV_LIST_TERMINATED, _EV_WORD, _EV_PHONEME = 0, 1, 7
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_ENDPAUSE = 0x1000
_PARAM_RATE, _PARAM_PITCH = 1, 3
_ESPEAK_RATE_NORMAL = 175  # words per minute, espeakRATE_NORMAL
_ESPEAK_SEED = 1  # seed of espeak-ng's random numbers, set before each synthesis
# espeak pitch parameter (0-100, 50 = voice default) -> measured F0 shift in
# semitones (median F0 of two sentences, en-us and en-us+f3, averaged); shifts
# beyond the ends (-6.2, +8.9) saturate there.
_ESPEAK_PITCH_PARAM = (0.0, 10.0, 30.0, 50.0, 70.0, 90.0, 100.0)
_ESPEAK_PITCH_SEMITONES = (-6.2, -5.0, -2.8, 0.0, 3.2, 6.9, 8.9)


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):  # espeak_EVENT
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_SynthCallback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))
_PhoHook = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int)
_SampleHook = ctypes.CFUNCTYPE(None, ctypes.c_short)


class _OutputHooks(ctypes.Structure):  # espeak_ng_OUTPUT_HOOKS
    _fields_ = [("pho", _PhoHook), ("silence", _SampleHook), ("voiced", _SampleHook), ("unvoiced", _SampleHook)]


# espeak-ng phoneme types (phoneme.h)
_PH_VOWEL, _PH_LIQUID, _PH_NASAL = 2, 3, 8


def _espeak_candidates() -> list[tuple[str, str | None]]:
    """(library, data path or None) pairs to try: the system library first, then the espeakng-loader wheel."""
    out: list[tuple[str, str | None]] = []
    system = ctypes.util.find_library("espeak-ng")
    if system:
        out.append((system, None))
    try:
        import espeakng_loader

        out.append((espeakng_loader.get_library_path(), espeakng_loader.get_data_path()))
    except (ImportError, RuntimeError):
        pass
    return out


@dataclass
class _EspeakOutput:
    samples: np.ndarray  # [T] int16 at the engine's rate
    events: list[tuple[int, float, int, int, str]]  # (WORD|PHONEME, audio_position s, text_position, length, name)
    starts: list[tuple[float, str, int]]  # (s, name, phoneme type) where each phoneme's synthesis began
    starts_valid: bool  # the sample hooks counted every sample, so ``starts`` is exact


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    """Declare the signatures of the espeak-ng functions used here."""
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
    lib.espeak_SetSynthCallback.restype = None
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ctypes.c_void_p, ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    lib.espeak_Terminate.argtypes = []
    lib.espeak_Terminate.restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetOutputHooks"):
        lib.espeak_ng_SetOutputHooks.argtypes = [ctypes.POINTER(_OutputHooks)]
        lib.espeak_ng_SetOutputHooks.restype = ctypes.c_int
    if hasattr(lib, "espeak_ng_SetRandSeed"):
        lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        lib.espeak_ng_SetRandSeed.restype = ctypes.c_int
    return lib


def _unload(lib: ctypes.CDLL) -> None:
    import _ctypes

    _ctypes.dlclose(lib._handle)


class _Espeak:
    """espeak-ng through its C API; every use holds _ESPEAK_LOCK.

    The library keeps synthesis state in static variables (the phase of the
    glottal source, an unfinished echo tail, ...) that leak from one call into
    the next, so each synthesis loads the library afresh (dlopen, about 5 ms),
    initialises it, seeds its random numbers (glibc rand() in 1.51,
    espeak_ng_SetRandSeed in 1.52), speaks and unloads it again: the same text
    and voice then give the same samples whatever was spoken before.

    Two timings come back for each phoneme: the PHONEME event, which espeak
    places after a stop's closure and, for a vowel after a nasal or liquid,
    after the vowel's onset; and the point where the synthesis of the phoneme
    began, found by counting samples in espeak-ng's output hooks (the stop
    closure included). ``_espeak_phone_starts`` combines them.
    """

    def __init__(self) -> None:
        errors = []
        for lib_path, data_path in _espeak_candidates():
            try:
                lib = _bind(ctypes.CDLL(lib_path))
            except (OSError, AttributeError) as err:
                errors.append(f"{lib_path}: {err}")
                continue
            try:
                rate = lib.espeak_Initialize(
                    _AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path.encode() if data_path else None, _INIT_DONT_EXIT
                )
                found = ctypes.c_char_p()
                version = (lib.espeak_Info(ctypes.byref(found)) or b"?").decode()
                found_path = found.value.decode() if found.value else (data_path or "")  # copy before unloading
                if rate > 0:
                    lib.espeak_Terminate()
            finally:
                _unload(lib)
            if rate <= 0:
                errors.append(f"{lib_path}: espeak_Initialize failed (data at {data_path or 'default path'})")
                continue
            self.lib_path = lib_path
            self.init_path = data_path  # None: the library's built-in data path
            self.sample_rate = int(rate)
            self.version = version
            self.data_path = Path(found_path)
            self._libc_srand = None
            libc_name = ctypes.util.find_library("c")
            if libc_name:
                self._libc_srand = ctypes.CDLL(libc_name).srand
                self._libc_srand.argtypes = [ctypes.c_uint]
                self._libc_srand.restype = None
            self._reset()
            # Keep references: the library holds raw pointers to these while it is loaded.
            self._callback = _SynthCallback(self._on_audio)
            count = _SampleHook(self._on_sample)
            self._hooks = _OutputHooks(_PhoHook(self._on_phoneme_start), count, count, count)
            return
        raise EngineMissingError(
            "espeak-ng library not usable: " + ("; ".join(errors) if errors else "libespeak-ng not found")
        )

    def _reset(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, float, int, int, str]] = []
        self._starts: list[tuple[int, str, int]] = []
        self._count = 0

    def _on_audio(self, wav, n, events) -> int:
        try:
            if wav and n > 0:
                self._chunks.append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
            i = 0
            while events[i].type != _EV_LIST_TERMINATED:
                ev = events[i]
                if ev.type == _EV_PHONEME:
                    name = bytes(ev.id.string).split(b"\0", 1)[0].decode("utf-8", "replace")
                    self._events.append((ev.type, ev.audio_position / 1000.0, ev.text_position, ev.length, name))
                elif ev.type == _EV_WORD:
                    self._events.append((ev.type, ev.audio_position / 1000.0, ev.text_position, ev.length, ""))
                i += 1
        except Exception:  # noqa: BLE001 - an exception must not cross the C boundary; abort synthesis instead
            return 1
        return 0

    def _on_sample(self, _sample) -> None:
        self._count += 1

    def _on_phoneme_start(self, name, ph_type) -> None:
        entry = (self._count, (name or b"").decode("utf-8", "replace"), int(ph_type))
        # espeak queues a phoneme's start again when its command queue was full: keep the first
        if not self._starts or self._starts[-1] != entry:
            self._starts.append(entry)

    def has_variant(self, variant: str) -> bool:
        return (self.data_path / "voices" / "!v" / variant).is_file()

    def synth(self, text: str, voice: Voice) -> _EspeakOutput:
        """int16 samples of ``text`` at self.sample_rate with its events and phoneme start times."""
        if voice.variant is not None and not self.has_variant(voice.variant):
            raise VoiceMissingError(f"espeak-ng has no voice variant {voice.variant!r} (in {self.data_path})")
        lib = _bind(ctypes.CDLL(self.lib_path))
        try:
            init = self.init_path.encode() if self.init_path else None
            if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, init, _INIT_PHONEME_EVENTS | _INIT_DONT_EXIT) <= 0:
                raise EngineMissingError(f"espeak-ng failed to initialise from {self.lib_path}")
            try:
                return self._speak(lib, text, voice)
            finally:
                lib.espeak_Terminate()
        finally:
            _unload(lib)

    def _speak(self, lib: ctypes.CDLL, text: str, voice: Voice) -> _EspeakOutput:
        lib.espeak_SetSynthCallback(self._callback)
        hooks = hasattr(lib, "espeak_ng_SetOutputHooks") and lib.espeak_ng_SetOutputHooks(ctypes.byref(self._hooks)) == 0
        name = voice.name if voice.variant is None else f"{voice.name}+{voice.variant}"
        if lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise VoiceMissingError(f"espeak-ng has no voice {voice.name!r}")
        rate = int(round(_ESPEAK_RATE_NORMAL * float(voice.rate)))
        pitch = float(np.interp(float(voice.pitch), _ESPEAK_PITCH_SEMITONES, _ESPEAK_PITCH_PARAM))
        lib.espeak_SetParameter(_PARAM_RATE, max(80, min(450, rate)), 0)
        lib.espeak_SetParameter(_PARAM_PITCH, int(round(pitch)), 0)
        if hasattr(lib, "espeak_ng_SetRandSeed"):
            lib.espeak_ng_SetRandSeed(_ESPEAK_SEED)
        if self._libc_srand is not None:
            self._libc_srand(_ESPEAK_SEED)
        self._reset()
        data = text.encode("utf-8")
        try:
            # ENDPAUSE: end on a pause, so that the echo and the last sounds finish inside this call.
            flags = _CHARS_UTF8 | _ENDPAUSE
            err = lib.espeak_Synth(data + b"\0", len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
            samples = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            out = _EspeakOutput(
                samples=samples,
                events=self._events,
                starts=[(c / self.sample_rate, nm, t) for c, nm, t in self._starts],
                starts_valid=bool(hooks) and self._count == samples.shape[0],
            )
        finally:
            self._reset()
        if err != 0:
            raise TtsError(f"espeak_Synth failed with code {err}")
        return out


_ESPEAK: _Espeak | None = None
_ESPEAK_LOCK = threading.Lock()


def _reset_espeak_lock_in_child() -> None:
    # A lock held by another thread at fork time would stay held forever in the child.
    global _ESPEAK_LOCK
    _ESPEAK_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_espeak_lock_in_child)


def _espeak() -> _Espeak:
    global _ESPEAK
    if _ESPEAK is None:
        _ESPEAK = _Espeak()
    return _ESPEAK


def _strip_stress(name: str) -> str:
    return name.strip().lstrip(_ESPEAK_STRESS)


# Where a vowel after a nasal or liquid starts, as a fraction of the span from
# the consonant's start to the vowel's PHONEME event (espeak puts that event
# after the consonant-to-vowel onset). Calibrated here on 120 sentences (en-us
# and en-gb-x-rp, four variants) as the median position of the steepest 10 ms
# energy rise: nasals 0.8, l 0.6, y 0.55, r 0.3-0.6, w 0.3.
_ESPEAK_ONSET_SPLIT = {"m": 0.8, "n": 0.8, "ng": 0.8, "l": 0.6, "y": 0.55, "r": 0.45, "w": 0.35}


def _espeak_phone_starts(out: _EspeakOutput) -> list[float]:
    """Start time (s) of every PHONEME event in ``out.events``.

    A phoneme starts where espeak began synthesising it, counted in samples
    by the output hooks (so a stop owns its closure silence, which the event
    leaves to the phone before), except a vowel after a nasal or liquid:
    espeak synthesises the consonant's release inside that vowel's onset and
    emits the vowel's event after the onset, so the vowel starts at a
    calibrated fraction (_ESPEAK_ONSET_SPLIT) of the way from the consonant's
    start to that event. Without the hooks the events are used as they are.
    """
    marks = [(pos, name) for kind, pos, _, _, name in out.events if kind == _EV_PHONEME]
    result = [pos for pos, _ in marks]
    if not out.starts_valid:
        return result
    j = 0
    for i, (pos, name) in enumerate(marks):
        key = _strip_stress(name)
        k = j
        while k < len(out.starts) and _strip_stress(out.starts[k][1]) != key:
            k += 1
        if k == len(out.starts):
            return [p for p, _ in marks]  # cannot pair the two streams: fall back to the events alone
        start, _, ph_type = out.starts[k]
        prev_type = out.starts[k - 1][2] if k > 0 else -1
        if i == 0 or espeak_to_arpabet(marks[i - 1][1]) == PAUSE:
            result[i] = pos  # silence before a phone that follows a pause stays pause
        elif ph_type == _PH_VOWEL and prev_type in (_PH_LIQUID, _PH_NASAL):
            consonant = espeak_to_arpabet(marks[i - 1][1])
            split = _ESPEAK_ONSET_SPLIT.get(consonant, 0.5)
            result[i] = result[i - 1] + split * max(pos - result[i - 1], 0.0)
        else:
            result[i] = min(pos, start)
        j = k + 1
    for i in range(1, len(result)):  # keep the order
        result[i] = max(result[i], result[i - 1])
    return result


_PUNCT = ".,;:!?\"'()[]{}"


def _espeak_word_text(text: str, text_pos: int, length: int) -> str:
    """The word a WORD event points at (1-based character position); "" for the end-of-text event.

    After "word." followed by a lowercase word espeak points the event at the
    space before the word (length 1): then the next token is taken.
    """
    if length <= 0:
        return ""
    i = max(text_pos - 1, 0)
    if i < len(text) and text[i].isalnum():
        return text[i : i + length].strip(_PUNCT)
    while i < len(text) and not text[i].isalnum():
        i += 1
    j = i
    while j < len(text) and not text[j].isspace():
        j += 1
    return text[i:j].strip(_PUNCT)


def _synth_espeak(text: str, voice: Voice) -> _Raw:
    with _ESPEAK_LOCK:
        engine = _espeak()
        out = engine.synth(text, voice)
        sr = engine.sample_rate
    audio = out.samples.astype(np.float32) / 32768.0
    total = out.samples.shape[0] / sr
    phone_starts = iter(_espeak_phone_starts(out))

    # Phone i runs from its start to the next phone's start; before the first one is silence.
    starts: list[tuple[str, float]] = [(PAUSE, 0.0)]
    word_of_phone: list[int] = [-1]
    word_texts: list[str] = []
    current_word = -1
    for kind, _pos, text_pos, length, name in out.events:
        if kind == _EV_WORD:
            current_word = -1
            word = _espeak_word_text(text, text_pos, length)
            if word:
                word_texts.append(word)
                current_word = len(word_texts) - 1
            continue
        sym = espeak_to_arpabet(name, voice.name)
        starts.append((sym, next(phone_starts)))
        word_of_phone.append(current_word if sym != PAUSE else -1)
    phone_ends = [(sym, starts[i + 1][1]) for i, (sym, _) in enumerate(starts[:-1])]
    phone_ends.append((starts[-1][0], total))

    spans = _spans(phone_ends)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, w in enumerate(word_of_phone):
        if w >= 0 and spans[i][2] > spans[i][1]:
            first.setdefault(w, i)
            last[w] = i
    words = [(word_texts[w], spans[first[w]][1], spans[last[w]][2]) for w in sorted(first) if word_texts[w].strip()]
    return _Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)


# ---------------------------------------------------------------------------
# flite (subprocess)
# ---------------------------------------------------------------------------

_FLITE_PHONE = re.compile(r"^([a-z#]+):([0-9]*\.?[0-9]+)$")


@functools.lru_cache(maxsize=1)
def _flite_voices() -> tuple[str, ...]:
    exe = shutil.which("flite")
    if exe is None:
        return ()
    proc = _run([exe, "-lv"], "flite")
    if proc.returncode != 0:
        return ()
    listing = proc.stdout.split(":", 1)[-1]
    return tuple(listing.split())


def _word_tokens(text: str) -> list[str]:
    tokens = [t.strip(_PUNCT) for t in text.split()]
    return [t for t in tokens if t]


def _synth_flite(text: str, voice: Voice) -> _Raw:
    exe = shutil.which("flite")
    if exe is None:
        raise EngineMissingError("flite is not installed (no flite on PATH)")
    if voice.name not in _flite_voices():
        raise VoiceMissingError(f"flite has no voice {voice.name!r} (has: {', '.join(_flite_voices()) or 'none'})")
    info = _catalog_entry(voice)
    if float(voice.pitch) != 0.0 and info is not None and not info.pitch_control:
        raise ConfigError(f"flite voice {voice.name} cannot change pitch; use pitch=0")
    settings = [
        "--setf", f"duration_stretch={1.0 / float(voice.rate):.6f}",
        "--setf", f"f0_shift={2.0 ** (float(voice.pitch) / 12.0):.6f}",
    ]
    with tempfile.TemporaryDirectory(prefix="avse_flite_") as tmp:
        wav = Path(tmp) / "out.wav"
        proc = _run([exe, "-voice", voice.name, *settings, "-t", text, "-o", str(wav), "-psdur"], "flite")
        if proc.returncode != 0:
            raise TtsError(f"flite failed: {_last_line(proc.stderr or proc.stdout)}")
        audio, sr = _read_wav(wav, "flite")
    phone_ends = []
    for token in proc.stdout.split():
        m = _FLITE_PHONE.match(token)
        if m:
            phone_ends.append((_festival_to_arpabet(m.group(1), "radio", "flite"), float(m.group(2))))
    if not phone_ends:
        raise TtsError("flite printed no phone timings")

    # Word alignment: flite prints no word times, so say the words one per
    # sentence (-ps, no audio) to learn how many phones each word has.
    tokens = _word_tokens(text)
    words: list[Word] = []
    if tokens:
        proc = _run([exe, "-voice", voice.name, "-ps", "-t", ". ".join(tokens) + ".", "-o", "none"], "flite")
        groups: list[list[str]] = [[]]
        for token in proc.stdout.split():
            if token == "pau":
                if groups[-1]:
                    groups.append([])
            elif re.fullmatch(r"[a-z]+", token):
                groups[-1].append(token)
        groups = [g for g in groups if g]
        words = _words_from_phone_groups(tokens, groups, _spans(phone_ends))
    phone_ends, words = _delayed(phone_ends, words, voice)
    return _Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)


# ---------------------------------------------------------------------------
# festival (subprocess running a scheme script)
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _festival_voices() -> tuple[str, ...]:
    exe = shutil.which("festival")
    if exe is None:
        return ()
    with tempfile.TemporaryDirectory(prefix="avse_festival_") as tmp:
        script = Path(tmp) / "list.scm"
        script.write_text('(format t "AVSE_VOICES %l\\n" (voice.list))\n')
        proc = _run([exe, "-b", str(script)], "festival")
    m = re.search(r"AVSE_VOICES \(([^)]*)\)", proc.stdout)
    return tuple(m.group(1).split()) if m else ()


def _scheme_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _festival_script(text: str, voice: Voice, wav: Path, segs: Path) -> str:
    factor = 2.0 ** (float(voice.pitch) / 12.0)
    lines = [f"(voice_{voice.name})"]
    if voice.name.endswith("_hts"):
        # The HTS engine predicts its own durations; "-r" is its speed factor
        # and the durations it used are written back into the Segment relation.
        speed = f"{float(voice.rate):.6f}"
        lines.append(f'(set! hts_engine_params (append hts_engine_params (list (list "-r" {speed}))))')
    else:
        lines.append(
            "(let ((ds (Parameter.get 'Duration_Stretch))) (if (not ds) (set! ds 1.0))"
            f" (Parameter.set 'Duration_Stretch (/ ds {float(voice.rate):.6f})))"
        )
        if factor != 1.0:
            lines.append(
                "(set! int_lr_params (mapcar (lambda (p) (if (member (car p) '(target_f0_mean target_f0_std))"
                f" (list (car p) (* {factor:.6f} (car (cdr p)))) p)) int_lr_params))"
            )
    lines += [
        f"(set! avse_utt (utt.synth (Utterance Text {_scheme_string(text)})))",
        f"(utt.save.wave avse_utt {_scheme_string(str(wav))} 'riff)",
        f"(set! avse_fd (fopen {_scheme_string(str(segs))} \"w\"))",
        "(format avse_fd \"phoneset %s\\n\" (Parameter.get 'PhoneSet))",
        "(mapcar (lambda (s) (format avse_fd \"p %s %f\\n\" (item.name s) (item.feat s \"end\")))"
        " (utt.relation.items avse_utt 'Segment))",
        "(mapcar (lambda (w) (format avse_fd \"w %s %f %f\\n\" (item.name w)"
        " (item.feat w \"R:SylStructure.daughter1.daughter1.segment_start\")"
        " (item.feat w \"R:SylStructure.daughtern.daughtern.segment_end\")))"
        " (utt.relation.items avse_utt 'Word))",
        "(fclose avse_fd)",
    ]
    return "\n".join(lines) + "\n"


# Constant delay of the audio behind the segment times, measured here as the
# shift that best lines up vowel/pause labels with 1 ms energy (12 sentences):
# 10 ms for the HTS voice (its vocoder), 6 ms for flite's slt, <= 4 ms (not
# corrected) for the other voices.
_AUDIO_DELAY_S = {("festival", "cmu_us_slt_arctic_hts"): 0.010, ("flite", "slt"): 0.005}


def _delayed(phone_ends: list[tuple[str, float]], words: list[Word], voice: Voice) -> tuple[list, list]:
    d = _AUDIO_DELAY_S.get((voice.engine, voice.name), 0.0)
    if d == 0.0:
        return phone_ends, words
    return [(p, e + d) for p, e in phone_ends], [(w, s + d, e + d) for w, s, e in words]


def _synth_festival(text: str, voice: Voice) -> _Raw:
    exe = shutil.which("festival")
    if exe is None:
        raise EngineMissingError("festival is not installed (no festival on PATH)")
    voices = _festival_voices()
    if voice.name not in voices:
        raise VoiceMissingError(f"festival has no voice {voice.name!r} (has: {', '.join(voices) or 'none'})")
    info = _catalog_entry(voice)
    if float(voice.pitch) != 0.0 and (info is None or not info.pitch_control):
        raise ConfigError(f"festival voice {voice.name} cannot change pitch; use pitch=0")
    with tempfile.TemporaryDirectory(prefix="avse_festival_") as tmp:
        wav, segs, script = Path(tmp) / "out.wav", Path(tmp) / "segs.txt", Path(tmp) / "say.scm"
        script.write_text(_festival_script(text, voice, wav, segs))
        proc = _run([exe, "-b", str(script)], "festival", cwd=tmp)
        if proc.returncode != 0 or not segs.exists():
            raise TtsError(f"festival failed: {_last_line(proc.stderr or proc.stdout)}")
        audio, sr = _read_wav(wav, "festival")
        rows = segs.read_text().splitlines()
    phoneset = "radio"
    phone_ends: list[tuple[str, float]] = []
    words: list[Word] = []
    for row in rows:
        parts = row.split()
        if len(parts) == 2 and parts[0] == "phoneset":
            phoneset = parts[1]
        elif len(parts) == 3 and parts[0] == "p":
            phone_ends.append((_festival_to_arpabet(parts[1], phoneset, "festival"), float(parts[2])))
        elif len(parts) == 4 and parts[0] == "w":
            words.append((parts[1], float(parts[2]), float(parts[3])))
    if not phone_ends:
        raise TtsError("festival returned no segments")
    phone_ends, words = _delayed(phone_ends, words, voice)
    return _Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)


# ---------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------

_SYNTH = {"espeak": _synth_espeak, "flite": _synth_flite, "festival": _synth_festival}


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak ``text`` with ``voice``: audio [T] float32 at 16 kHz (peak 0.9) with phone and word timings.

    Raises EngineMissingError / VoiceMissingError when the engine or voice is
    not installed, ConfigError for a pitch shift on a voice that cannot do it,
    and TtsError when the engine fails.
    """
    text = " ".join(text.split())
    if not text:
        raise TtsError("nothing to say: the text is empty")
    return _finalize(_SYNTH[voice.engine](text, voice), text, voice)


@functools.lru_cache(maxsize=1)
def available_engines() -> tuple[str, ...]:
    """The engines that work on this machine, in ENGINES order (checked once per process)."""
    out = []
    try:
        with _ESPEAK_LOCK:
            engine = _espeak()
        if engine.has_variant("m1"):
            out.append("espeak")
    except TtsError:
        pass
    if any(v.name in _flite_voices() for v in VOICE_CATALOG if v.engine == "flite"):
        out.append("flite")
    if any(v.name in _festival_voices() for v in VOICE_CATALOG if v.engine == "festival"):
        out.append("festival")
    return tuple(out)


def available_voices(engines: tuple[str, ...] | list[str] | None = None) -> list[VoiceInfo]:
    """The VOICE_CATALOG entries installed here (optionally only for ``engines``)."""
    engines = available_engines() if engines is None else tuple(engines)
    out = []
    for info in VOICE_CATALOG:
        if info.engine not in engines or info.engine not in available_engines():
            continue
        if info.engine == "flite" and info.name not in _flite_voices():
            continue
        if info.engine == "festival" and info.name not in _festival_voices():
            continue
        if info.engine == "espeak" and info.variant is not None:
            with _ESPEAK_LOCK:
                espeak = _espeak()
            if not espeak.has_variant(info.variant):
                continue
        out.append(info)
    return out


# Engine share of the speakers: half espeak-ng (24 timbres), a quarter each
# for flite (4 timbres) and festival (3 timbres).
_ENGINE_PATTERN = ("espeak", "flite", "espeak", "festival")


def _interleave_by_sex(infos: list[VoiceInfo], rng: np.random.Generator) -> list[VoiceInfo]:
    female = [infos[i] for i in rng.permutation(len(infos)) if infos[i].sex == "female"]
    male = [infos[i] for i in rng.permutation(len(infos)) if infos[i].sex == "male"]
    out: list[VoiceInfo] = []
    while female or male:
        for group in (female, male):
            if group:
                out.append(group.pop(0))
    return out


# The u-th speaker drawn on one timbre is centred on the u-th entry (semitones
# for voices with pitch control, else rate factors); past the list, anywhere
# between its extremes.
_PITCH_CENTERS = (0.0, 2.5, -2.5, 5.0, -5.0, 7.0, -7.0)
_RATE_CENTERS = (1.0, 1.12, 0.88, 1.24, 0.8)


def _band(use: int, centers: tuple[float, ...], rng: np.random.Generator) -> float:
    if use < len(centers):
        return centers[use]
    return float(rng.uniform(min(centers), max(centers)))


def speaker_voices(n: int, seed: int = 0, engines: tuple[str, ...] | list[str] | None = None) -> list[Voice]:
    """``n`` distinct speaker identities (Voice objects), deterministic for ``seed`` and the engines used.

    Speakers are spread over the engines (half espeak-ng, a quarter each flite
    and festival, among those available), alternate female and male timbres
    within an engine, and get a fixed pitch shift and rate. A timbre reused for
    several speakers gets well separated pitches (or rates, for voices without
    pitch control).
    """
    if n < 0:
        raise ConfigError(f"number of speakers must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    infos = available_voices(engines)
    by_engine = {e: _interleave_by_sex([v for v in infos if v.engine == e], rng) for e in ENGINES}
    pattern = [e for e in _ENGINE_PATTERN if by_engine[e]]
    if not pattern:
        raise EngineMissingError("no TTS engine with a usable voice is installed (espeak-ng, flite or festival)")
    used: dict[tuple[str, str, str | None], int] = {}
    next_in_engine = {e: 0 for e in ENGINES}
    voices: list[Voice] = []
    ids: set[str] = set()
    for k in range(n):
        engine = pattern[k % len(pattern)]
        pool = by_engine[engine]
        info = pool[next_in_engine[engine] % len(pool)]
        next_in_engine[engine] += 1
        key = (info.engine, info.name, info.variant)
        use = used.get(key, 0)
        used[key] = use + 1
        for _attempt in range(1000):
            if info.pitch_control:
                pitch = _band(use, _PITCH_CENTERS, rng) + rng.uniform(-0.8, 0.8)
                rate = rng.uniform(0.9, 1.1)
            else:
                pitch = 0.0
                rate = _band(use, _RATE_CENTERS, rng) + rng.uniform(-0.03, 0.03)
            voice = info.voice(pitch=round(float(pitch), 2), rate=round(float(rate), 3))
            if voice.id not in ids:
                break
        ids.add(voice.id)
        voices.append(voice)
    return voices
