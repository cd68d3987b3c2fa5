"""Speaker embeddings: who is talking in a recording, as a unit vector that is close for the same voice."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor, nn

from avse.errors import ConfigError
from avse.models.checkpoint import SmallAudioModel, small_config
from avse.models.overlap import HOP, MEL, SAMPLE_RATE, log_mel, mel_conv

#: a frame counts for the embedding when its loudest mel band is within this many dB of the clip's loudest bin
ACTIVE_DB = -35.0
#: inference windows (s): a long recording is embedded in pieces whose pooled statistics are combined
WINDOW_S = 30.0

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained" / "speaker.avse.pt"
MODEL_NAME = "speaker_encoder"


@dataclass(frozen=True)
class SpeakerConfig:
    """The encoder's sizes: conv channels per block (each halves the mel axis), the width of the two temporal
    convolutions after them, and the embedding's size."""

    channels: tuple[int, ...] = (16, 32, 64, 64)
    width: int = 256
    dim: int = 128

    def __post_init__(self) -> None:
        if not self.channels or any(int(c) < 1 for c in self.channels) or self.width < 1 or self.dim < 1:
            raise ConfigError(f"speaker encoder: sizes must be positive, got {self.channels}, {self.width}, {self.dim}")
        if MEL.n_mels % (1 << len(self.channels)):
            raise ConfigError(f"speaker encoder: {len(self.channels)} blocks do not divide {MEL.n_mels} mel bands")

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any], where: str = "speaker encoder") -> SpeakerConfig:
        """A config from a recipe's or a checkpoint's mapping (lists become tuples); ConfigError naming unknown keys."""
        return cast("SpeakerConfig", small_config(cls, raw, where, "speaker encoder"))


def active_mask(feats: Tensor) -> Tensor:
    """Which frames of level-free log-mel features [B, M, N] (``overlap.log_mel``) hold sound: float [B, N] of 0/1,
    the frame's loudest band within ``ACTIVE_DB`` of the clip's loudest bin."""
    return (feats.amax(dim=1) > 2.0 + ACTIVE_DB / 20.0).float()


