"""Mixing math in float64: speech-weighted RMS, half-cosine ramps, SNR scaling and one shared peak scale.

The scene renderer (avse.data.render), dynamic mixing (avse.data.datasets) and
the two-known-speakers mixtures (avse.data.known) all mix through this module.
In the AVSE mode it follows the challenge's scene renderer (avse1
``scene_renderer_avse1``), in float64 and in the same order of operations, so
that its samples come out bit for bit:

1. target ``t`` [T] read as float64; with ``pre_samples``/``post_samples`` it is
   zero-padded before/after (as Clarity's CEC1 renderer does; the avse1 files
   have both at 0). ``len(t) == duration``.
2. interferer ``i`` = interferer file [offset : offset + len(t)] as float64.
3. 500 ms half-cosine ramp on both ends of ``i`` (:func:`apply_ramp`):
   ``r = (cos(linspace(pi, 2 pi, 8000)) + 1) / 2``; ``i[:8000] *= r``;
   ``i[-8000:] *= r[::-1]`` (segments shorter than the ramp get the matching
   part of each ramp).
4. ``gain = rms(conv(t, h)) / rms(conv(i, h))`` (:func:`weighted_rms`), ``h``
   the speech-weighting FIR (``filt`` of speech_weight.mat), full convolution
   over the whole signal, by FFT as the reference does
   (``scipy.signal.convolve(..., method="fft")``); ``h`` = identity, i.e. plain
   RMS, without a speech-weight file. With pre/post samples the two RMS are
   taken over the samples where the target is, ``[pre, pre + T)``. (A direct
   ``np.convolve`` agrees to float64 rounding, but the int16 truncation of step
   6 turns a last-bit difference of the gain into 1 LSB at rare samples - about
   1 file in 10 000 - so the reference's FFT is what is used.)
5. ``i = (i * gain) * 10 ** (-SNR / 20)`` (:func:`scale_to_snr`);
   ``mixed = t + i`` (zero-padded) (:func:`mix_scene`).
6. ``norm = max|concat(mixed, t, i)|`` (:func:`shared_peak`); each signal
   ``/ norm``, clipped to +-1, as int16 ``(32767 * x)`` truncated toward zero
   (:func:`normalize_to_int16`).

Several interferers (``n_interferers > 1``, our extension): each interferer is
first brought to the target's (weighted) level (step 4, 0 dB each), the
interferers are summed, and the scene SNR then applies to that sum exactly as
in steps 4-5, so that the SNR of the target against the summed interferer is
the scene's ``SNR``.

Normalisation modes: ``"avse"`` (step 6, the challenge's shared peak: the
loudest of the three signals peaks at full scale), ``"peak"`` (the same shared
factor, placed at -1 dBFS to leave 1 dB of headroom) and ``"lufs"`` (the same
factor for all three, chosen so that the mixture sits at -23 LUFS, but never so
loud that any signal would clip: then the shared peak bound wins). All three
keep ``mixed = target + interferer`` up to int16 truncation.
"""

from __future__ import annotations

import collections
import hashlib
import math
import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import overload

import numpy as np
from scipy import fft as sp_fft
from scipy.signal import butter, fftconvolve, sosfiltfilt, welch

from avse import SAMPLE_RATE
from avse.audio.io import loudness
from avse.errors import ConfigError, MediaError

RAMP_SECONDS = 0.5
RAMP_SAMPLES = int(SAMPLE_RATE * RAMP_SECONDS)  # 8000
NORMALIZATIONS = ("avse", "peak", "lufs")
PEAK_HEADROOM_DB = 1.0  # "peak" mode: loudest signal at -1 dBFS
LUFS_TARGET = -23.0  # "lufs" mode: mixture loudness

# ---------------------------------------------------------------------------
# The speech-weighting filter
# ---------------------------------------------------------------------------

_FILTER_CACHE: dict[tuple[str, int, int], np.ndarray] = {}


