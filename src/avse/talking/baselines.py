"""Reference talking-face methods for benchmarks: a still frame, and a mouth opened by speech energy."""

from __future__ import annotations

import cv2
import numpy as np

from avse.errors import ConfigError
from avse.video.roi import FACE_BOX, REFERENCE_MOUTH_CENTRE
from avse.video.sync import frame_energy_db


def default_mouth_centre(size: int = 96) -> np.ndarray:
    """Where the mouth centre of the reference face lands in an aligned face crop of side ``size`` -> (x, y)."""
    left, top, side = FACE_BOX
    return (REFERENCE_MOUTH_CENTRE - np.array([left, top])) * (size / side)


def still(reference: np.ndarray, n: int) -> np.ndarray:
    """The floor: reference uint8 [S, S, 3] repeated -> [n, S, S, 3]."""
    return np.repeat(np.asarray(reference)[None], int(n), axis=0)


def speech_opening(audio: np.ndarray, n: int, range_db: float = 30.0, silence_db: float = -60.0) -> np.ndarray:
    """How open the mouth should be per video frame, from speech energy: audio [T] -> [n] in [0, 1].

    The frame energy in dB (``avse.video.sync.frame_energy_db``) mapped linearly from
    (loudest - range_db) to the loudest frame, then smoothed over 3 frames; frames under
    ``silence_db`` (dB re full scale) stay closed, so silence gives all zeros.
    """
    e = frame_energy_db(np.asarray(audio, np.float64), n)
    o = np.clip((e - (e.max() - range_db)) / range_db, 0.0, 1.0) * (e > silence_db)
    return np.convolve(np.pad(o, 1, mode="edge"), np.ones(3) / 3, mode="valid")


def energy_mouth(reference: np.ndarray, audio: np.ndarray, n: int, mouth: np.ndarray | None = None,
                 max_open: float = 0.07) -> np.ndarray:
    """A simple baseline: the reference face crop uint8 [S, S, 3] with its jaw and lower lip pulled
    down by the speech energy -> [n, S, S, 3].

    Below the mouth centre ``mouth`` (x, y) (default ``default_mouth_centre``) the image is
    displaced downwards by up to ``max_open`` * S pixels (a smooth bump across the mouth's width
    that fades out by the chin), and the gap that opens between the lips is darkened.
    """
    ref = np.asarray(reference)
    if ref.ndim != 3 or ref.shape[2] != 3 or ref.shape[0] != ref.shape[1]:
        raise ConfigError(f"reference must be a square crop [S, S, 3], got {ref.shape}")
    s = ref.shape[0]
    cx, cy = default_mouth_centre(s) if mouth is None else np.asarray(mouth, np.float64)
    ys, xs = np.mgrid[0:s, 0:s].astype(np.float32)
    across = np.exp(-0.5 * ((xs - cx) / (0.16 * s)) ** 2)  # [S, S]
    below = ys - cy
    rise = np.clip(below / (0.03 * s) + 0.5, 0, 1)  # 0 above the lips, 1 just under the mouth line
    fade = np.clip(1.0 - below / (0.42 * s), 0, 1)  # back to 0 at the chin and below
    shape = across * rise * fade  # [S, S]
    gap = across * np.clip(1.0 - np.abs(below) / (0.02 * s), 0, 1)  # the lip line
    out = np.empty((int(n), s, s, 3), np.uint8)
    for i, o in enumerate(speech_opening(audio, int(n))):
        dy = (o * max_open * s * shape).astype(np.float32)
        warped = cv2.remap(ref, xs, ys - dy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        dark = 1.0 - 0.65 * np.clip(o * 2, 0, 1) * gap[..., None]
        out[i] = np.clip(warped * dark, 0, 255).astype(np.uint8)
    return out


__all__ = ["default_mouth_centre", "still", "speech_opening", "energy_mouth"]
