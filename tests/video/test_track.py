"""Tests for avse.video.track: association, talker choice, gap filling, smoothing, whole-video landmarks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import av
import numpy as np
import pytest

from avse import SAMPLES_PER_FRAME
from avse.errors import ConfigError, NoFaceError
from avse.video.detect import MESH_POINTS, SOURCE_MESH, Detection, mediapipe_available, mesh_box, to_landmark_dict
from avse.video.io import read_video, write_video
from avse.video.landmarks import LIP_INDEX, mouth_opening, read_landmarks
from avse.video.track import (
    DETECTED,
    INTERPOLATED,
    Track,
    Tracker,
    choose_track,
    extract_landmarks,
    fill_gaps,
    select_track,
    smooth,
    track_detections,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real"
MOVIE = Path("/usr/share/forensics-samples/original-files/movie2/movie-hello.mp4")
needs_mediapipe = pytest.mark.skipif(not mediapipe_available(), reason="MediaPipe is not installed")

_TEMPLATE = np.random.default_rng(7).uniform(-0.5, 0.5, size=(MESH_POINTS, 2))  # a face's points in a unit box
_TEMPLATE_WIDE = _TEMPLATE * np.array([1.3, 0.8])  # another face's shape


def _mesh(cx: float, cy: float, size: float, opening: float = 0.2, template=_TEMPLATE) -> np.ndarray:
    """A fake face mesh [478, 2] at (cx, cy), ``size`` pixels across, whose mouth_opening is ``opening``."""
    pts = template * size + np.array([cx, cy])
    lip_y, width = cy + 0.25 * size, 0.4 * size
    pts[LIP_INDEX] = [cx, lip_y]
    pts[61], pts[291] = [cx - width / 2, lip_y], [cx + width / 2, lip_y]  # mouth corners
    pts[13], pts[14] = [cx, lip_y - opening * width / 2], [cx, lip_y + opening * width / 2]  # inner midpoints
    return pts.astype(np.float32)


def _det(cx: float, cy: float, size: float, template=_TEMPLATE) -> Detection:
    mesh = _mesh(cx, cy, size, template=template)
    return Detection(box=mesh_box(mesh), mesh=mesh)


def _track(tid: int, frames, cx, cy, size, openings) -> Track:
    frames = np.asarray(frames, np.int64)
    meshes = np.stack([_mesh(cx, cy, size, o) for o in openings])
    ones, zeros = np.ones(len(frames), np.float32), np.zeros(len(frames), np.uint8)
    return Track(tid, frames, mesh_box(meshes), meshes, ones, zeros)


def _centres_x(track: Track) -> np.ndarray:
    return (track.boxes[:, 0] + track.boxes[:, 2]) / 2


# -- association ---------------------------------------------------------------------------------


def test_two_still_faces_give_two_full_tracks():
    dets = [[_det(300, 100, 80), _det(100, 100, 80)] for _ in range(20)]
    tracks = track_detections(dets)
    assert len(tracks) == 2
    assert [t.n_frames for t in tracks] == [20, 20]
    assert {round(t.mean_x) for t in tracks} == {100, 300}
    assert tracks[0].meshes.shape == (20, MESH_POINTS, 2) and tracks[0].sources.tolist() == [SOURCE_MESH] * 20


@pytest.mark.parametrize("template_b", [_TEMPLATE, _TEMPLATE_WIDE], ids=["same-shape", "other-shape"])
def test_crossing_faces_keep_their_identity(template_b):
    # A walks right, B walks left, same size and height; they overlap completely at frame 20.
    n = 41
    dets = [[_det(100 + 10 * k, 200, 80), _det(300 - 10 * k, 200, 80, template_b)] for k in range(n)]
    for k in range(0, n, 3):
        dets[k].reverse()  # the detector's order says nothing about identity
    tracks = track_detections(dets)
    assert len(tracks) == 2 and [t.n_frames for t in tracks] == [n, n]
    xs = sorted((_centres_x(t) for t in tracks), key=lambda x: x[0])
    assert np.all(np.diff(xs[0]) > 0) and np.all(np.diff(xs[1]) < 0)  # each track keeps one direction


def test_crossing_with_occlusion_bridges_the_gap():
    # B passes in front of A: A is not detected on frames 18..22, then comes back on its course.
    n = 41
    dets = []
    for k in range(n):
        frame = [_det(300 - 10 * k, 200, 90)]
        if not 18 <= k <= 22:
            frame.append(_det(100 + 10 * k, 200, 80))
        dets.append(frame)
    tracks = track_detections(dets)
    assert len(tracks) == 2
    a = min(tracks, key=lambda t: _centres_x(t)[0])
    assert a.n_frames == n - 5 and np.all(np.diff(_centres_x(a)) > 0)
    assert set(a.frames.tolist()) == set(range(n)) - set(range(18, 23))


def test_faces_entering_and_leaving():
    # a face on frames 0..9; then nothing; then a face at the same place on 30..39 (a new track: the gap is too long)
    dets = [[_det(100, 100, 60)] if k < 10 or k >= 30 else [] for k in range(40)]
    assert [t.n_frames for t in track_detections(dets, max_gap=12)] == [10, 10]
    # a short gap is bridged: one track
    dets = [[_det(100, 100, 60)] if not 10 <= k < 15 else [] for k in range(40)]
    tracks = track_detections(dets, max_gap=5)
    assert len(tracks) == 1 and tracks[0].n_frames == 35
    assert len(track_detections(dets, max_gap=4)) == 2
    # a second face entering later gets its own track
    dets = [[_det(100, 100, 60)] + ([_det(400, 100, 60)] if k >= 5 else []) for k in range(10)]
    tracks = track_detections(dets)
    assert [(t.n_frames, int(t.frames[0])) for t in tracks] == [(10, 0), (5, 5)]


def test_tracker_wants_increasing_frames_and_sane_options():
    tracker = Tracker()
    tracker.update(3, [])
    with pytest.raises(ConfigError):
        tracker.update(3, [])
    with pytest.raises(ConfigError):
        Tracker(max_gap=-1)
    with pytest.raises(ConfigError):
        Tracker(max_distance=0)
    assert Tracker().finish() == []


# -- choosing the talker ----------------------------------------------------------------------------


@pytest.fixture()
def two_faces():
    """A big face on the left (A), a small one on the right (B), a brief huge false face (C), and B's speech."""
    rng = np.random.default_rng(3)
    n = 100
    open_a = np.clip(np.convolve(rng.uniform(0, 0.5, n), np.ones(3) / 3, "same"), 0, None)
    open_b = np.clip(np.convolve(rng.uniform(0, 0.5, n), np.ones(3) / 3, "same"), 0, None)
    a = _track(0, range(n), 150, 200, 160, open_a)
    b = _track(1, range(n), 500, 200, 60, open_b)
    c = _track(2, range(5), 20, 20, 400, np.zeros(5))
    # B's voice: per-frame amplitude following B's mouth opening
    amp = np.repeat(0.01 + open_b, SAMPLES_PER_FRAME)
    audio = (amp * rng.standard_normal(n * SAMPLES_PER_FRAME)).astype(np.float32)
    return [a, b, c], audio