class SpeakerEncoder(SmallAudioModel):
    """A small convolutional speaker encoder: level-free log-mel -> conv blocks over (mel, time) -> two temporal
    convolutions -> mean and standard deviation over the active frames -> a linear map to a unit vector.

    ``forward(audio [B, T]) -> embeddings [B, dim]`` (unit length). Only frames with sound count, so a voice
    with long silences (one output of a separator that gave it only some words) embeds like the same voice
    speaking throughout. Trained to tell voices apart (``avse.training.speaker``); the cosine of two embeddings
    (``similarity``) is near 1 for one voice and low for two.
    """

    MODEL_NAME = MODEL_NAME
    KIND = "a speaker encoder"
    PRETRAINED = PRETRAINED
    TRAIN_HINT = "avse train configs/speaker/speaker.yaml"
    CONFIG = SpeakerConfig

    def __init__(self, cfg: SpeakerConfig | None = None) -> None:
        super().__init__(cfg)
        self.cfg = cfg or SpeakerConfig()
        self.conv, width = mel_conv(self.cfg.channels)
        w = self.cfg.width
        self.temporal = nn.Sequential(
            nn.Conv1d(width, w, 5, padding=2), nn.BatchNorm1d(w), nn.GELU(),
            nn.Conv1d(w, w, 3, padding=2, dilation=2), nn.BatchNorm1d(w), nn.GELU())
        self.head = nn.Linear(2 * w, self.cfg.dim)

    def interface(self) -> dict[str, Any]:
        """The frame hop, mel bands and embedding size."""
        return {"hop": HOP, "n_mels": MEL.n_mels, "dim": self.cfg.dim}

    def statistics(self, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Pooling sums over the active frames: audio float [B, T] -> (count [B, 1], sum [B, W], sum of squares
        [B, W]) of the frame features, so that pieces of one recording can be pooled together."""
        if audio.dim() != 2:
            raise ConfigError(f"speaker encoder needs audio [B, T], got {tuple(audio.shape)}")
        feats = log_mel(audio)  # [B, M, N]
        mask = active_mask(feats)[:, None]  # [B, 1, N]
        h = self.conv(feats[:, None]).flatten(1, 2)  # [B, C * M', N]
        h = self.temporal(h)  # [B, W, N]
        return mask.sum(-1), (h * mask).sum(-1), (h * h * mask).sum(-1)

    def embed_statistics(self, count: Tensor, total: Tensor, squares: Tensor) -> Tensor:
        """Pooled sums (``statistics``) -> unit embeddings [B, dim]."""
        n = count.clamp_min(1.0)
        mean = total / n
        std = (squares / n - mean**2).clamp_min(1e-6).sqrt()
        return nn.functional.normalize(self.head(torch.cat([mean, std], dim=1)), dim=1)

    def forward(self, audio: Tensor) -> Tensor:
        """audio float [B, T] at 16 kHz -> unit embeddings [B, dim]."""
        return self.embed_statistics(*self.statistics(audio))

    @torch.no_grad()
    def embed(self, audio: np.ndarray) -> np.ndarray:
        """Mono audio float [T] at 16 kHz -> its unit embedding float32 [dim], pooled over its active frames
        (long audio in ``WINDOW_S`` pieces, each level-free on its own). Silence or audio shorter than an STFT window embeds as zeros."""
        x = np.asarray(audio, dtype=np.float32)
        if x.ndim != 1:
            raise ConfigError(f"speaker encoder needs mono audio [T], got shape {x.shape}")
        if len(x) <= MEL.n_fft or not np.any(x):
            return np.zeros(self.cfg.dim, np.float32)
        win = int(WINDOW_S * SAMPLE_RATE)
        sums: list[Tensor] | None = None
        for s in range(0, len(x), win):
            piece = x[s : s + win]
            if len(piece) <= MEL.n_fft:
                break
            stats = self.statistics(torch.from_numpy(piece)[None])
            sums = list(stats) if sums is None else [a + b for a, b in zip(sums, stats, strict=True)]
        assert sums is not None
        return self.embed_statistics(*sums)[0].numpy()


#: ``voices_apart``: the input's active audio is embedded in pieces of this many seconds
TURN_WINDOW_S = 2.0


def active_audio(audio: np.ndarray, frame: int = HOP) -> np.ndarray:
    """The frames of mono audio [T] that hold sound, joined: those whose RMS is within ``ACTIVE_DB`` of the
    loudest frame's -> float32 [T'] (T' a multiple of ``frame``; empty for silence, or for a loudest frame under
    -120 dBFS)."""
    x = np.asarray(audio, dtype=np.float32)
    n = len(x) // frame
    if n == 0:
        return x[:0]
    rms = np.sqrt(np.mean(x[: n * frame].reshape(n, frame).astype(np.float64) ** 2, axis=1))
    if rms.max() < 1e-6:
        return x[:0]
    keep = rms >= rms.max() * 10 ** (ACTIVE_DB / 20.0)
    return x[: n * frame].reshape(n, frame)[keep].reshape(-1)


def two_groups(emb: np.ndarray, iters: int = 10) -> tuple[float, np.ndarray]:
    """Embeddings [N, dim] (unit; N >= 2) split into the two groups that are most apart (spherical 2-means,
    started from the two least alike) -> (the cosine of the two groups' mean directions, the group of each [N]).
    ConfigError for fewer than two."""
    e = np.asarray(emb, dtype=np.float64)
    if e.ndim != 2 or len(e) < 2:
        raise ConfigError(f"two_groups needs at least 2 embeddings [N, dim], got shape {e.shape}")
    sim = e @ e.T
    np.fill_diagonal(sim, np.inf)  # two different pieces seed the groups
    i, j = np.unravel_index(int(np.argmin(sim)), sim.shape)
    centres = e[[i, j]]
    group = np.full(len(e), -1, dtype=np.int64)
    for _ in range(iters):
        new = np.argmax(e @ centres.T, axis=1)
        new[i], new[j] = 0, 1  # each seed stays in its own group, so neither is ever empty
        if np.array_equal(new, group):
            break
        group = new
        centres = np.stack([e[group == k].sum(0) for k in (0, 1)])
        centres /= np.linalg.norm(centres, axis=1, keepdims=True).clip(1e-12)
    return float(centres[0] @ centres[1]), group


def voices_apart(enc: SpeakerEncoder, audio: np.ndarray, window_s: float = TURN_WINDOW_S) -> float | None:
    """Is more than one voice talking in turn in this recording? Mono audio [T] at 16 kHz -> the cosine of the
    two most different groups of the pieces of its active audio (``active_audio``, cut into as many equal pieces
    as hold ``window_s`` each, so each lasts ``window_s`` to twice that; ``two_groups``): near 1 when one voice
    talks throughout, lower when two take turns. None when there is sound for fewer than two pieces. Unlike
    comparing a separator's two outputs, this reads the recording as it is, without what a separator leaks from
    one output into the other. The more pieces, the nearer 1 a lone voice's groups should come (their means
    steady), so a threshold set on recordings of a few pieces lets more long recordings pass (expected, not
    measured)."""
    x = active_audio(audio)
    w = int(window_s * SAMPLE_RATE)
    n = len(x) // w
    if n < 2:
        return None
    step = len(x) // n
    emb = np.stack([enc.embed(x[k * step : (k + 1) * step]) for k in range(n)])
    return two_groups(emb)[0]


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """The cosine of two embeddings [dim] (``SpeakerEncoder.embed``): near 1 for one voice; 0 when either is zero."""
    na, nb = float(np.linalg.norm(a)), float(np.linalg.norm(b))
    return float(np.dot(a, b) / (na * nb)) if na > 0 and nb > 0 else 0.0


__all__ = ["SpeakerEncoder", "SpeakerConfig", "similarity", "active_mask", "active_audio", "two_groups", "voices_apart",
           "PRETRAINED", "ACTIVE_DB", "TURN_WINDOW_S"]
