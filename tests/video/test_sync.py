"""A/V sync: per-frame agreement, offset estimation at 10 ms, shifting audio in memory and in files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.errors import ConfigError, MediaError, NoFaceError, OutputPathError
from avse.video.frontend import sync_video
from avse.video.landmarks import LIP_INDEX, mouth_opening, write_landmarks
from avse.video.shift import write_shifted
from avse.video.sync import (
    RELIABLE_MAX,
    RELIABLE_MIN,
    _pearson_lags,
    estimate_offset,
    lagged_correlation,
    lip_drop,
    reliability_threshold,
    shift_audio,
    speech_envelope,
)

GRID = Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "grid"


def opening_signal(n: int, seed: int) -> np.ndarray:
    """A smooth, speech-like mouth opening [n] in [0, 1], closed about 30 % of the time."""
    rng = np.random.default_rng(seed)
    x = np.convolve(rng.standard_normal(n + 8), np.hanning(7), "same")[4:-4]
    x = np.clip(x - np.percentile(x, 30), 0, None)
    return x / x.max()


def audio_following(opening: np.ndarray, delay_ms: float = 0.0) -> np.ndarray:
    """A 1.5 kHz tone whose level in dB is proportional to ``opening`` (frame centres), delayed by ``delay_ms``."""
    t = np.arange(len(opening) * SAMPLES_PER_FRAME) / SAMPLE_RATE
    amp = np.interp(t - delay_ms / 1000.0, (np.arange(len(opening)) + 0.5) / 25.0, opening)
    return (0.01 * np.exp(3.0 * amp) * np.sin(2 * np.pi * 1500.0 * t)).astype(np.float32)


def lips_from_opening(opening: np.ndarray) -> np.ndarray:
    """Lip contours [N, 40, 2] (LIP_INDEX order) of a 40 px wide mouth whose lower lip drops with ``opening``."""
    n = len(opening)
    lips = np.zeros((n, 40, 2))
    g = 40.0 * opening[:, None]  # inner gap in px: mouth_opening == opening
    x_outer, x_up = np.linspace(-20, 20, 11), np.linspace(-17, 17, 9)
    x_in, x_in_up = np.linspace(-18, 18, 11), np.linspace(-15, 15, 9)
    bump = lambda x: np.cos(np.pi * x / 40.0)  # noqa: E731
    lips[:, 0:11] = np.stack(np.broadcast_arrays(x_outer, (4 + 0.8 * g) * bump(x_outer)), -1)  # outer lower 61 .. 291
    lips[:, 11:20] = np.stack(np.broadcast_arrays(x_up, -4 - 0.2 * g * bump(x_up)), -1)  # outer upper 185 .. 409
    lips[:, 20:31] = np.stack(np.broadcast_arrays(x_in, 0.8 * g * bump(x_in)), -1)  # inner lower 78 .. 308
    lips[:, 31:40] = np.stack(np.broadcast_arrays(x_in_up, -0.2 * g * bump(x_in_up)), -1)  # inner upper 191 .. 415
    lips[:, 20] = lips[:, 0] + [2, 0]  # inner corners next to the outer ones
    lips[:, 30] = lips[:, 10] - [2, 0]
    return lips + [180.0, 200.0]


def landmark_dict(lips: np.ndarray) -> dict[str, np.ndarray]:
    n = len(lips)
    return {
        "lips": lips.astype(np.float32),
        "lip_index": LIP_INDEX,
        "eyes": np.zeros((n, 4, 2), np.float32),
        "nose": np.zeros((n, 2), np.float32),
        "face_box": np.tile(np.float32([100, 100, 260, 300]), (n, 1)),
    }


# --- the three functions that were there first ----------------------------------------------


def test_lagged_correlation_matches_fft_version():
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(60), rng.standard_normal(60)
    np.testing.assert_allclose(_pearson_lags(a, b, 7), lagged_correlation(a, b, 7), atol=1e-12)


# --- signals --------------------------------------------------------------------------------


def test_speech_envelope_grid_and_band():
    audio = np.zeros(16_000, np.float32)
    t = np.arange(160) / SAMPLE_RATE
    audio[8000:8160] = np.sin(2 * np.pi * 1500 * t)  # in the band, centred on step 50: (50 + 0.5) * 10 ms
    audio[12000:12160] = np.sin(2 * np.pi * 200 * t)  # below the band: only the edges leak in
    env = speech_envelope(audio)
    assert env.shape == (100,)  # ceil(16000 / 160)
    assert int(np.argmax(env)) == 50
    assert env[75] < env[50] - 25.0  # the 200 Hz burst of the same power is 25 dB weaker in the band
    assert speech_envelope(np.zeros(161, np.float32)).shape == (2,)


def test_lip_drop_is_invariant_to_pose_and_fills_gaps():
    op = opening_signal(50, 1)
    lips = lips_from_opening(op)
    ref = lip_drop(lips)
    assert ref.shape == (50,) and abs(ref.mean()) < 1e-9 and abs(ref.std() - 1) < 1e-9
    assert np.corrcoef(ref, op)[0, 1] > 0.99
    angle = np.deg2rad(np.linspace(-20, 20, 50))[:, None]
    c, s = np.cos(angle), np.sin(angle)
    moved = np.stack([c * lips[..., 0] - s * lips[..., 1], s * lips[..., 0] + c * lips[..., 1]], -1) * 1.7 + [30.0, -12.0]
    np.testing.assert_allclose(lip_drop(moved), ref, atol=1e-9)
    holed = lips.copy()
    holed[10] = np.nan
    flags = np.zeros(50, np.uint8)
    flags[20] = 2
    filled = lip_drop(holed, flags)
    assert np.all(np.isfinite(filled))
    with pytest.raises(NoFaceError):
        lip_drop(np.full((5, 40, 2), np.nan))
    with pytest.raises(ConfigError):
        lip_drop(np.zeros((5, 20, 2)))


# --- the offset -----------------------------------------------------------------------------


@pytest.mark.parametrize("k", [-40, -17, -4, 0, 3, 12, 25, 40])
def test_known_shift_is_recovered(k):
    """Audio built from the opening delayed by k * 10 ms: the offset is k * 10 ms."""
    op = opening_signal(100, 3)
    est = estimate_offset(op, audio_following(op, delay_ms=10.0 * k))
    assert abs(est.offset_ms - 10.0 * k) < 1.0
    assert est.lags_ms.shape == est.corr_curve.shape == (101,)
    assert est.lags_ms[0] == -500 and est.lags_ms[-1] == 500


def test_sign_convention_audio_late_is_positive():
    op = opening_signal(100, 4)
    audio = audio_following(op)
    late = estimate_offset(op, shift_audio(audio, 120.0)).offset_ms  # sound heard after the mouth moved
    early = estimate_offset(op, shift_audio(audio, -120.0)).offset_ms
    assert 115 <= late <= 125 and -125 <= early <= -115
    fixed = estimate_offset(op, shift_audio(shift_audio(audio, 120.0), -late)).offset_ms
    assert abs(fixed) < 5.0


def test_lips_and_opening_inputs_agree():
    op = opening_signal(100, 5)
    audio = audio_following(op, delay_ms=70.0)
    lips = lips_from_opening(op)
    assert abs(estimate_offset(lips, audio).offset_ms - 70.0) < 5.0
    assert abs(estimate_offset(mouth_opening(lips), audio).offset_ms - 70.0) < 1.0


def test_confidence_separates_true_and_wrong_pairs():
    op, other = opening_signal(100, 6), opening_signal(100, 7)
    audio = audio_following(op)
    good, bad = estimate_offset(op, audio), estimate_offset(other, audio)
    assert good.confidence > 0.6 and good.reliable
    assert bad.confidence < good.threshold and not bad.reliable
    assert good.threshold == reliability_threshold(good.duration_s)
    assert good.duration_s == pytest.approx(4.0)


def test_reliability_threshold_falls_with_length():
    values = [reliability_threshold(s) for s in (0.5, 2.0, 4.0, 10.0, 100.0, 10_000.0)]
    assert values == sorted(values, reverse=True)
    assert values[0] == RELIABLE_MAX and values[-1] == RELIABLE_MIN


def test_degenerate_inputs():
    op = opening_signal(50, 8)
    silent = estimate_offset(op, np.zeros(50 * SAMPLES_PER_FRAME, np.float32))
    assert silent.offset_ms == 0.0 and silent.confidence == 0.0 and not silent.reliable
    still = estimate_offset(np.full(50, 0.2), audio_following(op))
    assert still.confidence == 0.0 and not still.reliable
    with pytest.raises(ConfigError):
        estimate_offset(op[:10], audio_following(op))  # 0.4 s of lips
    with pytest.raises(ConfigError):
        estimate_offset(np.zeros((50, 3)), audio_following(op))
    with pytest.raises(NoFaceError):
        estimate_offset(np.full(50, np.nan), audio_following(op))


def test_short_clip_searches_at_most_half_its_length():
    op = opening_signal(20, 9)  # 0.8 s: lags up to 400 ms
    est = estimate_offset(op, audio_following(op, 50.0))
    assert est.lags_ms[-1] == 400.0 and est.lags_ms.shape == (81,)
    assert abs(est.offset_ms - 50.0) < 5.0


# --- shifting audio -------------------------------------------------------------------------


def test_shift_audio_round_trip():
    x = np.arange(1, 33, dtype=np.float32)
    d = shift_audio(x, 0.25, sample_rate=16_000)  # 4 samples later
    np.testing.assert_array_equal(d, np.r_[np.zeros(4), x[:-4]])
    back = shift_audio(d, -0.25, sample_rate=16_000)
    np.testing.assert_array_equal(back, np.r_[x[:-4], np.zeros(4)])
    assert back.dtype == np.float32 and back.shape == x.shape
    stereo = np.stack([x, -x])
    np.testing.assert_array_equal(shift_audio(stereo, -0.125), np.stack([np.r_[x[2:], 0, 0], np.r_[-x[2:], 0, 0]]))
    np.testing.assert_array_equal(shift_audio(x, 10.0), np.zeros_like(x))  # beyond the length: all silence
    np.testing.assert_array_equal(shift_audio(x, 0.0), x)
    with pytest.raises(ConfigError):
        shift_audio(x, float("nan"))


# --- files ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def talking_clip(tmp_path_factory):
    """A 3 s video (blank frames) whose AAC track follows a synthetic mouth, with that mouth's landmarks."""
    from avse.video.io import write_video

    op = opening_signal(75, 11)
    folder = tmp_path_factory.mktemp("sync")
    video = folder / "clip.mp4"
    frames = np.full((75, 64, 64, 3), 90, np.uint8)
    write_video(video, frames, audio=audio_following(op), preset="ultrafast")
    return video, landmark_dict(lips_from_opening(op))


