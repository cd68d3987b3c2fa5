"""Tests of the mouth ROI: similarity fit, reference face, 96x96 crops, lipreading input, contact sheet."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from avse.data.face import render_face, style_for_speaker
from avse.data.visemes import JAW, OPEN, K
from avse.errors import ConfigError
from avse.video.roi import (
    CROP_SIZE,
    LIPREADING_MEAN,
    LIPREADING_STD,
    REFERENCE_MOUTH_CENTRE,
    REFERENCE_POINTS,
    STABLE_POINTS,
    crop_centroid_px,
    crop_matrices,
    estimate_similarity,
    iter_mouth_crops,
    lipreading_input,
    mouth_crop,
    mouth_crops,
    transform_points,
)

CENTRE = (CROP_SIZE - 1) / 2  # 47.5


def _similarity(scale: float, angle_deg: float, t=(0.0, 0.0)) -> np.ndarray:
    c, s = np.cos(np.deg2rad(angle_deg)) * scale, np.sin(np.deg2rad(angle_deg)) * scale
    return np.array([[c, -s, t[0]], [s, c, t[1]]])


def _move(lm: dict, m: np.ndarray) -> dict:
    """The landmark dict with every point mapped by the affine m [2, 3]."""
    out = dict(lm)
    for k in ("lips", "eyes"):
        out[k] = transform_points(m, lm[k])
    out["nose"] = transform_points(m, np.asarray(lm["nose"])[..., None, :])[..., 0, :]
    return out


@pytest.fixture(scope="module")
def face():
    """Six rendered 224x224 frames of one synthetic speaker, the mouth opening and closing."""
    traj = np.zeros((6, K), dtype=np.float32)
    traj[:, OPEN] = [0.0, 0.2, 0.5, 0.3, 0.1, 0.0]
    traj[:, JAW] = traj[:, OPEN] * 0.6
    return render_face(traj, style_for_speaker(3), rng=np.random.default_rng(0))


# --- similarity --------------------------------------------------------------------------------


def test_similarity_matches_opencv_on_noise_free_points():
    # points and transform exactly representable in float32 (OpenCV fits in float32 internally)
    for seed in range(20):
        rng = np.random.default_rng(seed)
        src = rng.integers(0, 256, (6, 2)).astype(np.float64)
        a, b = rng.integers(1, 65, 2) / 32.0 * rng.choice([-1, 1], 2)
        m_true = np.array([[a, -b, 0.0], [b, a, 0.0]])
        m_true[:, 2] = rng.integers(-100, 100, 2)
        dst = transform_points(m_true, src)
        m = estimate_similarity(src, dst)
        ref, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.LMEDS)
        np.testing.assert_allclose(m, ref, atol=1e-6, rtol=0)
        np.testing.assert_allclose(m, m_true, atol=1e-10, rtol=0)


def test_similarity_least_squares_batched_and_never_a_reflection():
    rng = np.random.default_rng(1)
    src = rng.normal(0, 30, (4, 5, 2))
    m_true = np.stack([_similarity(s, a, (3, -7)) for s, a in [(0.5, 170), (2, -120), (1, 0), (1.3, 91)]])
    m = estimate_similarity(src, transform_points(m_true, src))  # [4, 2, 3]
    np.testing.assert_allclose(m, m_true, atol=1e-12)
    for i in range(4):  # the batch equals one fit per frame
        np.testing.assert_allclose(estimate_similarity(src[i], transform_points(m_true[i], src[i])), m[i], atol=1e-12)
    # with noise, the fit is the least-squares optimum: perturbing it only raises the error
    dst = transform_points(m_true[0], src[0]) + rng.normal(0, 2, (5, 2))
    best = estimate_similarity(src[0], dst)
    err = lambda mm: np.sum((transform_points(mm, src[0]) - dst) ** 2)  # noqa: E731
    for da, db, dx, dy in np.eye(4) * 1e-3:  # a step along each parameter of [[a, -b, tx], [b, a, ty]]
        dd = np.array([[da, -db, dx], [db, da, dy]])
        assert err(best + dd) > err(best) and err(best - dd) > err(best)
    # mirrored points: the answer is still a rotation (positive determinant)
    mirrored = src[0] * [-1, 1]
    assert np.linalg.det(estimate_similarity(src[0], mirrored)[:, :2]) > 0
    with pytest.raises(ConfigError):
        estimate_similarity(np.ones((4, 2)), rng.normal(size=(4, 2)))
    with pytest.raises(ConfigError):
        estimate_similarity(src[0], src[0][:3])


# --- the reference face -------------------------------------------------------------------------


def test_reference_face_table():
    ref = REFERENCE_POINTS
    assert ref.shape == (7, 2)
    np.testing.assert_array_equal(STABLE_POINTS, ref[:5])
    assert np.linalg.norm(ref[6] - ref[5]) == pytest.approx(48.0, abs=1e-3)  # mouth = half the crop
    np.testing.assert_allclose(ref[[0, 1], 0] + ref[[3, 2], 0], 256.0, atol=1e-3)  # symmetric about x = 128
    np.testing.assert_allclose(ref[[0, 1], 1], ref[[3, 2], 1], atol=1e-3)  # eyes level
    assert ref[:4, 1].max() < ref[4, 1] < REFERENCE_MOUTH_CENTRE[1] < 256 - CROP_SIZE / 2  # eyes, nose, mouth downwards
    assert REFERENCE_MOUTH_CENTRE[0] == 128.0


# --- crops ----------------------------------------------------------------------------------------


def _blobs(mask: np.ndarray) -> np.ndarray:
    """Centroids (x, y) [B, 2] of the connected blobs of a bool mask, sorted by x."""
    n, _, _, cents = cv2.connectedComponentsWithStats(mask.astype(np.uint8))
    return cents[1:][np.argsort(cents[1:, 0])]


def test_crop_is_centred_upright_and_at_the_reference_scale(face):
    frames, lm = face
    # turn and enlarge the whole frame (and its landmarks) so that the crop must undo it
    m = cv2.getRotationMatrix2D((112.0, 112.0), 25.0, 1.3)
    frame = cv2.warpAffine(frames[2], m, (224, 224), flags=cv2.INTER_LINEAR)
    one = {k: v[2] for k, v in _move(lm, m).items() if k in ("lips", "eyes", "nose")}
    lips = one["lips"]
    for p in (lips[0], lips.mean(0), lips[10]):  # white dots: corner 61, lip centroid, corner 291
        cv2.circle(frame, (int(round(p[0] * 16)), int(round(p[1] * 16))), 40, (255, 255, 255), -1, cv2.LINE_8, 4)
    crop = mouth_crop(frame, one)
    assert crop.shape == (96, 96) and crop.dtype == np.uint8
    dots = _blobs(crop >= 250)
    assert len(dots) == 3
    np.testing.assert_allclose(dots[1], (CENTRE, CENTRE), atol=0.75)  # the mouth centre at the crop centre
    assert abs(dots[0, 1] - dots[2, 1]) < 1.0  # the mouth corners level: upright
    assert dots[0, 0] < CENTRE - 10 and dots[2, 0] > CENTRE + 10  # corner 61 on the left: not mirrored
    mat = crop_matrices(one, half_window=0)[0]
    corners = transform_points(mat, lips[[0, 10]])
    width = np.linalg.norm(corners[1] - corners[0])
    assert np.linalg.norm(dots[2] - dots[0]) == pytest.approx(width, abs=1.0)
    # the scale: eyes as far apart as in the reference face (the fit is on eyes + nose, so within a few %)
    iod = np.linalg.norm(one["eyes"][2:].mean(0) - one["eyes"][:2].mean(0)) * np.hypot(*mat[:, 0])
    assert iod == pytest.approx(np.linalg.norm(STABLE_POINTS[2:4].mean(0) - STABLE_POINTS[:2].mean(0)), rel=0.05)


def test_mouth_crops_streams_and_matches_single_frames(face):
    frames, lm = face
    crops = mouth_crops(frames, lm, half_window=0)
    assert crops.shape == (6, 96, 96) and crops.dtype == np.uint8
    for i in (0, 3):
        one = {k: lm[k][i] for k in ("lips", "eyes", "nose")}
        np.testing.assert_array_equal(crops[i], mouth_crop(frames[i], one))
    # an iterator of (t, frame) pairs, as avse.video.io.iter_frames yields, gives the same crops
    pairs = ((i / 25, f) for i, f in enumerate(frames))
    np.testing.assert_array_equal(mouth_crops(pairs, lm), mouth_crops(frames, lm))
    streamed = np.stack(list(iter_mouth_crops(iter(frames), lm)))
    np.testing.assert_array_equal(streamed, mouth_crops(frames, lm))
    # grayscale in: the same warp of the gray frame (within the rounding of the two conversions)
    gray = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames])
    assert np.abs(mouth_crops(gray, lm, half_window=0).astype(int) - crops).max() <= 2
    with pytest.raises(ConfigError):
        mouth_crops(frames[:5], lm)
    with pytest.raises(ConfigError):
        list(iter_mouth_crops(np.concatenate([frames, frames[:1]]), lm))
    with pytest.raises(ConfigError):
        mouth_crops(frames.astype(np.float32), lm)


def test_window_smoothing_follows_head_translation_exactly(face):
    _, lm = face
    n = 40
    base = {k: np.repeat(np.asarray(lm[k][:1], dtype=np.float64), n, 0) for k in ("lips", "eyes", "nose")}
    t = np.stack([30 * np.sin(np.arange(n) / 3.0), 12 * np.cos(np.arange(n) / 5.0)], -1)  # fast head movement
    moved = {"lips": base["lips"] + t[:, None], "eyes": base["eyes"] + t[:, None], "nose": base["nose"] + t}
    np.testing.assert_allclose(crop_centroid_px(moved), CENTRE, atol=1e-9)
    # only the lips move (speech, a still head): the smoothed crop stays put, the lips move in it
    speech = dict(base, lips=base["lips"] + np.array([0.0, 1.0]) * np.sin(np.arange(n))[:, None, None])
    c = crop_centroid_px(speech)
    assert c[:, 1].std() > 0.5 and c[:, 0].std() < 0.1  # (the face is turned a little: x moves a little)
    np.testing.assert_allclose(crop_centroid_px(speech, half_window=0), CENTRE, atol=1e-9)
    bad = dict(moved, eyes=moved["eyes"].copy())
    bad["eyes"][7, 1] = np.nan
    with pytest.raises(ConfigError, match="not finite"):
        crop_matrices(bad)


def test_lipreading_input_centre_crop_and_normalisation():
    crops = np.zeros((2, 3, 96, 96), dtype=np.uint8)
    crops[..., :, :] = np.arange(96, dtype=np.uint8)[:, None]  # value = row
    crops[1, 2] = 255
    x = lipreading_input(crops)
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and tuple(x.shape) == (2, 3, 88, 88)
    assert x[0, 0, 0, 0].item() == pytest.approx((4 / 255 - LIPREADING_MEAN) / LIPREADING_STD, abs=1e-6)
    assert x[0, 0, 87, 50].item() == pytest.approx((91 / 255 - LIPREADING_MEAN) / LIPREADING_STD, abs=1e-6)
    assert x[1, 2].unique().tolist() == pytest.approx([(1 - 0.421) / 0.165])
    torch.testing.assert_close(lipreading_input(torch.from_numpy(crops)), x)
    with pytest.raises(ConfigError):
        lipreading_input(crops.astype(np.float32))


def test_contact_sheet_writes_a_png(tmp_path):
    from avse.plots import contact_sheet

    crops = np.random.default_rng(0).integers(0, 256, (7, 96, 96), dtype=np.uint8)
    path = contact_sheet(tmp_path / "sheet.png", crops, every=2, cols=3)  # frames 0, 2, 4, 6: 2 rows of 3
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = cv2.imread(str(path))
    assert img.shape == (2 + 2 * (96 + 14 + 2), 2 + 3 * (96 + 2), 3)
    np.testing.assert_array_equal(img[2 : 2 + 96, 2 + 98 : 2 + 98 + 96, 0], crops[2])  # the second tile is frame 2
    assert not list(tmp_path.glob(".*part*"))
    with pytest.raises(ConfigError):
        contact_sheet(tmp_path / "bad.png", crops.astype(np.float32))


def test_face_crops_of_several_tracks_read_the_frames_once():
    """Matrices [K, N, 2, 3] give each track's crops [K, N, ...], the same as one call per track, from one pass."""
    from avse.video.roi import face_crops

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (4, 60, 80, 3), dtype=np.uint8)
    mats = np.zeros((2, 4, 2, 3))
    mats[..., 0, 0] = mats[..., 1, 1] = 1.0
    mats[0, :, 0, 2], mats[1, :, 1, 2] = -5.0, -12.0  # two shifted crops of every frame
    read = []

    def once():
        for f in frames:
            read.append(1)
            yield f

    both = face_crops(once(), mats, size=32)
    assert both.shape == (2, 4, 32, 32, 3) and len(read) == 4
    for k in range(2):
        np.testing.assert_array_equal(both[k], face_crops(frames, mats[k], size=32))
    assert not np.array_equal(both[0], both[1])


