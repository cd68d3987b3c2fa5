"""Tests of the lip features: exact values on a hand-made face, invariances, names, synthetic faces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avse.data.face import render_face, style_for_speaker
from avse.data.visemes import JAW, OPEN, ROUND, SPREAD, K
from avse.errors import ConfigError
from avse.video.landmarks import LIP_INDEX, mouth_opening
from avse.video.lipfeat import FEATURE_NAMES, N_FEATURES, clean_frames, eye_frame, lip_features, visual_stream


def _face(n: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """Landmarks of n frames of a synthetic speaker whose lips open, spread and round."""
    traj = np.zeros((n, K), dtype=np.float32)
    rng = np.random.default_rng(seed)
    traj[:, [JAW, OPEN, SPREAD, ROUND]] = rng.uniform(0, 0.6, (n, 4))
    _, lm = render_face(traj, style_for_speaker(seed), size=(64, 64), rng=rng)  # only the landmarks matter
    return {k: lm[k].astype(np.float64) for k in ("lips", "eyes", "nose")}


def _similarity(lm: dict, scale: float, angle_deg: float, shift) -> dict:
    c, s = np.cos(np.deg2rad(angle_deg)) * scale, np.sin(np.deg2rad(angle_deg)) * scale
    a = np.array([[c, -s], [s, c]])
    return {k: v @ a.T + shift for k, v in lm.items()}


def test_names_and_shapes():
    assert N_FEATURES == len(FEATURE_NAMES) == 82 == len(set(FEATURE_NAMES))
    assert FEATURE_NAMES[:2] == (f"lip{LIP_INDEX[0]}_x", f"lip{LIP_INDEX[0]}_y") == ("lip61_x", "lip61_y")
    assert FEATURE_NAMES[-2:] == ("opening", "width")
    lm = _face()
    f = lip_features(lm)
    assert f.shape == (5, 82) and f.dtype == np.float32
    one = lip_features({"lips": lm["lips"][2], "eyes": lm["eyes"][2]})
    assert one.shape == (82,)
    np.testing.assert_allclose(one, f[2], atol=1e-7)
    with pytest.raises(ConfigError):
        lip_features({"lips": lm["lips"]})
    with pytest.raises(ConfigError):
        lip_features({"lips": lm["lips"][:, :20], "eyes": lm["eyes"]})


def test_exact_values_on_a_hand_made_face():
    # an upright face, eye centres at (-20, 0) and (20, 0): inter-ocular distance 40
    eyes = np.array([[-30.0, 0.0], [-10.0, 0.0], [10.0, 0.0], [30.0, 0.0]])
    rng = np.random.default_rng(3)
    lips = rng.normal(0, 6, (40, 2)) + [0.0, 50.0]
    lips[0], lips[10] = (-16.0, 50.0), (16.0, 50.0)  # mouth corners 61, 291: width 32
    f = lip_features({"lips": lips, "eyes": eyes})
    expected = (lips - lips.mean(0)) / 40.0
    np.testing.assert_allclose(f[:80].reshape(40, 2), expected, atol=1e-6)
    assert f[FEATURE_NAMES.index("width")] == pytest.approx(32 / 40)
    assert f[FEATURE_NAMES.index("opening")] == pytest.approx(float(mouth_opening(lips)), abs=1e-7)
    iod, cos, sin = eye_frame(eyes)
    assert (iod, cos, sin) == (40.0, 1.0, 0.0)
    # the same face turned 90 degrees clockwise on screen: the eye line is vertical, features unchanged
    turn = {"lips": lips[:, ::-1] * [-1, 1], "eyes": eyes[:, ::-1] * [-1, 1]}
    assert eye_frame(turn["eyes"])[2] == pytest.approx(1.0)
    np.testing.assert_allclose(lip_features(turn), f, atol=1e-6)


MOVES = [(1.0, 0.0, (137.5, -40.0)), (3.7, 0.0, (0.0, 0.0)), (0.4, 33.0, (5.0, 900.0)), (1.9, -125.0, (-300.0, 12.0)),
         (0.8, 180.0, (64.0, 64.0))]  # (scale, degrees, shift)


@pytest.mark.parametrize("scale, angle, shift", MOVES)
def test_invariant_to_translation_scale_and_rotation(scale, angle, shift):
    lm = _face(8, seed=4)
    f = lip_features(lm)
    g = lip_features(_similarity(lm, scale, angle, np.array(shift)))
    np.testing.assert_allclose(g, f, atol=1e-5, rtol=0)


def test_features_move_with_the_lips_not_the_head():
    lm = _face(6, seed=1)
    f = lip_features(lm)
    assert f[:, FEATURE_NAMES.index("opening")].std() > 0.02  # speech shows
    np.testing.assert_allclose(f[:, :80].reshape(-1, 40, 2).mean(1), 0.0, atol=1e-6)  # mouth centre at the origin
    # the mouth corners lie left and right of the centre on the horizontal eye line
    assert np.all(f[:, FEATURE_NAMES.index("lip61_x")] < -0.2) and np.all(f[:, FEATURE_NAMES.index("lip291_x")] > 0.2)
    # a non-finite frame gives NaN where it reaches, the other frames are untouched
    bad = {k: v.copy() for k, v in lm.items()}
    bad["eyes"][3, 0, 0] = np.nan
    g = lip_features(bad)
    assert np.isnan(g[3, :80]).all() and np.isnan(g[3, -1]) and not np.isnan(g[3, -2])
    np.testing.assert_array_equal(np.delete(g, 3, 0), np.delete(f, 3, 0))


# --------------------------------------------------------------------------- one visual stream for training and inference

REAL_GRID = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "grid"


def test_one_gap_policy_zeroes_whole_frames():
    f = np.arange(12, dtype=np.float32).reshape(3, 4)
    f[1, 2] = np.nan
    f[2, 0] = np.inf
    clean, valid = clean_frames(f)
    assert clean.dtype == np.float32 and valid.tolist() == [True, False, False]
    np.testing.assert_array_equal(clean, [[0, 1, 2, 3], [0, 0, 0, 0], [0, 0, 0, 0]])
    lm = _face(6, seed=2)
    lm["eyes"][4, 1, 1] = np.nan  # reaches some columns only: the whole frame goes
    stream, ok = visual_stream(lm)
    assert not ok[4] and ok.sum() == 5 and not stream[4].any()
    np.testing.assert_array_equal(np.delete(stream, 4, 0), np.delete(lip_features(lm), 4, 0))


def test_training_and_inference_give_the_same_stream_for_a_frame_without_face(tiny_corpus, tmp_path):
    from avse.api import Enhancer
    from avse.data.datasets import target_lip_features
    from avse.data.metadata import target_landmarks_path
    from avse.video.landmarks import read_landmarks, write_landmarks

    name = sorted(p.stem for p in (tiny_corpus / "train" / "targets_landmarks").glob("*.npz"))[0]
    lm = read_landmarks(target_landmarks_path(tiny_corpus, "train", name))
    lm["lips"][3] = np.nan  # a frame where the face was lost
    root = tmp_path / "corpus"
    write_landmarks(target_landmarks_path(root, "train", name), lm)
    train = target_lip_features(root, "train", name)  # [N, 82]
    infer, reason, _ = Enhancer("av", fallback=None).visual_input(lip_features(lm), np.zeros(16000, np.float32))
    assert reason is None and not train[3].any()
    np.testing.assert_array_equal(train, infer)


@pytest.mark.slow
@pytest.mark.skipif(not REAL_GRID.is_dir(), reason="the real GRID clips (../shared/data/real/grid) are not here")
def test_a_real_clip_gives_identical_streams_through_training_and_inference(tmp_path):
    """One real GRID clip: the prepare cache and a corpus landmark file (training) and `enhance`'s front end (inference)."""
    from avse.api import Enhancer
    from avse.audio.io import load_audio
    from avse.data.datasets import target_lip_features
    from avse.data.metadata import target_landmarks_path
    from avse.data.prepare import Utterance, load_cached, prepare_one
    from avse.video.landmarks import LANDMARK_KEYS, write_landmarks

    clip = REAL_GRID / "bbaf2n.mpg"
    rec = prepare_one(Utterance("grid_bbaf2n", "trainval", "grid", clip), tmp_path / "cache")
    cached = load_cached(tmp_path / "cache" / rec["file"])
    root = tmp_path / "corpus"  # the cache's landmarks as a corpus target, as training reads them
    write_landmarks(target_landmarks_path(root, "train", "bbaf2n"), {k: cached[k] for k in LANDMARK_KEYS})
    from_file = target_lip_features(root, "train", "bbaf2n")
    audio = load_audio(clip, sample_rate=16000)[0]
    infer, reason, facts = Enhancer("av", fallback=None).visual_input(clip, audio)
    assert reason is None and "lips_shifted_frames" not in facts and infer.shape == (75, 82)
    assert np.abs(infer).sum() > 0 and np.all(np.isfinite(infer))
    np.testing.assert_array_equal(cached["features"], infer)
    np.testing.assert_array_equal(from_file, infer)
