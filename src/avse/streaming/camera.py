"""Live video for the streaming engine: a camera (or a file played as one), per-frame lip features, and the frame-to-audio policy."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avse import VIDEO_FPS
from avse.errors import ConfigError, MediaError
from avse.video.lipfeat import N_FEATURES

FRAME_S = 1.0 / VIDEO_FPS  # 40 ms, the models' frame period


@dataclass
class LipFrame:
    """One camera frame made into the models' visual input.

    ``stamp``: time.monotonic() seconds when the frame was captured;
    ``features``: float32 [82] (``lipfeat.visual_stream``) or None when no
    usable face; ``index``: the frame's number in its source.
    """

    stamp: float
    features: np.ndarray | None
    index: int
    used: int = 0  # how many audio frames took this frame


class CameraSource:
    """Frames from a camera (``source`` an int: OpenCV device index) or a video file played at its own pace.

    A thread reads frames and stamps each with its capture time on the
    ``time.monotonic()`` clock (a camera: the driver's buffer timestamp where
    it gives one, ``capture_stamp``, else when the frame is read; a file:
    when its timestamp comes, counted from ``start()``). Only
    the newest frame is kept for the consumer: a frame not taken before the next
    arrives is dropped (counted in ``dropped``). ``get(timeout)`` -> (stamp,
    frame uint8 [H, W, 3] RGB, index) or None; ``finished`` once a file ends
    (``loop``: start it again) or the camera fails. ``tap(stamp, frame)``, when
    given, sees every captured frame in the capturing thread (a recorder; it
    must not wait).
    """

    def __init__(self, source: int | str | Path, loop: bool = False, tap: Callable[[float, np.ndarray], None] | None = None):
        self.source = source
        self.loop = loop
        self.tap = tap
        self.device = source if isinstance(source, int) else None
        self.path = None if isinstance(source, int) else Path(source)
        self.is_file = self.path is not None
        if self.path is not None and not self.path.is_file():
            raise MediaError(self.path, "no such video file (for --camera give a device number or a video file)")
        self.captured = 0
        self.dropped = 0
        self.finished = False
        self.started: float | None = None  # time.monotonic() when a file began to play
        self.error: str | None = None
        self._slot: tuple[float, np.ndarray, int] | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> CameraSource:
        """Start capturing in a background thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="avse-camera", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop capturing and wait for the thread."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _put(self, frame: np.ndarray, stamp: float | None = None) -> None:
        stamp = time.monotonic() if stamp is None else stamp
        if self.tap is not None:
            self.tap(stamp, frame)
        with self._cond:
            if self._slot is not None:
                self.dropped += 1
            self._slot = (stamp, frame, self.captured)
            self.captured += 1
            self._cond.notify_all()

    def get(self, timeout: float = 0.2) -> tuple[float, np.ndarray, int] | None:
        """The newest frame not yet taken -> (capture stamp s, uint8 [H, W, 3] RGB, index), or None after ``timeout``."""
        with self._cond:
            if self._slot is None and not self.finished:
                self._cond.wait(timeout)
            item, self._slot = self._slot, None
            return item

    def _run(self) -> None:
        from avse.streaming.audio_io import CAMERA_PRIORITY, try_realtime

        try_realtime(CAMERA_PRIORITY)  # a thread that holds the GIL must not wait behind other processes
        try:
            if self.is_file:
                self._run_file()
            else:
                self._run_camera()
        except (MediaError, ConfigError, OSError) as err:
            self.error = str(err)
        finally:
            with self._cond:
                self.finished = True
                self._cond.notify_all()

    def _run_file(self) -> None:
        from avse.video.io import iter_frames

        while not self._stop.is_set():
            assert self.path is not None
            frames = iter_frames(self.path)
            start = time.monotonic()
            if self.started is None:
                self.started = start
            for t, frame in frames:
                wait = start + t - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    return
                self._put(frame)
            if not self.loop:
                return

    def _run_camera(self) -> None:
        import cv2

        cap = cv2.VideoCapture(int(self.device or 0))
        if not cap.isOpened():
            raise MediaError(f"camera {self.source}", "cannot be opened")
        cap.set(cv2.CAP_PROP_FPS, VIDEO_FPS)
        try:
            while not self._stop.is_set():
                ok, bgr = cap.read()
                now = time.monotonic()
                if not ok:
                    raise MediaError(f"camera {self.source}", "stopped delivering frames")
                self._put(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), capture_stamp(cap.get(cv2.CAP_PROP_POS_MSEC), now))
        finally:
            cap.release()


