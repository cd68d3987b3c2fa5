"""Video I/O with PyAV: decode frames + timestamps (+ 16 kHz audio), constant-fps grid, H.264 writing, remuxing with new audio."""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np

from avse import SAMPLE_RATE, VIDEO_FPS
from avse.audio.io import SNDFILE_SUFFIXES, check_media_file, check_not_still_image, load_audio
from avse.errors import ConfigError, EmptyAudioError, MediaError, OutputPathError
from avse.utils.fs import atomic_path

# Containers whose muxer takes "movflags" (index moved to the front: playable while downloading).
_MOV_SUFFIXES = {".mp4", ".mov", ".m4v"}
#: samples per AAC frame
AAC_FRAME = 1024
#: while remuxing, the new audio runs this many seconds ahead of the video packet just written
INTERLEAVE_SECONDS = 0.2


@dataclass
class VideoClip:
    """A decoded clip.

    frames      uint8 [N, H, W, 3] RGB, display orientation (rotation metadata applied)
    timestamps  float64 [N] presentation times in seconds, the first frame at 0.0
    fps         nominal (average) frame rate of the stream
    audio       float32 [T] mono at ``sample_rate`` (16 kHz), or None when the file has no audio
    path        the file it came from
    rotation    degrees (counter-clockwise) that were applied to undo the rotation metadata
    """

    frames: np.ndarray
    timestamps: np.ndarray
    fps: float
    audio: np.ndarray | None
    path: Path
    sample_rate: int = SAMPLE_RATE
    rotation: int = 0

    @property
    def n_frames(self) -> int:
        """Number of decoded frames N."""
        return int(self.frames.shape[0])

    @property
    def duration(self) -> float:
        """Seconds covered by the frames: last timestamp plus one nominal frame."""
        return float(self.timestamps[-1]) + 1.0 / self.fps if self.n_frames else 0.0


def _av():
    import av

    return av


def open_media(path: Path):
    """Open a media file with PyAV for reading -> its container.

    MediaError when missing, empty or unreadable, or when it is a still image
    (FFmpeg opens a PNG or JPEG as a one-frame video; it is not one).
    """
    av = _av()
    check_media_file(path)
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise MediaError(path, f"unreadable or truncated media ({err})") from None
    check_not_still_image(container, path)
    return container


def first_video_stream(container, path: Path):
    """The first video stream of an open ``container`` read from ``path``; MediaError when none or truncated."""
    if not container.streams.video:
        raise MediaError(path, "no video stream")
    stream = container.streams.video[0]
    _check_index_complete(stream, path)
    return stream


def _check_index_complete(stream, path: Path) -> None:
    """Raise MediaError when the container's index (mp4/mov sample table) points past the end of the file."""
    entries = stream.index_entries
    if len(entries):
        end = max(e.pos + e.size for e in entries)
        size = path.stat().st_size
        if end > size:
            raise MediaError(path, f"truncated: the index needs {end} bytes, the file has {size}")


def _check_max_frames(max_frames: int | None) -> None:
    if max_frames is not None and max_frames <= 0:
        raise ConfigError(f"max_frames must be positive, got {max_frames}")


def _nominal_fps(stream) -> float | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate:
            return float(rate)
    return None


#: 8-bit pixel formats whose first plane is the luma, one byte a pixel
_LUMA_FIRST = ("yuv420p", "yuv422p", "yuv444p", "yuv410p", "yuv411p", "yuv440p", "nv12", "nv21", "gray",
               "yuvj420p", "yuvj422p", "yuvj444p", "yuvj440p")
#: limited-range luma (16..235) -> full range, as FFmpeg's conversion to gray rounds it
_FULL_RANGE = np.clip(np.round((np.arange(256) - 16) * 255 / 219), 0, 255).astype(np.uint8)


def _luma(frame) -> np.ndarray:
    """A decoded frame's luma, uint8 [H, W] full range: its first plane read as it is (mapped from limited range
    unless the frame says full range) where the format allows, else FFmpeg's conversion to gray (the same values)."""
    name = frame.format.name
    if name not in _LUMA_FIRST:
        return frame.to_ndarray(format="gray")
    plane = frame.planes[0]
    y = np.frombuffer(plane, np.uint8).reshape(plane.height, plane.line_size)[: frame.height, : frame.width]
    full = name == "gray" or name.startswith("yuvj") or getattr(frame, "color_range", 0) == 2  # 2: JPEG (full) range
    if full:
        return np.ascontiguousarray(y)
    return cv2.LUT(y, _FULL_RANGE)  # OpenCV's table look-up: 3 times faster than numpy's indexing on a large frame


