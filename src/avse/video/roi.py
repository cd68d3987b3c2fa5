"""Mouth region of interest: similarity warp to a reference face, 96x96 grayscale mouth crops, lipreading input."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import cv2
import numpy as np

from avse.errors import ConfigError
from avse.utils.signal import centred_mean

# ---------------------------------------------------------------------------------------------
# The reference face
# ---------------------------------------------------------------------------------------------
#
# Where the numbers come from: MediaPipe's canonical face model
# (mediapipe/modules/face_geometry/data/canonical_face_model.obj in the MediaPipe source tree,
# Apache-2.0; the 0.10.21 wheel does not ship the file, it was read once from the source tree).
# Its vertex k is face-mesh landmark k, in centimetres, x to the image right, y up, z to the
# camera. The points used here, (x, y) as in the file:
#     33 (-4.445859, 2.663991)   133 (-1.856432, 2.585245)   362 (1.856432, 2.585245)
#    263 ( 4.445859, 2.663991)     1 ( 0.000000, -1.126865)
#     61 (-2.456206, -4.342621)  291 (2.456206, -4.342621)
#     mean of the 40 LIP_INDEX points: (0.0, -4.285051)
# Recipe: orthographic projection (drop z), flip y to image orientation (y down), scale by
# 48 / mouth width (|p291 - p61| = 4.912412 cm -> 9.771167 px/cm), then translate so that the
# midpoint between the eye-corner mean and the lip mean sits at the centre (128, 128) of a
# 256 x 256 frame. The check against MediaPipe meshes of the GRID clips: a similarity fit of
# all 468 canonical points leaves a median error of 0.25-0.32 cm.
#
# Scale: in the auto_avsr / LRS3 convention (a 96 x 96 crop centred on the mouth of a face
# warped to the 256 x 256 "20words" mean face) the mouth spans about half the crop width. We
# could not read that mean face's numbers here, so we fix the scale by the same rule: the
# canonical mouth is 48 px wide (half of the 96-px crop) and the canonical inter-ocular distance
# (eye-corner centres) is then 61.58 px. A real face with a relatively wider mouth shows a
# wider mouth in the crop: the warp is fitted on the eyes and the nose only.

#: size of the reference frame (the crop is cut from this frame's coordinates)
REFERENCE_SIZE = 256
#: MediaPipe indices of the rows of ``REFERENCE_POINTS``
REFERENCE_INDEX = np.array([33, 133, 362, 263, 1, 61, 291], dtype=np.int32)
#: reference face [7, 2] float64, pixels of the 256 x 256 reference frame (y down), rows in
#: REFERENCE_INDEX order: eye corners 33, 133, 362, 263, nose tip 1, mouth corners 61, 291
REFERENCE_POINTS = np.array(
    [
        [84.5588, 93.8575],  # 33  right eye (subject's), outer corner
        [109.8605, 94.6270],  # 133 right eye, inner corner
        [146.1395, 94.6270],  # 362 left eye, inner corner
        [171.4412, 93.8575],  # 263 left eye, outer corner
        [128.0000, 130.8986],  # 1   nose tip
        [104.0000, 162.3203],  # 61  mouth corner (subject's right)
        [152.0000, 162.3203],  # 291 mouth corner (subject's left)
    ]
)
#: mean of the 40 canonical lip points in the reference frame
REFERENCE_MOUTH_CENTRE = np.array([128.0, 161.7578])
#: the stable points the warp is fitted on: the 4 eye corners and the nose tip
STABLE_POINTS = REFERENCE_POINTS[:5]

#: side of the mouth crop (pixels), as in the LRS3 / auto_avsr preprocessing
CROP_SIZE = 96
#: side of the centre crop a lipreading frontend takes from the 96 x 96 crop
LIPREADING_SIZE = 88
#: mean and standard deviation of gray levels / 255 over LRW mouth crops, the normalisation the
#: lipreading frontends (Ma et al., TCN / auto_avsr) were trained with
LIPREADING_MEAN = 0.421
LIPREADING_STD = 0.165
#: half-width (frames) of the window the landmarks are averaged over before the warp is fitted:
#: auto_avsr's window_margin = 12 -> frames i - 6 .. i + 6
HALF_WINDOW = 6

_CENTRE = (CROP_SIZE - 1) / 2.0  # 47.5: the mouth centre lands exactly between the middle pixels


# ---------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------


def estimate_similarity(src_points: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation; never a reflection).

    src_points, dst_points [..., K, 2] (K >= 2) -> M [..., 2, 3] float64 with
    dst ~= M[:, :2] @ src + M[:, 2], i.e. M = [[a, -b, tx], [b, a, ty]]. This is Umeyama's
    solution restricted to proper rotations, written in its closed 2-D form: with centred
    points s, d, a = sum(s . d) / sum |s|^2 and b = sum(s x d) / sum |s|^2. Leading
    dimensions batch (one fit per frame). Raises ConfigError when the source points coincide.
    """
    src = np.asarray(src_points, dtype=np.float64)
    dst = np.asarray(dst_points, dtype=np.float64)
    if src.ndim < 2 or src.shape[-1] != 2 or src.shape[-2] < 2:
        raise ConfigError(f"src_points must be [..., K >= 2, 2], got {src.shape}")
    try:
        src, dst = np.broadcast_arrays(src, dst)  # e.g. per-frame points [N, K, 2] to one reference [K, 2]
    except ValueError:
        raise ConfigError(f"src_points {src.shape} and dst_points {dst.shape} do not broadcast") from None
    mu_s = src.mean(-2)  # [..., 2]
    mu_d = dst.mean(-2)
    s = src - mu_s[..., None, :]  # [..., K, 2]
    d = dst - mu_d[..., None, :]
    var = np.sum(s * s, axis=(-2, -1))  # [...]
    if np.any(~(var > 1e-12)):
        raise ConfigError("estimate_similarity: the source points coincide (or are not finite)")
    a = np.sum(s * d, axis=(-2, -1)) / var  # scale * cos
    b = np.sum(s[..., 0] * d[..., 1] - s[..., 1] * d[..., 0], axis=-1) / var  # scale * sin
    m = np.empty(src.shape[:-2] + (2, 3))
    m[..., 0, 0], m[..., 0, 1] = a, -b
    m[..., 1, 0], m[..., 1, 1] = b, a
    m[..., :, 2] = mu_d - np.einsum("...ij,...j->...i", m[..., :, :2], mu_s)
    return m


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply affine matrices [..., 2, 3] to points [..., K, 2] -> [..., K, 2] float64."""
    matrix = np.asarray(matrix, dtype=np.float64)
    points = np.asarray(points, dtype=np.float64)
    return np.einsum("...ij,...kj->...ki", matrix[..., :, :2], points) + matrix[..., None, :, 2]


def _points(landmarks: Mapping[str, Any]) -> np.ndarray:
    """Landmark dict -> [N, 45, 2] float64: eye corners (4), nose tip (1), lips (40)."""
    try:
        lips = np.asarray(landmarks["lips"], dtype=np.float64)
        eyes = np.asarray(landmarks["eyes"], dtype=np.float64)
        nose = np.asarray(landmarks["nose"], dtype=np.float64)
    except KeyError as err:
        raise ConfigError(f"landmarks lack {err.args[0]!r} (need lips, eyes, nose)") from None
    if lips.ndim == 2:  # one frame
        lips, eyes, nose = lips[None], eyes[None], nose[None]
    n = lips.shape[0]
    if lips.shape != (n, 40, 2) or eyes.shape != (n, 4, 2) or nose.shape != (n, 2):
        raise ConfigError(f"landmarks must be lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2]; got "
                          f"{lips.shape}, {eyes.shape}, {nose.shape}")
    pts = np.concatenate([eyes, nose[:, None], lips], axis=1)
    bad = ~np.isfinite(pts).all(axis=(1, 2))
    if bad.any():
        frames = np.flatnonzero(bad)
        raise ConfigError(f"landmarks are not finite in {len(frames)} frame(s) (first {frames[:5].tolist()}): "
                          "fill the gaps (interpolate) before cropping")
    return pts


def crop_matrices(landmarks: Mapping[str, Any], half_window: int = HALF_WINDOW) -> np.ndarray:
    """Per-frame affine matrices [N, 2, 3] float64 mapping frame pixels to 96 x 96 crop pixels.

    landmarks: lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2] (pixels, gaps already filled).
    The auto_avsr chain: the 45 points are averaged over frames i - half_window .. i + half_window
    and the average is moved so its stable points (eyes + nose) have frame i's mean; a
    similarity is fitted from those stable points to ``STABLE_POINTS``; the crop is then centred
    on the warped mean of the (averaged) 40 lip points, which lands on pixel (47.5, 47.5).
    """
    pts = _points(landmarks)  # [N, 45, 2]
    smooth = centred_mean(pts, int(half_window))  # [N, P, 2]
    smooth = smooth + (pts[:, :5].mean(1) - smooth[:, :5].mean(1))[:, None, :]  # translation follows frame i
    m = estimate_similarity(smooth[:, :5], STABLE_POINTS)  # [N, 2, 3] frame -> reference
    mouth = transform_points(m, smooth[:, 5:].mean(1, keepdims=True))[:, 0]  # [N, 2] in the reference
    m[:, :, 2] += _CENTRE - mouth
    return m


def crop_centroid_px(landmarks: Mapping[str, Any], half_window: int = HALF_WINDOW) -> np.ndarray:
    """Where frame i's own lip centroid (mean of its 40 lip points) lands in crop i -> [N, 2] (x, y) float64.

    (47.5, 47.5) is the crop centre. Its spread over a clip measures how steady the crop is
    around the mouth (speech moves the lips a little; tracking jitter moves them more).
    """
    m = crop_matrices(landmarks, half_window)
    lips = np.asarray(landmarks["lips"], dtype=np.float64)
    if lips.ndim == 2:
        lips = lips[None]
    return transform_points(m, lips.mean(1, keepdims=True))[:, 0]


# ---------------------------------------------------------------------------------------------
# Crops
# ---------------------------------------------------------------------------------------------


def _frame_array(item: Any) -> np.ndarray:
    if isinstance(item, tuple):  # (timestamp, frame) from avse.video.io.iter_frames
        item = item[-1]
    frame = np.asarray(item)
    if frame.dtype != np.uint8 or not (frame.ndim == 2 or (frame.ndim == 3 and frame.shape[2] == 3)):
        raise ConfigError(f"a frame must be uint8 [H, W, 3] RGB or [H, W] gray, got {frame.dtype} {frame.shape}")
    return frame


def _warp(frame: np.ndarray, matrix: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """One warp of frame [H, W, 3] (or [H, W]) straight into a [96, 96] uint8 gray crop."""
    crop = cv2.warpAffine(frame, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)
    if crop.ndim == 2:
        if out is None:
            return crop
        out[...] = crop
        return out
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY, dst=out)


def mouth_crop(frame: np.ndarray, landmarks: Mapping[str, Any]) -> np.ndarray:
    """frame uint8 [H, W, 3] RGB and its landmarks (lips [40, 2], eyes [4, 2], nose [2]) -> crop uint8 [96, 96] gray.

    One warp (similarity to the reference face on eyes + nose, then the crop around the lip
    centroid), bilinear, borders replicated. The landmarks are used as given: pass smoothed
    ones, or use ``mouth_crops`` for a whole clip (which smooths the fit over a window).
    """
    return _warp(_frame_array(frame), crop_matrices(landmarks, half_window=0)[0])


def _numbered(frames: Iterable[Any], n: int) -> Iterator[tuple[int, np.ndarray]]:
    """(i, frame uint8) for each item of ``frames``; ConfigError unless there are exactly n."""
    i = 0
    for item in frames:
        if i >= n:
            raise ConfigError(f"more frames than the {n} landmark frames")
        yield i, _frame_array(item)
        i += 1
    if i != n:
        raise ConfigError(f"{i} frames for {n} landmark frames")


def iter_mouth_crops(
    frames: Iterable[Any], landmarks: Mapping[str, Any], half_window: int = HALF_WINDOW
) -> Iterator[np.ndarray]:
    """Stream mouth crops: frames (an iterable of uint8 [H, W, 3], or of (t, frame) pairs as
    ``avse.video.io.iter_frames`` yields) -> uint8 [96, 96] gray crops, one per frame.

    landmarks hold N frames (lips [N, 40, 2], eyes [N, 4, 2], nose [N, 2]); the frames must
    number N too (ConfigError otherwise). Only one frame is held at a time.
    """
    mats = crop_matrices(landmarks, half_window)
    for i, frame in _numbered(frames, len(mats)):
        yield _warp(frame, mats[i])


def mouth_crops(
    frames: Iterable[Any] | np.ndarray, landmarks: Mapping[str, Any], half_window: int = HALF_WINDOW
) -> np.ndarray:
    """frames (uint8 [N, H, W, 3], or any iterable of frames / (t, frame) pairs) and their
    landmarks -> crops uint8 [N, 96, 96] gray. See ``crop_matrices`` for the warp and
    ``iter_mouth_crops`` for the streaming rules: full frames are never stacked.
    """
    mats = crop_matrices(landmarks, half_window)
    out = np.empty((len(mats), CROP_SIZE, CROP_SIZE), dtype=np.uint8)
    for i, frame in _numbered(frames, len(mats)):
        _warp(frame, mats[i], out=out[i])
    return out


def lipreading_input(crops: Any):
    """Mouth crops uint8 [..., 96, 96] (numpy or torch) -> float32 torch tensor [..., 88, 88].

    The centre 88 x 88 (rows and columns 4..91) scaled to [0, 1] then standardised as
    (x / 255 - 0.421) / 0.165: the test-time transform of the LRW/LRS3 lipreading frontends
    (e.g. the ``lrw_resnet18_dctcn`` visual encoder), whose training crops had that mean and std.
    """
    import torch

    x = torch.as_tensor(np.asarray(crops) if not isinstance(crops, torch.Tensor) else crops)
    if x.dtype != torch.uint8 or x.ndim < 2 or x.shape[-1] < LIPREADING_SIZE or x.shape[-2] < LIPREADING_SIZE:
        raise ConfigError(f"crops must be uint8 [..., 96, 96], got {x.dtype} {tuple(x.shape)}")
    top = (x.shape[-2] - LIPREADING_SIZE) // 2
    left = (x.shape[-1] - LIPREADING_SIZE) // 2
    x = x[..., top : top + LIPREADING_SIZE, left : left + LIPREADING_SIZE].to(torch.float32)
    return (x / 255.0 - LIPREADING_MEAN) / LIPREADING_STD


# ---------------------------------------------------------------------------------------------
# Aligned face crops (the talking-face generator's frame)
# ---------------------------------------------------------------------------------------------

#: side of the aligned face crop (pixels)
FACE_SIZE = 96
#: the square of the 256 x 256 reference frame an aligned face crop shows: (left, top, side).
#: It runs from above the brows (y 56) to below the chin (about y 200) and from cheek to
#: cheek (x 60 .. 196), so the mouth centre lands near (48, 63.5) of a 96 x 96 crop and the
#: lower half (rows 48 ..) holds nose base, mouth and chin.
FACE_BOX = (40.0, 52.0, 176.0)


def face_reference(size: int = FACE_SIZE) -> np.ndarray:
    """The stable points (4 eye corners, nose tip) [5, 2] float64 in an aligned face crop of side ``size``."""
    left, top, side = FACE_BOX
    return (STABLE_POINTS - np.array([left, top])) * (size / side)


def face_matrices(landmarks: Mapping[str, Any], size: int = FACE_SIZE, half_window: int = HALF_WINDOW) -> np.ndarray:
    """Per-frame affine matrices [N, 2, 3] float64 mapping frame pixels to an aligned face crop of side ``size``.

    landmarks: eyes [N, 4, 2], nose [N, 2] (and lips [N, 40, 2]; pixels, gaps filled). The
    stable points are averaged over frames i - half_window .. i + half_window (translation
    kept at frame i's), then a similarity is fitted onto ``face_reference(size)``: the face
    keeps its place and size from frame to frame while the mouth moves freely inside it.
    """
    pts = _points(landmarks)[:, :5]  # [N, 5, 2]
    smooth = centred_mean(pts, int(half_window))
    smooth = smooth + (pts.mean(1) - smooth.mean(1))[:, None, :]
    return estimate_similarity(smooth, face_reference(size))


def face_crops(
    frames: Iterable[Any] | np.ndarray, matrices: np.ndarray, size: int = FACE_SIZE, gray: bool = False,
    rows: tuple[int, int] | None = None,
) -> np.ndarray:
    """frames (uint8 [N, H, W, 3] RGB, or an iterable of frames / (t, frame) pairs) and
    matrices [N, 2, 3] (``face_matrices``) -> aligned face crops uint8 [N, size, size, 3] RGB.

    matrices [K, N, 2, 3] (K faces of the same frames) -> [K, N, size, size, 3], the frames read
    once for all of them. Bilinear, borders replicated; frames are read one at a time.
    ``gray``: the frames are luma, uint8 [H, W] (``iter_frames(..., gray=True)``), and so are the
    crops, [N, size, size]. ``rows`` (lo, hi): only those rows of each crop are cut, [..., hi - lo, size, ...].
    """
    mats = np.asarray(matrices, dtype=np.float64)
    many = mats.ndim == 4
    mats = mats if many else mats[None]
    lo, hi = (0, size) if rows is None else rows
    if not 0 <= lo < hi <= size:
        raise ConfigError(f"rows must be (lo, hi) with 0 <= lo < hi <= {size}, got {rows}")
    if lo:
        mats = mats.copy()
        mats[..., 1, 2] -= lo  # crop row lo becomes the output's row 0
    channels = () if gray else (3,)
    out = np.empty((mats.shape[0], mats.shape[1], hi - lo, size, *channels), dtype=np.uint8)
    for i, frame in _numbered(frames, mats.shape[1]):
        if gray and frame.ndim != 2:
            raise ConfigError(f"gray face crops need luma frames [H, W], got {frame.shape}")
        if not gray and frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
        for k in range(mats.shape[0]):
            cv2.warpAffine(frame, mats[k, i], (size, hi - lo), dst=out[k, i], flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    return out if many else out[0]


__all__ = [
    "REFERENCE_SIZE", "REFERENCE_INDEX", "REFERENCE_POINTS", "REFERENCE_MOUTH_CENTRE", "STABLE_POINTS",
    "CROP_SIZE", "LIPREADING_SIZE", "LIPREADING_MEAN", "LIPREADING_STD", "HALF_WINDOW",
    "estimate_similarity", "transform_points", "crop_matrices", "crop_centroid_px",
    "mouth_crop", "iter_mouth_crops", "mouth_crops", "lipreading_input",
    "FACE_SIZE", "FACE_BOX", "face_reference", "face_matrices", "face_crops",
]