MAX_DRIVER_AGE = 0.5  # s: a driver timestamp older than this when the frame is read is not taken as its capture time


def capture_stamp(driver_ms: float, now: float) -> float:
    """A camera frame's capture time (monotonic s) from the driver's buffer timestamp ``driver_ms`` (ms), read at ``now``.

    Linux's V4L2 stamps each buffer on the monotonic clock when the frame was
    captured, and OpenCV reports it as CAP_PROP_POS_MSEC: that stamp is used
    when it lies within ``MAX_DRIVER_AGE`` before ``now``, so the camera's
    own delay does not put the lips late. Otherwise (no stamp, another clock,
    a position in a file) the frame counts as captured when it was read.
    """
    t = float(driver_ms) / 1000.0
    return t if now - MAX_DRIVER_AGE <= t <= now else now


def largest_face(dets: list[Any], previous: np.ndarray | None) -> Any | None:
    """The face to follow among detections (each with ``box`` [4]): the one overlapping ``previous`` [4] most, else the largest."""
    if not dets:
        return None
    if previous is not None:
        from avse.video.detect import box_iou

        ious = [float(box_iou(d.box, previous)) for d in dets]
        if max(ious) > 0.2:
            return dets[int(np.argmax(ious))]
    return max(dets, key=lambda d: float((d.box[2] - d.box[0]) * (d.box[3] - d.box[1])))


