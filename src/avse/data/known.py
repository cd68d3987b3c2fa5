"""Two known speakers' recordings as training data: decoded folders, speech windows and the mixing dataset.

The recordings are two folders of files of any format, length, channel count
and sample rate (whatever :func:`avse.audio.io.load_audio` reads). Each file
is decoded once to 16 kHz mono float32. Decoded audio is kept in memory while
the total stays under a :class:`MemoryBudget`; past that, files are decoded once
into ``cache_dir`` (raw float32, one file per recording, named after the
recording's path, size and modification time, so that a second run or a
resumed one skips the decoding) and every item reads its window from there
through a memory map. Reading compressed files (mp3, m4a) per item instead
would decode a whole, possibly hours-long file for every 3-second window.

A speaker's recordings of one part (train or validation) are laid end to end,
each padded with zeros to whole 20 ms frames (a :class:`Track`); windows are
drawn from the track and may span two recordings. A window counts only when
enough of its 20 ms frames hold speech energy (see :func:`speech_starts`).
The Lightning data module over these is avse.training.known.
"""

from __future__ import annotations

import hashlib
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from avse import SAMPLE_RATE
from avse.audio.io import load_audio
from avse.data.mixing import peak_scale, scale_to_snr, weighted_rms
from avse.data.scenes import check_snr_range
from avse.errors import ConfigError, MediaError
from avse.utils.fs import atomic_path
from avse.utils.seeding import item_seed

log = logging.getLogger(__name__)

FRAME = 320  # energy frames: 20 ms at 16 kHz (half a video frame, so windows of whole video frames are whole frames)
FLOOR_DB = -70.0  # frames below this level (dB re full scale) are silence whatever the speaker's loudness


# --------------------------------------------------------------------------- decoded audio


class RawAudio:
    """Decoded audio kept on disk as raw little-endian float32 ``[n]``; memory-mapped on first use in each process."""

    def __init__(self, path: str | Path, n: int):
        self.path = Path(path)
        self.n = int(n)
        self._map: np.ndarray | None = None

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: slice) -> np.ndarray:
        if self._map is None:
            self._map = np.memmap(self.path, dtype="<f4", mode="r", shape=(self.n,))
        return np.asarray(self._map[index], dtype=np.float32)

    def __getstate__(self) -> dict[str, Any]:  # DataLoader workers re-open the map (pickled as a path)
        return {"path": self.path, "n": self.n, "_map": None}


@dataclass(frozen=True)
class Recording:
    """One decoded file: ``audio`` float32 ``[T]`` at 16 kHz (an array, or a :class:`RawAudio` on disk)."""

    path: Path
    audio: Any  # np.ndarray | RawAudio

    def __len__(self) -> int:
        return len(self.audio)


class MemoryBudget:
    """How many bytes of decoded audio may still be held in memory (shared by the folders of one data module)."""

    def __init__(self, max_memory_mb: float):
        self.left = float(max_memory_mb) * 2**20


