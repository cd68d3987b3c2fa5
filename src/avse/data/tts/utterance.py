"""The Utterance every engine's output becomes, and the timing post-processing the engines share."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avse import SAMPLE_RATE
from avse.audio.io import resample
from avse.data.tts.errors import TtsError
from avse.data.tts.phones import PAUSE
from avse.data.tts.voices import Voice

KEEP_SILENCE_S = 0.15  # silence before the first and after the last phone of every utterance
PEAK = 0.9  # peak level of every returned utterance
PUNCT = ".,;:!?\"'()[]{}"  # stripped from the ends of a word

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
class Raw:
    """What an engine hands back: audio at its own rate and phone end times (s) in ARPAbet."""

    audio: np.ndarray  # [T] float32
    sample_rate: int
    phone_ends: list[tuple[str, float]]  # (symbol, end_s); each starts where the previous ended
    words: list[Word]


def finalize(raw: Raw, text: str, voice: Voice) -> Utterance:
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


def spans_from_ends(phone_ends: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    """(symbol, start_s, end_s) of each phone, given (symbol, end_s) and a first start at 0."""
    out, prev = [], 0.0
    for sym, end in phone_ends:
        out.append((sym, prev, end))
        prev = end
    return out


# Constant delay of the audio behind the segment times, measured here as the
# shift that best lines up vowel/pause labels with 1 ms energy (12 sentences):
# 10 ms for the HTS voice (its vocoder), 6 ms for flite's slt, <= 4 ms (not
# corrected) for the other voices.
_AUDIO_DELAY_S = {("festival", "cmu_us_slt_arctic_hts"): 0.010, ("flite", "slt"): 0.005}


def delayed(phone_ends: list[tuple[str, float]], words: list[Word], voice: Voice) -> tuple[list, list]:
    """Phone ends and word spans moved later by the voice's measured audio delay (most voices: unchanged)."""
    d = _AUDIO_DELAY_S.get((voice.engine, voice.name), 0.0)
    if d == 0.0:
        return phone_ends, words
    return [(p, e + d) for p, e in phone_ends], [(w, s + d, e + d) for w, s, e in words]
