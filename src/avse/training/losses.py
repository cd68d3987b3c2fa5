"""Separation losses: negative SI-SDR, its permutation-invariant (PIT) form, a silent-source loss, a compressed spectral distance."""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor

from avse.errors import ConfigError


def neg_si_sdr(estimate: Tensor, target: Tensor, eps: float = 1e-8, max_db: float | None = None) -> Tensor:
    """Negative SI-SDR in dB: ``estimate [..., T]``, ``target [..., T]`` -> ``[...]``.

    Both signals are made zero-mean; the target is scaled by the projection
    ``<e, t> / <t, t>`` and SI-SDR = 10 log10(|s|^2 / |e - s|^2). ``eps`` keeps
    silent targets or perfect estimates finite (and their gradients). With
    ``max_db`` the SDR saturates softly there: 10 log10(|s|^2 / (|e - s|^2 +
    tau |s|^2)), tau = 10^(-max_db / 10), so that items that are already
    nearly perfect (a clean input passed through) stop pulling the gradient
    towards themselves (the thresholded SNR of Wisdom et al., 2020).
    """
    if estimate.shape != target.shape:
        raise ConfigError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} shapes differ")
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)  # [..., T]
    target = target - target.mean(dim=-1, keepdim=True)  # [..., T]
    alpha = (estimate * target).sum(-1, keepdim=True) / (target.pow(2).sum(-1, keepdim=True) + eps)  # [..., 1]
    scaled = alpha * target  # [..., T]
    noise = estimate - scaled  # [..., T]
    power = scaled.pow(2).sum(-1)  # [...]
    floor = 0.0 if max_db is None else 10.0 ** (-max_db / 10.0) * power
    ratio = (power + eps) / (noise.pow(2).sum(-1) + floor + eps)  # [...]
    return -10.0 * torch.log10(ratio)


#: a reference this far (dB) below the mixture counts as silent (a clean item's missing second talker)
SILENT_DB = -60.0


def silent_source_loss(estimate: Tensor, mixture: Tensor, eps: float = 1e-8, max_db: float | None = None) -> Tensor:
    """Loss of an output whose reference is silent: ``estimate [..., T]``, ``mixture [..., T]`` -> ``[...]`` dB.

    SI-SDR is undefined for a silent reference, so the output's energy is
    scored against the mixture's instead: 10 log10((|e|^2 + tau |x|^2) /
    |x|^2), tau = 10^(-max_db / 10) (30 dB when None). It is 0 dB when the
    output holds as much as the whole input and falls to -max_db as the output
    falls silent: with the same ``max_db``, the floor a perfect estimate reaches
    under ``neg_si_sdr``'s saturation (the thresholded loss of MixIT, Wisdom et al., 2020).
    """
    if estimate.shape != mixture.shape:
        raise ConfigError(f"estimate {tuple(estimate.shape)} and mixture {tuple(mixture.shape)} shapes differ")
    tau = 10.0 ** (-(30.0 if max_db is None else max_db) / 10.0)
    mix_power = mixture.pow(2).sum(-1) + eps  # [...]
    return 10.0 * torch.log10((estimate.pow(2).sum(-1) + tau * mix_power) / mix_power)


def pairwise_neg_si_sdr(
    estimates: Tensor, targets: Tensor, eps: float = 1e-8, max_db: float | None = None, mixture: Tensor | None = None
) -> Tensor:
    """``estimates [B, S, T]``, ``targets [B, S, T]`` -> ``[B, S_est, S_tgt]``: neg SI-SDR of every pairing.

    With ``mixture [B, T]``, a target more than ``SILENT_DB`` below the mixture
    (the absent second talker of a clean item) is scored by
    ``silent_source_loss`` instead: the output paired with it should be silent.
    An all-silent mixture keeps the plain loss.
    """
    if estimates.dim() != 3 or estimates.shape != targets.shape:
        raise ConfigError(f"expected estimates and targets [B, S, T] of one shape, got {tuple(estimates.shape)} and {tuple(targets.shape)}")
    est, tgt = torch.broadcast_tensors(estimates[:, :, None], targets[:, None])  # [B, S, S, T]
    loss = neg_si_sdr(est, tgt, eps, max_db)  # [B, S, S]
    if mixture is None:
        return loss
    if mixture.shape != (estimates.shape[0], estimates.shape[-1]):
        raise ConfigError(f"mixture must be [B, T] = {[estimates.shape[0], estimates.shape[-1]]}, got {list(mixture.shape)}")
    mix_power = mixture.pow(2).sum(-1, keepdim=True)  # [B, 1]
    # a silent mixture (a crop of silence) has no level to score against: such items keep the plain loss
    silent = (targets.pow(2).sum(-1) <= 10.0 ** (SILENT_DB / 10.0) * mix_power) & (mix_power > eps)  # [B, S]
    if not bool(silent.any()):
        return loss
    quiet = silent_source_loss(estimates, mixture[:, None].expand_as(estimates), eps, max_db)  # [B, S_est]
    return torch.where(silent[:, None, :], quiet[:, :, None], loss)  # [B, S_est, S_tgt]


