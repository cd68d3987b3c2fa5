"""Which engines and voices are installed here, and distinct speaker identities drawn from them."""

from __future__ import annotations

import functools

import numpy as np

from avse.data.tts.errors import EngineMissingError, TtsError
from avse.data.tts.espeak import espeak_has_variant
from avse.data.tts.festival import festival_voices
from avse.data.tts.flite import flite_voices
from avse.data.tts.mbrola import mbrola_voices
from avse.data.tts.voices import ALL_ENGINES, VOICE_CATALOG, Voice, VoiceInfo
from avse.errors import ConfigError


@functools.lru_cache(maxsize=1)
def available_engines() -> tuple[str, ...]:
    """The engines that work on this machine, in ENGINES order (checked once per process)."""
    out = []
    try:
        if espeak_has_variant("m1"):
            out.append("espeak")
    except TtsError:
        pass
    if any(v.name in flite_voices() for v in VOICE_CATALOG if v.engine == "flite"):
        out.append("flite")
    if any(v.name in festival_voices() for v in VOICE_CATALOG if v.engine == "festival"):
        out.append("festival")
    return tuple(out)


def available_voices(engines: tuple[str, ...] | list[str] | None = None) -> list[VoiceInfo]:
    """The VOICE_CATALOG entries installed here (optionally only for ``engines``).

    ``engines`` naming "mbrola" adds the MBROLA voices installed in
    ``mbrola_dir()`` (one per recorded speaker, in espeak-ng's order); the
    default (None) is the installed ENGINES only.
    """
    engines = available_engines() if engines is None else tuple(engines)
    unknown = [e for e in engines if e not in ALL_ENGINES]
    if unknown:
        raise ConfigError(f"unknown TTS engine {unknown[0]!r}; expected some of {', '.join(ALL_ENGINES)}")
    out = []
    for info in VOICE_CATALOG:
        if info.engine not in engines or info.engine not in available_engines():
            continue
        if info.engine == "flite" and info.name not in flite_voices():
            continue
        if info.engine == "festival" and info.name not in festival_voices():
            continue
        if info.engine == "espeak" and info.variant is not None and not espeak_has_variant(info.variant):
            continue
        out.append(info)
    if "mbrola" in engines:
        out += [VoiceInfo("mbrola", name, None, sex, language, True) for name, language, sex in mbrola_voices()]
    return out


# Engine share of the speakers: half espeak-ng (24 timbres), a quarter each
# for flite (4 timbres) and festival (3 timbres).
_ENGINE_PATTERN = ("espeak", "flite", "espeak", "festival")


def _interleave_by_sex(infos: list[VoiceInfo], rng: np.random.Generator) -> list[VoiceInfo]:
    female = [infos[i] for i in rng.permutation(len(infos)) if infos[i].sex == "female"]
    male = [infos[i] for i in rng.permutation(len(infos)) if infos[i].sex == "male"]
    out: list[VoiceInfo] = []
    while female or male:
        for group in (female, male):
            if group:
                out.append(group.pop(0))
    return out


# The u-th speaker drawn on one timbre is centred on the u-th entry (semitones
# for voices with pitch control, else rate factors); past the list, anywhere
# between its extremes.
_PITCH_CENTERS = (0.0, 2.5, -2.5, 5.0, -5.0, 7.0, -7.0)
_RATE_CENTERS = (1.0, 1.12, 0.88, 1.24, 0.8)


def _band(use: int, centers: tuple[float, ...], rng: np.random.Generator) -> float:
    if use < len(centers):
        return centers[use]
    return float(rng.uniform(min(centers), max(centers)))


def speaker_voices(n: int, seed: int = 0, engines: tuple[str, ...] | list[str] | None = None) -> list[Voice]:
    """``n`` distinct speaker identities (Voice objects), deterministic for ``seed`` and the engines used.

    Speakers are spread over the engines (half espeak-ng, a quarter each flite
    and festival, among those available; with "mbrola" in ``engines``, every
    other speaker an MBROLA voice and the rest so shared among the others named), alternate female and male timbres
    within an engine, and get a fixed pitch shift and rate. A timbre reused for
    several speakers gets well separated pitches (or rates, for voices without
    pitch control).
    """
    if n < 0:
        raise ConfigError(f"number of speakers must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    infos = available_voices(engines)
    by_engine = {e: _interleave_by_sex([v for v in infos if v.engine == e], rng) for e in ALL_ENGINES}
    pattern = [e for e in _ENGINE_PATTERN if by_engine[e]]
    if engines is not None and "mbrola" in engines:
        if not by_engine["mbrola"]:
            raise EngineMissingError("no MBROLA voice is usable (run scripts/fetch_mbrola; espeak-ng drives them)")
        pattern = [x for e in pattern for x in ("mbrola", e)] or ["mbrola"]
    if not pattern:
        raise EngineMissingError("no TTS engine with a usable voice is installed (espeak-ng, flite or festival)")
    used: dict[tuple[str, str, str | None], int] = {}
    next_in_engine = {e: 0 for e in ALL_ENGINES}
    voices: list[Voice] = []
    ids: set[str] = set()
    for k in range(n):
        engine = pattern[k % len(pattern)]
        pool = by_engine[engine]
        info = pool[next_in_engine[engine] % len(pool)]
        next_in_engine[engine] += 1
        key = (info.engine, info.name, info.variant)
        use = used.get(key, 0)
        used[key] = use + 1
        for _attempt in range(1000):
            if info.pitch_control:
                pitch = _band(use, _PITCH_CENTERS, rng) + rng.uniform(-0.8, 0.8)
                rate = rng.uniform(0.9, 1.1)
            else:
                pitch = 0.0
                rate = _band(use, _RATE_CENTERS, rng) + rng.uniform(-0.03, 0.03)
            voice = info.voice(pitch=round(float(pitch), 2), rate=round(float(rate), 3))
            if voice.id not in ids:
                break
        ids.add(voice.id)
        voices.append(voice)
    return voices
