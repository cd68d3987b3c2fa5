"""Phone timings of a real recording from its transcript: an espeak-ng rendition aligned to it by DTW on log mels.

The transcript is spoken by espeak-ng in the recording's language (its phoneme
events give the rendition's phone times, :mod:`avse.data.tts.espeak`), at a
rate that matches the recording's speech duration. Both signals become
per-utterance normalised log mel energies with deltas (10 ms hop); leading and trailing
silence is cut from both (an energy detector on the recording, the first and
last phone of the rendition) down to a short margin, so that dynamic time
warping (diagonal weight 2, a penalty on vertical and horizontal steps, a band
around the diagonal) spends itself on speech. The
rendition's phone and word boundaries are then carried along the warping path
onto the recording. The result has the form of a TTS utterance's timings
(``(symbol, start_s, end_s)``, lowercase ARPAbet or ``"pau"``, contiguous from
0 to the recording's end), so :func:`avse.data.visemes.lip_trajectory` and the
face renderer take it as they take synthetic speech.

Measured against known phone times (``bench/bench_align.py``: flite, festival
and other espeak voices, aligned with the default espeak voice): see the
README section "Real voices" for the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avse import SAMPLE_RATE
from avse.data.tts.phones import PAUSE
from avse.data.tts.utterance import Phone, Utterance, Word
from avse.errors import ConfigError

VERSION = 3  # bump when a change moves the timings: imports made with another version are aligned again
HOP_S = 0.01  # feature frame step
MAX_SECONDS = 40.0  # longer recordings are not aligned (DTW memory grows with the square of the length)
EDGE_MARGIN_S = 0.08  # silence kept before and after the speech of both signals for the DTW
BAND = 0.25  # how far the warping path may leave the diagonal, as a share of the longer signal
PENALTY = 1.0  # extra cost of a vertical or horizontal DTW step (features have unit variance)
SMOOTH = 7  # frames of the moving average over the warping map (no phone is squeezed to nothing)
_HOP = int(round(HOP_S * SAMPLE_RATE))


class AlignmentError(ConfigError):
    """A transcript cannot be aligned to a recording (no speech found, far too long, durations far apart)."""


@dataclass(frozen=True)
class Alignment:
    """Timings of a recording's phones and words, found by aligning an espeak-ng rendition to it.

    phones: (symbol, start_s, end_s), ARPAbet or "pau", contiguous from 0 to
        the recording's duration (the form of :attr:`Utterance.phones`).
    words: (word, start_s, end_s) of the words of the rendition (every word
        of the transcript that espeak-ng speaks; a word the warping squeezed
        has start == end).
    cost: mean distance per step of the warping path between normalised
        features (lower is a closer match; high when the transcript or
        language does not fit the recording).
    rate: the espeak-ng rate factor the rendition was spoken at.
    speech: (start_s, end_s) of the recording's speech found by the energy detector.
    """

    phones: list[Phone]
    words: list[Word]
    cost: float
    rate: float
    speech: tuple[float, float]


# ----------------------------------------------------------------------------- features and speech span


def frame_energy_db(audio: np.ndarray) -> np.ndarray:
    """Energy [N] in dB of 25 ms frames every 10 ms (frame n centred on sample n * 160) of ``audio`` [T]."""
    win = 400
    x = np.pad(np.asarray(audio, dtype=np.float64), (win // 2, win // 2))
    n = 1 + len(audio) // _HOP
    c = np.concatenate([[0.0], np.cumsum(x * x)])
    starts = np.arange(n) * _HOP
    e = (c[np.minimum(starts + win, len(x))] - c[starts]) / win
    return 10.0 * np.log10(e + 1e-12)


def speech_span(audio: np.ndarray, floor_db: float = 45.0, min_run: int = 4) -> tuple[float, float] | None:
    """(start_s, end_s) of the speech in ``audio`` [T] at 16 kHz, or None when it holds none.

    A frame is loud when its energy is within ``floor_db`` of the 99th
    percentile and 12 dB above the 5th (the noise floor); the span runs from
    the first to the last run of at least ``min_run`` loud frames (40 ms), so
    that a click does not count.
    """
    e = frame_energy_db(audio)
    if len(e) < min_run:
        return None
    top, floor = np.percentile(e, 99), np.percentile(e, 5)
    if top - floor < 15.0:
        return None  # nothing stands out: silence or steady noise
    loud = e > max(top - floor_db, floor + 12.0)
    runs = np.convolve(loud.astype(int), np.ones(min_run, int), mode="valid") == min_run  # run starting at i
    idx = np.flatnonzero(runs)
    if len(idx) == 0:
        return None
    start = idx[0] * HOP_S - 0.0125
    end = (idx[-1] + min_run - 1) * HOP_S + 0.0125
    return max(0.0, start), min(len(audio) / SAMPLE_RATE, end)


def align_features(audio: np.ndarray) -> np.ndarray:
    """Features [N, 80] of ``audio`` [T] at 16 kHz: log mel energies (40 bands, 25 ms / 10 ms, 60 dB range) and deltas.

    Each dimension is normalised to zero mean and unit variance over the
    utterance (which takes out the channel and much of the voice). Frame n is
    centred on sample n * 160. Log mels beat MFCCs here: measured on TTS
    voices against espeak-ng renditions, the median phone boundary error was
    7 ms with them and 12-18 ms with 13 or 20 MFCCs, whose high coefficients
    carry the speaker.
    """
    import torch

    from avse.audio.features import MelConfig, mel_spectrogram

    cfg = MelConfig(n_fft=512, win_length=400, hop_length=_HOP, n_mels=40, fmin=50.0, fmax=7600.0)
    with torch.no_grad():
        mel = mel_spectrogram(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), cfg)  # [40, N]
    db = 10.0 * np.log10(np.maximum(mel.numpy().T.astype(np.float64), 1e-10))  # [N, 40]
    db = np.maximum(db, db.max() - 60.0)
    pad = np.pad(db, ((2, 2), (0, 0)), mode="edge")
    delta = (2 * (pad[4:] - pad[:-4]) + (pad[3:-1] - pad[1:-3])) / 10.0  # [N, 40]
    out = np.concatenate([db, delta], axis=1)  # [N, 80]
    out -= out.mean(axis=0)
    out /= out.std(axis=0) + 1e-8
    return out


# ----------------------------------------------------------------------------- DTW


def dtw_path(cost: np.ndarray, penalty: float = 0.0) -> tuple[np.ndarray, float]:
    """Best monotone path through a local cost matrix [N, M] from (0, 0) to (N-1, M-1).

    Steps: a diagonal step adds 2 * cost, a vertical or horizontal one adds
    cost + ``penalty`` (a penalty keeps the path from trading a diagonal for an
    L-shaped detour where the costs say little). Returns (path [L, 2] of
    (i, j), total cost / (N + M)). Each row is one vectorised pass: the
    horizontal chain is a running minimum over ``t[k] - S[k]`` (S the row's
    cumulative step cost).
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        raise ConfigError(f"dtw_path needs a non-empty cost matrix, got {cost.shape}")
    acc = np.empty((n, m))
    move = np.zeros((n, m), np.int8)  # 0 diagonal, 1 from above (i-1), 2 from the left (j-1)
    acc[0] = np.cumsum(cost[0] + penalty) - penalty
    move[0, 1:] = 2
    diag = np.empty(m)
    for i in range(1, n):
        c = cost[i]
        diag[0] = np.inf
        diag[1:] = acc[i - 1, :-1] + 2.0 * c[1:]
        up = acc[i - 1] + c + penalty
        t = np.minimum(diag, up)
        s = np.cumsum(c + penalty)
        u = t - s
        best = np.minimum.accumulate(u)
        acc[i] = best + s
        move[i] = np.where(u > best, 2, np.where(up < diag, 1, 0))
    i, j = n - 1, m - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        mv = move[i, j]
        if mv == 0:
            i, j = i - 1, j - 1
        elif mv == 1:
            i -= 1
        else:
            j -= 1
        path.append((i, j))
    return np.array(path[::-1]), float(acc[-1, -1] / (n + m))