def pit_neg_si_sdr(
    estimates: Tensor, targets: Tensor, eps: float = 1e-8, max_db: float | None = None, mixture: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Permutation-invariant neg SI-SDR over all S! pairings (fine for small S).

    ``estimates [B, S, T]``, ``targets [B, S, T]`` -> ``(loss [B], perm [B, S])``:
    ``loss`` is the mean over sources of the neg SI-SDR of the best pairing,
    and ``estimates[b, perm[b, j]]`` is the estimate paired with ``targets[b, j]``
    (so ``reorder(estimates, perm)`` lines the estimates up with the targets).
    ``mixture [B, T]``: silent targets are scored as in ``pairwise_neg_si_sdr``.
    """
    pair = pairwise_neg_si_sdr(estimates, targets, eps, max_db, mixture)  # [B, S, S]
    n_src = pair.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n_src))), device=pair.device)  # [P, S]
    tgt_idx = torch.arange(n_src, device=pair.device)  # [S]
    losses = pair[:, perms, tgt_idx].mean(-1)  # [B, P]
    loss, best = losses.min(dim=1)  # [B], [B]
    return loss, perms[best]


def reorder(estimates: Tensor, perm: Tensor) -> Tensor:
    """``estimates [B, S, T]`` and ``perm [B, S]`` (from :func:`pit_neg_si_sdr`) -> ``[B, S, T]`` in target order."""
    return torch.gather(estimates, 1, perm[..., None].expand(-1, -1, estimates.shape[-1]))


#: the STFT sizes (window = FFT, hop a quarter) of ``compressed_spectral_loss``
SPECTRAL_FFTS = (256, 512, 1024)


def compressed_spectral_loss(
    estimate: Tensor, target: Tensor, power: float = 0.3, ffts: tuple[int, ...] = SPECTRAL_FFTS, mag_weight: float = 0.7,
    eps: float = 1e-8,
) -> Tensor:
    """Multi-resolution power-law compressed spectral distance: ``estimate [..., T]``, ``target [..., T]`` -> ``[...]``.

    Per STFT size: the mean squared difference of the magnitudes raised to ``power``
    (weight ``mag_weight``) plus that of the complex spectra with their magnitudes so
    compressed (weight ``1 - mag_weight``), averaged over the sizes. The compression
    weighs quiet time-frequency bins far more than SI-SDR does, so noise left in the
    pauses of speech and in weak bands costs what it costs a listener. The estimate is
    first scaled to the target by least squares (``<e, t> / <e, e>``), so that, like
    SI-SDR, the distance does not depend on its level (a silent target costs nothing).
    """
    if estimate.shape != target.shape:
        raise ConfigError(f"estimate {tuple(estimate.shape)} and target {tuple(target.shape)} shapes differ")
    lead = estimate.shape[:-1]
    estimate = estimate * (estimate * target).sum(-1, keepdim=True) / (estimate.pow(2).sum(-1, keepdim=True) + eps)
    both = torch.stack([estimate, target]).reshape(2 * math.prod(lead), -1)  # [2N, T]: the estimates, then the targets
    total = estimate.new_zeros(lead)
    for n_fft in ffts:
        spec = torch.stft(both, n_fft, n_fft // 4, window=torch.hann_window(n_fft, device=both.device),
                          return_complex=True)  # [2N, F, K]
        mag = spec.abs().clamp_min(1e-8)
        comp = mag**power
        cplx = torch.view_as_real(spec * (comp / mag))  # [2N, F, K, 2]
        e_mag, t_mag = comp.chunk(2)
        e_c, t_c = cplx.chunk(2)
        d = mag_weight * (e_mag - t_mag).pow(2).mean((-2, -1)) + (1 - mag_weight) * (e_c - t_c).pow(2).mean((-3, -2, -1))
        total = total + d.reshape(lead)
    return total / len(ffts)
