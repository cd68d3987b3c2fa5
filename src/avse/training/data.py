"""Lightning data module: dynamically mixed training batches and fixed validation draws, with lip features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from avse.data.datasets import DynamicMixDataset, align_visual, frames_for, target_lip_features
from avse.errors import ConfigError
from avse.training.augment import LipAugment, augment_lip_features
from avse.utils.seeding import item_seed


class LipFeatureDataset(Dataset):
    """DynamicMixDataset items with ``features`` float32 [F, 82] added when the item lacks them.

    Without a preprocessing cache a DynamicMixDataset item carries only the lip
    landmarks, while ``lip_features`` also needs the eye corners. This wrapper
    reads the target's full landmark file (ROOT/{split}/targets_landmarks),
    computes the same features the cache holds (avse.video.lipfeat), aligns them
    to the utterance's frames exactly as the lips are, and crops them with the
    item's ``start_frame``. Non-finite features (missing landmarks) become 0.
    With a cache the item already has ``features`` and is used as it is.
    With ``augment`` (a LipAugment) the features are then augmented
    (``avse.training.augment``), drawn per (seed, epoch, index).
    """

    def __init__(self, base: DynamicMixDataset, augment: LipAugment | None = None):
        self.base = base
        self.augment = augment

    def set_epoch(self, epoch: int) -> None:
        """Forward to the wrapped dataset (selects the epoch's mixtures)."""
        self.base.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> dict[str, Any]:
        item = self.base[index]
        if "features" not in item:
            item["features"] = self._features(item, index)
        if self.augment is not None:
            rng = np.random.default_rng(item_seed(self.base.seed, f"augment:{self.base.epoch}:{index}"))
            item["features"] = torch.from_numpy(augment_lip_features(item["features"].numpy(), rng, self.augment))
        return item

    def _features(self, item: dict[str, Any], index: int) -> torch.Tensor:
        """The item's lip features [F, 82] from the target's landmark file, cut as its lips were."""
        feats = target_lip_features(self.base.root, self.base.dataset, item["info"]["target"])  # [N, 82]
        n_full = frames_for(int(self.base.targets[index]["nsamples"]))
        feats = align_visual(feats, n_full)  # [F_full, 82], as the lips were aligned
        start = int(item["info"]["start_frame"])
        n = item["lips"].shape[0]
        feats = align_visual(feats[start : start + n], n)  # [F, 82]
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))


class EpochDataModule(pl.LightningDataModule):
    """A data module whose training set draws new mixtures every epoch (``train_set.set_epoch``).

    Subclasses set ``train_set`` / ``val_set`` in ``setup`` and say how a training
    loader is made (:meth:`_train_loader`). ``train_dataloader`` applies the
    trainer's current epoch first, so that fresh workers and resumed runs draw
    that epoch's mixtures.
    """

    train_set: Any = None

    def set_epoch(self, epoch: int) -> None:
        """Draw the training mixtures of ``epoch`` (validation stays on epoch 0)."""
        if self.train_set is not None:
            self.train_set.set_epoch(epoch)

    def _train_loader(self) -> DataLoader:
        raise NotImplementedError

    def train_dataloader(self) -> DataLoader:
        """Batches of the current epoch's training mixtures."""
        if self.train_set is None:
            self.setup("fit")
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            self.set_epoch(trainer.current_epoch)
        return self._train_loader()


class AvseDataModule(EpochDataModule):
    """Train on dynamic mixtures of ``train_split`` (new draws every epoch), validate on fixed draws of ``val_split``.

    Batches are dicts: ``mixture``, ``target``, ``interferer`` float32
    [B, F * 640], ``lips`` [B, F, 40, 2], ``features`` [B, F, 82] (from
    ``cache`` when given, else computed from the landmark files; see
    LipFeatureDataset), plus ``crops`` [B, F, 96, 96] with a cache when
    ``crops`` is set (no shipped model reads them), and ``info``. Training
    items are ``segment_frames``-frame windows; validation items are whole
    utterances (batch size 1) unless ``val_segment_frames`` is set. The
    validation set is epoch 0 of ``val_split`` and never changes. The training
    epoch is set by :meth:`set_epoch` (SeparationModule calls it at the start
    of every epoch, and ``train_dataloader`` applies the trainer's epoch so that
    fresh workers and resumed runs draw that epoch's mixtures). ``p_clean``:
    the share of training items that are the target alone (do no harm);
    ``visual_augment``: augment the training items' lip features (True for the
    defaults of ``avse.training.augment.LipAugment``, or a mapping of its fields).
    """

    def __init__(
        self,
        root: str | Path,
        train_split: str = "train",
        val_split: str = "dev",
        cache: str | Path | None = None,
        segment_frames: int | None = 50,
        val_segment_frames: int | None = None,
        batch_size: int = 4,
        num_workers: int = 0,
        snr_speech: Sequence[float] = (-15.0, 5.0),
        snr_noise: Sequence[float] = (-10.0, 10.0),
        p_speech: float = 0.5,
        seed: int = 0,
        crops: bool = False,
        p_clean: float = 0.0,
        visual_augment: bool | dict[str, Any] = False,
    ):
        super().__init__()
        self.p_clean = float(p_clean)
        if isinstance(visual_augment, dict):
            try:
                fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v for k, v in visual_augment.items()}
                self.augment: LipAugment | None = LipAugment(**fields)
            except TypeError as err:
                raise ConfigError(f"visual_augment: {err}") from None
        else:
            self.augment = LipAugment() if visual_augment else None
        self.root = Path(root)
        self.train_split, self.val_split = train_split, val_split
        self.cache, self.crops = cache, bool(crops)
        self.segment_frames, self.val_segment_frames = segment_frames, val_segment_frames
        self.batch_size, self.num_workers = int(batch_size), int(num_workers)
        self.snr_speech, self.snr_noise = tuple(snr_speech), tuple(snr_noise)
        self.p_speech, self.seed = p_speech, int(seed)
        self.train_set: LipFeatureDataset | None = None
        self.val_set: LipFeatureDataset | None = None

    def _dataset(self, split: str, segment_frames: int | None, seed: int, train: bool = False) -> LipFeatureDataset:
        return LipFeatureDataset(
            DynamicMixDataset(
                self.root,
                split,
                snr_speech=self.snr_speech,
                snr_noise=self.snr_noise,
                p_speech=self.p_speech,
                segment_frames=segment_frames,
                seed=seed,
                cache=self.cache,
                crops=self.crops,
                p_clean=self.p_clean if train else 0.0,
            ),
            augment=self.augment if train else None,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the datasets (metadata only; audio is read per item)."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset(self.train_split, self.segment_frames, self.seed, train=True)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._dataset(self.val_split, self.val_segment_frames, self.seed + 1)

    def _loader(self, ds: Dataset, batch_size: int, shuffle: bool) -> DataLoader:
        # no persistent workers: each epoch's workers must copy the dataset after set_epoch
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, num_workers=self.num_workers)

    def _train_loader(self) -> DataLoader:
        """Shuffled batches of ``batch_size`` windows (the last one may be smaller)."""
        if self.train_set is None:
            raise ConfigError("AvseDataModule: setup('fit') has not run")
        return self._loader(self.train_set, self.batch_size, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation draws, in order (batch size 1 for whole utterances)."""
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            raise ConfigError("AvseDataModule: setup('validate') gave no validation set")
        return self._loader(self.val_set, self.batch_size if self.val_segment_frames else 1, shuffle=False)


__all__ = ["AvseDataModule", "EpochDataModule", "LipFeatureDataset"]
