"""Tests for avse.training.losses: exact SI-SDR values, invariances, and permutation-invariant training."""

from __future__ import annotations

import math

import pytest
import torch

from avse.errors import ConfigError
from avse.training.losses import (
    compressed_spectral_loss,
    neg_si_sdr,
    pairwise_neg_si_sdr,
    pit_neg_si_sdr,
    reorder,
    silent_source_loss,
)

# zero-mean, mutually orthogonal, |t|^2 = |n|^2 = 4
T = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
N = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)


def test_exact_value_on_orthogonal_signals():
    # estimate = t + 0.5 n: SI-SDR = 10 log10(4 / 1)
    assert neg_si_sdr(T + 0.5 * N, T).item() == pytest.approx(-10 * math.log10(4.0), abs=1e-6)  # eps = 1e-8 moves it by ~1e-7 dB
    assert neg_si_sdr(T + N, T).item() == pytest.approx(0.0, abs=1e-6)  # eps = 1e-8 moves it by ~1e-7 dB
    # the projection: estimate 3 t + n has s = 3 t, SI-SDR = 10 log10(36 / 4)
    assert neg_si_sdr(3 * T + N, T).item() == pytest.approx(-10 * math.log10(9.0), abs=1e-6)  # eps = 1e-8 moves it by ~1e-7 dB


def test_scale_and_offset_invariance_and_shapes():
    g = torch.Generator().manual_seed(0)
    target = torch.randn(2, 3, 500, generator=g)
    est = target + 0.3 * torch.randn(2, 3, 500, generator=g)
    base = neg_si_sdr(est, target)
    assert base.shape == (2, 3)
    torch.testing.assert_close(neg_si_sdr(5.0 * est + 2.0, target), base, atol=1e-4, rtol=0)
    torch.testing.assert_close(neg_si_sdr(est, 0.1 * target - 1.0), base, atol=1e-4, rtol=0)
    assert neg_si_sdr(est[0, 0], target[0, 0]).shape == ()


def test_eps_safe_on_silence_and_perfect_estimates():
    zero = torch.zeros(2, 100, requires_grad=True)
    loss = neg_si_sdr(zero, torch.zeros(2, 100))
    assert torch.isfinite(loss).all()
    loss.sum().backward()
    assert torch.isfinite(zero.grad).all()
    x = torch.randn(100, dtype=torch.float64)
    assert math.isfinite(neg_si_sdr(x, x).item()) and neg_si_sdr(x, x).item() < -60


def test_shape_mismatch_is_refused():
    with pytest.raises(ConfigError, match="shapes differ"):
        neg_si_sdr(torch.zeros(2, 10), torch.zeros(2, 11))
    with pytest.raises(ConfigError, match=r"\[B, S, T\]"):
        pit_neg_si_sdr(torch.zeros(2, 10), torch.zeros(2, 10))


def test_pairwise_matrix():
    g = torch.Generator().manual_seed(1)
    est, tgt = torch.randn(2, 2, 64, generator=g), torch.randn(2, 2, 64, generator=g)
    pair = pairwise_neg_si_sdr(est, tgt)
    assert pair.shape == (2, 2, 2)
    for i in range(2):
        for j in range(2):
            torch.testing.assert_close(pair[:, i, j], neg_si_sdr(est[:, i], tgt[:, j]))


def test_pit_finds_swapped_targets():
    g = torch.Generator().manual_seed(2)
    targets = torch.randn(3, 2, 400, generator=g)
    est = targets + 0.2 * torch.randn(3, 2, 400, generator=g)
    est[1] = est[1].flip(0)  # item 1 has its sources swapped
    loss, perm = pit_neg_si_sdr(est, targets)
    assert loss.shape == (3,) and perm.shape == (3, 2)
    assert perm.tolist() == [[0, 1], [1, 0], [0, 1]]
    right = torch.stack([est[0], est[1].flip(0), est[2]])
    torch.testing.assert_close(loss, neg_si_sdr(right, targets).mean(-1))
    torch.testing.assert_close(reorder(est, perm), right)
    wrong = neg_si_sdr(right.flip(1), targets).mean(-1)
    assert (loss < wrong - 5).all()


