"""Objective speech metrics: SI-SDR(i), BSS Eval SDR/SIR/SAR, PESQ (wb/nb), STOI and ESTOI.

All functions take numpy arrays (any float dtype) and compute in float64. The
PESQ and STOI functions are thin wrappers over the ``pesq`` (ITU-T P.862 /
P.862.2 reference code) and ``pystoi`` packages: they add input checks that
raise :class:`avse.errors.ConfigError` and return plain floats.

BSS Eval (:func:`sdr_sir_sar`) follows ``bss_eval_sources`` with a 512-tap
time-invariant distortion filter computed once over the whole signal (the
museval v4 / fast-bss-eval formulation; for whole-signal evaluation of sources
it is the same quantity as mir_eval's v3). It uses ``fast_bss_eval`` when that
package is installed and a numpy implementation of the same closed form
otherwise; both agree with ``mir_eval.separation.bss_eval_sources`` to well
under 1e-3 dB on real speech (see tests/evaluation/test_metrics.py).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence

import numpy as np
from scipy.linalg import solve

from avse import SAMPLE_RATE
from avse.audio.io import resample
from avse.errors import ConfigError

PESQ_WB_RATE = 16_000
PESQ_NB_RATE = 8_000
BSS_FILTER_LENGTH = 512
DEFAULT_METRICS = ("si_sdr", "si_sdri", "pesq_wb", "pesq_nb", "stoi", "estoi")
KNOWN_METRICS = (*DEFAULT_METRICS, "sdr")

_EPS_SILENT = 0.0  # a signal is "silent" when every sample is exactly zero


# --------------------------------------------------------------------------- checks


def _as_pair(estimate: np.ndarray, reference: np.ndarray, name: str = "estimate") -> tuple[np.ndarray, np.ndarray]:
    """Check two arrays of the same shape [..., T], T > 0, finite; return them as float64."""
    est = np.asarray(estimate, dtype=np.float64)
    ref = np.asarray(reference, dtype=np.float64)
    if est.shape != ref.shape:
        raise ConfigError(f"{name} shape {est.shape} differs from reference shape {ref.shape}")
    if est.ndim == 0 or est.shape[-1] == 0:
        raise ConfigError(f"{name} and reference must hold at least one sample, got shape {est.shape}")
    if not (np.all(np.isfinite(est)) and np.all(np.isfinite(ref))):
        raise ConfigError(f"{name} or reference holds NaN or infinite samples")
    return est, ref


def _check_not_silent(x: np.ndarray, what: str) -> None:
    """Raise ConfigError when any signal along the last axis of ``x`` [..., T] is all zeros."""
    if np.any(np.max(np.abs(x), axis=-1) <= _EPS_SILENT):
        raise ConfigError(f"{what} is silent (all samples are zero); the metric is undefined")


def _as_1d_pair(estimate: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Check a mono pair [T], [T]: same length, non-empty, finite, not silent; return float64."""
    est, ref = _as_pair(estimate, reference)
    if est.ndim != 1:
        raise ConfigError(f"expected mono signals of shape [T], got {est.shape}")
    _check_not_silent(ref, "reference")
    _check_not_silent(est, "estimate")
    return est, ref


def _check_rate(sr: int, allowed: Sequence[int], metric: str) -> int:
    """Return ``sr`` as int when it is one of ``allowed``, else raise ConfigError."""
    if int(sr) != sr or int(sr) not in allowed:
        raise ConfigError(f"{metric} needs a sample rate in {tuple(allowed)} Hz, got {sr}")
    return int(sr)


# --------------------------------------------------------------------------- SI-SDR


