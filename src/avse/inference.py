"""Offline inference engine: overlapping 640-aligned chunks, least-squares gain matching, crossfades, source alignment, a post-filter."""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from avse import SAMPLES_PER_FRAME, VIDEO_FPS
from avse.config import check_postfilter, check_shifts
from avse.errors import ConfigError
from avse.models.base import SeparationModel

#: a model as the engine sees it: (audio float32 [L], lip features float32 [F, D] or None) -> estimates [S, L]
ChunkFn = Callable[[np.ndarray, "np.ndarray | None"], np.ndarray]
#: progress of ``run_chunked``: False (silent), True (a tqdm bar) or a callback ``(chunks done, chunks in all)``
Progress = bool | Callable[[int, int], None]


@dataclass(frozen=True)
class InferenceConfig:
    """How long inputs are cut and put back together, and when a video counts as usable.

    ``chunk_seconds`` and ``overlap_seconds`` are rounded to whole video frames
    (640 samples at 16 kHz), so every chunk starts on a lip-feature frame;
    the overlap may be at most half the chunk (so only two chunks ever
    overlap). ``match_gain`` scales every chunk's estimates by their
    least-squares gain onto the mixture chunk (the models are trained with
    SI-SDR, their output gain is arbitrary), kept within a factor
    ``max_gain_ratio`` of the gain fitted over the whole input: a chunk where
    the talker is silent holds suppressed residue only, and its own
    least-squares gain would scale that back up to the level of the noise. A
    video is used only when the face was detected (not interpolated) on at
    least ``min_face_coverage`` of its frames.
    """

    chunk_seconds: float = 10.0
    overlap_seconds: float = 1.0
    match_gain: bool = True
    max_gain_ratio: float = 2.0  # 6 dB
    min_face_coverage: float = 0.5

    def __post_init__(self) -> None:
        if not math.isfinite(self.chunk_seconds) or self.chunk_frames < 1:
            raise ConfigError(f"chunk length must be at least one video frame (0.04 s), got {self.chunk_seconds} s")
        if not math.isfinite(self.overlap_seconds) or self.overlap_seconds < 0:
            raise ConfigError(f"chunk overlap must be >= 0 s, got {self.overlap_seconds} s")
        if 2 * self.overlap_frames > self.chunk_frames:
            raise ConfigError(
                f"chunk overlap ({self.overlap_seconds} s) must be at most half the chunk ({self.chunk_seconds} s)"
            )
        if not self.max_gain_ratio >= 1.0:
            raise ConfigError(f"max_gain_ratio must be >= 1, got {self.max_gain_ratio}")
        if not 0.0 <= self.min_face_coverage <= 1.0:
            raise ConfigError(f"min_face_coverage must be in [0, 1], got {self.min_face_coverage}")

    @property
    def chunk_frames(self) -> int:
        """Chunk length in video frames."""
        return int(round(self.chunk_seconds * VIDEO_FPS))

    @property
    def overlap_frames(self) -> int:
        """Overlap of consecutive chunks in video frames."""
        return int(round(self.overlap_seconds * VIDEO_FPS))

    @property
    def chunk_samples(self) -> int:
        """Chunk length in 16 kHz samples (a multiple of 640)."""
        return self.chunk_frames * SAMPLES_PER_FRAME

    @property
    def overlap_samples(self) -> int:
        """Overlap in 16 kHz samples (a multiple of 640)."""
        return self.overlap_frames * SAMPLES_PER_FRAME


# ---------------------------------------------------------------------------------------------
# chunking maths
# ---------------------------------------------------------------------------------------------


