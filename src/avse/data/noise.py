"""Noise for the corpus and for training: generators (coloured, babble, hum, music-like, bursts), real files, and the
room and microphone augmentation of noise and voices in dynamic mixing."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avse import SAMPLE_RATE
from avse.audio.io import load_audio

NOISE_CLASSES = ("coloured", "babble", "hum", "music", "bursts")


def _normalize(x: np.ndarray, peak: float = 0.8) -> np.ndarray:
    m = float(np.max(np.abs(x)))
    return (x * (peak / m)).astype(np.float32) if m > 0 else x.astype(np.float32)


def coloured_noise(n: int, rng: np.random.Generator, exponent: float | None = None) -> np.ndarray:
    """Noise with a 1/f^exponent power spectrum -> float32 [n].

    exponent 0 is white, 1 pink, 2 brown, -1 blue; drawn from [-1, 2] when None.
    """
    if exponent is None:
        exponent = float(rng.uniform(-1.0, 2.0))
    spec = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    f[0] = f[1] if n > 1 else 1.0
    spec *= f ** (-exponent / 2.0)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return _normalize(x)


def babble(n: int, rng: np.random.Generator, voices: list[np.ndarray], n_talkers: int | None = None) -> np.ndarray:
    """Overlapping talkers: ``n_talkers`` voices ([T_i] each) looped at random offsets -> [n]."""
    if not voices:
        raise ValueError("babble needs at least one voice")
    if n_talkers is None:
        n_talkers = int(rng.integers(4, 9))
    out = np.zeros(n, dtype=np.float64)
    for _ in range(n_talkers):
        v = voices[int(rng.integers(len(voices)))].astype(np.float64)
        v = v / (np.sqrt(np.mean(v**2)) + 1e-9)
        reps = int(np.ceil((n + len(v)) / len(v))) + 1
        looped = np.tile(v, reps)
        start = int(rng.integers(len(v)))
        out += looped[start : start + n] * rng.uniform(0.5, 1.0)
    return _normalize(out)


def hum(n: int, rng: np.random.Generator) -> np.ndarray:
    """Mains hum (50 or 60 Hz) with odd-heavy harmonics, slow wobble and a little hiss -> [n]."""
    t = np.arange(n) / SAMPLE_RATE
    f0 = float(rng.choice([50.0, 60.0])) * rng.uniform(0.995, 1.005)
    x = np.zeros(n)
    for k in range(1, 12):
        amp = rng.uniform(0.2, 1.0) / k ** (0.7 if k % 2 else 1.3)
        x += amp * np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 2 * np.pi))
    x *= 1.0 + 0.2 * np.sin(2 * np.pi * rng.uniform(0.1, 0.5) * t)
    x += 0.02 * rng.standard_normal(n)
    return _normalize(x)


def music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Tonal, music-like signal: notes of a random scale with harmonics and envelopes, plus chords -> [n]."""
    t_note = rng.uniform(0.12, 0.4)
    root = 110.0 * 2 ** (rng.integers(0, 12) / 12)
    scale = np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16])
    out = np.zeros(n)
    note_len = int(t_note * SAMPLE_RATE)
    pos = 0
    env = np.exp(-np.arange(note_len * 2) / (note_len * rng.uniform(0.3, 1.0)))
    env[: min(80, len(env))] *= np.linspace(0, 1, min(80, len(env)))
    tt = np.arange(note_len * 2) / SAMPLE_RATE
    while pos < n:
        voices = [int(rng.choice(scale))] if rng.random() < 0.7 else list(rng.choice(scale, size=3, replace=False))
        seg = np.zeros(note_len * 2)
        for semis in voices:
            f = root * 2 ** (semis / 12) * (2 if rng.random() < 0.3 else 1)
            for h in range(1, 6):
                seg += np.sin(2 * np.pi * f * h * tt) / h**1.5
        seg *= env
        end = min(n, pos + len(seg))
        out[pos:end] += seg[: end - pos]
        pos += note_len
    return _normalize(out)


