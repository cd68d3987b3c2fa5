"""Two known speakers: training mixtures made from speaker A's and speaker B's own recordings, and their data module.

The recordings are two folders of files of any format, length, channel count
and sample rate (whatever :func:`avse.audio.io.load_audio` reads). Each file
is decoded once to 16 kHz mono float32. Decoded audio is kept in memory while
the total stays under ``max_memory_mb``; past that, files are decoded once
into ``cache_dir`` (raw float32, one file per recording, named after the
recording's path, size and modification time, so that a second run or a
resumed one skips the decoding) and every item reads its window from there
through a memory map. Reading compressed files (mp3, m4a) per item instead
would decode a whole, possibly hours-long file for every 3-second window.

A speaker's recordings of one part (train or validation) are laid end to end,
each padded with zeros to whole 20 ms frames (a :class:`Track`); windows are
drawn from the track and may span two recordings. A window counts only when
enough of its 20 ms frames hold speech energy (see :func:`speech_starts`).
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.audio.io import load_audio
from avse.data.scenes import check_snr_range
from avse.data.synth import item_seed
from avse.errors import ConfigError, MediaError
from avse.utils.fs import atomic_path, check_file_stem
from avse.training.data import EpochDataModule

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
    files = _check_folder(folder, option)
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


def _check_folder(folder: Path, option: str) -> list[Path]:
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


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


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
        b *= 10.0 ** (d["level_db"] / 20.0) * _rms(a) / max(_rms(b), 1e-12)  # B at level_db re A
        n = np.zeros_like(a)  # [T]
        if d["start_noise"] >= 0:
            n = self.noise.read(d["start_noise"], self.segment).astype(np.float64)
            rn = _rms(n)
            n *= 0.0 if rn < 1e-8 else _rms(a + b) / rn * 10.0 ** (-d["snr_noise"] / 20.0)
        mixed = a + b + n
        scale = self.peak / max(np.abs(mixed).max(), np.abs(a).max(), np.abs(b).max(), np.abs(n).max(), 1e-12)
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


# --------------------------------------------------------------------------- data module


def speaker_name(folder: str | Path) -> str:
    """Default name of the speaker whose recordings are in ``folder``: the folder's own name."""
    p = Path(folder).expanduser()
    return p.resolve().name or p.as_posix()


