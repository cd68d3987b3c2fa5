"""Overlapped speech detection: for every 10 ms of a recording, the chance that two or more voices sound at once."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from avse.audio.features import MelConfig, mel_spectrogram
from avse.errors import ConfigError
from avse.models.checkpoint import SmallAudioModel, small_config

SAMPLE_RATE = 16000
#: samples per output frame (10 ms at 16 kHz)
HOP = 160
#: the log-mel features: 25 ms windows every 10 ms, 64 bands up to 8 kHz
MEL = MelConfig(n_fft=512, win_length=400, hop_length=HOP, n_mels=64, fmin=50.0, power=2.0)
#: the features are taken relative to the clip's loudest bin and floored this far (dB) below it
FLOOR_DB = 80.0
#: a frame of the input counts as active (for ``overlap_share``) within this many dB of the clip's loudest frame
ACTIVE_DB = -35.0
#: inference windows (s) and their overlap (s): long recordings run in pieces so memory stays bounded
WINDOW_S = 20.0
WINDOW_OVERLAP_S = 2.0

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained" / "overlap.avse.pt"
MODEL_NAME = "overlap_detector"


@dataclass(frozen=True)
class OverlapConfig:
    """The detector's sizes: conv channels per block (each halves the mel axis), the GRU's width per direction."""

    channels: tuple[int, ...] = (8, 16, 32, 64)
    gru: int = 64

    def __post_init__(self) -> None:
        if not self.channels or any(int(c) < 1 for c in self.channels) or self.gru < 1:
            raise ConfigError(f"overlap detector: channels and gru must be positive, got {self.channels}, {self.gru}")
        if MEL.n_mels % (1 << len(self.channels)):
            raise ConfigError(f"overlap detector: {len(self.channels)} blocks do not divide {MEL.n_mels} mel bands")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "overlap detector") -> OverlapConfig:
        """A config from a recipe's or a checkpoint's mapping (lists become tuples); ConfigError naming unknown keys."""
        return cast("OverlapConfig", small_config(cls, raw, where, "overlap detector"))


def log_mel(audio: Tensor) -> Tensor:
    """Level-free log-mel features: audio float [B, T] at 16 kHz -> [B, 64, N] in dB, 0 at the clip's loudest
    bin and floored ``FLOOR_DB`` below it, N = T // 160 + 1 (10 ms frames)."""
    mel = mel_spectrogram(audio, MEL)  # [B, 64, N]
    db = 10.0 * torch.log10(mel.clamp_min(1e-12))
    top = db.amax(dim=(1, 2), keepdim=True)
    return (db - top).clamp_min(-FLOOR_DB) / 20.0 + 2.0  # about [-2, 2]


def mel_conv(channels: tuple[int, ...]) -> tuple[nn.Sequential, int]:
    """3x3 conv blocks over (mel, time), each with batch norm, GELU and a max-pool that halves the mel axis ->
    (the blocks: [B, 1, 64, N] -> [B, C, 64 >> K, N], the width C * (64 >> K) of a frame's flattened output)."""
    blocks: list[nn.Module] = []
    c_in = 1
    for c in channels:
        blocks += [nn.Conv2d(c_in, c, 3, padding=1), nn.BatchNorm2d(c), nn.GELU(), nn.MaxPool2d((2, 1))]
        c_in = c
    return nn.Sequential(*blocks), c_in * (MEL.n_mels >> len(channels))


