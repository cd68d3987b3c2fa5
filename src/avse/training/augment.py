"""Visual-stream augmentation for training: the ways real faces, detectors and cameras differ from rendered ones."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avse.video.lipfeat import N_FEATURES

N_POINT_COLUMNS = 80  # x, y of the 40 lip points; then opening, width


@dataclass(frozen=True)
class LipAugment:
    """How far each augmentation of :func:`augment_lip_features` may go (all drawn per item).

    - ``scale_x`` / ``scale_y``: ranges of the lip shape's horizontal and
      vertical scale about the mouth centre (mouths and their movements differ
      in size and aspect from face to face, and landmark models differ in
      where they put the lip contour);
    - ``rotate_deg``: std of an in-plane rotation of the lip points relative to
      the eye line (head roll a detector does not fully remove);
    - ``jitter``: the largest std of per-point, per-frame noise, in eye
      distances (landmark jitter; MediaPipe on a 60 px eye distance jitters by
      about 0.5 px, i.e. 0.01);
    - ``p_smooth``: probability of a 3-tap temporal smoothing (motion blur,
      trackers' smoothing);
    - ``p_shift``: probability of a one-frame shift either way (A/V offsets
      within a frame that sync correction leaves);
    - ``p_fps``: probability of resampling from a camera rate drawn in
      ``fps_range`` to 25 fps (repeated and skipped frames);
    - ``p_drop``: per-frame probability of a dropped frame (the previous one repeated);
    - ``warp_frames``: the largest drift of a slow random time warp of the
      visual track against the audio, in frames (real lips lead and lag the
      sound they make by varying amounts; rendered ones never do);
    - ``motion_gain``: range of a slowly varying gain on the lips' movement
      about their mean shape (real talkers articulate more or less from one
      word to the next; on real clips the mouth opening follows the speech
      energy with r = 0.21 against 0.64 on rendered faces, see
      bench/bench_lip_transfer.py).
    """

    scale_x: tuple[float, float] = (0.85, 1.15)
    scale_y: tuple[float, float] = (0.75, 1.3)
    rotate_deg: float = 4.0
    jitter: float = 0.012
    p_smooth: float = 0.3
    p_shift: float = 0.3
    p_fps: float = 0.3
    fps_range: tuple[float, float] = (22.0, 30.0)
    p_drop: float = 0.03
    warp_frames: float = 1.5
    motion_gain: tuple[float, float] = (0.5, 1.5)


def smooth_curve(n: int, rng: np.random.Generator, period: float = 25.0) -> np.ndarray:
    """A slowly varying random curve in [-1, 1] -> float [n]: random knots every ``period`` frames, linearly joined."""
    knots = rng.uniform(-1.0, 1.0, int(np.ceil(n / period)) + 2)
    return np.interp(np.arange(n) / period, np.arange(len(knots)), knots)


def resample_positions(n: int, fps: float, target_fps: float = 25.0) -> np.ndarray:
    """Where on the ``target_fps`` grid each of ``n`` output frames really looks, for a ``fps`` camera -> float [n].

    Output frame k shows the camera frame nearest its time, taken at that
    frame's own time: ``round(k fps / target_fps) target_fps / fps`` target
    frames. A slower camera repeats frames; a faster one shows each at up to
    half a camera frame off (sub-frame timing jitter).
    """
    cam = np.round(np.arange(n) * fps / target_fps)  # [n] nearest camera frame
    return np.clip(cam * target_fps / fps, 0, n - 1)


def _augment_lip_shape(f: np.ndarray, valid: np.ndarray, rng: np.random.Generator, cfg: LipAugment) -> np.ndarray:
    """Lip features float64 [F, 82] -> the same with scaled, rotated, jittered lip points and a varying motion gain."""
    pts = f[:, :N_POINT_COLUMNS].reshape(len(f), -1, 2)  # [F, 40, 2]
    sx, sy = rng.uniform(*cfg.scale_x), rng.uniform(*cfg.scale_y)
    a = np.deg2rad(rng.normal(0.0, cfg.rotate_deg))
    rot = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    pts = (pts * np.array([sx, sy])) @ rot.T
    pts = pts + rng.normal(0.0, rng.uniform(0.0, cfg.jitter), pts.shape)
    f[:, :N_POINT_COLUMNS] = pts.reshape(len(f), -1)
    f[:, 80] *= sy / sx  # opening: inner gap / width
    f[:, 81] *= sx  # width in eye distances
    if cfg.motion_gain != (1.0, 1.0) and valid.any():
        lo_g, hi_g = cfg.motion_gain
        gain = lo_g + (hi_g - lo_g) * (smooth_curve(len(f), rng) + 1) / 2  # [F]
        mean = f[valid].mean(0)
        f = mean + (f - mean) * gain[:, None]
    return f


def augment_lip_features(features: np.ndarray, rng: np.random.Generator, cfg: LipAugment = LipAugment()) -> np.ndarray:
    """A visual stream float32 [F, D] -> augmented float32 [F, D].

    Frames without a face (all-zero rows) stay all-zero. Lip features
    (D = 82, ``avse.video.lipfeat`` columns) get every augmentation: the
    geometric ones act on the 40 lip points (columns 0-79, centred on the
    mouth, in eye distances) and keep opening (80) and width (81) consistent
    with them, and the motion gain scales their movement. Any other stream
    (e.g. Light-ASD embeddings, D = 128) gets the temporal ones only: time warp,
    camera rates, shifts, dropped frames and smoothing.
    """
    f = np.array(features, dtype=np.float64, copy=True)
    if f.ndim != 2 or len(f) == 0:
        return np.asarray(features, dtype=np.float32)
    valid = np.any(f != 0, axis=1)  # [F]
    if f.shape[1] == N_FEATURES:
        f = _augment_lip_shape(f, valid, rng, cfg)
    pos = np.arange(len(f), dtype=np.float64)  # [F] where each output frame looks, in frames
    if cfg.warp_frames > 0:
        pos = np.clip(pos + cfg.warp_frames * smooth_curve(len(f), rng, period=40.0), 0, len(f) - 1)
    if rng.random() < cfg.p_fps:
        pos = resample_positions(len(f), rng.uniform(*cfg.fps_range))
    if rng.random() < cfg.p_shift:
        pos = np.clip(pos + rng.choice((-1, 1)), 0, len(f) - 1)
    drop = rng.random(len(f)) < cfg.p_drop
    for k in np.flatnonzero(drop):
        if k > 0:
            pos[k] = pos[k - 1]
    lo = np.floor(pos).astype(np.int64)
    hi = np.minimum(lo + 1, len(f) - 1)
    w = (pos - lo)[:, None]
    f = f[lo] * (1 - w) + f[hi] * w
    valid = valid[lo] & (valid[hi] | (w[:, 0] == 0))
    if rng.random() < cfg.p_smooth and len(f) >= 3:
        padded = np.concatenate([f[:1], f, f[-1:]])
        f = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    f[~valid] = 0.0
    return f.astype(np.float32)


__all__ = ["LipAugment", "augment_lip_features", "resample_positions", "smooth_curve"]