def si_sdr(estimate: np.ndarray, reference: np.ndarray, zero_mean: bool = True) -> np.ndarray:
    """Scale-invariant SDR in dB (Le Roux et al., 2019).

    estimate [..., T], reference [..., T] -> [...] float64 (a 0-d array for 1-D input).
    With alpha = <e, r> / <r, r>: SI-SDR = 10 log10(|alpha r|^2 / |e - alpha r|^2).
    ``zero_mean`` removes each signal's mean first (the usual convention).
    An estimate that is an exact multiple of the reference gives +inf.
    Raises ConfigError on a shape mismatch, empty input, or a silent reference or estimate.
    """
    est, ref = _as_pair(estimate, reference)
    if zero_mean:
        est = est - est.mean(axis=-1, keepdims=True)
        ref = ref - ref.mean(axis=-1, keepdims=True)
    _check_not_silent(ref, "reference")
    _check_not_silent(est, "estimate")
    alpha = np.sum(est * ref, axis=-1, keepdims=True) / np.sum(ref * ref, axis=-1, keepdims=True)
    target = alpha * ref  # [..., T]
    noise = est - target  # [..., T]
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(np.sum(target**2, axis=-1) / np.sum(noise**2, axis=-1))


def si_sdr_improvement(
    estimate: np.ndarray, mixture: np.ndarray, reference: np.ndarray, zero_mean: bool = True
) -> np.ndarray:
    """SI-SDR of the estimate minus SI-SDR of the mixture, in dB.

    estimate [..., T], mixture [..., T], reference [..., T] -> [...] float64.
    """
    return si_sdr(estimate, reference, zero_mean) - si_sdr(mixture, reference, zero_mean)


# --------------------------------------------------------------------------- BSS Eval


def _bss_eval_numpy(refs: np.ndarray, ests: np.ndarray, filter_length: int) -> tuple[np.ndarray, ...]:
    """Closed-form BSS Eval for refs [S, T], ests [S, T] -> (sdr, sir, sar) each [S], float64.

    Each estimate is projected (least squares) onto the span of the ``filter_length``
    delayed copies of its own reference (energy p_t) and of all references (p_a);
    with E = |est|^2: SDR = p_t / (E - p_t), SIR = p_t / (p_a - p_t), SAR = p_a / (E - p_a).
    The Gram matrix of the delayed copies is block-Toeplitz, built from the full
    cross-correlations of the zero-padded signals (as mir_eval and museval do).
    """
    n_src, n_t = refs.shape
    lags = filter_length
    n_fft = int(2 ** np.ceil(np.log2(n_t + lags - 1)))
    ref_f = np.fft.rfft(refs, n_fft)  # [S, F]
    est_f = np.fft.rfft(ests, n_fft)  # [S, F]
    # cross-correlations between references at lags 0..L-1 (both signs)
    rr = np.fft.irfft(ref_f[:, None, :] * np.conj(ref_f[None, :, :]), n_fft)  # [S, S, n_fft]
    gram = np.empty((n_src * lags, n_src * lags))
    idx = np.arange(lags)
    diff = idx[None, :] - idx[:, None]  # [L, L] lag k - l
    for i in range(n_src):
        for j in range(n_src):
            # <ref_i shifted by k, ref_j shifted by l> = corr_{j,i}(k - l)
            gram[i * lags : (i + 1) * lags, j * lags : (j + 1) * lags] = rr[j, i][diff % n_fft].T
    # <ref_i shifted by k, est_s> for every source i, shift k
    re = np.fft.irfft(np.conj(ref_f)[:, None, :] * est_f[None, :, :], n_fft)[:, :, :lags]  # [S_ref, S_est, L]
    sdr, sir, sar = (np.empty(n_src) for _ in range(3))
    for s in range(n_src):
        b_all = re[:, s, :].reshape(-1)  # [S*L]
        b_own = re[s, s, :]  # [L]
        g_own = gram[s * lags : (s + 1) * lags, s * lags : (s + 1) * lags]
        p_t = np.float64(b_own @ solve(g_own, b_own, assume_a="pos"))
        p_a = np.float64(b_all @ solve(gram, b_all, assume_a="pos"))
        energy = np.float64(ests[s] @ ests[s])
        # residual energies are >= 0 in exact arithmetic; rounding may push them below 0
        with np.errstate(divide="ignore"):
            sdr[s] = 10 * np.log10(p_t / max(energy - p_t, 0.0))
            sir[s] = 10 * np.log10(p_t / max(p_a - p_t, 0.0))
            sar[s] = 10 * np.log10(p_a / max(energy - p_a, 0.0))
    return sdr, sir, sar


