"""Tests for avse.evaluation.baselines: oracle masks, spectral gating, the registry."""

from __future__ import annotations

import numpy as np
import pytest

from avse.errors import ConfigError
from avse.evaluation.baselines import BASELINES, get_baseline, oracle_ibm, oracle_irm, quietest_blocks, unprocessed
from avse.evaluation.metrics import si_sdr

SR = 16_000


def _target_and_noise(seed: int = 0, seconds: float = 2.0, noise_rms: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A gated two-tone target [T] (on about half the time) and stationary white noise [T], float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(SR * seconds)) / SR
    gate = np.sin(2 * np.pi * 1.5 * t) > 0.0
    target = (0.5 * np.sin(2 * np.pi * 300 * t) + 0.3 * np.sin(2 * np.pi * 1200 * t)) * gate
    noise = noise_rms * rng.standard_normal(t.size)
    return target.astype(np.float32), noise.astype(np.float32)


def test_registry_names_and_unknown():
    assert list(BASELINES) == ["unprocessed", "oracle-irm", "oracle-ibm", "noisereduce"]
    assert get_baseline("oracle-irm") is oracle_irm
    with pytest.raises(ConfigError, match="unknown method"):
        get_baseline("wiener")


def test_unprocessed_is_the_mixture():
    x = np.linspace(-1, 1, 1000).astype(np.float32)
    y = unprocessed(x, None, None, SR)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)


@pytest.mark.parametrize("name", ["oracle-irm", "oracle-ibm"])
def test_oracle_masks_beat_the_mixture(name):
    target, noise = _target_and_noise()
    mixture = target + noise
    est = BASELINES[name](mixture, target, noise, SR)
    assert est.shape == mixture.shape and est.dtype == np.float32
    before, after = float(si_sdr(mixture, target)), float(si_sdr(est, target))
    assert after > before + 10.0


@pytest.mark.parametrize("fn", [oracle_irm, oracle_ibm])
def test_oracle_masks_with_silent_interferer_return_the_target(fn):
    target, _ = _target_and_noise()
    est = fn(target, target, np.zeros_like(target), SR)
    np.testing.assert_allclose(est, target, atol=1e-5)


def test_oracle_interferer_defaults_to_mixture_minus_target():
    target, noise = _target_and_noise(seed=1)
    mixture = target + noise
    np.testing.assert_allclose(oracle_irm(mixture, target, None, SR), oracle_irm(mixture, target, mixture - target, SR),
                               atol=1e-6)


def test_oracle_masks_separate_disjoint_bands():
    # with target and noise in disjoint bands both masks are ~binary and agree
    t = np.arange(SR) / SR
    target = (0.5 * np.sin(2 * np.pi * 500 * t)).astype(np.float32)
    noise = (0.5 * np.sin(2 * np.pi * 4000 * t)).astype(np.float32)
    irm, ibm = oracle_irm(target + noise, target, noise, SR), oracle_ibm(target + noise, target, noise, SR)
    assert float(si_sdr(irm, target)) > 25.0
    assert float(si_sdr(ibm, target)) > 25.0


def test_oracle_errors():
    x = np.zeros(1000, np.float32)
    with pytest.raises(ConfigError, match="clean target"):
        oracle_irm(x, None, None, SR)
    with pytest.raises(ConfigError, match="lengths differ"):
        oracle_ibm(x, x, x[:10], SR)
    with pytest.raises(ConfigError, match="mono"):
        oracle_irm(np.zeros((2, 100)), x, x, SR)


def test_quietest_blocks_picks_lowest_energy_in_order():
    b = int(0.05 * SR)
    levels = np.array([5, 1, 4, 2, 3, 9, 8, 7, 6, 10], dtype=np.float32)  # 10 blocks
    x = np.repeat(levels, b)
    prof = quietest_blocks(x, SR, fraction=0.3)  # ceil(3) -> max(3, 4) = 4 blocks
    np.testing.assert_array_equal(prof, np.repeat(np.array([1, 4, 2, 3], np.float32), b))
    short = np.ones(3 * b, np.float32)
    np.testing.assert_array_equal(quietest_blocks(short, SR), short)


def test_noisereduce_improves_stationary_noise():
    pytest.importorskip("noisereduce")
    target, noise = _target_and_noise(noise_rms=0.3)
    mixture = target + noise
    est = BASELINES["noisereduce"](mixture, None, None, SR)
    assert est.shape == mixture.shape and est.dtype == np.float32
    assert float(si_sdr(est, target)) > float(si_sdr(mixture, target)) + 3.0
    np.testing.assert_array_equal(est, BASELINES["noisereduce"](mixture, None, None, SR))  # deterministic
