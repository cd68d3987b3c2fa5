"""espeak-ng through its C API (ctypes): phoneme events and sample-exact phone starts."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avse.data.tts.errors import EngineMissingError, TtsError, VoiceMissingError
from avse.data.tts.phones import PAUSE, espeak_to_arpabet, strip_stress
from avse.data.tts.utterance import PUNCT, Raw, spans_from_ends
from avse.data.tts.voices import Voice

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
        self._raised: BaseException | None = None  # what a callback caught, re-raised once espeak_Synth returns
        self._interrupted = False  # a Ctrl-C came during espeak_Synth (see _sigint_deferred)

    @contextlib.contextmanager
    def _sigint_deferred(self) -> Iterator[None]:
        """While inside, a Ctrl-C only sets ``self._interrupted``; _speak raises KeyboardInterrupt after the call.

        Python's own handler raises KeyboardInterrupt wherever the main thread
        is, which may be inside a ctypes callback, where ctypes prints the
        exception and carries on. Only the default handler is replaced, and only
        in the main thread (pool workers ignore SIGINT).
        """
        if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            yield
            return

        def mark(_signum, _frame) -> None:
            self._interrupted = True

        previous = signal.signal(signal.SIGINT, mark)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)

    def _on_audio(self, wav, n, events) -> int:
        # Nothing may cross the C boundary (ctypes would print it and carry on): the first exception
        # is kept, synthesis aborted (return 1), and _speak raises it after the call.
        try:
            if self._raised is not None or self._interrupted:
                return 1
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
        except BaseException as err:  # noqa: BLE001 - kept and re-raised by _speak, KeyboardInterrupt included
            self._raised = self._raised or err
            return 1
        return 0

    def _on_sample(self, _sample) -> None:
        try:
            self._count += 1
        except BaseException as err:  # noqa: BLE001 - a Ctrl-C may land here; the next _on_audio aborts
            self._raised = self._raised or err

    def _on_phoneme_start(self, name, ph_type) -> None:
        try:
            entry = (self._count, (name or b"").decode("utf-8", "replace"), int(ph_type))
            # espeak queues a phoneme's start again when its command queue was full: keep the first
            if not self._starts or self._starts[-1] != entry:
                self._starts.append(entry)
        except BaseException as err:  # noqa: BLE001 - as in _on_sample
            self._raised = self._raised or err

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
            with self._sigint_deferred():
                err = lib.espeak_Synth(data + b"\0", len(data) + 1, 0, _POS_CHARACTER, 0, flags, None, None)
            if self._raised is not None:
                raise self._raised
            if self._interrupted:
                raise KeyboardInterrupt
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


def espeak_has_variant(variant: str) -> bool:
    """Whether espeak-ng's data holds the voice variant; EngineMissingError when the library is not usable."""
    with _ESPEAK_LOCK:
        engine = _espeak()
    return engine.has_variant(variant)


# Where a vowel after a nasal or liquid starts, as a fraction of the span from
# the consonant's start to the vowel's PHONEME event (espeak puts that event
# after the consonant-to-vowel onset). Calibrated here on 120 sentences (en-us
# and en-gb-x-rp, four variants) as the median position of the steepest 10 ms
# energy rise: nasals 0.8, l 0.6, y 0.55, r 0.3-0.6, w 0.3.
_ESPEAK_ONSET_SPLIT = {"m": 0.8, "n": 0.8, "ng": 0.8, "l": 0.6, "y": 0.55, "r": 0.45, "w": 0.35}


def _espeak_phone_starts(out: _EspeakOutput, language: str = "en-us") -> list[float]:
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
        key = strip_stress(name)
        k = j
        while k < len(out.starts) and strip_stress(out.starts[k][1]) != key:
            k += 1
        if k == len(out.starts):
            return [p for p, _ in marks]  # cannot pair the two streams: fall back to the events alone
        start, _, ph_type = out.starts[k]
        prev_type = out.starts[k - 1][2] if k > 0 else -1
        if i == 0 or espeak_to_arpabet(marks[i - 1][1], language) == PAUSE:
            result[i] = pos  # silence before a phone that follows a pause stays pause
        elif ph_type == _PH_VOWEL and prev_type in (_PH_LIQUID, _PH_NASAL):
            consonant = espeak_to_arpabet(marks[i - 1][1], language)
            split = _ESPEAK_ONSET_SPLIT.get(consonant, 0.5)
            result[i] = result[i - 1] + split * max(pos - result[i - 1], 0.0)
        else:
            result[i] = min(pos, start)
        j = k + 1
    for i in range(1, len(result)):  # keep the order
        result[i] = max(result[i], result[i - 1])
    return result


def _espeak_word_text(text: str, text_pos: int, length: int) -> str:
    """The word a WORD event points at (1-based character position); "" for the end-of-text event.

    After "word." followed by a lowercase word espeak points the event at the
    space before the word (length 1): then the next token is taken.
    """
    if length <= 0:
        return ""
    i = max(text_pos - 1, 0)
    if i < len(text) and text[i].isalnum():
        return text[i : i + length].strip(PUNCT)
    while i < len(text) and not text[i].isalnum():
        i += 1
    j = i
    while j < len(text) and not text[j].isspace():
        j += 1
    return text[i:j].strip(PUNCT)


def synth_espeak(text: str, voice: Voice) -> Raw:
    """espeak-ng's audio of ``text`` with the phone ends and word spans of its events."""
    with _ESPEAK_LOCK:
        engine = _espeak()
        out = engine.synth(text, voice)
        sr = engine.sample_rate
    audio = out.samples.astype(np.float32) / 32768.0
    total = out.samples.shape[0] / sr
    phone_starts = iter(_espeak_phone_starts(out, voice.name))

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

    spans = spans_from_ends(phone_ends)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    for i, w in enumerate(word_of_phone):
        if w >= 0 and spans[i][2] > spans[i][1]:
            first.setdefault(w, i)
            last[w] = i
    words = [(word_texts[w], spans[first[w]][1], spans[last[w]][2]) for w in sorted(first) if word_texts[w].strip()]
    return Raw(audio=audio, sample_rate=sr, phone_ends=phone_ends, words=words)

