"""Tests for avse.video.io: decoding, constant-fps resampling, H.264 writing, stream copy, broken files."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf

from avse.errors import ConfigError, MediaError, OutputPathError
from avse.video.io import (
    VideoClip,
    copy_video_stream,
    iter_frames,
    iter_grid_frames,
    read_video,
    to_constant_fps,
    write_video,
)

GRID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "grid"


def _frames(n: int = 25, h: int = 48, w: int = 64) -> np.ndarray:
    """Smooth moving gradients (what a codec keeps well), uint8 [n, h, w, 3]."""
    yy, xx = np.mgrid[:h, :w].astype(np.float64)
    out = np.empty((n, h, w, 3), np.uint8)
    for i in range(n):
        out[i, ..., 0] = 128 + 100 * np.sin(2 * np.pi * (xx / w + i / n))
        out[i, ..., 1] = 128 + 100 * np.cos(2 * np.pi * (yy / h - i / n))
        out[i, ..., 2] = (40 + 6 * i) % 256
    return out


def _sine(seconds: float, freq: float = 440.0, sr: int = 16000) -> np.ndarray:
    return (0.4 * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


def _packets(path: Path) -> list[tuple[bytes, float, float]]:
    """Video packets of ``path`` as (bytes, pts s, dts s), without the end-of-stream marker."""
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [(bytes(p), float(p.pts * s.time_base), float(p.dts * s.time_base)) for p in c.demux(s) if p.size]


def _grid_clip() -> Path:
    clips = sorted(GRID.glob("*.mpg")) if GRID.is_dir() else []
    if not clips:
        pytest.skip(f"no GRID clips in {GRID}")
    return clips[0]


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory) -> tuple[Path, np.ndarray, np.ndarray]:
    frames, audio = _frames(25), _sine(1.0)
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames, fps=25, audio=audio)
    return path, frames, audio


# --- write + read ----------------------------------------------------------------------------------------------


def test_write_then_read_round_trip(clip_with_audio):
    path, frames, audio = clip_with_audio
    clip = read_video(path)
    assert isinstance(clip, VideoClip) and clip.path == path
    assert clip.frames.shape == (25, 48, 64, 3) and clip.frames.dtype == np.uint8
    assert clip.timestamps.dtype == np.float64
    np.testing.assert_allclose(clip.timestamps, np.arange(25) * 0.04, atol=1e-9)
    assert clip.fps == 25.0 and clip.rotation == 0
    assert clip.duration == pytest.approx(1.0)
    err = np.abs(clip.frames.astype(np.int16) - frames.astype(np.int16))
    assert err.mean() < 4.0  # lossy, but close (crf 18)
    assert clip.audio is not None and clip.audio.dtype == np.float32 and clip.sample_rate == 16000
    assert 16000 <= clip.audio.shape[0] < 16000 + 2048  # AAC pads to whole 1024-sample frames
    assert np.corrcoef(clip.audio[:16000], audio)[0, 1] > 0.99


def test_written_file_is_h264_yuv420p_with_aac(clip_with_audio):
    path = clip_with_audio[0]
    with av.open(str(path)) as c:
        v, a = c.streams.video[0], c.streams.audio[0]
        assert v.codec_context.name == "h264" and v.codec_context.pix_fmt == "yuv420p"
        assert (v.width, v.height) == (64, 48) and v.average_rate == 25
        assert a.codec_context.name == "aac" and a.rate == 16000 and a.codec_context.layout.nb_channels == 1
    assert sorted(os.listdir(path.parent)) == ["clip.mp4"]  # no temporary file left


def test_iter_frames_streams_the_same_frames(clip_with_audio):
    path = clip_with_audio[0]
    clip = read_video(path, with_audio=False)
    assert clip.audio is None
    items = list(iter_frames(path))
    assert len(items) == 25
    for (t, img), t_ref, img_ref in zip(items, clip.timestamps, clip.frames):
        assert t == t_ref
        np.testing.assert_array_equal(img, img_ref)
    first = list(iter_frames(path, max_frames=3))
    assert [t for t, _ in first] == list(clip.timestamps[:3])


def test_max_frames_cuts_frames_and_audio(clip_with_audio):
    clip = read_video(clip_with_audio[0], max_frames=10)
    assert clip.frames.shape[0] == 10
    assert clip.audio is not None and clip.audio.shape == (6400,)  # 10 frames * 640 samples
    with pytest.raises(ConfigError):
        read_video(clip_with_audio[0], max_frames=0)


def test_video_without_audio_and_other_rates(tmp_path):
    path = tmp_path / "silent.mp4"
    write_video(path, _frames(15), fps=Fraction(30000, 1001))
    clip = read_video(path)
    assert clip.audio is None
    assert clip.fps == pytest.approx(30000 / 1001)
    np.testing.assert_allclose(clip.timestamps, np.arange(15) * 1001 / 30000, atol=1e-6)
    write_video(tmp_path / "fifty.mp4", _frames(10), fps=50)
    clip50 = read_video(tmp_path / "fifty.mp4")
    assert clip50.fps == 50.0
    np.testing.assert_allclose(clip50.timestamps, np.arange(10) * 0.02, atol=1e-9)


def test_odd_frame_sizes_are_padded_to_even(tmp_path):
    frames = _frames(5, h=33, w=47)
    write_video(tmp_path / "odd.mp4", frames)
    clip = read_video(tmp_path / "odd.mp4")
    assert clip.frames.shape == (5, 34, 48, 3)  # one row and one column repeated
    err = np.abs(clip.frames[:, :33, :47].astype(np.int16) - frames.astype(np.int16))
    assert err.mean() < 6.0  # tiny frames cost x264 more
    edge = np.abs(clip.frames[:, 33].astype(np.int16) - clip.frames[:, 32].astype(np.int16))
    assert edge.mean() < 4.0


def test_rotation_metadata_is_applied(tmp_path):
    # A 64x32 picture whose stream says "rotate 90 degrees counter-clockwise to display", as phones write.
    path = tmp_path / "rotated.mp4"
    img = np.zeros((32, 64, 3), np.uint8)
    img[:8, :8] = 255  # a white square in the top-left corner
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)
        for _ in range(3):
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    clip = read_video(path)
    assert clip.rotation == 90
    assert clip.frames.shape == (3, 64, 32, 3)
    # turned a quarter counter-clockwise, the top-left corner ends bottom-left
    assert clip.frames[0, -8:, :8].mean() > 200 and clip.frames[0, :8, :8].mean() < 50
    assert [img.shape for _, img in iter_frames(path)] == [(64, 32, 3)] * 3


def test_write_video_atomic_and_argument_checks(tmp_path):
    path = tmp_path / "out.mp4"
    path.write_bytes(b"old")
    with pytest.raises(ConfigError):
        write_video(path, _frames(3).astype(np.float32))
    with pytest.raises(ConfigError):
        write_video(path, _frames(3)[..., :2])
    with pytest.raises(ConfigError):
        write_video(path, _frames(3), audio=np.zeros((2, 100), np.float32))
    with pytest.raises(MediaError):
        write_video(path, _frames(3), preset="no-such-preset")  # fails inside the encoder
    assert path.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["out.mp4"]
    write_video(path, _frames(3))
    assert read_video(path).frames.shape == (3, 48, 64, 3)


# --- constant frame rate ----------------------------------------------------------------------------------------


def _nearest_earlier(ts: np.ndarray, grid: np.ndarray) -> np.ndarray:
    return np.array([max([0] + [i for i, t in enumerate(ts) if t <= g + 1e-9]) for g in grid])


def test_to_constant_fps_identity_at_25():
    ts = np.arange(75) * 0.04
    frames = np.arange(75)
    out, idx = to_constant_fps(frames, ts)
    np.testing.assert_array_equal(idx, np.arange(75))
    np.testing.assert_array_equal(out, frames)


@pytest.mark.parametrize(
    "rate, n, m",
    [(Fraction(30), 90, 75), (Fraction(30000, 1001), 90, 76), (Fraction(50), 150, 75), (Fraction(24), 72, 75)],
    ids=["30", "29.97", "50", "24"],
)
def test_to_constant_fps_from_other_rates(rate, n, m):
    ts = np.array([float(i / rate) for i in range(n)])  # as pts * time_base gives them
    frames = np.arange(n)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)  # frame i is filled with i
    out, idx = to_constant_fps(frames, ts, fps=25)
    assert idx.shape == (m,) and out.shape == (m, 2, 2, 3) and idx.dtype == np.int64
    grid = [Fraction(k, 25) for k in range(m)]
    expected = [int(g * rate) for g in grid]  # floor(t * rate): the frame on screen at t, exactly
    np.testing.assert_array_equal(idx, expected)
    np.testing.assert_array_equal(out[:, 0, 0, 0], np.array(expected, np.uint8))


def test_to_constant_fps_variable_frame_rate():
    ts = np.array([0.0, 0.013, 0.05, 0.051, 0.052, 0.2, 0.21, 0.33, 0.333, 0.5])
    frames = np.arange(10) * 10
    out, idx = to_constant_fps(frames, ts, fps=25)
    # duration = 0.5 + median interval (0.013) -> ceil(12.825) = 13 grid points
    grid = np.arange(13) / 25
    np.testing.assert_array_equal(idx, _nearest_earlier(ts, grid))
    np.testing.assert_array_equal(idx, [0, 1, 4, 4, 4, 5, 6, 6, 6, 8, 8, 8, 8])
    np.testing.assert_array_equal(out, frames[idx])
    _, longer = to_constant_fps(frames, ts, fps=25, duration=0.6)
    assert longer.shape == (15,) and list(longer[12:]) == [8, 9, 9]
    assert np.all(np.diff(idx) >= 0)


def test_to_constant_fps_late_start_duplicates_and_duration():
    ts = np.array([0.1, 0.1, 0.3])
    out, idx = to_constant_fps(np.array([5, 6, 7]), ts, fps=10, duration=0.6)
    np.testing.assert_array_equal(idx, [0, 1, 1, 2, 2, 2])  # before 0.1 -> first frame; tie -> the later one
    np.testing.assert_array_equal(out, [5, 6, 6, 7, 7, 7])
    _, single = to_constant_fps(np.zeros((1, 2)), np.array([0.0]), fps=25)
    np.testing.assert_array_equal(single, [0])


def test_to_constant_fps_bad_input():
    with pytest.raises(ConfigError):
        to_constant_fps(np.zeros(3), np.array([0.0, 0.2, 0.1]))
    with pytest.raises(ConfigError):
        to_constant_fps(np.zeros(3), np.array([0.0, 0.1]))
    with pytest.raises(ConfigError):
        to_constant_fps(np.zeros(0), np.zeros(0))
    with pytest.raises(ConfigError):
        to_constant_fps(np.zeros(2), np.array([0.0, 0.1]), fps=0)


# --- stream copy ------------------------------------------------------------------------------------------------


def test_copy_video_stream_is_bit_identical_and_silent(clip_with_audio, tmp_path):
    src = clip_with_audio[0]
    dst = tmp_path / "S00001_silent.mp4"
    copy_video_stream(src, dst)
    with av.open(str(dst)) as c:
        assert len(c.streams.video) == 1 and len(c.streams.audio) == 0 and len(c.streams) == 1
    src_packets, dst_packets = _packets(src), _packets(dst)
    assert len(dst_packets) == 25
    assert [p[0] for p in dst_packets] == [p[0] for p in src_packets]  # compressed bytes unchanged
    times = np.array([p[1:] for p in dst_packets])  # [25, 2] pts, dts in seconds
    np.testing.assert_allclose(times, np.array([p[1:] for p in src_packets]), atol=1e-6)
    np.testing.assert_array_equal(read_video(dst).frames, read_video(src).frames)
    assert sorted(os.listdir(tmp_path)) == ["S00001_silent.mp4"]


def test_copy_video_stream_refuses_its_input_and_bad_sources(clip_with_audio, tmp_path):
    src = clip_with_audio[0]
    with pytest.raises(OutputPathError):
        copy_video_stream(src, src)
    with pytest.raises(MediaError, match="no such file"):
        copy_video_stream(tmp_path / "missing.mp4", tmp_path / "x.mp4")
    wav = tmp_path / "a.wav"
    sf.write(wav, _sine(0.1), 16000)
    with pytest.raises(MediaError, match="no video stream"):
        copy_video_stream(wav, tmp_path / "x.mp4")
    cut = tmp_path / "cut.mp4"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        copy_video_stream(cut, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()
    assert sorted(os.listdir(tmp_path)) == ["a.wav", "cut.mp4"]


# --- broken inputs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fraction", [0.5, 0.9])
def test_truncated_mp4_raises_media_error(clip_with_audio, tmp_path, fraction):
    data = clip_with_audio[0].read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(MediaError, match="truncated"):
        read_video(cut)


def test_truncated_mp4_without_index_up_front(tmp_path):
    # No faststart: the index is at the end, so a cut file cannot even be opened.
    path = tmp_path / "plain.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for img in _frames(10):
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated"):
        read_video(path)
    with pytest.raises(MediaError, match="truncated"):
        list(iter_frames(path))


def test_missing_garbage_audio_only_and_empty_streams(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        read_video(tmp_path / "missing.mp4")
    with pytest.raises(MediaError, match="no such file"):
        iter_frames(tmp_path / "missing.mp4")  # raised at the call, before iterating
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError):
        read_video(junk)
    (tmp_path / "zero.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        read_video(tmp_path / "zero.mp4")
    wav = tmp_path / "speech.wav"
    sf.write(wav, _sine(0.2), 16000)
    with pytest.raises(MediaError, match="no video stream"):
        read_video(wav)
    empty = tmp_path / "noframes.avi"  # AVI keeps a video stream with no frame (mp4 drops the track)
    with av.open(str(empty), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        c.start_encoding()
    with pytest.raises(MediaError, match="zero frames"):
        read_video(empty)


def test_reading_never_modifies_the_input(clip_with_audio):
    path = clip_with_audio[0]
    before = (path.read_bytes(), path.stat().st_mtime)
    read_video(path)
    list(iter_frames(path))
    assert (path.read_bytes(), path.stat().st_mtime) == before


# --- real data --------------------------------------------------------------------------------------------------


def test_real_grid_clip():
    path = _grid_clip()
    clip = read_video(path)
    assert clip.frames.shape == (75, 288, 360, 3)
    assert clip.fps == 25.0
    np.testing.assert_allclose(clip.timestamps, np.arange(75) * 0.04, atol=1e-9)
    assert clip.audio is not None and clip.sample_rate == 16000
    assert abs(clip.audio.shape[0] - 48000) < 800  # 3 s at 16 kHz (MP2 frame granularity)
    assert 40 < clip.frames.mean() < 220  # a real picture, not black or white
    _, idx = to_constant_fps(clip.frames, clip.timestamps, fps=25)
    np.testing.assert_array_equal(idx, np.arange(75))


def test_real_grid_clip_stream_copy(tmp_path):
    path = _grid_clip()
    dst = tmp_path / "grid_silent.mp4"
    copy_video_stream(path, dst)
    assert [p[0] for p in _packets(dst)] == [p[0] for p in _packets(path)]
    clip = read_video(dst)
    assert clip.audio is None and clip.frames.shape == (75, 288, 360, 3)


def test_write_video_is_a_function_of_its_input(tmp_path):
    """Same frames, same bytes, whatever was allocated or encoded before (x264's mbtree broke this)."""
    from avse.data.face import render_face, style_for_speaker

    traj = np.zeros((30, 6), np.float32)
    traj[:, 1] = np.abs(np.sin(np.arange(30) / 3.0))
    frames, _ = render_face(traj, style_for_speaker(3), rng=np.random.default_rng(0))
    digests = set()
    for k in range(3):
        junk = np.random.default_rng(k).bytes(100_000 * (k + 1))  # disturb the heap between calls
        write_video(tmp_path / f"v{k}.mp4", frames, audio=np.zeros(30 * 640, np.float32))
        digests.add(hashlib.md5((tmp_path / f"v{k}.mp4").read_bytes()).hexdigest())
        del junk
    assert len(digests) == 1


@pytest.mark.parametrize("src_fps", [25, 30, 50, 24])
def test_iter_grid_frames_matches_to_constant_fps(tmp_path, src_fps):
    n = int(src_fps * 1.2)
    frames = np.zeros((n, 32, 32, 3), np.uint8)
    for i in range(n):
        frames[i, :, :i % 32] = 255  # frame i has i % 32 white columns
        frames[i, 0, 0, 1] = i
    path = tmp_path / f"v{src_fps}.mp4"
    write_video(path, frames, fps=src_fps, crf=0)
    clip = read_video(path, with_audio=False)
    want, _ = to_constant_fps(clip.frames, clip.timestamps, 25)
    got = np.stack(list(iter_grid_frames(path)))
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("pix_fmt", ["yuv420p", "yuvj420p", "yuv444p", "rgb24"])
def test_gray_frames_are_ffmpegs_gray_conversion(tmp_path, pix_fmt):
    """iter_frames(gray=True): the luma, uint8 [H, W], equal to FFmpeg's conversion of the same frames to gray, in
    limited and full range and from formats whose luma is not a plane (through the conversion itself)."""
    codec = "libx264rgb" if pix_fmt == "rgb24" else "libx264"
    path = tmp_path / f"{pix_fmt}.mkv"
    frames = _frames(6)
    with av.open(str(path), "w") as c:
        s = c.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = 64, 48, pix_fmt
        for img in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format=pix_fmt)):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        want = [f.to_ndarray(format="gray") for f in c.decode(video=0)]
    got = list(iter_frames(path, gray=True))
    assert len(got) == len(want) == 6
    for (_, g), w in zip(got, want):
        assert g.shape == (48, 64) and g.dtype == np.uint8
        np.testing.assert_array_equal(g, w)
    rgb = np.stack([f for _, f in iter_frames(path)]).astype(np.float64)
    luma = rgb @ np.array([0.299, 0.587, 0.114])  # BT.601 luma of the RGB conversion: within a few levels
    assert np.abs(luma - np.stack([g for _, g in got])).mean() < 3.0
    grid = list(iter_grid_frames(path, gray=True))
    assert len(grid) == 6 and all(g.shape == (48, 64) for g in grid)