def _to_array(frame, size: tuple[int, int] | None, gray: bool = False) -> np.ndarray:
    """One decoded frame -> uint8 [H, W, 3] RGB (``gray``: its luma, uint8 [H, W]), scaled to ``size`` (w, h) when it differs."""
    if size is not None and (frame.width, frame.height) != size:
        frame = frame.reformat(width=size[0], height=size[1])
    return _luma(frame) if gray else frame.to_ndarray(format="rgb24")


def _rotation_quarters(frame) -> int:
    """Counter-clockwise quarter turns that bring ``frame`` to display orientation (0 without metadata)."""
    degrees = getattr(frame, "rotation", 0) or 0
    return int(round(float(degrees) / 90.0)) % 4


def _decode(container, stream, path: Path, max_frames: int | None, gray: bool = False) -> Iterator[tuple[float, np.ndarray, int]]:
    """Yield (timestamp s, frame uint8 [H, W, 3] (``gray``: [H, W]), quarter turns) in presentation order; MediaError on damage."""
    av = _av()
    stream.thread_type = "AUTO"
    time_base = stream.time_base
    fps = _nominal_fps(stream) or float(VIDEO_FPS)
    first_pts: int | None = None
    size: tuple[int, int] | None = None
    n = 0
    try:
        for frame in container.decode(stream):
            if frame.pts is None or time_base is None:
                t = n / fps
            else:
                if first_pts is None:
                    first_pts = frame.pts
                t = float((frame.pts - first_pts) * time_base)
            if size is None:
                size = (frame.width, frame.height)
            quarters = _rotation_quarters(frame)
            img = _to_array(frame, size, gray)
            if quarters:
                img = np.ascontiguousarray(np.rot90(img, quarters))
            yield t, img, quarters
            n += 1
            if max_frames is not None and n >= max_frames:
                return
    except av.error.FFmpegError as err:
        raise MediaError(path, f"truncated or corrupt video: decoding failed after {n} frames ({err})") from None
    if n == 0:
        raise MediaError(path, "zero frames: the video stream holds no decodable frame")


def iter_frames(path: str | Path, max_frames: int | None = None, gray: bool = False) -> Iterator[tuple[float, np.ndarray]]:
    """Stream a video's frames with bounded memory: yields ``(timestamp s, frame uint8 [H, W, 3] RGB)``.

    ``gray``: each frame's luma instead, uint8 [H, W] full range, taken from the
    decoded picture without an RGB conversion.

    Timestamps start at 0.0 at the stream's first frame. Missing files raise
    MediaError at once; damage found while decoding raises MediaError when it
    is reached (after the good frames were yielded).
    """
    path = Path(path)
    check_media_file(path)
    _check_max_frames(max_frames)

    def frames() -> Iterator[tuple[float, np.ndarray]]:
        container = open_media(path)
        with container:
            stream = first_video_stream(container, path)
            for t, rgb, _ in _decode(container, stream, path, max_frames, gray):
                yield t, rgb

    return frames()


def iter_grid_frames(path: str | Path, fps: float = VIDEO_FPS, max_frames: int | None = None,
                     gray: bool = False) -> Iterator[np.ndarray]:
    """Stream a video resampled onto the constant grid t_m = m / fps: yields frame m (uint8 [H, W, 3] RGB;
    ``gray``: its luma [H, W], as ``iter_frames`` gives it).

    The streaming twin of ``to_constant_fps``: grid time t takes the last source
    frame with timestamp <= t (1 µs tolerance); the grid runs until the last
    source frame's time plus one source interval. Works for 30, 29.97, 50 fps
    and variable frame rates; memory holds two frames at most. ``max_frames``
    caps the number of grid frames.
    """
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    source = iter_frames(path, gray=gray)

    def frames() -> Iterator[np.ndarray]:
        m = 0
        prev_t, prev, interval = 0.0, None, 1.0 / fps
        for t, frame in source:
            if prev is not None:
                interval = t - prev_t if t > prev_t else interval
                while m / fps < t - 1e-6 and (max_frames is None or m < max_frames):
                    yield prev  # the frame on screen at grid time m / fps
                    m += 1
            prev_t, prev = t, frame
            if max_frames is not None and m >= max_frames:
                return  # decode no further than needed
        if prev is None:
            return
        while m / fps < prev_t + interval - 1e-6 and (max_frames is None or m < max_frames):
            yield prev  # the last source frame lasts one source interval
            m += 1

    return frames()