def test_pit_three_sources_and_gradient():
    g = torch.Generator().manual_seed(3)
    targets = torch.randn(1, 3, 300, generator=g)
    order = [2, 0, 1]
    est = (targets[:, order] + 0.1 * torch.randn(1, 3, 300, generator=g)).requires_grad_(True)
    loss, perm = pit_neg_si_sdr(est, targets)
    # target j is matched by estimate perm[j]: targets[:, order][:, k] = targets[:, order[k]]
    assert perm[0].tolist() == [order.index(j) for j in range(3)]
    loss.sum().backward()
    assert torch.isfinite(est.grad).all() and est.grad.abs().sum() > 0


def test_max_db_saturates_near_perfect_estimates_and_leaves_poor_ones_alone():
    torch.manual_seed(0)
    t = torch.randn(3, 8000)
    assert neg_si_sdr(t, t, max_db=30.0).max().item() == pytest.approx(-30.0, abs=1e-3)
    assert neg_si_sdr(t, t).max().item() < -60.0  # without the cap a perfect estimate is "worth" far more
    poor = t + torch.randn(3, 8000)
    torch.testing.assert_close(neg_si_sdr(poor, t, max_db=30.0), neg_si_sdr(poor, t), atol=0.01, rtol=0)
    loss, _ = pit_neg_si_sdr(torch.stack([t, t], 1), torch.stack([t, t], 1), max_db=20.0)
    torch.testing.assert_close(loss, torch.full((3,), -20.0), atol=1e-3, rtol=0)


