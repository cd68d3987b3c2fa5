"""Phone timings of untranscribed speech, from PocketSphinx's phone decoder, so that such recordings can be targets.

A recording without a transcript cannot be aligned (:mod:`avse.data.align`),
so its face could not be drawn and it could only be a masker. PocketSphinx
(``pip install pocketsphinx``: its wheel ships a US-English acoustic model and
a phone language model) recognises its phones with their times instead. The
phones are often wrong, but their timing follows the recording;
``bench/bench_align.py`` measures how close the lips drawn from them come to
those of the true phones (on real GRID talkers, as close as the lips of
transcript-aligned phones).

The phones come in the form TTS utterances have them (``[symbol, start_s,
end_s]``, lowercase ARPAbet or ``pau``, contiguous from 0 to the recording's
end). The acoustic model knows English phones; other languages are heard as
English (:func:`can_recognise`).
"""

from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np

from avse import SAMPLE_RATE
from avse.data.tts.phones import PAUSE
from avse.data.tts.utterance import Phone
from avse.errors import ConfigError

VERSION = 2  # bumped when the recognised phones of a recording would change (2: noise statistics reset per recording)
# Phone-loop decoding as the PocketSphinx documentation gives it: the phone language model weighted
# lightly, wide beams (a phone loop has few paths, so they cost little).
_LANGUAGE_WEIGHT = 2.0
_BEAM = 1e-20

_decoder: Any = None


def available() -> bool:
    """Whether PocketSphinx (and so :func:`recognise_phones`) can be used here."""
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        return False
    return True


RECOGNISE_MODES = ("english", "all")


def can_recognise(language: str, mode: str = "english") -> bool:
    """Whether a recording in ``language`` (an espeak-ng voice name: "en-us", "en", "cs", ...) has its phones recognised.

    ``mode`` "english": English recordings only, the language the acoustic
    model knows. "all": every language, heard as if it were English. The
    phones are then English guesses at foreign sounds, but their timing still
    follows the speech: on real Czech and Dutch lines, the lips drawn from
    them agree with those of transcript-aligned phones at r = 0.5 (mean over
    the lip parameters; real English, the GRID clips: 0.78;
    ``bench/bench_align.py``).
    """
    if mode not in RECOGNISE_MODES:
        raise ConfigError(f"recognise mode must be one of {', '.join(RECOGNISE_MODES)}, got {mode!r}")
    return mode == "all" or language == "en" or language.startswith("en-")


def _get_decoder() -> Any:
    global _decoder
    if _decoder is None:
        try:
            from pocketsphinx import Config, Decoder, get_model_path
        except ImportError as err:
            raise ConfigError("recognising phones needs PocketSphinx: pip install pocketsphinx (or scripts/setup)") from err
        model = get_model_path()
        cfg = Config(
            hmm=os.path.join(model, "en-us", "en-us"),
            allphone=os.path.join(model, "en-us", "en-us-phone.lm.bin"),
            lw=_LANGUAGE_WEIGHT,
            beam=_BEAM,
            pbeam=_BEAM,
            samprate=float(SAMPLE_RATE),
        )
        cfg["logfn"] = os.devnull
        _decoder = Decoder(cfg)
    return _decoder


def _symbol(name: str) -> str:
    """A PocketSphinx phone ("AA", "SIL", "+NSN+", ...) -> lowercase ARPAbet, or pau for silence and fillers."""
    from avse.data.visemes import normalize_phone

    try:
        return normalize_phone(name)
    except ConfigError:
        return PAUSE


def recognise_phones(audio: np.ndarray) -> list[Phone]:
    """The phones of ``audio`` [T] (16 kHz mono float in [-1, 1], speech; English phones) with their times.

    Returns [(symbol, start_s, end_s), ...]: lowercase ARPAbet or "pau",
    contiguous from 0 to the recording's duration, neighbouring pauses merged.
    Phones before or after the speech that :func:`avse.data.align.speech_span`
    finds are pauses (one "pau" when it finds none). ConfigError when
    PocketSphinx is not installed or the audio is not mono.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ConfigError(f"recognise_phones expects mono audio [T], got shape {audio.shape}")
    duration = len(audio) / SAMPLE_RATE
    if len(audio) == 0:
        raise ConfigError("recognise_phones got empty audio")
    from avse.data.align import _clean, speech_span

    span = speech_span(audio)
    if span is None:  # silent or steady noise: a phone loop would still name phones
        return [(PAUSE, 0.0, duration)]
    dec = _get_decoder()
    pcm = (np.clip(audio, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()
    with warnings.catch_warnings():  # "deprecated and unnecessary", says PocketSphinx 5; but its model removes noise
        warnings.simplefilter("ignore", DeprecationWarning)  # (feat.params), and without this the noise statistics
        dec.start_stream()  # of earlier recordings change a recording's phones
    dec.start_utt()
    dec.process_raw(pcm, full_utt=True)
    dec.end_utt()
    rate = float(dec.config["frate"])
    spans: list[Phone] = []
    for seg in dec.seg():
        start = min(seg.start_frame / rate, duration)
        end = min((seg.end_frame + 1) / rate, duration)
        if end <= start:
            continue
        sym = _symbol(seg.word) if span[0] <= 0.5 * (start + end) <= span[1] else PAUSE
        if spans and spans[-1][2] < start:  # a gap between segments is silence
            spans.append((PAUSE, spans[-1][2], start))
        spans.append((sym, start, end))
    if not spans:
        return [(PAUSE, 0.0, duration)]
    if spans[0][1] > 0.0:
        spans.insert(0, (PAUSE, 0.0, spans[0][1]))
    if spans[-1][2] < duration:
        spans.append((PAUSE, spans[-1][2], duration))
    return _clean(spans, merge_pauses=True)  # neighbouring pauses merged, as the aligner's phones are
