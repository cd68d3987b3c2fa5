"""Lightning data module: dynamically mixed training batches and fixed validation draws, with lip features."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from avse.data.datasets import (
    DynamicMixDataset,
    align_visual,
    check_speed_range,
    frames_for,
    speed_length,
    stretch_frames,
    target_lip_features,
)
from avse.data.metadata import speaker_patterns, target_speech_list_path
from avse.data.noise import NoiseAugment, SpeechAugment
from avse.data.scenes import check_snr_range
from avse.errors import ConfigError, MetadataError
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
        n_samples = int(self.base.targets[index]["nsamples"])
        feats = align_visual(feats, frames_for(n_samples))  # [F_full, 82], as the lips were aligned
        speed = float(item["info"].get("speed", 1.0))
        if speed != 1.0:  # the target was played at this speed, its lips stretched with it
            feats = stretch_frames(feats, speed, frames_for(speed_length(n_samples, speed)))
        start = int(item["info"]["start_frame"])
        n = item["lips"].shape[0]
        feats = align_visual(feats[start : start + n], n)  # [F, 82]
        return torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))


class EpochSampler(Sampler[int]):
    """A shuffled order of ``n`` items drawn from (``seed``, epoch) alone.

    The order does not depend on what drew random numbers before, so a run
    resumed at an epoch boundary sees the order an uninterrupted one sees.
    Lightning calls :meth:`set_epoch` at the start of every epoch.
    """

    def __init__(self, n: int, seed: int):
        self.n, self.seed, self.epoch = int(n), int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Shuffle for ``epoch`` from now on."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        gen = torch.Generator().manual_seed(item_seed(self.seed, f"order:{self.epoch}"))
        return iter(torch.randperm(self.n, generator=gen).tolist())


class EpochDataModule(pl.LightningDataModule):
    """A data module whose training set draws new mixtures every epoch (``train_set.set_epoch``).

    Subclasses set ``train_set`` / ``val_set`` in ``setup`` and say how a training
    loader is made (:meth:`_train_loader`). ``train_dataloader`` applies the
    trainer's current epoch first, so that fresh workers and resumed runs draw
    that epoch's mixtures.
    """

    train_set: Any = None
    train_sampler: EpochSampler | None = None

    def set_epoch(self, epoch: int) -> None:
        """Draw the training mixtures of ``epoch`` (validation stays on epoch 0), in that epoch's order."""
        if self.train_set is not None:
            self.train_set.set_epoch(epoch)
        if self.train_sampler is not None:
            self.train_sampler.set_epoch(epoch)

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