def test_silent_source_loss_values():
    x = torch.randn(2, 4000, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(silent_source_loss(x, x, max_db=30.0), torch.full((2,), 10 * math.log10(1 + 1e-3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(silent_source_loss(torch.zeros_like(x), x, max_db=30.0), torch.full((2,), -30.0), atol=1e-4, rtol=0)
    half = silent_source_loss(0.1 * x, x, max_db=40.0)  # an output 20 dB below the input
    torch.testing.assert_close(half, torch.full((2,), 10 * math.log10(0.01 + 1e-4)), atol=1e-4, rtol=0)
    with pytest.raises(ConfigError, match="shapes differ"):
        silent_source_loss(x, x[:, :10])


def test_pit_with_a_silent_reference_wants_the_talker_whole_and_the_other_output_silent():
    """A clean item (the target alone): the output paired with the silent reference is scored by its energy."""
    g = torch.Generator().manual_seed(5)
    s = torch.randn(2, 4000, generator=g)
    targets = torch.stack([s, torch.zeros_like(s)], 1)  # [B, 2, T]: the second talker is absent
    whole = torch.stack([torch.zeros_like(s), s], 1)  # the talker in output 1, output 0 silent
    halves = torch.stack([0.5 * s, 0.5 * s], 1)  # split in two (SI-SDR alone would call this perfect)
    loss_whole, perm = pit_neg_si_sdr(whole, targets, max_db=30.0, mixture=s)
    loss_halves, _ = pit_neg_si_sdr(halves, targets, max_db=30.0, mixture=s)
    assert perm.tolist() == [[1, 0], [1, 0]]  # target 0 is matched by output 1
    torch.testing.assert_close(loss_whole, torch.full((2,), -30.0), atol=1e-3, rtol=0)
    assert (loss_halves > loss_whole + 10).all()  # (-30 + 10 log10(0.25 + 1e-3)) / 2 = about -18 dB against -30
    # without the mixture, SI-SDR finds either half a perfect copy of the talker: the reason for the silent-source loss
    plain = pairwise_neg_si_sdr(halves, targets, max_db=30.0)
    assert (plain[:, :, 0] < -29).all()
    # a two-talker item is scored exactly as without the mixture
    two = torch.randn(2, 2, 4000, generator=g)
    est = two + 0.1 * torch.randn(2, 2, 4000, generator=g)
    torch.testing.assert_close(pit_neg_si_sdr(est, two, max_db=30.0, mixture=two.sum(1))[0], pit_neg_si_sdr(est, two, max_db=30.0)[0])
    with pytest.raises(ConfigError, match="mixture must be"):
        pit_neg_si_sdr(est, two, mixture=two)
    # a silent crop (mixture and both references silent) keeps the plain loss: no level to score against
    quiet = torch.zeros(1, 2, 4000)
    out = torch.full((1, 2, 4000), 1e-3)
    torch.testing.assert_close(pit_neg_si_sdr(out, quiet, max_db=30.0, mixture=quiet.sum(1))[0], pit_neg_si_sdr(out, quiet, max_db=30.0)[0])


def _speech_like(seconds: float = 1.0, sr: int = 16000) -> torch.Tensor:
    """A 200 Hz harmonic tone gated on for the first and last quarter, silent between: [T]."""
    t = torch.arange(int(seconds * sr), dtype=torch.float32) / sr
    x = sum(torch.sin(2 * math.pi * 200 * k * t) / k for k in range(1, 6))
    gate = ((t < seconds / 4) | (t > 3 * seconds / 4)).float()
    return 0.5 * x * gate


def test_spectral_loss_zero_on_the_target_and_level_free():
    s = _speech_like()
    assert compressed_spectral_loss(s, s).item() == pytest.approx(0.0, abs=1e-6)
    assert compressed_spectral_loss(0.3 * s, s).item() == pytest.approx(0.0, abs=1e-6)  # scaled to the target first
    g = torch.Generator().manual_seed(0)
    noisy = s + 0.05 * torch.randn(s.shape, generator=g)
    assert compressed_spectral_loss(3.0 * noisy, s).item() == pytest.approx(compressed_spectral_loss(noisy, s).item(), rel=1e-4)


def test_spectral_loss_still_hears_faint_noise_that_si_sdr_calls_perfect():
    s = _speech_like()
    n = torch.randn(s.shape, generator=torch.Generator().manual_seed(1))
    loud, faint = s + 0.02 * n, s + 0.002 * n  # the faint residual is 20 dB quieter
    err = lambda e: 10 ** (neg_si_sdr(e, s).item() / 10)  # noqa: E731  error power over target power, as SI-SDR sees it
    assert err(faint) < err(loud) / 50  # SI-SDR: about 100 times less error
    # the compressed spectra: the faint residual still costs more than a tenth of the loud one
    assert compressed_spectral_loss(faint, s).item() > compressed_spectral_loss(loud, s).item() / 10


def test_spectral_loss_shapes_gradient_and_silent_target():
    g = torch.Generator().manual_seed(2)
    est = torch.randn(3, 2, 4000, generator=g, requires_grad=True)
    tgt = torch.randn(3, 2, 4000, generator=g)
    out = compressed_spectral_loss(est, tgt)
    assert out.shape == (3, 2)
    out.sum().backward()
    assert est.grad is not None and torch.isfinite(est.grad).all()
    assert compressed_spectral_loss(torch.randn(4000, generator=g), torch.zeros(4000)).item() == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ConfigError, match="shapes differ"):
        compressed_spectral_loss(torch.zeros(3, 100), torch.zeros(3, 101))


def test_training_loss_adds_the_weighted_spectral_term_in_reference_order():
    from avse.training.module import SeparationModule, TrainConfig

    small = dict(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1)
    g = torch.Generator().manual_seed(3)
    tgt, itf = torch.randn(2, 1600, generator=g), torch.randn(2, 1600, generator=g)
    batch = {"mixture": tgt + itf, "target": tgt, "interferer": itf}
    est = torch.stack([itf + 0.1 * tgt, tgt + 0.1 * itf], 1)  # swapped: PIT must pair them back first
    plain = SeparationModule("tasnet", {**small, "n_sources": 2}, task="separate")
    spectral = SeparationModule("tasnet", {**small, "n_sources": 2}, task="separate", loss_spectral=10.0)
    base, ordered = plain._loss(est, batch)
    total, _ = spectral._loss(est, batch)
    refs = torch.stack([tgt, itf], 1)
    torch.testing.assert_close(total, base + 10.0 * compressed_spectral_loss(ordered, refs).mean(-1))
    assert torch.all(total > base)
    with pytest.raises(ConfigError, match="loss_spectral"):
        TrainConfig(loss_spectral=-1.0)
