"""AVSE scenes: build scenes.{split}.json (target + interferer + SNR) and render them to wav/mp4.

Building follows the COG-MHEAR AVSE challenge (avse1 ``build_scenes``):
targets of the split are shuffled once and used in turn (each target once
before any repeats), each scene gets an interferer of type speech (with
probability ``p_speech``) or noise, an offset drawn uniformly from every start
that leaves enough samples, and an SNR drawn uniformly from the range of its
type, rounded to 4 decimals like the challenge's files.

Rendering follows the challenge's scene renderer (avse1
``scene_renderer_avse1``), in float64 and in the same order of operations, so
that its samples come out bit for bit:

1. target ``t`` [T] read as float64; with ``pre_samples``/``post_samples`` it is
   zero-padded before/after (as Clarity's CEC1 renderer does; the avse1 files
   have both at 0). ``len(t) == duration``.
2. interferer ``i`` = interferer file [offset : offset + len(t)] as float64.
3. 500 ms half-cosine ramp on both ends of ``i``:
   ``r = (cos(linspace(pi, 2 pi, 8000)) + 1) / 2``; ``i[:8000] *= r``;
   ``i[-8000:] *= r[::-1]`` (segments shorter than the ramp get the matching
   part of each ramp).
4. ``gain = rms(conv(t, h)) / rms(conv(i, h))``, ``h`` the speech-weighting FIR
   (``filt`` of speech_weight.mat), full convolution over the whole signal, by
   FFT as the reference does (``scipy.signal.convolve(..., method="fft")``);
   ``h`` = identity, i.e. plain RMS, without a speech-weight file. With
   pre/post samples the two RMS are taken over the samples where the target
   is, ``[pre, pre + T)``. (A direct ``np.convolve`` agrees to float64 rounding,
   but the int16 truncation of step 6 turns a last-bit difference of the gain
   into 1 LSB at rare samples - about 1 file in 10 000 - so the reference's FFT
   is what is used.)
5. ``i = (i * gain) * 10 ** (-SNR / 20)``; ``mixed = t + i`` (zero-padded).
6. ``norm = max|concat(mixed, t, i)|``; each signal ``/ norm``, clipped to
   +-1, written as int16 ``(32767 * x)`` truncated toward zero, PCM_16 16 kHz.

Several interferers (``n_interferers > 1``, our extension): each interferer is
first brought to the target's (weighted) level (step 4, 0 dB each), the
interferers are summed, and the scene SNR then applies to that sum exactly as
in steps 4-5. The written ``_interferer.wav`` is the sum, so the measured SNR of
``_target.wav`` against ``_interferer.wav`` is the scene's ``SNR``.

Outputs: a scene's three wavs and its silent mp4 are written to temp files
and renamed into place together, then OUT/.render/SXXXXX.json records what
they were rendered from (a hash of the scene, the filter, the normalisation
and the video option); a scene whose record does not match is rendered
again, and a scene that fails leaves none of its outputs.

Normalisation modes: ``"avse"`` (step 6, the challenge's shared peak: the
loudest of the three files peaks at full scale), ``"peak"`` (the same shared
factor, placed at -1 dBFS to leave 1 dB of headroom) and ``"lufs"`` (the same
factor for all three, chosen so that the mixture sits at -23 LUFS, but never so
loud that any file would clip: then the shared peak bound wins). All three keep
``mixed = target + interferer`` up to int16 truncation.
"""

from __future__ import annotations

import bisect
import collections
import contextlib
import hashlib
import json
import math
import operator
import os
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import soundfile as sf
from scipy import fft as sp_fft
from scipy.signal import fftconvolve

from avse import SAMPLE_RATE
from avse.audio.io import check_riff_complete, loudness
from avse.data.metadata import (
    INTERFERER_TYPES,
    Scene,
    interferer_wav_path,
    load_noise_list,
    load_scenes,
    load_speech_list,
    masker_noise_list_path,
    masker_speech_list_path,
    metadata_dir,
    scenes_dir,
    scenes_path,
    target_speech_list_path,
    target_video_path,
    target_wav_path,
)
from avse.errors import AvseError, ConfigError, InterfererTooShortError, MediaError, MetadataError, OutputPathError
from avse.utils.fs import atomic_path, ensure_dir, parse_shard, write_json
from avse.utils.pool import remove_stale_parts, worker_pool
from avse.video.io import copy_video_stream

