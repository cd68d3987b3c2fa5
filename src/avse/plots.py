"""Figures a person would rather look at than read: scenes, lip/speech agreement, before/after, mouth crops, scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from avse import SAMPLE_RATE, VIDEO_FPS
from avse.errors import ConfigError
from avse.utils.fs import atomic_path


def _pyplot():
    """matplotlib.pyplot on the Agg backend (files only, no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as a PNG at ``dpi`` to ``path`` atomically and close it -> the path."""
    plt = _pyplot()
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path


def _log_spec(x: np.ndarray) -> np.ndarray:
    """x [T] at 16 kHz -> magnitude in dB [F, N] (the models' STFT)."""
    import torch

    from avse.audio.features import StftConfig, stft

    spec = stft(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)), StftConfig())  # [F, N]
    return 20.0 * np.log10(spec.abs().numpy() + 1e-6)


def _spectrogram(ax, x: np.ndarray, vmax: float) -> None:
    """Draw the spectrogram of x [T] (16 kHz) on ``ax``: seconds by kHz, 80 dB below ``vmax`` to ``vmax``."""
    ax.imshow(_log_spec(x), origin="lower", aspect="auto", cmap="magma", vmin=vmax - 80, vmax=vmax,
              extent=(0, len(x) / SAMPLE_RATE, 0, SAMPLE_RATE / 2000))


def scene_overview(
    path: str | Path,
    mixed: np.ndarray,
    target: np.ndarray,
    interferer: np.ndarray,
    frames: np.ndarray,
    lips: np.ndarray,
    title: str = "",
    n_strip: int = 8,
) -> Path:
    """Write a PNG overview of one scene.

    mixed, target, interferer [T] at 16 kHz; frames uint8 [N, H, W, 3] of the
    target's video; lips [N, 40, 2] lip landmarks in frame pixels. Shows the
    waveforms, the three spectrograms and a strip of ``n_strip`` frames with the
    landmarks drawn. Returns the path.
    """
    plt = _pyplot()
    t = np.arange(len(mixed)) / SAMPLE_RATE
    fig = plt.figure(figsize=(14, 11), constrained_layout=True)
    gs = fig.add_gridspec(5, n_strip, height_ratios=[1.0, 1.0, 1.0, 1.0, 1.3])
    ax = fig.add_subplot(gs[0, :])
    ax.plot(t, mixed, lw=0.5, color="0.5", label="mixed")
    ax.plot(t, target, lw=0.5, color="C0", alpha=0.8, label="target")
    ax.set_xlim(0, t[-1])
    ax.set_ylabel("amplitude")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title)
    vmax = float(_log_spec(mixed).max())
    for row, (name, sig) in enumerate((("mixed", mixed), ("target", target), ("interferer", interferer)), start=1):
        ax = fig.add_subplot(gs[row, :])
        _spectrogram(ax, sig, vmax)
        ax.set_ylabel(f"{name}\nkHz")
    ax.set_xlabel("time (s)")
    idx = np.linspace(0, len(frames) - 1, n_strip).round().astype(int)
    for k, i in enumerate(idx):
        ax = fig.add_subplot(gs[4, k])
        ax.imshow(frames[i])
        ax.plot(lips[i, :20, 0], lips[i, :20, 1], ".", ms=2, color="lime")
        ax.plot(lips[i, 20:, 0], lips[i, 20:, 1], ".", ms=2, color="cyan")
        ax.set_title(f"{i / VIDEO_FPS:.2f} s", fontsize=8)
        ax.axis("off")
    return _save(fig, path, dpi=90)