def sdr_sir_sar(
    estimates: np.ndarray,
    references: np.ndarray,
    filter_length: int = BSS_FILTER_LENGTH,
    backend: str = "auto",
) -> dict[str, np.ndarray]:
    """BSS Eval source metrics (SDR, SIR, SAR) in dB, estimate s scored against reference s.

    estimates [S, T], references [S, T] (or [T] each for S = 1) -> {"sdr", "sir", "sar"}: [S] float64.
    No permutation is searched: order your estimates as your references (use a PIT
    step first if needed). A 512-tap distortion filter, no mean removal, whole signal
    (museval v4 / fast-bss-eval formulation, equal to mir_eval's v3 ``bss_eval_sources``
    up to numerical error). ``backend``: "fast_bss_eval" (the package, float64, run
    through its torch backend),
    "numpy" (our closed form) or "auto" (the package when installed).
    With S = 1 there is no interference and SIR is +inf.
    Raises ConfigError on a shape mismatch, empty input, a silent signal, or T < filter_length.
    """
    est, ref = _as_pair(estimates, references, "estimates")
    if est.ndim == 1:
        est, ref = est[None], ref[None]
    if est.ndim != 2:
        raise ConfigError(f"expected estimates and references of shape [S, T], got {est.shape}")
    if est.shape[-1] < filter_length:
        raise ConfigError(f"signals of {est.shape[-1]} samples are shorter than the {filter_length}-tap filter")
    _check_not_silent(ref, "a reference")
    _check_not_silent(est, "an estimate")
    if backend not in ("auto", "fast_bss_eval", "numpy"):
        raise ConfigError(f"unknown BSS Eval backend {backend!r}")
    use_package = backend == "fast_bss_eval" or (backend == "auto" and importlib.util.find_spec("fast_bss_eval") is not None)
    if use_package:
        import fast_bss_eval
        import torch

        # fast_bss_eval 0.1.4's numpy backend breaks on numpy >= 2 (np.linalg.solve
        # no longer takes a stack of vectors); its torch backend is exact in float64.
        with np.errstate(divide="ignore", invalid="ignore"):
            sdr, sir, sar = (
                m.numpy()
                for m in fast_bss_eval.bss_eval_sources(
                    torch.from_numpy(ref),
                    torch.from_numpy(est),
                    filter_length=filter_length,
                    zero_mean=False,
                    compute_permutation=False,
                )
            )
        if est.shape[0] == 1:  # no interferer: the package returns a finite, noise-level SIR
            sir = np.full(1, np.inf)
        return {k: np.asarray(v, np.float64) for k, v in (("sdr", sdr), ("sir", sir), ("sar", sar))}
    sdr, sir, sar = _bss_eval_numpy(ref, est, filter_length)
    return {"sdr": sdr, "sir": sir, "sar": sar}


# --------------------------------------------------------------------------- PESQ / STOI


def _pesq(est: np.ndarray, ref: np.ndarray, fs: int, mode: str) -> float:
    """Call pesq.pesq(fs, ref, deg, mode) and turn its errors into ConfigError."""
    import pesq as pesq_pkg

    try:
        return float(pesq_pkg.pesq(fs, ref, est, mode))
    except pesq_pkg.PesqError as err:
        raise ConfigError(f"PESQ ({mode}) cannot score this pair: {type(err).__name__}: {err}") from err