def test_select_by_audio_agreement_then_largest(two_faces):
    tracks, audio = two_faces
    assert select_track(tracks).id == 0  # no audio: the largest candidate (C is too brief to count)
    track, info = choose_track(tracks, audio)
    assert track.id == 1 and info["rule"] == "audio"
    assert info["agreement"][1] > 0.8 and info["agreement"][0] < 0.5
    silence = np.zeros_like(audio)
    track, info = choose_track(tracks, silence)
    assert track.id == 0 and info["rule"] == "largest"  # no agreement to go on


def test_select_by_index_and_box(two_faces):
    tracks, _ = two_faces
    assert select_track(tracks, choose=0).id == 0  # left to right among the candidates
    assert select_track(tracks, choose=1).id == 1
    assert select_track(tracks, choose=-1).id == 1
    assert select_track(tracks, choose=np.int64(0)).id == 0
    with pytest.raises(ConfigError):
        select_track(tracks, choose=2)
    assert select_track(tracks, choose=(460, 160, 540, 240)).id == 1
    assert select_track(tracks, choose=[60, 100, 250, 300]).id == 0
    with pytest.raises(NoFaceError):
        select_track(tracks, choose=(900, 900, 950, 950))
    with pytest.raises(ConfigError):
        select_track(tracks, choose=(10, 10, 5, 20))
    with pytest.raises(NoFaceError):
        select_track([])