def media_files(folder: Path) -> list[Path]:
    """The non-hidden regular files under ``folder`` (recursively), sorted by their path relative to it."""
    files = [p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _cache_file(cache_dir: Path, path: Path) -> Path:
    st = path.stat()
    key = hashlib.sha256(f"{path.resolve()}:{st.st_size}:{st.st_mtime_ns}".encode()).hexdigest()[:24]
    return cache_dir / f"{key}.f32"


def read_folder(
    folder: str | Path, option: str = "folder", budget: MemoryBudget | None = None, cache_dir: str | Path | None = None
) -> list[Recording]:
    """Decode every readable file under ``folder`` to 16 kHz mono float32 -> recordings, in path order.

    Files that do not decode (a text file, a broken download) are skipped with a
    logged warning. ``option`` names the setting in messages (``data.speaker_a``).
    Files are kept in memory while ``budget`` (default: 2 GiB) lasts, then
    decoded into ``cache_dir`` and memory-mapped; a file already decoded there
    by an earlier run is not decoded again. Raises MediaError for a missing or
    empty folder or one without decodable audio, ConfigError when the budget is
    spent and no ``cache_dir`` is given.
    """
    folder = Path(folder).expanduser()
    budget = MemoryBudget(2048) if budget is None else budget
    files = check_folder(folder, option)
    cache = None if cache_dir is None else Path(cache_dir)
    out: list[Recording] = []
    failed: list[str] = []
    for path in files:
        cached = None if cache is None else _cache_file(cache, path)
        if cached is not None and cached.is_file():  # decoded by an earlier run
            out.append(Recording(path, RawAudio(cached, cached.stat().st_size // 4)))
            continue
        try:
            x, _ = load_audio(path, SAMPLE_RATE)  # [T] float32
        except MediaError as err:
            failed.append(f"{path.relative_to(folder)}: {err.problem}")
            continue
        if x.nbytes <= budget.left:
            budget.left -= x.nbytes
            out.append(Recording(path, x))
        elif cached is not None:
            with atomic_path(cached) as tmp:
                x.astype("<f4").tofile(tmp)
            out.append(Recording(path, RawAudio(cached, len(x))))
        else:
            raise ConfigError(
                f"{option}: the decoded recordings pass data.max_memory_mb; "
                "set data.cache_dir to a folder for the decoded audio (avse train sets one in the run folder)"
            )
    if failed:
        log.warning("%s: skipped %d file(s) that hold no decodable audio: %s", folder, len(failed), "; ".join(failed[:5]))
    if not out:
        raise MediaError(folder, f"no decodable audio in its {len(files)} file(s) ({option}; e.g. {failed[0]})")
    return out


def check_folder(folder: Path, option: str) -> list[Path]:
    """The files of ``folder`` (:func:`media_files`); MediaError naming the setting ``option`` when it is missing, not a folder or empty."""
    if not folder.exists():
        raise MediaError(folder, f"no such folder ({option})")
    if not folder.is_dir():
        raise MediaError(folder, f"not a folder ({option} is a folder of recordings)")
    files = media_files(folder)
    if not files:
        raise MediaError(folder, f"the folder holds no files ({option})")
    return files


# --------------------------------------------------------------------------- tracks and speech windows


def frame_levels(x: np.ndarray) -> np.ndarray:
    """Mean-square level in dB (re full scale 1.0) of each 20 ms frame: ``x [T]`` -> ``[ceil(T / 320)]`` (zero-padded)."""
    n = -(-len(x) // FRAME)
    x = np.pad(np.asarray(x, dtype=np.float64), (0, n * FRAME - len(x)))
    return (10.0 * np.log10((x.reshape(n, FRAME) ** 2).mean(axis=1) + 1e-12)).astype(np.float32)


def split_recordings(
    recordings: Sequence[Recording], val_fraction: float, segment: int
) -> tuple[list[tuple[Recording, int, int]], list[tuple[Recording, int, int]]]:
    """Split recordings into (train, validation) pieces ``(recording, start, stop)``, deterministically.

    Two or more recordings: ``max(1, round(val_fraction * n))`` whole files (at
    most ``n - 1``) go to validation, picked by a hash of their file name (so
    adding a file does not reshuffle the others). One recording: split in time,
    the last ``val_fraction`` of it is validation (at least ``segment`` samples,
    or half the file when it is shorter than two segments).
    """
    recs = list(recordings)
    if not 0.0 < val_fraction < 1.0:
        raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
    if len(recs) == 1:
        rec = recs[0]
        n = len(rec)
        n_val = max(int(round(val_fraction * n)), min(segment, n // 2))
        cut = (n - n_val) // FRAME * FRAME  # the training part ends on the 20 ms grid
        if cut < FRAME or cut >= n:
            raise MediaError(rec.path, "too short to split into a training and a validation part")
        return [(rec, 0, cut)], [(rec, cut, n)]
    n_val = min(len(recs) - 1, max(1, int(round(val_fraction * len(recs)))))
    ranked = sorted(recs, key=lambda r: hashlib.sha256(r.path.name.encode()).hexdigest())
    val_paths = {r.path for r in ranked[:n_val]}
    train = [(r, 0, len(r)) for r in recs if r.path not in val_paths]
    val = [(r, 0, len(r)) for r in recs if r.path in val_paths]
    return train, val


class Track:
    """Pieces ``(recording, start, stop)`` laid end to end, each zero-padded to whole 20 ms frames.

    ``levels`` float32 ``[N]`` holds the level of every frame (:func:`frame_levels`);
    ``len(track) == N * 320`` samples. :meth:`read` cuts any window out of it,
    zeros beyond the end.
    """

    def __init__(self, pieces: Sequence[tuple[Recording, int, int]]):
        self.pieces = [(rec, int(a), int(b)) for rec, a, b in pieces if b > a]
        if not self.pieces:
            raise ConfigError("a track needs at least one non-empty piece")
        lengths = [-(-(b - a) // FRAME) * FRAME for _, a, b in self.pieces]
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # [P + 1]
        chunk = 3000 * FRAME  # one minute at a time: a memory-mapped piece is never read whole
        self.levels = np.concatenate(
            [frame_levels(rec.audio[s : min(s + chunk, b)]) for rec, a, b in self.pieces for s in range(a, b, chunk)]
        )  # [N]

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def seconds(self) -> float:
        """Duration in seconds (padding included)."""
        return len(self) / SAMPLE_RATE

    def read(self, start: int, n: int) -> np.ndarray:
        """Samples ``[start, start + n)`` of the track -> float32 ``[n]`` (zeros in the padding and past the end)."""
        out = np.zeros(n, dtype=np.float32)
        first = max(0, int(np.searchsorted(self.offsets, start, side="right")) - 1)
        for i in range(first, len(self.pieces)):
            lo = int(self.offsets[i])
            if lo >= start + n:
                break
            rec, a, b = self.pieces[i]
            s0, s1 = max(start, lo), min(start + n, lo + (b - a))  # the piece's real samples in the window
            if s1 > s0:
                out[s0 - start : s1 - start] = rec.audio[a + s0 - lo : a + s1 - lo]
        return out


def active_threshold(levels: np.ndarray, active_db: float) -> float:
    """Level (dB) above which a frame counts as speech: ``active_db`` below the loud level (95th percentile of
    the non-silent frames of ``levels [N]``), and never below -70 dB; +inf when every frame is silent."""
    loud = levels[levels > FLOOR_DB]
    if loud.size == 0:
        return math.inf
    return max(float(np.percentile(loud, 95)) - active_db, FLOOR_DB)


def speech_starts(levels: np.ndarray, window_frames: int, threshold_db: float, min_active: float) -> np.ndarray:
    """Starts (in samples, on the 20 ms grid) of the windows of ``window_frames`` frames with speech.

    ``levels [N]`` are frame levels in dB; a window qualifies when at least
    ``ceil(min_active * window_frames)`` of its frames exceed ``threshold_db``.
    A track shorter than the window offers one window at 0 (read zero-padded).
    Returns int64 ``[K]`` (empty when no window qualifies).
    """
    active = np.asarray(levels) > threshold_db  # [N]
    if len(active) < window_frames:
        active = np.pad(active, (0, window_frames - len(active)))
    counts = np.concatenate([[0], np.cumsum(active)])  # [N + 1]
    per_window = counts[window_frames:] - counts[:-window_frames]  # [N - W + 1]
    need = math.ceil(min_active * window_frames - 1e-9)
    return (np.flatnonzero(per_window >= need) * FRAME).astype(np.int64)


# --------------------------------------------------------------------------- dataset


class KnownSpeakersDataset(Dataset):
    """Mixtures of a window of speaker A and one of speaker B, optionally with noise.

    Item ``index`` of epoch ``e`` depends only on (``seed``, ``e``, ``index``):
    reproducible whatever the number of DataLoader workers (call
    :meth:`set_epoch` at the start of every epoch). Each item draws a window
    start from ``starts_a`` / ``starts_b`` (windows with speech), a level of B
    relative to A in ``level_db`` (dB, RMS over the window), and with
    probability ``p_noise`` a noise window at an SNR in ``snr_noise`` (dB,
    speech sum over noise). The signals share one peak scale so that the
    loudest of (mixture, A, B, noise) peaks at ``peak``.

    Item: ``mixture``, ``target`` (A), ``interferer`` (B) and ``noise`` (zeros
    without) float32 ``[segment]`` with ``mixture == target + interferer + noise``
    exactly, and ``info``: ``{"start_a", "start_b", "level_db", "start_noise"
    (-1 without), "snr_noise" (nan without)}``.
    """

    def __init__(
        self,
        track_a: Track,
        track_b: Track,
        starts_a: np.ndarray,
        starts_b: np.ndarray,
        segment: int,
        length: int,
        noise: Track | None = None,
        level_db: Sequence[float] = (-5.0, 5.0),
        snr_noise: Sequence[float] = (0.0, 20.0),
        p_noise: float = 0.5,
        seed: int = 0,
        peak: float = 0.9,
    ):
        if len(starts_a) == 0 or len(starts_b) == 0:
            raise ConfigError("both speakers need at least one window with speech")
        if not 0.0 <= p_noise <= 1.0:
            raise ConfigError(f"p_noise must be in [0, 1], got {p_noise}")
        if segment < 1 or length < 1:
            raise ConfigError(f"segment and length must be >= 1, got {segment} and {length}")
        self.a, self.b, self.noise = track_a, track_b, noise
        self.starts_a, self.starts_b = np.asarray(starts_a, np.int64), np.asarray(starts_b, np.int64)
        self.segment, self.length = int(segment), int(length)
        self.level_db = check_snr_range("level_db", level_db)
        self.snr_noise = check_snr_range("snr_noise", snr_noise)
        self.p_noise = float(p_noise) if noise is not None else 0.0
        self.seed, self.peak = int(seed), float(peak)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose mixtures are drawn (reproducible per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def draw(self, index: int) -> dict[str, Any]:
        """The windows, level and noise of item ``index`` in the current epoch (no audio read)."""
        rng = np.random.default_rng(item_seed(self.seed, f"{self.epoch}:{index}"))
        d: dict[str, Any] = {
            "start_a": int(self.starts_a[rng.integers(len(self.starts_a))]),
            "start_b": int(self.starts_b[rng.integers(len(self.starts_b))]),
            "level_db": float(rng.uniform(*self.level_db)),
            "start_noise": -1,
            "snr_noise": math.nan,
        }
        with_noise = rng.random() < self.p_noise  # drawn even without noise, so that the other draws keep their values
        snr = float(rng.uniform(*self.snr_noise))
        if with_noise and self.noise is not None:
            n_starts = max(1, (len(self.noise) - self.segment) // FRAME + 1)
            d["start_noise"] = int(rng.integers(n_starts)) * FRAME
            d["snr_noise"] = snr
        return d

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        d = self.draw(index)
        a = self.a.read(d["start_a"], self.segment).astype(np.float64)  # [T]
        b = self.b.read(d["start_b"], self.segment).astype(np.float64)  # [T]
        b = scale_to_snr(b, weighted_rms(a), max(weighted_rms(b), 1e-12), -d["level_db"])  # B at level_db re A
        n = np.zeros_like(a)  # [T]
        if d["start_noise"] >= 0 and self.noise is not None:  # a start is drawn only with a noise track
            n = self.noise.read(d["start_noise"], self.segment).astype(np.float64)
            rn = weighted_rms(n)
            n = n * 0.0 if rn < 1e-8 else scale_to_snr(n, weighted_rms(a + b), rn, d["snr_noise"])  # [T]
        mixed = a + b + n
        scale = peak_scale([mixed, a, b, n], self.peak, floor=1e-12)
        target = torch.from_numpy((a * scale).astype(np.float32))  # [T]
        interferer = torch.from_numpy((b * scale).astype(np.float32))  # [T]
        noise = torch.from_numpy((n * scale).astype(np.float32))  # [T]
        return {
            "mixture": target + interferer + noise,  # [T], exactly the sum of the three
            "target": target,
            "interferer": interferer,
            "noise": noise,
            "info": d,
        }


def speaker_name(folder: str | Path) -> str:
    """Default name of the speaker whose recordings are in ``folder``: the folder's own name."""
    p = Path(folder).expanduser()
    return p.resolve().name or p.as_posix()


__all__ = [
    "FLOOR_DB",
    "FRAME",
    "KnownSpeakersDataset",
    "MemoryBudget",
    "RawAudio",
    "Recording",
    "Track",
    "active_threshold",
    "check_folder",
    "frame_levels",
    "media_files",
    "read_folder",
    "speaker_name",
    "speech_starts",
    "split_recordings",
]
