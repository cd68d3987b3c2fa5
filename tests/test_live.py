"""Tests for live I/O (avse.streaming.resample, camera, audio_io, live): resampler, frame policy, and real JACK servers."""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
import uuid
from fractions import Fraction

import numpy as np
import pytest

from avse.streaming.camera import FaceFader, LipFrame, LipQueue
from avse.streaming.resample import StreamResampler

try:
    import jack
except (ImportError, OSError):  # no JACK-Client, or no libjack
    jack = None
try:  # MediaPipe imports sounddevice, whose PortAudio joins any running JACK server as a client and aborts the
    import sounddevice  # noqa: F401  # process at exit once that server is gone: let PortAudio start before any test server
except (ImportError, OSError):
    pass


# --- pure parts -------------------------------------------------------------------------------------


@pytest.mark.parametrize("rates", [(48000, 16000), (16000, 48000), (44100, 16000), (16000, 44100)])
def test_resampler_stream_equals_whole_and_delay_is_exact(rates):
    a, b = rates
    r = StreamResampler(a, b)
    t = np.arange(a // 2) / a
    x = np.sin(2 * np.pi * 440 * t)
    whole = r.process(x)
    assert whole.shape[0] == r.count(x.shape[0]) == -(-x.shape[0] * b // a)
    rng = np.random.default_rng(0)
    outs, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 900))
        outs.append(r.push(x[i : i + n]))
        i += n
    np.testing.assert_array_equal(np.concatenate(outs), whole)
    d = float(r.delay)
    ref = np.sin(2 * np.pi * 440 * (np.arange(whole.shape[0]) - d) / b)  # the input, ``delay`` output samples late
    s = slice(int(d) + 100, whole.shape[0] - 10)
    assert np.abs(whole[s] - ref[s]).max() < 1e-4


def test_resampler_identity_and_48k_delay():
    assert StreamResampler(16000, 16000).delay == 0
    assert StreamResampler(48000, 16000).delay == 24 and StreamResampler(16000, 48000).delay == 72


def test_lip_queue_policy_nearest_frame_drops_duplicates_and_stale():
    q = LipQueue(maxlen=4, max_skew=0.1)
    feats = np.ones(82, np.float32)
    for i in range(6):  # 0.00 .. 0.20 s; the first two fall out of the full queue unused
        q.put(LipFrame(0.04 * i, feats * i, i))
    assert q.dropped == 2
    f = q.take(0.125)  # nearest: frame 3 (0.12 s); frame 2 is dropped
    assert f is not None and f.index == 3 and q.dropped == 3
    f = q.take(0.13)  # the same frame again: a duplicate
    assert f is not None and f.index == 3 and q.duplicated == 1
    assert q.take(0.6) is None and q.stale == 1  # nearest is 0.2 s: too far
    assert abs(q.skew_ms()["mean"] - 1e3 * ((0.12 - 0.125) + (0.12 - 0.13)) / 2) < 1e-6


def test_face_fader_ramps_both_ways_without_jumps():
    fader = FaceFader(ramp=4)
    face = np.full(82, 2.0, np.float32)
    out = [fader.step(face) for _ in range(6)] + [fader.step(None) for _ in range(6)] + [fader.step(face) for _ in range(2)]
    gains = np.array([o[0] / 2.0 for o in out])
    np.testing.assert_allclose(gains, [0.25, 0.5, 0.75, 1, 1, 1, 0.75, 0.5, 0.25, 0, 0, 0, 0.25, 0.5])
    assert np.abs(np.diff(gains)).max() <= 0.25 + 1e-6


def test_freewheeling_callback_waits_for_the_worker_and_equals_offline(engine_model):
    """Callbacks faster than real time with ``freewheel`` set: no underrun, and the output is the offline output."""
    from avse.streaming import StreamingEnhancer
    from avse.streaming.audio_io import LiveProcessor

    engine = StreamingEnhancer(engine_model, block=640, backend="torch", video=False)
    proc = LiveProcessor(engine, 16000, 320, headroom_ms=0.0, priority=0).start()
    proc.freewheel = True
    x = _test_signal(16000, 2.0)
    try:
        out = np.concatenate([proc.callback(x[i : i + 320], 0.0) for i in range(0, x.shape[0], 320)])
    finally:
        proc.stop()
    assert proc.error is None and proc.fifo.underruns == 0
    assert proc.blocks_timed == len(proc.block_ms) >= x.shape[0] // 640 - 1  # every block the worker ran was timed
    ref = StreamingEnhancer(engine_model, block=640, backend="torch", video=False).process(x)
    d = int(proc.latency)
    np.testing.assert_allclose(out[d:], ref[: x.shape[0] - d], atol=1e-5)
    assert np.abs(ref).max() > 0.01


