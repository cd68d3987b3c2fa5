"""Recording a live session: the camera's frames as captured (H.264, stamped), and the enhanced audio put on their clock at the end."""

from __future__ import annotations

import math
import threading
from collections import deque
from fractions import Fraction
from pathlib import Path

import numpy as np

from avse import SAMPLE_RATE
from avse.errors import ConfigError, MediaError

VIDEO_SUFFIXES = {".mp4", ".mkv", ".mov", ".m4v"}
AUDIO_SUFFIXES = {".wav"}
TIME_BASE = Fraction(1, 1000)  # the recorded frames' stamps, in ms from the first frame
KEY_INTERVAL = 50  # frames between key frames (and fragments) of the recorded frames: 2 s at 25 fps
# no B-frames: presentation order is decoding order, so a fragmented file needs no edit list to start at 0
#: the audio clock is fitted against the system clock only over this long a recording, and only within this
#: much of the nominal rate (a sound card's clock is off by tens of ppm; more means the fit is not to be trusted)
MIN_FIT_SECONDS = 30.0
MAX_DRIFT = 1e-3
#: a recording's picture may open this long before the camera's first frame (that frame held still), and in steps of
#: this many ms (25 a second)
MAX_LEAD_S = 30.0
LEAD_STEP_MS = 40


def record_kind(path: str | Path, camera: bool) -> str:
    """"video" or "audio": what ``--record PATH`` writes; ConfigError (one line) for a suffix avse cannot write or a video with no camera."""
    suffix = Path(path).suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        if not camera:
            raise ConfigError(f"--record {path}: a video needs --camera (without one, record to a .wav)")
        return "video"
    if suffix in AUDIO_SUFFIXES:
        return "audio"
    raise ConfigError(f"--record {path}: give a .wav (the enhanced audio) or a {', '.join(sorted(VIDEO_SUFFIXES))} "
                      "(the camera's video with the enhanced audio)")


