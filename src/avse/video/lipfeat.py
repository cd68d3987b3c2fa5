"""Detector-independent lip features: the 40 lip points normalised for position, scale and in-plane rotation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from avse.errors import ConfigError
from avse.video.landmarks import LIP_INDEX, POS_CORNER_LEFT, POS_CORNER_RIGHT, mouth_opening

#: names of the D = 82 feature columns: x and y of each lip point (named by its MediaPipe
#: index, LIP_INDEX order), then the mouth opening and the mouth width
FEATURE_NAMES: tuple[str, ...] = tuple(
    f"lip{int(i)}_{axis}" for i in LIP_INDEX for axis in ("x", "y")
) + ("opening", "width")
N_FEATURES = len(FEATURE_NAMES)  # 82


def eye_frame(eyes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eye corners [..., 4, 2] (MediaPipe 33, 133, 362, 263) -> (inter-ocular distance [...],
    cos [...], sin [...] of the eye line's angle), the eye centres being the means of each
    eye's two corners and the line pointing from the subject's right eye to the left one
    (image left to right on an upright frontal face). float64."""
    eyes = np.asarray(eyes, dtype=np.float64)
    d = eyes[..., 2:, :].mean(-2) - eyes[..., :2, :].mean(-2)  # [..., 2] right-eye centre -> left-eye centre
    iod = np.hypot(d[..., 0], d[..., 1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return iod, d[..., 0] / iod, d[..., 1] / iod


def lip_features(landmarks: Mapping[str, Any]) -> np.ndarray:
    """Landmarks (lips [N, 40, 2], eyes [N, 4, 2] pixels) -> features float32 [N, 82] (FEATURE_NAMES).

    Columns 0-79: the 40 lip points (LIP_INDEX order, x then y of each) with the mouth centre
    (mean of the 40 points) at the origin, rotated so the eye line is horizontal, divided by the
    inter-ocular distance (between the eye centres, each the mean of that eye's two corners).
    Column 80: mouth opening, inner-lip gap / mouth width (``avse.video.landmarks.mouth_opening``).
    Column 81: mouth width |p291 - p61| / inter-ocular distance.

    The scale is the eyes' distance, not the mouth width, because the mouth widens and narrows
    with speech (spreading, rounding) while the eye corners do not move: dividing by the mouth
    width would erase the spread/round contrast. Every column is invariant to translating,
    scaling and rotating (in plane) the whole landmark set, so synthetic and real faces of any
    size and position land in the same space. Also takes one frame (lips [40, 2], eyes [4, 2]
    -> [82]). Non-finite landmarks (or coincident eyes) give NaN in the columns they reach.
    """
    try:
        lips = np.asarray(landmarks["lips"], dtype=np.float64)
        eyes = np.asarray(landmarks["eyes"], dtype=np.float64)
    except KeyError as err:
        raise ConfigError(f"landmarks lack {err.args[0]!r} (need lips and eyes)") from None
    if lips.shape[-2:] != (40, 2) or eyes.shape[-2:] != (4, 2) or lips.shape[:-2] != eyes.shape[:-2]:
        raise ConfigError(f"landmarks must be lips [N, 40, 2] and eyes [N, 4, 2], got {lips.shape} and {eyes.shape}")
    iod, cos, sin = eye_frame(eyes)  # [...]
    centred = lips - lips.mean(-2, keepdims=True)  # [..., 40, 2]
    with np.errstate(invalid="ignore", divide="ignore"):
        x = (cos[..., None] * centred[..., 0] + sin[..., None] * centred[..., 1]) / iod[..., None]  # rotate by -angle
        y = (-sin[..., None] * centred[..., 0] + cos[..., None] * centred[..., 1]) / iod[..., None]
        width = np.linalg.norm(lips[..., POS_CORNER_LEFT, :] - lips[..., POS_CORNER_RIGHT, :], axis=-1) / iod
    opening = mouth_opening(lips)  # [...] (NaN where the lips are)
    points = np.stack([x, y], -1).reshape(lips.shape[:-2] + (80,))  # [..., 80] x0, y0, x1, y1, ...
    return np.concatenate([points, opening[..., None], width[..., None]], -1).astype(np.float32)


def clean_frames(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The one gap policy of the visual stream: features [N, D] -> (float32 [N, D], valid bool [N]).

    A frame with any non-finite value (no face, coincident eyes, a landmark
    that could not be placed) is not half-used: the whole frame becomes zeros,
    the models' "no video" input, and ``valid`` is False there. Gaps inside a
    track are filled earlier, on the landmarks (``avse.video.track.fill_gaps``).
    """
    f = np.asarray(features, dtype=np.float32)
    valid = np.all(np.isfinite(f), axis=-1)  # [N]
    return np.where(valid[..., None], f, np.float32(0.0)).astype(np.float32), valid


def visual_stream(landmarks: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """Landmarks (lips [N, 40, 2], eyes [N, 4, 2]) -> what a model's visual input is made of: (float32 [N, 82], valid [N]).

    ``lip_features`` with the gap policy of ``clean_frames``. Training (a
    corpus's landmark files), evaluation, the front end and inference all
    build the visual stream with this function, so the same landmarks give the
    same stream everywhere.
    """
    return clean_frames(lip_features(landmarks))


__all__ = ["FEATURE_NAMES", "N_FEATURES", "clean_frames", "eye_frame", "lip_features", "visual_stream"]
