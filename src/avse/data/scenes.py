"""Build AVSE scene lists (target + interferer + offset + SNR) and write them to scenes.{split}.json.

Building follows the COG-MHEAR AVSE challenge (avse1 ``build_scenes``):
targets of the split are shuffled once and used in turn (each target once
before any repeats), each scene gets an interferer of type speech (with
probability ``p_speech``) or noise, an offset drawn uniformly from every start
that leaves enough samples, and an SNR drawn uniformly from the range of its
type, rounded to 4 decimals like the challenge's files. Rendering the scenes
is avse.data.render; the mixing math is avse.data.mixing.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from avse.data.metadata import (
    INTERFERER_TYPES,
    NoiseEntry,
    Scene,
    SceneInterferer,
    SpeechEntry,
    load_noise_list,
    load_speech_list,
    masker_noise_list_path,
    masker_speech_list_path,
    metadata_dir,
    scenes_path,
    target_speech_list_path,
)
from avse.errors import ConfigError, InterfererTooShortError, MetadataError
from avse.utils.fs import ensure_dir, write_json

SNR_DECIMALS = 4


def check_snr_range(name: str, rng_: Sequence[float]) -> tuple[float, float]:
    """Validate an SNR range (low, high) in dB -> (low, high); ConfigError when not finite or upside down."""
    try:
        lo, hi = (float(v) for v in rng_)
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: expected (low, high) in dB, got {rng_!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"{name}: SNR limits must be finite, got ({lo}, {hi})")
    if lo > hi:
        raise ConfigError(f"{name}: SNR range upside down ({lo} > {hi}); give (low, high)")
    return lo, hi


def check_int(name: str, value: Any, low: int) -> int:
    """``value`` as an int when it is an integer (not a bool) >= ``low``, else ConfigError naming the option ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return int(value)


def build_scenes(
    root: str | Path,
    dataset: str,
    n_scenes: int | None = None,
    seed: int = 0,
    snr_speech: Sequence[float] = (-15.0, 5.0),
    snr_noise: Sequence[float] = (-10.0, 10.0),
    p_speech: float = 0.5,
    n_interferers: int = 1,
    pre_samples: int = 0,
    post_samples: int = 0,
    start_index: int = 1,
) -> list[Scene]:
    """Draw ``n_scenes`` AVSE scenes for split ``dataset`` from ROOT/metadata.

    Targets come from target_speech_list.json (entries of this split, shuffled,
    used in turn; ``n_scenes=None`` gives one scene per target). Scene names are
    ``f"S{start_index + k:05d}"`` for k = 0, 1, ...; the challenge numbers train
    from 1 and dev after train (pass ``start_index``) so that names are unique
    across splits. Each interferer is speech (masker_speech_list.json, never by
    the target's speaker) with probability ``p_speech``, else noise
    (masker_noise_list.json; a class is drawn first, then a file of it, so every
    class is equally likely), at least ``duration = nsamples + pre_samples +
    post_samples`` samples long; a type with no such file falls back to the
    other type (when its probability is not 0). ``offset`` is uniform over
    ``[0, nsamples_interferer - duration]``. ``SNR`` is uniform in
    ``snr_speech`` or ``snr_noise`` (by the type of the first interferer),
    rounded to 4 decimals. With ``n_interferers > 1`` the scene also carries
    ``"interferers"`` (all of them; ``"interferer"`` is the first), distinct files.

    The same arguments and lists give the same scenes. Raises ConfigError for
    bad options (e.g. an upside-down SNR range), MetadataError for bad lists or
    a split without targets, and InterfererTooShortError (naming the target)
    when no interferer is long enough.
    """
    lo_speech, hi_speech = check_snr_range("snr_speech", snr_speech)
    lo_noise, hi_noise = check_snr_range("snr_noise", snr_noise)
    if isinstance(p_speech, bool) or not isinstance(p_speech, (int, float)) or not 0.0 <= p_speech <= 1.0:
        raise ConfigError(f"p_speech must be a probability in [0, 1], got {p_speech!r}")
    n_interferers = check_int("n_interferers", n_interferers, 1)
    pre_samples = check_int("pre_samples", pre_samples, 0)
    post_samples = check_int("post_samples", post_samples, 0)
    start_index = check_int("start_index", start_index, 0)
    if n_scenes is not None:
        n_scenes = check_int("n_scenes", n_scenes, 1)
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"dataset must be a split name such as 'train', got {dataset!r}")

    tpath = target_speech_list_path(root)
    targets = [t for t in load_speech_list(tpath) if t["dataset"] == dataset]
    if not targets:
        raise MetadataError(tpath, f"no target of dataset '{dataset}'")
    speech: list[SpeechEntry] = []
    noise: list[NoiseEntry] = []
    if p_speech > 0:
        speech = [m for m in load_speech_list(masker_speech_list_path(root)) if m["dataset"] == dataset]
    if p_speech < 1:
        noise = [m for m in load_noise_list(masker_noise_list_path(root)) if m["dataset"] == dataset]

    pools = {"speech": InterfererPool("speech", speech), "noise": InterfererPool("noise", noise)}
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(targets))
    if n_scenes is None:
        n_scenes = len(targets)

    scenes: list[Scene] = []
    for k in range(n_scenes):
        target = targets[int(order[k % len(targets)])]
        nsamples = int(target["nsamples"])
        duration = nsamples + pre_samples + post_samples
        chosen: list[dict[str, Any]] = []
        used: set[tuple[str, str]] = set()
        for _ in range(n_interferers):
            want = "speech" if rng.random() < p_speech else "noise"
            other = "noise" if want == "speech" else "speech"
            allowed = [want] + ([other] if (p_speech < 1 if other == "noise" else p_speech > 0) else [])
            item = None
            for kind in allowed:
                item = pools[kind].draw(rng, duration, target["speaker"], used)
                if item is not None:
                    break
            if item is None:
                kinds = " or ".join(allowed)
                raise InterfererTooShortError(
                    f"target '{target['wavfile']}' needs an interferer of at least {duration} samples: "
                    f"no {kinds} interferer of dataset '{dataset}' is that long"
                    + (" (counting speech by other speakers only)" if "speech" in allowed else "")
                    + (" among those not already in the scene" if used else "")
                )
            chosen.append(item)
            used.add((item["type"], item["name"]))
        lo, hi = (lo_speech, hi_speech) if chosen[0]["type"] == "speech" else (lo_noise, hi_noise)
        snr = round(float(rng.uniform(lo, hi)), SNR_DECIMALS)
        scene: Scene = {
            "scene": f"S{start_index + k:05d}",
            "dataset": dataset,
            "target": {
                "name": target["wavfile"],
                "speaker": target["speaker"],
                "time_start": pre_samples,
                "time_end": pre_samples + nsamples,
            },
            "duration": duration,
            # cast: an interferer also carries its speaker or class, a key SceneInterferer cannot name
            "interferer": cast(SceneInterferer, dict(chosen[0])),
            "SNR": snr,
            "pre_samples": pre_samples,
            "post_samples": post_samples,
        }
        if n_interferers > 1:
            scene["interferers"] = [cast(SceneInterferer, dict(c)) for c in chosen]
        scenes.append(scene)
    return scenes