# -- gap filling -------------------------------------------------------------------------------------------


def _linear_landmarks(n: int) -> dict:
    """Landmarks of a face moving on a straight line at constant speed: [N, 478, 2] meshes -> the schema + mesh."""
    mesh = np.stack([_mesh(50 + 3 * k, 80 - 2 * k, 60 + k) for k in range(n)]).astype(np.float64)
    lm = to_landmark_dict(mesh)
    lm["mesh"] = mesh.astype(np.float32)
    return lm


def test_fill_gaps_is_exact_on_linear_motion_and_flags():
    n = 12
    truth = _linear_landmarks(n)
    lm = {k: v.copy() for k, v in truth.items()}
    gaps = [3, 4, 5, 8]
    for k in ("lips", "eyes", "nose", "face_box", "mesh"):
        lm[k][gaps] = np.nan
    out = fill_gaps(lm)
    expect_flags = np.full(n, DETECTED, np.uint8)
    expect_flags[gaps] = INTERPOLATED
    np.testing.assert_array_equal(out["flags"], expect_flags)
    assert out["flags"].dtype == np.uint8
    for k in ("lips", "eyes", "nose", "face_box", "mesh"):
        assert out[k].dtype == np.float32 and np.isfinite(out[k]).all()
        np.testing.assert_allclose(out[k], truth[k], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(out["lip_index"], LIP_INDEX)
    assert np.isnan(lm["lips"][3]).all()  # the input is not changed


def test_fill_gaps_holds_at_the_ends_and_one_missing_key_marks_the_frame():
    lm = _linear_landmarks(8)
    lm["lips"][:2] = np.nan
    lm["nose"][6:] = np.nan  # a frame is missing when any schema array is
    out = fill_gaps(lm)
    np.testing.assert_array_equal(out["flags"], [1, 1, 0, 0, 0, 0, 1, 1])
    for k in ("lips", "eyes", "mesh"):
        np.testing.assert_array_equal(out[k][0], lm[k][2])
        np.testing.assert_array_equal(out[k][1], lm[k][2])
        np.testing.assert_array_equal(out[k][7], lm[k][5])


def test_fill_gaps_without_any_face_raises_and_full_input_passes_through():
    lm = _linear_landmarks(5)
    out = fill_gaps(lm)
    assert out["flags"].tolist() == [0] * 5
    np.testing.assert_array_equal(out["lips"], lm["lips"])
    for k in ("lips", "eyes", "nose", "face_box", "mesh"):
        lm[k][:] = np.nan
    with pytest.raises(NoFaceError):
        fill_gaps(lm)


# -- smoothing -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window,order", [(3, 2), (5, 2), (7, 3), (5, 1), (3, 0), (7, 0)])
def test_smoothing_adds_no_lag_on_a_ramp(window, order):
    lm = _linear_landmarks(20)  # every point moves at constant speed
    out = smooth(lm, window, order)
    for k in ("lips", "eyes", "nose", "face_box", "mesh"):
        np.testing.assert_allclose(out[k], lm[k], rtol=0, atol=1e-3)
    np.testing.assert_array_equal(out["lip_index"], lm["lip_index"])


def test_smoothing_matches_the_polynomial_fit_and_reduces_jitter():
    rng = np.random.default_rng(0)
    n = 40
    lm = _linear_landmarks(n)
    lm["nose"] = (lm["nose"] + rng.normal(0, 1.0, lm["nose"].shape)).astype(np.float32)
    out = smooth(lm, 5, 2)
    x = lm["nose"][:, 0].astype(np.float64)
    for k in (0, 1, 10, 38, 39):  # ends: the fit to the first/last 5 frames; inside: the centred fit
        lo = min(max(k - 2, 0), n - 5)
        coef = np.polyfit(np.arange(lo, lo + 5), x[lo : lo + 5], 2)
        assert out["nose"][k, 0] == pytest.approx(np.polyval(coef, k), abs=1e-3)
    trend = _linear_landmarks(n)["nose"]
    assert np.std(out["nose"] - trend) < 0.85 * np.std(lm["nose"] - trend)
    parabola = {**lm, "nose": np.stack([np.arange(n) ** 2, np.zeros(n)], axis=1).astype(np.float32)}
    np.testing.assert_allclose(smooth(parabola, 7, 2)["nose"], parabola["nose"], atol=1e-2)


def test_smoothing_window_one_short_clips_and_bad_windows():
    lm = _linear_landmarks(4)
    lm["lips"] = lm["lips"] + np.float32(1.0) * (np.arange(4) % 2)[:, None, None]  # zig-zag
    np.testing.assert_array_equal(smooth(lm, 1)["lips"], lm["lips"])
    short = smooth(lm, 9, 0)  # 4 frames: the window becomes 3
    np.testing.assert_allclose(short["lips"][1], (lm["lips"][0] + lm["lips"][1] + lm["lips"][2]) / 3, atol=1e-4)
    for bad in (0, 2, -3):
        with pytest.raises(ConfigError):
            smooth(lm, bad)


# -- whole videos -------------------------------------------------------------------------------------------------


@needs_mediapipe
def test_blank_video_has_no_face(tmp_path):
    path = tmp_path / "blank.mp4"
    write_video(path, np.full((8, 96, 128, 3), 128, np.uint8))
    with pytest.raises(NoFaceError):
        extract_landmarks(path)


@needs_mediapipe
def test_synthetic_face_matches_its_ground_truth(tiny_corpus):
    video = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))[0]
    truth = read_landmarks(tiny_corpus / "dev" / "targets_landmarks" / f"{video.stem}.npz")
    lm, report = extract_landmarks(video)
    n = len(truth["lips"])
    assert report["frames"] == n == len(lm["lips"]) and report["detected"] == n and report["n_tracks"] == 1
    assert report["n_faces"] == 1
    assert set(lm) >= {"lips", "lip_index", "eyes", "nose", "face_box", "flags", "mesh"}
    assert lm["mesh"].shape == (n, MESH_POINTS, 2)
    err = np.linalg.norm(lm["lips"] - truth["lips"], axis=-1)  # pixels of a 224x224 video
    assert np.median(err) < 4.0
    assert np.corrcoef(mouth_opening(lm["lips"]), mouth_opening(truth["lips"]))[0, 1] > 0.6


