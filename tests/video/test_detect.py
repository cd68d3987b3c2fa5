"""Tests for avse.video.detect: boxes, the landmark-dict helper, crops, Haar and the face mesh with re-acquisition."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from avse.errors import ConfigError
from avse.video.detect import (
    MESH_POINTS,
    SOURCE_CROP,
    SOURCE_MESH,
    FaceMeshDetector,
    HaarDetector,
    box_iou,
    mediapipe_available,
    mesh_box,
    square_crop,
    to_landmark_dict,
)
from avse.video.io import read_video
from avse.video.landmarks import EYE_INDEX, LIP_INDEX, NOSE_INDEX

GRID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "grid"
needs_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason="MediaPipe is not installed")


def _grid_frames(n: int = 10) -> np.ndarray:
    clips = sorted(GRID.glob("*.mpg")) if GRID.is_dir() else []
    if not clips:
        pytest.skip(f"no GRID clips in {GRID}")
    return read_video(clips[0], max_frames=n, with_audio=False).frames


def _synthetic_frames(corpus: Path, n: int = 10) -> np.ndarray:
    video = sorted((corpus / "dev" / "targets_video").glob("*.mp4"))[0]
    return read_video(video, max_frames=n, with_audio=False).frames


def _paste_small(frame: np.ndarray, scale: float, at: tuple[int, int] = (900, 300)) -> np.ndarray:
    """``frame`` shrunk by ``scale`` on a grey 1280x720 canvas, top-left corner at ``at`` (x, y)."""
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    canvas = np.full((720, 1280, 3), 90, np.uint8)
    h, w = small.shape[:2]
    canvas[at[1] : at[1] + h, at[0] : at[0] + w] = small
    return canvas


def test_box_iou_exact():
    a = np.array([0, 0, 10, 10])
    assert box_iou(a, a) == 1.0
    assert box_iou(a, [5, 0, 15, 10]) == pytest.approx(50 / 150)
    assert box_iou(a, [10, 10, 20, 20]) == 0.0  # touching corners
    assert box_iou(a, [20, 20, 30, 30]) == 0.0
    both = box_iou(np.array([a, [0, 0, 5, 10]]), a)  # broadcast [2, 4] x [4] -> [2]
    np.testing.assert_allclose(both, [1.0, 0.5])


def test_mesh_box_extent_and_nan_rows():
    pts = np.array([[[1, 5], [3, 2], [2, 9]], [[np.nan, np.nan]] * 3], np.float32)  # [2, 3, 2]
    box = mesh_box(pts)
    np.testing.assert_array_equal(box[0], [1, 2, 3, 9])
    assert np.isnan(box[1]).all()
    assert box.dtype == np.float32


def test_to_landmark_dict_picks_the_schema_points():
    n = 3
    idx = np.arange(MESH_POINTS, dtype=np.float32)
    mesh = np.stack([np.stack([idx + 1000 * f, 2 * idx], axis=-1) for f in range(n)])  # [3, 478, 2]
    mesh[1] = np.nan
    lm = to_landmark_dict(mesh)
    assert lm["lips"].shape == (n, 40, 2) and lm["eyes"].shape == (n, 4, 2)
    assert lm["nose"].shape == (n, 2) and lm["face_box"].shape == (n, 4)
    np.testing.assert_array_equal(lm["lip_index"], LIP_INDEX)
    np.testing.assert_array_equal(lm["lips"][2, :, 0], LIP_INDEX + 2000)
    np.testing.assert_array_equal(lm["lips"][0, :, 1], 2 * LIP_INDEX)
    np.testing.assert_array_equal(lm["eyes"][0, :, 0], EYE_INDEX)
    np.testing.assert_array_equal(lm["nose"][2], [NOSE_INDEX + 2000, 2 * NOSE_INDEX])
    np.testing.assert_array_equal(lm["face_box"][0], [0, 0, MESH_POINTS - 1, 2 * (MESH_POINTS - 1)])
    assert np.isnan(lm["lips"][1]).all() and np.isnan(lm["face_box"][1]).all()
    assert all(v.dtype == np.float32 for k, v in lm.items() if k != "lip_index")
    with pytest.raises(ConfigError):
        to_landmark_dict(np.zeros((3, 468, 2)))


def test_square_crop_maps_back_exactly_and_pads_black():
    frame = np.full((100, 200, 3), 50, np.uint8)
    frame[40, 130] = 255  # one white pixel
    crop, x0, y0, side = square_crop(frame, np.array([120, 30, 140, 50]), scale=2.0, size=40)
    assert crop.shape == (40, 40, 3) and side == 40 and (x0, y0) == (110, 20)
    assert crop[20, 20].tolist() == [255, 255, 255]  # same scale: the pixel lands at (130-110, 40-20)
    # at the frame's corner the outside is black; the inside keeps its grey
    crop, x0, y0, side = square_crop(frame, np.array([0, 0, 10, 10]), scale=2.0, size=64)
    assert (x0, y0, side) == (-5, -5, 20)
    assert crop[:10, :10].max() == 0 and crop[-10:, -10:].min() == 50
    # upscaling: frame point (x, y) appears at ((x - x0) * size / side, (y - y0) * size / side)
    crop, x0, y0, side = square_crop(frame, np.array([125, 35, 135, 45]), scale=1.0, size=100)
    v, u = np.unravel_index(np.argmax(crop[..., 0]), crop.shape[:2])
    assert abs((x0 + (u + 0.5) * side / 100) - 130.5) <= 1 and abs((y0 + (v + 0.5) * side / 100) - 40.5) <= 1


def test_haar_on_a_blank_frame_finds_nothing():
    boxes = HaarDetector().detect(np.full((120, 160, 3), 128, np.uint8))
    assert boxes.shape == (0, 4) and boxes.dtype == np.float32


def test_haar_finds_the_grid_face():
    frame = _grid_frames(1)[0]
    boxes = HaarDetector().detect(frame)
    assert len(boxes) >= 1
    x0, y0, x1, y1 = boxes[0]
    assert 0 <= x0 < x1 <= 360 and 0 <= y0 < y1 <= 288 and x1 - x0 > 50  # the face, not a speck


@needs_mediapipe
def test_face_mesh_on_grid_frames():
    frames = _grid_frames(5)
    with FaceMeshDetector() as det:
        found = [det.detect(f) for f in frames]
        stats = det.stats.as_dict()
    assert [len(d) for d in found] == [1] * 5
    d = found[0][0]
    assert d.mesh.shape == (MESH_POINTS, 2) and d.mesh.dtype == np.float32 and d.box.shape == (4,)
    assert d.source == SOURCE_MESH and d.score == 1.0
    np.testing.assert_allclose(d.box, mesh_box(d.mesh))
    assert 0 <= d.box[0] < d.box[2] <= 360 and 0 <= d.box[1] < d.box[3] <= 288
    lm = to_landmark_dict(d.mesh[None])
    # a frontal upright face: eyes above the nose tip above the mouth, mouth corners left/right of the nose
    assert lm["eyes"][0, :, 1].max() < lm["nose"][0, 1] < lm["lips"][0, :, 1].min()
    assert lm["lips"][0, 0, 0] < lm["nose"][0, 0] < lm["lips"][0, 10, 0]
    assert stats["frames"] == 5 and stats["mesh_frames"] == 5 and stats["crop_frames"] == 0


@needs_mediapipe
def test_detector_blank_frames_close_and_reset():
    det = FaceMeshDetector(max_num_faces=2)
    blank = np.full((96, 128, 3), 128, np.uint8)
    assert det.detect(blank) == [] and det.detect(blank) == []
    assert det.stats.scans == 2  # nothing found: every frame is searched
    det.reset()
    assert det.stats.frames == 0
    with pytest.raises(ConfigError):
        det.detect(blank.astype(np.float32))
    det.close()
    det.close()  # idempotent
    with pytest.raises(ConfigError):
        det.detect(blank)
    with pytest.raises(ConfigError):
        FaceMeshDetector(max_num_faces=0)


@needs_mediapipe
def test_haar_runs_at_most_every_haar_every_frames_while_nothing_is_found():
    blank = np.full((96, 128, 3), 128, np.uint8)
    with FaceMeshDetector(haar_every=10) as det:
        for _ in range(12):
            det.detect(blank)
        assert det.stats.scans == 12 and det.stats.haar_scans == 2  # frames 0 and 10
    with FaceMeshDetector(haar=False) as det:
        det.detect(blank)
        assert det.stats.haar_scans == 0


@needs_mediapipe
@pytest.mark.parametrize("full_range", [True, False], ids=["full-range", "haar"])
def test_small_face_is_reacquired_on_a_crop(full_range):
    # A GRID frame shrunk to 0.7 (a ~75 px face) on a 1280x720 canvas: the full-frame mesh never sees
    # it; the re-acquisition (full-range detector, or Haar alone) finds it and the crop path follows it.
    frames = _grid_frames(6)
    scale, at = 0.7, (900, 300)
    with FaceMeshDetector(full_range=full_range) as det:
        found = [det.detect(_paste_small(f, scale, at)) for f in frames]
        stats = det.stats.as_dict()
    assert [len(d) for d in found] == [1] * 6
    assert all(d[0].source == SOURCE_CROP for d in found)
    assert stats["mesh_frames"] == 0 and stats["crop_frames"] == 6 and stats["reacquired"] == 1
    assert stats["haar_scans"] == (0 if full_range else 1)
    # the landmarks map back to the canvas: they match the full-size mesh of the same frame, shrunk and moved
    with FaceMeshDetector(reacquire=False) as ref:
        big = ref.detect(frames[0])[0].mesh
    expect = big * scale + np.array(at, np.float32)
    err = np.linalg.norm(found[0][0].mesh - expect, axis=-1)
    assert np.median(err) < 2.0  # pixels of the canvas (the face is ~75 px wide)


@needs_mediapipe
def test_small_synthetic_face_is_reacquired(tiny_corpus):
    frames = _synthetic_frames(tiny_corpus, 6)
    with FaceMeshDetector() as det:
        found = [det.detect(_paste_small(f, 0.65)) for f in frames]
        stats = det.stats.as_dict()
    assert stats["mesh_frames"] == 0
    assert sum(len(d) == 1 for d in found) >= 5
    box = next(d[0].box for d in found if d)
    assert 900 <= box[0] < box[2] <= 900 + 146 and 300 <= box[1] < box[3] <= 300 + 146