class InterfererPool:
    """Maskers of one type sorted by length, for draws among those at least ``duration`` long.

    A draw is uniform over the eligible files (speech: not by the target's
    speaker; noise: a class first, uniform over the classes that have an
    eligible file, then a file of that class) and costs O(log n) plus a few
    rejected draws, so that tens of thousands of scenes build in seconds.
    """

    def __init__(self, kind: str, entries: Sequence[Mapping[str, Any]]):
        self.kind = kind
        self.name_key = "wavfile" if kind == "speech" else "ID"
        self.group_key = "speaker" if kind == "speech" else "class"
        order = sorted(range(len(entries)), key=lambda i: (int(entries[i]["nsamples"]), i))
        self.entries = [entries[i] for i in order]
        self.lens = [int(e["nsamples"]) for e in self.entries]
        self.groups: dict[Any, list[int]] = {}  # group -> indices into self.entries (ascending length)
        for j, e in enumerate(self.entries):
            self.groups.setdefault(e[self.group_key], []).append(j)
        self.group_names = sorted(self.groups, key=str)
        self.group_lens = {g: [self.lens[j] for j in idx] for g, idx in self.groups.items()}
        self.by_name = {e[self.name_key]: e for e in self.entries}

    def _used_eligible(self, used: set[tuple[str, str]], duration: int, keep) -> int:
        """How many of the files in ``used`` are of this type, long enough and pass ``keep``."""
        n = 0
        for kind, name in used:
            e = self.by_name.get(name) if kind == self.kind else None
            if e is not None and int(e["nsamples"]) >= duration and keep(e):
                n += 1
        return n

    def _eligible_in_group(self, g: Any, duration: int, used: set[tuple[str, str]]) -> int:
        lens = self.group_lens[g]
        n = len(lens) - bisect.bisect_left(lens, duration)
        if used and n:
            n -= self._used_eligible(used, duration, lambda e: e[self.group_key] == g)
        return n

    def draw(
        self, rng: np.random.Generator, duration: int, speaker: Any, used: set[tuple[str, str]]
    ) -> dict[str, Any] | None:
        """One eligible masker as a scene interferer {type, name, offset, speaker|class}, or None."""
        if self.kind == "speech":
            first = bisect.bisect_left(self.lens, duration)
            total = len(self.lens) - first
            if speaker in self.groups:
                total -= len(self.groups[speaker]) - bisect.bisect_left(self.group_lens[speaker], duration)
            if used:
                total -= self._used_eligible(used, duration, lambda e: e["speaker"] != speaker)
            if total <= 0:
                return None
            while True:  # rejection: uniform over the eligible files
                m = self.entries[int(rng.integers(first, len(self.entries)))]
                if m["speaker"] != speaker and (self.kind, m[self.name_key]) not in used:
                    break
        else:
            classes = [g for g in self.group_names if self._eligible_in_group(g, duration, used) > 0]
            if not classes:
                return None
            g = classes[int(rng.integers(len(classes)))]
            idx = self.groups[g]
            first = bisect.bisect_left(self.group_lens[g], duration)
            while True:
                m = self.entries[idx[int(rng.integers(first, len(idx)))]]
                if (self.kind, m[self.name_key]) not in used:
                    break
        offset = int(rng.integers(0, int(m["nsamples"]) - duration + 1))
        return {"type": self.kind, "name": m[self.name_key], "offset": offset, self.group_key: m[self.group_key]}


def write_scenes(root: str | Path, dataset: str, scenes: list[Scene]) -> Path:
    """Write ``scenes`` to ROOT/metadata/scenes.{dataset}.json atomically; return the path.

    The same scenes give a byte-identical file (indented JSON, fields in order).
    """
    if not scenes:
        raise ConfigError(f"no scenes to write for dataset '{dataset}'")
    ensure_dir(metadata_dir(root))
    path = scenes_path(root, dataset)
    write_json(path, scenes)
    return path


__all__ = [
    "INTERFERER_TYPES",
    "SNR_DECIMALS",
    "InterfererPool",
    "build_scenes",
    "check_int",
    "check_snr_range",
    "write_scenes",
]