def read_video(path: str | Path, max_frames: int | None = None, with_audio: bool = True) -> VideoClip:
    """Decode a whole video file (mp4, mpg, avi, mkv, ...) into a :class:`VideoClip`.

    frames uint8 [N, H, W, 3] RGB; timestamps float64 [N] from pts * time_base,
    0.0 at the first frame; fps the stream's nominal average rate; audio the
    first audio track as float32 [T] mono at 16 kHz (``avse.audio.io``
    resampling; it starts at its first decoded sample, an A/V start offset is
    not corrected; AAC tracks may end with up to 1023 padding samples), None
    when there is none (or ``with_audio`` is False). With
    ``max_frames`` only the first frames are decoded and the audio is cut to
    the same span, N / fps seconds. Rotation metadata (a display matrix, as
    phones write) is applied so that frames are upright; frames whose size
    changes mid-stream are scaled to the first frame's size. Raises MediaError
    for missing, unreadable or truncated files, a file with no video stream
    and a stream with zero frames.
    """
    path = Path(path)
    _check_max_frames(max_frames)
    container = open_media(path)
    with container:
        stream = first_video_stream(container, path)
        has_audio = bool(container.streams.audio)
        times: list[float] = []
        images: list[np.ndarray] = []
        quarters = 0
        for t, rgb, q in _decode(container, stream, path, max_frames):
            times.append(t)
            images.append(rgb)
            quarters = q
        fps = _nominal_fps(stream)
    timestamps = np.asarray(times, dtype=np.float64)
    if fps is None:
        fps = (len(times) - 1) / timestamps[-1] if len(times) > 1 and timestamps[-1] > 0 else float(VIDEO_FPS)
    audio = None
    if with_audio and has_audio:
        try:
            audio, _ = load_audio(path, sample_rate=SAMPLE_RATE, mono=True)
        except EmptyAudioError:
            audio = None
        if audio is not None and max_frames is not None and len(times) == max_frames:
            audio = audio[: int(round(len(times) / fps * SAMPLE_RATE))]
    return VideoClip(
        frames=np.stack(images),
        timestamps=timestamps,
        fps=float(fps),
        audio=audio,
        path=path,
        sample_rate=SAMPLE_RATE,
        rotation=90 * quarters,
    )