SNR_DECIMALS = 4
RAMP_SECONDS = 0.5
RAMP_SAMPLES = int(SAMPLE_RATE * RAMP_SECONDS)  # 8000
NORMALIZATIONS = ("avse", "peak", "lufs")
PEAK_HEADROOM_DB = 1.0  # "peak" mode: loudest file at -1 dBFS
LUFS_TARGET = -23.0  # "lufs" mode: mixture loudness
OUTPUT_KINDS = ("mixed", "target", "interferer")
RECORD_DIR = ".render"  # OUT/.render/SXXXXX.json: what each scene's outputs were rendered from
RENDER_FORMAT = 1  # part of every record's key: bump it when a change alters the rendered bytes

# ---------------------------------------------------------------------------
# Building scenes
# ---------------------------------------------------------------------------


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


def _check_int(name: str, value: Any, low: int) -> int:
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
    n_interferers = _check_int("n_interferers", n_interferers, 1)
    pre_samples = _check_int("pre_samples", pre_samples, 0)
    post_samples = _check_int("post_samples", post_samples, 0)
    start_index = _check_int("start_index", start_index, 0)
    if n_scenes is not None:
        n_scenes = _check_int("n_scenes", n_scenes, 1)
    if not isinstance(dataset, str) or not dataset:
        raise ConfigError(f"dataset must be a split name such as 'train', got {dataset!r}")

    tpath = target_speech_list_path(root)
    targets = [t for t in load_speech_list(tpath) if t["dataset"] == dataset]
    if not targets:
        raise MetadataError(tpath, f"no target of dataset '{dataset}'")
    speech: list[dict[str, Any]] = []
    noise: list[dict[str, Any]] = []
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
            "interferer": dict(chosen[0]),  # type: ignore[typeddict-item]
            "SNR": snr,
            "pre_samples": pre_samples,
            "post_samples": post_samples,
        }
        if n_interferers > 1:
            scene["interferers"] = [dict(c) for c in chosen]  # type: ignore[misc]
        scenes.append(scene)
    return scenes


class InterfererPool:
    """Maskers of one type sorted by length, for draws among those at least ``duration`` long.

    A draw is uniform over the eligible files (speech: not by the target's
    speaker; noise: a class first, uniform over the classes that have an
    eligible file, then a file of that class) and costs O(log n) plus a few
    rejected draws, so that tens of thousands of scenes build in seconds.
    """

    def __init__(self, kind: str, entries: list[dict[str, Any]]):
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


# ---------------------------------------------------------------------------
# Rendering math (float64)
# ---------------------------------------------------------------------------

_FILTER_CACHE: dict[tuple[str, int, int], np.ndarray] = {}


def load_speech_weight(path: str | Path) -> np.ndarray:
    """Read the speech-weighting FIR ``filt`` from a .mat file -> float64 [K] (read-only, cached).

    Raises MediaError (one line, naming the file) when the file is missing, is
    not a MATLAB .mat file, has no ``filt`` or a ``filt`` that is not a finite
    numeric vector.
    """
    import scipy.io
    from scipy.io.matlab import MatReadError

    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file" if not path.exists() else "not a file")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    h = _FILTER_CACHE.get(key)
    if h is None:
        not_mat = "not a MATLAB .mat file with a 'filt' vector"
        # what SciPy's reader raises on junk, a truncated file or an HDF5 (v7.3) file
        read_errors = (
            MatReadError, ValueError, TypeError, OSError, EOFError, NotImplementedError, struct.error, zlib.error
        )
        try:
            mat = scipy.io.loadmat(str(path), squeeze_me=True)
        except read_errors as err:
            raise MediaError(path, f"{not_mat} ({type(err).__name__}: {err})".replace("\n", " ")) from None
        if "filt" not in mat:
            raise MediaError(path, "no variable 'filt' (the speech-weighting FIR)")
        try:
            h = np.atleast_1d(np.asarray(mat["filt"], dtype=np.float64))
        except (TypeError, ValueError):
            raise MediaError(path, f"{not_mat}: 'filt' is not numeric") from None
        if h.ndim != 1:
            raise MediaError(path, f"{not_mat}: 'filt' has shape {h.shape}")
        if h.size == 0 or not np.all(np.isfinite(h)):
            raise MediaError(path, "'filt' is empty or holds NaN/inf")
        h.flags.writeable = False
        _FILTER_CACHE[key] = h
    return h


def _weight_array(speech_weight: str | Path | np.ndarray | None) -> np.ndarray | None:
    if speech_weight is None:
        return None
    if isinstance(speech_weight, np.ndarray):
        h = np.asarray(speech_weight, dtype=np.float64).ravel()
        if h.size == 0:
            raise ConfigError("speech_weight filter is empty")
        return h
    return load_speech_weight(speech_weight)


