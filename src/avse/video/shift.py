"""File-level A/V sync helpers: a video's audio on its video timeline, and a copy with the audio shifted."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from avse import SAMPLE_RATE
from avse.audio.io import check_media_file, load_audio
from avse.errors import ConfigError, EmptyAudioError, MediaError, OutputPathError
from avse.video.io import AAC_FRAME, first_frame_time, first_video_stream, open_media, remux

#: sample rates the AAC encoder takes; other rates are resampled to 48 kHz
_AAC_RATES = {7350, 8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000}


def audio_start_gap(video_path: str | Path) -> float:
    """Seconds from the first video frame to the first audio sample of a file (positive: the audio starts later).

    Read from the first decoded frame of each stream (after the decoder drops AAC priming), so
    it is what a player shows. 0.0 when either stream carries no timestamps. MediaError when the
    file is unreadable or lacks a video or an audio stream.
    """
    path = Path(video_path)
    v, a = first_frame_time(path, "video"), first_frame_time(path, "audio")
    return 0.0 if a is None or v is None else a - v


def timeline_audio(video_path: str | Path) -> np.ndarray:
    """The audio track of a video at 16 kHz mono, on the video's timeline -> float32 [T].

    Sample 0 is the time of the first video frame: a track that starts later gets silence in
    front, one that starts earlier loses its head (``audio_start_gap``). MediaError when the
    file has no audio track or cannot be read.
    """
    audio, _ = load_audio(video_path, sample_rate=SAMPLE_RATE, mono=True)
    k = int(round(audio_start_gap(video_path) * SAMPLE_RATE))
    if k > 0:
        audio = np.concatenate([np.zeros(k, dtype=np.float32), audio])
    elif k < 0:
        audio = audio[-k:]
    return audio


_SHIFT_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv")  # containers that take AAC next to any video codec


def check_shift_output(src: str | Path, dst: str | Path) -> None:
    """Refuse an output for ``write_shifted`` that cannot work: a folder, the input, a container without AAC."""
    src, dst = Path(src), Path(dst)
    if dst.is_dir():
        raise OutputPathError(f"{dst}: is a folder; give a file name such as fixed.mp4")
    if dst.exists() and dst.resolve() == src.resolve():
        raise OutputPathError(f"{dst}: output is the input")
    if dst.suffix.lower() not in _SHIFT_SUFFIXES:
        raise OutputPathError(f"{dst}: the corrected copy needs one of {', '.join(_SHIFT_SUFFIXES)} (the audio is AAC)")


def video_audio(video_path: str | Path) -> np.ndarray | None:
    """The video's own audio on its timeline (``timeline_audio``), or None when it has no audio track."""
    try:
        return timeline_audio(video_path)
    except EmptyAudioError:
        return None
    except MediaError as err:
        if "no audio track" in str(err):
            return None
        raise