def enhancement_report(
    path: str | Path,
    signals: dict[str, np.ndarray],
    crops: np.ndarray | None = None,
    opening: np.ndarray | None = None,
    title: str = "",
    n_strip: int = 10,
) -> Path:
    """Write a before/after PNG: one spectrogram per signal, the mouth track under them, a strip of mouth crops.

    ``signals`` maps a row label (e.g. "noisy input", "enhanced (av)", "clean
    target") to audio [T] at 16 kHz, drawn top to bottom on one colour scale
    (that of the first). ``opening`` [N] (mouth opening per video frame, e.g.
    avse.video.landmarks.mouth_opening) is drawn on the same time axis; ``crops``
    uint8 [N, H, W] (mouth crops) gives a strip of ``n_strip`` evenly spaced
    frames. Returns the path.
    """
    plt = _pyplot()
    if not signals:
        raise ConfigError("enhancement_report needs at least one signal")
    rows = len(signals) + (opening is not None) + (crops is not None)
    ratios = [1.0] * len(signals) + [0.6] * (opening is not None) + [0.9] * (crops is not None)
    fig = plt.figure(figsize=(13, 2.3 * rows), constrained_layout=True)
    gs = fig.add_gridspec(rows, n_strip, height_ratios=ratios)
    first = next(iter(signals.values()))
    vmax = float(_log_spec(first).max())
    seconds = len(first) / SAMPLE_RATE
    ax = None
    for row, (name, sig) in enumerate(signals.items()):
        ax = fig.add_subplot(gs[row, :], sharex=ax)
        _spectrogram(ax, sig, vmax)
        ax.set_ylabel(f"{name}\nkHz", fontsize=9)
        if row == 0 and title:
            ax.set_title(title)
    row = len(signals)
    if opening is not None:
        ax = fig.add_subplot(gs[row, :], sharex=ax)
        t = (np.arange(len(opening)) + 0.5) / VIDEO_FPS
        ax.plot(t, opening, color="C2", lw=1.2)
        ax.set_ylabel("mouth\nopening", fontsize=9)
        ax.set_xlim(0, seconds)
        ax.grid(alpha=0.3)
        row += 1
    if ax is not None:
        ax.set_xlabel("time (s)")
    if crops is not None and len(crops):
        idx = np.linspace(0, len(crops) - 1, min(n_strip, len(crops))).round().astype(int)
        for k, i in enumerate(idx):
            cax = fig.add_subplot(gs[row, k])
            cax.imshow(crops[i], cmap="gray", vmin=0, vmax=255)
            cax.set_title(f"{i / VIDEO_FPS:.2f} s", fontsize=8)
            cax.axis("off")
    return _save(fig, path, dpi=90)


