"""Audio-visual Conv-TasNet: extracts the talker whose lips are given (visual stream fused mid-TCN) from a mixture."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME
from avse.errors import ConfigError
from avse.models.base import SeparationModel
from avse.models.registry import register_model
from avse.models.tasnet import (
    TasNetConfig,
    check_output_form,
    encode,
    mask_activation,
    output_form,
    run_blocks,
    temporal_blocks,
    temporal_norm,
)
from avse.models.visual import LipsFrontend, LipsFrontendConfig

UPSAMPLE_MODES = ("nearest", "linear")
VISUAL_NORMS = ("none", "utterance")


@dataclass(frozen=True)
class AVNetConfig:
    """AVNet settings; the audio path follows Conv-TasNet's names, defaults give about 1.8 M parameters.

    ``fusion_block`` audio-only temporal blocks run before the visual stream is
    fused, the remaining ``n_blocks * n_repeats - fusion_block`` (at least one) after it.
    ``visual_channels`` is Dv of the ``visual [B, Dv, F]`` input (a visual
    frontend's output or raw per-frame lip features, transposed). In causal
    mode an output sample t depends on audio up to ``t + kernel_size - 1`` and
    on video frames up to ``t // 640 + 1`` (at most one frame of lookahead).
    With ``lips_blocks > 0`` the visual input first passes a LipsFrontend
    (avse.models.visual: a temporal-conv net at 25 fps, ``visual_hidden``
    channels, causal when the model is), giving the fusion lip context of
    ``1 + 2 (2**lips_blocks - 1)`` frames; with 0 each frame is projected alone.
    ``visual_dropout`` is the probability, per batch item and in train mode
    only, of zeroing that item's visual stream; an all-zero stream is also the
    way to say "no video" at inference. ``visual_norm="utterance"`` removes
    each visual channel's mean over the frames with a face (a running mean
    when causal) before anything else sees it, so a talker's resting mouth
    shape and a detector's constant bias do not reach the model, only the
    movement. ``output`` is the output form of ``avse.models.tasnet.output_form``
    (``"direct"`` or ``"residual"``).
    """

    n_filters: int = 256  # N, encoder basis size
    kernel_size: int = 16  # L, encoder window in samples (stride L / 2)
    bottleneck: int = 128  # B
    hidden: int = 256  # H, channels inside a block
    skip: int = 128  # Sc, skip-connection channels
    conv_kernel: int = 3  # P, depthwise kernel
    n_blocks: int = 8  # X, blocks per repeat (dilations 1 .. 2^(X-1))
    n_repeats: int = 2  # R
    fusion_block: int = 8  # R1 blocks (audio only) before the fusion
    visual_channels: int = 82  # Dv of the visual input
    visual_hidden: int = 128  # channels of the projected visual stream
    lips_blocks: int = 0  # >0: a LipsFrontend TCN of this many blocks runs on the visual input first
    upsample: str = "nearest"  # 25 fps -> encoder frame rate: "nearest" or "linear"
    visual_dropout: float = 0.0
    causal: bool = False
    mask_activation: str = "sigmoid"
    visual_norm: str = "none"  # VISUAL_NORMS
    output: str = "direct"  # "direct" | "residual"

    def __post_init__(self) -> None:
        check_output_form(self.output, 1)
        if self.visual_norm not in VISUAL_NORMS:
            raise ConfigError(f"visual_norm must be one of {', '.join(VISUAL_NORMS)}, got {self.visual_norm!r}")
        if min(self.visual_channels, self.visual_hidden) < 1:
            raise ConfigError("visual_channels and visual_hidden must be >= 1")
        if self.lips_blocks < 0:
            raise ConfigError(f"lips_blocks must be >= 0, got {self.lips_blocks}")
        if not 0 <= self.fusion_block < self.n_blocks * self.n_repeats:  # at least one block after the fusion
            raise ConfigError(
                f"fusion_block must be in [0, {self.n_blocks * self.n_repeats - 1}] (the visual stream must reach "
                f"at least one block), got {self.fusion_block}"
            )
        if self.upsample not in UPSAMPLE_MODES:
            raise ConfigError(f"upsample must be one of {', '.join(UPSAMPLE_MODES)}, got {self.upsample!r}")
        if not 0.0 <= self.visual_dropout <= 1.0:
            raise ConfigError(f"visual_dropout must be in [0, 1], got {self.visual_dropout}")
        if self.kernel_size // 2 > SAMPLES_PER_FRAME // 4:
            raise ConfigError(f"kernel_size must be <= {SAMPLES_PER_FRAME // 2} (encoder hop within a quarter video frame)")
        self.audio_config()  # checks the audio-path sizes

    @property
    def stride(self) -> int:
        """Encoder hop in samples (half the window)."""
        return self.kernel_size // 2

    @property
    def frame_rate(self) -> float:
        """Encoder frames per second (16000 / hop)."""
        return SAMPLE_RATE / self.stride

    def audio_config(self) -> TasNetConfig:
        """The equivalent one-source Conv-TasNet config (the audio path's sizes); raises ConfigError on bad sizes."""
        return TasNetConfig(
            n_sources=1,
            n_filters=self.n_filters,
            kernel_size=self.kernel_size,
            bottleneck=self.bottleneck,
            hidden=self.hidden,
            skip=self.skip,
            conv_kernel=self.conv_kernel,
            n_blocks=self.n_blocks,
            n_repeats=self.n_repeats,
            causal=self.causal,
            mask_activation=self.mask_activation,
        )


def fit_visual_length(visual: Tensor, n_frames: int) -> Tensor:
    """visual [B, D, F] -> [B, D, n_frames]: crop, or pad by repeating the last frame."""
    f = visual.shape[-1]
    if f >= n_frames:
        return visual[..., :n_frames]
    return torch.cat([visual, visual[..., -1:].expand(-1, -1, n_frames - f)], dim=-1)


def normalize_visual(visual: Tensor, causal: bool) -> Tensor:
    """visual [B, Dv, F] -> [B, Dv, F], each channel minus its mean over the frames with a face.

    All-zero frames (no face, the gap policy of ``avse.video.lipfeat``) are
    left out of the mean and stay zero. Non-causal: one mean per item over all
    its frames. Causal: frame f uses the mean of frames 0..f only.
    """
    valid = (visual.abs().sum(1, keepdim=True) > 0).to(visual.dtype)  # [B, 1, F]
    masked = visual * valid
    if causal:
        mean = masked.cumsum(-1) / valid.cumsum(-1).clamp_min(1.0)  # [B, Dv, F]
    else:
        mean = masked.sum(-1, keepdim=True) / valid.sum(-1, keepdim=True).clamp_min(1.0)  # [B, Dv, 1]
    return (visual - mean) * valid


def upsample_visual(visual: Tensor, n_enc: int, hop: int, mode: str = "nearest") -> Tensor:
    """visual [B, D, F] at 25 fps -> [B, D, n_enc] at one frame per ``hop`` samples.

    Encoder frame k is centred on sample ``k * hop`` (AVNet pads the mixture
    by ``L - hop`` on the left); video frame f covers samples
    ``[640 f, 640 (f + 1))`` and is centred on ``640 f + 320``. "nearest" takes
    the video frame containing sample ``k * hop``; "linear" interpolates
    between the two video frames whose centres bracket it. Indices past the
    last frame are clamped to it. Either way encoder frame k uses video frames
    up to ``(k * hop + 320) // 640`` only, which keeps a causal AVNet within
    one video frame of lookahead (in practice "nearest" looks ahead by the
    encoder window only, "linear" by up to half a frame more).
    """
    f = visual.shape[-1]
    centre = torch.arange(n_enc, device=visual.device, dtype=torch.float64) * hop  # [K] samples
    if mode == "nearest":
        idx = torch.div(centre, SAMPLES_PER_FRAME, rounding_mode="floor").long().clamp(0, f - 1)  # [K]
        return visual[..., idx]  # [B, D, K]
    pos = ((centre - SAMPLES_PER_FRAME / 2) / SAMPLES_PER_FRAME).clamp(0, f - 1)  # [K] in video frames
    lo = pos.floor().long()  # [K]
    hi = (lo + 1).clamp(max=f - 1)  # [K]
    w = (pos - lo).to(visual.dtype)  # [K]
    return visual[..., lo] * (1 - w) + visual[..., hi] * w  # [B, D, K]


@register_model("avnet")
class AVNet(SeparationModel):
    """Audio-visual Conv-TasNet: mixture ``[B, T]`` + the target's visual stream ``[B, Dv, F]`` -> target ``[B, T]``."""

    Config = AVNetConfig

    def __init__(self, cfg: AVNetConfig = AVNetConfig()):
        super().__init__()
        self.cfg = cfg
        acfg = cfg.audio_config()
        self.encoder = nn.Conv1d(1, cfg.n_filters, cfg.kernel_size, stride=cfg.stride, bias=False)
        self.in_norm = temporal_norm(cfg.n_filters, cfg.causal)
        self.bottleneck = nn.Conv1d(cfg.n_filters, cfg.bottleneck, 1)
        dilations = [2**x for _ in range(cfg.n_repeats) for x in range(cfg.n_blocks)]
        # the last audio block feeds the fusion; the last AV block feeds the skips only (no residual conv)
        self.audio_blocks = temporal_blocks(acfg, dilations[: cfg.fusion_block], last_residual=True)
        if cfg.lips_blocks > 0:
            lips_cfg = LipsFrontendConfig(
                n_features=cfg.visual_channels, channels=cfg.visual_hidden, n_blocks=cfg.lips_blocks, causal=cfg.causal
            )
            self.visual_frontend: nn.Module | None = LipsFrontend(lips_cfg)
            proj_in = cfg.visual_hidden
        else:
            self.visual_frontend = None
            proj_in = cfg.visual_channels
        self.visual_proj = nn.Sequential(nn.Conv1d(proj_in, cfg.visual_hidden, 1), nn.PReLU())
        self.fusion = nn.Conv1d(cfg.bottleneck + cfg.visual_hidden, cfg.bottleneck, 1)
        self.av_blocks = temporal_blocks(acfg, dilations[cfg.fusion_block :])
        self.mask_head = nn.Sequential(nn.PReLU(), nn.Conv1d(cfg.skip, cfg.n_filters, 1))
        self.decoder = nn.ConvTranspose1d(cfg.n_filters, 1, cfg.kernel_size, stride=cfg.stride, bias=False)

    @property
    def n_outputs(self) -> int:
        """One estimate: the talker whose lips are given."""
        return 1

    @property
    def visual_channels(self) -> int:
        """Dv of the visual input."""
        return self.cfg.visual_channels

    @property
    def lookahead(self) -> int | None:
        """Samples of future audio an output sample may depend on when causal (the encoder window minus one)."""
        return self.cfg.kernel_size - 1 if self.cfg.causal else None

    @property
    def video_lookahead(self) -> int | None:
        """Video frames past the current one an output sample may depend on when causal."""
        return 1 if self.cfg.causal else None

    def _drop_visual(self, visual: Tensor) -> Tensor:
        """visual [B, Dv, F] with each item zeroed with probability ``visual_dropout`` (train mode only)."""
        p = self.cfg.visual_dropout
        if not self.training or p <= 0.0:
            return visual
        keep = (torch.rand(visual.shape[0], 1, 1, device=visual.device) >= p).to(visual.dtype)  # [B, 1, 1]
        return visual * keep

    def forward(self, mixture: Tensor, visual: Tensor) -> Tensor:
        """mixture ``[B, T]`` float and visual ``[B, Dv, F]`` (25 fps, any F) -> target estimate ``[B, T]``.

        The visual stream is cropped or edge-padded to ``ceil(T / 640)`` frames.
        """
        cfg = self.cfg
        if mixture.dim() != 2:
            raise ConfigError(f"expected a mixture [B, T], got shape {tuple(mixture.shape)}")
        if visual.dim() != 3 or visual.shape[0] != mixture.shape[0] or visual.shape[1] != cfg.visual_channels:
            raise ConfigError(
                f"expected visual [B={mixture.shape[0]}, Dv={cfg.visual_channels}, F], got shape {tuple(visual.shape)}"
            )
        if visual.shape[-1] < 1:
            raise ConfigError("the visual stream has no frames")
        b, t = mixture.shape
        hop = cfg.stride
        w, left = encode(self.encoder, mixture, cfg.kernel_size, hop)  # [B, N, K]
        y = self.bottleneck(self.in_norm(w))  # [B, Bn, K]
        skips = torch.zeros(b, cfg.skip, w.shape[-1], dtype=w.dtype, device=w.device)  # [B, Sc, K]
        y, skips = run_blocks(self.audio_blocks, y, skips)
        v = fit_visual_length(self._drop_visual(visual.to(w.dtype)), -(-t // SAMPLES_PER_FRAME))  # [B, Dv, ceil(T/640)]
        if cfg.visual_norm == "utterance":
            v = normalize_visual(v, cfg.causal)
        if self.visual_frontend is not None:
            v = self.visual_frontend(v.transpose(1, 2))  # [B, Dv', F']
        v = self.visual_proj(v)  # [B, Dv', F']
        v = upsample_visual(v, w.shape[-1], hop, cfg.upsample)  # [B, Dv', K]
        y = self.fusion(torch.cat([y, v], dim=1))  # [B, Bn, K]
        y, skips = run_blocks(self.av_blocks, y, skips)
        mask = mask_activation(self.mask_head(skips), cfg.mask_activation)  # [B, N, K]
        out = self.decoder(mask * w)  # [B, 1, T']
        return output_form(out[:, :, left : left + t], mixture, cfg.output)[:, 0]  # [B, T]
