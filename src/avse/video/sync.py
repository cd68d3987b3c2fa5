"""Agreement between lip motion and speech: per-frame checks and the audio/video offset at 10 ms resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from avse.errors import ConfigError, NoFaceError
from avse.utils.signal import interpolate_gaps
from avse.video.landmarks import POS_CORNER_LEFT, POS_CORNER_RIGHT, mouth_opening

__all__ = [
    "SyncEstimate",
    "estimate_offset",
    "frame_energy_db",
    "lagged_correlation",
    "lip_drop",
    "lip_speech_agreement",
    "reliability_threshold",
    "shift_audio",
    "speech_envelope",
]


def frame_energy_db(audio: np.ndarray, n_frames: int | None = None, floor_db: float = 60.0) -> np.ndarray:
    """Per-video-frame speech energy: 10 log10 of the mean square of each 640-sample frame.

    audio [T] -> energy [N] in dB, N = ceil(T / 640) unless ``n_frames`` is given
    (zero-padded or cut). Values are floored at (max - ``floor_db``) so silence
    does not dominate the statistics.
    """
    n = int(np.ceil(len(audio) / SAMPLES_PER_FRAME)) if n_frames is None else int(n_frames)
    x = np.zeros(n * SAMPLES_PER_FRAME, dtype=np.float64)
    m = min(len(audio), len(x))
    x[:m] = audio[:m]
    power = np.mean(x.reshape(n, SAMPLES_PER_FRAME) ** 2, axis=1)
    db = 10.0 * np.log10(power + 1e-12)
    return np.maximum(db, db.max() - floor_db)


def lagged_correlation(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of a[t] with b[t + lag] for lag in [-max_lag, max_lag].

    a, b [N] -> corr [2 * max_lag + 1] (index max_lag is lag 0). A positive best
    lag means ``b`` lags behind ``a``. Only the overlapping frames are used.
    """
    n = min(len(a), len(b))
    return _pearson_lags(np.asarray(a[:n], dtype=np.float64), np.asarray(b[:n], dtype=np.float64), max_lag)


def lip_speech_agreement(opening: np.ndarray, audio: np.ndarray, max_lag: int = 5) -> tuple[float, int]:
    """How well mouth opening follows speech energy.

    opening [N] (per-frame mouth opening) and audio [T] at 16 kHz -> (Pearson
    correlation at lag 0, lag in frames that maximises it; positive = the audio
    lags the lips).
    """
    energy = frame_energy_db(audio, len(opening))
    corr = lagged_correlation(opening, energy, max_lag)
    best = int(np.nanargmax(corr)) - max_lag if np.any(np.isfinite(corr)) else 0
    return float(corr[max_lag]), best


# ---------------------------------------------------------------------------------------------
# A/V offset estimation at 10 ms resolution
# ---------------------------------------------------------------------------------------------

#: hop of the speech envelope: 160 samples = 10 ms, four values per video frame
ENVELOPE_HOP = 160
#: analysis window of the speech envelope (25 ms, Hann)
ENVELOPE_WIN = 400
#: the speech band whose energy follows the mouth best (chosen on GRID and the synthetic corpus,
#: bench/bench_sync.py; anything from 300-1000 Hz up to 3-4 kHz works, full-band energy does not:
#: low-frequency hum and breath noise swamp it on real recordings)
SPEECH_BAND_HZ = (800.0, 3000.0)
#: weight of the level curve (lip drop vs. energy); 1 - this goes to the velocity curve
#: (d/dt lip drop vs. d/dt energy, i.e. onsets); 0.3-0.7 all pass the bench
LEVEL_WEIGHT = 0.5
#: wrong pairings (the audio of one clip with the lips of another) reach a confidence of about
#: RELIABLE_SCALE / sqrt(seconds) (their 99th percentile, measured by bench/bench_sync.py)
RELIABLE_SCALE = 0.85
#: bounds of the duration-dependent threshold for ``SyncEstimate.reliable``
RELIABLE_MIN, RELIABLE_MAX = 0.1, 0.6