class _Weighting:
    """A speech-weighting FIR h [K] whose spectra are kept per FFT size.

    ``conv(x)`` returns exactly ``scipy.signal.fftconvolve(x, h, "full")`` (the
    operation of the AVSE renderer, ``scipy.signal.convolve(..., method="fft")``)
    but transforms ``h`` once per FFT size instead of on every call. The first
    use in a process checks the equality bit for bit against fftconvolve and
    falls back to it if this SciPy computes differently.
    """

    verified: bool | None = None  # per process: None = not checked yet

    def __init__(self, h: np.ndarray):
        self.h = np.ascontiguousarray(h, dtype=np.float64)
        self.spectra: collections.OrderedDict[int, np.ndarray] = collections.OrderedDict()

    def _fast(self, x: np.ndarray) -> np.ndarray:
        n = len(x) + len(self.h) - 1
        nfft = sp_fft.next_fast_len(n, True)
        spec = self.spectra.get(nfft)
        if spec is None:
            spec = sp_fft.rfftn(self.h, [nfft], axes=[0])
            self.spectra[nfft] = spec
            if len(self.spectra) > 32:
                self.spectra.popitem(last=False)
        return sp_fft.irfftn(sp_fft.rfftn(x, [nfft], axes=[0]) * spec, [nfft], axes=[0])[:n]

    def conv(self, x: np.ndarray) -> np.ndarray:
        """Full convolution x [T] * h [K] -> [T + K - 1], float64."""
        if _Weighting.verified is None:
            probe = np.random.default_rng(0).standard_normal(3001)
            _Weighting.verified = all(
                np.array_equal(self._fast(probe[:m]), fftconvolve(probe[:m], self.h, mode="full"))
                for m in (3001, 1777, 1000)
            )
        return self._fast(x) if _Weighting.verified else fftconvolve(x, self.h, mode="full")

    def rms(self, x: np.ndarray) -> float:
        """sqrt(mean(conv(x, h)^2)) for x [T]."""
        y = self.conv(x)
        return float(np.sqrt(np.mean(y**2)))


_WEIGHTINGS: collections.OrderedDict[str, _Weighting] = collections.OrderedDict()


def _weighting(h: np.ndarray) -> _Weighting:
    key = _filter_key(h)
    w = _WEIGHTINGS.get(key)  # type: ignore[arg-type]
    if w is None:
        w = _WEIGHTINGS[key] = _Weighting(h)  # type: ignore[index]
        if len(_WEIGHTINGS) > 4:
            _WEIGHTINGS.popitem(last=False)
    return w


def weighted_rms(x: np.ndarray, h: np.ndarray | None = None) -> float:
    """RMS of ``conv(x, h)`` (full convolution by FFT, as the AVSE renderer) for x [T] float64.

    Plain ``sqrt(mean(x^2))`` when ``h`` is None.
    """
    if h is None:
        return float(np.sqrt(np.mean(x**2)))
    return _weighting(h).rms(x)


def half_cosine_ramp(n: int = RAMP_SAMPLES) -> np.ndarray:
    """Rising half-cosine ramp (cos(linspace(pi, 2pi, n)) + 1) / 2 -> float64 [n], 0 to 1."""
    r = np.cos(np.linspace(math.pi, 2 * math.pi, n))
    return (r + 1) / 2


_RAMP = half_cosine_ramp()
_RAMP.flags.writeable = False


def apply_ramp(x: np.ndarray, n: int = RAMP_SAMPLES) -> np.ndarray:
    """Fade ``x`` [T] in and out with ``n``-sample half-cosine ramps -> new float64 [T].

    ``y[:n] *= ramp`` then ``y[-n:] *= ramp[::-1]``, as the AVSE renderer does;
    when T < n the first T samples of the rising ramp and the last T of the
    falling one are used.
    """
    up = _RAMP if n == RAMP_SAMPLES else half_cosine_ramp(n)
    down = up[::-1]
    y = np.array(x, dtype=np.float64)
    m = min(n, len(y))
    if m:
        y[0:m] *= up[:m]
        y[len(y) - m :] *= down[n - m :]
    return y


def _sum_padded(signals: list[np.ndarray]) -> np.ndarray:
    """Zero-pad every signal [T_i] to the longest and add them in order -> [max T_i]."""
    n = max(len(s) for s in signals)
    out = np.pad(signals[0], (0, n - len(signals[0])))
    for s in signals[1:]:
        out = out + np.pad(s, (0, n - len(s)))
    return out


