"""Reference enhancers to score models against: the unprocessed mixture, oracle masks, spectral gating.

Every baseline has the signature ``(mixture [T], target [T] | None, interferer [T] | None, sr) ->
estimate [T] float32``. The oracle masks need the clean target; when the interferer is not given
it is taken as ``mixture - target`` (exact for rendered scenes, where mixed = target + interferer).

- ``oracle_irm``: ideal ratio mask on magnitudes, M = |S| / (|S| + |N|) (the magnitude,
  not the square-root-of-power, form), applied to the mixture's STFT, mixture phase kept.
- ``oracle_ibm``: ideal binary mask, M = 1 where the local SNR 20 log10(|S|/|N|) exceeds
  0 dB (the usual local criterion), else 0.
- ``noisereduce``: stationary spectral gating from the ``noisereduce`` package (Sainburg,
  2020): the noise profile is the quietest 20% of the mixture's 50 ms blocks (no clean
  noise is used), the gate sits 1.5 standard deviations above the profile's mean dB level
  per frequency and is smoothed over 500 Hz x 50 ms (the package's defaults). The
  package's non-stationary mode and its whole-signal stationary profile both scored worse
  on the synthetic corpus.

All STFTs use 32 ms / 25 ms windows with a 10 ms hop (:class:`avse.audio.features.StftConfig`
at 16 kHz, the same durations at other rates).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from avse.audio.features import StftConfig, istft, stft
from avse.errors import ConfigError

Baseline = Callable[[np.ndarray, "np.ndarray | None", "np.ndarray | None", int], np.ndarray]

IBM_LOCAL_CRITERION_DB = 0.0
NOISE_PROFILE_FRACTION = 0.2
NOISE_PROFILE_BLOCK_S = 0.05


def _mono(x: np.ndarray, name: str) -> np.ndarray:
    """Check a finite, non-empty mono signal [T]; return it as float64."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] == 0:
        raise ConfigError(f"{name} must be a non-empty mono signal of shape [T], got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ConfigError(f"{name} holds NaN or infinite samples")
    return x


def _stft_config(sr: int) -> StftConfig:
    """STFT settings of 32 ms FFT (power of two), 25 ms window, 10 ms hop at rate ``sr``."""
    if int(sr) != sr or sr < 1000:
        raise ConfigError(f"sample rate must be an integer >= 1000 Hz, got {sr}")
    n_fft = 1 << int(np.ceil(np.log2(0.032 * sr)))
    return StftConfig(sample_rate=int(sr), n_fft=n_fft, hop_length=int(sr) // 100, win_length=int(0.025 * sr))


def _oracle_sources(
    mixture: np.ndarray, target: np.ndarray | None, interferer: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Checked (mixture, target, interferer) [T] float64; interferer defaults to mixture - target."""
    mix = _mono(mixture, "mixture")
    if target is None:
        raise ConfigError("oracle masks need the clean target")
    tgt = _mono(target, "target")
    itf = mix - tgt if interferer is None else _mono(interferer, "interferer")
    if not (tgt.shape == itf.shape == mix.shape):
        raise ConfigError(f"mixture {mix.shape}, target {tgt.shape} and interferer {itf.shape} lengths differ")
    return mix, tgt, itf


def _apply_mask(mix: np.ndarray, tgt: np.ndarray, itf: np.ndarray, sr: int, binary: bool) -> np.ndarray:
    """Mask the mixture's STFT with an oracle mask from target and interferer, all [T] -> estimate [T] float32."""
    cfg = _stft_config(sr)
    spec_m, spec_s, spec_n = (stft(torch.from_numpy(x), cfg) for x in (mix, tgt, itf))  # [F, N] complex128
    mag_s, mag_n = spec_s.abs(), spec_n.abs()  # [F, N]
    if binary:
        # 20 log10(|S|/|N|) > LC  <=>  |S| > |N| * 10^(LC/20); a silent interferer bin counts as target
        mask = (mag_s > mag_n * 10.0 ** (IBM_LOCAL_CRITERION_DB / 20.0)).to(mag_s.dtype)
    else:
        denom = mag_s + mag_n
        mask = torch.where(denom > 0, mag_s / denom.clamp_min(torch.finfo(denom.dtype).tiny), torch.zeros_like(denom))
    est = istft(spec_m * mask, cfg, length=mix.shape[0])  # [T]
    return est.numpy().astype(np.float32)


def unprocessed(mixture: np.ndarray, target: np.ndarray | None = None, interferer: np.ndarray | None = None,
                sr: int = 16_000) -> np.ndarray:
    """The mixture itself: mixture [T] -> estimate [T] float32 (target, interferer unused)."""
    return _mono(mixture, "mixture").astype(np.float32)


def oracle_irm(mixture: np.ndarray, target: np.ndarray | None, interferer: np.ndarray | None = None,
               sr: int = 16_000) -> np.ndarray:
    """Ideal ratio mask |S| / (|S| + |N|) on the mixture STFT: mixture, target, interferer [T] -> [T] float32.

    Bins where target and interferer are both zero get mask 0. ``interferer`` None means mixture - target.
    """
    mix, tgt, itf = _oracle_sources(mixture, target, interferer)
    return _apply_mask(mix, tgt, itf, sr, binary=False)


def oracle_ibm(mixture: np.ndarray, target: np.ndarray | None, interferer: np.ndarray | None = None,
               sr: int = 16_000) -> np.ndarray:
    """Ideal binary mask (|S| > |N|, 0 dB local criterion) on the mixture STFT: [T] inputs -> [T] float32.

    ``interferer`` None means mixture - target.
    """
    mix, tgt, itf = _oracle_sources(mixture, target, interferer)
    return _apply_mask(mix, tgt, itf, sr, binary=True)


def quietest_blocks(x: np.ndarray, sr: int, fraction: float = NOISE_PROFILE_FRACTION,
                    block_s: float = NOISE_PROFILE_BLOCK_S) -> np.ndarray:
    """Noise profile for spectral gating: x [T] -> the lowest-energy ``fraction`` of its blocks, in time order, [T'].

    Blocks are ``block_s`` long; at least 4 are kept (the whole signal when it is shorter).
    Ties are broken by position, so the result is deterministic.
    """
    b = max(int(sr * block_s), 1)
    n_blocks = x.shape[0] // b
    if n_blocks <= 4:
        return x
    blocks = x[: n_blocks * b].reshape(n_blocks, b)  # [K, b]
    energy = np.mean(blocks**2, axis=1)  # [K]
    keep = max(int(np.ceil(fraction * n_blocks)), 4)
    idx = np.sort(np.argsort(energy, kind="stable")[:keep])
    return blocks[idx].reshape(-1)


def noisereduce(mixture: np.ndarray, target: np.ndarray | None = None, interferer: np.ndarray | None = None,
                sr: int = 16_000) -> np.ndarray:
    """Stationary spectral gating (``noisereduce.reduce_noise``), profile from the quietest blocks: [T] -> [T] float32.

    Needs the ``noisereduce`` package (3.x); raises ConfigError when it is missing.
    """
    mix = _mono(mixture, "mixture")
    if int(sr) != sr or sr < 1000:
        raise ConfigError(f"sample rate must be an integer >= 1000 Hz, got {sr}")
    try:
        import noisereduce as nr
    except ImportError as err:
        raise ConfigError("the noisereduce baseline needs the noisereduce package: pip install noisereduce") from err
    profile = quietest_blocks(mix, int(sr))  # [T']
    est = nr.reduce_noise(y=mix, sr=int(sr), stationary=True, y_noise=profile, n_jobs=1, use_tqdm=False)  # [T]
    est = np.asarray(est, dtype=np.float32)[: mix.shape[0]]
    if est.shape[0] < mix.shape[0]:
        est = np.pad(est, (0, mix.shape[0] - est.shape[0]))
    return est


BASELINES: dict[str, Baseline] = {
    "unprocessed": unprocessed,
    "oracle-irm": oracle_irm,
    "oracle-ibm": oracle_ibm,
    "noisereduce": noisereduce,
}


def get_baseline(name: str) -> Baseline:
    """The baseline registered as ``name``; raises ConfigError for an unknown name."""
    try:
        return BASELINES[name]
    except KeyError:
        raise ConfigError(f"unknown method {name!r}; baselines: {', '.join(BASELINES)}") from None
