"""Tests of phones -> visemes -> lip trajectories and of the mouth-opening measure."""

from __future__ import annotations

import numpy as np
import pytest

from avse.data.visemes import (
    BILABIALS,
    JAW,
    OPEN,
    PHONES,
    ROUND,
    SPREAD,
    K,
    closure_envelope,
    lip_trajectory,
    normalize_phone,
    phone_targets,
    phone_to_viseme,
    viseme_targets,
)
from avse.errors import ConfigError
from avse.video.landmarks import LIP_INDEX, mouth_opening

CONTRACT_PHONES = (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh pau"
).split()
VOWELS = "aa ae ah ao aw ay eh er ey ih iy ow oy uh uw".split()
CONSONANTS = [p for p in CONTRACT_PHONES if p not in VOWELS and p != "pau"]


def _phones(seq: list[tuple[str, float]], t0: float = 0.0) -> list[tuple[str, float, float]]:
    out, t = [], t0
    for sym, dur in seq:
        out.append((sym, t, t + dur))
        t += dur
    return out


def random_utterance(rng: np.random.Generator) -> list[tuple[str, float, float]]:
    """Words of (C)(C)V syllables with TTS-like durations, pauses at both ends and sometimes inside."""
    seq = [("pau", rng.uniform(0.1, 0.5))]
    for _ in range(rng.integers(4, 10)):
        for _ in range(rng.integers(1, 4)):
            seq += [(str(rng.choice(CONSONANTS)), rng.uniform(0.04, 0.11)) for _ in range(rng.integers(0, 3))]
            seq.append((str(rng.choice(VOWELS)), rng.uniform(0.06, 0.22)))
        if rng.random() < 0.5:
            seq.append((str(rng.choice(CONSONANTS)), rng.uniform(0.04, 0.11)))
        if rng.random() < 0.15:
            seq.append(("pau", rng.uniform(0.1, 0.4)))
    seq.append(("pau", rng.uniform(0.1, 0.5)))
    return _phones(seq)


def fake_energy(phones: list[tuple[str, float, float]], n: int, fps: float = 25.0) -> np.ndarray:
    """Per-frame 'speech energy' [n]: vowels 1, sonorants 0.45, fricatives 0.3, stops 0.15, pau 0.01,
    averaged over each frame's span [i / fps, (i + 1) / fps) like an RMS over the frame's samples."""
    level = {p: 1.0 for p in VOWELS} | {p: 0.15 for p in CONSONANTS} | {"pau": 0.01}
    level |= {p: 0.45 for p in "m n ng l r w y".split()} | {p: 0.3 for p in "s z sh zh f v th dh ch jh".split()}
    e = np.zeros(n)
    for sym, a, b in phones:
        for i in range(max(0, int(a * fps)), min(n, int(b * fps) + 1)):
            e[i] += max(0.0, min(b, (i + 1) / fps) - max(a, i / fps)) * fps * level[sym]
    return e


def lagged_corr(x: np.ndarray, y: np.ndarray, max_lag: int = 5) -> dict[int, float]:
    """Pearson r of x[i + lag] with y[i] for lag in [-max_lag, max_lag]."""
    out = {}
    for lag in range(-max_lag, max_lag + 1):
        a, b = (x[lag:], y[: len(y) - lag]) if lag >= 0 else (x[:lag], y[-lag:])
        out[lag] = float(np.corrcoef(a, b)[0, 1])
    return out


def test_lip_index_is_the_contract():
    outer = [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]
    inner = [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415]
    assert LIP_INDEX.tolist() == outer + inner


def test_every_contract_phone_has_targets():
    assert sorted(PHONES) == sorted(CONTRACT_PHONES)
    for p in CONTRACT_PHONES:
        t = phone_targets(p)
        assert t.shape == (K,) and t.dtype == np.float32
        assert np.all(t >= 0) and np.all(t <= 1)


def test_normalize_phone():
    assert normalize_phone("AA1") == "aa"
    assert normalize_phone("sil") == "pau"
    assert normalize_phone(" ZH ") == "zh"
    with pytest.raises(ConfigError):
        normalize_phone("qx")
    with pytest.raises(ConfigError):
        viseme_targets("nope")


def test_viseme_classes_have_the_right_shapes():
    for p in BILABIALS:
        assert phone_to_viseme(p) == "PP" and phone_targets(p)[OPEN] == 0.0
    assert phone_targets("pau")[OPEN] == 0.0
    assert phone_to_viseme("f") == phone_to_viseme("v") == "FF"
    assert phone_to_viseme("ay") == "AA"  # diphthong: open first
    open_vowels = [phone_targets(p)[OPEN] for p in ("aa", "ae")]
    assert min(open_vowels) > max(phone_targets(p)[OPEN] for p in ("iy", "uw", "f", "s", "t"))
    for p in ("uw", "w"):  # rounded: protruded and not spread
        assert phone_targets(p)[ROUND] > 0.9 and phone_targets(p)[SPREAD] < 0.1
    assert phone_targets("iy")[SPREAD] > 0.9