def to_constant_fps(
    frames: np.ndarray, timestamps: np.ndarray, fps: float = VIDEO_FPS, duration: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Resample frames at any (variable) rate onto the constant grid t_m = m / fps, m = 0 .. M - 1.

    frames [N, ...] (images [N, H, W, 3], or anything indexed by frame, e.g.
    landmarks) with timestamps float [N] seconds, non-decreasing. Each grid
    time takes the nearest earlier source frame (the one on screen at that
    moment; 1 µs tolerance for rounded timestamps); grid times before the
    first frame take the first frame. M = ceil(duration * fps), where
    ``duration`` defaults to the last timestamp plus the median source frame
    interval (1 / fps for a single frame). Returns ``(frames [M, ...],
    source_index int64 [M])``.
    """
    frames = np.asarray(frames)
    timestamps = np.asarray(timestamps, dtype=np.float64)
    if timestamps.ndim != 1 or timestamps.shape[0] == 0:
        raise ConfigError(f"timestamps must be a non-empty 1-D array, got shape {timestamps.shape}")
    if frames.shape[0] != timestamps.shape[0]:
        raise ConfigError(f"{frames.shape[0]} frames but {timestamps.shape[0]} timestamps")
    if not np.all(np.isfinite(timestamps)) or np.any(np.diff(timestamps) < 0):
        raise ConfigError("timestamps must be finite and non-decreasing")
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    if duration is None:
        step = float(np.median(np.diff(timestamps))) if timestamps.shape[0] > 1 else 0.0
        duration = float(timestamps[-1]) + (step if step > 0 else 1.0 / fps)
    if duration <= 0:
        raise ConfigError(f"duration must be positive, got {duration}")
    m = max(1, math.ceil(duration * fps - 1e-6))
    grid = np.arange(m, dtype=np.float64) / fps  # [M]
    index = np.searchsorted(timestamps, grid + 1e-6, side="right") - 1  # last frame with t <= grid time
    index = np.clip(index, 0, timestamps.shape[0] - 1).astype(np.int64)
    return frames[index], index


def _rate(fps: float | int | Fraction) -> Fraction:
    if fps <= 0:
        raise ConfigError(f"fps must be positive, got {fps}")
    return Fraction(fps).limit_denominator(1001)


def write_video(
    path: str | Path,
    frames: np.ndarray,
    fps: float | int | Fraction = VIDEO_FPS,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    crf: int = 18,
    preset: str = "medium",
) -> None:
    """Write frames uint8 [N, H, W, 3] RGB as H.264 (libx264, yuv420p) at ``fps``, atomically.

    ``audio`` float [T] mono in [-1, 1] (clipped) at ``sample_rate`` is added
    as an AAC track. ``crf`` is x264's constant quality (0 lossless luma ..
    51; 18 is visually lossless). yuv420p needs even sizes: an odd height or
    width is padded by repeating the last row or column, so such a clip reads
    back one pixel taller or wider. mp4/mov outputs get their index at the
    front (faststart). Raises ConfigError for bad arrays, MediaError when
    encoding fails.
    """
    av = _av()
    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ConfigError(f"frames must be [N, H, W, 3] with N >= 1, got shape {frames.shape}")
    if frames.dtype != np.uint8:
        raise ConfigError(f"frames must be uint8, got {frames.dtype}")
    rate = _rate(fps)
    pad_h, pad_w = frames.shape[1] % 2, frames.shape[2] % 2
    if pad_h or pad_w:
        frames = np.pad(frames, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    n, h, w = frames.shape[:3]
    if audio is not None:
        audio = np.asarray(audio)
        if audio.ndim != 1 or audio.dtype.kind != "f" or audio.shape[0] == 0:
            raise ConfigError(f"audio must be a non-empty float [T] array, got {audio.dtype} {audio.shape}")
        if sample_rate <= 0:
            raise ConfigError(f"sample_rate must be positive, got {sample_rate}")
        audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    options = {"movflags": "+faststart"} if path.suffix.lower() in _MOV_SUFFIXES else {}
    with atomic_path(path) as tmp:
        try:
            with av.open(str(tmp), "w", options=options) as out:
                # mbtree off: with it, x264 (as bundled with PyAV) gave different
                # bytes for the same frames from call to call; without, the output
                # is a function of the input alone (checked), at a tiny cost in size.
                x264 = {"crf": str(int(crf)), "preset": preset, "x264-params": "mbtree=0"}
                vs = out.add_stream("libx264", rate=rate, options=x264)
                vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
                vs.codec_context.time_base = 1 / rate
                ast = None
                pcm = np.zeros(0, np.float32)  # [T] the samples to encode, none without an audio track
                if audio is not None:
                    ast = out.add_stream("aac", rate=sample_rate, layout="mono")
                    ast.bit_rate = 64_000
                    pcm = audio
                next_sample = 0

                def audio_until(until: int) -> None:
                    """Encode pcm[next_sample : until] one AAC frame at a time."""
                    nonlocal next_sample
                    while next_sample < until:
                        part = pcm[next_sample : next_sample + AAC_FRAME]  # [<= 1024]
                        _encode_aac(out, ast, part[None, :], next_sample, sample_rate, "mono")
                        next_sample += part.shape[0]

                for i in range(n):
                    if ast is not None:  # interleave: the audio up to the end of this video frame
                        audio_until(min(pcm.shape[0], math.ceil((i + 1) / rate * sample_rate)))
                    out.mux(vs.encode(yuv420_frame(frames[i], i, 1 / rate)))
                out.mux(vs.encode(None))
                if ast is not None:
                    audio_until(pcm.shape[0])
                    out.mux(ast.encode(None))
        except av.error.FFmpegError as err:
            raise MediaError(path, f"cannot write video ({err})") from None


def yuv420_frame(frame: np.ndarray, pts: int, time_base: Fraction):  # -> av.VideoFrame
    """uint8 [H, W, 3] RGB (even H and W) -> a yuv420p VideoFrame stamped ``pts`` in ``time_base``.

    RGB -> YUV 4:2:0 as FFmpeg would do it (BT.601, limited range).
    """
    av = _av()
    yuv = np.asarray(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2YUV_I420), np.uint8)  # [H * 3 / 2, W]
    vf = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
    vf.pts, vf.time_base = pts, time_base
    return vf


def _encode_aac(out, stream, samples: np.ndarray, pts: int, sample_rate: int, layout: str) -> None:
    """Encode samples float32 [C, n] planar (pts in samples) on the AAC ``stream`` of ``out`` and mux its packets."""
    av = _av()
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, dtype=np.float32), format="fltp", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = sample_rate, pts, Fraction(1, sample_rate)
    out.mux(stream.encode(frame))


def first_frame_time(path: str | Path, kind: str) -> float | None:
    """Presentation time (s) of the first decoded frame of the first ``kind`` ("video"/"audio") stream.

    None when that frame has no timestamp; MediaError when the stream is missing or undecodable.
    """
    av = _av()
    path = Path(path)
    with open_media(path) as c:
        if kind == "video":
            stream = first_video_stream(c, path)
        elif c.streams.audio:
            stream = c.streams.audio[0]
        else:
            raise MediaError(path, "no audio track")
        try:
            for frame in c.decode(stream):
                if frame.pts is None or frame.time_base is None:
                    return None
                return float(frame.pts * frame.time_base)
        except av.error.FFmpegError as err:
            raise MediaError(path, f"corrupt media ({err})") from None
    raise MediaError(path, f"no decodable {kind} frame")


def _refuse_input_as_output(src: Path, dst: Path) -> None:
    if dst.exists() and dst.resolve() == src.resolve():
        raise OutputPathError(f"{dst}: output is the input")


def remux(
    src: str | Path,
    dst: str | Path,
    audio: np.ndarray | Iterable[np.ndarray] | None = None,
    sample_rate: int = SAMPLE_RATE,
    layout: str = "mono",
    start: float = 0.0,
    bit_rate: int = 64_000,
    video_scale: float = 1.0,
) -> None:
    """Write ``dst``: the first video stream of ``src`` copied packet for packet, plus ``audio`` as AAC, atomically.

    Video packets (compressed bytes and timestamps) are copied unchanged
    (``video_scale``: their timestamps multiplied by it, rounded: another
    clock's seconds, e.g. a recording's camera put on its sound card's);
    other streams are dropped; mp4/mov outputs get faststart. ``audio`` is
    None (no audio track), samples float32 [T] mono, or an iterable of chunks
    float32 [C, n] planar (C = 1 for "mono", 2 for "stereo" ``layout``),
    pulled only as the output needs them, so a decoder may feed it. Sample k
    is stamped ``round(start * sample_rate) + k``: ``start`` is the time of
    the first sample on ``src``'s clock (seconds). The audio is interleaved
    with the video, at most ``INTERLEAVE_SECONDS`` ahead of the video packet
    just written. Raises MediaError for unreadable, truncated or video-less
    inputs and a stream with no packet, OutputPathError when ``dst`` is ``src``.
    """
    av = _av()
    src, dst = Path(src), Path(dst)
    check_media_file(src)
    _refuse_input_as_output(src, dst)
    if isinstance(audio, np.ndarray):
        samples = audio.reshape(1, -1)  # [1, T]
        audio = (samples[:, k : k + AAC_FRAME] for k in range(0, samples.shape[1], AAC_FRAME))  # [1, <= 1024] each
    chunks: Iterator[np.ndarray] = iter(() if audio is None else audio)  # nothing is pulled without an audio track
    options = {"movflags": "+faststart"} if dst.suffix.lower() in _MOV_SUFFIXES else {}
    with open_media(src) as container:
        stream = first_video_stream(container, src)
        with atomic_path(dst) as tmp:
            n = 0
            try:
                with av.open(str(tmp), "w", options=options) as out:
                    ovs = out.add_stream_from_template(stream)
                    oas = None
                    if audio is not None:
                        oas = out.add_stream("aac", rate=sample_rate, layout=layout)
                        oas.bit_rate = bit_rate
                    start_pts = int(round(start * sample_rate))
                    sent = 0  # audio samples muxed so far

                    def audio_until(until: float | None) -> None:
                        """Mux audio chunks while they start before ``until`` (s; None: all that is left)."""
                        nonlocal sent
                        while until is None or start + sent / sample_rate < until:
                            chunk = next(chunks, None)  # [C, n]
                            if chunk is None:
                                return
                            _encode_aac(out, oas, chunk, start_pts + sent, sample_rate, layout)
                            sent += chunk.shape[-1]

                    for packet in container.demux(stream):
                        if packet.dts is None and packet.size == 0:
                            continue  # the demuxer's end-of-stream marker
                        if video_scale != 1.0:
                            if packet.pts is not None:
                                packet.pts = round(packet.pts * video_scale)
                            if packet.dts is not None:
                                packet.dts = round(packet.dts * video_scale)
                        stamp = packet.dts if packet.dts is not None else packet.pts
                        if oas is not None and stamp is not None and packet.time_base is not None:
                            audio_until(float(stamp * packet.time_base) + INTERLEAVE_SECONDS)  # keep the two interleaved
                        packet.stream = ovs
                        out.mux(packet)
                        n += 1
                    if oas is not None:
                        audio_until(None)
                        out.mux(oas.encode(None))
            except (av.error.FFmpegError, ValueError) as err:  # ValueError: no codec parameters to copy
                raise MediaError(src, f"cannot write {dst.name}: remuxing failed after {n} video packets ({err})") from None
            if n == 0:
                raise MediaError(src, "zero frames: the video stream holds no packet")


def copy_video_stream(src: str | Path, dst: str | Path) -> None:
    """Remux the first video stream of ``src`` into a new mp4 ``dst`` with no re-encoding and no audio.

    Packets (compressed bytes and timestamps) are copied unchanged, as
    ``ffmpeg -i src -an -c:v copy dst`` does; this writes the AVSE
    ``SXXXXX_silent.mp4``. Written atomically; ``dst`` may not be ``src``.
    Raises MediaError for unreadable, truncated or video-less inputs.
    """
    remux(src, dst)


def mux_audio(video: str | Path, audio: np.ndarray, out_path: str | Path, sample_rate: int = SAMPLE_RATE) -> None:
    """Write ``out_path``: the first video stream of ``video`` copied packet for packet, plus ``audio`` as AAC, atomically.

    ``audio`` float [T] mono in [-1, 1] (clipped) at ``sample_rate`` lies on
    the video's timeline: sample 0 is shown with the first video frame (as
    ``avse.video.shift.video_audio`` returns a track). Encoded at 96 kbit/s.
    Other streams are dropped; mp4/mov outputs get faststart. Raises
    MediaError for unreadable or video-less inputs, OutputPathError when
    ``out_path`` is ``video``, ConfigError for no samples.
    """
    src, dst = Path(video), Path(out_path)
    _refuse_input_as_output(src, dst)
    audio = np.clip(np.asarray(audio, dtype=np.float32).reshape(-1), -1.0, 1.0)  # [T]
    if audio.shape[0] == 0:
        raise ConfigError(f"{dst}: no audio samples to mux")
    start = first_frame_time(src, "video") or 0.0  # sample 0 of the audio is shown with this frame
    remux(src, dst, audio, sample_rate=sample_rate, start=start, bit_rate=96_000)


def has_video(path: str | Path) -> bool:
    """Whether ``path`` holds a video stream (cover art in audio files does not count). MediaError when unreadable."""
    path = Path(path)
    check_media_file(path)
    if path.suffix.lower() in SNDFILE_SUFFIXES:
        return False
    with open_media(path) as container:
        av = _av()
        for stream in container.streams.video:
            attached = getattr(getattr(av.stream, "Disposition", None), "attached_pic", None)
            if attached is not None and stream.disposition & attached:
                continue
            return True
    return False
