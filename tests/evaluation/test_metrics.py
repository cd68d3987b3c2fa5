"""Tests for avse.evaluation.metrics: exact SI-SDR math, BSS Eval against mir_eval, PESQ/STOI wrappers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avse.audio.io import resample
from avse.errors import ConfigError
from avse.evaluation import metrics as M

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
SPEECH = sorted((REAL / "speech").glob("*.wav")) if (REAL / "speech").is_dir() else []
NOISE = REAL / "noise" / "doing_the_dishes.wav"
needs_real = pytest.mark.skipif(
    not (len(SPEECH) >= 4 and NOISE.is_file()), reason="no real clips in ../shared/data/real"
)

# BSS Eval tolerance (dB) against mir_eval.separation.bss_eval_sources. mir_eval (v3) and
# fast-bss-eval / our numpy form (v4 style) solve the same whole-signal least-squares
# problem with a 512-tap filter (for sources, v3 and v4 only differ when metrics are framed);
# they differ only in rounding (FFT sizes, solver). Measured on real speech: <= 1e-11 dB.
# 1e-6 dB leaves room for other BLAS/FFT builds while still catching any change of method.
BSS_TOL_DB = 1e-6


def _zero_mean(x: np.ndarray) -> np.ndarray:
    return x - x.mean()


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    """3 s of two CMU ARCTIC talkers and kitchen noise, float64 at 16 kHz."""
    import soundfile as sf

    s1, sr1 = sf.read(SPEECH[0])
    s2, sr2 = sf.read(SPEECH[3])
    noise, srn = sf.read(NOISE)
    assert sr1 == sr2 == srn == 16000
    t = min(len(s1), len(s2), 48000)
    s1, s2, noise = s1[:t], s2[:t], noise[16000 : 16000 + t]
    noise = noise * np.std(s1) / np.std(noise)  # 0 dB
    return {"s1": s1, "s2": s2, "noise": noise}


# --------------------------------------------------------------------------- SI-SDR


def test_si_sdr_scaled_reference_is_inf_or_huge():
    rng = np.random.default_rng(0)
    ref = rng.standard_normal(1000)
    assert M.si_sdr(2.0 * ref, ref) == np.inf  # scaling by 2 is exact: the residual is exactly 0
    assert M.si_sdr(-2.0 * ref, ref) == np.inf
    assert M.si_sdr(0.3 * ref, ref) > 200.0  # rounding noise only


def test_si_sdr_analytic_value_with_orthogonal_noise():
    rng = np.random.default_rng(1)
    ref = _zero_mean(rng.standard_normal(4000))
    noise = _zero_mean(rng.standard_normal(4000))
    noise -= (noise @ ref) / (ref @ ref) * ref  # orthogonal to ref and still zero-mean
    noise *= 0.1
    a = 0.7
    expected = 10 * np.log10(a**2 * (ref @ ref) / (noise @ noise))
    assert abs(float(M.si_sdr(a * ref + noise, ref)) - expected) < 1e-6
    # SI-SDRi of ref + 0.1 n over the mixture ref + n is exactly 20 dB
    assert abs(float(M.si_sdr_improvement(ref + 0.1 * noise, ref + noise, ref)) - 20.0) < 1e-6


def test_si_sdr_scale_and_offset_invariance_and_batch_shape():
    rng = np.random.default_rng(2)
    ref = rng.standard_normal((2, 3, 800))
    est = ref + 0.5 * rng.standard_normal((2, 3, 800))
    base = M.si_sdr(est, ref)
    assert base.shape == (2, 3)
    loop = np.array([[float(M.si_sdr(est[i, j], ref[i, j])) for j in range(3)] for i in range(2)])
    np.testing.assert_allclose(base, loop, rtol=0, atol=1e-12)
    np.testing.assert_allclose(M.si_sdr(3.7 * est, ref), base, rtol=0, atol=1e-9)
    np.testing.assert_allclose(M.si_sdr(est, 0.01 * ref), base, rtol=0, atol=1e-9)
    np.testing.assert_allclose(M.si_sdr(est + 5.0, ref - 2.0), base, rtol=0, atol=1e-9)  # zero_mean
    assert np.all(M.si_sdr(est + 5.0, ref, zero_mean=False) < base)


def test_si_sdr_accepts_float32():
    rng = np.random.default_rng(3)
    ref = rng.standard_normal(500).astype(np.float32)
    est = ref + 0.1 * rng.standard_normal(500).astype(np.float32)
    assert M.si_sdr(est, ref).dtype == np.float64
    assert float(M.si_sdr(est, ref)) == pytest.approx(float(M.si_sdr(est.astype(np.float64), ref.astype(np.float64))))


# --------------------------------------------------------------------------- BSS Eval


def _mixing_case(s1: np.ndarray, s2: np.ndarray, noise: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """references [2, T] and estimates [2, T] with filtering, leakage and noise."""
    from scipy.signal import lfilter

    refs = np.stack([s1, s2])
    ests = np.stack([lfilter([1.0, 0.5, -0.2], [1.0], s1) + 0.3 * s2 + 0.1 * noise, 0.8 * s2 + 0.25 * s1 + 0.2 * noise])
    return refs, ests


def _check_against_mir_eval(refs: np.ndarray, ests: np.ndarray) -> None:
    mir_eval = pytest.importorskip("mir_eval")
    want = mir_eval.separation.bss_eval_sources(refs, ests, compute_permutation=False)[:3]
    backends = ["numpy"]
    try:
        import fast_bss_eval  # noqa: F401

        backends.append("fast_bss_eval")
    except ImportError:
        pass
    for backend in backends:
        got = M.sdr_sir_sar(ests, refs, backend=backend)
        for key, ref_value in zip(("sdr", "sir", "sar"), want):
            assert got[key].shape == (2,)
            np.testing.assert_allclose(got[key], ref_value, rtol=0, atol=BSS_TOL_DB, err_msg=f"{backend} {key}")


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_bss_eval_matches_mir_eval_synthetic():
    rng = np.random.default_rng(4)
    s1, s2, noise = (rng.standard_normal(4000) for _ in range(3))
    _check_against_mir_eval(*_mixing_case(s1, s2, noise))


@needs_real
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_bss_eval_matches_mir_eval_real_speech(real):
    _check_against_mir_eval(*_mixing_case(real["s1"], real["s2"], real["noise"]))


def test_bss_eval_single_source_and_order():
    rng = np.random.default_rng(5)
    ref = rng.standard_normal(3000)
    est = ref + 0.1 * rng.standard_normal(3000)
    for backend in ("numpy", "auto"):
        out = M.sdr_sir_sar(est, ref, backend=backend)
        assert out["sir"][0] == np.inf
        assert out["sdr"][0] == pytest.approx(out["sar"][0], abs=1e-9)
    # estimates scored in the order given: swapping them swaps (and lowers) the scores
    refs = np.stack([ref, rng.standard_normal(3000)])
    ests = refs + 0.1 * rng.standard_normal((2, 3000))
    good = M.sdr_sir_sar(ests, refs, backend="numpy")["sdr"]
    bad = M.sdr_sir_sar(ests[::-1], refs, backend="numpy")["sdr"]
    assert np.all(good > 15) and np.all(bad < 0)


# --------------------------------------------------------------------------- PESQ / STOI


@needs_real
def test_pesq_stoi_equal_the_packages(real):
    import pesq
    from pystoi import stoi

    ref = real["s1"]
    est = ref + 0.3 * real["noise"]
    assert M.pesq_wb(est, ref) == pesq.pesq(16000, ref, est, "wb")
    ref8, est8 = resample(ref, 16000, 8000), resample(est, 16000, 8000)
    assert M.pesq_nb(est, ref) == pesq.pesq(8000, ref8, est8, "nb")
    assert M.pesq_nb(est8, ref8, sr=8000) == pesq.pesq(8000, ref8, est8, "nb")
    assert M.stoi(est, ref) == stoi(ref, est, 16000, extended=False)
    # pystoi's ESTOI itself varies by 1 ulp from call to call on the same input (alignment-
    # dependent SIMD sums), so "the package's output" is only defined to ~1e-15
    assert M.estoi(est, ref) == pytest.approx(stoi(ref, est, 16000, extended=True), rel=1e-12)


@needs_real
def test_metrics_order_clean_over_noisy(real):
    ref = real["s1"]
    light, heavy = ref + 0.1 * real["noise"], ref + real["noise"]
    for name in ("pesq_wb", "pesq_nb", "stoi", "estoi", "si_sdr"):
        fn = getattr(M, name)
        clean, lo, hi = float(fn(ref * 0.5, ref)), float(fn(light, ref)), float(fn(heavy, ref))
        assert clean > lo > hi, name
    assert M.pesq_wb(ref, ref) > 4.5 and M.stoi(ref, ref) == pytest.approx(1.0)


@needs_real
def test_evaluate_pair_matches_single_metrics(real):
    ref = real["s1"]
    mix = ref + real["noise"]
    est = ref + 0.2 * real["noise"]
    out = M.evaluate_pair(est, ref, mix)
    assert list(out) == list(M.DEFAULT_METRICS)
    assert all(isinstance(v, float) for v in out.values())
    assert out["si_sdr"] == float(M.si_sdr(est, ref))
    assert out["si_sdri"] == float(M.si_sdr_improvement(est, mix, ref))
    assert out["pesq_wb"] == M.pesq_wb(est, ref) and out["stoi"] == M.stoi(est, ref)
    assert out["estoi"] == pytest.approx(M.estoi(est, ref), rel=1e-12)  # pystoi: 1-ulp jitter
    only = M.evaluate_pair(est, ref, None, metrics=("stoi", "sdr"))
    assert list(only) == ["stoi", "sdr"] and only["stoi"] == out["stoi"]


def test_evaluate_pair_synthetic_without_pesq():
    rng = np.random.default_rng(6)
    ref = rng.standard_normal(16000)
    est = ref + 0.1 * rng.standard_normal(16000)
    out = M.evaluate_pair(est, ref, ref + rng.standard_normal(16000), metrics=("si_sdr", "si_sdri", "sdr"))
    assert out["si_sdr"] == pytest.approx(20.0, abs=0.3)
    assert out["si_sdri"] == pytest.approx(20.0, abs=0.5)
    assert out["sdr"] == pytest.approx(out["si_sdr"], abs=0.5)


# --------------------------------------------------------------------------- errors


def test_errors():
    rng = np.random.default_rng(7)
    x = rng.standard_normal(16000)
    y = x + 0.1 * rng.standard_normal(16000)
    with pytest.raises(ConfigError, match="shape"):
        M.si_sdr(x[:-1], x)
    with pytest.raises(ConfigError, match="at least one sample"):
        M.si_sdr(np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError, match="silent"):
        M.si_sdr(x, np.zeros_like(x))
    with pytest.raises(ConfigError, match="silent"):
        M.stoi(np.zeros_like(x), x)
    with pytest.raises(ConfigError, match="NaN"):
        M.si_sdr(np.full_like(x, np.nan), x)
    with pytest.raises(ConfigError, match="sample rate"):
        M.pesq_wb(y, x, sr=8000)
    with pytest.raises(ConfigError, match="sample rate"):
        M.pesq_nb(y, x, sr=44100)
    with pytest.raises(ConfigError, match="sample rate"):
        M.stoi(y, x, sr=0)
    with pytest.raises(ConfigError, match=r"\[T\]"):
        M.pesq_wb(np.stack([y, y]), np.stack([x, x]))
    with pytest.raises(ConfigError, match="PESQ"):
        M.pesq_wb(y[:1000], x[:1000])  # 62 ms: too short for PESQ
    with pytest.raises(ConfigError, match="512-tap"):
        M.sdr_sir_sar(y[:100], x[:100])
    with pytest.raises(ConfigError, match="silent"):
        M.sdr_sir_sar(np.stack([y, y]), np.stack([x, np.zeros_like(x)]))
    with pytest.raises(ConfigError, match="backend"):
        M.sdr_sir_sar(y, x, backend="museval")
    with pytest.raises(ConfigError, match="unknown metrics"):
        M.evaluate_pair(y, x, x, metrics=("pesq",))
    with pytest.raises(ConfigError, match="mixture"):
        M.evaluate_pair(y, x, None, metrics=("si_sdri",))
    with pytest.raises(ConfigError, match="mixture shape"):
        M.evaluate_pair(y, x, x[:-5], metrics=("si_sdri",))
