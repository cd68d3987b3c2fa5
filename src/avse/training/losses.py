"""Separation losses: negative scale-invariant SDR and its permutation-invariant (PIT) form."""

from __future__ import annotations

import itertools

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


def pairwise_neg_si_sdr(estimates: Tensor, targets: Tensor, eps: float = 1e-8, max_db: float | None = None) -> Tensor:
    """``estimates [B, S, T]``, ``targets [B, S, T]`` -> ``[B, S_est, S_tgt]``: neg SI-SDR of every pairing."""
    if estimates.dim() != 3 or estimates.shape != targets.shape:
        raise ConfigError(f"expected estimates and targets [B, S, T] of one shape, got {tuple(estimates.shape)} and {tuple(targets.shape)}")
    est, tgt = torch.broadcast_tensors(estimates[:, :, None], targets[:, None])  # [B, S, S, T]
    return neg_si_sdr(est, tgt, eps, max_db)


def pit_neg_si_sdr(
    estimates: Tensor, targets: Tensor, eps: float = 1e-8, max_db: float | None = None
) -> tuple[Tensor, Tensor]:
    """Permutation-invariant neg SI-SDR over all S! pairings (fine for small S).

    ``estimates [B, S, T]``, ``targets [B, S, T]`` -> ``(loss [B], perm [B, S])``:
    ``loss`` is the mean over sources of the neg SI-SDR of the best pairing,
    and ``estimates[b, perm[b, j]]`` is the estimate paired with ``targets[b, j]``
    (so ``reorder(estimates, perm)`` lines the estimates up with the targets).
    """
    pair = pairwise_neg_si_sdr(estimates, targets, eps, max_db)  # [B, S, S]
    n_src = pair.shape[1]
    perms = torch.tensor(list(itertools.permutations(range(n_src))), device=pair.device)  # [P, S]
    tgt_idx = torch.arange(n_src, device=pair.device)  # [S]
    losses = pair[:, perms, tgt_idx].mean(-1)  # [B, P]
    loss, best = losses.min(dim=1)  # [B], [B]
    return loss, perms[best]


def reorder(estimates: Tensor, perm: Tensor) -> Tensor:
    """``estimates [B, S, T]`` and ``perm [B, S]`` (from :func:`pit_neg_si_sdr`) -> ``[B, S, T]`` in target order."""
    return torch.gather(estimates, 1, perm[..., None].expand(-1, -1, estimates.shape[-1]))