def agreement_plot(path: str | Path, opening: np.ndarray, energy_db: np.ndarray, corrs: np.ndarray, lags: np.ndarray) -> Path:
    """Write a PNG: one utterance's mouth opening [N] over its frame energy [N] (dB), and histograms of
    the per-utterance correlation ``corrs`` [U] and best lag ``lags`` [U] (frames)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.5), constrained_layout=True)
    ax = axes[0]
    tt = np.arange(len(opening)) / VIDEO_FPS
    ax.plot(tt, (opening - opening.mean()) / (opening.std() + 1e-9), label="mouth opening")
    ax.plot(tt, (energy_db - energy_db.mean()) / (energy_db.std() + 1e-9), label="speech energy")
    ax.set_xlabel("time (s)")
    ax.legend(fontsize=8)
    ax.set_title("one utterance (z-scored)")
    axes[1].hist(corrs, bins=20, range=(-1, 1), color="C0")
    axes[1].axvline(np.mean(corrs), color="k", ls="--", label=f"mean {np.mean(corrs):.2f}")
    axes[1].set_xlabel("Pearson r at lag 0")
    axes[1].legend(fontsize=8)
    axes[2].hist(lags, bins=np.arange(-5.5, 6.5, 1.0), color="C1")
    axes[2].set_xlabel(f"best lag (frames of {1000 // VIDEO_FPS} ms)")
    return _save(fig, path, dpi=90)


def mouth_track_plot(path: str | Path, opening: np.ndarray, audio: np.ndarray, offset_ms: float | None = None, title: str = "") -> Path:
    """Write a PNG of the talker's mouth opening [N] (per 25 fps frame) over the speech ``audio`` [T] (16 kHz).

    The speech is drawn as its per-frame energy in dB (``avse.video.sync.frame_energy_db``)
    on a second axis, on the same time axis as the opening, so a person can see whether the
    lips move with the voice; ``offset_ms`` (the A/V offset found) goes in the title.
    """
    from avse.video.sync import frame_energy_db

    plt = _pyplot()
    opening = np.asarray(opening, dtype=np.float64).reshape(-1)
    energy = frame_energy_db(np.asarray(audio, dtype=np.float32).reshape(-1), len(opening))  # [N]
    t = (np.arange(len(opening)) + 0.5) / VIDEO_FPS
    fig, ax = plt.subplots(figsize=(13, 2.6), constrained_layout=True)
    ax.plot(t, opening, color="C2", lw=1.4, label="mouth opening")
    ax.set_ylabel("mouth opening", color="C2")
    ax.set_xlabel("time (s)")
    ax.set_xlim(0, max(t[-1] if len(t) else 0.0, 1.0 / VIDEO_FPS))
    ax.grid(alpha=0.3)
    ax2 = ax.twinx()
    ax2.fill_between(t, energy.min(), energy, color="C0", alpha=0.25, step="mid", label="speech energy")
    ax2.set_ylabel("speech energy (dB)", color="C0")
    parts = [title] if title else []
    if offset_ms is not None and np.isfinite(offset_ms):
        parts.append(f"A/V offset found: {offset_ms:+.0f} ms (positive: audio late)")
    ax.set_title("; ".join(parts) or "mouth opening and speech")
    return _save(fig, path, dpi=90)


def contact_sheet(path: str | Path, crops: np.ndarray, every: int = 1, cols: int = 10, scale: int = 1) -> Path:
    """Write a PNG grid of crops uint8 [N, H, W] (gray; or [N, H, W, 3] RGB), frame numbers under each.

    Shows crops 0, every, 2 * every, ... in rows of ``cols`` tiles, each enlarged ``scale`` times
    (nearest neighbour, so pixels stay pixels). Returns the path.
    """
    import cv2

    crops = np.asarray(crops)
    if crops.dtype != np.uint8 or crops.ndim not in (3, 4) or len(crops) == 0:
        raise ConfigError(f"crops must be uint8 [N, H, W] or [N, H, W, 3], N > 0; got {crops.dtype} {crops.shape}")
    if every < 1 or cols < 1 or scale < 1:
        raise ConfigError(f"every, cols and scale must be >= 1, got {every}, {cols}, {scale}")
    idx = np.arange(0, len(crops), every)
    tiles = crops[idx] if crops.ndim == 4 else np.repeat(crops[idx][..., None], 3, axis=-1)  # [M, H, W, 3] RGB
    h, w = tiles.shape[1] * scale, tiles.shape[2] * scale
    label, gap = 14, 2
    rows = -(-len(idx) // cols)
    sheet = np.full((rows * (h + label + gap) + gap, min(cols, len(idx)) * (w + gap) + gap, 3), 255, np.uint8)
    for k, (i, tile) in enumerate(zip(idx, tiles)):
        y = gap + (k // cols) * (h + label + gap)
        x = gap + (k % cols) * (w + gap)
        sheet[y : y + h, x : x + w] = cv2.resize(tile, (w, h), interpolation=cv2.INTER_NEAREST)
        cv2.putText(sheet, str(int(i)), (x + 2, y + h + label - 3), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1,
                    cv2.LINE_AA)
    ok, png = cv2.imencode(".png", cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - cv2 encodes any uint8 image
        raise ConfigError("PNG encoding failed")
    with atomic_path(path) as tmp:
        tmp.write_bytes(png.tobytes())
    return Path(path)


def plot_histograms(path: str | Path, rows: list[dict[str, Any]], metrics: Sequence[str], title: str = "") -> Path:
    """Write a PNG with one histogram per metric over ``rows`` (dicts metric -> float; finite values), the mean marked.

    Returns the path.
    """
    plt = _pyplot()
    n = len(metrics)
    cols = min(n, 3)
    nrows = math.ceil(n / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.2 * nrows), squeeze=False, constrained_layout=True)
    for ax, name in zip(axes.ravel(), metrics):
        vals = np.asarray([r[name] for r in rows if math.isfinite(r[name])])  # [n_finite]
        if vals.size:
            ax.hist(vals, bins=min(30, max(5, vals.size // 2)), color="C0", alpha=0.8)
            ax.axvline(vals.mean(), color="C3", lw=1.5, label=f"mean {vals.mean():.2f}")
            ax.legend(fontsize=8)
        ax.set_title(f"{name} (n={vals.size})")
        ax.set_ylabel("items")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path, dpi=100)


def plot_improvement_vs_snr(path: str | Path, rows: list[dict[str, Any]], title: str = "", bin_db: float = 5.0) -> Path:
    """Write a PNG of SI-SDRi against input SNR: items coloured by interferer type, means in ``bin_db`` bins.

    ``rows`` are dicts with "si_sdri", "input_snr" (dB) and "interferer_type". Returns the path.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5), constrained_layout=True)
    ok = [r for r in rows if math.isfinite(r["si_sdri"])]
    for i, kind in enumerate(sorted({r["interferer_type"] for r in ok})):
        sub = [r for r in ok if r["interferer_type"] == kind]
        ax.scatter([r["input_snr"] for r in sub], [r["si_sdri"] for r in sub], s=14, alpha=0.7,
                   color=f"C{i}", label=kind)
    if ok:
        snr = np.asarray([r["input_snr"] for r in ok])  # [n]
        imp = np.asarray([r["si_sdri"] for r in ok])  # [n]
        edges = np.arange(np.floor(snr.min() / bin_db) * bin_db, snr.max() + bin_db, bin_db)
        which = np.clip(np.digitize(snr, edges) - 1, 0, max(len(edges) - 2, 0))
        centres, means = [], []
        for b in np.unique(which):
            centres.append(edges[b] + bin_db / 2)
            means.append(imp[which == b].mean())
        ax.plot(centres, means, "k-o", lw=1.5, ms=5, label=f"mean per {bin_db:g} dB bin")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("input SNR (dB, scene)")
    ax.set_ylabel("SI-SDRi (dB)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    return _save(fig, path, dpi=100)


__all__ = [
    "agreement_plot",
    "contact_sheet",
    "enhancement_report",
    "mouth_track_plot",
    "plot_histograms",
    "plot_improvement_vs_snr",
    "scene_overview",
]
