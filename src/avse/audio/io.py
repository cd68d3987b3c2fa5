"""Read audio of any common format as mono float32, resample, normalise, write wavs atomically."""

from __future__ import annotations

import errno
import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from avse import SAMPLE_RATE
from avse.errors import ConfigError, EmptyAudioError, MediaError
from avse.utils.fs import atomic_path

#: formats libsndfile reads directly; everything else goes through PyAV (FFmpeg)
SNDFILE_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au"}


def check_media_file(path: Path) -> None:
    """Raise MediaError unless ``path`` is an existing, non-empty file (not a folder)."""
    if not path.exists():
        raise MediaError(path, "no such file")
    if path.is_dir():
        raise MediaError(path, "is a folder, not a media file")
    if path.stat().st_size == 0:
        raise MediaError(path, "empty file")


def check_riff_complete(path: Path) -> None:
    """Raise MediaError when a RIFF/WAVE file is shorter than its data chunk says."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return  # not RIFF (RF64, etc.): leave it to libsndfile
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            cid, csize = struct.unpack("<4sI", f.read(8))
            if cid == b"data":
                if csize != 0xFFFFFFFF and pos + 8 + csize > size:
                    raise MediaError(path, f"truncated: data chunk says {csize} bytes, file has {size - pos - 8}")
                return
            pos += 8 + csize + (csize & 1)
        raise MediaError(path, "truncated: no data chunk")


def _read_sndfile(path: Path) -> tuple[np.ndarray, int]:
    if path.suffix.lower() == ".wav":
        check_riff_complete(path)
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError) as err:
        raise MediaError(path, f"unreadable audio ({err})") from None
    if data.shape[0] == 0 and path.suffix.lower() != ".wav":
        # libsndfile reports 0 frames for a truncated Ogg (its length comes from the last page):
        # let FFmpeg tell a truly empty file (EmptyAudioError) from a broken one (MediaError).
        return _read_av(path)
    return data.T, int(sr)  # [C, T]


def check_not_still_image(container, path: Path) -> None:
    """Close ``container`` (PyAV, read from ``path``) and raise MediaError when it is a still image.

    FFmpeg opens a PNG or JPEG as a one-frame video without audio; it is
    neither a video nor an audio file, and the message says so.
    """
    fmt = container.format.name  # "png_pipe", "image2", "mov,mp4,m4a,3gp,3g2,mj2", ...
    if fmt == "image2" or fmt.endswith("_pipe"):
        container.close()
        kind = fmt[: -len("_pipe")] if fmt.endswith("_pipe") else "image"
        raise MediaError(path, f"a still image ({kind}), not a video or audio file")


def _read_av(path: Path) -> tuple[np.ndarray, int]:
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise MediaError(path, f"unreadable media ({err})") from None
    check_not_still_image(container, path)
    with container:
        if not container.streams.audio:
            raise MediaError(path, "no audio track")
        stream = container.streams.audio[0]
        entries = stream.index_entries  # mp4/mov sample table: where every packet lies in the file
        if len(entries):
            end, size = max(e.pos + e.size for e in entries), path.stat().st_size
            if end > size:
                raise MediaError(path, f"truncated: the index needs {end} bytes, the file has {size}")
        sr = stream.codec_context.sample_rate or stream.rate
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                arr: np.ndarray = frame.to_ndarray()  # planar [C, n] or packed [1, n*C]
                if not frame.format.is_planar:
                    arr = arr.reshape(-1, len(frame.layout.channels)).T
                if arr.dtype.kind == "i":
                    arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
                elif arr.dtype.kind == "u":  # unsigned PCM (u8): silence is the mid value
                    mid = float(np.iinfo(arr.dtype).max // 2 + 1)
                    arr = (arr.astype(np.float32) - mid) / mid
                chunks.append(arr.astype(np.float32, copy=False))
        except av.error.FFmpegError as err:
            if not chunks:
                raise MediaError(path, f"undecodable audio ({err})") from None
    if not chunks:
        raise EmptyAudioError(path)
    return np.concatenate(chunks, axis=1), int(sr)


def load_audio(path: str | Path, sample_rate: int | None = SAMPLE_RATE, mono: bool = True) -> tuple[np.ndarray, int]:
    """Read an audio file (wav/flac/ogg, or the audio track of mp4/m4a/mpg/avi/mkv).

    Returns ``(audio, sr)`` with audio float32 ``[T]`` when ``mono`` (channels
    averaged) else ``[C, T]``, resampled to ``sample_rate`` unless it is None.
    Raises MediaError for missing, unreadable or truncated files and
    EmptyAudioError when there are no samples.
    """
    path = Path(path)
    check_media_file(path)
    if path.suffix.lower() in SNDFILE_SUFFIXES:
        data, sr = _read_sndfile(path)
    else:
        data, sr = _read_av(path)
    if data.shape[-1] == 0:
        raise EmptyAudioError(path)
    if not np.all(np.isfinite(data)):
        raise MediaError(path, "audio holds NaN or infinite samples")
    if mono:
        data = data.mean(axis=0)
    if sample_rate is not None and sr != sample_rate:
        data = resample(data, sr, sample_rate)
        sr = sample_rate
    return np.ascontiguousarray(data, dtype=np.float32), sr


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Resample ``x`` ``[T]`` or ``[C, T]`` from ``sr_in`` to ``sr_out`` Hz with soxr (VHQ)."""
    if sr_in == sr_out:
        return x
    if sr_in <= 0 or sr_out <= 0:
        raise ConfigError(f"sample rates must be positive, got {sr_in} -> {sr_out}")
    if x.ndim == 1:
        return soxr.resample(x, sr_in, sr_out, quality="VHQ").astype(x.dtype, copy=False)
    return soxr.resample(x.T, sr_in, sr_out, quality="VHQ").T.astype(x.dtype, copy=False)