class OverlapDetector(SmallAudioModel):
    """A small CRNN: log-mel -> conv blocks over (mel, time) -> a bidirectional GRU -> one logit per 10 ms frame.

    ``forward(audio [B, T]) -> logits [B, N]``, N = T // 160 + 1; sigmoid gives the chance that two or more
    voices sound in that frame. Level-free (the features are relative to the clip's loudest bin).
    """

    MODEL_NAME = MODEL_NAME
    KIND = "an overlap detector"
    PRETRAINED = PRETRAINED
    TRAIN_HINT = "avse train configs/overlap/overlap.yaml"
    CONFIG = OverlapConfig

    def __init__(self, cfg: OverlapConfig | None = None) -> None:
        super().__init__(cfg)
        self.cfg = cfg or OverlapConfig()
        self.conv, width = mel_conv(self.cfg.channels)
        self.gru = nn.GRU(width, self.cfg.gru, batch_first=True, bidirectional=True)
        self.head = nn.Linear(2 * self.cfg.gru, 1)

    def forward(self, audio: Tensor) -> Tensor:
        """audio float [B, T] at 16 kHz -> logits [B, N] (one per 10 ms frame)."""
        if audio.dim() != 2:
            raise ConfigError(f"overlap detector needs audio [B, T], got {tuple(audio.shape)}")
        x = self.conv(log_mel(audio)[:, None])  # [B, C, M', N]
        x = x.flatten(1, 2).transpose(1, 2)  # [B, N, C * M']
        return self.head(self.gru(x)[0])[..., 0]  # [B, N]

    def interface(self) -> dict[str, Any]:
        """The frame hop and mel bands."""
        return {"hop": HOP, "n_mels": MEL.n_mels}

    @torch.no_grad()
    def frame_probs(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio float [T] at 16 kHz -> float32 [N]: the chance of two or more voices in each 10 ms frame
        (N = T // 160 + 1). Runs in ``WINDOW_S`` pieces that overlap by ``WINDOW_OVERLAP_S`` (each frame is taken
        from a piece where it lies at least half the overlap from an edge). Audio shorter than one STFT window is
        padded with silence for the features."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ConfigError(f"overlap detector needs mono audio [T], got shape {x.shape}")
        n = len(x) // HOP + 1
        if len(x) <= MEL.n_fft:  # the centred STFT needs more than a window's worth
            return self.frame_probs(np.pad(x, (0, MEL.n_fft + 1 - len(x))))[:n]
        win, step = int(WINDOW_S * SAMPLE_RATE), int((WINDOW_S - WINDOW_OVERLAP_S) * SAMPLE_RATE)
        out = np.zeros(n, np.float32)
        start = 0
        while True:
            piece = x[start : start + win]
            p = torch.sigmoid(self(torch.from_numpy(piece)[None]))[0].numpy()  # [n_piece]
            f0 = start // HOP
            keep_from = 0 if start == 0 else int(WINDOW_OVERLAP_S / 2 * SAMPLE_RATE) // HOP
            last = start + win >= len(x)
            keep_to = len(p) if last else len(p) - int(WINDOW_OVERLAP_S / 2 * SAMPLE_RATE) // HOP
            m = min(keep_to, n - f0)
            out[f0 + keep_from : f0 + m] = p[keep_from:m]
            if last:
                return out
            start += step


def frame_energy(x: np.ndarray, n: int) -> np.ndarray:
    """Energy of each 10 ms frame's 25 ms window (centred, as the features' STFT) of x [T] -> float64 [n]."""
    pad = np.pad(np.asarray(x, dtype=np.float64), (MEL.win_length // 2, MEL.win_length + HOP * n))
    c = np.concatenate([[0.0], np.cumsum(pad**2)])
    starts = np.arange(n) * HOP
    return c[starts + MEL.win_length] - c[starts]


def active_frames(audio: np.ndarray, active_db: float = ACTIVE_DB) -> np.ndarray:
    """Which 10 ms frames of audio float [T] at 16 kHz hold sound: bool [N] (N = T // 160 + 1), each frame's
    25 ms energy (``frame_energy``) within ``active_db`` of the loudest frame's."""
    n = len(audio) // HOP + 1
    e = frame_energy(audio, n)
    return e > e.max() * 10 ** (active_db / 10) if e.max() > 0 else np.zeros(n, bool)


def overlap_share(probs: np.ndarray, audio: np.ndarray, threshold: float = 0.5) -> float:
    """The share of a recording's active frames where two or more voices sound: ``probs`` [N] from
    ``frame_probs``, ``audio`` [T] the same recording -> a value in [0, 1] (0 when nothing is active)."""
    act = active_frames(audio)[: len(probs)]
    return float(np.mean(probs[: len(act)][act] >= threshold)) if act.any() else 0.0


__all__ = ["OverlapDetector", "OverlapConfig", "log_mel", "frame_energy", "active_frames", "overlap_share", "PRETRAINED", "HOP",
           "SAMPLE_RATE", "ACTIVE_DB"]
