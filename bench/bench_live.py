"""Live I/O through a real JACK server (dummy backend): end-to-end latency, time per block with and without video, xruns.

    python bench/bench_live.py [--model av-causal] [--backend auto] [--seconds 60] [--clip VIDEO] [--camera-format both] [--record] [--preview]

1. Latency, at 16 kHz with periods 320 and 256: an impulse train is played
   into avse:in and recorded from avse:out by two other JACK clients, by
   frame time; they stand in for the sound card, in a process of their own.
   The model would treat a click as noise, so for the impulse the engine's
   step is a pass-through delayed by the model's look-ahead (same
   block, same buffering): the impulse comes back exactly ``latency``
   samples later. With the real model, speech is played instead and the lag
   of the cross-correlation peak is measured.
2. A run of ``--seconds`` at period 320 without video, then with a camera:
   ``--clip`` (default: a GRID clip from ../shared/data/real/, else a tiny
   synthetic clip) upscaled to 640x480, looped at 25 fps, as H.264 (decoded
   like any compressed stream) and as raw YUYV 4:2:2 (what a USB webcam
   sends; only the colour conversion is left). For each: per-block time
   (resampling + lip-frame choice + model) p50 / p99, real-time factor
   (mean block time / 40 ms), lip front end ms per frame, CPU seconds per
   second of the audio process and of the lip process (their sum: the
   end-to-end real-time factor on one core; the lip process's also by
   thread kind: MediaPipe, decoder, Python), xruns (server xruns + output
   underruns + missed cycles) with their times, and the CPU time the
   hypervisor took away meanwhile (``steal`` in /proc/stat; a virtual
   machine's stalls show there).

``--record``: the runs with video also record it (the camera's frames
encoded as captured, then written with the enhanced audio as ``avse live
--record out.mp4`` does; its CPU shows in the lip process's, the time to
write the file and its bit rate apart). ``--preview``: they also show the
preview window (a display is needed: Xvfb will do).

Writes bench/results/live.json (keeping runs of other lengths and blocks already there;
a run with another block than 640 is named with it, e.g. video_60s_block320).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

if __name__ == "__main__":  # not in the sound-card child, where PortAudio would join the server as one more client
    try:  # PortAudio (imported by MediaPipe) must start before any JACK server of ours: see tests/test_live.py
        import sounddevice  # noqa: F401
    except (ImportError, OSError):
        pass
import jack

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import save  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


class DelayStep:
    """A pass-through step: block float32 [H] -> [1, H], the input delayed by ``delay`` samples (the model's look-ahead)."""

    name = "delay"

    def __init__(self, delay: int):
        self.delay = delay
        self.reset()

    def reset(self) -> None:
        self.hist = np.zeros(self.delay, np.float32)

    def __call__(self, block: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        x = np.concatenate([self.hist, block])
        self.hist = x[x.shape[0] - self.delay :] if self.delay else self.hist
        return x[: block.shape[0]][None]


class _Clients:
    """Two JACK clients: one plays ``x`` into ``dst`` (by frame time, from ``go``), one records ``src`` with frame times."""

    def __init__(self, server: str, x: np.ndarray, dst: str, src: str):
        self.x = x.astype(np.float32)
        self.first: int | None = None
        self.go = False
        self.chunks: list[tuple[int, np.ndarray]] = []
        self.player = jack.Client("bench-play", servername=server, no_start_server=True)
        self.recorder = jack.Client("bench-rec", servername=server, no_start_server=True)
        self.out = self.player.outports.register("out")
        self.inp = self.recorder.inports.register("in")
        self.player.set_process_callback(self._play)
        self.recorder.set_process_callback(lambda n: self.chunks.append((self.recorder.last_frame_time, self.inp.get_array().copy())))
        self.recorder.activate()
        self.recorder.connect(src, self.inp)
        self.player.activate()
        self.player.connect(self.out, dst)
        time.sleep(0.1)
        self.go = True

    def _play(self, n: int) -> None:
        buf = self.out.get_array()
        buf[:] = 0.0
        if not self.go:
            return
        now = self.player.last_frame_time
        if self.first is None:
            self.first = now
        pos = now - self.first
        chunk = self.x[pos : pos + n]
        buf[: chunk.shape[0]] = chunk

    def done(self) -> bool:
        return self.first is not None and bool(self.chunks) and self.chunks[-1][0] - self.first > self.x.shape[0] + 16000

    def recording(self) -> np.ndarray:
        """What was recorded at frames first .. first + len(x) + 1 s -> float32 [n] (NaN where none)."""
        n = self.x.shape[0] + 16000
        out = np.full(n, np.nan, np.float32)
        if self.first is None:
            return out
        for f, a in list(self.chunks):
            i0, i1 = max(f, self.first), min(f + a.shape[0], self.first + n)
            if i1 > i0:
                out[i0 - self.first : i1 - self.first] = a[i0 - f : i1 - f]
        return out

    def close(self) -> None:
        for c in (self.player, self.recorder):
            c.deactivate()
            c.close()


def _sound_card_main(server: str, x: np.ndarray, dst: str, src: str, conn) -> None:
    """The child process of PlayRecord: the two clients, "done" when the file has played, the recording on "close"."""
    io = _Clients(server, x, dst, src)
    conn.send("ready")
    said = False
    try:
        while not conn.poll(0.05):
            if not said and io.done():
                conn.send("done")
                said = True
        conn.recv()
    finally:
        io.close()
    conn.send(io.recording())


class PlayRecord:
    """The sound card of the bench: ``x`` played into ``dst`` and ``src`` recorded by frame time, in a process of its own.

    A sound card runs no Python in avse's process: here the two JACK clients
    (see ``_Clients``) live in a spawned child, so that neither their CPU time
    nor their hold on the GIL counts as avse's. ``done()`` once ``x`` and one
    more second have been recorded; ``close()`` fetches the recording.
    """

    def __init__(self, server: str, x: np.ndarray, dst: str, src: str):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_sound_card_main, args=(server, x, dst, src, child), name="bench-sound-card", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(60) or self._conn.recv() != "ready":
            raise RuntimeError("the bench's JACK clients did not start")
        self._done = False
        self._rec: np.ndarray | None = None

    def done(self) -> bool:
        """Whether ``x`` and one more second have been played and recorded."""
        if not self._done and self._conn.poll(0):
            self._done = self._conn.recv() == "done"
        return self._done

    def recording(self) -> np.ndarray:
        """What was recorded from the first played frame on, ``len(x)`` + 1 s -> float32 [n] (NaN where none); after close()."""
        if self._rec is None:
            raise RuntimeError("close() first")
        return self._rec

    def close(self) -> None:
        """Stop the clients and fetch the recording; a child that died or hangs is ended and gives an empty recording."""
        if self._rec is not None:
            return
        self._rec = np.zeros(0, np.float32)
        try:
            self._conn.send("close")
            while self._conn.poll(30):
                msg = self._conn.recv()
                if isinstance(msg, np.ndarray):
                    self._rec = msg
                    break
        except (EOFError, BrokenPipeError, OSError):
            pass
        self._proc.join(10)
        if self._proc.is_alive():
            self._proc.terminate()


def speech(seconds: float) -> np.ndarray:
    """Real speech (CMU ARCTIC from ../shared, looped) or a voiced synthetic stand-in, float32 [seconds * 16000]."""
    from avse.audio.io import load_audio

    n = int(seconds * 16000)
    files = sorted((SHARED / "speech").glob("*.wav"))
    if files:
        x = np.concatenate([load_audio(f, 16000)[0] for f in files])
    else:
        t = np.arange(n) / 16000
        x = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t))
    x = np.resize(np.asarray(x, np.float32), n)
    return (0.3 * x / max(np.abs(x).max(), 1e-6)).astype(np.float32)


