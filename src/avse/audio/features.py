"""Torch-native spectral features: STFT/ISTFT, mel filterbank, mel spectrogram, MFCC, SpecAugment; and how voiced a sound is."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from avse import SAMPLE_RATE
from avse.errors import ConfigError

WINDOWS = ("hann", "hamming", "sqrt-hann", "rectangular")


@dataclass(frozen=True)
class StftConfig:
    """Short-time Fourier transform settings (defaults: 32 ms FFT, 25 ms window, 10 ms hop at 16 kHz).

    ``window`` is one of ``WINDOWS``; a window shorter than ``n_fft`` is
    zero-padded on both sides (centred). With ``center`` the signal is
    reflect-padded by ``n_fft // 2`` on both sides, so frame ``n`` is centred
    on sample ``n * hop_length``.
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 512
    hop_length: int = 160
    win_length: int = 400
    window: str = "hann"
    center: bool = True

    def __post_init__(self) -> None:
        _check_frame_params(self.n_fft, self.hop_length, self.win_length, self.window)

    @property
    def n_freqs(self) -> int:
        """Number of one-sided frequency bins F = n_fft // 2 + 1."""
        return self.n_fft // 2 + 1


@dataclass(frozen=True)
class MelConfig:
    """Mel spectrogram settings; defaults are the talking-face audio encoder's (16 kHz, 800/200, 80 mels).

    ``power`` 2.0 gives a power mel spectrogram, 1.0 a magnitude one. With
    ``log`` the output is ``log(max(mel, log_floor))`` (natural log).
    ``fmax`` None means ``sample_rate / 2``. ``htk`` picks the HTK mel scale
    instead of Slaney's; ``norm="slaney"`` scales each triangle to unit area
    (``None``: peak 1).
    """

    sample_rate: int = SAMPLE_RATE
    n_fft: int = 800
    win_length: int = 800
    hop_length: int = 200
    window: str = "hann"
    center: bool = True
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    htk: bool = False
    norm: str | None = "slaney"
    power: float = 2.0
    log: bool = False
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        _check_frame_params(self.n_fft, self.hop_length, self.win_length, self.window)
        if self.n_mels < 1:
            raise ConfigError(f"n_mels must be >= 1, got {self.n_mels}")
        if self.power <= 0:
            raise ConfigError(f"power must be > 0, got {self.power}")
        if self.log_floor <= 0:
            raise ConfigError(f"log_floor must be > 0, got {self.log_floor}")

    @property
    def stft(self) -> StftConfig:
        """The STFT part of these settings."""
        return StftConfig(self.sample_rate, self.n_fft, self.hop_length, self.win_length, self.window, self.center)


def _check_frame_params(n_fft: int, hop_length: int, win_length: int, window: str) -> None:
    if n_fft < 2:
        raise ConfigError(f"n_fft must be >= 2, got {n_fft}")
    if hop_length < 1:
        raise ConfigError(f"hop_length must be >= 1, got {hop_length}")
    if not 1 <= win_length <= n_fft:
        raise ConfigError(f"win_length must be in [1, n_fft={n_fft}], got {win_length}")
    if window not in WINDOWS:
        raise ConfigError(f"unknown window {window!r}; expected one of {', '.join(WINDOWS)}")


def make_window(name: str, win_length: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None) -> Tensor:
    """Analysis window ``[win_length]`` (periodic, i.e. DFT-even, forms): hann, hamming, sqrt-hann, rectangular."""
    if name == "hann":
        return torch.hann_window(win_length, periodic=True, dtype=dtype, device=device)
    if name == "hamming":
        return torch.hamming_window(win_length, periodic=True, dtype=dtype, device=device)
    if name == "sqrt-hann":
        return torch.hann_window(win_length, periodic=True, dtype=dtype, device=device).sqrt()
    if name == "rectangular":
        return torch.ones(win_length, dtype=dtype, device=device)
    raise ConfigError(f"unknown window {name!r}; expected one of {', '.join(WINDOWS)}")


def _as_float_tensor(x: Tensor | np.ndarray) -> Tensor:
    x = torch.as_tensor(x)
    if not torch.is_floating_point(x):
        raise ConfigError(f"expected a floating-point signal, got {x.dtype}")
    return x