@needs_mediapipe
def test_rotated_video_gives_upright_landmarks(tiny_corpus, tmp_path):
    video = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))[0]
    frames = read_video(video, max_frames=8, with_audio=False).frames
    path = tmp_path / "rotated.mp4"  # stored a quarter turn clockwise, with "rotate 90 ccw to display"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = frames.shape[1], frames.shape[2], "yuv420p"
        s.set_display_rotation(90)
        for f in frames:
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(np.rot90(f, -1)), format="rgb24")))
        c.mux(s.encode(None))
    upright, _ = extract_landmarks(video, smooth_window=1)
    turned, report = extract_landmarks(path, smooth_window=1)
    assert report["frames"] == 8 and report["detected"] == 8
    assert np.all(turned["eyes"][:, :, 1].max(axis=1) < turned["lips"][:, :, 1].min(axis=1))  # eyes above the mouth
    assert np.median(np.linalg.norm(turned["lips"] - upright["lips"][:8], axis=-1)) < 4.0


@needs_mediapipe
@pytest.mark.parametrize("fps,expect_detected", [(50, 18), (20, 36)])
def test_other_frame_rates_are_put_on_the_25_fps_grid(tiny_corpus, tmp_path, fps, expect_detected):
    video = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))[0]
    frames = read_video(video, max_frames=36, with_audio=False).frames
    path = tmp_path / f"at{fps}.mp4"
    write_video(path, frames, fps=fps)  # 36 frames: 0.72 s at 50 fps, 1.8 s at 20 fps
    lm, report = extract_landmarks(path)
    n = math.ceil(36 / fps * 25)
    assert report["frames"] == n == len(lm["lips"]) and report["detected"] == n
    # each distinct source frame is searched once: 50 fps skips every other one, 20 fps shows some twice
    assert report["detector"]["frames"] == expect_detected
    assert report["source_fps"] == fps