def bursts(n: int, rng: np.random.Generator, rate_hz: float | None = None) -> np.ndarray:
    """Transient bursts (knocks, clicks, clatter): decaying filtered noise at random times -> [n]."""
    if rate_hz is None:
        rate_hz = rng.uniform(1.0, 4.0)
    out = 0.003 * rng.standard_normal(n)
    count = max(1, rng.poisson(rate_hz * n / SAMPLE_RATE))
    for _ in range(count):
        length = int(rng.uniform(0.01, 0.25) * SAMPLE_RATE)
        start = int(rng.integers(0, max(1, n - length)))
        burst = rng.standard_normal(length)
        if rng.random() < 0.5:  # low, knock-like: smooth the noise
            k = int(rng.integers(4, 40))
            burst = np.convolve(burst, np.ones(k) / k, mode="same")
        burst *= np.exp(-np.arange(length) / (length * rng.uniform(0.05, 0.3))) * rng.uniform(0.2, 1.0)
        out[start : start + length] += burst[: n - start]
    return _normalize(out)


def generate_noise(kind: str, n: int, rng: np.random.Generator, voices: list[np.ndarray] | None = None) -> np.ndarray:
    """Generate ``n`` samples of noise class ``kind`` (one of NOISE_CLASSES) -> float32 [n]."""
    if kind == "coloured":
        return coloured_noise(n, rng)
    if kind == "babble":
        return babble(n, rng, voices or [])
    if kind == "hum":
        return hum(n, rng)
    if kind == "music":
        return music(n, rng)
    if kind == "bursts":
        return bursts(n, rng)
    raise ValueError(f"unknown noise class {kind!r}; expected one of {NOISE_CLASSES}")


@dataclass(frozen=True)
class NoiseAugment:
    """How the noise of a training mixture is changed (each drawn per item) before it is mixed at its SNR.

    Generated and game-recorded noises are dry, close and band-limited; the noise of a real recording
    reaches the microphone through a room, from several sources at once, through a microphone and
    codec with their own response. So:

    - ``p_layer``: probability of adding a second noise of the split under the first, ``layer_db``
      (range) below it: a scene is rarely one source;
    - ``p_reverb``: probability of convolving the noise with a synthetic room response
      (:func:`synthetic_rir`, RT60 drawn in ``rt60``) mixed with its dry self at a
      direct-to-reverberant ratio drawn in ``drr_db``;
    - ``p_eq``: probability of a smooth random response (:func:`random_eq`), up to ``eq_db`` either way;
    - ``p_impacts``: probability of adding struck objects (:func:`impacts`: dishes, cutlery, doors,
      keys), ``impacts_db`` (range) against the noise, before the room. Off by default;
    - ``p_crowd``: probability of adding a room full of talkers (:func:`crowd`: a café, a canteen, a
      party; ``crowd_talkers`` voices of the split's masker speech, never the target's speaker),
      ``crowd_db`` (range) against the noise, before the room. Off by default.
    """

    p_layer: float = 0.5
    layer_db: tuple[float, float] = (-10.0, 0.0)
    p_reverb: float = 0.6
    rt60: tuple[float, float] = (0.15, 1.0)
    drr_db: tuple[float, float] = (-6.0, 6.0)
    p_eq: float = 0.6
    eq_db: float = 10.0
    p_impacts: float = 0.0
    impacts_db: tuple[float, float] = (-10.0, 5.0)
    p_crowd: float = 0.0
    crowd_db: tuple[float, float] = (-5.0, 10.0)
    crowd_talkers: tuple[int, int] = (6, 24)

    def __post_init__(self) -> None:
        from avse.errors import ConfigError

        _check_augment(self, "noise_augment", ("p_layer", "p_reverb", "p_eq", "p_impacts", "p_crowd"),
                       ("layer_db", "rt60", "drr_db", "impacts_db", "crowd_db", "crowd_talkers"))
        if not 1 <= self.crowd_talkers[0] or any(int(k) != k for k in self.crowd_talkers):
            raise ConfigError(f"noise_augment.crowd_talkers must be whole numbers from 1 up, got {self.crowd_talkers!r}")


