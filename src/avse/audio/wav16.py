"""Exact wav I/O of the AVSE corpus: 16 kHz mono wavs read as float64, int16 samples as PCM_16 wav bytes."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

from avse import SAMPLE_RATE
from avse.audio.io import check_riff_complete
from avse.errors import MediaError


def read_wav64(path: str | Path, start: int = 0, frames: int = -1) -> np.ndarray:
    """Read a 16 kHz mono wav (or ``frames`` samples from ``start``) as float64 [T] (soundfile's scaling).

    Raises MediaError naming the file when it is missing, unreadable, not
    16 kHz mono, truncated (a RIFF data chunk longer than the file), empty,
    holds NaN or infinite samples, or
    holds fewer than ``frames`` samples from ``start``: a short read is never
    returned (it would be zero-padded downstream and mix wrongly).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file" if not path.exists() else "not a file")
    if path.suffix.lower() == ".wav":
        check_riff_complete(path)
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != SAMPLE_RATE:
                raise MediaError(path, f"sample rate {f.samplerate} Hz, expected {SAMPLE_RATE}")
            if f.channels != 1:
                raise MediaError(path, f"{f.channels} channels, expected mono")
            total = f.frames
            if start:
                if start >= total:
                    raise MediaError(path, f"offset {start} is past the end ({total} samples)")
                f.seek(start)
            x = f.read(frames, dtype="float64")
    except (sf.LibsndfileError, RuntimeError) as err:
        raise MediaError(path, f"unreadable audio ({err})") from None
    if x.size == 0:
        raise MediaError(path, "no audio samples")
    if not np.all(np.isfinite(x)):  # a float wav may hold them; they would spread through every mix
        raise MediaError(path, "audio holds NaN or infinite samples")
    if frames >= 0 and len(x) < frames:
        raise MediaError(
            path, f"too short: {frames} samples needed from offset {start}, the file has {total} ({len(x)} read)"
        )
    return x


def wav_bytes_int16(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono PCM_16 RIFF/WAVE file for int16 x [T], byte for byte what soundfile writes."""
    data = np.ascontiguousarray(x, dtype="<i2").tobytes()
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
        + b"data"
        + struct.pack("<I", len(data))
    )
    return header + data


__all__ = ["read_wav64", "wav_bytes_int16"]
