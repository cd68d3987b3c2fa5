"""Two known speakers: the Lightning data module that trains on mixtures of speaker A's and speaker B's recordings.

The recordings, their decoding and caching, the speech windows and the mixing
dataset are avse.data.known; see its docstring for ``max_memory_mb`` and
``cache_dir``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.data.known import (
    FRAME,
    KnownSpeakersDataset,
    MemoryBudget,
    Track,
    active_threshold,
    check_folder,
    read_folder,
    speaker_name,
    speech_starts,
    split_recordings,
)
from avse.data.scenes import check_snr_range
from avse.errors import ConfigError, MediaError
from avse.training.data import EpochDataModule
from avse.utils.fs import check_file_stem


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
    see avse.data.known for ``max_memory_mb`` and ``cache_dir``.
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
                check_folder(folder, option)
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
        dataset = functools.partial(
            KnownSpeakersDataset, segment=self.segment, level_db=self.level_db, snr_noise=self.snr_noise, p_noise=self.p_noise
        )
        self.train_set = dataset(train_a, train_b, sa, sb, length=length, noise=noise_train, seed=self.seed)
        self.val_set = dataset(val_a, val_b, va, vb, length=self.val_items, noise=noise_val, seed=self.seed + 1)

    def _loader(self, ds: Dataset) -> DataLoader:
        # every item is a fresh random draw, so no shuffling; no persistent workers, so that each
        # epoch's workers copy the dataset after set_epoch
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False, num_workers=self.num_workers)

    def _train_loader(self) -> DataLoader:
        """Batches of ``batch_size`` training mixtures of the current epoch."""
        if self.train_set is None:
            raise ConfigError("KnownSpeakersDataModule: setup() has not run")
        return self._loader(self.train_set)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation mixtures, in order."""
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            raise ConfigError("KnownSpeakersDataModule: setup() gave no validation set")
        return self._loader(self.val_set)


__all__ = ["KnownSpeakersDataModule"]