def _check_augment(cfg: NoiseAugment | SpeechAugment, what: str, shares: tuple[str, ...], ranges: tuple[str, ...]) -> None:
    """ConfigError unless ``cfg``'s ``shares`` are in [0, 1], its ``ranges`` are [low, high], its ``rt60`` starts
    at 0.05 s or more and its ``eq_db`` is >= 0 (``what``: the name in the message)."""
    from avse.errors import ConfigError

    for name in shares:
        if not 0.0 <= getattr(cfg, name) <= 1.0:
            raise ConfigError(f"{what}.{name} must be in [0, 1], got {getattr(cfg, name)!r}")
    for name in ranges:
        lo, hi = getattr(cfg, name)
        if not lo <= hi:
            raise ConfigError(f"{what}.{name} must be a range [low, high], got {getattr(cfg, name)!r}")
    if not 0.05 <= cfg.rt60[0]:
        raise ConfigError(f"{what}.rt60 must start at 0.05 s or more, got {cfg.rt60!r}")
    if not 0.0 <= cfg.eq_db:
        raise ConfigError(f"{what}.eq_db must be >= 0, got {cfg.eq_db!r}")


@dataclass(frozen=True)
class SpeechAugment:
    """How each voice of a training mixture is changed (each voice its own draw) before it is mixed, the
    reference to learn changed with it.

    The recorded and synthesised voices of the corpus are dry and close; a real recording's voice reaches the
    microphone through a room and a microphone of its own, and a model must keep it as it came. So a voice
    (the voice to keep, a talker alone included, and a competing talker) is:

    - with probability ``p_reverb`` convolved with a synthetic room response (:func:`synthetic_rir`, RT60
      drawn in ``rt60``) and mixed with its dry self at a direct-to-reverberant ratio drawn in ``drr_db``
      (a talker near the microphone: mostly above 0 dB);
    - with probability ``p_eq`` given a smooth random response (:func:`random_eq`), up to ``eq_db`` either way.
    """

    p_reverb: float = 0.5
    rt60: tuple[float, float] = (0.15, 0.8)
    drr_db: tuple[float, float] = (0.0, 15.0)
    p_eq: float = 0.5
    eq_db: float = 6.0

    def __post_init__(self) -> None:
        _check_augment(self, "speech_augment", ("p_reverb", "p_eq"), ("rt60", "drr_db"))


def augment_speech(voice: np.ndarray, rng: np.random.Generator, cfg: SpeechAugment) -> np.ndarray:
    """A training voice [T] -> the same voice through a room and a microphone (:class:`SpeechAugment`), float64 [T]
    at the input's RMS. Every draw is made whether or not it is used, so the result depends only on ``rng``'s
    state and ``cfg``; a voice that neither draw changes comes back as it went in."""
    x = np.asarray(voice, dtype=np.float64)
    u = rng.random(2)
    rt60, drr = rng.uniform(*cfg.rt60), rng.uniform(*cfg.drr_db)
    rir_seed, eq_seed = int(rng.integers(1 << 31)), int(rng.integers(1 << 31))
    changed = False
    rms = np.sqrt(np.mean(x**2)) if len(x) else 0.0
    if u[0] < cfg.p_reverb and rms > 0:
        x, changed = in_room(x, synthetic_rir(rt60, np.random.default_rng(rir_seed)), drr), True
    if u[1] < cfg.p_eq and rms > 0:
        x, changed = random_eq(x, np.random.default_rng(eq_seed), cfg.eq_db), True
    if changed:
        x = x * (rms / max(float(np.sqrt(np.mean(x**2))), 1e-12))
    return x


def impacts(n: int, rng: np.random.Generator, rate_hz: float | None = None) -> np.ndarray:
    """Struck hard objects (dishes, cutlery, glass, doors, keys) at random times -> float32 [n], peak 0.8.

    Events come at ``rate_hz`` on average (Poisson; drawn in 0.5-6 Hz when None), each a few
    decaying resonances (modal synthesis: 2-8 modes, frequencies log-uniform in 300-7500 Hz, decay
    times 5-400 ms) struck by a click of 0.5-3 ms, at levels spread over 20 dB.
    """
    rate = float(rng.uniform(0.5, 6.0)) if rate_hz is None else float(rate_hz)
    out = np.zeros(n, dtype=np.float64)
    k = int(rng.poisson(rate * n / SAMPLE_RATE))
    for start in np.sort(rng.integers(0, max(1, n), k)):
        length = min(int(0.6 * SAMPLE_RATE), n - int(start))
        if length <= 0:
            continue
        t = np.arange(length) / SAMPLE_RATE
        ev = np.zeros(length)
        for _ in range(int(rng.integers(2, 9))):
            f = np.exp(rng.uniform(np.log(300.0), np.log(7500.0)))
            tau = np.exp(rng.uniform(np.log(0.005), np.log(0.4))) / 6.908  # -60 dB after the drawn time
            ev += rng.uniform(0.2, 1.0) * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * np.exp(-t / tau)
        click = min(length, int(rng.uniform(0.0005, 0.003) * SAMPLE_RATE))  # an event at the very end is cut short
        ev[:click] += rng.standard_normal(click) * rng.uniform(0.2, 1.0)
        ev /= np.abs(ev).max() + 1e-12
        out[start : start + length] += ev * 10 ** (rng.uniform(-20.0, 0.0) / 20)
    return _normalize(out) if k else out.astype(np.float32)