def stft(x: Tensor | np.ndarray, cfg: StftConfig = StftConfig()) -> Tensor:
    """Complex STFT: signal ``x [..., T]`` float -> ``[..., F, N]`` complex, F = n_fft // 2 + 1.

    N = 1 + T // hop_length when ``cfg.center`` (else 1 + (T - n_fft) // hop_length).
    """
    x = _as_float_tensor(x)
    lead, t = x.shape[:-1], x.shape[-1]
    if cfg.center and t <= cfg.n_fft // 2:
        raise ConfigError(f"signal of {t} samples too short for a centred STFT with n_fft={cfg.n_fft} (needs > {cfg.n_fft // 2})")
    if not cfg.center and t < cfg.n_fft:
        raise ConfigError(f"signal of {t} samples shorter than n_fft={cfg.n_fft}")
    window = make_window(cfg.window, cfg.win_length, x.dtype, x.device)
    spec = torch.stft(
        x.reshape(-1, t),  # [B, T]
        n_fft=cfg.n_fft,
        hop_length=cfg.hop_length,
        win_length=cfg.win_length,
        window=window,
        center=cfg.center,
        pad_mode="reflect",
        normalized=False,
        onesided=True,
        return_complex=True,
    )  # [B, F, N]
    return spec.reshape(*lead, *spec.shape[-2:])


def istft(X: Tensor, cfg: StftConfig = StftConfig(), length: int | None = None) -> Tensor:
    """Inverse of :func:`stft` by weighted overlap-add: ``X [..., F, N]`` complex -> ``[..., T]`` real.

    ``length`` trims or zero-pads the output to T samples (pass the original
    length for an exact round trip). Raises ConfigError when the window and
    hop do not satisfy the overlap-add (NOLA) condition; with ``center=False``
    a tapered window fails it at the signal's edges (use ``center=True``).
    """
    if not torch.is_complex(X):
        raise ConfigError(f"istft expects a complex spectrogram, got {X.dtype}")
    if X.shape[-2] != cfg.n_freqs:
        raise ConfigError(f"spectrogram has {X.shape[-2]} frequency bins, n_fft={cfg.n_fft} needs {cfg.n_freqs}")
    if cfg.hop_length > cfg.win_length:
        raise ConfigError(f"hop {cfg.hop_length} longer than the window ({cfg.win_length}): cannot invert by overlap-add")
    lead = X.shape[:-2]
    real_dtype = X.real.dtype
    window = make_window(cfg.window, cfg.win_length, real_dtype, X.device)
    try:
        y = torch.istft(
            X.reshape(-1, *X.shape[-2:]),  # [B, F, N]
            n_fft=cfg.n_fft,
            hop_length=cfg.hop_length,
            win_length=cfg.win_length,
            window=window,
            center=cfg.center,
            normalized=False,
            onesided=True,
            length=length,
            return_complex=False,
        )  # [B, T]
    except RuntimeError as err:
        if "overlap" in str(err).lower() or "nola" in str(err).lower():
            raise ConfigError(
                f"window {cfg.window!r} (length {cfg.win_length}) with hop {cfg.hop_length} cannot be inverted "
                f"by overlap-add with center={cfg.center} (NOLA condition fails)"
            ) from None
        raise
    return y.reshape(*lead, y.shape[-1])


# --- mel scale -----------------------------------------------------------------------------------------

_SLANEY_F_SP = 200.0 / 3.0  # Hz per mel in the linear part
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15 mels
_SLANEY_LOGSTEP = math.log(6.4) / 27.0  # 27 mels per factor 6.4 above 1 kHz