def _video_packets(path: Path) -> list[tuple[bytes, int | None]]:
    import av

    with av.open(str(path)) as c:
        return [(bytes(p), p.pts) for p in c.demux(c.streams.video[0]) if p.size]


def _lag(a: np.ndarray, b: np.ndarray, max_lag: int) -> int:
    """The lag l maximising sum_t a[t] b[t + l] (b late: l > 0)."""
    n = min(len(a), len(b))
    lags = np.arange(-max_lag, max_lag + 1)
    scores = [np.dot(a[max(0, -k) : n - max(0, k)], b[max(0, k) : n - max(0, -k)]) for k in lags]
    return int(lags[int(np.argmax(scores))])


def test_sync_video_reads_the_file(talking_clip, tmp_path):
    video, lm = talking_clip
    est = sync_video(video, landmarks=lm)
    assert abs(est.offset_ms) < 5.0 and est.reliable
    write_landmarks(tmp_path / "lm.npz", lm)
    assert sync_video(video, landmarks=tmp_path / "lm.npz").offset_ms == pytest.approx(est.offset_ms)


@pytest.mark.parametrize("offset_ms", [80.0, -120.0])
def test_write_shifted_copies_video_and_moves_audio(talking_clip, tmp_path, offset_ms):
    from avse.audio.io import load_audio

    video, lm = talking_clip
    out = tmp_path / "fixed.mp4"
    write_shifted(video, offset_ms, out)
    assert _video_packets(out) == _video_packets(video)
    a, _ = load_audio(video)
    b, _ = load_audio(out)
    assert abs(len(b) - len(a)) <= 1024
    want = int(round(-offset_ms * SAMPLE_RATE / 1000))  # the audio moves by -offset
    assert abs(_lag(a, b, 3000) - want) <= 2
    assert abs(sync_video(out, landmarks=lm).offset_ms + offset_ms) < 5.0
    assert not list(tmp_path.glob(".*part*"))  # written atomically