@dataclass(frozen=True)
class SyncEstimate:
    """The audio/video offset of a clip.

    offset_ms   how late the audio is relative to the video, in ms: positive = the audio lags
                (a sound is heard ``offset_ms`` after the mouth makes it); correct it with
                ``shift_audio(audio, -offset_ms)`` / ``write_shifted``. Sub-step by parabolic
                interpolation of the correlation peak.
    confidence  peak of ``corr_curve`` minus its median over all lags (0 = no peak; about 0.3-0.4
                for real 3 s GRID clips, 0.5-0.7 for the synthetic faces)
    reliable    confidence >= threshold
    threshold   the confidence a wrong pairing of this duration rarely reaches:
                RELIABLE_SCALE / sqrt(duration_s), clipped to [RELIABLE_MIN, RELIABLE_MAX]
    lags_ms     float64 [L] the lags searched (10 ms steps, ``-max .. +max``)
    corr_curve  float64 [L] the combined correlation at each lag (NaN where undefined)
    duration_s  seconds of lips and audio that overlap (what the estimate rests on)
    """

    offset_ms: float
    confidence: float
    reliable: bool
    threshold: float
    lags_ms: np.ndarray
    corr_curve: np.ndarray
    duration_s: float


def speech_envelope(
    audio: np.ndarray, band: tuple[float, float] = SPEECH_BAND_HZ, floor_db: float = 50.0
) -> np.ndarray:
    """Log energy of the speech band every 10 ms: audio [T] at 16 kHz -> envelope [K] float64 dB, K = ceil(T / 160).

    Value k is the energy in ``band`` (Hz, low <= f < high) of a 25 ms Hann window centred on
    (k + 0.5) * 10 ms (samples past the ends count as silence), floored at the larger of (max - ``floor_db``) and
    the 20th percentile, so that background noise and digital silence look alike, then smoothed
    over 30 ms. Computed in blocks: memory stays bounded for long files.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ConfigError(f"audio must be mono [T], got shape {audio.shape}")
    k = int(np.ceil(len(audio) / ENVELOPE_HOP))
    if k == 0:
        return np.zeros(0)
    n_fft = 512
    freqs = np.fft.rfftfreq(n_fft, 1.0 / SAMPLE_RATE)
    sel = (freqs >= band[0]) & (freqs < band[1])
    window = np.hanning(ENVELOPE_WIN)
    first = ENVELOPE_HOP // 2 - ENVELOPE_WIN // 2  # start of window 0 (negative: zero padding)
    pad_left = -first
    padded = np.pad(audio, (pad_left, k * ENVELOPE_HOP + ENVELOPE_WIN))
    frames = np.lib.stride_tricks.sliding_window_view(padded, ENVELOPE_WIN)[::ENVELOPE_HOP][:k]  # [K, WIN] (a view)
    power = np.empty(k)
    block = 2048
    for i in range(0, k, block):
        spec = np.fft.rfft(frames[i : i + block] * window, n_fft)  # [B, 257]
        power[i : i + block] = np.sum(spec.real[:, sel] ** 2 + spec.imag[:, sel] ** 2, axis=1)
    db = 10.0 * np.log10(power + 1e-12)
    db = np.maximum(db, max(db.max() - floor_db, float(np.percentile(db, 20))))
    return _box_smooth(db, 3)


def _box_smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average of x [K] over ``width`` samples (ends padded with the edge values)."""
    if width <= 1 or len(x) == 0:
        return x
    padded = np.pad(x, (width // 2, width - 1 - width // 2), mode="edge")
    return np.convolve(padded, np.ones(width) / width, mode="valid")


def _zscore(x: np.ndarray) -> np.ndarray:
    sd = float(np.std(x))
    return (x - np.mean(x)) / sd if sd > 1e-12 else np.zeros_like(x)


#: positions in the 40-point lip array: inner lower lip between the corners (95 .. 324), outer lower midpoint (17)
_POS_INNER_LOWER = np.arange(21, 30)
_POS_OUTER_LOWER_MID = 5


def lip_drop(lips: np.ndarray, flags: np.ndarray | None = None) -> np.ndarray:
    """The lip signal that follows speech: lips [N, 40, 2] (LIP_INDEX order) -> [N] float64, zero mean, unit variance.

    The mean of three z-scored measures of how far the mouth is open below the line through the
    corners (61, 291), all divided by the mouth width: the inner-lip gap (``mouth_opening``), the
    mean distance of the inner lower lip (the 9 points between the corners) below that line, and
    that of the outer lower-lip midpoint (17). Lower-lip and jaw motion follow the speech energy;
    the upper lip (rounding, bilabial closures) adds little and hurt on real faces (GRID).
    Invariant to translation, scale and in-plane rotation. Frames with NaN points or
    ``flags`` [N] == 2 (missing) are interpolated from their neighbours; all NaN -> NoFaceError.
    """
    lips = np.asarray(lips, dtype=np.float64)
    if lips.ndim != 3 or lips.shape[1:] != (40, 2):
        raise ConfigError(f"lips must be [N, 40, 2], got {lips.shape}")
    corner_r, corner_l = lips[:, POS_CORNER_RIGHT], lips[:, POS_CORNER_LEFT]  # [N, 2]
    axis = corner_l - corner_r
    width = np.linalg.norm(axis, axis=-1)  # [N]
    with np.errstate(invalid="ignore", divide="ignore"):
        normal = np.stack([-axis[:, 1], axis[:, 0]], -1) / width[:, None]  # [N, 2] unit normal of the corner line
        outer_mid = np.sum((lips[:, _POS_OUTER_LOWER_MID] - corner_r) * normal, -1)  # [N]
        normal *= np.where(outer_mid < 0, -1.0, 1.0)[:, None]  # orient it towards the chin
        inner = np.sum((lips[:, _POS_INNER_LOWER] - corner_r[:, None]) * normal[:, None], -1).mean(1) / width
        outer = np.abs(outer_mid) / width
        gap = mouth_opening(lips).astype(np.float64)
    bad = ~(np.isfinite(inner) & np.isfinite(outer) & np.isfinite(gap) & (width > 1e-6))
    if flags is not None:
        flags = np.asarray(flags)
        if flags.shape != (len(lips),):
            raise ConfigError(f"flags must be [N] = [{len(lips)}], got {flags.shape}")
        bad |= flags == 2
    if bad.all():
        raise NoFaceError("no frame has usable lip landmarks")
    parts = [_zscore(interpolate_gaps(x, bad)) for x in (gap, inner, outer)]  # 3 x [N]
    return np.mean(parts, axis=0)


def _pearson_lags(a: np.ndarray, b: np.ndarray, max_lag: int) -> np.ndarray:
    """Pearson correlation of a[t] with b[t + lag] over the overlap, lag = -max_lag .. max_lag.

    a, b [K] -> [2 * max_lag + 1] (NaN where a side is constant or the overlap has fewer than
    3 samples); O(K log K) by FFT and cumulative sums.
    """
    n = len(a)
    a = a - a.mean()
    b = b - b.mean()
    size = 1 << int(np.ceil(np.log2(2 * n)))
    xc = np.fft.irfft(np.conj(np.fft.rfft(a, size)) * np.fft.rfft(b, size), size)  # xc[l] = sum_t a[t] b[t + l]
    lags = np.arange(-max_lag, max_lag + 1)
    sxy = xc[lags % size]
    ca, cb = np.r_[0.0, np.cumsum(a)], np.r_[0.0, np.cumsum(b)]
    ca2, cb2 = np.r_[0.0, np.cumsum(a * a)], np.r_[0.0, np.cumsum(b * b)]
    a0, a1 = np.maximum(0, -lags), n - np.maximum(0, lags)  # a[a0:a1] meets b[b0:b1]
    b0, b1 = np.maximum(0, lags), n - np.maximum(0, -lags)
    short = (a1 - a0) < 3
    a0, b0 = np.minimum(a0, n), np.minimum(b0, n)  # lags past the length: empty overlap
    a1, b1 = np.clip(a1, a0, n), np.clip(b1, b0, n)
    m = np.maximum(a1 - a0, 1).astype(np.float64)
    sa, sb = ca[a1] - ca[a0], cb[b1] - cb[b0]
    va = ca2[a1] - ca2[a0] - sa * sa / m
    vb = cb2[b1] - cb2[b0] - sb * sb / m
    cov = sxy - sa * sb / m
    with np.errstate(invalid="ignore", divide="ignore"):
        r = cov / np.sqrt(va * vb)
    tiny = 1e-9 * max(float(np.dot(a, a)), float(np.dot(b, b)), 1e-300)
    r[(va <= tiny) | (vb <= tiny) | short] = np.nan
    return np.clip(r, -1.0, 1.0)


def reliability_threshold(duration_s: float) -> float:
    """Confidence a clip of ``duration_s`` seconds needs to count as reliable (see ``SyncEstimate``)."""
    return float(np.clip(RELIABLE_SCALE / np.sqrt(max(duration_s, 1e-6)), RELIABLE_MIN, RELIABLE_MAX))


def estimate_offset(
    lips: np.ndarray,
    audio: np.ndarray,
    max_offset_ms: float = 500.0,
    fps: float = VIDEO_FPS,
    flags: np.ndarray | None = None,
    *,
    level_weight: float = LEVEL_WEIGHT,
    band: tuple[float, float] = SPEECH_BAND_HZ,
) -> SyncEstimate:
    """Estimate how late the audio is relative to the lips (positive = the audio lags the video).

    lips: [N, 40, 2] lip landmarks (LIP_INDEX order; best) or a per-frame mouth opening [N]
    (``mouth_opening``; less robust on real faces), at ``fps``; frame i stands for the
    interval [i, i + 1) / fps and sits at its centre (the project's frame = 640 samples contract).
    audio: [T] float mono at 16 kHz, sample 0 at the start of frame 0.
    flags: optional [N] front-end flags (2 = missing frame).

    The lip signal (``lip_drop``, or the z-scored opening) is interpolated linearly onto the
    10 ms grid of ``speech_envelope``; the Pearson correlation of lips[t] with envelope[t + lag]
    (level) and of their time derivatives (velocity: onsets) are computed over the overlap for
    lags of -``max_offset_ms`` .. +``max_offset_ms`` in 10 ms steps (at most half the clip) and
    averaged (``level_weight`` on the level curve; ``band`` is the envelope's band in Hz). The
    offset is the highest interior local maximum (a maximum at the edge of the search is no
    peak), refined by a parabola through it and its neighbours (sub-step values are approximate:
    the curve need not be symmetric). Silent audio or motionless lips give offset 0,
    confidence 0, reliable False.

    Measured (bench/bench_sync.py): GRID clips read -30 .. 0 ms (mean -14: the lips lead the
    sound a little, and frames sit at their centres), the synthetic dev set -16 .. +14 ms; every
    clip within +-40 ms, also after shifting the audio by up to +-200 ms.
    Raises ConfigError for bad shapes or a clip shorter than 0.5 s, NoFaceError when no frame
    has usable landmarks.
    """
    arr = np.asarray(lips, dtype=np.float64)
    if arr.ndim == 1:
        x = arr.copy()
        if flags is not None:
            x[np.asarray(flags) == 2] = np.nan
        if not np.isfinite(x).any():
            raise NoFaceError("no frame has a usable mouth opening")
        lip = _zscore(interpolate_gaps(x, ~np.isfinite(x)))  # [N]
    elif arr.ndim == 3:
        lip = lip_drop(arr, flags)  # [N]
    else:
        raise ConfigError(f"lips must be [N, 40, 2] landmarks or an [N] opening, got shape {arr.shape}")
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    if not max_offset_ms > 0:
        raise ConfigError(f"max_offset_ms must be positive, got {max_offset_ms}")
    if not 0.0 <= level_weight <= 1.0:
        raise ConfigError(f"level_weight must be in [0, 1], got {level_weight}")
    env = speech_envelope(audio, band)  # [K]
    step_s = ENVELOPE_HOP / SAMPLE_RATE
    k = min(len(env), int(np.floor(len(lip) / fps / step_s + 1e-9)))  # envelope steps covered by the lips
    if k * step_s < 0.5:
        raise ConfigError(f"lips and audio overlap for {k * step_s:.2f} s; at least 0.5 s is needed")
    env = env[:k]
    t_env = (np.arange(k) + 0.5) * step_s
    t_lip = (np.arange(len(lip)) + 0.5) / fps
    lip = np.interp(t_env, t_lip, lip)  # [K] on the envelope grid
    max_lag = int(min(round(max_offset_ms / 1000 / step_s), k // 2))
    lags_ms = np.arange(-max_lag, max_lag + 1) * step_s * 1000.0
    level = _pearson_lags(lip, env, max_lag)
    velocity = _pearson_lags(np.gradient(lip), np.gradient(env), max_lag)
    curve = level_weight * level + (1.0 - level_weight) * velocity  # [L]
    duration = k * step_s
    threshold = reliability_threshold(duration)
    if not np.isfinite(curve).any():
        return SyncEstimate(0.0, 0.0, False, threshold, lags_ms, curve, duration)
    best = _peak(curve)
    offset = lags_ms[best]
    if 0 < best < len(curve) - 1 and np.all(np.isfinite(curve[best - 1 : best + 2])):
        y0, y1, y2 = curve[best - 1 : best + 2]
        denom = y0 - 2 * y1 + y2
        if denom < 0:
            offset += float(np.clip(0.5 * (y0 - y2) / denom, -0.5, 0.5)) * step_s * 1000.0
    confidence = max(0.0, float(curve[best] - np.nanmedian(curve)))
    return SyncEstimate(float(offset), confidence, confidence >= threshold, threshold, lags_ms, curve, duration)


def _peak(curve: np.ndarray) -> int:
    """Index of the highest interior local maximum of curve [L] (NaN ignored); the global maximum if none."""
    c = np.where(np.isfinite(curve), curve, -np.inf)
    inner = np.nonzero((c[1:-1] >= c[:-2]) & (c[1:-1] >= c[2:]) & np.isfinite(c[1:-1]))[0] + 1
    if len(inner):
        return int(inner[np.argmax(c[inner])])
    return int(np.argmax(c))


def shift_audio(audio: np.ndarray, offset_ms: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Delay audio [..., T] by ``offset_ms`` (negative: advance it) -> same shape and dtype.

    Positive: ``offset_ms`` of silence in front, the end cut; negative: the start cut, silence
    appended. ``estimate_offset(lips, shift_audio(a, d))`` reads ``d`` more than for ``a``;
    ``shift_audio(a, -estimate.offset_ms)`` corrects a measured offset. Rounded to whole samples.
    """
    audio = np.asarray(audio)
    if not np.isfinite(offset_ms):
        raise ConfigError(f"offset_ms must be finite, got {offset_ms}")
    n = audio.shape[-1]
    k = int(round(offset_ms * sample_rate / 1000.0))
    out = np.zeros_like(audio)
    if k >= 0:
        if k < n:
            out[..., k:] = audio[..., : n - k]
    elif -k < n:
        out[..., : n + k] = audio[..., -k:]
    return out