def _grid_clips() -> list[Path]:
    clips = sorted((SHARED / "grid").glob("*.mpg")) if (SHARED / "grid").is_dir() else []
    if not clips:
        pytest.skip(f"no GRID clips in {SHARED / 'grid'}")
    return clips


@needs_mediapipe
def test_grid_clip_has_a_face_on_every_frame():
    lm, report = extract_landmarks(_grid_clips()[0])
    assert report["frames"] == 75 and report["detected"] == 75 and report["interpolated"] == 0
    assert report["n_tracks"] == 1 and report["choice"] == "only" and report["reacquired"] == 0
    assert report["source_fps"] == 25
    json.dumps(report)  # a plain report
    box = lm["face_box"]
    assert np.all((lm["lips"][..., 0] > box[:, None, 0]) & (lm["lips"][..., 0] < box[:, None, 2]))
    assert np.std(mouth_opening(lm["lips"])) > 0.02  # the talker's mouth moves


@needs_mediapipe
@pytest.mark.slow
def test_all_grid_clips_have_a_face_on_every_frame():
    for clip in _grid_clips():
        _, report = extract_landmarks(clip)
        assert (report["frames"], report["detected"], report["n_tracks"]) == (75, 75, 1), clip.name


@needs_mediapipe
@pytest.mark.slow
def test_small_webcam_face_in_a_screencast():
    # 1280x720 at 30 fps, a ~75 px face in a webcam inset, visible all along: only the crop path finds it.
    if not MOVIE.is_file():
        pytest.skip(f"{MOVIE} is absent (Debian package forensics-samples-files)")
    lm, report = extract_landmarks(MOVIE)
    assert report["frames"] == 207 or report["frames"] == 208
    assert report["detected"] / report["frames"] >= 0.95  # found on all 208 frames here
    assert report["detector"]["mesh_frames"] == 0 and report["reacquired"] >= 0.95 * report["frames"]
    x0, y0, x1, y1 = np.median(lm["face_box"], axis=0)
    assert 150 < x0 < x1 < 300 and 100 < y0 < y1 < 260  # the webcam inset, top left


@needs_mediapipe
@pytest.mark.slow
def test_the_talker_is_the_face_that_moves_with_the_audio(tmp_path):
    # Two GRID talkers side by side with the audio of one of them: the face whose lips follow it is chosen.
    clips = {c.stem: c for c in _grid_clips()}
    if not {"bbaf2n", "lbax4n"} <= set(clips):
        pytest.skip("GRID clips bbaf2n and lbax4n are needed")
    a, b = read_video(clips["bbaf2n"]), read_video(clips["lbax4n"])
    for left, right in ((a, b), (b, a)):
        path = tmp_path / "pair.mp4"
        write_video(path, np.concatenate([left.frames, right.frames], axis=2), audio=right.audio)
        lm, report = extract_landmarks(path)
        assert report["n_tracks"] == 2 and report["n_faces"] == 2 and report["choice"] == "audio"
        assert np.all(lm["face_box"][:, 0] > 360)  # the right-hand face: the one speaking
        # and by hand: the index and the box pick the other face
        other, _ = extract_landmarks(path, choose=0)
        assert np.all(other["face_box"][:, 2] < 360)