# --- real JACK servers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine_model():
    from avse.api import load_model

    return load_model("av-causal")[0]


def _server(rate: int, period: int):
    """A context manager running a dummy-backend jackd under a unique name; skips the test only when jackd cannot start."""
    from avse.errors import ConfigError
    from avse.streaming.audio_io import dummy_jack_server

    if jack is None:
        pytest.skip("JACK-Client (the live extra) or libjack is not installed")
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    name = f"avse-test-{uuid.uuid4().hex[:8]}"
    cm = dummy_jack_server(name, rate, period)
    try:
        cm.__enter__()
    except ConfigError as err:
        pytest.skip(f"jackd cannot be started here: {err}")
    return name, cm


@pytest.fixture(params=[(16000, 320), (48000, 960)], ids=["16k", "48k"])
def jack_server(request, monkeypatch):
    """(server name, rate, period) of a running ``jackd -d dummy`` (20 ms periods); stopped after the test."""
    rate, period = request.param
    name, cm = _server(rate, period)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    yield name, rate, period
    cm.__exit__(None, None, None)


class _PlayRecord:
    """Two JACK clients: one plays ``x`` into ``dst`` from its first cycle, the other records ``src`` with frame times."""

    def __init__(self, server: str, x: np.ndarray, dst: str, src: str):
        self.x = x.astype(np.float32)
        self.pos = 0
        self.go = False
        self.missed: int | None = None  # frame time of the first cycle the player missed
        self.first_frame: int | None = None
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.player = jack.Client("play", servername=server, no_start_server=True)
        self.recorder = jack.Client("rec", servername=server, no_start_server=True)
        self.out = self.player.outports.register("out")
        self.inp = self.recorder.inports.register("in")
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(self._record)
        self.recorder.activate()
        self.recorder.connect(src, self.inp)
        self.dst = dst

    def _play(self, n: int) -> None:
        now = self.player.last_frame_time
        if not self.go:
            self.out.get_array()[:] = 0.0
            return
        if self.first_frame is None:
            self.first_frame = now
        elif now != self.first_frame + self.pos and self.missed is None:
            self.missed = self.first_frame + self.pos  # a cycle this client missed: what avse got there is unknown
        self.pos = now - self.first_frame  # by frame time: a missed cycle does not shift the rest
        buf = self.out.get_array()
        chunk = self.x[self.pos : self.pos + n]
        buf[:] = 0.0
        buf[: chunk.shape[0]] = chunk
        self.pos += n

    def _record(self, n: int) -> None:
        self.chunks.append((self.recorder.last_frame_time, self.inp.get_array().copy()))

    def play(self) -> None:
        self.player.activate()
        self.player.connect(self.out, self.dst)
        time.sleep(3 * self.player.blocksize / self.player.samplerate + 0.02)  # the connection is in the graph by now
        self.go = True

    def recording(self, start: int, length: int) -> np.ndarray:
        """The recorded samples at JACK frames start .. start + length - 1 (NaN where none)."""
        out = np.full(length, np.nan, np.float32)
        for f, a in self.chunks:
            i0, i1 = max(f, start), min(f + a.shape[0], start + length)
            if i1 > i0:
                out[i0 - start : i1 - start] = a[i0 - f : i1 - f]
        return out

    def close(self) -> None:
        for c in (self.player, self.recorder):
            c.deactivate()
            c.close()