def peak_normalize(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Scale ``x`` (any shape) so that max|x| equals ``peak``; silence is returned as is."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return x if m == 0.0 else x * (peak / m)


def loudness(x: np.ndarray, sr: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4) of mono ``x`` ``[T]``."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sr)
    block = meter.block_size
    if x.shape[-1] < int(block * sr):
        x = np.pad(x, (0, int(block * sr) - x.shape[-1]))
    return float(meter.integrated_loudness(x.astype(np.float64)))


def loudness_normalize(x: np.ndarray, sr: int, target_lufs: float = -23.0) -> np.ndarray:
    """Scale mono ``x`` ``[T]`` to ``target_lufs`` integrated loudness (silence returned as is)."""
    current = loudness(x, sr)
    if not np.isfinite(current):
        return x
    return (x * 10.0 ** ((target_lufs - current) / 20.0)).astype(x.dtype, copy=False)


def blend_at_lufs(sources: list[np.ndarray], sr: int, target_lufs: float = -23.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """Bring every source ``[T_i]`` to ``target_lufs``, zero-pad to the longest and sum.

    The broadcast-practice blend: each talker at the same loudness. Returns
    ``(mixture [T], scaled sources [T] each)``.
    """
    if not sources:
        raise ConfigError("blend_at_lufs needs at least one source")
    n = max(s.shape[-1] for s in sources)
    scaled = [np.pad(loudness_normalize(s, sr, target_lufs), (0, n - s.shape[-1])) for s in sources]
    return np.sum(scaled, axis=0), scaled


def save_wav(path: str | Path, x: np.ndarray, sample_rate: int = SAMPLE_RATE, subtype: str = "PCM_16") -> None:
    """Write ``x`` ``[T]`` (float in [-1, 1], or int16) to a wav atomically.

    Float input is clipped to [-1, 1]; soundfile's PCM_16 conversion rounds.
    """
    if x.size == 0:
        raise ConfigError(f"{path}: refusing to write a wav with no samples")
    if x.dtype.kind == "f":
        x = np.clip(x, -1.0, 1.0)
    with atomic_path(path) as tmp:
        try:
            sf.write(str(tmp), x, sample_rate, subtype=subtype, format="WAV")
        except sf.LibsndfileError as err:  # "System error": a full disk or no permission; say which file
            raise OSError(errno.EIO, f"cannot write the wav (libsndfile: {err.error_string})", str(path)) from None
