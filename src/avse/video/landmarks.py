"""The landmark schema shared by synthetic and real faces: MediaPipe indices, files, mouth opening."""

from __future__ import annotations

import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import numpy as np

from avse.errors import ConfigError, MediaError
from avse.utils.fs import atomic_path

#: the 40 lip-contour points every landmark set carries, as MediaPipe face-mesh indices
LIP_INDEX = np.array(
    [61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291, 185, 40, 39, 37, 0, 267, 269, 270, 409]  # outer
    + [78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308, 191, 80, 81, 82, 13, 312, 311, 310, 415],  # inner
    dtype=np.int32,
)
#: positions inside the 40-point lip array of the points ``mouth_opening`` uses
POS_CORNER_RIGHT = 0  # MediaPipe 61, the subject's right mouth corner (image left on a frontal face)
POS_CORNER_LEFT = 10  # MediaPipe 291
POS_INNER_LOWER = 25  # MediaPipe 14, inner lower-lip midpoint
POS_INNER_UPPER = 35  # MediaPipe 13, inner upper-lip midpoint

#: the arrays every landmark file holds (more keys, e.g. phone timings or flags, may ride along)
LANDMARK_KEYS = ("lips", "lip_index", "eyes", "nose", "face_box")
EYE_INDEX = np.array([33, 133, 362, 263], dtype=np.int32)  # MediaPipe: right-eye outer/inner, left-eye inner/outer
NOSE_INDEX = 1  # MediaPipe nose tip


def mouth_opening(lips: np.ndarray) -> np.ndarray:
    """Normalised mouth opening of lip contours [..., 40, 2] (LIP_INDEX order) -> [...] float32.

    The inner-lip gap |p14 - p13| (inner lower/upper midpoints) divided by the mouth width
    |p291 - p61| (corners): invariant to translation, scale and in-plane rotation; 0 when the lips
    touch, about 0.5-0.6 for a wide-open 'aa' on the synthetic faces.
    """
    lips = np.asarray(lips, dtype=np.float64)
    if lips.shape[-2:] != (40, 2):
        raise ConfigError(f"lips must be [..., 40, 2], got {lips.shape}")
    gap = np.linalg.norm(lips[..., POS_INNER_LOWER, :] - lips[..., POS_INNER_UPPER, :], axis=-1)
    width = np.linalg.norm(lips[..., POS_CORNER_LEFT, :] - lips[..., POS_CORNER_RIGHT, :], axis=-1)
    return (gap / np.maximum(width, 1e-6)).astype(np.float32)


def _check_landmarks(lm: Mapping[str, Any], where: str | Path) -> None:
    missing = [k for k in LANDMARK_KEYS if k not in lm]
    if missing:
        raise MediaError(where, f"landmarks lack {', '.join(missing)}")
    n = np.shape(lm["lips"])[0] if np.ndim(lm["lips"]) == 3 else -1
    want = {"lips": (n, 40, 2), "lip_index": (40,), "eyes": (n, 4, 2), "nose": (n, 2), "face_box": (n, 4)}
    for k, shape in want.items():
        if np.shape(lm[k]) != shape or n < 0:
            raise MediaError(where, f"landmarks {k!r} has shape {np.shape(lm[k])}, expected {shape}")


def write_landmarks(path: str | Path, landmarks: Mapping[str, Any]) -> None:
    """Write a landmark dict (LANDMARK_KEYS, plus any extra arrays) to ``path`` as a compressed npz, atomically.

    lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2], face_box [N, 4] are stored float32,
    lip_index [40] int32; extra arrays are stored as given (no pickled objects).
    """
    _check_landmarks(landmarks, path)
    arrays = {k: np.asarray(v) for k, v in landmarks.items()}
    for k in ("lips", "eyes", "nose", "face_box"):
        arrays[k] = arrays[k].astype(np.float32)
    arrays["lip_index"] = arrays["lip_index"].astype(np.int32)
    for k, v in arrays.items():
        if v.dtype == object:
            raise ConfigError(f"landmarks {k!r}: object arrays cannot be stored without pickle")
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:  # a file object: numpy adds no '.npz'
        # cast: mypy cannot know that no key is savez_compressed's own ``allow_pickle``
        np.savez_compressed(fh, **cast("dict[str, Any]", arrays))


def read_landmarks(path: str | Path) -> dict[str, np.ndarray]:
    """Read a landmark npz written by ``write_landmarks`` -> dict of arrays (shapes checked)."""
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such landmark file")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
        raise MediaError(path, f"unreadable landmark file ({err})") from None
    _check_landmarks(out, path)
    return out