def _options(name: str, cls: Any, value: bool | dict[str, Any]) -> Any:
    """A recipe's augmentation option -> ``cls()`` for True, ``cls(**value)`` for a mapping of its fields (lists as
    tuples), None for False; ConfigError naming ``name`` for an unknown field."""
    if isinstance(value, dict):
        try:
            return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})
        except TypeError as err:
            raise ConfigError(f"{name}: {err}") from None
    return cls() if value else None


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
    defaults of ``avse.training.augment.LipAugment``, or a mapping of its fields);
    ``p_speed`` / ``speed``: speed perturbation of the training items' voices
    (see DynamicMixDataset). ``visual_stream`` (the model's, set by ``fit``):
    "light_asd" makes ``features`` the cache's Light-ASD embeddings [B, F, 128].
    ``noise_augment``: pass the training items' noises through a room and a
    microphone (True for the defaults of ``avse.data.noise.NoiseAugment``, or a
    mapping of its fields). ``speech_augment``: pass the training items' voices, the one to keep and a
    competing talker, each through a room and a microphone of its own, the reference with it (True for the
    defaults of ``avse.data.noise.SpeechAugment``, or a mapping of its fields). ``p_masker_target``: the share of training items whose
    voice to keep is a masker's (see DynamicMixDataset; models without a visual stream only).
    ``band_match``: two voices mixed in training are cut to the narrower one's band (see DynamicMixDataset).
    ``alone_only``: glob patterns of masker speakers heard only alone in training, ``never_alone`` of those
    never heard alone (see DynamicMixDataset).
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
        p_speed: float = 0.0,
        speed: Sequence[float] = (0.85, 1.15),
        visual_stream: str = "lip_features",
        noise_augment: bool | dict[str, Any] = False,
        p_masker_target: float = 0.0,
        band_match: bool = False,
        alone_only: Sequence[str] = (),
        never_alone: Sequence[str] = (),
        speech_augment: bool | dict[str, Any] = False,
    ):
        super().__init__()
        self.root = Path(root)
        if not self.root.is_dir():
            raise ConfigError(f"data.root: {self.root} is not a folder" if self.root.exists() else f"data.root: no such folder {self.root}")
        if not target_speech_list_path(self.root).is_file():
            raise MetadataError(target_speech_list_path(self.root), "missing: data.root is not a corpus (make one with avse synth)")
        if cache is not None and not Path(cache).is_dir():
            raise ConfigError(f"data.cache: no such folder {cache} (make it with avse prepare)")
        for name, value in (("segment_frames", segment_frames), ("val_segment_frames", val_segment_frames)):
            if value is not None and value < 1:
                raise ConfigError(f"data.{name} must be >= 1 (or null for whole utterances), got {value!r}")
        if batch_size < 1 or num_workers < 0:
            raise ConfigError(f"data.batch_size must be >= 1 and data.num_workers >= 0, got {batch_size!r} and {num_workers!r}")
        for name, share in (("p_speech", p_speech), ("p_clean", p_clean), ("p_speed", p_speed), ("p_masker_target", p_masker_target)):
            if not 0.0 <= share <= 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1], got {share!r}")
        check_snr_range("data.snr_speech", snr_speech)
        check_snr_range("data.snr_noise", snr_noise)
        self.p_clean, self.p_masker_target = float(p_clean), float(p_masker_target)
        if not isinstance(band_match, bool):
            raise ConfigError(f"data.band_match must be true or false, got {band_match!r}")
        self.band_match = band_match
        self.alone_only = speaker_patterns("data.alone_only", alone_only)
        self.never_alone = speaker_patterns("data.never_alone", never_alone)
        self.p_speed, self.speed = float(p_speed), check_speed_range("data.speed", speed)
        self.augment: LipAugment | None = _options("visual_augment", LipAugment, visual_augment)
        self.noise_augment: NoiseAugment | None = _options("noise_augment", NoiseAugment, noise_augment)
        self.speech_augment: SpeechAugment | None = _options("speech_augment", SpeechAugment, speech_augment)
        self.train_split, self.val_split = train_split, val_split
        if visual_stream == "light_asd" and cache is None:
            raise ConfigError("a model on Light-ASD embeddings trains from a cache that holds them: set data.cache "
                              "(avse prepare CORPUS CACHE --light-asd WEIGHTS)")
        self.cache, self.crops, self.visual_stream = cache, bool(crops), visual_stream
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
                p_speed=self.p_speed if train else 0.0,
                speed=self.speed,
                visual_stream=self.visual_stream,
                noise_augment=self.noise_augment if train else None,
                p_masker_target=self.p_masker_target if train else 0.0,
                band_match=self.band_match if train else False,
                alone_only=self.alone_only if train else (),
                never_alone=self.never_alone if train else (),
                speech_augment=self.speech_augment if train else None,
            ),
            augment=self.augment if train else None,
        )

    def setup(self, stage: str | None = None) -> None:
        """Open the datasets (metadata only; audio is read per item)."""
        if stage in (None, "fit") and self.train_set is None:
            self.train_set = self._dataset(self.train_split, self.segment_frames, self.seed, train=True)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = self._dataset(self.val_split, self.val_segment_frames, self.seed + 1)

    def _loader(self, ds: Dataset, batch_size: int, sampler: Sampler[int] | None = None) -> DataLoader:
        # no persistent workers: each epoch's workers must copy the dataset after set_epoch
        return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=self.num_workers)

    def _train_loader(self) -> DataLoader:
        """Batches of ``batch_size`` windows in the epoch's shuffled order (the last one may be smaller)."""
        if self.train_set is None:
            raise ConfigError("AvseDataModule: setup('fit') has not run")
        self.train_sampler = EpochSampler(len(self.train_set), self.seed)
        trainer = getattr(self, "trainer", None)
        if trainer is not None:
            self.train_sampler.set_epoch(trainer.current_epoch)
        return self._loader(self.train_set, self.batch_size, self.train_sampler)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation draws, in order (batch size 1 for whole utterances)."""
        if self.val_set is None:
            self.setup("validate")
        if self.val_set is None:
            raise ConfigError("AvseDataModule: setup('validate') gave no validation set")
        return self._loader(self.val_set, self.batch_size if self.val_segment_frames else 1)


__all__ = ["AvseDataModule", "EpochDataModule", "EpochSampler", "LipFeatureDataset"]
