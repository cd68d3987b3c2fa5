"""`avse live --record` (a video in sync with the enhanced audio) and `--preview` (a real window on a real X server)."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from avse.errors import ConfigError
from tests.test_live import _backend

# --- frames that carry their own number ---------------------------------------------------------------

MARK_BITS = 10
MARK_CELL = 16  # px: big enough to survive two H.264 encodings


def mark(frame: np.ndarray, index: int) -> np.ndarray:
    """Write ``index`` into the frame's top-left corner as MARK_BITS black/white cells (in place) -> frame."""
    for b in range(MARK_BITS):
        frame[:MARK_CELL, b * MARK_CELL : (b + 1) * MARK_CELL] = 255 if (index >> b) & 1 else 0
    return frame


def read_mark(frame: np.ndarray) -> int:
    """The number ``mark`` wrote into ``frame``."""
    cells = [frame[4 : MARK_CELL - 4, b * MARK_CELL + 4 : (b + 1) * MARK_CELL - 4].mean() for b in range(MARK_BITS)]
    return sum(1 << b for b, v in enumerate(cells) if v > 128)


def decoded_frames(path: Path) -> tuple[np.ndarray, list[np.ndarray]]:
    """The video stream's frames of ``path`` with their presentation times -> (times s [N], frames RGB)."""
    import av

    times, frames = [], []
    with av.open(str(path)) as c:
        for f in c.decode(c.streams.video[0]):
            times.append(float(f.pts * f.time_base))
            frames.append(f.to_ndarray(format="rgb24"))
    return np.array(times), frames


# --- fast: the pieces -----------------------------------------------------------------------------------


def test_record_kind_by_suffix_and_camera():
    from avse.streaming.record import record_kind

    assert record_kind("out.wav", camera=False) == "audio"
    assert record_kind("out.wav", camera=True) == "audio"
    assert record_kind("OUT.MP4", camera=True) == "video"
    with pytest.raises(ConfigError, match="needs --camera"):
        record_kind("out.mp4", camera=False)
    with pytest.raises(ConfigError, match=r"give a \.wav"):
        record_kind("out.ogg", camera=True)


def test_audio_clock_recovers_a_sound_cards_drift_and_ignores_short_or_absurd_fits():
    from avse.streaming.record import audio_clock

    rng = np.random.default_rng(0)
    sr, period = 48000, 960
    pos = np.arange(0, 120 * sr, period, dtype=np.float64)  # two minutes of cycles
    real = sr * (1 + 60e-6)  # the card runs 60 ppm fast against the system clock
    t = 1000.0 + pos / real + rng.normal(0, 0.5e-3, pos.shape)  # callback jitter 0.5 ms
    t0, ratio = audio_clock(np.stack([pos, t], 1), sr)
    assert ratio == pytest.approx(1 + 60e-6, abs=3e-6)
    assert t0 == pytest.approx(1000.0, abs=2e-4)
    short = np.stack([pos[:500], t[:500]], 1)  # 10 s: no fit, nominal rate
    t0, ratio = audio_clock(short, sr)
    assert ratio == 1.0 and t0 == pytest.approx(1000.0, abs=1e-3)
    absurd = np.stack([pos, 1000.0 + pos / (sr * 1.01)], 1)  # 1 %: not a sound card's drift
    assert audio_clock(absurd, sr)[1] == 1.0
    with pytest.raises(ConfigError):
        audio_clock(np.zeros((0, 2)), sr)


