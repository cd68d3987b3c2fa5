"""Live I/O through a real JACK server (dummy backend): end-to-end latency, time per block with and without video, xruns.

    python bench/bench_live.py [--model av-causal] [--backend auto] [--seconds 60] [--clip VIDEO]

1. Latency, at 16 kHz with periods 320 and 256: an impulse train is played
   into avse:in and recorded from avse:out by two other JACK clients, by
   frame time. The model would treat a click as noise, so for the impulse the
   engine's step is a pass-through delayed by the model's look-ahead (same
   block, same buffering): the impulse comes back exactly ``latency``
   samples later. With the real model, speech is played instead and the lag
   of the cross-correlation peak is measured.
2. A run of ``--seconds`` at period 320 without video, then one with a
   camera: ``--clip`` (default: a GRID clip from ../shared/data/real/, else
   a tiny synthetic clip) upscaled to 640x480, looped at 25 fps. For each:
   per-block time (resampling + lip-frame choice + model) p50 / p99, real-time
   factor (mean block time / 40 ms), lip front end ms per frame, CPU share,
   xruns (server xruns + output underruns + missed cycles).

Writes bench/results/live.json (keeping runs of other lengths already there).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

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


class PlayRecord:
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
        return self.first is not None and self.chunks[-1][0] - self.first > self.x.shape[0] + 16000

    def recording(self) -> np.ndarray:
        """What was recorded at frames first .. first + len(x) + 1 s -> float32 [n] (NaN where none)."""
        n = self.x.shape[0] + 16000
        out = np.full(n, np.nan, np.float32)
        for f, a in self.chunks:
            i0, i1 = max(f, self.first), min(f + a.shape[0], self.first + n)
            if i1 > i0:
                out[i0 - self.first : i1 - self.first] = a[i0 - f : i1 - f]
        return out

    def close(self) -> None:
        for c in (self.player, self.recorder):
            c.deactivate()
            c.close()


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


def face_clip(tmp: Path, args) -> Path:
    """A 640x480 25 fps talking-face clip (``--clip``, a GRID clip, or a synthetic one) in ``tmp``."""
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
    path = tmp / "clip640x480.mp4"
    write_video(path, big, fps=25)
    return path


def run(args, model, server: str, camera: Path | None) -> dict:
    """A ``--seconds`` run with live audio (speech played in) and, with ``camera``, the video path -> its numbers."""
    from avse.streaming import StreamingEnhancer
    from avse.streaming.live import LiveSession

    engine = StreamingEnhancer(model, block=args.block, backend=args.backend, video=camera is not None, max_video_wait_ms=0.0)
    session = LiveSession(engine, jack=True, server=server, camera=camera, connect=False, headroom_ms=args.headroom, loop_camera=True)
    session.start()
    io = PlayRecord(server, speech(args.seconds + 2), "avse:in", "avse:out")
    try:
        while time.monotonic() - session.t_start < args.seconds:
            time.sleep(0.5)
            session.check()
    finally:
        session.stop()
        io.close()
    st = session.status()
    ms = np.array(session.processor.block_ms)
    out = {
        "seconds": st["seconds"],
        "backend": engine.step.name,
        "latency_ms": st["latency_ms"],
        "headroom_ms": args.headroom,
        "block_ms_p50": round(float(np.percentile(ms, 50)), 3),
        "block_ms_p99": round(float(np.percentile(ms, 99)), 3),
        "block_ms_max": round(float(ms.max()), 3),
        "real_time_factor": round(float(ms.mean()) / (1000 * args.block / 16000), 4),
        "cpu_percent": st["cpu_percent"],
        # CPU seconds of all of avse per second of audio: this process (the bench's two JACK clients included)
        # and the camera/lip process; the end-to-end real-time factor on one core
        "cpu_total_percent": st["cpu_total_percent"],
        "server_xruns": st["xruns"],
        "underruns": st["underruns"],
        "underruns_at_s": [round(q / session.processor.sample_rate, 2) for q in session.processor.fifo.underrun_at[:10]],
        "missed_cycles": session.audio.missed_cycles if hasattr(session.audio, "missed_cycles") else 0,
        "realtime_worker": session.processor.realtime,
    }
    out["xruns_total"] = out["server_xruns"] + out["underruns"] + out["missed_cycles"]
    if camera is not None and session.camera is not None:
        lip = np.array(session.camera.ms)
        out.update({k: st[k] for k in ("camera_frames", "camera_dropped", "lip_frames", "face_frames", "frames_taken",
                                       "frames_dropped", "frames_duplicated", "frames_stale", "skew_ms")})
        out["lip_ms_p50"] = round(float(np.percentile(lip, 50)), 2)
        out["lip_ms_p99"] = round(float(np.percentile(lip, 99)), 2)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="av-causal")
    parser.add_argument("--backend", default="auto", choices=["auto", "torch", "onnx"])
    parser.add_argument("--block", type=int, default=640)
    parser.add_argument("--headroom", type=float, default=20.0, help="ms (as avse live --headroom)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each of the two runs (audio only, with video)")
    parser.add_argument("--clip", help="talking-face video for the camera (upscaled to 640x480)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--only-video", action="store_true", help="only the run with video (e.g. a long xrun run)")
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
    result.update({"model": args.model, "block": args.block, "headroom_ms": args.headroom})
    if not args.skip_latency:
        result["latency"] = []
        for period in (320, 256):
            with dummy_jack_server(f"avse-bench-{uuid.uuid4().hex[:6]}", 16000, period) as name:
                result["latency"].append(measure_latency(args, model, name, period))
                print(result["latency"][-1], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        clip = face_clip(Path(tmp), args)
        for label, cam in (("audio_only", None), ("video", clip)):
            if args.only_video and cam is None:
                continue
            with dummy_jack_server(f"avse-bench-{uuid.uuid4().hex[:6]}", 16000, 320) as name:
                key = f"{label}_{args.seconds:g}s"
                result[key] = run(args, model, name, cam)
                print(key, result[key], flush=True)
    save("live", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