CROWD_DISTANCE_M = (1.0, 12.0)  # where a crowd's talkers stand (log-uniform)
CROWD_BANDS_M = (2.5, 5.0)  # the distances that part near, middle and far talkers (one room response each)


def crowd(n: int, rng: np.random.Generator, voices: list[np.ndarray], rt60: float) -> np.ndarray:
    """Many talkers in one room (a café, a canteen, a party) -> float64 [n], unit RMS (zeros without voices).

    ``voices``: one recording [T_i] per talker, each normalised and looped from a random start when shorter
    than ``n``. Each talker stands at a distance drawn log-uniformly in ``CROWD_DISTANCE_M`` and speaks at
    its own loudness (within 6 dB): the direct sound falls 6 dB per doubling of the distance while the
    room's reverberation stays, so near talkers come through clear and far ones blur into babble. The
    talkers are summed in three distance bands (``CROWD_BANDS_M``), each through its own
    :func:`synthetic_rir` of the one ``rt60``, at the direct-to-reverberant ratio of its mean distance
    against a critical distance drawn in 1-2 m.
    """
    out = np.zeros(n, dtype=np.float64)
    if n == 0 or not voices:
        return out
    dist = np.exp(rng.uniform(np.log(CROWD_DISTANCE_M[0]), np.log(CROWD_DISTANCE_M[1]), len(voices)))
    loud = 10 ** (rng.uniform(-3.0, 3.0, len(voices)) / 20)
    starts = rng.integers(0, 1 << 31, len(voices))
    critical = float(rng.uniform(1.0, 2.0))
    band_of = np.searchsorted(np.asarray(CROWD_BANDS_M), dist)
    rir_seeds = rng.integers(0, 1 << 31, len(CROWD_BANDS_M) + 1)
    for band in range(len(CROWD_BANDS_M) + 1):
        members = np.flatnonzero(band_of == band)
        if not len(members):
            continue
        dry = np.zeros(n, dtype=np.float64)
        for i in members:
            v = np.asarray(voices[i], dtype=np.float64)
            rms = np.sqrt(np.mean(v**2)) if len(v) else 0.0
            if rms <= 0:
                continue
            looped = np.tile(v, int(np.ceil(n / len(v))) + 1)
            start = int(starts[i] % len(v))
            dry += looped[start : start + n] / rms * loud[i]
        if not np.any(dry):
            continue
        mean_d = float(np.exp(np.mean(np.log(dist[members]))))
        # in_room keeps the reverberation at the dry sum's level, which therefore stands for every band's equal
        # share of the room; the direct sound is then critical / distance of it
        out += in_room(dry, synthetic_rir(rt60, np.random.default_rng(int(rir_seeds[band]))), 20 * np.log10(critical / mean_d))
    rms = np.sqrt(np.mean(out**2))
    return out / rms if rms > 0 else out


def synthetic_rir(rt60: float, rng: np.random.Generator, sr: int = SAMPLE_RATE) -> np.ndarray:
    """A room's late response: Gaussian noise under an exponential decay reaching -60 dB at ``rt60`` s, high
    frequencies decaying faster (air and walls absorb them more) -> float64 [n], unit energy, n = 1.2 rt60 s.

    The tail is split into two bands (a one-pole low-pass at about 1.5 kHz and the rest); the upper band
    decays with half the RT60.
    """
    from scipy.signal import lfilter

    n = max(16, int(1.2 * rt60 * sr))
    t = np.arange(n) / sr
    tail = rng.standard_normal(n)
    a = np.exp(-2 * np.pi * 1500.0 / sr)
    low = lfilter([1 - a], [1, -a], tail)  # one-pole low-pass
    high = tail - low
    decay = 6.908 / rt60  # ln(1000): -60 dB of amplitude at rt60
    h = low * np.exp(-decay * t) + high * np.exp(-2 * decay * t)
    return h / (np.sqrt(np.sum(h**2)) + 1e-12)