def test_write_shifted_refuses_bad_requests(talking_clip, tmp_path):
    from avse.video.io import write_video

    video, _ = talking_clip
    with pytest.raises(OutputPathError):
        write_shifted(video, 40.0, video)
    silent = tmp_path / "silent.mp4"
    write_video(silent, np.zeros((5, 32, 32, 3), np.uint8))
    with pytest.raises(MediaError):
        write_shifted(silent, 40.0, tmp_path / "out.mp4")
    with pytest.raises(MediaError):
        write_shifted(tmp_path / "missing.mp4", 40.0, tmp_path / "out.mp4")
    with pytest.raises(ConfigError):
        write_shifted(video, float("inf"), tmp_path / "out.mp4")
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.slow
@pytest.mark.skipif(not GRID.is_dir(), reason="no GRID clips beside the project")
def test_grid_clip_is_in_sync():
    clip = sorted(GRID.glob("*.mpg"))[0]
    est = sync_video(clip)
    assert abs(est.offset_ms) <= 40.0


@pytest.mark.parametrize("n,max_lag", [(50, 5), (10, 8), (7, 12), (200, 5)])
def test_lagged_correlation_is_pearson_over_the_overlap(n, max_lag):
    from avse.video.sync import lagged_correlation

    rng = np.random.default_rng(n)
    a, b = rng.standard_normal(n), rng.standard_normal(n + 3)
    got = lagged_correlation(a, b, max_lag)
    for i, lag in enumerate(range(-max_lag, max_lag + 1)):
        m = max(0, n - abs(lag))  # overlap length
        x, y = a[max(0, -lag) :][:m], b[:n][max(0, lag) :][:m]
        if m > 2:
            assert got[i] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9)
        else:
            assert np.isnan(got[i])
