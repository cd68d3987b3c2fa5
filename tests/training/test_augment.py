"""Tests for avse.training.augment: the lip-feature augmentation keeps gaps, shapes and consistency."""

from __future__ import annotations

import numpy as np

from avse.training.augment import LipAugment, augment_lip_features, resample_positions
from avse.video.lipfeat import lip_features


def _features(n: int = 60) -> np.ndarray:
    """Lip features of a mouth opening and closing, from landmark geometry -> [n, 82]."""
    t = np.arange(n)
    ang = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    open_ = 0.5 + 0.5 * np.sin(2 * np.pi * t / 12)
    lips = np.stack([np.stack([30 * np.cos(ang), (10 + 8 * o) * np.sin(ang)], -1) + [100, 150] for o in open_])
    eyes = np.tile(np.array([[50.0, 80], [80, 80], [120, 80], [150, 80]]), (n, 1, 1))
    return lip_features({"lips": lips, "eyes": eyes})


def test_augment_is_deterministic_per_rng_and_keeps_the_shape():
    f = _features()
    a = augment_lip_features(f, np.random.default_rng(3))
    b = augment_lip_features(f, np.random.default_rng(3))
    c = augment_lip_features(f, np.random.default_rng(4))
    assert a.shape == f.shape and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.all(np.isfinite(a))


def test_frames_without_a_face_stay_zero():
    f = _features()
    f[10:20] = 0.0
    cfg = LipAugment(p_shift=0.0, p_fps=0.0, p_drop=0.0, p_smooth=0.0, warp_frames=0.0)
    out = augment_lip_features(f, np.random.default_rng(0), cfg)
    assert np.all(out[10:20] == 0) and np.all(np.any(out[:10] != 0, axis=1))


def test_scaling_keeps_opening_and_width_consistent_with_the_points():
    f = _features()
    cfg = LipAugment(scale_x=(1.2, 1.2), scale_y=(0.8, 0.8), rotate_deg=0.0, jitter=0.0, p_smooth=0.0, p_shift=0.0,
                     p_fps=0.0, p_drop=0.0, warp_frames=0.0, motion_gain=(1.0, 1.0))
    out = augment_lip_features(f, np.random.default_rng(0), cfg)
    np.testing.assert_allclose(out[:, 0:80:2], f[:, 0:80:2] * 1.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 1:80:2], f[:, 1:80:2] * 0.8, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out[:, 81], f[:, 81] * 1.2, rtol=1e-5)
    np.testing.assert_allclose(out[:, 80], f[:, 80] * 0.8 / 1.2, rtol=1e-5)


def test_resample_positions_repeat_or_jitter_frames_like_another_camera_rate():
    slow = resample_positions(100, 22.0)
    fast = resample_positions(100, 30.0)
    assert np.all(np.diff(slow) >= 0) and np.all(np.diff(fast) >= 0)
    assert np.any(np.diff(slow) == 0)  # a 22 fps camera shows some frames twice on the 25 fps grid
    assert not np.any(np.diff(fast) == 0)  # a 30 fps one shows every frame, a little early or late
    assert 0.0 < np.abs(fast - np.arange(100)).max() <= 25 / 60 + 1e-9  # at most half a camera frame off
    assert np.array_equal(resample_positions(50, 25.0), np.arange(50))


def test_warp_and_motion_gain_keep_the_mean_shape_and_change_the_timing():
    f = _features(200)
    cfg = LipAugment(scale_x=(1, 1), scale_y=(1, 1), rotate_deg=0.0, jitter=0.0, p_smooth=0.0, p_shift=0.0, p_fps=0.0,
                     p_drop=0.0, warp_frames=2.0, motion_gain=(0.5, 1.5))
    out = augment_lip_features(f, np.random.default_rng(1), cfg)
    assert not np.allclose(out, f)
    np.testing.assert_allclose(out.mean(0), f.mean(0), atol=0.03)  # the resting shape stays where it was
    gain = np.std(out[:, 80]) / np.std(f[:, 80])
    assert 0.4 < gain < 1.6


def test_other_streams_get_the_temporal_augmentations_only():
    """An embedding stream (Light-ASD, 128 a frame) is moved in time, never changed in value: every output row is a
    blend of two neighbouring input rows (or one of them), and no-face rows stay zero."""
    rng = np.random.default_rng(0)
    f = rng.normal(size=(60, 128)).astype(np.float32)
    f[10:14] = 0.0
    cfg = LipAugment(p_smooth=0.0, p_fps=1.0, p_drop=0.2)
    out = augment_lip_features(f, np.random.default_rng(5), cfg)
    assert out.shape == f.shape and out.dtype == np.float32
    assert not np.allclose(out, f)
    for row in out:
        if not row.any():
            continue
        # row = (1 - w) f[k] + w f[k + 1] for some k and w in [0, 1]
        ok = False
        for k in range(len(f) - 1):
            d = f[k + 1] - f[k]
            w = float(np.dot(row - f[k], d) / max(np.dot(d, d), 1e-12))
            if -1e-4 <= w <= 1 + 1e-4 and np.allclose(row, f[k] + w * d, atol=1e-4):
                ok = True
                break
        assert ok
    assert (~out.any(1)).sum() >= 2  # the no-face gap is still there
    assert np.array_equal(augment_lip_features(f, np.random.default_rng(5), cfg), out)  # seeded