def in_room(x: np.ndarray, rir: np.ndarray, drr_db: float) -> np.ndarray:
    """x [T] with its reverberation by ``rir`` [K] (e.g. ``synthetic_rir``) added at a direct-to-reverberant ratio of
    ``drr_db`` (by RMS; the dry part scaled, the wet part at the dry level) -> float64 [T]; x as it is when the
    wet part is silent."""
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float64)
    wet = fftconvolve(x, rir)[: len(x)]
    rd, rw = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(wet**2))
    return x * 10 ** (drr_db / 20) + wet * (rd / rw) if rw > 0 else x


def random_eq(x: np.ndarray, rng: np.random.Generator, max_db: float) -> np.ndarray:
    """x [T] through a smooth random magnitude response: gains drawn in [-max_db, max_db] at 7 log-spaced knots
    from 60 Hz to 8 kHz, interpolated over log frequency -> float64 [T] (zero phase, FFT domain)."""
    n = len(x)
    if n < 2 or max_db <= 0:
        return np.asarray(x, dtype=np.float64)
    knots = np.geomspace(60.0, SAMPLE_RATE / 2, 7)
    gains = rng.uniform(-max_db, max_db, len(knots))
    f = np.fft.rfftfreq(n, 1.0 / SAMPLE_RATE)
    g_db = np.interp(np.log(np.maximum(f, 1.0)), np.log(knots), gains)
    return np.fft.irfft(np.fft.rfft(x) * 10 ** (g_db / 20), n)


def augment_noise(noise: np.ndarray, rng: np.random.Generator, cfg: NoiseAugment,
                  layer: Callable[[], np.ndarray] | None = None,
                  talkers: Callable[[int], list[np.ndarray]] | None = None) -> np.ndarray:
    """A training noise [T] -> the same noise as a room and a microphone would give it, float64 [T].

    ``layer``: gives a second noise [T], called only when the draw adds one under the first
    (``cfg.layer_db`` below it by RMS; :class:`NoiseAugment`). ``talkers``: gives k voices ([T_i] each)
    for a crowd (:func:`crowd`), called only when the draw adds one (``cfg.p_crowd``); without it no
    crowd is added. Every draw is made whether or not it is used, so the result depends only on
    ``rng``'s state, ``cfg`` and what the callbacks give. The level is not kept: the mixture sets it.
    """
    x = np.asarray(noise, dtype=np.float64)
    n = len(x)
    u = rng.random(3)
    layer_gain_db = rng.uniform(*cfg.layer_db)
    rt60, drr = rng.uniform(*cfg.rt60), rng.uniform(*cfg.drr_db)
    rir_seed = int(rng.integers(1 << 31))
    eq_seed = int(rng.integers(1 << 31))
    # the draws of later options come after the first ones, so that they leave those unchanged when off
    hit, impacts_db, impacts_seed = rng.random(), rng.uniform(*cfg.impacts_db), int(rng.integers(1 << 31))
    crowd_hit, crowd_db, crowd_seed = rng.random(), rng.uniform(*cfg.crowd_db), int(rng.integers(1 << 31))
    crowd_k = int(rng.integers(int(cfg.crowd_talkers[0]), int(cfg.crowd_talkers[1]) + 1))
    if talkers is not None and crowd_hit < cfg.p_crowd and n > 0:
        crowd_rng = np.random.default_rng(crowd_seed)
        y = crowd(n, crowd_rng, talkers(crowd_k), float(crowd_rng.uniform(*cfg.rt60)))
        rx = np.sqrt(np.mean(x**2))
        if np.any(y):
            x = x + y * max(rx, 1e-4) * 10 ** (crowd_db / 20)
    if hit < cfg.p_impacts and n > 0:
        y = impacts(n, np.random.default_rng(impacts_seed)).astype(np.float64)
        rx, ry = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(y**2))
        if ry > 0:
            x = x + y * (max(rx, 1e-4) / ry) * 10 ** (impacts_db / 20)
    if layer is not None and u[0] < cfg.p_layer:
        y = np.asarray(layer(), dtype=np.float64)[:n]
        rx, ry = np.sqrt(np.mean(x**2)), np.sqrt(np.mean(y**2))
        if rx > 0 and ry > 0:
            x = x + y * (rx / ry) * 10 ** (layer_gain_db / 20)
    if u[1] < cfg.p_reverb and n > 0:
        x = in_room(x, synthetic_rir(rt60, np.random.default_rng(rir_seed)), drr)
    if u[2] < cfg.p_eq:
        x = random_eq(x, np.random.default_rng(eq_seed), cfg.eq_db)
    return x


