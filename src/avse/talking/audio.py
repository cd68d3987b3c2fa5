"""Speech -> per-video-frame windows of log-mel (or MFCC) features, the talking-face models' audio input."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from avse import SAMPLES_PER_FRAME
from avse.audio.features import MelConfig, mel_spectrogram, mfcc
from avse.errors import ConfigError

#: the mel settings of the audio encoders: 16 kHz, window 800, hop 200 (80 mel frames a second), 80 mels, log
MEL = MelConfig(log=True)
#: mel frames per video frame (640 / 200)
MEL_PER_FRAME = SAMPLES_PER_FRAME / MEL.hop_length
#: mel frames in the window centred on each video frame: 16 = 0.2 s (5 video frames)
WINDOW = 16
#: rough mean and spread of the log-mel values of speech at avse's levels, for a fixed input scaling
LOG_MEL_MEAN = -6.0
LOG_MEL_STD = 3.0


def features(audio: Tensor | np.ndarray, kind: str = "mel", n_mfcc: int = 20) -> Tensor:
    """audio [..., T] at 16 kHz -> features [..., C, M] at 80 frames a second (M = 1 + T // 200).

    ``kind`` "mel": log-mel, scaled to about zero mean and unit spread (C = 80);
    "mfcc": the first ``n_mfcc`` MFCCs over 40 dB units (C = n_mfcc).
    """
    if kind == "mel":
        return (mel_spectrogram(audio, MEL) - LOG_MEL_MEAN) / LOG_MEL_STD
    if kind == "mfcc":
        return mfcc(audio, n_mfcc=n_mfcc, cfg=MEL) / 40.0
    raise ConfigError(f"audio feature kind must be 'mel' or 'mfcc', got {kind!r}")


def frame_windows(feats: Tensor, n_frames: int, width: int = WINDOW) -> Tensor:
    """features [..., C, M] -> windows [..., n_frames, C, width], one centred on each 25 fps video frame.

    Video frame i spans samples 640 i .. 640 (i + 1); its centre falls on mel frame
    3.2 i + 1.6, and its window is the ``width`` mel frames around it. Frames past either
    end repeat the edge frame (so the first and last video frames get full windows).
    """
    if n_frames < 1 or width < 1:
        raise ConfigError(f"need n_frames >= 1 and width >= 1, got {n_frames}, {width}")
    m = feats.shape[-1]
    start = torch.round(torch.arange(n_frames, dtype=torch.float64) * MEL_PER_FRAME + MEL_PER_FRAME / 2 - width / 2)
    idx = (start.long()[:, None] + torch.arange(width)[None, :]).clamp(0, m - 1)  # [N, W]
    out = feats[..., idx]  # [..., C, N, W]
    return out.movedim(-2, -3)  # [..., N, C, W]


def audio_windows(audio: Tensor | np.ndarray, n_frames: int | None = None, kind: str = "mel",
                  width: int = WINDOW) -> Tensor:
    """audio [T] (16 kHz) -> per-video-frame feature windows [N, C, width] float32.

    N defaults to ceil(T / 640). See ``features`` and ``frame_windows``.
    """
    x = torch.as_tensor(np.asarray(audio, dtype=np.float32) if not isinstance(audio, Tensor) else audio)
    if x.ndim != 1 or x.numel() == 0:
        raise ConfigError(f"audio must be a non-empty mono signal [T], got shape {tuple(x.shape)}")
    n = -(-x.numel() // SAMPLES_PER_FRAME) if n_frames is None else int(n_frames)
    return frame_windows(features(x.float(), kind), n, width).float()


__all__ = ["MEL", "MEL_PER_FRAME", "WINDOW", "features", "frame_windows", "audio_windows"]
