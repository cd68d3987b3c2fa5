"""Tests for avse.audio.features: STFT round trips, mel filterbank values, MFCC, SpecAugment."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.fft
import torch

from avse.audio import features as F
from avse.audio.features import MelConfig, StftConfig, istft, mel_filterbank, mel_spectrogram, mfcc, spec_augment, stft
from avse.errors import ConfigError


def _signal(shape: tuple[int, ...], dtype: torch.dtype = torch.float32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1).to(dtype)


# --- STFT ------------------------------------------------------------------------------------------------


def test_stft_shape_and_defaults():
    cfg = StftConfig()
    assert (cfg.sample_rate, cfg.n_fft, cfg.hop_length, cfg.win_length, cfg.window, cfg.center) == (16000, 512, 160, 400, "hann", True)
    x = _signal((2, 3, 16000))
    X = stft(x, cfg)
    assert X.shape == (2, 3, 257, 1 + 16000 // 160)
    assert X.is_complex()


def test_stft_of_a_sine_peaks_at_its_bin():
    cfg = StftConfig(n_fft=512, hop_length=128, win_length=512)
    t = torch.arange(16000, dtype=torch.float64) / 16000
    k = 40  # 40 * 16000 / 512 = 1250 Hz, exactly on a bin
    X = stft(torch.sin(2 * math.pi * 1250.0 * t), cfg)
    mag = X.abs()[:, 10:-10]  # interior frames
    assert torch.all(mag.argmax(dim=0) == k)
    # periodic hann, amplitude 1: peak = sum(w) / 2 = 512 / 4
    torch.testing.assert_close(mag[k], torch.full_like(mag[k], 128.0), atol=1e-6, rtol=0)


def test_stft_matches_numpy_dft_on_one_frame():
    cfg = StftConfig(n_fft=16, hop_length=4, win_length=12, window="hamming", center=False)
    x = _signal((40,), torch.float64)
    X = stft(x, cfg)
    w = np.zeros(16)
    n = np.arange(12)
    w[2:14] = 0.54 - 0.46 * np.cos(2 * np.pi * n / 12)  # periodic hamming, centred in n_fft
    frame = x.numpy()[8:24] * w  # frame 2 starts at 2 * hop
    np.testing.assert_allclose(X[:, 2].numpy(), np.fft.rfft(frame), atol=1e-12)


@pytest.mark.parametrize(
    "cfg",
    [
        StftConfig(),
        StftConfig(window="hamming", n_fft=320, win_length=320, hop_length=100),
        StftConfig(window="sqrt-hann", n_fft=512, win_length=512, hop_length=256),
        StftConfig(window="rectangular", n_fft=512, win_length=400, hop_length=200),
        StftConfig(window="hann", n_fft=1024, win_length=1024, hop_length=64),
        StftConfig(window="hann", n_fft=256, win_length=200, hop_length=50, sample_rate=8000),
    ],
    ids=["default", "hamming-320-100", "sqrt-hann-50pct", "rect-50pct", "hann-1024-94pct", "hann-8k"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stft_istft_round_trip(cfg, dtype):
    x = _signal((2, 12345), dtype)  # length not a multiple of the hop
    y = istft(stft(x, cfg), cfg, length=x.shape[-1])
    assert y.shape == x.shape and y.dtype == dtype
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_rectangular_window_without_overlap_round_trips():
    # Hop = window: every sample is covered once, as long as the last frame reaches the end.
    cfg = StftConfig(window="rectangular", n_fft=512, win_length=400, hop_length=400)
    x = _signal((16000,))
    torch.testing.assert_close(istft(stft(x, cfg), cfg, length=16000), x, atol=1e-6, rtol=0)


def test_istft_without_length_gives_whole_frames():
    cfg = StftConfig()
    x = _signal((16000,))
    y = istft(stft(x, cfg), cfg)
    assert y.shape == (16000,)  # (N - 1) * hop with N = 101
    torch.testing.assert_close(y, x, atol=1e-6, rtol=0)


def test_stft_accepts_numpy():
    x = _signal((4000,)).numpy()
    torch.testing.assert_close(stft(x), stft(torch.from_numpy(x)))


def test_windows_are_periodic_forms():
    n = 8
    k = torch.arange(n, dtype=torch.float64)
    hann = 0.5 - 0.5 * torch.cos(2 * math.pi * k / n)
    torch.testing.assert_close(F.make_window("hann", n, torch.float64), hann)
    torch.testing.assert_close(F.make_window("sqrt-hann", n, torch.float64), hann.sqrt())
    torch.testing.assert_close(F.make_window("hamming", n, torch.float64), 0.54 - 0.46 * torch.cos(2 * math.pi * k / n))
    torch.testing.assert_close(F.make_window("rectangular", n, torch.float64), torch.ones(n, dtype=torch.float64))


def test_bad_stft_configs_raise():
    with pytest.raises(ConfigError, match="window"):
        StftConfig(window="blackman")
    with pytest.raises(ConfigError, match="win_length"):
        StftConfig(n_fft=256, win_length=400)
    with pytest.raises(ConfigError, match="hop_length"):
        StftConfig(hop_length=0)
    with pytest.raises(ConfigError, match="too short"):
        stft(torch.zeros(100), StftConfig())
    cfg = StftConfig(window="hann", n_fft=400, win_length=400, hop_length=400)  # hann zeros meet: NOLA fails
    with pytest.raises(ConfigError, match="NOLA"):
        istft(stft(_signal((4000,)), cfg), cfg)
    with pytest.raises(ConfigError, match="complex"):
        istft(torch.zeros(257, 10), StftConfig())


# --- mel -------------------------------------------------------------------------------------------------


def test_mel_scale_values():
    # Slaney: 200/3 Hz per mel up to 1 kHz (15 mels), then 27 mels per factor 6.4.
    np.testing.assert_allclose(F.hz_to_mel([0.0, 500.0, 1000.0, 6400.0]), [0.0, 7.5, 15.0, 42.0], atol=1e-12)
    np.testing.assert_allclose(F.hz_to_mel(1000.0, htk=True), 999.9855371396, atol=1e-9)
    f = np.array([0.0, 20.0, 999.0, 1000.0, 3000.0, 8000.0])
    np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(f)), f, atol=1e-9)
    np.testing.assert_allclose(F.mel_to_hz(F.hz_to_mel(f, htk=True), htk=True), f, atol=1e-9)


def test_mel_filterbank_first_filter_by_hand():
    # 16 kHz, n_fft 800 (bins every 20 Hz), 80 mels from 0 to 8 kHz: corners at k * mel(8000) / 81 mels;
    # the first three corners are below 1 kHz, so in Hz they are k * step * 200 / 3.
    step_hz = (15.0 + 27.0 * math.log(8.0) / math.log(6.4)) / 81 * 200.0 / 3.0
    lo, centre, hi = 0.0, step_hz, 2 * step_hz
    area = 2.0 / (hi - lo)
    fb = mel_filterbank(16000, 800, 80)
    assert fb.shape == (80, 401) and fb.dtype == torch.float32
    assert fb[0, 1].item() == pytest.approx((20.0 - lo) / (centre - lo) * area, rel=1e-6)
    assert fb[0, 2].item() == pytest.approx((hi - 40.0) / (hi - centre) * area, rel=1e-6)
    assert fb[0, 0].item() == 0.0 and torch.all(fb[0, 4:] == 0)


def test_mel_filterbank_matches_librosa_values():
    # Reference values from librosa 0.11.0: librosa.filters.mel(sr=16000, n_fft=800, n_mels=80).
    fb = mel_filterbank(16000, 800, 80, fmin=0.0, fmax=None, htk=False, norm="slaney")
    ref = {
        (0, 1): 0.014422118663787842,
        (0, 2): 0.02486259490251541,
        (20, 38): 0.010972199961543083,
        (20, 39): 0.025394320487976074,
        (20, 40): 0.013890394009649754,
        (40, 83): 0.0007488747942261398,
        (40, 86): 0.014735566452145576,
        (60, 185): 0.006451246328651905,
        (60, 192): 0.0007978491485118866,
        (79, 390): 0.0022437951993197203,
        (79, 399): 0.00022437950246967375,
    }
    for (i, j), v in ref.items():
        assert fb[i, j].item() == pytest.approx(v, rel=1e-5, abs=1e-9), (i, j)
    assert [int(j) for j in torch.nonzero(fb[40]).flatten()] == list(range(83, 90))
    # librosa.filters.mel(sr=16000, n_fft=512, n_mels=40, fmin=55, fmax=7600, htk=True, norm=None)
    htk = mel_filterbank(16000, 512, 40, fmin=55.0, fmax=7600.0, htk=True, norm=None)
    ref_htk = {(0, 2): 0.1649751216173172, (0, 3): 0.8523714542388916, (0, 4): 0.49088776111602783,
               (20, 60): 0.9824938178062439, (20, 65): 0.00977746956050396, (39, 228): 0.9918810129165649}
    for (i, j), v in ref_htk.items():
        assert htk[i, j].item() == pytest.approx(v, rel=1e-5), (i, j)
    assert htk.max().item() <= 1.0


def test_slaney_norm_gives_equal_area_triangles():
    # With a fine frequency grid the Riemann sum of every Slaney-normalised triangle is ~1 (in Hz).
    sr, n_fft = 16000, 1 << 16
    fb = mel_filterbank(sr, n_fft, 40, fmin=100.0, fmax=7000.0).double()
    area = fb.sum(dim=1) * sr / n_fft
    torch.testing.assert_close(area, torch.ones(40, dtype=torch.float64), atol=2e-3, rtol=0)


def test_mel_filterbank_bad_args():
    with pytest.raises(ConfigError):
        mel_filterbank(16000, 800, 80, fmin=4000.0, fmax=3000.0)
    with pytest.raises(ConfigError):
        mel_filterbank(16000, 800, 80, fmax=9000.0)
    with pytest.raises(ConfigError):
        mel_filterbank(16000, 800, 80, norm="area")


def test_mel_config_defaults():
    cfg = MelConfig()
    assert (cfg.sample_rate, cfg.win_length, cfg.hop_length, cfg.n_fft, cfg.n_mels) == (16000, 800, 200, 800, 80)
    assert cfg.stft == StftConfig(16000, 800, 200, 800, "hann", True)


def _librosa_input() -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, 8000).astype(np.float32))


def test_mel_spectrogram_matches_librosa_values():
    # librosa.feature.melspectrogram(y=x, sr=16000, n_fft=800, hop_length=200, win_length=800, n_mels=80,
    # pad_mode="reflect") on x = default_rng(0).uniform(-1, 1, 8000) as float32 (librosa 0.11.0).
    mel = mel_spectrogram(_librosa_input())
    assert mel.shape == (80, 41)
    ref = {(0, 0): 2.8255181312561035, (10, 5): 2.268763542175293, (40, 20): 2.6385650634765625, (79, 40): 4.65911340713501}
    for (k, n), v in ref.items():
        assert mel[k, n].item() == pytest.approx(v, rel=1e-4), (k, n)


def test_mel_spectrogram_is_filterbank_times_power_and_log_option():
    x = _signal((2, 4000), torch.float64)
    cfg = MelConfig(n_mels=20, fmin=50.0, fmax=7000.0)
    power = stft(x, cfg.stft).abs() ** 2
    fb = mel_filterbank(16000, 800, 20, 50.0, 7000.0).double()
    mel = mel_spectrogram(x, cfg)
    assert mel.shape == (2, 20, 21) and mel.dtype == torch.float64
    torch.testing.assert_close(mel, fb @ power)
    logmel = mel_spectrogram(x, MelConfig(n_mels=20, fmin=50.0, fmax=7000.0, log=True, log_floor=1e-5))
    torch.testing.assert_close(logmel, torch.log(torch.clamp(fb @ power, min=1e-5)))
    silent = mel_spectrogram(torch.zeros(4000), MelConfig(log=True, log_floor=1e-5))
    torch.testing.assert_close(silent, torch.full_like(silent, math.log(1e-5)))


def test_dct_matrix_is_orthonormal_and_matches_scipy():
    d = F.dct_matrix(80, 80, torch.float64)
    torch.testing.assert_close(d @ d.T, torch.eye(80, dtype=torch.float64))
    v = np.random.default_rng(1).normal(size=80)
    np.testing.assert_allclose((F.dct_matrix(13, 80, torch.float64) @ torch.from_numpy(v)).numpy(),
                               scipy.fft.dct(v, type=2, norm="ortho")[:13], atol=1e-12)


def test_mfcc_shape_recipe_and_librosa_values():
    x = _librosa_input()
    m = mfcc(x)
    assert m.shape == (13, 41) and m.dtype == torch.float32
    # librosa.feature.mfcc(y=x, sr=16000, n_mfcc=13, n_fft=800, hop_length=200, win_length=800, n_mels=80,
    # pad_mode="reflect"), librosa 0.11.0
    ref = {(0, 0): 52.21430969238281, (1, 10): -7.223264694213867, (5, 20): -3.6485443115234375, (12, 40): -5.517248153686523}
    for (k, n), v in ref.items():
        assert m[k, n].item() == pytest.approx(v, abs=1e-3), (k, n)
    # The recipe, spelled out with scipy on a batch: each item floored at its own max - 80 dB.
    xb = torch.stack([x.double(), 0.001 * x.double()])
    db = 10 * np.log10(np.maximum(mel_spectrogram(xb).numpy(), 1e-10))
    db = np.maximum(db, db.max(axis=(-2, -1), keepdims=True) - 80.0)
    expected = scipy.fft.dct(db, type=2, norm="ortho", axis=-2)[:, :20]
    np.testing.assert_allclose(mfcc(xb, n_mfcc=20).numpy(), expected, atol=1e-9)
    with pytest.raises(ConfigError):
        mfcc(x, n_mfcc=81)


# --- SpecAugment -------------------------------------------------------------------------------------------


def _runs(mask: torch.Tensor) -> list[tuple[int, int]]:
    """Contiguous True runs of a 1-D bool mask as (start, length)."""
    runs, start = [], None
    for i, v in enumerate(mask.tolist() + [False]):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - start))
            start = None
    return runs


def test_spec_augment_masks_respect_count_width_and_bounds():
    g = torch.Generator().manual_seed(123)
    fm, tm = F.spec_augment_masks((500, 80, 100), freq_masks=1, freq_width=10, time_masks=1, time_width=7, generator=g)
    assert fm.shape == (500, 80) and tm.shape == (500, 100) and fm.dtype == torch.bool
    widths_f = fm.sum(dim=1)
    widths_t = tm.sum(dim=1)
    assert widths_f.max() <= 10 and widths_t.max() <= 7
    assert set(widths_f.tolist()) == set(range(11))  # every width 0..W occurs over 500 draws
    for row in list(fm[:50]) + list(tm[:50]):
        assert len(_runs(row)) <= 1  # one mask = one contiguous band
    # the bands reach both ends of the axis sometimes, and never go past them (shape is fixed)
    assert fm[:, 0].any() and fm[:, -1].any()
    fm3, tm3 = F.spec_augment_masks((300, 80, 100), freq_masks=3, freq_width=5, time_masks=2, time_width=4, generator=g)
    assert fm3.sum(dim=1).max() <= 15 and tm3.sum(dim=1).max() <= 8
    assert max(len(_runs(r)) for r in fm3) <= 3 and max(len(_runs(r)) for r in tm3) <= 2
    assert max(len(_runs(r)) for r in fm3) == 3


def test_spec_augment_applies_masks_and_keeps_input():
    spec = torch.rand(4, 2, 40, 60, generator=torch.Generator().manual_seed(0)) + 1.0  # > 0 everywhere
    before = spec.clone()
    out = spec_augment(spec, freq_masks=2, freq_width=8, time_masks=2, time_width=10,
                       generator=torch.Generator().manual_seed(7), value=-1.0)
    torch.testing.assert_close(spec, before, rtol=0, atol=0)  # input untouched
    fm, tm = F.spec_augment_masks(spec.shape, 2, 8, 2, 10, generator=torch.Generator().manual_seed(7))
    mask = fm[..., :, None] | tm[..., None, :]  # [4, 2, 40, 60]
    assert torch.equal(out == -1.0, mask)
    assert torch.equal(out[~mask], spec[~mask])
    assert mask.any() and not mask.all()
    # masked frequency rows span the whole time axis and vice versa
    for b in range(4):
        for c in range(2):
            rows = fm[b, c].nonzero().flatten()
            assert torch.all(out[b, c, rows] == -1.0)


def test_spec_augment_is_deterministic_with_a_seed():
    spec = torch.ones(3, 80, 200)
    a = spec_augment(spec, generator=torch.Generator().manual_seed(42))
    b = spec_augment(spec, generator=torch.Generator().manual_seed(42))
    c = spec_augment(spec, generator=torch.Generator().manual_seed(43))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # every spectrogram of a batch draws its own masks


def test_spec_augment_edge_cases():
    spec = torch.ones(5, 6)
    assert torch.equal(spec_augment(spec, 0, 10, 0, 10), spec)  # no masks
    out = spec_augment(spec, 1, 100, 1, 100, generator=torch.Generator().manual_seed(0))  # widths capped to the axes
    assert out.shape == (5, 6)
    with pytest.raises(ConfigError):
        spec_augment(torch.ones(10), 1, 2, 1, 2)
    with pytest.raises(ConfigError):
        spec_augment(spec, -1, 2, 1, 2)


def _pulse_voice(n: int, rng: np.random.Generator, f0: float) -> np.ndarray:
    """A buzz at a gliding pitch (an impulse train through two formant resonances), on for 0.3 s in every 0.5 s."""
    from scipy.signal import lfilter

    f = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * np.arange(n) / 16000 + rng.uniform(0, 6)))
    phase = np.cumsum(f / 16000)
    x = (np.diff(np.floor(phase), prepend=0) > 0).astype(np.float64)
    for fc in (500.0, 1500.0):
        r, w = 0.97, 2 * np.pi * fc / 16000
        x = lfilter([1.0], [1, -2 * r * np.cos(w), r * r], x)
    on = (np.arange(n) % 8000) < 4800
    return x * on


def test_voiced_fraction_tells_one_voice_from_noise_and_babble():
    rng = np.random.default_rng(0)
    n = 3 * 16000
    voice = F.voiced_fraction(_pulse_voice(n, rng, 120.0) + 0.01 * rng.standard_normal(n))
    noise = F.voiced_fraction(rng.standard_normal(n))
    babble = F.voiced_fraction(sum(_pulse_voice(n, rng, f0) for f0 in (95, 110, 130, 150, 175, 205, 230, 260)))
    assert voice > 0.8 and noise < 0.05
    assert babble < voice - 0.3  # many voices at once are no one voice
    assert F.voiced_fraction(np.zeros(n)) == 0.0 and F.voiced_fraction(np.ones(100)) == 0.0  # silent, too short
    whole = F.voiced_fraction(_pulse_voice(n, np.random.default_rng(1), 150.0))
    assert F.voiced_fraction(_pulse_voice(n, np.random.default_rng(1), 150.0), block=7) == whole  # blocks: same answer
    with pytest.raises(ConfigError):
        F.voiced_fraction(np.zeros((2, n)))
    with pytest.raises(ConfigError):
        F.voiced_fraction(np.zeros(n), min_pitch_hz=300.0, max_pitch_hz=200.0)