def test_face_crops_of_luma_and_of_some_rows_are_those_of_the_full_crops():
    """gray=True cuts luma frames [H, W] into [N, size, size]; rows=(lo, hi) cuts only those rows, the same pixels."""
    from avse.video.roi import face_crops

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 60, 80, 3), dtype=np.uint8)
    angle = np.deg2rad(7.0)
    mats = np.zeros((3, 2, 3))
    mats[:, :, :2] = 0.8 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])  # turned, scaled
    mats[:, 0, 2], mats[:, 1, 2] = [-3.0, -7.5, 2.0], [-11.0, 4.0, -1.5]
    full = face_crops(frames, mats, size=32)
    np.testing.assert_array_equal(face_crops(frames, mats, size=32, rows=(16, 32)), full[:, 16:32])
    luma = frames[..., 1]
    gray = face_crops(luma, mats, size=32, gray=True)
    assert gray.shape == (3, 32, 32) and gray.dtype == np.uint8
    np.testing.assert_array_equal(gray, face_crops(np.repeat(luma[..., None], 3, axis=-1), mats, size=32)[..., 0])
    np.testing.assert_array_equal(face_crops(luma, mats, size=32, gray=True, rows=(5, 20)), gray[:, 5:20])
    with pytest.raises(ConfigError, match="luma frames"):
        face_crops(frames, mats, size=32, gray=True)
    with pytest.raises(ConfigError, match="rows"):
        face_crops(frames, mats, size=32, rows=(20, 40))
