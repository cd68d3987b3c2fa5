"""Frozen dataclasses holding every default; files and flags only override them."""

from __future__ import annotations

import collections.abc
import math
import numbers
import types
import typing
from dataclasses import dataclass, fields, is_dataclass, replace
from pathlib import PurePath
from typing import Any

from avse.errors import ConfigError

SPLITS = ("train", "dev", "test")
#: the default attenuation limit of enhancement (dB): the input is mixed back in this far below the model's output
ATTEN_LIM_DB = 20.0
#: the default strength of the post-filter of enhancement (``avse.inference.postfilter``; None: off)
POSTFILTER: float | None = None


#: how many shifted runs (``avse.inference.run_shifted``) ``avse enhance`` and ``avse separate`` (``avse.api.Enhancer``,
#: ``Separator``) average by default. Measured on the real dev set against one run (README, "Shifts")
DEFAULT_SHIFTS = 2

#: how ``avse.api.Separator`` (and ``avse separate --assign``) gives a video's faces their voices
ASSIGN_MODES = ("auto", "sync", "av")


def check_atten_lim(atten_lim_db: float | None) -> float | None:
    """An attenuation limit in dB -> the limit as a float, or None for none (None or 0). ConfigError unless it is a
    finite number >= 0."""
    if atten_lim_db is None:
        return None
    lim = float(atten_lim_db)
    if not math.isfinite(lim) or lim < 0:
        raise ConfigError(f"attenuation limit must be a positive number of dB (or 0 for none), got {atten_lim_db}")
    return lim or None


def check_shifts(shifts: int) -> int:
    """``shifts`` as a whole number from 1 (the model run once) up, or a ConfigError."""
    if isinstance(shifts, bool) or not isinstance(shifts, numbers.Integral) or shifts < 1:
        raise ConfigError(f"shifts must be a whole number from 1 up, got {shifts!r}")
    return int(shifts)


def check_postfilter(strength: float | None) -> float | None:
    """A post-filter strength -> the strength as a float, or None for none (None or 0). ConfigError unless it is a
    finite number >= 0."""
    if strength is None:
        return None
    value = float(strength)
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"the post-filter's strength must be a finite number >= 0 (0: none), got {strength}")
    return value or None


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
    # train/dev/test (greedily by recorded seconds, real_split_fractions, those with phones
    # apart from the masker-only ones; or pinned by name); in every split real
    # recordings are added to the TTS ones until they make up real_fraction of the targets (the
    # recordings with aligned or recognised phones, with faces drawn from them) and of the masker
    # utterances (any recording; several of one speaker chained to real_masker_seconds).
    real_speech: str = ""
    real_fraction: float = 0.5
    real_split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    real_masker_seconds: float = 8.0
    # Real maskers also chain the recordings that are targets of the same split, so that a speaker
    # with aligned lines is a masker as often as any other (False: only the recordings left over).
    real_masker_reuse: bool = False
    # Real targets drawn speaker by speaker in turn (a random recording of each; a speaker with none left drops out),
    # so that every voice is a target about as often as any other (False: recordings drawn at random, so that the few
    # speakers with most recordings make most targets). Small speakers may then give all their recordings to targets
    # and none to maskers, unless real_masker_reuse.
    real_targets_by_speaker: bool = False
    real_dev_speakers: tuple[str, ...] = ()  # real speakers put in dev whatever their size (the rest: greedily)
    real_test_speakers: tuple[str, ...] = ()  # real speakers put in test
    # TTS engines of the corpus's voices: () = espeak-ng, flite and festival, those installed; naming
    # "mbrola" makes every other speaker an MBROLA voice (recorded speakers' diphones, scripts/fetch_mbrola,
    # found in $AVSE_MBROLA or ./data/mbrola), the rest shared as usual among the other engines named.
    engines: tuple[str, ...] = ()
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


def _describe(hint: Any) -> str:
    """A type annotation in words: ``int | None`` -> "an integer or null"."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(h) for h in typing.get_args(hint))
    if origin in (tuple, list, collections.abc.Sequence):
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        return f"a list of {_describe(args[0]).removeprefix('an ').removeprefix('a ')}s" if args else "a list"
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false", type(None): "null",
             dict: "a mapping", PurePath: "a path"}
    return names.get(origin or hint, getattr(hint, "__name__", str(hint)))


def _conform(value: Any, hint: Any) -> tuple[bool, Any]:
    """(whether ``value`` fits the annotation ``hint``, the value to use): an integral float fits an int as that int."""
    if hint is Any or isinstance(hint, (str, typing.TypeVar)):
        return True, value
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            ok, out = _conform(value, option)
            if ok:
                return True, out
        return False, value
    if origin in (tuple, list, collections.abc.Sequence):
        if not isinstance(value, (list, tuple)):
            return False, value
        args = [a for a in typing.get_args(hint) if a is not Ellipsis]
        if origin is tuple and len(args) == len(typing.get_args(hint)) and len(value) != len(args):
            return False, value  # a fixed-length tuple
        out = []
        for i, item in enumerate(value):
            ok, conv = _conform(item, args[min(i, len(args) - 1)]) if args else (True, item)
            if not ok:
                return False, value
            out.append(conv)
        return True, type(value)(out)
    if origin in (dict, collections.abc.Mapping) or hint in (dict, collections.abc.Mapping):
        return isinstance(value, dict), value
    if hint is type(None) or hint is None:
        return value is None, value
    if hint is bool:
        return isinstance(value, bool), value
    if hint is int:
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return True, int(value)
        return isinstance(value, int) and not isinstance(value, bool), value
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool), value
    if hint is str:
        return isinstance(value, str), value
    if isinstance(hint, type) and issubclass(hint, PurePath):
        return isinstance(value, (str, PurePath)), value
    return True, value  # an annotation this check does not know: left to the code that uses the value


def check_types(what: str, values: dict[str, Any], target: Any) -> dict[str, Any]:
    """``values`` checked against the annotations of ``target`` (a dataclass, or a callable's parameters).

    ConfigError naming ``what``, the option, the expected type and the value
    when one does not fit (``batch_size: eight``); returns the values with
    integral floats given for integers made integers (``max_steps=2e4``).
    Keys without an annotation pass unchecked.
    """
    fn = target if is_dataclass(target) else getattr(target, "__init__", target)
    try:
        hints = typing.get_type_hints(fn)
    except (NameError, TypeError):  # an annotation that does not resolve here: nothing to check against
        return dict(values)
    out = {}
    for key, value in values.items():
        if key not in hints:
            out[key] = value
            continue
        ok, out[key] = _conform(value, hints[key])
        if not ok:
            raise ConfigError(f"{what}{key}: expected {_describe(hints[key])}, got {value!r}")
    return out


def override(cfg: Any, values: dict[str, Any]) -> Any:
    """Return a copy of the dataclass ``cfg`` with ``values`` replaced; unknown keys and values of the wrong type are refused."""
    names = {f.name for f in fields(cfg)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"unknown option(s) for {type(cfg).__name__}: {', '.join(unknown)}")
    return replace(cfg, **check_types("", values, type(cfg)))


def synth_config(preset: str = "default", **values: Any) -> SynthConfig:
    """SynthConfig of a named preset ("default", "demo", "models", "tiny") with ``values`` on top."""
    if preset not in SYNTH_PRESETS:
        raise ConfigError(f"unknown preset {preset!r}; expected one of {', '.join(SYNTH_PRESETS)}")
    return override(SynthConfig(), {**SYNTH_PRESETS[preset], **values})