def test_trajectory_shape_dtype_and_edge_cases():
    ph = _phones([("pau", 0.2), ("aa", 0.2), ("pau", 0.2)])
    tr = lip_trajectory(ph, 15)
    assert tr.shape == (15, K) and tr.dtype == np.float32
    assert lip_trajectory(ph, 0).shape == (0, K)
    rest = lip_trajectory([], 4)
    assert rest.shape == (4, K) and np.all(rest[:, OPEN] == 0)
    far = lip_trajectory(ph, 500)  # frames long after the last phone: the final pause's shape
    assert np.all(np.isfinite(far)) and far[-1, OPEN] == 0
    with pytest.raises(ConfigError):
        lip_trajectory(ph, -1)
    with pytest.raises(ConfigError):
        lip_trajectory([("aa", 0.3, 0.2)], 5)


def test_deterministic():
    ph = random_utterance(np.random.default_rng(3))
    n = int(np.ceil(ph[-1][2] * 25))
    np.testing.assert_array_equal(lip_trajectory(ph, n), lip_trajectory(ph, n))
    a = lip_trajectory(ph, n, rng=np.random.default_rng(1))
    b = lip_trajectory(ph, n, rng=np.random.default_rng(1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, lip_trajectory(ph, n, rng=np.random.default_rng(2)))


def test_long_vowel_reaches_its_target_and_pause_is_closed():
    ph = _phones([("pau", 0.4), ("aa", 0.4), ("pau", 0.4)])
    tr = lip_trajectory(ph, 30)
    assert tr[15, OPEN] == pytest.approx(1.0, abs=0.01)  # frame 15 centre = 0.62 s, inside 'aa'
    assert tr[15, JAW] == pytest.approx(1.0, abs=0.01)
    assert tr[2, OPEN] == pytest.approx(0.0, abs=1e-3) and tr[-2, OPEN] == pytest.approx(0.0, abs=1e-3)


@pytest.mark.parametrize("offset", [0.0, 0.01, 0.02, 0.03])
def test_short_bilabial_always_closes_a_frame(offset):
    # a 30 ms /b/ between open vowels, at several offsets relative to the frame grid
    ph = _phones([("pau", 0.2), ("aa", 0.2), ("b", 0.03), ("aa", 0.2), ("pau", 0.2)], t0=0.0)
    ph = [(s, a + offset, b + offset) for s, a, b in ph]
    ph[0] = ("pau", 0.0, ph[0][2])
    tr = lip_trajectory(ph, 25, rng=np.random.default_rng(0))
    opening = tr[:, OPEN]
    assert opening.min() == 0.0
    b_centre = ph[2][1] + 0.015
    closed = np.nonzero(opening == 0.0)[0]
    assert np.min(np.abs((closed + 0.5) / 25 - b_centre)) <= 0.021  # the closed frame is the /b/ one
    assert opening[int((ph[1][1] + 0.1) * 25)] > 0.6 and opening[int((ph[3][1] + 0.1) * 25)] > 0.6


def test_closure_envelope():
    t = (np.arange(10) + 0.5) / 25
    env = closure_envelope([(0.195, 0.205)], t)  # 10 ms, centred between frames 4 and 5
    assert env.max() == 1.0 and env[0] == 0.0 and env[-1] == 0.0
    np.testing.assert_allclose(env, env[::-1])  # symmetric about 0.2 s


def test_symmetric_phones_give_a_symmetric_trajectory():
    # no lag: a palindrome of phones centred on the frame grid gives a palindromic trajectory
    half = [("pau", 0.3), ("m", 0.07), ("aa", 0.16), ("s", 0.09)]
    seq = half + [("uw", 0.12)] + half[::-1]
    ph = _phones(seq)
    n = 34  # 34 frames = 1.36 s = the total duration
    assert ph[-1][2] == pytest.approx(n / 25)
    tr = lip_trajectory(ph, n)
    np.testing.assert_allclose(tr, tr[::-1], atol=1e-5)


def test_opening_follows_fake_speech_energy_without_lag():
    rng = np.random.default_rng(11)
    rs, lags = [], []
    for _ in range(40):
        ph = random_utterance(rng)
        n = int(np.ceil(ph[-1][2] * 25))
        tr = lip_trajectory(ph, n, rng=rng)
        r = lagged_corr(tr[:, OPEN], fake_energy(ph, n))
        rs.append(r[0])
        lags.append(max(r, key=r.get))
    lags = np.array(lags)
    assert np.mean(rs) >= 0.6 and min(rs) >= 0.4
    assert np.mean(lags == 0) >= 0.9 and np.all(np.abs(lags) <= 1)


def test_mouth_opening_exact():
    lips = np.zeros((40, 2))
    lips[0], lips[10] = (0, 0), (10, 0)  # corners 61, 291
    lips[35], lips[25] = (5, -1), (5, 2)  # inner 13 (upper), 14 (lower)
    assert mouth_opening(lips) == pytest.approx(0.3)
    # invariant to rotation, scale and translation; batched
    th = 0.4
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    moved = 2.5 * lips @ rot.T + (30, 40)
    out = mouth_opening(np.stack([lips, moved]))
    assert out.shape == (2,) and out.dtype == np.float32
    np.testing.assert_allclose(out, [0.3, 0.3], rtol=1e-6)
    with pytest.raises(ConfigError):
        mouth_opening(np.zeros((5, 20, 2)))