def _time_map(path: np.ndarray, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A monotone map from frames of the first sequence to frames of the second: (x [K], y [K]) for np.interp.

    Every frame i of the first sequence maps to the centre of the frames the
    path pairs with it; a moving average over ``smooth`` frames then spreads
    the path's vertical runs (where it would squeeze a phone to nothing).
    """
    i, j = path[:, 0], path[:, 1]
    n = int(i[-1]) + 1
    lo = np.full(n, np.inf)
    hi = np.full(n, -np.inf)
    np.minimum.at(lo, i, j)
    np.maximum.at(hi, i, j)
    y = 0.5 * (lo + hi)
    if smooth > 1:
        pad = np.pad(y, (smooth // 2, smooth // 2), mode="edge")
        y = np.convolve(pad, np.ones(smooth) / smooth, mode="valid")
    return np.arange(n, dtype=np.float64), np.maximum.accumulate(y)


# ----------------------------------------------------------------------------- alignment


def _rendition(text: str, language: str, rate: float) -> Utterance:
    from avse.data.tts import Voice, synthesize

    return synthesize(text, Voice("espeak", language, rate=float(np.clip(rate, 0.5, 2.0))))


def _speech_bounds(phones: list[Phone]) -> tuple[float, float]:
    speech = [(s, e) for sym, s, e in phones if sym != PAUSE and e > s]
    return speech[0][0], speech[-1][1]


def _clean(spans: list[tuple[str, float, float]], merge_pauses: bool) -> list[tuple[str, float, float]]:
    out: list[tuple[str, float, float]] = []
    for sym, s, e in spans:
        if e <= s:
            continue
        if merge_pauses and out and out[-1][0] == PAUSE and sym == PAUSE:
            out[-1] = (PAUSE, out[-1][1], e)
        else:
            out.append((sym, s, e))
    return out


def align(
    audio: np.ndarray,
    transcript: str,
    language: str = "en-us",
    *,
    match_rate: bool = True,
) -> Alignment:
    """Phone and word timings of ``audio`` [T] (16 kHz mono) speaking ``transcript`` in ``language``.

    ``language`` is an espeak-ng voice name ("en-us", "cs", "nl", ...). With
    ``match_rate`` the rendition is spoken again at the rate that gives it the
    recording's speech duration (when they differ by more than 10 %). Raises
    AlignmentError when the recording holds no speech, is longer than
    MAX_SECONDS, or its speech lasts less than a quarter or more than four
    times the rendition's; TtsError from espeak-ng.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ConfigError(f"align expects mono audio [T], got shape {audio.shape}")
    duration = len(audio) / SAMPLE_RATE
    if duration > MAX_SECONDS:
        raise AlignmentError(f"recording of {duration:.1f} s is longer than {MAX_SECONDS:.0f} s: cut it into sentences first")
    span = speech_span(audio)
    if span is None:
        raise AlignmentError("no speech found in the recording")
    rate = 1.0
    ren = _rendition(transcript, language, rate)
    r0, r1 = _speech_bounds(ren.phones)
    ratio = (r1 - r0) / max(span[1] - span[0], HOP_S)
    if not 0.25 <= ratio <= 4.0:
        raise AlignmentError(f"speech lasts {span[1] - span[0]:.2f} s but the transcript {r1 - r0:.2f} s when spoken")
    if match_rate and abs(np.log(ratio)) > np.log(1.1):
        rate = float(np.clip(ratio, 0.5, 2.0))
        ren = _rendition(transcript, language, rate)
        r0, r1 = _speech_bounds(ren.phones)

    # The speech of both, with a short margin of silence, as feature frames.
    a0 = max(0.0, span[0] - EDGE_MARGIN_S)
    a1 = min(duration, span[1] + EDGE_MARGIN_S)
    q0 = max(0.0, r0 - EDGE_MARGIN_S)
    q1 = min(ren.duration, r1 + EDGE_MARGIN_S)
    seg_a = audio[int(a0 * SAMPLE_RATE) : int(np.ceil(a1 * SAMPLE_RATE))]
    seg_r = ren.audio[int(q0 * SAMPLE_RATE) : int(np.ceil(q1 * SAMPLE_RATE))]
    fa = align_features(seg_a)  # [M, D]
    fr = align_features(seg_r)  # [N, D]
    sq = (fr * fr).sum(1)[:, None] + (fa * fa).sum(1)[None, :] - 2.0 * fr @ fa.T  # [N, M]
    local = np.sqrt(np.maximum(sq, 0.0))
    n, m = local.shape
    band = max(BAND * max(n, m), 0.3 / HOP_S)  # frames off the diagonal the path may stray
    off = np.abs(np.arange(m)[None, :] - np.arange(n)[:, None] * (m / n))  # [N, M]
    local[off > band] = 1e3
    path, total = dtw_path(local, PENALTY)
    x, y = _time_map(path, SMOOTH)

    def carry(t: float) -> float:
        """A rendition time (s) -> the recording's time (s)."""
        frame = (t - q0) / HOP_S
        mapped = float(np.interp(frame, x, y))
        return float(np.clip(a0 + mapped * HOP_S, 0.0, duration))

    # Phone boundaries carried over, kept in order; the phones span the whole recording.
    phones = [(sym, carry(s), carry(e)) for sym, s, e in ren.phones]
    phones[0] = (phones[0][0], 0.0, phones[0][2])
    phones[-1] = (phones[-1][0], phones[-1][1], duration)
    bounds = np.maximum.accumulate(np.array([s for _, s, _ in phones] + [duration]))
    phones = [(sym, float(bounds[k]), float(bounds[k + 1])) for k, (sym, _, _) in enumerate(phones)]
    words = [(w, carry(s), max(carry(s), carry(e))) for w, s, e in ren.words]  # every word kept, even if squeezed to 0 s
    return Alignment(
        phones=_clean(phones, merge_pauses=True),
        words=words,
        cost=total,
        rate=rate,
        speech=(float(span[0]), float(span[1])),
    )


# ----------------------------------------------------------------------------- measuring an alignment


def match_phones(ref: list[str], hyp: list[str]) -> list[tuple[int, int]]:
    """Index pairs (k, j) with ref[k] == hyp[j] on a minimum edit-distance alignment of two symbol sequences."""
    n, m = len(ref), len(hyp)
    d = np.zeros((n + 1, m + 1), np.int32)
    d[:, 0] = np.arange(n + 1)
    d[0, :] = np.arange(m + 1)
    for k in range(1, n + 1):
        for j in range(1, m + 1):
            d[k, j] = min(d[k - 1, j] + 1, d[k, j - 1] + 1, d[k - 1, j - 1] + (ref[k - 1] != hyp[j - 1]))
    pairs = []
    k, j = n, m
    while k > 0 and j > 0:
        if d[k, j] == d[k - 1, j - 1] + (ref[k - 1] != hyp[j - 1]):
            if ref[k - 1] == hyp[j - 1]:
                pairs.append((k - 1, j - 1))
            k, j = k - 1, j - 1
        elif d[k, j] == d[k - 1, j] + 1:
            k -= 1
        else:
            j -= 1
    return pairs[::-1]


def boundary_errors(ref: list[Phone], hyp: list[Phone]) -> np.ndarray:
    """Absolute errors [B] (s) of ``hyp``'s phone boundaries against ``ref``'s, over the phones both agree on.

    Pauses are left out; the speech phones of both are matched by edit
    distance and, for every phone with the same symbol in both, its start and
    its end are compared (a boundary shared by two neighbouring matched phones
    counts once).
    """
    r = [p for p in ref if p[0] != PAUSE]
    h = [p for p in hyp if p[0] != PAUSE]
    pairs = match_phones([p[0] for p in r], [p[0] for p in h])
    errs = []
    for n, (k, j) in enumerate(pairs):
        errs.append(abs(r[k][1] - h[j][1]))
        following = pairs[n + 1] if n + 1 < len(pairs) else None
        if following != (k + 1, j + 1):
            errs.append(abs(r[k][2] - h[j][2]))
    return np.array(errs)


def word_boundary_errors(ref: list[Word], hyp: list[Word]) -> np.ndarray:
    """Absolute errors [2W] (s) of word starts and ends when both list the same words, else an empty array."""
    norm = [w.lower().strip(".,;:!?\"'") for w, _, _ in ref]
    if norm != [w.lower().strip(".,;:!?\"'") for w, _, _ in hyp]:
        return np.zeros(0)
    return np.array([abs(a[1] - b[1]) for a, b in zip(ref, hyp)] + [abs(a[2] - b[2]) for a, b in zip(ref, hyp)])