def mix_scene(
    target: np.ndarray,
    interferers: list[np.ndarray],
    snr_db: float,
    h: np.ndarray | None = None,
    pre_samples: int = 0,
    post_samples: int = 0,
    target_rms: float | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale the ramped interferers to ``snr_db`` against the target; unnormalised float64.

    ``target`` [T] (not padded) and ``interferers`` [T + pre + post] each (already
    ramped). ``h`` [K] is the speech-weighting FIR (None: plain RMS).
    ``target_rms`` may pass a cached ``weighted_rms(target, h)``. Returns
    ``(mixed, target_padded, interferer)``, each [T + pre + post] (longest).
    """
    t = np.pad(target, (pre_samples, post_samples)) if (pre_samples or post_samples) else target
    lo, hi = pre_samples, pre_samples + len(target)
    whole = pre_samples == 0 and post_samples == 0

    def seg(x: np.ndarray) -> np.ndarray:
        return x if whole else x[lo:hi]

    t_rms = weighted_rms(target, h) if target_rms is None else target_rms
    if len(interferers) == 1:
        noise = interferers[0]
    else:
        parts = []
        for x in interferers:
            r = weighted_rms(seg(x), h)
            if r == 0.0:
                raise ConfigError("an interferer segment is silent: cannot set its level")
            parts.append(x * np.divide(t_rms, r))
        noise = _sum_padded(parts)
    n_rms = weighted_rms(seg(noise), h)
    if n_rms == 0.0:
        raise ConfigError("the interferer segment is silent: cannot set an SNR")
    gain = np.divide(t_rms, n_rms)
    noise = noise * gain
    noise = noise * 10 ** ((-float(snr_db)) / 20)
    mixed = _sum_padded([t, noise])
    return mixed, t, noise


def check_normalization(mode: str) -> str:
    """Return ``mode`` if it is one of NORMALIZATIONS, else raise ConfigError."""
    if mode not in NORMALIZATIONS:
        raise ConfigError(f"normalization must be one of {NORMALIZATIONS}, got {mode!r}")
    return mode


def normalize_to_int16(signals: list[np.ndarray], mode: str = "avse") -> list[np.ndarray]:
    """Apply one shared normalisation to float64 signals [T_i] -> int16 [T_i] each.

    ``"avse"``: divide by ``max|concat(signals)|``, clip to +-1, ``(32767 * x)``
    truncated toward zero (the challenge's writer). ``"peak"``: the same, with the
    loudest sample at -1 dBFS. ``"lufs"``: the first signal (the mixture) at
    -23 LUFS unless that would clip, then as ``"avse"``.
    """
    check_normalization(mode)
    norm = max(float(np.max(np.abs(s))) for s in signals)
    if norm == 0.0:
        raise ConfigError("all signals are silent: nothing to normalise")
    if mode == "peak":
        norm = norm / 10 ** (-PEAK_HEADROOM_DB / 20)
    elif mode == "lufs":
        lufs = loudness(signals[0], SAMPLE_RATE)
        if math.isfinite(lufs):
            norm = max(norm, 1.0 / 10 ** ((LUFS_TARGET - lufs) / 20))
    out = []
    for s in signals:
        x = s / norm
        np.clip(x, -1.0, 1.0, out=x)
        np.multiply(32767, x, out=x)
        out.append(x.astype(np.int16))  # truncation toward zero
    return out


# ---------------------------------------------------------------------------
# File I/O for rendering
# ---------------------------------------------------------------------------


def read_wav64(path: Path, start: int = 0, frames: int = -1) -> np.ndarray:
    """Read a 16 kHz mono wav (or ``frames`` samples from ``start``) as float64 [T] (soundfile's scaling).

    Raises MediaError naming the file when it is missing, unreadable, not
    16 kHz mono, truncated (a RIFF data chunk longer than the file), empty, or
    holds fewer than ``frames`` samples from ``start``: a short read is never
    returned (it would be zero-padded downstream and mix wrongly).
    """
    path = Path(path)
    if not path.is_file():
        raise MediaError(path, "no such file" if not path.exists() else "not a file")
    if path.suffix.lower() == ".wav":
        check_riff_complete(path)
    try:
        with sf.SoundFile(str(path)) as f:
            if f.samplerate != SAMPLE_RATE:
                raise MediaError(path, f"sample rate {f.samplerate} Hz, expected {SAMPLE_RATE}")
            if f.channels != 1:
                raise MediaError(path, f"{f.channels} channels, expected mono")
            total = f.frames
            if start:
                if start >= total:
                    raise MediaError(path, f"offset {start} is past the end ({total} samples)")
                f.seek(start)
            x = f.read(frames, dtype="float64")
    except (sf.LibsndfileError, RuntimeError) as err:
        raise MediaError(path, f"unreadable audio ({err})") from None
    if x.size == 0:
        raise MediaError(path, "no audio samples")
    if frames >= 0 and len(x) < frames:
        raise MediaError(
            path, f"too short: {frames} samples needed from offset {start}, the file has {total} ({len(x)} read)"
        )
    return x


def wav_bytes_int16(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> bytes:
    """A mono PCM_16 RIFF/WAVE file for int16 x [T], byte for byte what soundfile writes."""
    data = np.ascontiguousarray(x, dtype="<i2").tobytes()
    header = (
        b"RIFF"
        + struct.pack("<I", 36 + len(data))
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate, 2 * sample_rate, 2, 16)
        + b"data"
        + struct.pack("<I", len(data))
    )
    return header + data


def scene_output_paths(out_dir: str | Path, scene_name: str, with_video: bool = True) -> dict[str, Path]:
    """{"mixed", "target", "interferer"[, "video"]} -> OUT/SXXXXX_{mixed,target,interferer}.wav, _silent.mp4."""
    out_dir = Path(out_dir)
    paths = {kind: out_dir / f"{scene_name}_{kind}.wav" for kind in OUTPUT_KINDS}
    if with_video:
        paths["video"] = out_dir / f"{scene_name}_silent.mp4"
    return paths


def render_record_path(out_dir: str | Path, scene_name: str) -> Path:
    """OUT/.render/SXXXXX.json: what the scene's outputs were rendered from (see :func:`render_key`)."""
    return Path(out_dir) / RECORD_DIR / f"{scene_name}.json"


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def render_key(scene: Scene, hkey: str | None, normalization: str, with_video: bool) -> str:
    """SHA-256 (hex) of everything a scene's output bytes depend on besides the input files.

    The scene dict (target, interferers, offsets, SNR, duration, pre/post),
    the speech-weighting filter's key (None: plain RMS), the normalisation
    mode, whether the silent mp4 is written, and RENDER_FORMAT.
    """
    spec = {
        "format": RENDER_FORMAT,
        "scene": scene,
        "speech_weight": hkey,
        "normalization": normalization,
        "with_video": with_video,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=_json_default).encode()).hexdigest()


def _interferer_list(scene: Scene) -> list[dict[str, Any]]:
    return list(scene.get("interferers") or [scene["interferer"]])


def _scene_inputs(root: Path, scene: Scene) -> dict[str, Any]:
    split = scene["dataset"]
    name = scene["target"]["name"]
    return {
        "target": target_wav_path(root, split, name),
        "video": target_video_path(root, split, name),
        "interferers": [interferer_wav_path(root, split, i["type"], i["name"]) for i in _interferer_list(scene)],
    }


class _TargetCache:
    """Small LRU of (target float64 [T], weighted RMS) keyed by file identity and filter."""

    def __init__(self, size: int = 32):
        self.size = size
        self.items: collections.OrderedDict[tuple[Any, ...], tuple[np.ndarray, float]] = collections.OrderedDict()

    def get(self, path: Path, h: np.ndarray | None, hkey: str | None) -> tuple[np.ndarray, float]:
        try:
            st = path.stat()
        except OSError:
            raise MediaError(path, "no such file") from None
        key = (str(path), st.st_mtime_ns, st.st_size, hkey)
        hit = self.items.get(key)
        if hit is not None:
            self.items.move_to_end(key)
            return hit
        x = read_wav64(path)
        x.flags.writeable = False
        value = (x, weighted_rms(x, h))
        self.items[key] = value
        if len(self.items) > self.size:
            self.items.popitem(last=False)
        return value


_TARGETS = _TargetCache()


def _filter_key(h: np.ndarray | None) -> str | None:
    return None if h is None else hashlib.sha1(np.ascontiguousarray(h).tobytes()).hexdigest()


def render_scene(
    root: str | Path,
    scene: Scene,
    out_dir: str | Path,
    speech_weight: str | Path | np.ndarray | None = None,
    normalization: str = "avse",
    with_video: bool = True,
) -> dict[str, Path]:
    """Render one scene into ``out_dir``: SXXXXX_{mixed,target,interferer}.wav and SXXXXX_silent.mp4.

    The math is the AVSE renderer's (see the module docstring); wavs are int16
    PCM_16 16 kHz mono of ``duration`` samples; the mp4 is the target video's
    video stream copied without re-encoding. ``speech_weight`` is the .mat file
    of the speech-weighting FIR (or the FIR itself, float64 [K]); None uses
    plain RMS. All or nothing: the video is remuxed and the wavs written to
    temp files, then all are renamed into place and OUT/.render/SXXXXX.json
    records what they were rendered from (:func:`scene_done`). When anything
    fails (a truncated wav or mp4, an interferer shorter than the scene) the
    scene is left with none of its outputs, and the error (a MediaError naming
    the bad file) is raised. Inputs are read only; an output that would be an
    input, or ``out_dir`` being a file, raises OutputPathError before anything
    is written. Returns the output paths.
    """
    root = Path(root)
    check_normalization(normalization)
    h = _weight_array(speech_weight)
    return _render_one(root, scene, Path(out_dir), h, _filter_key(h), normalization, with_video)


def _remove_scene_outputs(outputs: dict[str, Path], record: Path) -> None:
    for p in [record, *outputs.values()]:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


def _render_one(
    root: Path,
    scene: Scene,
    out_dir: Path,
    h: np.ndarray | None,
    hkey: str | None,
    normalization: str,
    with_video: bool,
) -> dict[str, Path]:
    ensure_dir(out_dir)
    name = scene["scene"]
    inputs = _scene_inputs(root, scene)
    outputs = scene_output_paths(out_dir, name, with_video)
    record = render_record_path(out_dir, name)
    names = {o.name for o in outputs.values()}
    for p in [inputs["target"], inputs["video"], *inputs["interferers"]]:
        if p.name in names and os.path.realpath(p.parent) == os.path.realpath(out_dir):
            raise OutputPathError(f"{out_dir / p.name}: output would overwrite an input of scene {name}")
    try:
        if with_video and not inputs["video"].is_file():
            raise MediaError(inputs["video"], "no such file")
        pre, post = int(scene.get("pre_samples", 0)), int(scene.get("post_samples", 0))
        target, t_rms = _TARGETS.get(inputs["target"], h, hkey)
        n = len(target) + pre + post
        if n != int(scene["duration"]):
            raise MediaError(
                inputs["target"],
                f"{len(target)} samples, scene {name} expects {int(scene['duration']) - pre - post} "
                f"(duration {scene['duration']} - pre {pre} - post {post}): truncated or replaced",
            )
        if t_rms == 0.0:
            raise MediaError(inputs["target"], "target is silent: cannot set an SNR")
        noises = []
        for spec, path in zip(_interferer_list(scene), inputs["interferers"]):
            x = read_wav64(path, start=int(spec["offset"]), frames=n)
            noises.append(apply_ramp(x))
        try:
            mixed, t, noise = mix_scene(target, noises, scene["SNR"], h, pre, post, target_rms=t_rms)
        except ConfigError as err:
            raise MediaError(inputs["interferers"][0], f"scene {name}: {err}") from None
        ints = normalize_to_int16([mixed, t, noise], normalization)
        with contextlib.ExitStack() as stack:  # every temp is renamed on success, removed on failure
            tmp = {kind: stack.enter_context(atomic_path(p)) for kind, p in outputs.items()}
            if with_video:  # first: a truncated or corrupt video fails before any wav is written
                copy_video_stream(inputs["video"], tmp["video"])
            for kind, x in zip(OUTPUT_KINDS, ints):
                tmp[kind].write_bytes(wav_bytes_int16(x))
        key = render_key(scene, hkey, normalization, with_video)
        write_json(record, {"scene": name, "key": key, "outputs": sorted(names)})
    except BaseException:
        _remove_scene_outputs(outputs, record)  # stale outputs of an earlier render included
        raise
    return outputs


def _scene_done(out_dir: Path, name: str, key: str, with_video: bool) -> bool:
    if not all(p.is_file() for p in scene_output_paths(out_dir, name, with_video).values()):
        return False
    try:
        record = json.loads(render_record_path(out_dir, name).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("key") == key


def scene_done(
    out_dir: str | Path,
    scene: Scene,
    speech_weight: str | Path | np.ndarray | None = None,
    normalization: str = "avse",
    with_video: bool = True,
) -> bool:
    """True when the scene's outputs exist and were rendered from this scene and these options (resume).

    The outputs' record OUT/.render/SXXXXX.json must hold the :func:`render_key`
    of ``scene``, the filter, ``normalization`` and ``with_video``; a scene
    rebuilt with another seed, or asked with another filter or mode, is not
    done and is rendered again (its outputs replaced).
    """
    h = _weight_array(speech_weight)
    key = render_key(scene, _filter_key(h), check_normalization(normalization), with_video)
    return _scene_done(Path(out_dir), scene["scene"], key, with_video)


def _render_group(task: tuple[Any, ...]) -> list[tuple[str, str | None]]:
    """Worker: render a group of scenes (sharing a target); return [(scene, error or None)]."""
    root, scenes, out_dir, h, hkey, normalization, with_video = task
    results: list[tuple[str, str | None]] = []
    for scene in scenes:
        try:
            _render_one(root, scene, out_dir, h, hkey, normalization, with_video)
            results.append((scene["scene"], None))
        except Exception as err:  # reported back to the parent, which raises AvseError
            results.append((scene["scene"], f"{type(err).__name__}: {err}".replace("\n", " ")))
    return results


def shard_indices(n: int, shard: tuple[int, int]) -> list[int]:
    """Indices of the ``n`` scenes that shard ``(i, N)`` renders: every k with k % N == i."""
    i, count = shard
    return list(range(i, n, count))


def _check_shard(shard: tuple[int, int] | str | None) -> tuple[int, int]:
    """``"i/N"``, None or a pair (i, N) -> (i, N), validated by avse.utils.fs.parse_shard."""
    if shard is None or isinstance(shard, str):
        return parse_shard(shard)
    try:
        i, n = (operator.index(v) for v in shard)
    except (TypeError, ValueError):
        raise ConfigError(f"shard must be 'i/N' or a pair of integers (i, N), got {shard!r}") from None
    return parse_shard(f"{i}/{n}")


def _scene_stems(name: str) -> list[str]:
    return [f"{name}_{kind}" for kind in (*OUTPUT_KINDS, "silent")]


def _remove_orphans(out_dir: Path, keep: set[str]) -> int:
    """Delete the outputs and records of scenes recorded in ``out_dir`` but no longer in scenes.json."""
    removed = 0
    for record in sorted((out_dir / RECORD_DIR).glob("*.json")):
        if record.stem in keep or record.name.startswith("."):  # ".S00002.k3j_x9a2.part.json": being written
            continue
        for stem in _scene_stems(record.stem):
            for ext in (".wav", ".mp4"):
                with contextlib.suppress(FileNotFoundError):
                    (out_dir / f"{stem}{ext}").unlink()
        with contextlib.suppress(FileNotFoundError):
            record.unlink()
        removed += 1
    return removed


def _remove_parts(out_dir: Path, names: list[str]) -> None:
    """Remove what writes killed mid-way (Ctrl-C with a pool, SIGKILL) left of these scenes' files."""
    remove_stale_parts(out_dir, stems={stem for name in names for stem in _scene_stems(name)})
    remove_stale_parts(out_dir / RECORD_DIR, stems=set(names))


def render_scenes(
    root: str | Path,
    dataset: str,
    jobs: int = 1,
    shard: tuple[int, int] | str | None = (0, 1),
    speech_weight: str | Path | np.ndarray | None = None,
    progress: bool = True,
    normalization: str = "avse",
    with_video: bool = True,
) -> dict[str, Any]:
    """Render every scene of ROOT/metadata/scenes.{dataset}.json into ROOT/{dataset}/scenes/.

    Scene k belongs to shard ``k % N`` (``shard=(i, N)`` or ``"i/N"``).
    Resume: a scene is skipped when :func:`scene_done` (its outputs exist and
    its record OUT/.render/SXXXXX.json says they were rendered from this very
    scene, filter, normalisation and video option); any other scene is
    rendered, replacing stale outputs (after ``scenes build --seed 7``, or with
    another ``speech_weight`` or ``normalization``). Scenes recorded in OUT but
    no longer in scenes.json have their outputs removed. An interrupted run
    (Ctrl-C, a killed job) resumes cleanly: a scene's outputs and record appear
    only once all of it is written, and the temp files a killed writer left
    are removed at the start of the next run (and when a Ctrl-C is handled).

    ``jobs`` > 1 renders in a multiprocessing pool whose workers ignore
    Ctrl-C (the parent stops them); scenes sharing a target go to the same
    worker, which caches the target and its weighted RMS. Output is
    bit-identical whatever ``jobs`` and ``shard``. Returns ``{"dataset",
    "out_dir", "shard", "scenes", "rendered", "skipped", "removed",
    "seconds"}``; raises AvseError after the run when some scenes failed (the
    others are written, a failed scene has no outputs; re-run to resume).
    """
    root = Path(root)
    si, sn = _check_shard(shard)
    jobs = _check_int("jobs", jobs, 1)
    check_normalization(normalization)
    scenes = load_scenes(scenes_path(root, dataset))
    h = _weight_array(speech_weight)
    hkey = _filter_key(h)
    out_dir = ensure_dir(scenes_dir(root, dataset))

    t0 = time.perf_counter()
    mine = [scenes[k] for k in shard_indices(len(scenes), (si, sn))]
    _remove_parts(out_dir, [s["scene"] for s in mine])
    removed = _remove_orphans(out_dir, {s["scene"] for s in scenes})
    keys = {s["scene"]: render_key(s, hkey, normalization, with_video) for s in mine}
    todo = [s for s in mine if not _scene_done(out_dir, s["scene"], keys[s["scene"]], with_video)]
    groups: dict[tuple[str, str], list[Scene]] = {}
    for s in todo:
        groups.setdefault((s["dataset"], s["target"]["name"]), []).append(s)
    tasks = [(root, g, out_dir, h, hkey, normalization, with_video) for g in groups.values()]

    failures: list[tuple[str, str]] = []
    # the pool is forked before the progress bar starts its monitor thread
    pool = worker_pool(min(jobs, len(tasks))) if jobs > 1 and len(tasks) > 1 else None
    bar = None
    try:
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(todo), desc=f"render {dataset} {si}/{sn}", unit="scene")
        results = map(_render_group, tasks) if pool is None else pool.imap_unordered(_render_group, tasks)
        for batch in results:
            failures.extend((name, err) for name, err in batch if err is not None)
            if bar is not None:
                bar.update(len(batch))
    except BaseException:
        if pool is not None:  # workers killed mid-write leave temp files: clear them now
            pool.terminate()
            pool.join()
            pool = None
            _remove_parts(out_dir, [s["scene"] for s in todo])
        raise
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    summary = {
        "dataset": dataset,
        "out_dir": str(out_dir),
        "shard": f"{si}/{sn}",
        "scenes": len(mine),
        "rendered": len(todo) - len(failures),
        "skipped": len(mine) - len(todo),
        "removed": removed,
        "seconds": time.perf_counter() - t0,
    }
    if failures:
        failures.sort()
        name, err = failures[0]
        raise AvseError(
            f"render {dataset}: {len(failures)} of {len(todo)} scenes failed (first {name}: {err}); "
            "the others are written, re-run to resume"
        )
    return summary


def measured_snr(
    target_wav: str | Path,
    interferer_wav: str | Path,
    speech_weight: str | Path | np.ndarray | None = None,
    pre_samples: int = 0,
    post_samples: int = 0,
) -> float:
    """SNR in dB of a rendered scene, from its _target.wav and _interferer.wav (each [T]).

    ``20 log10(rms(conv(t, h)) / rms(conv(i, h)))`` over the samples where the
    target is (``[pre_samples, len - post_samples)``), with ``h`` the
    speech-weighting FIR (plain RMS when None) - the quantity the renderer sets.
    A silent interferer gives ``+inf`` (a silent target ``-inf``); both silent,
    or files of different lengths, raise MediaError.
    """
    h = _weight_array(speech_weight)
    t = read_wav64(Path(target_wav))
    i = read_wav64(Path(interferer_wav))
    if len(i) != len(t):
        raise MediaError(interferer_wav, f"{len(i)} samples, the target {target_wav} has {len(t)}")
    pre_samples = _check_int("pre_samples", pre_samples, 0)
    post_samples = _check_int("post_samples", post_samples, 0)
    lo, hi = pre_samples, len(t) - post_samples
    if lo >= hi:
        raise ConfigError(f"pre_samples {pre_samples} + post_samples {post_samples} leave nothing of {len(t)} samples")
    t_rms, i_rms = weighted_rms(t[lo:hi], h), weighted_rms(i[lo:hi], h)
    if i_rms == 0.0:
        if t_rms == 0.0:
            raise MediaError(target_wav, f"target and interferer {interferer_wav} are both silent: no SNR")
        return math.inf
    if t_rms == 0.0:
        return -math.inf
    return float(20 * np.log10(t_rms / i_rms))


__all__ = [
    "INTERFERER_TYPES",
    "NORMALIZATIONS",
    "apply_ramp",
    "build_scenes",
    "check_normalization",
    "half_cosine_ramp",
    "load_speech_weight",
    "measured_snr",
    "mix_scene",
    "normalize_to_int16",
    "read_wav64",
    "render_key",
    "render_record_path",
    "render_scene",
    "render_scenes",
    "scene_done",
    "scene_output_paths",
    "shard_indices",
    "weighted_rms",
    "write_scenes",
]
