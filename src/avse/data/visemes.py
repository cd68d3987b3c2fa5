"""Phones -> visemes -> articulatory lip trajectories with coarticulation, and the mouth-opening measure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from avse import VIDEO_FPS
from avse.errors import ConfigError

# ---------------------------------------------------------------------------------------------
# Articulatory parameters. All are in [0, 1] (``open`` and ``jaw`` may exceed 1 slightly for a
# hyper-articulating speaker).
#   jaw     jaw lowering (drops the chin)
#   open    lip separation, the vertical inner-lip gap (0 = lips touching)
#   spread  lip spreading: wider mouth, flatter opening (iy, s)
#   round   rounding + protrusion: narrower, rounder, fuller lips (uw, w, sh)
#   raise   upper-lip raise showing the upper teeth (f, v, sh, s)
#   tuck    lower lip drawn in under the upper teeth (f, v)
# ---------------------------------------------------------------------------------------------

PARAM_NAMES = ("jaw", "open", "spread", "round", "raise", "tuck")
K = len(PARAM_NAMES)
JAW, OPEN, SPREAD, ROUND, RAISE, TUCK = range(K)

PHONES = (
    "aa ae ah ao aw ay b ch d dh eh er ey f g hh ih iy jh k l m n ng ow oy p r s sh t th uh uw v w y z zh pau"
).split()

# viseme: (targets jaw, open, spread, round, raise, tuck), (dominance per parameter)
_LO = 0.25  # low dominance: the parameter mostly follows the neighbours
_VISEMES: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    # silence / rest: lips closed, jaw nearly closed
    "sil": ((0.04, 0.0, 0.05, 0.0, 0.0, 0.0), (0.8, 0.8, 0.5, 0.5, 0.8, 0.8)),
    # bilabials p b m: closure (the envelope in lip_trajectory forces open = 0)
    "PP": ((0.12, 0.0, 0.10, 0.0, 0.0, 0.0), (1.2, 2.0, _LO, _LO, 2.0, 2.0)),
    # labiodentals f v: lower lip to the upper teeth
    "FF": ((0.12, 0.06, 0.25, 0.0, 0.35, 0.85), (1.2, 2.0, _LO, 0.5, 2.0, 3.0)),
    # dentals th dh: slightly open, tongue tip between the teeth
    "TH": ((0.20, 0.20, 0.25, 0.0, 0.15, 0.0), (1.0, 1.5, _LO, _LO, 1.0, 1.0)),
    # alveolar stops t d: small opening, jaw raised
    "DD": ((0.16, 0.14, 0.25, 0.0, 0.10, 0.0), (1.2, 1.0, _LO, _LO, 1.0, 1.0)),
    # n l: a little more open than the stops
    "NN": ((0.22, 0.22, 0.20, 0.0, 0.05, 0.0), (1.0, 0.8, _LO, _LO, 1.0, 1.0)),
    # velars k g ng: jaw half open, lips follow the vowel
    "KK": ((0.28, 0.26, 0.15, 0.0, 0.05, 0.0), (0.8, 0.6, _LO, _LO, 1.0, 1.0)),
    # post-alveolars ch jh sh zh: protruded, teeth close and visible
    "CH": ((0.12, 0.16, 0.0, 0.60, 0.35, 0.0), (1.5, 1.5, 1.0, 2.0, 2.0, 1.0)),
    # sibilants s z: teeth close, lips spread
    "SS": ((0.08, 0.10, 0.45, 0.0, 0.25, 0.0), (2.0, 1.5, 1.0, 1.0, 1.5, 1.0)),
    # r: slight rounding
    "RR": ((0.20, 0.20, 0.0, 0.45, 0.05, 0.0), (0.8, 0.8, 0.8, 1.5, 1.0, 1.0)),
    # w: strongly rounded, narrow
    "WW": ((0.10, 0.10, 0.0, 0.95, 0.0, 0.0), (1.0, 2.0, 2.0, 5.0, 1.0, 1.0)),
    # y: spread, small opening
    "YY": ((0.15, 0.18, 0.55, 0.0, 0.05, 0.0), (0.8, 1.0, 1.0, 1.0, 1.0, 1.0)),
    # hh: no lip target of its own (takes the neighbouring vowel)
    "HH": ((0.35, 0.35, 0.15, 0.0, 0.0, 0.0), (0.05, 0.05, 0.05, 0.05, 0.05, 0.05)),
    # vowels
    "AA": ((1.00, 1.00, 0.20, 0.0, 0.10, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "AE": ((0.85, 0.85, 0.55, 0.0, 0.15, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "AH": ((0.65, 0.65, 0.25, 0.0, 0.05, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "AO": ((0.80, 0.78, 0.0, 0.50, 0.05, 0.0), (1.0, 1.0, 1.0, 1.5, 1.0, 1.0)),
    "EH": ((0.55, 0.55, 0.55, 0.0, 0.10, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "ER": ((0.35, 0.35, 0.05, 0.45, 0.05, 0.0), (1.0, 1.0, 1.0, 1.5, 1.0, 1.0)),
    "IH": ((0.38, 0.40, 0.70, 0.0, 0.10, 0.0), (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)),
    "IY": ((0.25, 0.28, 1.00, 0.0, 0.15, 0.0), (1.0, 1.0, 1.5, 1.0, 1.0, 1.0)),
    "OH": ((0.60, 0.60, 0.0, 0.70, 0.05, 0.0), (1.0, 1.0, 1.0, 1.5, 1.0, 1.0)),
    "UH": ((0.35, 0.35, 0.0, 0.60, 0.0, 0.0), (1.0, 1.0, 1.0, 1.5, 1.0, 1.0)),
    "UW": ((0.25, 0.25, 0.0, 1.00, 0.0, 0.0), (1.0, 1.0, 1.5, 2.0, 1.0, 1.0)),
}
VISEMES = tuple(_VISEMES)

# phone -> sequence of (viseme, fraction of the phone); diphthongs glide between two targets
_PHONE_VISEMES: dict[str, tuple[tuple[str, float], ...]] = {
    "pau": (("sil", 1.0),),
    "p": (("PP", 1.0),), "b": (("PP", 1.0),), "m": (("PP", 1.0),),
    "f": (("FF", 1.0),), "v": (("FF", 1.0),),
    "th": (("TH", 1.0),), "dh": (("TH", 1.0),),
    "t": (("DD", 1.0),), "d": (("DD", 1.0),),
    "n": (("NN", 1.0),), "l": (("NN", 1.0),),
    "k": (("KK", 1.0),), "g": (("KK", 1.0),), "ng": (("KK", 1.0),),
    "ch": (("CH", 1.0),), "jh": (("CH", 1.0),), "sh": (("CH", 1.0),), "zh": (("CH", 1.0),),
    "s": (("SS", 1.0),), "z": (("SS", 1.0),),
    "r": (("RR", 1.0),), "w": (("WW", 1.0),), "y": (("YY", 1.0),), "hh": (("HH", 1.0),),
    "aa": (("AA", 1.0),), "ae": (("AE", 1.0),), "ah": (("AH", 1.0),), "ao": (("AO", 1.0),),
    "eh": (("EH", 1.0),), "er": (("ER", 1.0),), "ih": (("IH", 1.0),), "iy": (("IY", 1.0),),
    "uh": (("UH", 1.0),), "uw": (("UW", 1.0),),
    "aw": (("AA", 0.6), ("UH", 0.4)), "ay": (("AA", 0.6), ("IH", 0.4)),
    "ey": (("EH", 0.6), ("IY", 0.4)), "ow": (("OH", 0.6), ("UW", 0.4)),
    "oy": (("AO", 0.55), ("IY", 0.45)),
}  # fmt: skip
_ALIASES = {"sil": "pau", "sp": "pau", "spn": "pau", "": "pau", "_": "pau"}
BILABIALS = frozenset({"p", "b", "m"})

_TARGETS = {v: np.array(t, dtype=np.float64) for v, (t, _) in _VISEMES.items()}
_LOG_DOM = {v: np.log(np.array(d, dtype=np.float64)) for v, (_, d) in _VISEMES.items()}


def normalize_phone(symbol: str) -> str:
    """Lower-case an ARPAbet symbol and drop stress digits ('AA1' -> 'aa'); silences -> 'pau'."""
    s = symbol.strip().lower().rstrip("012")
    s = _ALIASES.get(s, s)
    if s not in _PHONE_VISEMES:
        raise ConfigError(f"unknown phone {symbol!r}: expected lowercase ARPAbet or 'pau'")
    return s


def phone_to_viseme(symbol: str) -> str:
    """The viseme class of a phone (the first one for a diphthong, e.g. 'ay' -> 'AA')."""
    return _PHONE_VISEMES[normalize_phone(symbol)][0][0]


def viseme_targets(viseme: str) -> np.ndarray:
    """Articulatory targets [K] float32 of a viseme class (order: PARAM_NAMES)."""
    if viseme not in _TARGETS:
        raise ConfigError(f"unknown viseme {viseme!r}: expected one of {', '.join(VISEMES)}")
    return _TARGETS[viseme].astype(np.float32)


def phone_targets(symbol: str) -> np.ndarray:
    """Duration-weighted mean articulatory targets [K] float32 of a phone (diphthongs averaged)."""
    parts = _PHONE_VISEMES[normalize_phone(symbol)]
    return sum((frac * _TARGETS[v] for v, frac in parts), np.zeros(K)).astype(np.float32)


def _segments(
    phones: Sequence[tuple[str, float, float]],
) -> tuple[list[str], np.ndarray, np.ndarray, list[tuple[float, float]]]:
    """Expand phones into viseme segments: names [S], centres [S], half-durations [S], bilabial spans."""
    names: list[str] = []
    centres: list[float] = []
    halves: list[float] = []
    closures: list[tuple[float, float]] = []
    for symbol, start, end in phones:
        ph = normalize_phone(symbol)
        start, end = float(start), float(end)
        if end < start:
            raise ConfigError(f"phone {symbol!r} ends ({end}) before it starts ({start})")
        if ph in BILABIALS:
            closures.append((start, end))
        t0 = start
        for vis, frac in _PHONE_VISEMES[ph]:
            t1 = t0 + frac * (end - start)
            names.append(vis)
            centres.append(0.5 * (t0 + t1))
            halves.append(0.5 * (t1 - t0))
            t0 = t1
    return names, np.array(centres), np.array(halves), closures


def closure_envelope(
    closures: Sequence[tuple[float, float]], times: np.ndarray, fps: float = VIDEO_FPS, ramp_s: float = 0.03
) -> np.ndarray:
    """Bilabial closure weight [T] in [0, 1] at ``times`` [T] (s) for closure spans [(start, end), ...].

    Each span holds 1 over itself, widened symmetrically to at least one frame period so that a short
    /p b m/ always lands on a frame centre, with a raised-cosine ramp of ``ramp_s`` on both sides.
    """
    env = np.zeros(len(times))
    min_half = 0.5 / fps + 1e-3
    for start, end in closures:
        c, h = 0.5 * (start + end), max(0.5 * (end - start), min_half)
        d = np.abs(times - c) - h  # <= 0 inside the plateau
        w = np.where(d <= 0, 1.0, 0.5 * (1 + np.cos(np.pi * np.clip(d / ramp_s, 0, 1))))
        np.maximum(env, w, out=env)
    return env


def lip_trajectory(
    phones: Sequence[tuple[str, float, float]],
    n_frames: int,
    fps: float = VIDEO_FPS,
    rng: np.random.Generator | None = None,
    *,
    articulation: float = 1.0,
    coarticulation: float = 1.0,
    jitter: float = 0.08,
    plateau: float = 0.5,
    tau_s: float = 0.025,
) -> np.ndarray:
    """Articulatory parameters [n_frames, K] float32 (PARAM_NAMES) sampled at frame centres (i + 0.5) / fps.

    phones: [(symbol, start_s, end_s), ...] lowercase ARPAbet or 'pau'. Coarticulation is a
    Cohen-Massaro dominance blend: every viseme segment s has a target T_s and, per parameter,
    a dominance D_s(t) = alpha_s * exp(-max(0, |t - c_s| - plateau * h_s) / tau) that is
    symmetric about its centre c_s (h_s its half-duration), so that the motion is centred on the
    phones (no lag between the audio and the mouth). F(t) = sum_s D_s T_s / sum_s D_s.
    Bilabials are dominant on the lip gap and, in addition, hold ``open`` at exactly 0 over their
    span (at least one frame). Frames beyond the last phone take the nearest segment's shape.

    articulation scales jaw and lip opening (hypo < 1 < hyper), coarticulation scales tau (more
    overlap between neighbours), jitter is the per-segment random spread of targets (needs
    ``rng``; none without one, so ``rng=None`` is deterministic).
    """
    if n_frames < 0:
        raise ConfigError(f"n_frames must be >= 0, got {n_frames}")
    if fps <= 0 or coarticulation <= 0 or articulation < 0:
        raise ConfigError("fps and coarticulation must be > 0 and articulation >= 0")
    times = (np.arange(n_frames) + 0.5) / fps  # [N]
    names, centres, halves, closures = _segments(phones)
    if not names:
        return np.tile(_TARGETS["sil"].astype(np.float32), (n_frames, 1))
    S = len(names)
    targets = np.stack([_TARGETS[v] for v in names])  # [S, K]
    log_dom = np.stack([_LOG_DOM[v] for v in names])  # [S, K]
    targets[:, [JAW, OPEN]] *= articulation
    if rng is not None and jitter > 0:
        targets[:, [JAW, OPEN]] *= np.exp(jitter * rng.standard_normal((S, 2)))
        targets[:, [SPREAD, ROUND]] += 0.5 * jitter * rng.standard_normal((S, 2))
    np.clip(targets, 0.0, 1.3, out=targets)
    tau = tau_s * coarticulation

    out = np.empty((n_frames, K))
    reach = 25.0 * tau  # beyond this a segment's weight is < e^-25 of a segment at its centre
    lo_edge, hi_edge = centres - halves - reach, centres + halves + reach
    chunk = 256
    for i0 in range(0, n_frames, chunk):
        t = times[i0 : i0 + chunk]  # [n]
        sel = np.nonzero((hi_edge >= t[0]) & (lo_edge <= t[-1]))[0]
        if len(sel) == 0:  # frames far past the phones: nearest segment
            sel = np.array([int(np.argmin(np.abs(centres - t.mean())))])
        d = np.maximum(0.0, np.abs(t[:, None] - centres[None, sel]) - plateau * halves[None, sel])  # [n, s]
        logw = log_dom[None, sel, :] - (d / tau)[:, :, None]  # [n, s, K]
        logw -= logw.max(axis=1, keepdims=True)
        w = np.exp(logw)
        out[i0 : i0 + chunk] = (w * targets[None, sel, :]).sum(1) / w.sum(1)  # [n, K]

    env = closure_envelope(closures, times, fps=fps)  # [N]
    keep = 1.0 - env
    out[:, OPEN] *= keep
    out[:, RAISE] *= keep
    out[:, TUCK] *= keep
    return out.astype(np.float32)