def pesq_wb(estimate: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Wide-band PESQ (ITU-T P.862.2, MOS-LQO, about 1.04..4.64) of estimate [T] against reference [T].

    ``sr`` must be 16000 Hz. Signals shorter than about 0.25 s or without speech raise ConfigError.
    """
    est, ref = _as_1d_pair(estimate, reference)
    fs = _check_rate(sr, (PESQ_WB_RATE,), "pesq_wb")
    return _pesq(est, ref, fs, "wb")


def pesq_nb(estimate: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Narrow-band PESQ (ITU-T P.862, MOS-LQO) of estimate [T] against reference [T].

    ``sr`` is 16000 (both signals are resampled to 8 kHz with avse.audio.io.resample) or 8000.
    """
    est, ref = _as_1d_pair(estimate, reference)
    fs = _check_rate(sr, (PESQ_WB_RATE, PESQ_NB_RATE), "pesq_nb")
    if fs != PESQ_NB_RATE:
        est, ref = resample(est, fs, PESQ_NB_RATE), resample(ref, fs, PESQ_NB_RATE)
    return _pesq(est, ref, PESQ_NB_RATE, "nb")


def _stoi(est: np.ndarray, ref: np.ndarray, sr: int, extended: bool) -> float:
    """Call pystoi.stoi(ref, est, sr, extended)."""
    from pystoi import stoi as pystoi_stoi

    if int(sr) != sr or sr < 8000:
        name = "estoi" if extended else "stoi"
        raise ConfigError(f"{name} needs an integer sample rate of at least 8000 Hz, got {sr}")
    return float(pystoi_stoi(ref, est, int(sr), extended=extended))


def stoi(estimate: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Short-time objective intelligibility (Taal et al., 2011), about 0..1, of estimate [T] vs reference [T].

    pystoi resamples to 10 kHz internally and drops silent frames (40 dB below the loudest) of the reference.
    """
    est, ref = _as_1d_pair(estimate, reference)
    return _stoi(est, ref, sr, extended=False)


def estoi(estimate: np.ndarray, reference: np.ndarray, sr: int = SAMPLE_RATE) -> float:
    """Extended STOI (Jensen and Taal, 2016), about -1..1, of estimate [T] vs reference [T]."""
    est, ref = _as_1d_pair(estimate, reference)
    return _stoi(est, ref, sr, extended=True)


# --------------------------------------------------------------------------- one pair


def evaluate_pair(
    estimate: np.ndarray,
    reference: np.ndarray,
    mixture: np.ndarray | None = None,
    sr: int = SAMPLE_RATE,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Score one enhanced clip: estimate [T], reference [T], mixture [T] or None -> {metric: float}.

    ``metrics`` from: "si_sdr", "si_sdri" (needs the mixture), "pesq_wb", "pesq_nb",
    "stoi", "estoi", "sdr" (BSS Eval SDR with a single reference). Keys keep the order asked.
    Raises ConfigError for an unknown metric, a missing mixture for "si_sdri", or bad signals.
    """
    unknown = [m for m in metrics if m not in KNOWN_METRICS]
    if unknown:
        raise ConfigError(f"unknown metrics {unknown}; known: {KNOWN_METRICS}")
    est, ref = _as_1d_pair(estimate, reference)
    if mixture is not None:
        mix, _ = _as_pair(mixture, ref, "mixture")
    elif "si_sdri" in metrics:
        raise ConfigError("si_sdri needs the mixture")
    out: dict[str, float] = {}
    for name in metrics:
        if name == "si_sdr":
            out[name] = float(si_sdr(est, ref))
        elif name == "si_sdri":
            out[name] = float(si_sdr_improvement(est, mix, ref))
        elif name == "pesq_wb":
            out[name] = pesq_wb(est, ref, sr)
        elif name == "pesq_nb":
            out[name] = pesq_nb(est, ref, sr)
        elif name == "stoi":
            out[name] = stoi(est, ref, sr)
        elif name == "estoi":
            out[name] = estoi(est, ref, sr)
        elif name == "sdr":
            out[name] = float(sdr_sir_sar(est, ref)["sdr"][0])
    return out
