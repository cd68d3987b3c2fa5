"""Agreement between lip motion and speech on the 25 fps grid (640 samples per frame)."""

from __future__ import annotations

import numpy as np

from avse import SAMPLES_PER_FRAME


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
    a = np.asarray(a[:n], dtype=np.float64)
    b = np.asarray(b[:n], dtype=np.float64)
    out = np.full(2 * max_lag + 1, np.nan)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        x = a[max(0, -lag) : n - max(0, lag)]
        y = b[max(0, lag) : n - max(0, -lag)]
        if len(x) > 2 and x.std() > 0 and y.std() > 0:
            out[i] = float(np.corrcoef(x, y)[0, 1])
    return out


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