def chunk_spans(n_samples: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """Sample spans ``(start, end)`` covering ``[0, n_samples)`` with chunks of ``chunk`` samples overlapping by ``overlap``.

    Starts are multiples of ``chunk - overlap`` (multiples of 640 when both
    are); every chunk but the last is ``chunk`` long, the last ends at
    ``n_samples`` and is longer than ``overlap``. One span when the input fits.
    """
    if n_samples < 1:
        raise ConfigError(f"nothing to chunk: {n_samples} samples")
    if chunk < 1 or overlap < 0 or 2 * overlap > chunk:
        raise ConfigError(f"need chunk >= 1 and 0 <= overlap <= chunk / 2, got chunk {chunk}, overlap {overlap}")
    hop = chunk - overlap
    spans, start = [], 0
    while start + chunk < n_samples:
        spans.append((start, start + chunk))
        start += hop
    spans.append((start, n_samples))
    return spans


def fade_in(n: int) -> np.ndarray:
    """Raised-cosine ramp float64 [n] from near 0 to near 1, symmetric: ``fade_in(n)[::-1]`` equals ``1 - fade_in(n)`` to rounding."""
    i = np.arange(n, dtype=np.float64)
    return 0.5 - 0.5 * np.cos(np.pi * (i + 0.5) / max(n, 1))


def chunk_window(spans: Sequence[tuple[int, int]], k: int) -> np.ndarray:
    """Crossfade weights float64 [L] of chunk ``k`` (L its length): the weights of all chunks sum to 1 at every sample.

    The chunk fades in over its overlap with chunk k-1 and out over its
    overlap with chunk k+1 (complementary raised-cosine ramps).
    """
    s, e = spans[k]
    w = np.ones(e - s, dtype=np.float64)
    if k > 0:
        n_in = spans[k - 1][1] - s
        w[:n_in] = fade_in(n_in)
    if k + 1 < len(spans):
        n_out = e - spans[k + 1][0]
        w[e - s - n_out :] *= 1.0 - fade_in(n_out)
    return w


def ls_gains(mixture: np.ndarray, estimates: np.ndarray) -> np.ndarray:
    """Least-squares gains float64 [S] of estimates [S, L] onto mixture [L]: g_s = <mix, est_s> / <est_s, est_s>.

    A silent estimate (energy below 1e-20 per sample) gets gain 0. A gain may
    be negative (SI-SDR does not fix the sign either).
    """
    mix = np.asarray(mixture, dtype=np.float64)
    est = np.asarray(estimates, dtype=np.float64)
    return _ratio(est @ mix, np.einsum("sl,sl->s", est, est), mix.shape[-1])


def _ratio(num: np.ndarray, den: np.ndarray, n: int) -> np.ndarray:
    """num / den per source, 0 where den (an energy over n samples) is below 1e-20 per sample."""
    floor = 1e-20 * max(n, 1)
    return np.where(den > floor, num / np.maximum(den, floor), 0.0)


def chunk_gains(num: np.ndarray, den: np.ndarray, n_samples: int, max_ratio: float) -> np.ndarray:
    """Per-chunk least-squares gains, bounded by the whole input's -> float64 [K, S].

    ``num`` [K, S] = <mix_k, est_k,s> and ``den`` [K, S] = <est_k,s, est_k,s>
    per chunk k; the whole-input gain G_s = sum_k num / sum_k den (the fit
    over all chunks at once). Chunk k's own gain num / den is kept within
    [G_s / max_ratio, G_s * max_ratio] (a gain of the wrong sign goes to the
    lower bound); chunks with a silent estimate get 0.
    """
    whole = _ratio(num.sum(0), den.sum(0), n_samples)  # [S]
    own = _ratio(num, den, n_samples)  # [K, S]
    ratio = np.divide(own, whole, out=np.ones_like(own), where=whole != 0)  # [K, S]
    bounded = whole * np.clip(ratio, 1.0 / max_ratio, max_ratio)  # [K, S]
    return np.where(den > 1e-20 * max(n_samples, 1), bounded, 0.0)


def best_permutation(reference: np.ndarray, estimates: np.ndarray) -> tuple[int, ...]:
    """The order of estimates [S, L] that best matches reference [S, L]: max summed normalised correlation.

    Returns ``perm`` with ``estimates[list(perm)]`` aligned to ``reference``;
    the identity when nothing correlates (e.g. silence in the overlap). S! orders
    are tried (S is 2 or 3).
    """
    ref, est = np.asarray(reference), np.asarray(estimates)
    s = ref.shape[0]
    # one float64 row at a time: whole signals (``run_shifted``) are long, and float64 copies of both would be large
    dots = np.zeros((s, est.shape[0]))
    ref_norm, est_norm = np.zeros(s), np.zeros(est.shape[0])
    for j in range(est.shape[0]):
        e = est[j].astype(np.float64)
        est_norm[j] = np.sqrt(np.dot(e, e))
    for i in range(s):
        r = ref[i].astype(np.float64)
        ref_norm[i] = np.sqrt(np.dot(r, r))
        for j in range(est.shape[0]):
            dots[i, j] = np.dot(r, est[j].astype(np.float64))
    corr = dots / ((ref_norm[:, None] + 1e-12) * (est_norm[None, :] + 1e-12))  # [S, S]: reference i vs estimate j
    best, best_score = tuple(range(s)), float(np.trace(corr))
    for perm in itertools.permutations(range(s)):
        score = float(sum(corr[i, j] for i, j in enumerate(perm)))
        if score > best_score + 1e-9:
            best, best_score = perm, score
    return best


#: lip-feature frames missing at the end that are filled by repeating the last one (rounding of
#: video and audio lengths); further missing frames get zeros, the models' "no video" input
EDGE_FRAMES = 2


def fit_frames(features: np.ndarray, n_frames: int) -> np.ndarray:
    """features [F, D] -> [n_frames, D]: cropped, or padded (up to ``EDGE_FRAMES`` repeats of the last frame, then zeros)."""
    f, d = features.shape
    if f >= n_frames:
        return features[:n_frames]
    edge = min(EDGE_FRAMES, n_frames - f) if f else 0
    parts = [features, np.repeat(features[-1:], edge, axis=0), np.zeros((n_frames - f - edge, d), features.dtype)]
    return np.concatenate(parts, axis=0)


def run_chunked(
    fn: ChunkFn,
    audio: np.ndarray,
    features: np.ndarray | None = None,
    config: InferenceConfig = InferenceConfig(),
    align: bool = False,
    progress: Progress = False,
) -> tuple[np.ndarray, int]:
    """Run ``fn`` over ``audio`` float32 [T] (16 kHz) in overlapping chunks -> (estimates float32 [S, T], number of chunks).

    ``features`` float32 [F, D] lip features at 25 fps (frame f = samples
    640 f .. 640 f + 639) are fitted to ceil(T / 640) frames (``fit_frames``)
    and sliced with the audio: a chunk starting at sample 640 j gets frames
    j, j + 1, ... When ``align`` (blind separation: the order of the sources
    is arbitrary per chunk) each chunk's estimates are put in the order of the
    previous chunk's by their correlation in the overlap. With
    ``config.match_gain`` every chunk's estimates are scaled by their
    least-squares gains onto the mixture chunk (``chunk_gains``: bounded by
    the whole input's). Then the chunks are crossfaded (``chunk_window``).
    The model sees one chunk at a time; the raw estimates are kept (about the
    size of the output) until the gains are known. A tqdm bar (stderr) counts
    chunks when ``progress`` is True and there are several; a callable
    ``progress(done, total)`` is called with 0 before the first chunk and
    after every chunk (e.g. a UI's progress bar).
    """
    audio = np.asarray(audio, dtype=np.float32)
    t = audio.shape[0]
    spans = chunk_spans(t, config.chunk_samples, config.overlap_samples)
    if features is not None:
        features = fit_frames(np.asarray(features, dtype=np.float32), -(-t // SAMPLES_PER_FRAME))  # [ceil(T/640), D]
    bar = None
    report = progress if callable(progress) else None
    if report is not None:
        report(0, len(spans))
    elif progress and len(spans) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(spans), unit="chunk", file=sys.stderr, desc="chunks", leave=False)
    parts: list[np.ndarray] = []  # per chunk: raw estimates float32 [S, L], sources aligned
    num, den = [], []  # per chunk: <mix, est> [S] and <est, est> [S]
    try:
        for s, e in spans:
            mix = audio[s:e]  # [L]
            vis = None if features is None else features[s // SAMPLES_PER_FRAME : -(-e // SAMPLES_PER_FRAME)]  # [F', D]
            est = np.asarray(fn(mix, vis), dtype=np.float32)  # [S, L]
            if est.ndim != 2 or est.shape[1] != e - s or (parts and est.shape[0] != parts[0].shape[0]):
                raise ConfigError(f"the model returned shape {est.shape} for a chunk of {e - s} samples")
            if align and parts and est.shape[0] > 1:
                prev_start, _ = spans[len(parts) - 1]
                tail = parts[-1][:, s - prev_start :]  # [S, overlap]: the previous chunk over this one's start
                est = est[list(best_permutation(tail, est[:, : tail.shape[1]]))]
            est64 = est.astype(np.float64)
            num.append(est64 @ mix.astype(np.float64))
            den.append(np.einsum("sl,sl->s", est64, est64))
            parts.append(est)
            if bar is not None:
                bar.update(1)
            if report is not None:
                report(len(parts), len(spans))
    finally:
        if bar is not None:
            bar.close()
    n_src = parts[0].shape[0]
    if config.match_gain:
        gains = chunk_gains(np.stack(num), np.stack(den), t, config.max_gain_ratio)  # [K, S]
    else:
        gains = np.ones((len(parts), n_src))
    out = np.zeros((n_src, t), np.float32)  # [S, T]
    for k, ((s, e), est) in enumerate(zip(spans, parts)):
        out[:, s:e] += (est * (gains[k][:, None] * chunk_window(spans, k))).astype(np.float32)
        parts[k] = est[:, :0]  # free it
    return out, len(spans)


# ---------------------------------------------------------------------------------------------
# models as chunk functions
# ---------------------------------------------------------------------------------------------


#: how far apart shifted runs start (``run_shifted``): about 63 ms, off the models' 16-sample encoder stride
SHIFT_SAMPLES = 1003


def run_shifted(
    fn: ChunkFn,
    audio: np.ndarray,
    features: np.ndarray | None = None,
    config: InferenceConfig = InferenceConfig(),
    align: bool = False,
    progress: Progress = False,
    shifts: int = 1,
    first: tuple[np.ndarray, int] | None = None,
) -> tuple[np.ndarray, int]:
    """``run_chunked`` ``shifts`` times and averaged -> (estimates float32 [S, T], chunks of one run).

    Run k sees ``audio`` float32 [T] delayed by k ``SHIFT_SAMPLES`` (zeros in front) and the lip features
    float32 [F, D] delayed by the nearest whole number of frames (the first frame repeated; what is left, under
    half a frame, is within the lips' own timing), so the model's frames and chunks fall elsewhere each time and
    what one placement gets wrong the others outvote. Each run's delay is cut; with ``align`` (a blind model:
    the order of its outputs is arbitrary) its outputs are first put in the first run's order
    (``best_permutation``). One run (``shifts`` 1) is ``run_chunked`` itself. A callable ``progress`` counts the
    chunks of every run, once through (with ``first``, from run 1's); a bar shows each run in turn. ``first``: run 0's
    result (``run_chunked``'s (estimates [S, T], chunks) on this same input) when it was already made; it is not run
    again, and is not changed.
    """
    shifts = check_shifts(shifts)

    def report(k: int) -> Progress:
        if not callable(progress) or shifts == 1:
            return progress
        return lambda done, total: progress(k * total + done, shifts * total)

    if first is None:
        total, chunks = run_chunked(fn, audio, features, config, align=align, progress=report(0))
    else:
        total, chunks = np.array(first[0], dtype=np.float32), first[1]  # a copy: the caller's is left as it is
    if shifts == 1:
        return total, chunks
    total = np.asarray(total, dtype=np.float32)  # summed in place (run_chunked returns a new array): outputs are large
    audio = np.asarray(audio, dtype=np.float32)
    for k in range(1, shifts):
        d = k * SHIFT_SAMPLES
        frames = int(round(d / SAMPLES_PER_FRAME))
        feats = features
        if features is not None and frames:
            feats = np.concatenate([np.repeat(np.asarray(features, dtype=np.float32)[:1], frames, axis=0), features])
        y, _ = run_chunked(fn, np.concatenate([np.zeros(d, np.float32), audio]), feats, config, align=align,
                           progress=report(k))
        y = y[:, d:]  # [S, T]
        if align and y.shape[0] > 1:
            y = y[list(best_permutation(total, y))]
        total += y
        del y
    total /= shifts
    return total, chunks


def model_fn(model: SeparationModel) -> ChunkFn:
    """Wrap a registry model as a chunk function: (audio float32 [L], features [F, D] or None) -> float32 [S, L].

    Audio-visual models get the features transposed to ``visual [1, D, F]``; a
    missing visual stream becomes all zeros (the models' "no video" input,
    ``SeparationModel.estimates``). Runs under ``torch.inference_mode`` on the
    model's device.
    """
    av = model.audio_visual
    try:
        device = next(model.parameters()).device
    except StopIteration:
        device = torch.device("cpu")

    def run(audio: np.ndarray, features: np.ndarray | None) -> np.ndarray:
        x = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None].to(device)  # [1, L]
        v = None
        if av and features is not None:
            v = torch.from_numpy(np.ascontiguousarray(features.T, dtype=np.float32))[None].to(device)  # [1, D, F]
        with torch.inference_mode():
            y = model.estimates(x, v)  # [1, S, L]
        return y[0].float().cpu().numpy()  # [S, L]

    return run


#: the post-filter's default weight of the residual (``postfilter``)
POSTFILTER_STRENGTH = 2.0
#: its STFT: 32 ms Hann windows, 8 ms hop (16 kHz)
POSTFILTER_FFT, POSTFILTER_HOP = 512, 128


def _postfilter_block(estimate: np.ndarray, mixture: np.ndarray, strength: float, floor: float) -> np.ndarray:
    """``postfilter`` on one block: estimate [L], mixture [L] float -> float64 [L]."""
    n = estimate.shape[-1]
    win = torch.hann_window(POSTFILTER_FFT, dtype=torch.float64)
    both = torch.from_numpy(np.stack([estimate, mixture]).astype(np.float64))  # [2, L]
    spec = torch.stft(both, POSTFILTER_FFT, POSTFILTER_HOP, window=win, return_complex=True)  # [2, F, K]
    est, res = spec[0], spec[1] - spec[0]  # the model's estimate, and what it took away
    power = torch.stack([est.abs() ** 2, res.abs() ** 2])[:, None]  # [2, 1, F, K]
    power = torch.nn.functional.avg_pool2d(power, (1, 3), stride=1, padding=(0, 1), count_include_pad=False)[:, 0]
    gain = (power[0] / (power[0] + strength * power[1] + 1e-20)).clamp(min=floor)  # [F, K]
    return torch.istft(est * gain, POSTFILTER_FFT, POSTFILTER_HOP, window=win, length=n).numpy()


def postfilter(
    estimate: np.ndarray,
    mixture: np.ndarray,
    strength: float = POSTFILTER_STRENGTH,
    floor_db: float = -20.0,
    block: int = 30 * 16000,
    overlap: int = 16000,
) -> np.ndarray:
    """A Wiener post-filter from the model's own split of the input: estimate [T], mixture [T] (16 kHz) -> float32 [T].

    Per STFT bin (``POSTFILTER_FFT``, ``POSTFILTER_HOP``), with E the estimate's
    spectrum and R = X - E what the model took away from the input's X, both powers
    averaged over 3 frames: gain = |E|^2 / (|E|^2 + strength |R|^2), at least
    ``floor_db``, applied to E. Where the model kept nearly everything (clean speech)
    the gain is near 1; where it judged a bin mostly noise, the noise it left there
    is turned down further. Runs in blocks of ``block`` samples crossfaded over
    ``overlap``, so memory does not grow with the input.
    """
    if estimate.shape != mixture.shape or estimate.ndim != 1:
        raise ConfigError(f"postfilter: estimate {estimate.shape} and mixture {mixture.shape} must be the same [T]")
    if check_postfilter(strength) is None or estimate.shape[0] < POSTFILTER_FFT:
        return np.asarray(estimate, dtype=np.float32)
    floor = 10.0 ** (floor_db / 20.0)
    spans = chunk_spans(estimate.shape[0], block, overlap)
    out = np.zeros(estimate.shape[0], dtype=np.float64)
    for k, (s, e) in enumerate(spans):
        piece = _postfilter_block(estimate[s:e], mixture[s:e], strength, floor) if e - s >= POSTFILTER_FFT else estimate[s:e]
        out[s:e] += chunk_window(spans, k) * piece
    return out.astype(np.float32)


__all__ = [
    "InferenceConfig",
    "Progress",
    "best_permutation",
    "chunk_gains",
    "chunk_spans",
    "chunk_window",
    "fade_in",
    "fit_frames",
    "ls_gains",
    "model_fn",
    "postfilter",
    "run_chunked",
]