def measure_latency(args, model, server: str, period: int) -> dict:
    """The impulse (pass-through step) and the speech (real model) latency through JACK at ``period``."""
    from avse.streaming import StreamingEnhancer
    from avse.streaming.audio_io import JackAudio, LiveProcessor

    out: dict = {"period": period}
    for kind in ("impulse", "speech"):
        engine = StreamingEnhancer(model, block=args.block, backend=args.backend, video=False)
        if kind == "impulse":
            engine.step = DelayStep(engine.delay)  # type: ignore[assignment]
            x = np.zeros(3 * 16000, np.float32)
            x[[4000, 20000, 36000]] = 0.5
        else:
            x = speech(4.0)
        audio = JackAudio(lambda r, p, e=engine: LiveProcessor(e, r, p, headroom_ms=args.headroom), name="avse", server=server)
        audio.start()
        io = PlayRecord(server, x, "avse:in", "avse:out")
        try:
            while not io.done():
                time.sleep(0.05)
        finally:
            io.close()
            audio.stop()
        rec = np.nan_to_num(io.recording())
        reported = float(audio.processor.latency)
        if kind == "impulse":
            lags = [int(np.argmax(np.abs(rec[k : k + 8000]))) for k in (4000, 20000, 36000)]
            out["impulse_lags_samples"] = lags
        else:
            n = x.shape[0]
            corr = np.correlate(rec[: n + 4000], x[:n], mode="valid")  # lags 0 .. 4000
            lags = [int(np.argmax(np.abs(corr)))]
            out["speech_lag_samples"] = lags[0]
        out["reported_samples"] = reported
        out["reported_ms"] = round(1000 * reported / 16000, 3)
        out[f"{kind}_ms"] = round(1000 * float(np.median(lags)) / 16000, 3)
        out["prefill_samples"] = audio.processor.prefill
        out["headroom_samples"] = audio.processor.headroom
        out[f"{kind}_xruns"] = audio.xruns + audio.processor.fifo.underruns + audio.missed_cycles
    return out


