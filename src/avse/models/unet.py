"""Spectrogram U-Net mask estimator (Jansson et al. 2017 style) for enhancement and separation."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avse import SAMPLE_RATE
from avse.audio.features import StftConfig, istft, stft
from avse.errors import ConfigError
from avse.models.base import SeparationModel
from avse.models.registry import register_model


@dataclass(frozen=True)
class UNetConfig:
    """Spectrogram U-Net settings; the defaults give about 1 M parameters.

    ``channels`` is the width of the first encoder layer, doubled at every
    one of the ``depth`` stride-2 layers. ``dropout`` applies to the first
    (up to) three decoder layers, as in the original U-Net for singing voice.
    """

    n_sources: int = 1
    depth: int = 5
    channels: int = 10
    kernel_size: int = 5
    dropout: float = 0.5
    n_fft: int = 512
    hop_length: int = 160
    win_length: int = 400
    window: str = "hann"

    def __post_init__(self) -> None:
        if self.n_sources < 1:
            raise ConfigError(f"n_sources must be >= 1, got {self.n_sources}")
        if self.depth < 1 or self.channels < 1:
            raise ConfigError(f"depth and channels must be >= 1, got {self.depth}, {self.channels}")
        if self.kernel_size < 3 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd and >= 3, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        _ = self.stft  # validates the STFT fields

    @property
    def stft(self) -> StftConfig:
        """The STFT (centred) the masks live on."""
        return StftConfig(SAMPLE_RATE, self.n_fft, self.hop_length, self.win_length, self.window, True)


def _down(c_in: int, c_out: int, k: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, k, stride=2, padding=k // 2), nn.BatchNorm2d(c_out), nn.LeakyReLU(0.2))


def _up(c_in: int, c_out: int, k: int, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(c_in, c_out, k, stride=2, padding=k // 2, output_padding=1),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    ]
    if dropout > 0:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


@register_model("unet")
class SpectrogramUNet(SeparationModel):
    """Magnitude-spectrogram U-Net: mixture ``[B, T]`` -> sources ``[B, S, T]`` via sigmoid masks on the complex STFT."""

    Config = UNetConfig

    def __init__(self, cfg: UNetConfig = UNetConfig()):
        super().__init__()
        self.cfg = cfg
        k, d = cfg.kernel_size, cfg.depth
        widths = [cfg.channels * 2**i for i in range(d)]  # encoder output channels per level
        self.encoder = nn.ModuleList(_down(c_in, c_out, k) for c_in, c_out in zip([1] + widths[:-1], widths))
        # decoder level i (deepest first) maps to widths[i - 1] channels, then meets the skip of encoder level i - 1
        self.decoder = nn.ModuleList(
            _up(widths[i] * (1 if i == d - 1 else 2), widths[i - 1], k, cfg.dropout if d - 1 - i < 3 else 0.0)
            for i in range(d - 1, 0, -1)
        )
        last_in = widths[0] * (1 if d == 1 else 2)
        self.head = nn.ConvTranspose2d(last_in, cfg.n_sources, k, stride=2, padding=k // 2, output_padding=1)

    @property
    def n_outputs(self) -> int:
        """S, the configured ``n_sources``."""
        return self.cfg.n_sources

    @property
    def sample_rate(self) -> int:
        """The STFT's sample rate."""
        return self.cfg.stft.sample_rate

    def masks(self, spec: Tensor) -> Tensor:
        """Complex mixture STFT ``[B, F, N]`` -> masks ``[B, S, F, N]`` in (0, 1)."""
        mag = spec.abs()  # [B, F, N]
        scale = mag.mean(dim=(-2, -1), keepdim=True) + 1e-8  # [B, 1, 1], makes the features gain-invariant
        x = torch.log1p(mag / scale)[:, None]  # [B, 1, F, N]
        n_freq, n_frames = x.shape[-2:]
        step = 2**self.cfg.depth
        x = F.pad(x, (0, -n_frames % step, 0, -n_freq % step))  # [B, 1, F', N'], multiples of 2^depth
        skips = []
        for down in self.encoder:
            x = down(x)  # [B, C_i, F' / 2^(i+1), N' / 2^(i+1)]
            skips.append(x)
        skips.pop()  # the bottleneck has no skip partner
        for up in self.decoder:
            x = up(x)  # [B, C_(i-1), ...] at the size of the next skip
            x = torch.cat([x, skips.pop()], dim=1)  # [B, 2 C_(i-1), ...]
        logits = self.head(x)  # [B, S, F', N']
        return torch.sigmoid(logits[..., :n_freq, :n_frames])  # [B, S, F, N]

    def forward(self, mixture: Tensor) -> Tensor:
        """mixture ``[B, T]`` float -> estimates ``[B, S, T]`` (S = ``n_sources``)."""
        if mixture.dim() != 2:
            raise ConfigError(f"expected a mixture [B, T], got shape {tuple(mixture.shape)}")
        cfg = self.cfg.stft
        spec = stft(mixture, cfg)  # [B, F, N] complex
        masks = self.masks(spec)  # [B, S, F, N]
        return istft(masks * spec[:, None], cfg, length=mixture.shape[-1])  # [B, S, T]