def hz_to_mel(f: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Frequencies in Hz (any shape) -> mels: Slaney's scale (linear below 1 kHz, log above) or HTK's."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    linear = f / _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(f >= _SLANEY_MIN_LOG_HZ, log, linear)


def mel_to_hz(m: np.ndarray | float, htk: bool = False) -> np.ndarray:
    """Mels (any shape) -> Hz; the inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    linear = m * _SLANEY_F_SP
    log = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (m - _SLANEY_MIN_LOG_MEL))
    return np.where(m >= _SLANEY_MIN_LOG_MEL, log, linear)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_np(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool, norm: str | None) -> np.ndarray:
    n_freqs = n_fft // 2 + 1
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_freqs)  # [F]
    edges_hz = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)  # [M + 2]
    widths = np.diff(edges_hz)  # [M + 1]
    offsets = edges_hz[:, None] - fft_hz[None, :]  # [M + 2, F]
    rising = -offsets[:-2] / widths[:-1, None]  # [M, F], 0 at the left edge, 1 at the centre
    falling = offsets[2:] / widths[1:, None]  # [M, F], 1 at the centre, 0 at the right edge
    weights = np.maximum(0.0, np.minimum(rising, falling))  # [M, F]
    if norm == "slaney":
        weights *= (2.0 / (edges_hz[2:] - edges_hz[:-2]))[:, None]
    fb = weights.astype(np.float32)
    fb.setflags(write=False)
    return fb


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE,
    n_fft: int = 800,
    n_mels: int = 80,
    fmin: float = 0.0,
    fmax: float | None = None,
    htk: bool = False,
    norm: str | None = "slaney",
) -> Tensor:
    """Triangular mel filterbank ``[n_mels, F]`` float32 (F = n_fft // 2 + 1), for ``mel = fb @ power_spec``.

    Triangles have their corners at ``n_mels + 2`` points equally spaced on the
    mel scale (Slaney's, as librosa's default, or HTK's) between ``fmin`` and
    ``fmax`` (default ``sample_rate / 2``). ``norm="slaney"`` divides each
    triangle by half its width in Hz (constant energy per band); ``None``
    leaves a peak of 1. Same values as ``librosa.filters.mel`` with the same
    arguments.
    """
    fmax = sample_rate / 2.0 if fmax is None else float(fmax)
    if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
        raise ConfigError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={fmin}, fmax={fmax}, sr={sample_rate}")
    if norm not in (None, "slaney"):
        raise ConfigError(f"mel filterbank norm must be 'slaney' or None, got {norm!r}")
    if n_mels < 1 or n_fft < 2:
        raise ConfigError(f"need n_mels >= 1 and n_fft >= 2, got {n_mels}, {n_fft}")
    return torch.from_numpy(_mel_filterbank_np(int(sample_rate), int(n_fft), int(n_mels), float(fmin), fmax, bool(htk), norm).copy())


def _mel_power(x: Tensor | np.ndarray, cfg: MelConfig) -> Tensor:
    """x [..., T] -> mel spectrogram [..., n_mels, N] at ``cfg.power`` (no log)."""
    x = _as_float_tensor(x)
    spec = stft(x, cfg.stft).abs()  # [..., F, N]
    if cfg.power != 1.0:
        spec = spec.pow(cfg.power)
    fb = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax, cfg.htk, cfg.norm)
    fb = fb.to(dtype=spec.dtype, device=spec.device)  # [M, F]
    return torch.matmul(fb, spec)  # [..., M, N]


def mel_spectrogram(x: Tensor | np.ndarray, cfg: MelConfig = MelConfig()) -> Tensor:
    """Mel spectrogram: signal ``x [..., T]`` -> ``[..., n_mels, N]`` (N = 1 + T // hop_length when centred).

    Power (``cfg.power``) mel energies, or their natural log floored at
    ``cfg.log_floor`` when ``cfg.log``.
    """
    mel = _mel_power(x, cfg)
    return torch.log(mel.clamp_min(cfg.log_floor)) if cfg.log else mel


def dct_matrix(n_out: int, n_in: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Orthonormal DCT-II matrix ``[n_out, n_in]`` (first ``n_out`` rows): ``y = D @ x`` equals scipy's ``dct(x, 2, norm="ortho")[:n_out]``."""
    if not 1 <= n_out <= n_in:
        raise ConfigError(f"need 1 <= n_out <= n_in, got {n_out}, {n_in}")
    k = torch.arange(n_out, dtype=torch.float64)[:, None]
    n = torch.arange(n_in, dtype=torch.float64)[None, :]
    d = torch.cos(math.pi / n_in * (n + 0.5) * k) * math.sqrt(2.0 / n_in)  # [n_out, n_in]
    d[0] /= math.sqrt(2.0)
    return d.to(dtype)


def mfcc(x: Tensor | np.ndarray, n_mfcc: int = 13, cfg: MelConfig = MelConfig(), top_db: float | None = 80.0) -> Tensor:
    """MFCCs: signal ``x [..., T]`` -> ``[..., n_mfcc, N]``.

    The power mel spectrogram of ``cfg`` (its ``log`` flag is ignored) in dB,
    ``10 log10(max(mel, 1e-10))``, floored at ``top_db`` below each
    spectrogram's maximum (None: no floor), then an orthonormal DCT-II over the
    mel axis, keeping the first ``n_mfcc`` coefficients (librosa's recipe).
    """
    if not 1 <= n_mfcc <= cfg.n_mels:
        raise ConfigError(f"n_mfcc must be in [1, n_mels={cfg.n_mels}], got {n_mfcc}")
    db = 10.0 * torch.log10(_mel_power(x, cfg).clamp_min(1e-10))  # [..., M, N]
    if top_db is not None:
        peak = db.amax(dim=(-2, -1), keepdim=True)  # [..., 1, 1]
        db = torch.maximum(db, peak - top_db)
    d = dct_matrix(n_mfcc, cfg.n_mels, db.dtype).to(db.device)  # [n_mfcc, M]
    return torch.matmul(d, db)  # [..., n_mfcc, N]


# --- SpecAugment -----------------------------------------------------------------------------------------


def _draw_mask(lead: int, size: int, n_masks: int, max_width: int, generator: torch.Generator | None) -> Tensor:
    """Union of ``n_masks`` bands per row: bool [lead, size]; each band width ~ U{0..max_width}, start uniform."""
    mask = torch.zeros(lead, size, dtype=torch.bool)
    if n_masks == 0 or max_width == 0 or size == 0:
        return mask
    max_width = min(max_width, size)
    widths = torch.randint(0, max_width + 1, (lead, n_masks), generator=generator)  # [L, K]
    starts = (torch.rand(lead, n_masks, generator=generator, dtype=torch.float64) * (size - widths + 1)).long()  # [L, K]
    pos = torch.arange(size)[None, None, :]  # [1, 1, S]
    bands = (pos >= starts[..., None]) & (pos < (starts + widths)[..., None])  # [L, K, S]
    return bands.any(dim=1)


def spec_augment_masks(
    shape: tuple[int, ...] | torch.Size,
    freq_masks: int = 2,
    freq_width: int = 27,
    time_masks: int = 2,
    time_width: int = 40,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """Draw SpecAugment masks for a spectrogram of ``shape`` ``(..., F, N)``.

    Returns ``(freq_mask [..., F], time_mask [..., N])`` bool, True where
    masked. Each spectrogram (each index of the leading dims) gets its own
    ``freq_masks`` bands of width uniform in ``0..freq_width`` bins and
    ``time_masks`` bands of width uniform in ``0..time_width`` frames, placed
    uniformly inside the spectrogram (bands may overlap). Widths larger than
    the axis are capped to it. Frequency masks are drawn first, then time masks,
    from ``generator`` (CPU), so a seeded generator gives the same masks.
    """
    if len(shape) < 2:
        raise ConfigError(f"spec_augment needs a [..., F, N] spectrogram, got shape {tuple(shape)}")
    if min(freq_masks, freq_width, time_masks, time_width) < 0:
        raise ConfigError("spec_augment mask counts and widths must be >= 0")
    lead_shape = tuple(shape[:-2])
    lead = math.prod(lead_shape)
    n_freq, n_time = int(shape[-2]), int(shape[-1])
    fmask = _draw_mask(lead, n_freq, freq_masks, freq_width, generator)  # [L, F]
    tmask = _draw_mask(lead, n_time, time_masks, time_width, generator)  # [L, N]
    return fmask.reshape(*lead_shape, n_freq), tmask.reshape(*lead_shape, n_time)


def spec_augment(
    spec: Tensor,
    freq_masks: int = 2,
    freq_width: int = 27,
    time_masks: int = 2,
    time_width: int = 40,
    generator: torch.Generator | None = None,
    value: float = 0.0,
) -> Tensor:
    """SpecAugment frequency and time masking: ``spec [..., F, N]`` -> masked copy ``[..., F, N]``.

    Masked bins are set to ``value`` (0.0; pass e.g. the mean for log
    spectrograms). The masks are those of :func:`spec_augment_masks` with the
    same arguments and generator state; ``spec`` itself is never modified.
    """
    fmask, tmask = spec_augment_masks(spec.shape, freq_masks, freq_width, time_masks, time_width, generator)
    mask = fmask[..., :, None] | tmask[..., None, :]  # [..., F, N]
    return spec.masked_fill(mask.to(spec.device), value)


#: ``voiced_fraction``: a 40 ms frame is voiced when its normalised autocorrelation peaks at or above this at a lag of
#: 2.5-12.5 ms (a pitch of 80-400 Hz), below 1 kHz
VOICED_CORRELATION = 0.6


def voiced_fraction(audio: np.ndarray, sr: int = SAMPLE_RATE, frame_s: float = 0.04, min_pitch_hz: float = 80.0,
                    max_pitch_hz: float = 400.0, active_db: float = -30.0, threshold: float = VOICED_CORRELATION,
                    block: int = 1024) -> float:
    """The share of a sound's active frames that are voiced: one talker's voice scores high, noise and babble low.

    audio: float [T] at ``sr``. It is low-passed at 1 kHz, cut into ``frame_s`` frames (hop half a frame), and a
    frame within ``active_db`` of the loudest is active; it is voiced when the normalised cross-correlation of the
    frame with itself shifted by a lag of one pitch period in ``min_pitch_hz`` .. ``max_pitch_hz`` reaches
    ``threshold`` (each lag normalised by the energies of both windows, so a decaying sound does not pass for a
    periodic one). On the blind separator's second output of real dev mixtures: another talker's voice a median
    0.64-0.69, a café or a kitchen 0.14-0.24 (``bench/bench_real.py``'s "+sync" methods). Returns a value in
    [0, 1]; 0 for a silent or too short sound. ``block`` frames are analysed at a time (memory stays bounded).
    """
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(audio, dtype=np.float64)
    if x.ndim != 1:
        raise ConfigError(f"voiced_fraction needs mono audio [T], got shape {x.shape}")
    if not 0 < min_pitch_hz < max_pitch_hz:
        raise ConfigError(f"voiced_fraction: need 0 < min_pitch_hz < max_pitch_hz, got {min_pitch_hz}, {max_pitch_hz}")
    frame, hop = int(round(frame_s * sr)), int(round(frame_s * sr / 2))
    lo, hi = int(sr // max_pitch_hz), int(np.ceil(sr / min_pitch_hz))
    n = (len(x) - frame - hi) // hop + 1
    if n < 1 or not np.any(x):
        return 0.0
    x = sosfiltfilt(butter(4, 1000.0, fs=sr, output="sos"), x)
    starts = hop * np.arange(n)
    energy = np.array([float(np.dot(x[s : s + frame], x[s : s + frame])) for s in starts])
    active = np.nonzero(energy > energy.max() * 10 ** (active_db / 10))[0]
    m = 1 << int(np.ceil(np.log2(2 * (frame + hi))))
    voiced = 0
    for i in range(0, len(active), block):
        st = starts[active[i : i + block]]
        a = x[st[:, None] + np.arange(frame)[None, :]]  # [b, frame]
        b = x[st[:, None] + np.arange(frame + hi)[None, :]]  # [b, frame + hi]
        cross = np.fft.irfft(np.conj(np.fft.rfft(a, m, axis=1)) * np.fft.rfft(b, m, axis=1), m, axis=1)[:, :hi]
        c = np.concatenate([np.zeros((len(b), 1)), np.cumsum(b**2, axis=1)], axis=1)
        eb = c[:, frame : frame + hi] - c[:, :hi]  # the energy of b[lag : lag + frame]
        r = cross / np.sqrt(np.sum(a**2, axis=1)[:, None] * eb + 1e-20)
        voiced += int(np.sum(r[:, lo:hi].max(axis=1) >= threshold))
    return voiced / len(active)