def write_yuyv(path: Path, frames: np.ndarray, fps: int = 25) -> None:
    """frames uint8 [N, H, W, 3] RGB -> an uncompressed YUYV 4:2:2 video (what a USB webcam sends), AVI."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("rawvideo", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuyv422"
        for f in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24").reformat(format="yuyv422")))
        out.mux(stream.encode(None))


def face_clip(tmp: Path, args, fmt: str = "h264") -> Path:
    """A 640x480 25 fps talking-face clip (``--clip``, a GRID clip, or a synthetic one) in ``tmp``: H.264 or raw YUYV."""
    import cv2

    from avse.video.io import read_video, write_video

    src = Path(args.clip) if args.clip else next(iter(sorted((SHARED / "grid").glob("*.mpg"))), None)
    if src is None:
        from avse.config import synth_config
        from avse.data.synth import synthesize_corpus

        synthesize_corpus(tmp / "corpus", synth_config("tiny"), jobs=1, progress=False)
        src = sorted((tmp / "corpus").rglob("*.mp4"))[0]
    frames = read_video(src, with_audio=False).frames
    big = np.stack([cv2.resize(f, (640, 480), interpolation=cv2.INTER_LINEAR) for f in frames])  # [N, 480, 640, 3]
    if fmt == "yuyv":
        path = tmp / "clip640x480_yuyv.avi"
        write_yuyv(path, big)
    else:
        path = tmp / "clip640x480.mp4"
        write_video(path, big, fps=25)
    return path


#: seconds per CPU clock tick, the unit of /proc/stat and /proc/PID/task/TID/stat
TICK_S = 1.0 / os.sysconf("SC_CLK_TCK")


class Steal:
    """CPU time the hypervisor gave to others (``steal`` in /proc/stat), sampled every 0.25 s in a thread: when and how much."""

    def __init__(self, t0: float):
        import threading

        self.t0 = t0  # time.monotonic() of the count's start
        self.first = self.last = self._read()
        self.bursts: list[tuple[float, float]] = []  # (s since start, steal ms in that 0.25 s), the first 100
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _read(self) -> int:
        try:
            with open("/proc/stat") as f:
                fields = f.readline().split()
            return int(fields[8]) if len(fields) > 8 else 0
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            now = self._read()
            if now > self.last and len(self.bursts) < 100:
                self.bursts.append((round(time.monotonic() - self.t0, 2), round(1000 * (now - self.last) * TICK_S, 1)))
            self.last = now

    def stop(self) -> dict:
        """End sampling -> {"steal_s": steal seconds since the start (None without /proc/stat), "steal_bursts"}."""
        self._stop.set()
        self._thread.join(1)
        self.last = self._read()
        ok = Path("/proc/stat").is_file()
        return {"steal_s": round((self.last - self.first) * TICK_S, 2) if ok else None, "steal_bursts": self.bursts}


#: seconds after the bench's sound card has joined (its clients connect: JACK reorders its graph) before the count starts
WARMUP_S = 3.0


def thread_ticks(pid: int | None, names: dict[int, str] | None = None) -> dict[str, tuple[str, int]]:
    """A process's live threads -> {thread id: (kind, CPU clock ticks of user + system time)}.

    kind: "mediapipe", "decoder" (FFmpeg's "av:..." threads) or "python" (the rest); with
    ``names`` (native thread id -> name, e.g. this process's Python threads) a named
    thread's name, and "native" for the threads no Python thread owns (JACK's process
    thread, onnxruntime's, the interpreter's helpers).
    """
    out: dict[str, tuple[str, int]] = {}
    if pid is None:
        return out
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()
        if names is not None:
            kind = names.get(int(tid), "native")
        else:
            kind = "mediapipe" if name.startswith("mediapipe") else "decoder" if name.startswith("av:") else "python"
        out[tid] = (kind, int(fields[11]) + int(fields[12]))  # utime + stime
    return out


def thread_share(a: dict[str, tuple[str, int]], b: dict[str, tuple[str, int]], seconds: float, total_percent: float) -> dict[str, float]:
    """% of one core by thread kind between two ``thread_ticks``; "ended": the rest of ``total_percent`` (threads gone by ``b``)."""
    out: dict[str, float] = {}
    for tid, (kind, ticks) in b.items():
        out[kind] = out.get(kind, 0.0) + 100 * TICK_S * (ticks - a.get(tid, (kind, 0))[1]) / seconds
    out = {k: round(v, 1) for k, v in sorted(out.items())}
    out["ended"] = round(max(total_percent - sum(out.values()), 0.0), 1)
    return out


class Counts:
    """The counters of a LiveSession at one moment (xruns, underruns, missed cycles, blocks, CPU time of both processes and of their threads by kind)."""

    def __init__(self, session):
        self.t = time.monotonic()
        self.server_xruns = session.audio.xruns
        self.underruns = session.processor.fifo.underruns
        self.missed = session.audio.missed_cycles
        self.blocks = session.processor.blocks_timed
        self.busy_s = session.processor.busy_s
        self.cpu_audio = time.process_time()  # this process is the audio process (the sound card runs elsewhere)
        self.audio_threads = thread_ticks(os.getpid(), {t.native_id: t.name for t in threading.enumerate() if t.native_id})
        cam = session.camera
        self.cpu_lips, self.wall_lips = (cam.cpu_s, cam.cpu_wall_s) if cam is not None else (0.0, 0.0)
        self.lip_threads = thread_ticks(cam._proc.pid if cam is not None and cam._proc is not None else None)


def run(args, model, server: str, camera: Path | None) -> dict:
    """A run with live audio (speech played in) and, with ``camera``, the video path -> its numbers.

    The count starts ``WARMUP_S`` after the sound card joined and lasts
    ``--seconds``; xruns in the warm-up are reported apart (``warmup_xruns``).
    """
    from avse.streaming import StreamingEnhancer
    from avse.streaming.live import LiveSession

    engine = StreamingEnhancer(model, block=args.block, backend=args.backend, video=camera is not None, max_video_wait_ms=0.0)
    frames_path = None if camera is None or not args.record else Path(camera).parent / "frames.mp4"
    session = LiveSession(engine, jack=True, server=server, camera=camera, connect=False, headroom_ms=args.headroom, loop_camera=True,
                          idle_poll=not args.no_idle_poll, record=frames_path is not None, record_video=frames_path,
                          preview=args.preview and camera is not None)
    session.start()
    io = PlayRecord(server, speech(args.seconds + WARMUP_S + 4), "avse:in", "avse:out")
    t_io = time.monotonic()
    try:
        time.sleep(WARMUP_S)
        a = Counts(session)
        steal = Steal(a.t)
        while time.monotonic() - a.t < args.seconds:
            time.sleep(0.5)
            session.check()
        b = Counts(session)
        st = session.status()
    finally:
        session.stop()
        io.close()
    machine = steal.stop()
    el = b.t - a.t
    rate = session.processor.sample_rate
    start_frame = session.audio.first_frame or 0
    t0_s = a.t - session.processor.started  # the count's start on the stream's clock (s since the first cycle)
    # frame time first_frame is the first cycle's start: its input began one period earlier, at processor.started
    period_s = session.audio.period / rate

    def since_start(frames: list[int]) -> list[float]:
        return [round(((f - start_frame) % (1 << 32)) / rate + period_s - t0_s, 2) for f in frames]

    timed = list(session.processor.block_ms)  # the last entries only: entry k is timed[k - first]
    first = session.processor.blocks_timed - len(timed)
    ms = np.array(timed[max(a.blocks - first, 0) : b.blocks - first])
    lips_share = (b.cpu_lips - a.cpu_lips) / max(b.wall_lips - a.wall_lips, 1e-9) if camera is not None else 0.0
    out = {
        "seconds": round(el, 2),
        "warmup_s": round(a.t - t_io, 2),
        "backend": engine.step.name,
        "latency_ms": st["latency_ms"],
        "headroom_ms": args.headroom,
        "block_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "block_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "block_ms_max": round(float(ms.max()), 3),
        "real_time_factor": round(float(ms.mean()) / (1000 * args.block / 16000), 4),
        "cpu_percent": round(100 * (b.busy_s - a.busy_s) / el, 1),
        # CPU seconds of all of avse per second, the end-to-end real-time factor on one core: the audio process
        # (every thread; the bench's JACK clients run in a process of their own, as a sound card would) and the
        # camera/lip process (all its threads: decoding, MediaPipe, features)
        "cpu_audio_percent": round(100 * (b.cpu_audio - a.cpu_audio) / el, 1),
        "cpu_lips_percent": round(100 * lips_share, 1),
        "server_xruns": b.server_xruns - a.server_xruns,
        "underruns": b.underruns - a.underruns,
        "missed_cycles": b.missed - a.missed,
        "realtime_worker": session.processor.realtime,
        "idle_poll": st["idle_poll"],  # whether idle cores polled (/dev/cpu_dma_latency held at 0)
    }
    out["cpu_total_percent"] = round(out["cpu_audio_percent"] + out["cpu_lips_percent"], 1)
    # the audio process's CPU by thread, % of one core: "avse-engine" (resampling, lip frames, the model), "MainThread"
    # (this bench's loop), "avse-lips-rx" (lip frames from the lip process), "native" (JACK's process thread, which runs
    # the audio callback, and other threads without a Python name)
    out["cpu_audio_threads_percent"] = thread_share(a.audio_threads, b.audio_threads, el, out["cpu_audio_percent"])
    out["xruns_total"] = out["server_xruns"] + out["underruns"] + out["missed_cycles"]
    out["warmup_xruns"] = a.server_xruns + a.underruns + a.missed
    # times in s from the count's start (negative: in the warm-up)
    out["server_xruns_at_s"] = since_start(session.audio.xrun_at)[:20]
    out["missed_at_s"] = since_start(session.audio.missed_at)[:20]
    # output position q is read by the cycle whose input began q samples after the first's: that cycle runs one period later
    out["underruns_at_s"] = [round(q / rate + period_s - t0_s, 2) for q in session.processor.fifo.underrun_at[:20]]
    out.update(machine)
    if camera is not None and session.camera is not None:
        lip = np.array(session.camera.ms)
        out.update({k: st[k] for k in ("camera_frames", "camera_dropped", "lip_frames", "face_frames", "frames_taken",
                                       "frames_dropped", "frames_duplicated", "frames_stale", "skew_ms")})
        out["lip_ms_p50"] = round(float(np.percentile(lip, 50)), 2)
        out["lip_ms_p99"] = round(float(np.percentile(lip, 99)), 2)
        # the lip process's CPU by thread kind, % of one core (the Python threads: camera read and colour
        # conversion, the frame loop, MediaPipe's Python side, the pipe to the audio process; "ended": threads
        # that ended during the count, e.g. the decoder's, which a looped file starts anew each time round)
        out["cpu_lips_threads_percent"] = thread_share(a.lip_threads, b.lip_threads, el, out["cpu_lips_percent"])
        if args.preview:
            out["preview_frames"] = st["preview_frames"]
        if frames_path is not None:  # the session's video written as `avse live --record out.mp4` writes it, timed
            recording = frames_path.parent / "session.mp4"
            t0 = time.monotonic()
            session.save_recording(recording)
            out.update(record_frames=st["record_frames"], record_lead_frames=st["record_lead_frames"],
                       record_dropped=st["record_dropped"],
                       record_write_s=round(time.monotonic() - t0, 2),
                       record_mbit_per_s=round(8e-6 * recording.stat().st_size / (time.monotonic() - session.t_start), 2))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="av-causal")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--block", type=int, default=640)
    parser.add_argument("--headroom", type=float, default=20.0, help="ms (as avse live --headroom)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each of the two runs (audio only, with video)")
    parser.add_argument("--clip", help="talking-face video for the camera (upscaled to 640x480)")
    parser.add_argument("--camera-format", default="both", choices=["h264", "yuyv", "both"],
                        help="the camera file: H.264 (decoding costs what a compressed stream costs) or raw YUYV 4:2:2 (as a USB webcam sends)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--no-idle-poll", action="store_true", help="let idle cores halt (as avse live --no-idle-poll)")
    parser.add_argument("--only-video", action="store_true", help="only the runs with video, one per --camera-format (e.g. a long xrun run)")
    parser.add_argument("--record", action="store_true", help="runs with video record it (as avse live --record out.mp4)")
    parser.add_argument("--preview", action="store_true", help="runs with video show the preview window (as avse live --preview; needs DISPLAY)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from avse.api import load_model
    from avse.streaming.audio_io import dummy_jack_server

    model = load_model(args.model)[0]
    import json

    from _common import RESULTS

    old = RESULTS / "live.json"
    result: dict = json.loads(old.read_text()) if old.is_file() else {}  # runs of other lengths are kept
    result.pop("machine", None)
    result.pop("block", None)  # each run says its own
    result.update({"model": args.model, "headroom_ms": args.headroom})
    if not args.skip_latency:
        result["latency"] = []
        for period in (320, 256):
            with dummy_jack_server(f"avse-bench-{uuid.uuid4().hex[:6]}", 16000, period) as name:
                result["latency"].append({"block": args.block, **measure_latency(args, model, name, period)})
                print(result["latency"][-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        runs: list[tuple[str, Path | None]] = [] if args.only_video else [("audio_only", None)]
        if args.camera_format in ("h264", "both"):
            runs.append(("video", face_clip(Path(tmp), args, "h264")))
        if args.camera_format in ("yuyv", "both"):
            runs.append(("video_yuyv", face_clip(Path(tmp), args, "yuyv")))
        for label, cam in runs:
            with dummy_jack_server(f"avse-bench-{uuid.uuid4().hex[:6]}", 16000, 320) as name:
                key = f"{label}_{args.seconds:g}s" + ("" if args.block == 640 else f"_block{args.block}")
                if cam is not None:
                    key += "_record" * args.record + "_preview" * args.preview
                result[key] = {"model": args.model, "block": args.block, **run(args, model, name, cam)}
                print(key, result[key], flush=True)
    save("live", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