class FrameRecorder:
    """Camera frames -> an H.264 file, each frame stamped with its capture time, encoded in a thread.

    ``add(stamp, frame)`` (the camera's thread; monotonic seconds, uint8
    [H, W, 3] RGB) only queues; a queue longer than ``max_queue`` frames
    (the encoder fell behind) drops the oldest (``dropped``). Frame
    timestamps are the capture times in ms from ``t0`` (monotonic s), so the
    file's timeline is the camera's. ``t0`` is the first frame's capture time,
    or ``origin`` when that is set and earlier (e.g. when the camera was asked
    to start, which a camera may take a second to do while the sound is already
    being recorded): the file then opens on the first frame held still from
    ``origin`` on (``lead_frames`` copies, 25 a second, at most ``MAX_LEAD_S``),
    so that sound from before the camera's first frame has a picture to go
    with. ``stop()`` encodes what is queued and closes the file (``complete``
    once it has); ``frames``: camera frames written; ``error``: why writing
    stopped, if it did. The file is a
    fragmented mp4 with a key frame every 2 s, each fragment flushed to disk
    as it is written, so a process killed while
    recording leaves a file that plays up to its last fragment. x264
    ``preset`` (default veryfast, one thread: about 3.6 ms of CPU for a
    640x480 frame on a 2-core EPYC, ``bench_live.py --record``) and ``crf`` (23).
    """

    def __init__(self, path: str | Path, preset: str = "veryfast", crf: int = 23, max_queue: int = 50,
                 origin: float | None = None):
        self.path = Path(path)
        self.origin = origin
        self.lead_frames = 0
        self.preset = preset
        self.crf = int(crf)
        self.max_queue = int(max_queue)
        self.t0: float | None = None
        self.frames = 0
        self.dropped = 0
        self.error: str | None = None
        self.complete = False
        self._queue: deque[tuple[float, np.ndarray]] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None

    def start(self) -> FrameRecorder:
        """Start the encoding thread; returns self."""
        self._thread = threading.Thread(target=self._run, name="avse-record", daemon=True)
        self._thread.start()
        return self

    def add(self, stamp: float, frame: np.ndarray) -> None:
        """Queue one captured frame (capture time ``stamp``, monotonic s; uint8 [H, W, 3] RGB)."""
        with self._cond:
            if self._stop or self.error is not None:
                return
            if len(self._queue) >= self.max_queue:
                self._queue.popleft()
                self.dropped += 1
            self._queue.append((stamp, frame))
            self._cond.notify()

    def stop(self) -> None:
        """Encode what is queued, close the file, and wait for the thread (at most 30 s: then ``complete`` stays False)."""
        with self._cond:
            self._stop = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _next(self) -> tuple[float, np.ndarray] | None:
        with self._cond:
            while not self._queue and not self._stop:
                self._cond.wait(0.5)
            return self._queue.popleft() if self._queue else None

    def _run(self) -> None:
        import av

        from avse.video.io import yuv420_frame

        first = self._next()
        if first is None:
            self.complete = True  # stopped before any frame: no file
            return
        t_first, frame = first
        t0 = t_first if self.origin is None else min(t_first, max(self.origin, t_first - MAX_LEAD_S))
        self.t0 = t0
        h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2  # 4:2:0 wants even sizes
        try:
            with av.open(str(self.path), "w", format="mp4", options={"movflags": "frag_keyframe+empty_moov", "flush_packets": "1"}) as out:
                x264 = {"preset": self.preset, "crf": str(self.crf), "threads": "1", "x264-params": f"keyint={KEY_INTERVAL}:bframes=0"}
                stream = out.add_stream("libx264", rate=25, options=x264)
                stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
                stream.codec_context.time_base = TIME_BASE
                last = -1
                lead = round((t_first - t0) / TIME_BASE)  # ms before the first frame: it is held still over them
                # held copies every LEAD_STEP_MS, the last at least half a step before the first frame; at least one
                # when the first frame comes later than the origin at all, so that the file starts at the origin
                for pts in range(0, max(lead - LEAD_STEP_MS // 2 + 1, min(lead, 1)), LEAD_STEP_MS):
                    out.mux(stream.encode(yuv420_frame(frame[:h, :w], pts, TIME_BASE)))
                    self.lead_frames += 1
                    last = pts
                item: tuple[float, np.ndarray] | None = first
                while item is not None:
                    stamp, frame = item
                    pts = max(last + 1, round((stamp - t0) / TIME_BASE))  # strictly increasing, whatever the stamps
                    last = pts
                    out.mux(stream.encode(yuv420_frame(frame[:h, :w], pts, TIME_BASE)))
                    self.frames += 1
                    item = self._next()
                out.mux(stream.encode(None))
            self.complete = True
        except (av.error.FFmpegError, OSError, ValueError) as err:
            self.error = f"{type(err).__name__}: {err}"


def audio_clock(anchors: np.ndarray, sample_rate: int) -> tuple[float, float]:
    """Fit capture time against stream position -> (time of position 0 in monotonic s, audio rate / nominal rate).

    ``anchors`` float64 [K, 2]: (stream position in samples, capture time s)
    of each audio cycle. The rate ratio (how many samples the sound card
    really delivers per second of the system clock, over ``sample_rate``) is
    fitted only over a recording of at least ``MIN_FIT_SECONDS`` and taken
    only within ``MAX_DRIFT`` of 1; otherwise 1, and the time of position 0
    is the median of ``t - position / sample_rate`` over the anchors.
    """
    a = np.asarray(anchors, np.float64).reshape(-1, 2)
    if a.shape[0] == 0:
        raise ConfigError("no audio cycles to fit the recording's clock to")
    pos, t = a[:, 0], a[:, 1]
    if pos[-1] - pos[0] >= MIN_FIT_SECONDS * sample_rate:
        slope, intercept = np.polyfit(pos - pos[0], t, 1)  # t = intercept + slope * (pos - pos0)
        ratio = 1.0 / (slope * sample_rate)
        if abs(ratio - 1.0) <= MAX_DRIFT:
            return float(intercept - slope * pos[0]), float(ratio)
    return float(np.median(t - pos / sample_rate)), 1.0


def mux_recording(
    video: str | Path,
    video_t0: float,
    audio: np.ndarray,
    audio_t0: float,
    out_path: str | Path,
    rate_ratio: float = 1.0,
    sample_rate: int = SAMPLE_RATE,
) -> float:
    """Write ``out_path``: the recorded frames (``video``, stamped from ``video_t0``) and ``audio`` on one clock, atomically -> A/V start offset s.

    ``audio`` float [T] at ``sample_rate``, sample 0 captured at ``audio_t0``
    (monotonic s); ``rate_ratio``: the audio's real rate over the nominal
    one (``audio_clock``), by which the video's stamps are scaled so that
    frames stay on the audio's timeline over a long recording. Video packets
    are copied, not re-encoded. Audio captured before ``video_t0`` (the
    recorder's ``t0``: its origin, or its first frame) is cut. Returns where
    the audio starts on the output's timeline (s).
    """
    from avse.video.io import remux

    audio = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)  # [T]
    start = (audio_t0 - video_t0) * rate_ratio  # audio sample 0 on the (scaled) video clock
    if start < 0:
        cut = math.ceil(-start * sample_rate)
        audio, start = audio[cut:], start + cut / sample_rate
    if audio.shape[0] == 0:
        raise MediaError(out_path, "the audio ended before the first camera frame: nothing to record")
    remux(video, out_path, audio, sample_rate=sample_rate, start=start, bit_rate=96_000, video_scale=rate_ratio)
    return start


__all__ = ["AUDIO_SUFFIXES", "VIDEO_SUFFIXES", "FrameRecorder", "audio_clock", "mux_recording", "record_kind"]