def test_preview_image_draws_the_box_the_points_the_crop_and_the_text():
    from avse.streaming.preview import FACE_COLOUR, HELD_COLOUR, POINT_COLOUR, UNUSABLE_COLOUR, preview_image

    frame = np.full((960, 1280, 3), 60, np.uint8)
    crop = np.tile(np.arange(96, dtype=np.uint8)[None, :] * 2, (96, 1))  # [96, 96] a gray ramp
    img = preview_image(frame, np.array([400.0, 200.0, 800.0, 700.0]), crop, text="face: yes")
    assert img.shape == (480, 640, 3)  # scaled to 640 wide
    assert tuple(img[250, 200]) == FACE_COLOUR and tuple(img[100, 300]) == FACE_COLOUR  # box corners / 2: (200, 100)..(400, 350)
    assert tuple(img[200, 300]) == (60, 60, 60)  # inside the box: the frame
    inset = img[4:196, 640 - 196 : 640 - 4, 0]  # the crop at twice its size, top right
    assert np.array_equal(inset, np.repeat(np.repeat(crop, 2, 0), 2, 1))
    bar = img[-22:].max(axis=2)
    assert bar.min() == 0 and bar.max() > 200 and (bar > 200).mean() < 0.3  # white text on a black bar
    held = preview_image(frame, np.array([400.0, 200.0, 800.0, 700.0]), None, state="held")
    assert tuple(held[250, 200]) == HELD_COLOUR and tuple(held[10, 600]) == (60, 60, 60)  # no crop drawn
    unusable = preview_image(frame, np.array([400.0, 200.0, 800.0, 700.0]), state="unusable")
    assert tuple(unusable[250, 200]) == UNUSABLE_COLOUR
    lips = np.array([[500.0, 500.0], [620.0, 540.0], [np.nan, np.nan]])  # frame pixels; a missing point is skipped
    dotted = preview_image(frame, points=lips)
    assert tuple(dotted[250, 250]) == POINT_COLOUR and tuple(dotted[270, 310]) == POINT_COLOUR
    assert (dotted == POINT_COLOUR).all(-1).sum() < 30  # two small dots, nothing else
    bare = preview_image(frame[:240, :320])
    assert bare.shape == (480, 640, 3) and (bare == 60).all()  # a small frame: scaled up, nothing drawn
    with pytest.raises(ConfigError):
        preview_image(np.zeros((10, 10), np.uint8))


def test_preview_needs_a_camera_and_a_display(monkeypatch):
    from avse.streaming.live import LiveSession
    from avse.streaming.preview import PreviewWindow, check_display

    monkeypatch.delenv("DISPLAY", raising=False)
    with pytest.raises(ConfigError, match="DISPLAY is not set"):
        check_display()
    with pytest.raises(ConfigError, match="DISPLAY is not set"):
        PreviewWindow().start()
    with pytest.raises(ConfigError, match="--preview needs --camera"):
        LiveSession("av-causal", jack=True, camera=None, preview=True)


def test_record_video_without_a_camera_fails_before_anything_starts(tmp_path):
    from avse.streaming.live import run_live

    with pytest.raises(ConfigError, match="needs --camera"):
        run_live("av-causal", camera=None, record=tmp_path / "out.mp4", seconds=1)
    with pytest.raises(ConfigError, match=r"give a \.wav"):
        run_live("av-causal", camera=None, record=tmp_path / "out.flac", seconds=1)
    assert list(tmp_path.iterdir()) == []


def _record_frames(path: Path, stamps: np.ndarray, size=(120, 160)) -> Any:
    """Frames numbered 0.. captured at ``stamps`` through a FrameRecorder into ``path`` -> the stopped recorder."""
    from avse.streaming.record import FrameRecorder

    rec = FrameRecorder(path, max_queue=len(stamps)).start()  # added faster than a camera would: room for all
    for i, s in enumerate(stamps):
        rec.add(float(s), mark(np.full((*size, 3), 90, np.uint8), i))
    rec.stop()
    assert rec.error is None and rec.frames == len(stamps) and rec.dropped == 0
    return rec