def load_speech_weight(path: str | Path) -> np.ndarray:
    """Read the speech-weighting FIR ``filt`` from a .mat file -> float64 [K] (read-only, cached).

    Raises MediaError (one line, naming the file) when the file is missing, is
    not a MATLAB .mat file, has no ``filt`` or a ``filt`` that is not a finite
    numeric vector.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file" if not path.exists() else "not a file")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    h = _FILTER_CACHE.get(key)
    if h is None:
        not_mat = "not a MATLAB .mat file with a 'filt' vector"
        # what SciPy's reader raises on junk, a truncated file or an HDF5 (v7.3) file
        read_errors = (
            MatReadError, ValueError, TypeError, OSError, EOFError, NotImplementedError, struct.error, zlib.error
        )
        try:
            mat = scipy.io.loadmat(str(path), squeeze_me=True)
        except read_errors as err:
            raise MediaError(path, f"{not_mat} ({type(err).__name__}: {err})".replace("\n", " ")) from None
        if "filt" not in mat:
            raise MediaError(path, "no variable 'filt' (the speech-weighting FIR)")
        try:
            h = np.atleast_1d(np.asarray(mat["filt"], dtype=np.float64))
        except (TypeError, ValueError):
            raise MediaError(path, f"{not_mat}: 'filt' is not numeric") from None
        if h.ndim != 1:
            raise MediaError(path, f"{not_mat}: 'filt' has shape {h.shape}")
        if h.size == 0 or not np.all(np.isfinite(h)):
            raise MediaError(path, "'filt' is empty or holds NaN/inf")
        h.flags.writeable = False
        _FILTER_CACHE[key] = h
    return h


def speech_weight_array(speech_weight: str | Path | np.ndarray | None) -> np.ndarray | None:
    """A speech-weighting option (a .mat path, the FIR itself, or None) -> float64 FIR [K], or None for plain RMS.

    Raises ConfigError for an empty array and MediaError for a bad .mat file
    (see :func:`load_speech_weight`).
    """
    if speech_weight is None:
        return None
    if isinstance(speech_weight, np.ndarray):
        h = np.asarray(speech_weight, dtype=np.float64).ravel()
        if h.size == 0:
            raise ConfigError("speech_weight filter is empty")
        return h
    return load_speech_weight(speech_weight)


@overload
def filter_key(h: np.ndarray) -> str: ...
@overload
def filter_key(h: None) -> None: ...
@overload
def filter_key(h: np.ndarray | None) -> str | None: ...
def filter_key(h: np.ndarray | None) -> str | None:
    """SHA-1 (hex) of the bytes of the FIR h [K], naming it in caches and render records; None for plain RMS."""
    return None if h is None else hashlib.sha1(np.ascontiguousarray(h).tobytes()).hexdigest()


class _Weighting:
    """A speech-weighting FIR h [K] whose spectra are kept per FFT size.

    ``conv(x)`` returns exactly ``scipy.signal.fftconvolve(x, h, "full")`` (the
    operation of the AVSE renderer, ``scipy.signal.convolve(..., method="fft")``)
    but transforms ``h`` once per FFT size instead of on every call. The first
    use in a process checks the equality bit for bit against fftconvolve and
    falls back to it if this SciPy computes differently.
    """

    verified: bool | None = None  # per process: None = not checked yet

    def __init__(self, h: np.ndarray):
        self.h = np.ascontiguousarray(h, dtype=np.float64)
        self.spectra: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def _fast(self, x: np.ndarray) -> np.ndarray:
        n = len(x) + len(self.h) - 1
        nfft = sp_fft.next_fast_len(n, True)
        spec = self.spectra.get(nfft)
        if spec is None:
            spec = sp_fft.rfftn(self.h, [nfft], axes=[0])
            self.spectra[nfft] = spec
            if len(self.spectra) > 32:
                self.spectra.popitem(last=False)
        return sp_fft.irfftn(sp_fft.rfftn(x, [nfft], axes=[0]) * spec, [nfft], axes=[0])[:n]

    def conv(self, x: np.ndarray) -> np.ndarray:
        """Full convolution x [T] * h [K] -> [T + K - 1], float64."""
        if _Weighting.verified is None:
            probe = np.random.default_rng(0).standard_normal(3001)
            _Weighting.verified = all(
                np.array_equal(self._fast(probe[:m]), fftconvolve(probe[:m], self.h, mode="full"))
                for m in (3001, 1777, 1000)
            )
        return self._fast(x) if _Weighting.verified else fftconvolve(x, self.h, mode="full")

    def rms(self, x: np.ndarray) -> float:
        """sqrt(mean(conv(x, h)^2)) for x [T]."""
        y = self.conv(x)
        return float(np.sqrt(np.mean(y**2)))


_WEIGHTINGS: collections.OrderedDict[str, _Weighting] = collections.OrderedDict()


def _weighting(h: np.ndarray) -> _Weighting:
    key = filter_key(h)
    w = _WEIGHTINGS.get(key)
    if w is None:
        w = _WEIGHTINGS[key] = _Weighting(h)
        if len(_WEIGHTINGS) > 4:
            _WEIGHTINGS.popitem(last=False)
    return w


def weighted_rms(x: np.ndarray, h: np.ndarray | None = None) -> float:
    """RMS of ``conv(x, h)`` (full convolution by FFT, as the AVSE renderer) for x [T] float64.

    Plain ``sqrt(mean(x^2))`` when ``h`` is None.
    """
    if h is None:
        return float(np.sqrt(np.mean(x**2)))
    return _weighting(h).rms(x)


# ---------------------------------------------------------------------------
# Ramps, levels and the mixture
# ---------------------------------------------------------------------------


def half_cosine_ramp(n: int = RAMP_SAMPLES) -> np.ndarray:
    """Rising half-cosine ramp (cos(linspace(pi, 2pi, n)) + 1) / 2 -> float64 [n], 0 to 1."""
    r = np.cos(np.linspace(math.pi, 2 * math.pi, n))
    return (r + 1) / 2


_RAMP = half_cosine_ramp()
_RAMP.flags.writeable = False


def apply_ramp(x: np.ndarray, n: int = RAMP_SAMPLES) -> np.ndarray:
    """Fade ``x`` [T] in and out with ``n``-sample half-cosine ramps -> new float64 [T].

    ``y[:n] *= ramp`` then ``y[-n:] *= ramp[::-1]``, as the AVSE renderer does;
    when T < n the first T samples of the rising ramp and the last T of the
    falling one are used.
    """
    up = _RAMP if n == RAMP_SAMPLES else half_cosine_ramp(n)
    down = up[::-1]
    y = np.array(x, dtype=np.float64)
    m = min(n, len(y))
    if m:
        y[0:m] *= up[:m]
        y[len(y) - m :] *= down[n - m :]
    return y


BAND_FLOOR_DB = 50.0  # a source's band ends where its long-term spectrum falls this far below its peak


def bandwidth(x: np.ndarray, sr: int = SAMPLE_RATE, floor_db: float = BAND_FLOOR_DB) -> float:
    """The band a recording reaches: the highest frequency (Hz) where its long-term spectrum is within
    ``floor_db`` dB of its peak. x [T] -> float in [0, sr / 2]; an all-zero or very short x gives sr / 2.

    A voice recorded at 11.025 kHz and resampled to 16 kHz gives about 4.4 kHz
    (its coder's low-pass), a telephone prompt under 4 kHz, a 16 kHz studio
    recording about 7.7 kHz. Welch's average of 512-sample Hann windows.
    """
    x = np.asarray(x, dtype=np.float64)
    if len(x) < 512 or not np.any(x):
        return sr / 2
    f, p = welch(x, sr, nperseg=512)
    db = 10 * np.log10(p + 1e-30)
    return float(f[np.flatnonzero(db > db.max() - floor_db)[-1]])


def lowpass(x: np.ndarray, cutoff: float, sr: int = SAMPLE_RATE) -> np.ndarray:
    """Zero-phase low-pass of x [T] at ``cutoff`` Hz (an 8th-order Butterworth run forward and back) -> float64 [T]."""
    x = np.asarray(x, dtype=np.float64)
    if cutoff >= sr / 2 or len(x) < 64:
        return x.copy()
    sos = butter(8, cutoff, btype="low", fs=sr, output="sos")
    return sosfiltfilt(sos, x, padlen=min(len(x) - 1, 3 * (2 * len(sos) + 1)))


MIN_MATCHED_BAND = 3000.0  # a "voice" whose band ends lower is no voice to match (a hum, a near-silent window)


def match_band(a: np.ndarray, b: np.ndarray, sr: int = SAMPLE_RATE, margin: float = 250.0,
               min_band: float = MIN_MATCHED_BAND) -> tuple[np.ndarray, np.ndarray]:
    """Two voices cut to the narrower one's band: a [T], b [T] -> (a', b'), float64.

    The one whose :func:`bandwidth` reaches more than ``margin`` Hz further is
    low-passed so that its band ends where the other's does (the cut-off set
    below that point by the filter's skirt, which depends on the spectrum's
    slope: up to three cuts, each moved by the band still to remove). Both come
    back unchanged when the bands are within ``margin``, when the narrower one
    ends under ``min_band`` (no voice's recording does; a hum or a near-silent
    window would take the other voice's words with it) or when either is too
    short to measure (under 512 samples). Mixed this way, the band a voice was
    recorded in cannot tell two voices apart (an 11 kHz recording against a
    16 kHz one), so a separator has to use the voices.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if min(len(a), len(b)) < 512:
        return a, b
    wa, wb = bandwidth(a, sr), bandwidth(b, sr)
    if abs(wa - wb) <= margin or min(wa, wb) < min_band:
        return a, b
    wide, goal = (a, wb) if wa > wb else (b, wa)
    cutoff, cut = goal / 1.1, wide
    for _ in range(3):
        cut = lowpass(wide, cutoff, sr)
        reached = bandwidth(cut, sr)
        if reached <= goal + margin:
            break
        cutoff *= goal / reached
    return (cut, b) if wa > wb else (a, cut)


def scale_to_snr(x: np.ndarray, ref_rms: float, x_rms: float, snr_db: float) -> np.ndarray:
    """Scale x [T] of level ``x_rms`` to ``snr_db`` dB below a reference of level ``ref_rms`` -> new float64 [T].

    ``(x * (ref_rms / x_rms)) * 10 ** (-snr_db / 20)``, the two products in
    that order (the AVSE renderer's step 5); ``snr_db = 0`` brings ``x`` to the
    reference's level. The caller rules out ``x_rms == 0``.
    """
    gain = np.divide(ref_rms, x_rms)
    y = x * gain
    return y * 10 ** ((-float(snr_db)) / 20)


def _sum_padded(signals: list[np.ndarray]) -> np.ndarray:
    """Zero-pad every signal [T_i] to the longest and add them in order -> [max T_i]."""
    n = max(len(s) for s in signals)
    out = np.pad(signals[0], (0, n - len(signals[0])))
    for s in signals[1:]:
        out = out + np.pad(s, (0, n - len(s)))
    return out


def mix_scene(
    target: np.ndarray,
    interferers: list[np.ndarray],
    snr_db: float,
    h: np.ndarray | None = None,
    pre_samples: int = 0,
    post_samples: int = 0,
    target_rms: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the ramped interferers to ``snr_db`` against the target; unnormalised float64.

    ``target`` [T] (not padded) and ``interferers`` [T + pre + post] each (already
    ramped). ``h`` [K] is the speech-weighting FIR (None: plain RMS).
    ``target_rms`` may pass a cached ``weighted_rms(target, h)``. Returns
    ``(mixed, target_padded, interferer)``, each [T + pre + post] (longest).
    Raises ConfigError when an interferer is silent where the target is.
    """
    t = np.pad(target, (pre_samples, post_samples)) if (pre_samples or post_samples) else target
    lo, hi = pre_samples, pre_samples + len(target)
    whole = pre_samples == 0 and post_samples == 0

    def seg(x: np.ndarray) -> np.ndarray:
        return x if whole else x[lo:hi]

    t_rms = weighted_rms(target, h) if target_rms is None else target_rms
    if len(interferers) == 1:
        noise = interferers[0]
    else:
        parts = []
        for x in interferers:
            r = weighted_rms(seg(x), h)
            if r == 0.0:
                raise ConfigError("an interferer segment is silent: cannot set its level")
            parts.append(x * np.divide(t_rms, r))  # at the target's level (0 dB)
        noise = _sum_padded(parts)
    n_rms = weighted_rms(seg(noise), h)
    if n_rms == 0.0:
        raise ConfigError("the interferer segment is silent: cannot set an SNR")
    noise = scale_to_snr(noise, t_rms, n_rms, snr_db)
    mixed = _sum_padded([t, noise])
    return mixed, t, noise


# ---------------------------------------------------------------------------
# One shared peak scale
# ---------------------------------------------------------------------------


def shared_peak(signals: Sequence[np.ndarray]) -> float:
    """``max|concat(signals)|`` of signals [T_i]: the one peak that a shared normalisation divides by."""
    return max(float(np.max(np.abs(s))) for s in signals)


def peak_scale(signals: Sequence[np.ndarray], peak: float = 1.0, floor: float = 0.0) -> np.float64:
    """The one factor that brings the loudest sample of signals [T_i] to ``peak``: ``peak / max(shared peak, floor)``.

    ``floor`` > 0 bounds the factor for (near-)silent signals; with the
    default 0, all-silent signals give ``inf`` (NumPy's division).
    """
    return peak / np.float64(max(shared_peak(signals), floor))


def check_normalization(mode: str) -> str:
    """Return ``mode`` if it is one of NORMALIZATIONS, else raise ConfigError."""
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}")
    return mode


def normalize_to_int16(signals: list[np.ndarray], mode: str = "avse") -> list[np.ndarray]:
    """Apply one shared normalisation to float64 signals [T_i] -> int16 [T_i] each.

    ``"avse"``: divide by ``max|concat(signals)|``, clip to +-1, ``(32767 * x)``
    truncated toward zero (the challenge's writer). ``"peak"``: the same, with the
    loudest sample at -1 dBFS. ``"lufs"``: the first signal (the mixture) at
    -23 LUFS unless that would clip, then as ``"avse"``.
    """
    check_normalization(mode)
    norm = shared_peak(signals)
    if norm == 0.0:
        raise ConfigError("all signals are silent: nothing to normalise")
    if mode == "peak":
        norm = norm / 10 ** (-PEAK_HEADROOM_DB / 20)
    elif mode == "lufs":
        lufs = loudness(signals[0], SAMPLE_RATE)
        if math.isfinite(lufs):
            norm = max(norm, 1.0 / 10 ** ((LUFS_TARGET - lufs) / 20))
    out = []
    for s in signals:
        x = s / norm
        np.clip(x, -1.0, 1.0, out=x)
        np.multiply(32767, x, out=x)
        out.append(x.astype(np.int16))  # truncation toward zero
    return out


__all__ = [
    "LUFS_TARGET",
    "NORMALIZATIONS",
    "PEAK_HEADROOM_DB",
    "RAMP_SAMPLES",
    "RAMP_SECONDS",
    "apply_ramp",
    "check_normalization",
    "filter_key",
    "half_cosine_ramp",
    "load_speech_weight",
    "mix_scene",
    "normalize_to_int16",
    "peak_scale",
    "scale_to_snr",
    "shared_peak",
    "speech_weight_array",
    "weighted_rms",
]