def _test_signal(rate: int, seconds: float) -> np.ndarray:
    """Noise with a chirp-like tone, float32 [seconds * rate], peak about 0.5."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * rate)) / rate
    return (0.05 * rng.standard_normal(t.shape[0]) + 0.3 * np.sin(2 * np.pi * (200 + 150 * t) * t)).astype(np.float32)


def _backend() -> str:
    # ONNX when it is installed: onnxruntime lets go of the GIL while it runs, which the three JACK clients
    # of this one process need every cycle (torch's eager step takes it back between its many small ops)
    return "onnx" if importlib.util.find_spec("onnxruntime") and importlib.util.find_spec("onnx") else "torch"


def _play_through_avse(server: str, engine_model, x: np.ndarray, freewheel: bool):
    """Play ``x`` into a JackAudio client "avse" and record its output -> (JackAudio, LiveProcessor, _PlayRecord), all stopped.

    ``freewheel``: the server runs the graph as fast as it can for the file's duration, waiting for every client.
    """
    from avse.streaming import StreamingEnhancer
    from avse.streaming.audio_io import JackAudio, LiveProcessor

    engine = StreamingEnhancer(engine_model, block=640, backend=_backend(), video=False)
    audio = JackAudio(lambda r, p, e=engine: LiveProcessor(e, r, p, headroom_ms=100.0), name="avse", server=server)
    assert audio.ports == ("avse:in", "avse:out")
    proc = audio.processor
    audio.start()
    io = _PlayRecord(server, x, "avse:in", "avse:out")
    rate = audio.sample_rate
    try:
        if freewheel:
            audio.set_freewheel(True)
            assert proc.freewheel
        time.sleep(0.3)
        io.play()
        if freewheel:  # the whole file and the latency after it, however fast the server goes
            deadline = time.monotonic() + 120
            while io.pos < x.shape[0] + 2 * float(proc.latency) + rate // 4 and time.monotonic() < deadline:
                time.sleep(0.05)
            audio.set_freewheel(False)
            assert not proc.freewheel
        else:
            # one long sleep: this thread is no real-time thread, and one that wakes often may be descheduled
            # while it holds the GIL that the JACK callbacks need
            time.sleep(x.shape[0] / rate + 2 * (proc.latency_ms / 1000 + 0.1))
    finally:
        io.close()
        audio.stop()
    assert proc.error is None and audio.first_frame is not None and io.first_frame is not None
    return audio, proc, io


def _disturbed(audio, proc, io) -> list[int]:
    """Where (samples from avse's first cycle) the player's first missed cycle and avse's missed cycles, xruns and late output blocks fell."""
    frames = ([io.missed] if io.missed is not None else []) + audio.missed_at + audio.xrun_at
    return sorted([f - audio.first_frame for f in frames] + proc.fifo.underrun_at)


def _check_against_offline(audio, proc, io, x: np.ndarray, engine_model, n_max: int | None = None) -> None:
    """The recording equals the offline causal output (resampled the same way) shifted by the reported latency."""
    from avse.streaming import StreamingEnhancer

    rate, period = audio.sample_rate, audio.period
    lead = io.first_frame - audio.first_frame  # samples avse saw before the file began
    xz = np.concatenate([np.zeros(lead, np.float32), x])
    ref_engine = StreamingEnhancer(engine_model, block=640, backend=_backend(), video=False)
    r = proc.ratio
    if rate == 16000:
        ref = ref_engine.process(xz)  # [T] what the model gives offline
        shift = proc.prefill + ref_engine.delay  # = latency: no resampling
        assert shift == proc.latency
    else:  # the same causal resamplers offline around the offline model; the rest of the latency is theirs
        down, up = StreamResampler(rate, 16000), StreamResampler(16000, rate)
        ref = up.process(ref_engine.process(down.process(xz)))
        shift = proc.prefill + r * ref_engine.delay
        assert shift.denominator == 1 and proc.latency == shift + r * down.delay + up.delay
    tol = 1e-3
    shift = int(shift)
    n = xz.shape[0] - 64  # the tail: the offline run ends there, the live one goes on with silence
    if n_max is not None:
        n = min(n, n_max)
    assert n - lead >= rate, f"less than 1 s to compare ({n - lead} samples)"
    rec = io.recording(audio.first_frame + shift, n)
    ok = ~np.isnan(rec)
    assert ok[lead:].mean() > 0.9, f"the recorder missed {100 * (1 - ok[lead:].mean()):.0f}% of the cycles; xruns {audio.xruns}"
    err = np.abs(rec[ok] - ref[:n][ok]).max()
    if err > tol:  # say where the recording would have lined up
        lags = range(-2 * period, 2 * period + 1)
        best = min(lags, key=lambda k: np.nanmean(np.abs(io.recording(audio.first_frame + shift + k, n)[lead:] - ref[lead:n])))
        bad = np.flatnonzero(np.abs(rec - ref[:n]) > tol)
        pytest.fail(f"max |live - offline| = {err:.3g} > {tol} at {bad.size} samples from {bad[:1]} (of {n}, lead {lead}); best lag {best} "
                    f"samples from the reported latency; xruns {audio.xruns}, missed cycles {audio.missed_cycles}, underruns at {proc.fifo.underrun_at[:5]}")
    assert np.abs(ref[lead:n]).max() > 0.01  # the comparison compared something
    if rate != 16000:  # the full reported latency, filters included: against zero-phase resampling around the model
        from scipy.signal import resample_poly

        zp = resample_poly(ref_engine.process(resample_poly(xz, 1, 3)), 3, 1)[:n]
        full = int(round(float(proc.latency)))
        rec_full = io.recording(audio.first_frame + full, n)
        seg = slice(lead + rate // 4, n - rate // 4)
        lags = np.arange(-6, 7)
        errs = [np.nanmean((io.recording(audio.first_frame + full + k, n)[seg] - zp[seg]) ** 2) for k in lags]
        assert lags[int(np.argmin(errs))] == 0, f"zero-phase reference lines up {lags[int(np.argmin(errs))]} samples off"
        rel = np.sqrt(np.nanmean((rec_full[seg] - zp[seg]) ** 2) / np.mean(zp[seg] ** 2))
        # a loose bound: the two anti-alias filters differ near 8 kHz and the model is not linear
        assert rel < 0.35, f"relative RMS difference {rel:.3f} to zero-phase resampling (stated tolerance 0.35)"
    assert isinstance(proc.latency, Fraction) and proc.latency_ms < 130  # 100 ms of headroom asked for here


@pytest.mark.slow
def test_jack_output_equals_offline_causal_output(jack_server, engine_model):
    """Through a real JACK server in freewheel mode (the graph as fast as it goes, every client waited for): exact on any machine."""
    name, rate, period = jack_server
    x = _test_signal(rate, 3.0)
    audio, proc, io = _play_through_avse(name, engine_model, x, freewheel=True)
    assert audio.sample_rate == rate and audio.period == period
    lead = io.first_frame - audio.first_frame
    # freewheeling, nothing is missed or late while the file and its latency play (before: silence in real time;
    # the server may report an xrun as it leaves freewheel mode, after)
    end = lead + x.shape[0] + int(proc.latency)
    assert not [d for d in _disturbed(audio, proc, io) if lead <= d < end], (_disturbed(audio, proc, io), lead, end)
    assert io.pos >= x.shape[0]
    _check_against_offline(audio, proc, io, x, engine_model)


@pytest.mark.slow
def test_jack_output_equals_offline_in_real_time(engine_model, monkeypatch):
    """The same in real time, up to the first missed cycle or late block; skipped when the machine never holds 2 s of real time."""
    name, cm = _server(16000, 320)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    x = _test_signal(16000, 3.0)
    try:
        for _attempt in range(3):  # a busy machine: an xrun early in the file leaves too little to compare; try again
            audio, proc, io = _play_through_avse(name, engine_model, x, freewheel=False)
            lead = io.first_frame - audio.first_frame
            clean = min([lead + x.shape[0]] + [d - 16000 // 4 for d in _disturbed(audio, proc, io) if d > lead])
            if clean - lead >= 2 * 16000:  # an xrun spoils the cycles around it: a quarter of a second before
                break
        else:
            pytest.skip(f"this machine missed JACK cycles within the first 2 s in 3 tries (xruns {audio.xruns}): "
                        "the freewheeling test checks the output")
    finally:
        cm.__exit__(None, None, None)
    _check_against_offline(audio, proc, io, x, engine_model, n_max=clean)


@pytest.fixture(scope="module")
def face_clip(tiny_corpus, tmp_path_factory):
    """A 6 s 25 fps talking-face clip made from the tiny corpus, with the face blanked (grey frames) from 2.5 s to 3.5 s."""
    from avse.video.io import read_video, write_video

    clips = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))
    frames = np.concatenate([read_video(c, with_audio=False).frames for c in clips])
    frames = np.concatenate([frames] * (-(-150 // frames.shape[0])))[:150]  # [150, H, W, 3]
    frames[62:87] = 128
    path = tmp_path_factory.mktemp("live") / "face_gap.mp4"
    write_video(path, frames, fps=25)
    return path


@pytest.mark.slow
def test_video_file_camera_in_real_time_with_audio_only_fallback(face_clip, engine_model, monkeypatch):
    from avse.streaming import StreamingEnhancer
    from avse.streaming.live import LiveSession

    name, cm = _server(16000, 320)
    monkeypatch.setenv("JACK_DEFAULT_SERVER", name)
    try:
        engine = StreamingEnhancer(engine_model, block=640, backend=_backend(), video=True, max_video_wait_ms=0.0)
        session = LiveSession(engine, jack=True, server=name, camera=face_clip, record=True, connect=False, headroom_ms=60.0)
        # noise into avse:in, so that the output has something in it at the switches
        x = _test_signal(16000, 8.0)
        lines = []
        session.start()
        io = _PlayRecord(name, x, "avse:in", "avse:out")
        io.play()
        try:
            while not (session.camera.finished and time.monotonic() - session.t_start > 6.4):
                time.sleep(0.25)
                session.check()
                lines.append((session.processor.fader.mode, session.status_line()))
        finally:
            session.stop()
            io.close()
    finally:
        cm.__exit__(None, None, None)
    st = session.status()
    trace = np.array(session.processor.visual_trace)  # [F, 3] frame, gain, opening
    assert st["camera_frames"] >= 140 and st["face_frames"] >= 90, st
    # the lip process's CPU time arrived, and the total covers the model worker's time and MediaPipe's
    assert session.camera.cpu_s > 0 and st["cpu_total_percent"] > st["cpu_percent"], st
    # ... over the lip process's own time: a share of one core, and the total is the two processes' sum
    assert 0 < session.camera.cpu_wall_s and 0 < st["cpu_lips_percent"] < 200, st
    assert st["cpu_total_percent"] == pytest.approx(st["cpu_audio_percent"] + st["cpu_lips_percent"], abs=0.11), st
    # late output blocks are not this test's business (bench/bench_live.py counts them): a busy machine has them
    assert abs(st["skew_ms"]["mean"]) < 40 and st["skew_ms"]["p95_abs"] < 100, st
    # the clip's time at each audio frame's middle (the camera began before the first audio callback)
    t = trace[:, 0] * 0.04 + 0.02 + (session.processor.started - session.camera.started)
    on = (t > 0.8) & (t < 2.3)
    gap = (t > 2.85) & (t < 3.45)  # blank from 2.5 s: 2 frames held, then a 5-frame ramp down
    back = (t > 4.3) & (t < 5.8)
    assert (trace[on, 1] == 1).mean() > 0.9 and (trace[back, 1] == 1).mean() > 0.9
    assert (trace[gap, 1] == 0).all(), f"the blanked second should run audio-only: {trace[::5].round(2).tolist()}"
    assert np.std(trace[on, 2]) > 0.01, "the mouth opening should move while the face talks"
    assert np.abs(np.diff(trace[:, 1])).max() <= 0.2 + 1e-6  # gains ramp, never jump
    modes = [m for _, m in session.processor.mode_log]
    assert "audio-only" in modes and modes.count("audio-visual") >= 2
    assert any("audio-only" in line for m, line in lines if m == "audio-only")
    y = session.processor.recorded()
    assert y.shape[0] > 5 * 16000 and np.isfinite(y).all()
    # no click at the switches: the largest step in the output near them is no larger than elsewhere
    step = np.abs(np.diff(y))
    switches = [f * 640 for f, m in session.processor.mode_log[1:]]
    near = np.zeros(step.shape[0], bool)
    for s in switches:
        near[max(0, s - 8000) : s + 8000] = True
    if near.any() and (~near).any():
        assert step[near].max() <= 1.5 * step[~near].max() + 1e-3


@pytest.mark.slow
def test_cli_live_records_and_stops_on_interrupt(tmp_path, monkeypatch):
    import signal
    import subprocess
    import sys

    name, cm = _server(16000, 320)
    try:
        out = tmp_path / "live.wav"
        env = dict(os.environ, JACK_DEFAULT_SERVER=name, OMP_NUM_THREADS="1")
        proc = subprocess.Popen([sys.executable, "-m", "avse.cli", "live", "--jack", "--model", "av-causal", "--backend", "torch",
                                 "--no-connect", "--record", str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if proc.poll() is not None:
                break
            try:
                c = jack.Client("probe2", servername=name, no_start_server=True)
                up = any(p.name == "avse:out" for p in c.get_ports())
                c.close()
                if up:
                    break
            except jack.JackOpenError:
                pass
        time.sleep(2.0)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        cm.__exit__(None, None, None)
    assert proc.returncode == 130, stderr
    assert "avse: interrupted" in stderr
    assert "latency" in stdout and f"written: {out}" in stdout
    import soundfile as sf

    y, sr = sf.read(out)
    assert sr == 16000 and y.shape[0] > 16000
    assert not list(tmp_path.glob(".live.*"))  # no temporary left


@pytest.mark.slow
def test_portaudio_path_through_portaudios_jack_host_api(tmp_path):
    """`avse live --device N` (sounddevice) on PortAudio's JACK device: runs, stops after --seconds, records."""
    import subprocess
    import sys

    name, cm = _server(16000, 320)
    try:
        env = dict(os.environ, JACK_DEFAULT_SERVER=name, OMP_NUM_THREADS="1")
        find = ("import sounddevice as sd\n"
                "ids = [i for i, d in enumerate(sd.query_devices()) if 'JACK' in sd.query_hostapis(d['hostapi'])['name']"
                " and d['max_input_channels'] > 0 and d['max_output_channels'] > 0]\n"
                "print(ids[0] if ids else -1)")
        r = subprocess.run([sys.executable, "-c", find], env=env, capture_output=True, text=True, timeout=60)
        lines = r.stdout.strip().splitlines()
        if r.returncode != 0 or not lines or int(lines[-1]) < 0:
            pytest.skip(f"PortAudio here has no JACK host API ({r.stderr.strip()[-200:]})")
        out = tmp_path / "pa.wav"
        r = subprocess.run([sys.executable, "-m", "avse.cli", "live", "--device", lines[-1], "--seconds", "3", "--backend", "torch",
                            "--record", str(out)], env=env, capture_output=True, text=True, timeout=120)
    finally:
        cm.__exit__(None, None, None)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "16000 Hz server" in r.stdout and f"written: {out}" in r.stdout
    import soundfile as sf

    y, sr = sf.read(out)
    assert sr == 16000 and y.shape[0] > 2 * 16000


def test_camera_file_must_exist():
    from avse.streaming.camera import CameraSource

    with pytest.raises(Exception, match="no such video file"):
        CameraSource("/nonexistent/clip.mp4")


def test_idle_poll_holds_the_request_while_acquired_and_gives_it_back(tmp_path):
    """IdlePoll writes 0 (int32) into the PM QoS device and keeps it open until released; no access: False, nothing held."""
    import struct

    from avse.streaming.audio_io import IdlePoll

    fake = tmp_path / "cpu_dma_latency"
    fake.write_bytes(b"")
    hold = IdlePoll(fake)
    assert hold.acquire() and hold.held
    assert hold.acquire()  # a second call keeps the one request
    assert struct.unpack("i", fake.read_bytes()) == (0,)
    fd = hold._fd
    hold.release()
    assert not hold.held
    with pytest.raises(OSError):
        os.fstat(fd)  # closed: the kernel drops the request with the last close
    hold.release()  # idempotent
    assert not IdlePoll(tmp_path / "missing" / "cpu_dma_latency").acquire()


@pytest.mark.skipif(not os.access("/dev/cpu_dma_latency", os.W_OK), reason="no write access to /dev/cpu_dma_latency")
def test_idle_poll_on_the_real_device_sets_and_restores_the_latency():
    """While held the kernel reads back 0 µs from the device; after release the value before (the system's own)."""
    import struct

    from avse.streaming.audio_io import CPU_DMA_LATENCY, IdlePoll

    def current() -> int:
        with open(CPU_DMA_LATENCY, "rb") as f:
            return struct.unpack("i", f.read(4))[0]

    before = current()
    hold = IdlePoll()
    assert hold.acquire()
    assert current() == 0
    hold.release()
    assert current() == before
