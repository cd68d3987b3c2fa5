"""Tests of the synthetic talking-face renderer and the landmark files."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from avse.data.face import blink_schedule, draw_landmarks, render_face, style_for_speaker
from avse.data.visemes import OPEN, lip_trajectory, phone_targets
from avse.errors import ConfigError, MediaError
from avse.video.landmarks import LANDMARK_KEYS, LIP_INDEX, mouth_opening, read_landmarks, write_landmarks

FPS = 25
# a sentence-like phone sequence: closed, open, rounded, labiodental, spread, ... (symbol, duration)
SEQ = [("pau", 0.3), ("m", 0.1), ("aa", 0.25), ("p", 0.08), ("uw", 0.25), ("f", 0.1), ("iy", 0.25), ("s", 0.12),
       ("ae", 0.2), ("b", 0.08), ("ow", 0.3), ("w", 0.1), ("ay", 0.3), ("pau", 0.5)]  # fmt: skip


def _phones(seq):
    out, t = [], 0.0
    for sym, dur in seq:
        out.append((sym, t, t + dur))
        t += dur
    return out


PHONES = _phones(SEQ)
N = int(np.ceil(PHONES[-1][2] * FPS))  # 74 frames


def _frame_of(k: int) -> int:
    """The frame whose centre is nearest the middle of phone k."""
    return int(round((PHONES[k][1] + PHONES[k][2]) / 2 * FPS - 0.5))


@pytest.fixture(scope="module")
def rendered():
    style = style_for_speaker(3)
    traj = lip_trajectory(PHONES, N, rng=np.random.default_rng(0))
    frames, lm = render_face(traj, style, rng=np.random.default_rng(5))
    return traj, style, frames, lm


def test_style_is_deterministic_and_differs_between_speakers():
    assert style_for_speaker(7) == style_for_speaker(7)
    assert style_for_speaker("spk001") == style_for_speaker("spk001")
    styles = [style_for_speaker(s) for s in range(12)]
    assert len({s.skin for s in styles}) == 12
    assert len({s.hair_style for s in styles}) > 1 and len({s.lip_width for s in styles}) == 12


def test_shapes_dtypes_and_contract(rendered):
    traj, _, frames, lm = rendered
    assert frames.shape == (N, 224, 224, 3) and frames.dtype == np.uint8
    assert tuple(lm) == LANDMARK_KEYS
    assert lm["lips"].shape == (N, 40, 2) and lm["lips"].dtype == np.float32
    assert lm["eyes"].shape == (N, 4, 2) and lm["eyes"].dtype == np.float32
    assert lm["nose"].shape == (N, 2) and lm["nose"].dtype == np.float32
    assert lm["face_box"].shape == (N, 4) and lm["face_box"].dtype == np.float32
    np.testing.assert_array_equal(lm["lip_index"], LIP_INDEX)


def test_deterministic_for_a_seed(rendered):
    traj, style, frames, lm = rendered
    frames2, lm2 = render_face(traj, style, rng=np.random.default_rng(5))
    np.testing.assert_array_equal(frames, frames2)
    for k in LANDMARK_KEYS:
        np.testing.assert_array_equal(lm[k], lm2[k])
    frames3, _ = render_face(traj, style, rng=np.random.default_rng(6))
    assert not np.array_equal(frames, frames3)


def test_landmarks_inside_frame_and_face_box(rendered):
    _, _, frames, lm = rendered
    h, w = frames.shape[1:3]
    box = lm["face_box"]
    assert np.all(box[:, 0] >= 0) and np.all(box[:, 1] >= 0) and np.all(box[:, 2] < w) and np.all(box[:, 3] < h)
    pts = np.concatenate([lm["lips"], lm["eyes"], lm["nose"][:, None]], 1)  # [N, 45, 2]
    assert np.all(pts[..., 0] > box[:, None, 0]) and np.all(pts[..., 0] < box[:, None, 2])
    assert np.all(pts[..., 1] > box[:, None, 1]) and np.all(pts[..., 1] < box[:, None, 3])


def test_anatomical_order(rendered):
    _, _, _, lm = rendered
    lips, eyes, nose = lm["lips"], lm["eyes"], lm["nose"]
    x, y = lips[..., 0], lips[..., 1]
    assert np.all(x[:, 0] < x[:, 10])  # 61 (image left) .. 291
    assert np.all(x[:, 20] < x[:, 30])  # 78 .. 308
    assert np.all(np.diff(x[:, 0:11], axis=1) > 0)  # lower outer lip runs left to right
    assert np.all(np.diff(x[:, 11:20], axis=1) > 0)  # upper outer lip 185 .. 409 too
    assert np.all(y[:, 15] < y[:, 35])  # outer upper midpoint 0 above inner upper 13
    assert np.all(y[:, 35] <= y[:, 25] + 1e-3)  # 13 above (or on) 14
    assert np.all(y[:, 25] < y[:, 5])  # inner lower 14 above outer lower 17
    assert np.all(np.diff(eyes[..., 0], axis=1) > 0)  # 33 < 133 < 362 < 263 in x
    assert np.all((nose[:, 0] > eyes[:, 1, 0]) & (nose[:, 0] < eyes[:, 2, 0]))
    assert np.all(nose[:, 1] > eyes[..., 1].max(1)) and np.all(nose[:, 1] < y[:, 15])


def test_lips_closed_on_bilabials_and_open_on_open_vowels(rendered):
    traj, _, _, lm = rendered
    gap = np.linalg.norm(lm["lips"][:, 25] - lm["lips"][:, 35], axis=-1)  # |14 - 13| in pixels
    opening = mouth_opening(lm["lips"])
    for k, (sym, _, _) in enumerate(PHONES):
        i = _frame_of(k)
        if sym in ("m", "p", "b"):
            assert gap[i] < 0.05, (sym, gap[i])
        if sym in ("aa", "ae", "ay"):
            assert opening[i] > 0.25, (sym, opening[i])
    assert opening[_frame_of(2)] > 1.5 * opening[_frame_of(4)]  # aa wider open than uw


def test_mouth_opening_follows_the_targets(rendered):
    traj, _, _, lm = rendered
    opening = mouth_opening(lm["lips"])
    assert np.corrcoef(opening, traj[:, OPEN])[0, 1] > 0.95
    centres = (np.arange(N) + 0.5) / FPS
    target = np.array([phone_targets(next((s for s, a, b in PHONES if a <= t < b), "pau"))[OPEN] for t in centres])
    assert np.corrcoef(opening, target)[0, 1] > 0.75


def _nearest(pixel: np.ndarray, colours: dict[str, tuple[int, int, int]]) -> str:
    return min(colours, key=lambda k: float(np.sum((pixel.astype(float) - colours[k]) ** 2)))


def test_landmarks_sit_on_the_drawn_mouth(rendered):
    traj, style, _, _ = rendered
    style = dataclasses.replace(style, light_var=0.0, noise_sigma=0.0)  # colours as drawn
    frames, lm = render_face(traj, style, size=(448, 448), rng=np.random.default_rng(5))  # lips a few pixels thick
    i = _frame_of(2)  # 'aa': wide open
    lips = lm["lips"][i]
    img = frames[i].astype(float)
    colours = {"lip": style.lip_color, "skin": style.skin}

    def at(p: np.ndarray) -> np.ndarray:
        return img[int(round(p[1])), int(round(p[0]))]

    assert _nearest(at((lips[15] + lips[35]) / 2), colours) == "lip"  # upper lip between 0 and 13
    assert _nearest(at((lips[5] + lips[25]) / 2), colours) == "lip"  # lower lip between 17 and 14
    assert at((lips[25] + lips[35]) / 2).mean() < 90  # dark mouth between 13 and 14
    assert _nearest(at(lips[15] + (lips[15] - lips[35])), colours) == "skin"  # above the upper lip
    assert _nearest(at(lips[5] + 0.5 * (lips[5] - lips[25])), colours) == "skin"  # below the lower lip


def test_mouth_region_moves(rendered):
    _, _, frames, lm = rendered

    def patch(i: int) -> np.ndarray:
        cx, cy = np.round(lm["lips"][i].mean(0)).astype(int)
        return frames[i, cy - 10 : cy + 10, cx - 16 : cx + 16].astype(float)

    closed, open_ = _frame_of(1), _frame_of(2)
    assert np.abs(patch(closed) - patch(open_)).mean() > 20


def test_blink_schedule():
    rng = np.random.default_rng(0)
    lid = blink_schedule(250, rng)
    assert lid.shape == (250,) and lid.dtype == np.float32
    assert lid.min() == 0.0 and lid.max() == 1.0
    on = np.concatenate([[0], (lid > 0).astype(int), [0]])
    starts, stops = np.nonzero(np.diff(on) == 1)[0], np.nonzero(np.diff(on) == -1)[0]
    lengths = stops - starts
    assert len(lengths) >= 2 and np.all((lengths >= 3) & (lengths <= 5) | (stops == 250))
    assert starts[0] <= 2.5 * FPS
    for a, b in zip(starts, stops):
        assert lid[a:b].max() == 1.0 or b == 250


def test_blinks_are_drawn(rendered):
    _, _, frames, lm = rendered
    lid = blink_schedule(N, np.random.default_rng(5))  # render_face draws the blinks first from its rng
    shut = np.nonzero(lid == 1.0)[0]
    assert len(shut) > 0
    i = int(shut[0])
    j = int(np.nonzero(lid == 0)[0][np.argmin(np.abs(np.nonzero(lid == 0)[0] - i))])  # nearest open frame

    half = int(abs(lm["eyes"][i, 1, 0] - lm["eyes"][i, 0, 0]) / 2)  # half the eye length

    def eye_patch(k: int) -> np.ndarray:
        cx, cy = np.round(lm["eyes"][k, :2].mean(0)).astype(int)  # between the right-eye corners 33, 133
        return frames[k, cy - half // 2 : cy + 2, cx - half + 2 : cx + half - 1].astype(float)

    assert np.abs(eye_patch(i) - eye_patch(j)).mean() > 15
    np.testing.assert_allclose(lm["eyes"][i], lm["eyes"][j], atol=3.0)  # corners stay put while blinking


def test_different_speakers_look_different():
    traj = lip_trajectory(PHONES, 10)
    a, _ = render_face(traj, style_for_speaker(1), rng=np.random.default_rng(0))
    b, _ = render_face(traj, style_for_speaker(2), rng=np.random.default_rng(0))
    assert np.abs(a.astype(float) - b.astype(float)).mean() > 20


def test_other_sizes_and_bad_input():
    traj = lip_trajectory(PHONES, 8)
    frames, lm = render_face(traj, style_for_speaker(4), size=(160, 128))
    assert frames.shape == (8, 160, 128, 3)
    box = lm["face_box"]
    assert np.all(box >= 0) and np.all(box[:, [0, 2]] < 128) and np.all(box[:, [1, 3]] < 160)
    empty, lm0 = render_face(traj[:0], style_for_speaker(4))
    assert empty.shape == (0, 224, 224, 3) and lm0["lips"].shape == (0, 40, 2)
    with pytest.raises(ConfigError):
        render_face(traj[:, :3], style_for_speaker(4))


def test_draw_landmarks_returns_a_marked_copy(rendered):
    _, _, frames, lm = rendered
    out = draw_landmarks(frames[0], lm, 0)
    assert out.shape == frames[0].shape and out.dtype == np.uint8
    assert not np.array_equal(out, frames[0])


def test_landmark_file_round_trip(tmp_path, rendered):
    _, _, _, lm = rendered
    marks = dict(lm)
    marks["phone_symbols"] = np.array([p[0] for p in PHONES])
    marks["phone_times"] = np.array([[a, b] for _, a, b in PHONES])
    for name in ("u1.npz", "u2.landmarks"):  # a name without .npz must not grow one
        path = tmp_path / name
        write_landmarks(path, marks)
        back = read_landmarks(path)
        assert set(back) == set(marks)
        for k in marks:
            np.testing.assert_array_equal(back[k], marks[k])
        assert back["lips"].dtype == np.float32 and back["lip_index"].dtype == np.int32
    assert sorted(p.name for p in tmp_path.iterdir()) == ["u1.npz", "u2.landmarks"]  # no temp files left


def test_landmark_file_errors(tmp_path, rendered):
    _, _, _, lm = rendered
    with pytest.raises(MediaError):
        read_landmarks(tmp_path / "missing.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(MediaError):
        read_landmarks(bad)
    with pytest.raises(MediaError):
        write_landmarks(tmp_path / "x.npz", {k: v for k, v in lm.items() if k != "nose"})
    with pytest.raises(MediaError):
        write_landmarks(tmp_path / "x.npz", dict(lm, eyes=lm["eyes"][:-1]))
    assert not (tmp_path / "x.npz").exists()
    partial = tmp_path / "partial.npz"
    np.savez(partial, lips=lm["lips"])
    with pytest.raises(MediaError):
        read_landmarks(partial)


def test_style_fields_are_plain_values():
    st = style_for_speaker(9)
    for f in dataclasses.fields(st):
        v = getattr(st, f.name)
        assert isinstance(v, (int, float, tuple)), f.name