CHAIN_FADE_S = 0.05  # crossfade between chained short clips


def _chain(clips: list[np.ndarray], fade: int) -> np.ndarray:
    """Short clips ([T_i] each) one after another, each at the same RMS, crossfaded by ``fade`` samples -> [T]."""
    out = np.zeros(sum(len(c) for c in clips), np.float32)  # the length without overlaps; trimmed at the end
    pos = 0
    for clip in clips:
        rms = float(np.sqrt(np.mean(clip.astype(np.float64) ** 2)))
        clip = (clip / rms * 0.1).astype(np.float32) if rms > 0 else clip.astype(np.float32)
        f = min(fade, pos, len(clip))
        if f > 0:
            ramp = np.linspace(0.0, 1.0, f, dtype=np.float32)
            out[pos - f : pos] = out[pos - f : pos] * (1.0 - ramp) + clip[:f] * ramp
        out[pos : pos + len(clip) - f] = clip[f:]
        pos += len(clip) - f
    return out[:pos]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def real_noise_segments(
    paths: list[Path], split_fractions: dict[str, float], segment_seconds: float, chain_below: float | None = None
) -> Iterator[tuple[str, str, np.ndarray]]:
    """Cut real noise files into split-disjoint segments.

    Each file (any format, read as 16 kHz mono) is cut into contiguous parts by
    ``split_fractions`` (e.g. train 0.7, dev 0.15, test 0.15), and each part
    into segments of ``segment_seconds`` (a part shorter than that is one
    segment; parts under a second are dropped). Files shorter than
    ``chain_below`` seconds (default: three segments) would give parts too
    short to mix with an utterance, so the short files of each folder are
    chained instead, in name order, each at the same RMS and crossfaded
    (``CHAIN_FADE_S``), and that stream is cut the same way: the clips of a
    folder of sound effects go, nearly all whole, to one split or another.
    Long files are read one at a time. Yields ``(split, name, audio [T])``:
    long files first, in path order, named ``<file stem>_<split><k>``; then
    one stream per folder, named ``<parent>_<folder>_<split><k>``.
    """
    seg = int(segment_seconds * SAMPLE_RATE)
    below = int((3.0 * segment_seconds if chain_below is None else chain_below) * SAMPLE_RATE)

    def cut(audio: np.ndarray, stem: str) -> Iterator[tuple[str, str, np.ndarray]]:
        start = 0
        total = len(audio)
        for split, frac in split_fractions.items():
            end = start + int(round(frac * total))
            part = audio[start:end]
            start = end
            if len(part) < SAMPLE_RATE:  # under a second: not worth a noise item
                continue
            pieces = max(1, len(part) // seg)
            for k in range(pieces):
                piece = part[k * seg : (k + 1) * seg] if pieces > 1 else part
                yield split, f"{stem}_{split}{k:03d}", piece

    short: dict[Path, list[np.ndarray]] = {}
    for path in sorted(Path(p) for p in paths):
        audio, _ = load_audio(path)
        if len(audio) < below:
            short.setdefault(path.parent, []).append(audio)
            continue
        yield from cut(audio, _safe(path.stem))
    names: set[str] = set()
    for folder in sorted(short):
        stem = _safe(f"{folder.parent.name}_{folder.name}")
        while stem in names:
            stem += "_"
        names.add(stem)
        yield from cut(_chain(short[folder], int(CHAIN_FADE_S * SAMPLE_RATE)), stem)
