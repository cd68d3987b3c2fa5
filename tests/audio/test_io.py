"""Tests for avse.audio.io: reading every format, mono, resampling, normalisation, broken files."""

from __future__ import annotations

import hashlib
import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from avse.audio.io import blend_at_lufs, load_audio, loudness, loudness_normalize, peak_normalize, resample, save_wav
from avse.errors import ConfigError, EmptyAudioError, MediaError

GRID = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "real" / "grid"


def _sine(freq: float, sr: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(sr * seconds))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _noise(n: int, seed: int = 0, scale: float = 0.1) -> np.ndarray:
    return (scale * np.random.default_rng(seed).standard_normal(n)).clip(-1, 1).astype(np.float32)


def _peak_freq(x: np.ndarray, sr: int) -> float:
    """Frequency (Hz) of the largest FFT bin, refined by parabolic interpolation of log magnitudes."""
    mag = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(mag))
    a, b, c = np.log(mag[k - 1 : k + 2] + 1e-300)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * sr / len(x)


def _digest(path: Path) -> tuple[str, int, float]:
    st = path.stat()
    return hashlib.sha256(path.read_bytes()).hexdigest(), st.st_size, st.st_mtime


def _write_mp4_with_audio(path: Path, audio: np.ndarray, sr: int, with_video: bool = True) -> None:
    """A small mp4: (optionally) 10 frames of 32x32 H.264 and one AAC mono track."""
    with av.open(str(path), "w") as c:
        vs = None
        if with_video:
            vs = c.add_stream("libx264", rate=25)
            vs.width, vs.height, vs.pix_fmt = 32, 32, "yuv420p"
        as_ = c.add_stream("aac", rate=sr, layout="mono")
        if vs is not None:
            for i in range(10):
                img = np.full((32, 32, 3), 20 * i, np.uint8)
                for p in vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                    c.mux(p)
            for p in vs.encode():
                c.mux(p)
        frame = av.AudioFrame.from_ndarray(audio[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = sr, 0, Fraction(1, sr)
        for p in as_.encode(frame):
            c.mux(p)
        for p in as_.encode():
            c.mux(p)


# --- formats -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "subtype, atol",
    [("PCM_U8", 1 / 128), ("PCM_16", 1 / 32768), ("PCM_24", 2.0**-23), ("PCM_32", 1e-7), ("FLOAT", 0.0), ("DOUBLE", 1e-8)],
)
def test_wav_bit_depths(tmp_path, subtype, atol):
    x = _noise(4000, scale=0.3)
    path = tmp_path / f"x_{subtype}.wav"
    sf.write(path, x, 16000, subtype=subtype)
    assert sf.info(path).subtype == subtype
    y, sr = load_audio(path)
    assert sr == 16000 and y.dtype == np.float32 and y.shape == (4000,)
    np.testing.assert_allclose(y, x, atol=atol + 1e-9, rtol=0)


@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24"])
def test_flac(tmp_path, subtype):
    x = _noise(8000, scale=0.3)
    sf.write(tmp_path / "x.flac", x, 16000, subtype=subtype)
    y, sr = load_audio(tmp_path / "x.flac")
    assert sr == 16000 and y.shape == (8000,)
    np.testing.assert_allclose(y, x, atol=1 / 32768 + 1e-9, rtol=0)  # lossless up to the bit depth


def test_ogg_vorbis(tmp_path):
    x = _sine(440.0, 16000, 1.0) + _noise(16000, scale=0.02)
    sf.write(tmp_path / "x.ogg", x, 16000, format="OGG", subtype="VORBIS")
    y, sr = load_audio(tmp_path / "x.ogg")
    assert sr == 16000 and y.shape == (16000,)
    assert np.corrcoef(x, y)[0, 1] > 0.99  # lossy, but close


def test_audio_track_of_an_mp4(tmp_path):
    x = _sine(440.0, 16000, 1.0, amp=0.4)
    path = tmp_path / "clip.mp4"
    _write_mp4_with_audio(path, x, 16000)
    y, sr = load_audio(path)
    assert sr == 16000
    # AAC codes whole 1024-sample frames: the encoder delay is removed, the tail may be padded.
    assert 16000 <= y.shape[0] < 16000 + 2048
    assert np.corrcoef(x, y[:16000])[0, 1] > 0.99
    assert np.abs(y[16000:]).max(initial=0.0) < 0.05


def test_audio_track_of_an_mp4_is_resampled(tmp_path):
    x = _sine(1000.0, 48000, 1.0, amp=0.4)
    _write_mp4_with_audio(tmp_path / "clip48.mp4", x, 48000, with_video=False)
    y, sr = load_audio(tmp_path / "clip48.mp4")
    assert sr == 16000 and 16000 <= y.shape[0] < 16000 + 1024
    assert _peak_freq(y[:16000], 16000) == pytest.approx(1000.0, abs=0.5)


def test_unsigned_8bit_through_ffmpeg(tmp_path):
    # pcm_u8 in Matroska goes through PyAV: 128 is silence, 0 is -1.
    q = np.array([128, 192, 64, 0, 255] * 200, dtype=np.uint8)
    path = tmp_path / "u8.mkv"
    with av.open(str(path), "w") as c:
        s = c.add_stream("pcm_u8", rate=16000, layout="mono")
        frame = av.AudioFrame.from_ndarray(q[None, :], format="u8", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for p in list(s.encode(frame)) + list(s.encode()):
            c.mux(p)
    y, sr = load_audio(path)
    np.testing.assert_allclose(y, (q.astype(np.float32) - 128) / 128, atol=0)


def test_real_grid_clip_audio():
    clips = sorted(GRID.glob("*.mpg")) if GRID.is_dir() else []
    if not clips:
        pytest.skip(f"no GRID clips in {GRID}")
    y, sr = load_audio(clips[0])  # MP2, 44.1 kHz stereo -> 16 kHz mono
    assert sr == 16000 and y.dtype == np.float32
    assert abs(y.shape[0] / 16000 - 3.0) < 0.05
    assert 0.01 < np.abs(y).max() < 1.1  # resampling a near-full-scale source may overshoot 1 slightly


# --- channels and rates ----------------------------------------------------------------------------------------


def test_stereo_to_mono_is_the_channel_mean(tmp_path):
    left, right = _noise(3000, seed=1), _noise(3000, seed=2)
    sf.write(tmp_path / "st.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    y, _ = load_audio(tmp_path / "st.wav")
    np.testing.assert_allclose(y, (left + right) / 2, atol=1e-7)
    both, _ = load_audio(tmp_path / "st.wav", mono=False)
    assert both.shape == (2, 3000)
    np.testing.assert_array_equal(both[0], left)
    np.testing.assert_array_equal(both[1], right)


def test_resampling_44k1_to_16k_keeps_the_frequency(tmp_path):
    x = _sine(1234.0, 44100, 1.0)
    sf.write(tmp_path / "s44.wav", x, 44100, subtype="FLOAT")
    y, sr = load_audio(tmp_path / "s44.wav")
    assert sr == 16000 and y.shape == (16000,) and y.dtype == np.float32
    assert _peak_freq(y, 16000) == pytest.approx(1234.0, abs=0.2)
    mid = y[1000:-1000]  # away from the filter's edges the amplitude is kept
    assert np.abs(mid).max() == pytest.approx(0.5, abs=0.01)
    raw, sr_raw = load_audio(tmp_path / "s44.wav", sample_rate=None)
    assert sr_raw == 44100 and raw.shape == (44100,)


def test_resample_shapes_and_identity():
    x = np.stack([_sine(500.0, 48000, 0.5), _sine(700.0, 48000, 0.5)])  # [2, 24000]
    y = resample(x, 48000, 16000)
    assert y.shape == (2, 8000) and y.dtype == np.float32
    assert _peak_freq(y[1], 16000) == pytest.approx(700.0, abs=1.0)
    row = x[0]
    assert resample(row, 16000, 16000) is row
    with pytest.raises(ConfigError):
        resample(x[0], 0, 16000)


# --- normalisation ----------------------------------------------------------------------------------------------


def test_peak_normalize():
    x = np.array([0.1, -0.4, 0.2], dtype=np.float32)
    np.testing.assert_allclose(peak_normalize(x), [0.25, -1.0, 0.5])
    np.testing.assert_allclose(peak_normalize(x, peak=0.5), [0.125, -0.5, 0.25])
    z = np.zeros(4, np.float32)
    assert peak_normalize(z) is z


def test_loudness_of_a_full_scale_sine_is_minus_3_lufs():
    # BS.1770: a 997 Hz sine at 0 dBFS peak in one channel reads -3.01 LUFS.
    assert loudness(_sine(997.0, 48000, 3.0, amp=1.0).astype(np.float64), 48000) == pytest.approx(-3.01, abs=0.05)


def test_loudness_normalize_reaches_minus_23_lufs():
    x = _noise(48000, scale=0.02) + _sine(300.0, 16000, 3.0, amp=0.05)
    y = loudness_normalize(x, 16000, -23.0)
    assert y.dtype == np.float32
    measured = pyloudnorm.Meter(16000).integrated_loudness(y.astype(np.float64))  # an independent meter
    assert measured == pytest.approx(-23.0, abs=0.1)
    assert np.corrcoef(x, y)[0, 1] > 0.9999  # a pure gain
    silence = np.zeros(16000, np.float32)
    assert loudness_normalize(silence, 16000) is silence


def test_blend_at_lufs_levels_pads_and_sums():
    a = _noise(32000, seed=3, scale=0.3)
    b = _sine(440.0, 16000, 1.5, amp=0.01)
    mix, (sa, sb) = blend_at_lufs([a, b], 16000, target_lufs=-23.0)
    assert mix.shape == sa.shape == sb.shape == (32000,)
    meter = pyloudnorm.Meter(16000)
    assert meter.integrated_loudness(sa.astype(np.float64)) == pytest.approx(-23.0, abs=0.1)
    assert meter.integrated_loudness(sb[:24000].astype(np.float64)) == pytest.approx(-23.0, abs=0.1)
    assert np.all(sb[24000:] == 0)
    np.testing.assert_allclose(mix, sa + sb, atol=1e-7)
    with pytest.raises(ConfigError):
        blend_at_lufs([], 16000)


# --- broken inputs ------------------------------------------------------------------------------------------------


def test_truncated_wav_raises_media_error(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, _noise(16000), 16000, subtype="PCM_16")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # header says 32000 bytes of samples, half are there
    with pytest.raises(MediaError, match="truncated"):
        load_audio(path)
    path.write_bytes(data[:30])  # cut inside the header
    with pytest.raises(MediaError, match="truncated"):
        load_audio(path)


def test_truncated_ogg_is_not_reported_as_empty(tmp_path):
    path = tmp_path / "cut.ogg"
    sf.write(path, _noise(32000), 16000, format="OGG", subtype="VORBIS")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError) as err:
        load_audio(path)
    assert not isinstance(err.value, EmptyAudioError)


def test_empty_wav_raises_empty_audio_error(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    assert path.stat().st_size > 0  # a valid header, no samples
    with pytest.raises(EmptyAudioError):
        load_audio(path)


def test_missing_folder_and_zero_byte_files(tmp_path):
    with pytest.raises(MediaError, match="no such file") as err:
        load_audio(tmp_path / "nope.wav")
    assert not isinstance(err.value, EmptyAudioError)
    assert err.value.path == tmp_path / "nope.wav"
    with pytest.raises(MediaError, match="folder"):
        load_audio(tmp_path)
    (tmp_path / "zero.wav").write_bytes(b"")
    with pytest.raises(MediaError, match="empty file"):
        load_audio(tmp_path / "zero.wav")


@pytest.mark.parametrize("name", ["junk.wav", "junk.flac", "junk.ogg", "junk.mp4", "junk.m4a"])
def test_garbage_bytes_raise_media_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    with pytest.raises(MediaError):
        load_audio(path)


def test_non_finite_samples_raise_media_error(tmp_path):
    x = _noise(100)
    x[10] = np.nan
    sf.write(tmp_path / "nan.wav", x, 16000, subtype="FLOAT")
    with pytest.raises(MediaError, match="NaN"):
        load_audio(tmp_path / "nan.wav")


def test_loading_never_modifies_the_input(tmp_path):
    sf.write(tmp_path / "a.wav", _sine(440.0, 44100, 0.3), 44100, subtype="PCM_16")
    sf.write(tmp_path / "b.flac", _noise(4000), 16000)
    _write_mp4_with_audio(tmp_path / "c.mp4", _sine(440.0, 16000, 0.3), 16000)
    paths = [tmp_path / "a.wav", tmp_path / "b.flac", tmp_path / "c.mp4"]
    before = {p: _digest(p) for p in paths}
    listing = sorted(os.listdir(tmp_path))
    for p in paths:
        load_audio(p)
        load_audio(p, sample_rate=None, mono=False)
    assert {p: _digest(p) for p in paths} == before
    assert sorted(os.listdir(tmp_path)) == listing  # no side files either


# --- writing -----------------------------------------------------------------------------------------------------


def test_save_wav_round_trip_and_atomicity(tmp_path):
    x = np.array([0.0, 0.5, -0.5, 1.5, -2.0], dtype=np.float32)
    path = tmp_path / "sub" / "out.wav"
    save_wav(path, x)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    q, _ = sf.read(path, dtype="int16")
    np.testing.assert_array_equal(q, [0, 16384, -16384, 32767, -32768])  # clipped to [-1, 1]
    assert sorted(os.listdir(path.parent)) == ["out.wav"]  # no temporary file left
    with pytest.raises(ConfigError):
        save_wav(tmp_path / "none.wav", np.zeros(0, np.float32))
    assert not (tmp_path / "none.wav").exists()
