"""Frozen dataclasses holding every default; files and flags only override them."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from avse.errors import ConfigError

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class SynthConfig:
    """What ``avse synth`` makes: speakers, utterances and noises per split."""

    seed: int = 0
    # (target speakers, masker speakers) per split; all identities are distinct.
    train_speakers: tuple[int, int] = (12, 8)
    dev_speakers: tuple[int, int] = (3, 3)
    test_speakers: tuple[int, int] = (3, 3)
    utterances_per_speaker: tuple[int, int, int] = (8, 6, 6)  # train, dev, test
    noises_per_split: tuple[int, int, int] = (30, 10, 10)  # train, dev, test
    noise_seconds: float = 8.0
    grid_fraction: float = 0.5  # share of target sentences drawn from the GRID grammar
    masker_sentences: int = 2  # masker utterances chain this many sentences (longer than targets)
    noise_dirs: tuple[str, ...] = ()  # folders or files of real noise, cut into split-disjoint segments
    real_noise_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
    # Real voices: a folder made by `avse import-speech`. Its speakers are split disjointly over
    # train/dev/test (greedily by recorded seconds, real_split_fractions, those with aligned
    # recordings apart from the masker-only ones; or pinned by name); in every split real
    # recordings are added to the TTS ones until they make up real_fraction of the targets (the
    # transcribed, aligned recordings, with faces drawn from their aligned phones) and of the masker
    # utterances (any recording; several of one speaker chained to real_masker_seconds).
    real_speech: str = ""
    real_fraction: float = 0.5
    real_split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    real_masker_seconds: float = 8.0
    real_dev_speakers: tuple[str, ...] = ()  # real speakers put in dev whatever their size (the rest: greedily)
    real_test_speakers: tuple[str, ...] = ()  # real speakers put in test
    # H.264 quality per speaker, drawn from this range (compression varies like real uploads)
    video_crf: tuple[int, int] = (18, 30)
    video_preset: str = "veryfast"  # x264 speed preset: encoding dominates synthesis time

    def __post_init__(self) -> None:
        if not 0.0 <= self.real_fraction < 1.0:
            raise ConfigError(f"real_fraction must be in [0, 1), got {self.real_fraction}")
        if len(self.real_split_fractions) != 3 or min(self.real_split_fractions) < 0 or sum(self.real_split_fractions) <= 0:
            raise ConfigError(f"real_split_fractions must be three shares >= 0 (train, dev, test), got {self.real_split_fractions}")
        if not self.real_masker_seconds > 0:
            raise ConfigError(f"real_masker_seconds must be > 0, got {self.real_masker_seconds}")
        both = set(self.real_dev_speakers) & set(self.real_test_speakers)
        if both:
            raise ConfigError(f"real speakers pinned to both dev and test: {', '.join(sorted(both))}")

    def speakers(self, split: str) -> tuple[int, int]:
        """(target, masker) speaker counts of ``split``."""
        return getattr(self, f"{split}_speakers")

    def utterances(self, split: str) -> int:
        """Utterances per speaker in ``split``."""
        return self.utterances_per_speaker[SPLITS.index(split)]

    def noises(self, split: str) -> int:
        """Generated noise items in ``split``."""
        return self.noises_per_split[SPLITS.index(split)]

    @property
    def n_identities(self) -> int:
        """Total number of distinct speaker identities."""
        return sum(sum(self.speakers(s)) for s in SPLITS)


SYNTH_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    # The demo's corpus: 24 identities, small enough to make in well under a minute.
    "demo": {
        "train_speakers": (8, 4),
        "dev_speakers": (3, 3),
        "test_speakers": (3, 3),
        "utterances_per_speaker": (2, 3, 2),
        "noises_per_split": (5, 5, 5),
        "noise_seconds": 6.0,
    },
    # The corpus the shipped models are trained and measured on: many voices, so that
    # models generalise to speakers they never heard.
    "models": {
        "train_speakers": (48, 24),
        "dev_speakers": (4, 4),
        "test_speakers": (6, 6),
        "utterances_per_speaker": (12, 6, 8),
        "noises_per_split": (60, 12, 15),
    },
    # The smallest corpus that exercises everything; used by the tests.
    "tiny": {
        "train_speakers": (2, 2),
        "dev_speakers": (1, 1),
        "test_speakers": (1, 1),
        "utterances_per_speaker": (1, 2, 1),
        "noises_per_split": (2, 2, 2),
        "noise_seconds": 5.0,
    },
}


def override(cfg: Any, values: dict[str, Any]) -> Any:
    """Return a copy of the dataclass ``cfg`` with ``values`` replaced; unknown keys are refused."""
    names = {f.name for f in fields(cfg)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) for {type(cfg).__name__}: {', '.join(unknown)}")
    return replace(cfg, **values)


def synth_config(preset: str = "default", **values: Any) -> SynthConfig:
    """SynthConfig of a named preset ("default", "demo", "models", "tiny") with ``values`` on top."""
    if preset not in SYNTH_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(SYNTH_PRESETS)}")
    return override(SynthConfig(), {**SYNTH_PRESETS[preset], **values})