class KnownSpeakersDataModule(EpochDataModule):
    """Train on random mixtures of speaker A's and speaker B's recordings; validate on fixed draws.

    ``speaker_a`` and ``speaker_b`` are folders of recordings (any format,
    length, channels, sample rate); ``name_a`` / ``name_b`` default to the
    folder names and are what :attr:`speakers` reports (``fit`` stores them in
    the checkpoint). Each speaker's files are split into train and validation
    parts by :func:`split_recordings` (``val_fraction``), and so is the
    optional ``noise`` folder. Batches are dicts like AvseDataModule's (no
    visual stream): ``mixture``, ``target`` (A), ``interferer`` (B), ``noise``
    float32 ``[B, T]`` with ``T = segment_seconds`` rounded to whole 40 ms video
    frames, and ``info``.

    Windows must have speech: a 20 ms frame is speech when its level is within
    ``active_db`` dB of the speaker's loud level (95th percentile) and above
    -70 dBFS, and a window needs ``min_active`` of its frames to be speech.
    Each speaker needs ``min_speech_seconds`` of speech frames in all.

    An epoch is ``items_per_epoch`` draws (default: the windows that tile the
    longer speaker's training part, at least 100); validation is ``val_items``
    fixed draws (epoch 0 with ``seed + 1``). Audio is decoded in :meth:`setup`;
    see the module docstring for ``max_memory_mb`` and ``cache_dir``.
    """

    def __init__(
        self,
        speaker_a: str | Path,
        speaker_b: str | Path,
        name_a: str | None = None,
        name_b: str | None = None,
        noise: str | Path | None = None,
        segment_seconds: float = 3.0,
        batch_size: int = 8,
        num_workers: int = 0,
        level_db: Sequence[float] = (-5.0, 5.0),
        snr_noise: Sequence[float] = (0.0, 20.0),
        p_noise: float = 0.5,
        val_fraction: float = 0.1,
        items_per_epoch: int | None = None,
        val_items: int = 32,
        min_speech_seconds: float = 3.0,
        min_active: float = 0.5,
        active_db: float = 30.0,
        max_memory_mb: float = 2048.0,
        cache_dir: str | Path | None = None,
        seed: int = 0,
    ):
        super().__init__()
        self.folder_a, self.folder_b = Path(speaker_a).expanduser(), Path(speaker_b).expanduser()
        self.noise_folder = None if noise is None else Path(noise).expanduser()
        for option, folder in (("data.speaker_a", self.folder_a), ("data.speaker_b", self.folder_b), ("data.noise", self.noise_folder)):
            if folder is not None:
                _check_folder(folder, option)
        if self.folder_a.resolve() == self.folder_b.resolve():
            raise ConfigError(f"data.speaker_a and data.speaker_b are the same folder ({self.folder_a})")
        self.name_a = str(name_a) if name_a is not None else speaker_name(self.folder_a)
        self.name_b = str(name_b) if name_b is not None else speaker_name(self.folder_b)
        check_file_stem(self.name_a, "data.name_a")  # the names become output file names in avse separate
        check_file_stem(self.name_b, "data.name_b")
        if self.name_a == self.name_b:
            raise ConfigError(f"both speakers are named {self.name_a!r}; set data.name_a and data.name_b")
        if not segment_seconds > 0:
            raise ConfigError(f"segment_seconds must be > 0, got {segment_seconds}")
        if not 0.0 < min_active <= 1.0:
            raise ConfigError(f"min_active must be in (0, 1], got {min_active}")
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {val_fraction}")
        if items_per_epoch is not None and int(items_per_epoch) < 1 or int(val_items) < 1 or int(batch_size) < 1:
            raise ConfigError("items_per_epoch, val_items and batch_size must be >= 1")
        self.segment = max(1, round(segment_seconds * SAMPLE_RATE / SAMPLES_PER_FRAME)) * SAMPLES_PER_FRAME
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.level_db = check_snr_range("level_db", level_db)
        self.snr_noise = check_snr_range("snr_noise", snr_noise)
        if not 0.0 <= p_noise <= 1.0:
            raise ConfigError(f"p_noise must be in [0, 1], got {p_noise}")
        self.p_noise, self.val_fraction = float(p_noise), float(val_fraction)
        self.items_per_epoch = None if items_per_epoch is None else int(items_per_epoch)
        self.val_items = int(val_items)
        self.min_speech_seconds, self.min_active, self.active_db = float(min_speech_seconds), float(min_active), float(active_db)
        self.max_memory_mb = float(max_memory_mb)
        self.cache_dir = None if cache_dir is None else Path(cache_dir)
        self.seed = int(seed)
        self.train_set: KnownSpeakersDataset | None = None
        self.val_set: KnownSpeakersDataset | None = None

    @property
    def speakers(self) -> list[str]:
        """``[name_a, name_b]``: the names of output 0 and output 1."""
        return [self.name_a, self.name_b]

    def _speaker(self, folder: Path, option: str, budget: MemoryBudget) -> tuple[Track, Track, np.ndarray, np.ndarray]:
        """Decode, split and find the speech windows of one speaker -> (train, val, train starts, val starts)."""
        recs = read_folder(folder, option, budget, self.cache_dir)
        train_p, val_p = split_recordings(recs, self.val_fraction, self.segment)
        train, val = Track(train_p), Track(val_p)
        levels = np.concatenate([train.levels, val.levels])
        threshold = active_threshold(levels, self.active_db)
        speech = float((levels > threshold).sum()) * FRAME / SAMPLE_RATE
        if speech < self.min_speech_seconds:
            raise MediaError(
                folder, f"only {speech:.1f} s of speech in its recordings ({option}; at least {self.min_speech_seconds:g} s needed)"
            )
        window = self.segment // FRAME
        starts = [speech_starts(t.levels, window, threshold, self.min_active) for t in (train, val)]
        for part, s in zip(("training", "validation"), starts):
            if len(s) == 0:
                raise MediaError(
                    folder,
                    f"no {self.segment / SAMPLE_RATE:g} s window of its {part} part holds enough speech ({option}); "
                    "add recordings or lower data.segment_seconds, data.min_active or data.val_fraction",
                )
        return train, val, starts[0], starts[1]

    def setup(self, stage: str | None = None) -> None:
        """Decode and index the recordings (once), and build the training and validation sets."""
        if self.train_set is not None:
            return
        budget = MemoryBudget(self.max_memory_mb)
        train_a, val_a, sa, va = self._speaker(self.folder_a, "data.speaker_a", budget)
        train_b, val_b, sb, vb = self._speaker(self.folder_b, "data.speaker_b", budget)
        noise_train = noise_val = None
        if self.noise_folder is not None:
            noise_recs = read_folder(self.noise_folder, "data.noise", budget, self.cache_dir)
            tp, vp = split_recordings(noise_recs, self.val_fraction, self.segment)
            noise_train, noise_val = Track(tp), Track(vp)
        length = self.items_per_epoch or max(100, math.ceil(max(len(train_a), len(train_b)) / self.segment))
        common = dict(segment=self.segment, level_db=self.level_db, snr_noise=self.snr_noise, p_noise=self.p_noise)
        self.train_set = KnownSpeakersDataset(train_a, train_b, sa, sb, length=length, noise=noise_train, seed=self.seed, **common)
        self.val_set = KnownSpeakersDataset(val_a, val_b, va, vb, length=self.val_items, noise=noise_val, seed=self.seed + 1, **common)

    def _loader(self, ds: Dataset) -> DataLoader:
        # every item is a fresh random draw, so no shuffling; no persistent workers, so that each
        # epoch's workers copy the dataset after set_epoch
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def _train_loader(self) -> DataLoader:
        """Batches of ``batch_size`` training mixtures of the current epoch."""
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation mixtures, in order."""
        if self.val_set is None:
            self.setup("validate")
        return self._loader(self.val_set)


__all__ = [
    "FRAME",
    "KnownSpeakersDataModule",
    "KnownSpeakersDataset",
    "MemoryBudget",
    "RawAudio",
    "Recording",
    "Track",
    "active_threshold",
    "frame_levels",
    "media_files",
    "read_folder",
    "speaker_name",
    "speech_starts",
    "split_recordings",
]