class _ShiftedAudio:
    """Decodes a file's first audio track and hands out as many samples as it holds, delayed by ``delay`` samples.

    delay > 0: ``delay`` samples of silence first, the last ``delay`` input samples dropped;
    delay < 0: the first ``-delay`` input samples dropped, silence appended at the end.
    Samples come as float32 [C, n] planar at ``rate``; memory holds about one decoded frame.
    """

    def __init__(self, container, stream, rate: int, layout: str, delay: int):
        import av

        self._frames = container.decode(stream)
        self._resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        self.channels = 1 if layout == "mono" else 2
        self.received = 0  # input samples decoded so far (after resampling)
        self.emitted = 0  # output samples handed out so far
        self._skip = max(0, -delay)  # input samples still to drop
        self._pending: list[np.ndarray] = [np.zeros((self.channels, delay), np.float32)] if delay > 0 else []
        self._buffered = max(0, delay)
        self._done = False

    def _pull(self) -> None:
        """Decode one more frame into the pending buffer (or flush the resampler at the end)."""
        for frame in self._frames:
            frame.pts = None  # our timestamps are recomputed from sample counts
            for out in self._resampler.resample(frame):
                self._take(out.to_ndarray())
            return
        for out in self._resampler.resample(None):
            self._take(out.to_ndarray())
        self._done = True

    def _take(self, arr: np.ndarray) -> None:
        arr = np.asarray(arr, dtype=np.float32).reshape(self.channels, -1)  # [C, n]
        self.received += arr.shape[1]
        cut = min(self._skip, arr.shape[1])
        self._skip -= cut
        if arr.shape[1] > cut:
            self._pending.append(arr[:, cut:])
            self._buffered += arr.shape[1] - cut

    def _available(self) -> int:
        """Samples that may go out now: the output never runs ahead of the input, and ends with it."""
        if self._done:  # whatever is not buffered is the trailing silence (delay < 0)
            return self.received - self.emitted
        return min(self._buffered, self.received - self.emitted)

    def read(self, n: int) -> np.ndarray | None:
        """Up to ``n`` output samples as float32 [C, m]; fewer only at the end; None when all were handed out."""
        while not self._done and self._available() < n:
            self._pull()
        m = min(n, self._available())
        if m <= 0:
            return None
        parts, got = [], 0
        while got < m and self._pending:
            p = self._pending[0]
            take = min(m - got, p.shape[1])
            parts.append(p[:, :take])
            if take == p.shape[1]:
                self._pending.pop(0)
            else:
                self._pending[0] = p[:, take:]
            got += take
        self._buffered -= got
        if got < m:  # the trailing silence
            parts.append(np.zeros((self.channels, m - got), np.float32))
        self.emitted += m
        return np.concatenate(parts, axis=1)

    def __iter__(self) -> Iterator[np.ndarray]:
        """Chunks float32 [C, <= 1024], one AAC frame each, until every sample was handed out."""
        while (chunk := self.read(AAC_FRAME)) is not None:
            yield chunk


def write_shifted(video_path: str | Path, offset_ms: float, out_path: str | Path) -> None:
    """Write a copy of a video with its audio moved by ``-offset_ms`` (undoing a measured offset), atomically.

    ``offset_ms`` is what ``sync_video`` / ``estimate_offset`` report (positive = the audio lags):
    the output's audio is ``shift_audio(audio, -offset_ms)`` at the track's own sample rate and
    channels (mono stays mono, more than two channels are mixed to stereo, a rate AAC cannot
    take becomes 48 kHz): same length and start time as the input's track, silence where the
    shift opens a gap, re-encoded as AAC. The first video stream is copied packet for packet (no
    re-encoding); other streams are dropped. mp4/mov outputs get faststart. Streams both inputs:
    memory stays bounded for long files. Raises MediaError for unreadable inputs or one without
    audio, OutputPathError when ``out_path`` is the input, ConfigError for a non-finite offset.
    """
    src, dst = Path(video_path), Path(out_path)
    check_media_file(src)
    if not math.isfinite(offset_ms):
        raise ConfigError(f"offset_ms must be finite, got {offset_ms}")
    check_shift_output(src, dst)
    with open_media(src) as container:
        first_video_stream(container, src)  # a missing or truncated video stream is reported first
        if not container.streams.audio:
            raise MediaError(src, "no audio track")
        astream = container.streams.audio[0]
        ctx = astream.codec_context
        rate = int(ctx.sample_rate or astream.rate or SAMPLE_RATE)
        rate = rate if rate in _AAC_RATES else 48_000
        layout = "mono" if ctx.channels == 1 else "stereo"
        start = first_frame_time(src, "audio") or 0.0  # first audio time on the container clock
        audio = _ShiftedAudio(container, astream, rate, layout, int(round(-offset_ms * rate / 1000.0)))
        remux(src, dst, audio, sample_rate=rate, layout=layout, start=start, bit_rate=64_000 * audio.channels)