def test_recorded_frames_keep_their_capture_times_and_the_audio_lands_on_them(tmp_path):
    """Frames at irregular capture times and a click in the audio: in the file, the click and its frame coincide."""
    from avse.streaming.record import mux_recording
    from avse.video.shift import video_audio

    rng = np.random.default_rng(1)
    t_first = 500.0  # monotonic s of the first frame
    stamps = t_first + np.cumsum(rng.uniform(0.03, 0.05, 100))  # a camera near 25 fps, with jitter
    stamps = np.concatenate([[t_first], stamps])
    rec = _record_frames(tmp_path / "frames.mp4", stamps)
    assert rec.t0 == t_first
    times, frames = decoded_frames(tmp_path / "frames.mp4")
    assert [read_mark(f) for f in frames] == list(range(len(stamps)))
    assert np.abs(times - (stamps - t_first)).max() < 1.5e-3  # ms stamps

    audio_t0 = t_first + 0.3  # the audio began 0.3 s after the camera
    audio = np.zeros(16000 * 4, np.float32)
    k = 60  # a click when frame 60 was captured
    click = int(round((stamps[k] - audio_t0) * 16000))
    audio[click : click + 160] = 0.8
    out = tmp_path / "out.mp4"
    start = mux_recording(tmp_path / "frames.mp4", rec.t0, audio, audio_t0, out)
    assert start == pytest.approx(0.3)
    times, frames = decoded_frames(out)
    y = video_audio(out)  # on the video's timeline
    onset = np.flatnonzero(np.abs(y) > 0.3)[0] / 16000
    assert onset == pytest.approx(times[k], abs=3e-3)
    assert read_mark(frames[k]) == k

    # the audio's clock runs 500 ppm fast against the camera's: the frames are put on the audio's
    out2 = tmp_path / "scaled.mp4"
    mux_recording(tmp_path / "frames.mp4", rec.t0, audio, audio_t0, out2, rate_ratio=1.0005)
    times2, _ = decoded_frames(out2)
    assert np.abs(times2 - times * 1.0005).max() < 1.5e-3

    # audio that began before the first frame is cut
    start = mux_recording(tmp_path / "frames.mp4", rec.t0, audio, t_first - 0.5, tmp_path / "early.mp4")
    assert start == pytest.approx(0.0, abs=1e-4)
    assert not list(tmp_path.glob(".*"))  # atomic writes leave nothing behind


def test_a_camera_that_starts_late_gets_its_first_frame_held_from_the_origin(tmp_path):
    """The camera was asked to start 0.5 s before its first frame, and the sound began 0.45 s before it: the file
    opens at the origin on the first frame held still, and none of the sound is cut."""
    from avse.streaming.record import FrameRecorder, mux_recording
    from avse.video.shift import video_audio

    t_first = 200.0
    stamps = t_first + 0.04 * np.arange(30)
    rec = FrameRecorder(tmp_path / "frames.mp4", max_queue=len(stamps), origin=t_first - 0.5).start()
    for i, s in enumerate(stamps):
        rec.add(float(s), mark(np.full((120, 160, 3), 90, np.uint8), i))
    rec.stop()
    assert rec.error is None and rec.frames == 30 and rec.lead_frames == 13 and rec.t0 == t_first - 0.5
    times, frames = decoded_frames(tmp_path / "frames.mp4")
    marks = [read_mark(f) for f in frames]
    assert marks == [0] * 13 + list(range(30))  # 13 copies of the first frame (0-480 ms), then the camera's own
    np.testing.assert_allclose(times[:13], 0.04 * np.arange(13), atol=1e-3)
    np.testing.assert_allclose(times[13:], stamps - rec.t0, atol=1.5e-3)  # the camera's frames at their capture times
    audio = np.zeros(16000 * 2, np.float32)
    audio[8000:8160] = 0.8  # a click 0.5 s into the sound: 50 ms after the first camera frame
    start = mux_recording(tmp_path / "frames.mp4", rec.t0, audio, t_first - 0.45, tmp_path / "out.mp4")
    assert start == pytest.approx(0.05, abs=1e-4)  # the sound starts 50 ms into the file: nothing of it cut
    y = video_audio(tmp_path / "out.mp4")
    onset = np.flatnonzero(np.abs(y) > 0.3)[0] / 16000
    assert onset == pytest.approx(0.55, abs=3e-3)  # the click, 50 ms after the first camera frame (at 0.5 s)
    # an origin after the first frame (the camera was quick) changes nothing
    late = FrameRecorder(tmp_path / "late.mp4", origin=t_first + 1.0).start()
    late.add(t_first, mark(np.full((120, 160, 3), 90, np.uint8), 0))
    late.stop()
    assert late.t0 == t_first and late.lead_frames == 0


@pytest.mark.parametrize("lead_s, held", [(0.015, 1), (0.03, 1), (0.05, 1), (0.07, 2), (5.0, 25)])
def test_held_frames_put_the_first_frame_at_its_capture_time_and_stop_at_the_cap(tmp_path, monkeypatch, lead_s, held):
    """However short the wait for the camera, the file starts at the origin (its first frame at its capture time on
    the file's clock); however long, the first frame is held for at most MAX_LEAD_S (here 1 s)."""
    import avse.streaming.record as record

    monkeypatch.setattr(record, "MAX_LEAD_S", 1.0)
    t_first = 50.0
    rec = record.FrameRecorder(tmp_path / "f.mp4", origin=t_first - lead_s).start()
    for i in range(3):
        rec.add(t_first + 0.04 * i, mark(np.full((120, 160, 3), 90, np.uint8), i))
    rec.stop()
    assert rec.error is None and rec.lead_frames == held and rec.t0 == pytest.approx(t_first - min(lead_s, 1.0))
    times, frames = decoded_frames(tmp_path / "f.mp4")
    assert [read_mark(f) for f in frames] == [0] * held + [0, 1, 2]
    assert times[0] == 0.0 and times[held] == pytest.approx(min(lead_s, 1.0), abs=1.5e-3)