class LipWorker:
    """Camera frames -> lip features, in a thread: MediaPipe face mesh (with re-acquisition) on the newest frame.

    Uses ``avse.video.detect.FaceMeshDetector`` (one face followed by box
    overlap), ``to_landmark_dict`` and ``lipfeat.visual_stream``: the features
    are those of the offline front end without its gap filling and smoothing
    (both look ahead). A face missing for up to ``hold`` frames keeps its last
    features (the causal part of gap filling). Each result goes to
    ``sink(LipFrame)``. ``detector``: a ready detector (tests), else one is made.
    The thread asks for SCHED_FIFO at ``priority`` (0: never), below the engine's.
    ``preview``: a PreviewWindow shown each frame with the face box and the
    mouth crop (``avse.streaming.preview.preview_image``).
    """

    def __init__(self, camera: CameraSource, sink: Callable[[LipFrame], None], hold: int = 2, detector: Any = None, priority: int = 2,
                 preview: Any = None):
        self.camera = camera
        self.preview = preview
        self.landmarks: dict[str, np.ndarray] | None = None  # the followed face's landmarks in the last frame (None: no face)
        self.priority = int(priority)
        self.realtime = False
        self.sink = sink
        self.hold = int(hold)
        self.detector = detector
        self.processed = 0
        self.faces = 0
        self.ms: deque[float] = deque(maxlen=250)  # per-frame processing time, ms
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LipWorker:
        """Make the detector (MediaPipe start-up and a first call on a blank frame, quiet) and start the thread; returns self."""
        if self.detector is None:
            from avse.video.detect import FaceMeshDetector, quiet_native_stderr

            with quiet_native_stderr():  # graph start-up logs; the first calls (every path) are slow: not in the stream
                self.detector = FaceMeshDetector(max_num_faces=1)
                self.detector.detect(np.zeros((240, 320, 3), np.uint8))
                self.detector.reset()
        self._thread = threading.Thread(target=self._run, name="avse-lips", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop the thread and close the detector."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.detector is not None:
            self.detector.close()

    def features(self, frame: np.ndarray, previous: np.ndarray | None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """frame uint8 [H, W, 3] RGB -> (features float32 [82] or None, the followed face's box [4] or None)."""
        from avse.video.detect import to_landmark_dict
        from avse.video.lipfeat import visual_stream

        det = largest_face(self.detector.detect(frame), previous)
        if det is None:
            self.landmarks = None
            return None, None
        self.landmarks = to_landmark_dict(det.mesh[None])  # each [1, ...]
        feats, valid = visual_stream(self.landmarks)  # [1, 82], [1]
        return (feats[0] if bool(valid[0]) else None), det.box

    def show(self, frame: np.ndarray, box: np.ndarray | None, state: str, ms: float) -> None:
        """Draw frame uint8 [H, W, 3] in the preview: the face ``box`` [4] (or None) in the colour of ``state``, the lips, a mouth crop.

        ``state``: "face" (this frame's lip features go to the model), "held"
        (the last ones, over a missed frame), "unusable" (a face, but no
        usable features: the model runs audio-only), "none" (no face).
        """
        from avse.streaming.preview import preview_image
        from avse.video.roi import mouth_crop

        crop = points = None
        if self.landmarks is not None and box is not None:
            points = self.landmarks["lips"][0]  # [40, 2]
            with contextlib.suppress(ConfigError):  # a mesh with non-finite points: no crop this frame
                crop = mouth_crop(frame, self.landmarks)
        text = {"face": f"face: yes, lips {ms:.0f} ms", "held": "face: missed, last lips held",
                "unusable": "face: lips unusable (audio-only)", "none": "face: none (audio-only)"}[state]
        self.preview.show(preview_image(frame, box, crop, points, state=state, text=text))  # "none": no box to colour

    def _run(self) -> None:
        from avse.streaming.audio_io import try_realtime

        self.realtime = try_realtime(self.priority)
        box: np.ndarray | None = None
        last: np.ndarray | None = None
        missed = 0
        while not self._stop.is_set():
            item = self.camera.get(timeout=0.1)
            if item is None:
                if self.camera.finished:
                    return
                continue
            stamp, frame, index = item
            t0 = time.perf_counter()
            feats, box = self.features(frame, box)
            self.ms.append(1e3 * (time.perf_counter() - t0))
            self.processed += 1
            found = feats is not None
            if found:
                self.faces += 1
                last, missed = feats, 0
            else:
                missed += 1
                feats = last if missed <= self.hold else None
            self.sink(LipFrame(stamp, feats, index))
            if self.preview is not None and not self.preview.closed:
                state = "face" if found else "held" if feats is not None else "unusable" if box is not None else "none"
                self.show(frame, box, state, ms=self.ms[-1])


def _lip_process_main(source: int | str, loop: bool, conn: Any, hold: int, preview: bool = False, record: str | None = None) -> None:
    """The lip process: camera + LipWorker threads here, each LipFrame and (every 0.5 s) the counts sent through ``conn``.

    ``preview``: a PreviewWindow here; ``record``: a FrameRecorder writing every captured frame to that path.
    """
    import sys

    # MediaPipe imports sounddevice when it can; its PortAudio would join the JACK server as one more client,
    # in this process, which is no audio process: make that import fail (MediaPipe takes an ImportError)
    sys.modules.setdefault("sounddevice", None)  # type: ignore[arg-type]
    lock = threading.Lock()

    def send(*msg: Any) -> None:
        with lock:  # the lip thread and this one both send
            conn.send(msg)

    with contextlib.ExitStack() as cleanup:  # every part stopped, in reverse order, even if one's stop fails
        try:
            recorder: Any = None
            window: Any = None
            if record is not None:
                from avse.streaming.record import FrameRecorder

                recorder = FrameRecorder(record).start()
                cleanup.callback(_finish_recording, recorder, send)  # last: after the camera stopped delivering
            if preview:
                from avse.streaming.preview import PreviewWindow

                window = PreviewWindow().start()
                cleanup.callback(window.stop)
            camera = CameraSource(source, loop=loop, tap=None if recorder is None else recorder.add)
            cleanup.callback(camera.stop)
            worker = LipWorker(camera, lambda f: send("frame", f.stamp, f.features, f.index), hold=hold, preview=window)
            worker.start()
            cleanup.callback(worker.stop)
            if recorder is not None:  # the parent starts the sound when it is told "ready": the picture opens before
                recorder.origin = time.monotonic()  # it, not at the camera's first frame
            send("ready")
            cpu0, t0 = time.process_time(), time.monotonic()  # this process's CPU time, all threads, from the camera's start on
            camera.start()
            while not conn.poll(0.5):
                done = camera.finished and worker._thread is not None and not worker._thread.is_alive()
                send("stats", {"captured": camera.captured, "dropped": camera.dropped, "processed": worker.processed,
                               "faces": worker.faces, "ms": list(worker.ms), "started": camera.started,
                               "finished": done, "error": camera.error, "realtime": worker.realtime,
                               "cpu_s": time.process_time() - cpu0, "cpu_wall_s": time.monotonic() - t0,
                               "preview_shown": None if window is None else window.shown,
                               "record": None if recorder is None else _record_stats(recorder)})
        except (EOFError, BrokenPipeError, KeyboardInterrupt):
            pass
        except BaseException as err:  # reported to the parent
            with contextlib.suppress(OSError):
                send("error", f"{type(err).__name__}: {err}")


def _finish_recording(recorder: Any, send: Callable[..., None]) -> None:
    """Stop the recorder (its file closed) and tell the parent, with ``final`` set: the counts will not change."""
    recorder.stop()
    with contextlib.suppress(OSError, ValueError):
        send("recorded", dict(_record_stats(recorder), final=True))


def _record_stats(recorder: Any) -> dict[str, Any]:
    """A FrameRecorder's counts for the parent: t0, frames, lead_frames, dropped, error, complete; ``final`` False
    (still recording)."""
    return {"t0": recorder.t0, "frames": recorder.frames, "lead_frames": recorder.lead_frames, "dropped": recorder.dropped,
            "error": recorder.error, "complete": recorder.complete, "final": False}


class LipProcess:
    """The camera and the lip front end in a child process, lip frames delivered to ``sink(LipFrame)`` here.

    MediaPipe, video decoding and colour conversion hold Python's GIL in
    stretches; in the audio process they would keep the audio callback
    waiting for it. In their own process (spawned; ``time.monotonic`` is
    the same clock there) they cannot. A receiver thread here hands each
    frame to ``sink`` (e.g. ``LipQueue.put``). ``source``: a camera number or
    a video file (played at its own pace; ``loop``). The counts of the
    camera and lip worker (captured, dropped, processed, faces, ms per frame,
    started, finished, error, and ``cpu_s``: the process's CPU seconds since
    the camera started, all its threads, over ``cpu_wall_s`` seconds of real
    time) arrive every 0.5 s; ``cpu_share``: the two's ratio.

    ``preview``: a window there with the frame, the face box and the mouth
    crop (``preview_shown`` counts what it drew). ``record``: every captured
    frame written to that path (H.264, stamped, opening when the camera was
    asked to start, the first frame held until it came; ``record_stats``: t0,
    that time, frames, lead_frames, dropped, error, complete (the file
    closed), and ``final``: True once the process finished the recording,
    before ``stop()`` returns, unless the process died first).
    """

    def __init__(self, source: int | str | Path, sink: Callable[[LipFrame], None], loop: bool = False, hold: int = 2,
                 preview: bool = False, record: str | Path | None = None):
        if not isinstance(source, int) and not Path(source).is_file():
            raise MediaError(source, "no such video file (for --camera give a device number or a video file)")
        self.source = source if isinstance(source, int) else str(source)
        self.sink = sink
        self.loop = loop
        self.hold = hold
        self.preview = bool(preview)
        self.record = None if record is None else str(record)
        self.preview_shown = 0
        self.record_stats: dict[str, Any] | None = None
        self.captured = self.dropped = self.processed = self.faces = 0
        self.ms: list[float] = []
        self.cpu_s = 0.0
        self.cpu_wall_s = 0.0
        self.started: float | None = None
        self.finished = False
        self.realtime = False
        self.error: str | None = None
        self._proc: Any = None
        self._conn: Any = None
        self._thread: threading.Thread | None = None

    def start(self, timeout: float = 120.0) -> LipProcess:
        """Spawn the process and wait until its face detector is warm (ConfigError if it fails or takes > ``timeout`` s)."""
        import multiprocessing as mp

        from avse.streaming.audio_io import RECEIVER_PRIORITY

        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_lip_process_main, args=(self.source, self.loop, child, self.hold, self.preview, self.record),
                                 name="avse-lips", daemon=True)
        self._proc.start()
        child.close()
        if not self._conn.poll(timeout):
            self.stop()
            raise ConfigError(f"the lip process did not start within {timeout:.0f} s")
        msg = self._conn.recv()
        if msg[0] != "ready":
            self.stop()
            raise ConfigError(f"the lip process failed: {msg[1] if len(msg) > 1 else msg}")
        self._thread = threading.Thread(target=self._receive, args=(RECEIVER_PRIORITY,), name="avse-lips-rx", daemon=True)
        self._thread.start()
        return self

    def _receive(self, priority: int) -> None:
        from avse.streaming.audio_io import try_realtime

        try_realtime(priority)
        try:
            while True:
                msg = self._conn.recv()
                if msg[0] == "frame":
                    self.sink(LipFrame(msg[1], msg[2], msg[3]))
                elif msg[0] == "stats":
                    st = msg[1]
                    self.captured, self.dropped, self.processed, self.faces = st["captured"], st["dropped"], st["processed"], st["faces"]
                    self.ms, self.started, self.realtime = st["ms"], st["started"], st["realtime"]
                    self.error = st["error"] or self.error
                    self.finished = st["finished"]
                    self.cpu_s, self.cpu_wall_s = st["cpu_s"], st["cpu_wall_s"]
                    self.preview_shown = st["preview_shown"] or 0
                    self.record_stats = st["record"]
                elif msg[0] == "recorded":
                    self.record_stats = msg[1]
                elif msg[0] == "error":
                    self.error = msg[1]
        except (EOFError, OSError):
            self.finished = True

    @property
    def cpu_share(self) -> float:
        """The lip process's CPU seconds (all threads) per second of real time since its camera started; 0 before the first count."""
        return self.cpu_s / self.cpu_wall_s if self.cpu_wall_s > 0 else 0.0

    def stop(self) -> None:
        """Ask the process to stop, wait for it (terminate it after 5 s; 60 s while it finishes a recording) and for the receiver."""
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send("stop")
        if self._proc is not None:
            self._proc.join(5 if self.record is None else 60)
            if self._proc.is_alive():
                self._proc.terminate()
                self._proc.join(5)
        if self._thread is not None:
            self._thread.join(2)
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class LipQueue:
    """The bounded queue between the lip worker and the audio: which lip frame goes with which audio frame.

    Policy, for the audio frame (640 samples at 16 kHz) whose middle was
    captured at time ``t`` (``take(t)``): of the lip frames already processed,
    the one captured nearest to ``t`` is taken (none is waited for: the
    video path adds no latency). Frames captured before it are dropped
    (``dropped`` counts those never taken: a camera faster than 25 fps, or a
    frame overtaken); a frame taken for two audio frames counts as
    ``duplicated`` (a camera slower than 25 fps, or processing that fell
    behind). A frame further than ``max_skew`` s from ``t`` is not used:
    that audio frame has no video (``stale``). The queue holds at most
    ``maxlen`` frames (the oldest goes when full). ``skew``: taken frame's
    capture time minus ``t`` (negative: the video is older than the audio),
    for the last 250 audio frames.
    """

    maxlen: int = 25
    max_skew: float = 0.2
    frames: deque[LipFrame] = field(default_factory=deque)
    skew: deque[float] = field(default_factory=lambda: deque(maxlen=250))
    dropped: int = 0
    duplicated: int = 0
    stale: int = 0
    taken: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def put(self, frame: LipFrame) -> None:
        """Add a processed frame (from the lip worker's thread)."""
        with self._lock:
            if len(self.frames) >= self.maxlen:
                old = self.frames.popleft()
                self.dropped += old.used == 0
            self.frames.append(frame)

    def take(self, t: float) -> LipFrame | None:
        """The lip frame for the audio frame centred at capture time ``t`` (monotonic s), or None (no usable frame)."""
        with self._lock:
            if not self.frames:
                self.stale += 1
                return None
            best = min(range(len(self.frames)), key=lambda i: abs(self.frames[i].stamp - t))
            for _ in range(best):  # older than the one taken: never needed again
                old = self.frames.popleft()
                self.dropped += old.used == 0
            frame = self.frames[0]
            if abs(frame.stamp - t) > self.max_skew:
                self.stale += 1
                return None
            self.duplicated += frame.used > 0
            frame.used += 1
            self.taken += 1
            self.skew.append(frame.stamp - t)
            return frame

    def skew_ms(self) -> dict[str, float]:
        """Measured A/V skew over the recent audio frames: mean, 95th percentile and largest |skew| in ms (NaN before any)."""
        with self._lock:
            s = np.array(self.skew, np.float64)
        if s.size == 0:
            return {"mean": float("nan"), "p95_abs": float("nan"), "max_abs": float("nan")}
        a = np.abs(s)
        return {"mean": round(1e3 * float(s.mean()), 2), "p95_abs": round(1e3 * float(np.percentile(a, 95)), 2),
                "max_abs": round(1e3 * float(a.max()), 2)}


class FaceFader:
    """Crossfades the visual input between a face's lip features and the "no video" input (zeros) without a jump.

    ``step(features or None)`` -> float32 [82]: ``gain * features`` with the
    gain moving toward 1 while a face is there and toward 0 (fading the last
    face's features) when not, by ``1 / ramp`` per audio frame (ramp frames of
    40 ms). ``mode``: "audio-visual", "fading" or "audio-only".
    """

    def __init__(self, ramp: int = 5, width: int = N_FEATURES):
        if ramp < 1:
            raise ConfigError(f"ramp must be >= 1 frame, got {ramp}")
        self.ramp = int(ramp)
        self.gain = 0.0
        self.last = np.zeros(width, np.float32)

    def step(self, features: np.ndarray | None) -> np.ndarray:
        """This audio frame's lip features float32 [82] or None -> the model's visual frame float32 [82]."""
        if features is not None:
            self.last = np.asarray(features, np.float32)
            self.gain = min(1.0, self.gain + 1.0 / self.ramp)
        else:
            self.gain = max(0.0, self.gain - 1.0 / self.ramp)
        return (np.float32(self.gain) * self.last).astype(np.float32)

    @property
    def mode(self) -> str:
        """What the model gets now: "audio-visual" (full features), "fading" or "audio-only"."""
        return "audio-visual" if self.gain >= 1.0 else "audio-only" if self.gain <= 0.0 else "fading"


__all__ = ["FRAME_S", "CameraSource", "capture_stamp", "FaceFader", "LipFrame", "LipProcess", "LipQueue", "LipWorker", "largest_face"]