# --- a real window on a real X server -------------------------------------------------------------------


def _start_xvfb(tmp_path: Path, monkeypatch, request) -> Path:
    """Start Xvfb (its screen readable as a file), set DISPLAY, stop it at the end of the test -> the screen file."""
    fbdir = tmp_path / "fb"
    fbdir.mkdir()
    rfd, wfd = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(wfd), "-screen", "0", "1024x768x24", "-fbdir", str(fbdir), "-nolisten", "tcp"],
                            pass_fds=(wfd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(wfd)
    request.addfinalizer(lambda: (proc.terminate(), proc.wait(10)))
    import select

    with os.fdopen(rfd) as r:
        display = r.readline().strip() if select.select([r], [], [], 20)[0] else ""
    if not display:
        pytest.skip("Xvfb did not start within 20 s")
    monkeypatch.setenv("DISPLAY", f":{display}")
    return fbdir / "Xvfb_screen0"


@pytest.fixture
def xvfb(tmp_path, monkeypatch, request):
    """A running Xvfb (Debian package xvfb) whose screen is readable as a file -> the screen file's path; DISPLAY set."""
    if shutil.which("Xvfb") is None:
        pytest.skip("Xvfb is not installed (Debian package xvfb)")
    return _start_xvfb(tmp_path, monkeypatch, request)


def screen(path: Path) -> np.ndarray:
    """Xvfb's screen from its -fbdir file (XWD, 32 bits per pixel, BGRX) -> uint8 [H, W, 3] RGB."""
    import struct

    raw = path.read_bytes()
    header = struct.unpack(">25I", raw[:100])
    size, width, height, bits, line, colours = header[0], header[4], header[5], header[11], header[12], header[19]
    assert bits == 32
    px = np.frombuffer(raw, np.uint8, count=height * line, offset=size + 12 * colours).reshape(height, line // 4, 4)
    return px[:, :width, 2::-1]


def test_preview_window_puts_the_image_on_the_screen(xvfb):
    from avse.streaming.preview import PreviewWindow, preview_image

    frame = np.zeros((480, 640, 3), np.uint8)
    frame[:, :320] = (200, 30, 30)
    frame[:, 320:] = (30, 30, 200)
    image = preview_image(frame, np.array([200.0, 120.0, 440.0, 400.0]))
    win = PreviewWindow().start()
    try:
        win.show(image)
        deadline = time.monotonic() + 10
        while win.shown == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        assert win.shown >= 1 and win.position is not None and win.error is None
        x, y = win.position
        shot = screen(xvfb)[y : y + 480, x : x + 640].astype(int)
        assert np.abs(shot - image).max() <= 8  # what the screen shows is the image
    finally:
        win.stop()
    assert win.closed


def test_frame_recorder_drops_the_oldest_when_the_encoder_falls_behind(tmp_path):
    from avse.streaming.record import FrameRecorder

    rec = FrameRecorder(tmp_path / "f.mp4", max_queue=5)
    for i in range(40):  # queued before the thread starts: only the newest five stay
        rec.add(100.0 + 0.04 * i, mark(np.full((64, 176, 3), 90, np.uint8), i))
    rec.start().stop()
    assert rec.dropped == 35 and rec.frames == 5 and rec.t0 == pytest.approx(100.0 + 0.04 * 35)
    times, frames = decoded_frames(tmp_path / "f.mp4")
    assert [read_mark(f) for f in frames] == list(range(35, 40))
    assert times == pytest.approx(0.04 * np.arange(5), abs=1.5e-3)


# --- slow: a whole live session through a real JACK server, recorded --------------------------------------


@pytest.fixture(scope="module")
def numbered_clip(tiny_corpus, tmp_path_factory):
    """A 7 s talking-face clip with speech (tiny corpus targets end to end), each frame numbered -> (path, audio float32 [T] 16 kHz)."""
    from avse.audio.io import load_audio
    from avse.video.io import read_video, write_video

    frames, audio = [], []
    for clip in sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4")):
        v = read_video(clip, with_audio=False).frames
        a, _ = load_audio(tiny_corpus / "dev" / "targets" / f"{clip.stem}.wav", 16000)
        n = min(v.shape[0], a.shape[0] // 640)
        frames.append(v[:n])
        audio.append(a[: n * 640])
    frames, audio = np.concatenate(frames), np.concatenate(audio)
    reps = -(-175 // frames.shape[0])
    frames, audio = np.concatenate([frames] * reps)[:175], np.concatenate([audio] * reps)[: 175 * 640]
    for i in range(frames.shape[0]):
        mark(frames[i], i)
    path = tmp_path_factory.mktemp("numbered") / "numbered.mp4"
    write_video(path, frames, fps=25)
    return path, audio.astype(np.float32)


class _ClockPlayer:
    """A JACK client playing ``x`` into ``dst`` by the system clock: the sample for capture time t is x[(t - start) * rate].

    ``start`` (monotonic s) is set once known; before it, and after ``x``, silence. Capture times as avse's
    JACK client stamps its input: the cycle's start minus one period.
    """

    def __init__(self, server: str, x: np.ndarray, dst: str):
        import jack

        self.x = x.astype(np.float32)
        self.start: float | None = None
        self.client = jack.Client("clockplay", servername=server, no_start_server=True)
        self.rate = self.client.samplerate
        self.out = self.client.outports.register("out")
        self.client.set_process_callback(self._play)
        self.client.activate()
        self.client.connect(self.out, dst)

    def _play(self, n: int) -> None:
        buf = self.out.get_array()
        buf[:] = 0.0
        if self.start is None:
            return
        t = time.monotonic() - (self.client.frames_since_cycle_start + n) / self.rate
        i0 = int(round((t - self.start) * self.rate))
        lo, hi = max(i0, 0), min(i0 + n, self.x.shape[0])
        if hi > lo:
            buf[lo - i0 : hi - i0] = self.x[lo:hi]

    def close(self) -> None:
        self.client.deactivate()
        self.client.close()


@contextlib.contextmanager
def _jack_server(tag: str, rate: int, monkeypatch) -> Iterator[str]:
    """A running ``jackd -d dummy`` at ``rate`` (20 ms periods) as the default server -> its name; skips where none can start."""
    pytest.importorskip("jack")
    from avse.streaming.audio_io import dummy_jack_server

    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    cm = dummy_jack_server(f"avse-{tag}-{os.getpid()}-{rate}", rate, rate // 50)
    try:
        server = cm.__enter__()
    except ConfigError as err:
        pytest.skip(f"jackd cannot be started here: {err}")
    try:
        monkeypatch.setenv("JACK_DEFAULT_SERVER", server)
        yield server
    finally:
        cm.__exit__(None, None, None)


def _lag(y: np.ndarray, x: np.ndarray, max_lag: int) -> int:
    """The lag L (samples, |L| <= max_lag) at which y[t] best matches x[t + L] (normalised cross-correlation)."""
    n = y.shape[0] + x.shape[0]
    c = np.fft.irfft(np.fft.rfft(x, n) * np.conj(np.fft.rfft(y, n)), n)  # c[L] = sum_t y[t] x[t + L]
    lags = np.r_[np.arange(0, max_lag + 1), np.arange(-max_lag, 0)]
    return int(lags[np.argmax(c[lags])])


@pytest.mark.slow
@pytest.mark.parametrize("rate", [16000, 48000], ids=["16k", "48k"])
def test_live_session_records_a_video_whose_lips_and_voice_stay_in_sync(numbered_clip, rate, tmp_path, monkeypatch, request):
    """Camera = a numbered talking-face clip, microphone = its own audio played by the clock: the recorded file is in sync."""
    from scipy.signal import resample_poly

    from avse.streaming.live import LiveSession
    from avse.streaming.preview import FACE_COLOUR

    clip, audio = numbered_clip
    display = None
    if shutil.which("Xvfb") is not None:  # with a display, the preview runs too and is checked on the screen
        display = _start_xvfb(tmp_path, monkeypatch, request)
    x = audio if rate == 16000 else resample_poly(audio, rate // 16000, 1).astype(np.float32)
    frames_path = tmp_path / "frames.mp4"
    with _jack_server("rec", rate, monkeypatch) as server:
        session = LiveSession("av-causal", jack=True, server=server, camera=clip, record=True, record_video=frames_path,
                              connect=False, headroom_ms=60.0, backend=_backend(),
                              preview=display is not None)
        session.start()
        player = _ClockPlayer(server, x, f"{session.audio.client.name}:in")
        shot = None
        try:
            while session.camera.started is None and time.monotonic() - session.t_start < 10:
                time.sleep(0.05)
            player.start = session.camera.started
            while not session.camera.finished and time.monotonic() - session.t_start < 30:
                time.sleep(0.25)
                session.check()
                if display is not None and shot is None and session.camera.preview_shown > 50:
                    shot = screen(display)
        finally:
            session.stop()
            player.close()
    st = session.status()
    assert st["record_frames"] >= 150 and st["record_error"] is None, st
    out = tmp_path / "session.mp4"
    line = session.save_recording(out)
    assert "camera frames" in line

    from avse.video.shift import video_audio

    times, frames = decoded_frames(out)
    marks = np.array([read_mark(f) for f in frames])
    lead = st["record_lead_frames"]  # the first frame held from when the camera was asked to start
    assert (marks[:lead + 1] == marks[0]).all()
    times, marks = times[lead:], marks[lead:]
    assert (np.diff(marks) > 0).all() and marks[-1] == 174  # every frame in order, to the clip's last
    video_offset = np.median(marks / 25.0 - times)  # clip time minus file time, for the pictures
    y = video_audio(out)  # [T] on the file's timeline
    assert y is not None and np.abs(y).max() > 0.05
    lag = _lag(y, audio, max_lag=4 * 16000)  # the file opens when the camera was asked to start, which may be seconds early
    audio_offset = lag / 16000  # clip time minus file time, for the voice
    assert abs(video_offset - audio_offset) < 0.010, (video_offset, audio_offset)  # in sync within 10 ms (here: about 1 ms)
    if display is not None:
        assert st["preview_frames"] > 50
        assert shot is not None and (shot == FACE_COLOUR).all(-1).sum() > 100  # the face box, on the screen



def test_a_recorder_killed_midway_leaves_frames_that_can_still_be_used(tmp_path):
    """The frames file is a fragmented mp4: a process that dies while recording leaves its whole fragments readable."""
    import sys

    from avse.streaming.record import KEY_INTERVAL, mux_recording

    frames_path = tmp_path / "frames.mp4"
    code = (
        "import os, sys, time\n"
        "import numpy as np\n"
        "sys.path.insert(0, sys.argv[2])\n"
        "from test_live_record import mark\n"
        "from avse.streaming.record import FrameRecorder\n"
        "rec = FrameRecorder(sys.argv[1], max_queue=1000).start()\n"
        "for i in range(130):\n"
        "    rec.add(10.0 + 0.04 * i, mark(np.full((96, 176, 3), 90, np.uint8), i))\n"
        "while rec.frames < 130:\n"
        "    time.sleep(0.01)\n"
        "os._exit(0)  # no stop(): the file is never closed\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(frames_path), str(Path(__file__).parent)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    times, frames = decoded_frames(frames_path)
    whole = 2 * KEY_INTERVAL  # 130 frames: two whole fragments, the rest was still in the encoder
    assert len(frames) >= whole and [read_mark(f) for f in frames] == list(range(len(frames)))
    out = tmp_path / "out.mp4"
    mux_recording(frames_path, 10.0, np.zeros(16000 * 5, np.float32) + 0.01, 10.0, out)
    assert len(decoded_frames(out)[1]) == len(frames)


def test_the_record_path_may_not_be_the_camera_file(tmp_path):
    from avse.errors import OutputPathError
    from avse.streaming.live import camera_frames_file

    clip = tmp_path / "talk.mp4"
    clip.write_bytes(b"not read")
    with pytest.raises(OutputPathError, match="overwrite the --camera file"), camera_frames_file(tmp_path / "." / "talk.mp4", clip):
        pass
    with camera_frames_file(tmp_path / "out.mp4", clip) as frames:
        assert frames is not None and frames.parent == tmp_path and frames.name.startswith(".out.")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["talk.mp4"]  # the hidden frames file is gone


def test_recorded_clock_puts_sample_zero_before_the_first_cycle_by_the_resamplers_delay():
    """At 48 kHz the 16 kHz stream's sample 0 came through the down-sampler: it was captured 24 samples (1.5 ms) earlier."""
    from avse.api import load_model
    from avse.streaming import StreamingEnhancer
    from avse.streaming.audio_io import LiveProcessor

    engine = StreamingEnhancer(load_model("av-causal")[0], block=640, backend="torch", video=False)
    proc = LiveProcessor(engine, 48000, 960, record=True)
    proc.record_anchors = [(k * 960, 200.0 + k * 0.02) for k in range(100)]
    proc._anchor = proc.record_anchors[0]
    t0, ratio = proc.recorded_clock()
    assert ratio == 1.0
    assert float(proc.down.delay) == 24
    assert t0 == pytest.approx(200.0 - 24 / 16000, abs=1e-9)
    assert t0 == pytest.approx(proc._time_of(0), abs=1e-9)  # the time the lip frames are matched by, too


@pytest.mark.slow
def test_run_live_records_a_video_and_leaves_only_it(numbered_clip, tmp_path, monkeypatch):
    """`avse live --camera clip --record out.mp4 --seconds 3`, as the command runs it: one file written, nothing else left."""
    import io

    from avse.streaming.live import run_live

    clip, _ = numbered_clip
    out_dir = tmp_path / "out"
    out = out_dir / "live.mp4"
    text = io.StringIO()
    with _jack_server("runlive", 16000, monkeypatch):
        st = run_live("av-causal", camera=clip, record=out, seconds=3.0, connect=False, headroom_ms=60.0, stream=text)
    assert f"written: {out}" in text.getvalue() and "camera frames" in text.getvalue()
    assert [p.name for p in out_dir.iterdir()] == ["live.mp4"]  # the hidden frames file is gone
    times, frames = decoded_frames(out)
    # the file camera starts before the audio, but a loaded machine may take a second to open and decode it: the first
    # frame is then held from when it was asked to start
    assert st["record_frames"] >= 40 and st["record_error"] is None, st
    assert st["record_frames"] + st["record_lead_frames"] == len(frames), (len(frames), st)
    from avse.video.shift import video_audio

    y = video_audio(out)
    # the file's sound is the whole session's (3 s), not cut to the camera's first frame
    assert y is not None and y.shape[0] >= 2.9 * 16000, (y.shape[0] / 16000, len(frames), st)


def test_capture_stamp_takes_the_drivers_time_only_when_it_is_on_this_clock():
    from avse.streaming.camera import capture_stamp

    now = 1234.5
    assert capture_stamp(1000 * (now - 0.06), now) == pytest.approx(now - 0.06)  # V4L2: captured 60 ms before it was read
    assert capture_stamp(0.0, now) == now  # no stamp
    assert capture_stamp(1000 * (now - 3.0), now) == now  # too old to be this frame's: another clock
    assert capture_stamp(1000 * (now + 0.5), now) == now  # in the future: another clock
    assert capture_stamp(1.7e12, now) == now  # wall-clock milliseconds


@pytest.mark.slow
def test_a_failed_video_still_writes_the_enhanced_audio(numbered_clip, tmp_path, monkeypatch):
    """The frames cannot be written (their folder does not exist): the session's audio goes to a .wav beside the output."""
    from avse.errors import MediaError
    from avse.streaming.live import LiveSession

    clip, _ = numbered_clip
    with _jack_server("recfail", 16000, monkeypatch) as server:
        session = LiveSession("av-causal", jack=True, server=server, camera=clip, record=True,
                              record_video=tmp_path / "missing" / "frames.mp4", connect=False, headroom_ms=60.0)
        session.start()
        try:
            time.sleep(2.5)
        finally:
            session.stop()
    st = session.status()
    assert st["record_error"] and "recording video FAILED" in session.status_line()
    (tmp_path / "out.wav").write_bytes(b"someone's file")  # taken: the audio goes to the next free name
    with pytest.raises(MediaError, match=r"the video could not be written .*out\.1\.wav"):
        session.save_recording(tmp_path / "out.mp4")
    import soundfile as sf

    y, sr = sf.read(tmp_path / "out.1.wav")
    assert sr == 16000 and y.shape[0] > 16000
    assert not (tmp_path / "out.mp4").exists() and (tmp_path / "out.wav").read_bytes() == b"someone's file"
