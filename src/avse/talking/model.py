"""The talking-face generator (speech + a reference face -> lip-synced face crops) and its discriminator."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avse.errors import ConfigError

#: first row of the aligned 96 x 96 face crop that the generator repaints (the lower face);
#: rows above it are copied from the driving frame
MASK_TOP = 44
#: rows over which the repainted region fades in above and below ``MASK_TOP``
MASK_FEATHER = 6


def lower_face_mask(size: int = 96) -> Tensor:
    """The blend mask [1, 1, size, size] in [0, 1]: 0 on the upper face, 1 on the lower face, a linear ramp between."""
    rows = torch.arange(size, dtype=torch.float32) * (96.0 / size)
    ramp = ((rows - (MASK_TOP - MASK_FEATHER)) / (2 * MASK_FEATHER)).clamp(0, 1)  # [size]
    return ramp[None, None, :, None].expand(1, 1, size, size).contiguous()


def _lrelu(x: Tensor) -> Tensor:
    return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


class EqualLinear(nn.Module):
    """Linear layer with StyleGAN's equalised learning rate: x [..., cin] -> [..., cout]."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin))
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init)))
        self.scale = 1.0 / math.sqrt(cin)
        self.activate = activate

    def forward(self, x: Tensor) -> Tensor:
        y = F.linear(x, self.weight * self.scale, self.bias)
        return _lrelu(y) if self.activate else y


class EqualConv(nn.Module):
    """Conv2d with equalised learning rate: x [B, cin, H, W] -> [B, cout, H / stride, W / stride]."""

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, bias: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.stride, self.pad, self.activate = stride, k // 2, activate

    def forward(self, x: Tensor) -> Tensor:
        y = F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.pad)
        return _lrelu(y) if self.activate else y


class ModulatedConv(nn.Module):
    """StyleGAN2's modulated (and demodulated) convolution: x [B, cin, H, W], w [B, w_dim] -> [B, cout, H', W'].

    The style ``w`` scales the input channels of the kernel (per sample); demodulation
    rescales each output channel to unit expected variance. ``up`` doubles H and W first
    (bilinear), ``noise`` adds per-pixel noise with a learned strength, then bias and leaky ReLU.
    """

    def __init__(self, cin: int, cout: int, k: int, w_dim: int, demodulate: bool = True, up: bool = False,
                 noise: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(cin * k * k)
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(())) if noise else None
        self.demodulate, self.up, self.activate, self.k = demodulate, up, activate, k

    def forward(self, x: Tensor, w: Tensor, noise: Tensor | None = None) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        s = self.affine(w)  # [B, cin]
        weight = self.weight * self.scale  # [cout, cin, k, k]
        # Modulating the activations is the same as modulating the kernel per sample (StyleGAN2's
        # non-fused path) and runs as one ordinary convolution over the batch.
        y = F.conv2d(x * s[:, :, None, None], weight, padding=self.k // 2)  # [B, cout, H, W]
        if self.demodulate:
            dcoef = torch.rsqrt((weight.pow(2).sum(dim=(2, 3))[None] * s[:, None, :].pow(2)).sum(-1) + 1e-8)  # [B, cout]
            y = y * dcoef[:, :, None, None]
        if self.noise_strength is not None:
            if noise is None:
                noise = torch.randn(y.shape[0], 1, *y.shape[-2:], device=y.device, dtype=y.dtype)
            y = y + self.noise_strength * noise
        y = y + self.bias[None, :, None, None]
        return _lrelu(y) if self.activate else y


@dataclass(frozen=True)
class TalkingFaceConfig:
    """Sizes of the talking-face generator. ``channels``: feature widths at 6, 12, 24, 48 and 96 pixels."""

    size: int = 96
    channels: tuple[int, ...] = (128, 128, 96, 64, 32)
    w_dim: int = 128
    audio_dim: int = 128
    visual_dim: int = 128
    audio_kind: str = "mel"  # "mel" (80 log-mel bands) or "mfcc"
    n_mfcc: int = 20
    audio_width: int = 16  # mel frames per video frame's window: 0.2 s
    temporal_kernel: int = 5  # video frames the temporal fusion convolutions see
    motion_to_start: bool = False  # also add each frame's motion code to the decoder's 6x6 start features

    def __post_init__(self) -> None:
        if self.size != 6 * 2 ** (len(self.channels) - 1):
            raise ConfigError(f"size {self.size} must be 6 * 2^(len(channels) - 1) = {6 * 2 ** (len(self.channels) - 1)}")
        if self.audio_kind not in ("mel", "mfcc"):
            raise ConfigError(f"audio_kind must be 'mel' or 'mfcc', got {self.audio_kind!r}")
        if self.temporal_kernel < 1 or self.temporal_kernel % 2 == 0:
            raise ConfigError(f"temporal_kernel must be odd and >= 1, got {self.temporal_kernel}")

    @property
    def audio_bins(self) -> int:
        """Feature rows of one audio window (80 mel bands or n_mfcc)."""
        return 80 if self.audio_kind == "mel" else self.n_mfcc


class AudioEncoder(nn.Module):
    """Per-frame speech windows [B, C, W] (C mel bands or MFCCs, W = 16 frames) -> embeddings [B, audio_dim]."""

    def __init__(self, bins: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=(2, 1), padding=1), nn.BatchNorm2d(64), nn.ReLU(),
            nn.Conv2d(64, 96, 3, stride=2, padding=1), nn.BatchNorm2d(96), nn.ReLU(),
            nn.Conv2d(96, 128, 3, stride=2, padding=1), nn.BatchNorm2d(128), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.out = nn.Linear(128, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.net(x[:, None]).flatten(1))  # [B, 1, C, W] -> [B, 128] -> [B, dim]


class IdentityEncoder(nn.Module):
    """pSp-style encoder of the reference frame and the driving frame's upper face.

    x [B, 6, S, S] (reference RGB and masked driving RGB, in [-1, 1]) -> (styles [B, L, w_dim],
    one per generator resolution from ``map2style`` heads on the feature pyramid; features
    [B, C_l, S_l, S_l] at each resolution, coarsest first; a pooled code [B, visual_dim]).
    """

    def __init__(self, cfg: TalkingFaceConfig):
        super().__init__()
        ch = list(reversed(cfg.channels))  # widths at 96, 48, 24, 12, 6
        self.stem = EqualConv(6, ch[0], 3)
        self.down = nn.ModuleList(
            nn.Sequential(EqualConv(ch[i], ch[i + 1], 3, stride=2), EqualConv(ch[i + 1], ch[i + 1], 3))
            for i in range(len(ch) - 1)
        )
        # pSp's coarse / medium / fine levels: style heads on the 6, 12 and 24 pixel features; the
        # 48 and 96 pixel layers take their own affine maps of the 24 pixel code
        self.map2style = nn.ModuleList(self._head(ch[n], cfg.w_dim, n) for n in range(len(ch) - 3, len(ch)))
        self.fine = nn.ModuleList(EqualLinear(cfg.w_dim, cfg.w_dim) for _ in range(len(ch) - 3))
        self.pool = EqualLinear(ch[-1], cfg.visual_dim)

    @staticmethod
    def _head(cin: int, w_dim: int, n_down: int) -> nn.Module:
        """Strided convolutions down to 6 x 6 (from level n_down of 96, 48, 24, 12, 6), pooled, then a linear map."""
        layers: list[nn.Module] = [EqualConv(cin, w_dim, 3, stride=2 if n_down < 4 else 1)]
        for _ in range(max(0, 3 - n_down)):
            layers.append(EqualConv(w_dim, w_dim, 3, stride=2))
        return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), EqualLinear(w_dim, w_dim))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor], Tensor]:
        feats = [self.stem(x)]  # [B, C, 96, 96]
        for block in self.down:
            feats.append(block(feats[-1]))  # 48, 24, 12, 6
        heads = [head(f) for head, f in zip(self.map2style, feats[len(feats) - 3:])]  # 24, 12, 6 pixels
        styles = torch.stack([lin(heads[0]) for lin in self.fine] + heads, dim=1)  # [B, L, w], finest first
        pooled = self.pool(feats[-1].mean(dim=(2, 3)))  # [B, visual_dim]
        return styles.flip(1), feats[::-1], pooled


class Generator(nn.Module):
    """StyleGAN2-like decoder: start features [B, C0, 6, 6], per-resolution styles [B, L, w_dim] and
    encoder features (coarsest first) -> RGB [B, 3, S, S] in about [-1, 1], from summed skip outputs."""

    def __init__(self, cfg: TalkingFaceConfig):
        super().__init__()
        ch = cfg.channels
        self.const = nn.Parameter(torch.zeros(1, ch[0], 6, 6))
        self.convs1 = nn.ModuleList()
        self.convs2 = nn.ModuleList()
        self.skips = nn.ModuleList()
        self.to_rgb = nn.ModuleList()
        for i, c in enumerate(ch):
            cin = ch[i - 1] if i else ch[0]
            self.convs1.append(ModulatedConv(cin, c, 3, cfg.w_dim, up=i > 0))
            self.convs2.append(ModulatedConv(c, c, 3, cfg.w_dim))
            self.skips.append(EqualConv(c, c, 1, activate=False))
            self.to_rgb.append(ModulatedConv(c, 3, 1, cfg.w_dim, demodulate=False, noise=False, activate=False))
        self.register_buffer("fixed_noise", torch.zeros(0), persistent=False)
        self.noise_mode = "random"

    def _noise(self, i: int, b: int, s: int, ref: Tensor) -> Tensor | None:
        if self.noise_mode == "random":
            return None
        gen = torch.Generator().manual_seed(1000 + i)
        return torch.randn(1, 1, s, s, generator=gen).to(ref).expand(b, 1, s, s)

    def forward(self, start: Tensor, styles: Tensor, feats: list[Tensor]) -> Tensor:
        x = start + self.const  # [B, C0, 6, 6]
        rgb: Tensor | None = None
        for i in range(len(self.convs1)):
            w = styles[:, i]  # [B, w_dim]
            x = self.convs1[i](x, w, self._noise(2 * i, x.shape[0], 6 * 2 ** i, x))  # [B, C_i, S_i, S_i]
            x = x + self.skips[i](feats[i])  # the encoder's features at this resolution
            x = self.convs2[i](x, w, self._noise(2 * i + 1, x.shape[0], 6 * 2 ** i, x))
            y = self.to_rgb[i](x, w)  # [B, 3, S_i, S_i]
            rgb = y if rgb is None else F.interpolate(rgb, scale_factor=2, mode="bilinear", align_corners=False) + y
        assert rgb is not None
        return rgb


class TalkingFaceNet(nn.Module):
    """Speech windows + a reference face + the driving frames' upper faces -> face crops.

    forward(audio [B, T, C, W], reference [B, 3, S, S], driving [B, T, 3, S, S]) -> dict with
    ``frames`` [B, T, 3, S, S] in [-1, 1] (the lower face repainted, the upper face the driving
    frames'), ``raw`` (the generator's whole frame), ``canonical`` [B, w_dim] and ``motion``
    [B, T, w_dim] codes. Images are in [-1, 1]; T is any number of consecutive 25 fps frames.
    """

    mask: Tensor  # [1, 1, S, S] the lower-face blend mask (a buffer)

    def __init__(self, cfg: TalkingFaceConfig = TalkingFaceConfig()):
        super().__init__()
        self.cfg = cfg
        self.audio = AudioEncoder(cfg.audio_bins, cfg.audio_dim)
        self.identity = IdentityEncoder(cfg)
        k = cfg.temporal_kernel
        self.audio_time = nn.Conv1d(cfg.audio_dim, cfg.audio_dim, k, padding=k // 2)
        self.visual_time = nn.Conv1d(cfg.visual_dim, cfg.visual_dim, k, padding=k // 2)
        self.fuse = nn.Linear(cfg.audio_dim + cfg.visual_dim, cfg.w_dim)
        self.canonical = nn.Sequential(EqualLinear(cfg.visual_dim, cfg.w_dim, activate=True), EqualLinear(cfg.w_dim, cfg.w_dim))
        self.motion = nn.Sequential(
            EqualLinear(cfg.w_dim, cfg.w_dim, activate=True), EqualLinear(cfg.w_dim, cfg.w_dim, activate=True),
            EqualLinear(cfg.w_dim, cfg.w_dim),
        )
        self.generator = Generator(cfg)
        self.motion_start = None
        if cfg.motion_to_start:  # a direct path for the speech into the mouth's layout (starts as a no-op)
            self.motion_start = EqualLinear(cfg.w_dim, cfg.channels[0])
            nn.init.zeros_(self.motion_start.weight)
        self.register_buffer("mask", lower_face_mask(cfg.size), persistent=False)

    def forward(self, audio: Tensor, reference: Tensor, driving: Tensor) -> dict[str, Tensor]:
        b, t = audio.shape[:2]
        s = self.cfg.size
        if reference.shape[-2:] != (s, s) or driving.shape[:2] != (b, t):
            raise ConfigError(f"reference [B, 3, {s}, {s}] and driving [B={b}, T={t}, 3, {s}, {s}] expected, "
                              f"got {tuple(reference.shape)} and {tuple(driving.shape)}")
        reference, driving = reference.contiguous(), driving.contiguous()  # see Discriminator.forward
        masked = driving * (1.0 - self.mask)  # [B, T, 3, S, S]: the lower face hidden
        x = torch.cat([reference[:, None].expand(b, t, 3, s, s), masked], dim=2).flatten(0, 1)  # [B*T, 6, S, S]
        styles, feats, pooled = self.identity(x)  # [B*T, L, w], pyramid, [B*T, Dv]
        a = self.audio(audio.flatten(0, 1)).view(b, t, -1)  # [B, T, Da]
        v = pooled.view(b, t, -1)  # [B, T, Dv]
        a = self.audio_time(a.transpose(1, 2)).transpose(1, 2)  # temporal fusion, per modality
        v_t = self.visual_time(v.transpose(1, 2)).transpose(1, 2)
        fused = self.fuse(torch.cat([a, v_t], dim=-1))  # [B, T, w]
        ref_in = torch.cat([reference, reference * (1.0 - self.mask[0])], dim=1)  # [B, 6, S, S]
        canonical = self.canonical(self.identity(ref_in)[2])  # [B, w]: the reference's neutral code
        motion = self.motion(fused)  # [B, T, w]
        w = styles + (canonical[:, None] + motion).flatten(0, 1)[:, None]  # [B*T, L, w]
        start = feats[0]  # [B*T, C0, 6, 6]
        if self.motion_start is not None:
            start = start + self.motion_start(motion.flatten(0, 1))[:, :, None, None]
        raw = self.generator(start, w, feats)  # [B*T, 3, S, S]
        raw = raw.view(b, t, 3, s, s)
        frames = self.mask * raw + (1.0 - self.mask) * driving
        return {"frames": frames, "raw": raw, "canonical": canonical, "motion": motion}


class Discriminator(nn.Module):
    """StyleGAN2-like residual discriminator with a minibatch standard-deviation layer.

    x [B, 3, S, S] in [-1, 1] -> (logits [B], features: list of [B, C, H, W] after each block,
    for feature matching).
    """

    def __init__(self, cfg: TalkingFaceConfig = TalkingFaceConfig(), group: int = 4):
        super().__init__()
        ch = list(reversed(cfg.channels))  # 96 -> 6
        self.from_rgb = EqualConv(3, ch[0], 1)
        self.blocks = nn.ModuleList()
        self.shortcuts = nn.ModuleList()
        for i in range(len(ch) - 1):
            self.blocks.append(nn.Sequential(EqualConv(ch[i], ch[i], 3), EqualConv(ch[i], ch[i + 1], 3, stride=2)))
            self.shortcuts.append(EqualConv(ch[i], ch[i + 1], 1, stride=2, bias=False, activate=False))
        self.group = group
        self.final_conv = EqualConv(ch[-1] + 1, ch[-1], 3)
        self.final = nn.Sequential(EqualLinear(ch[-1] * 36, ch[-1], activate=True), EqualLinear(ch[-1], 1))

    def forward(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        # contiguous: torch 2.13's CPU convolution backward corrupts memory on channels-last
        # input here (a permuted [B, H, W, 3] image stack), so such input is copied first
        h = self.from_rgb(x.contiguous())  # [B, C, 96, 96]
        feats = []
        for block, short in zip(self.blocks, self.shortcuts):
            h = (block(h) + short(h)) / math.sqrt(2.0)  # halves the size
            feats.append(h)
        b, c, hh, ww = h.shape
        g = min(self.group, b)
        while b % g:
            g -= 1
        std = h.view(g, -1, c, hh, ww).var(0, unbiased=False).add(1e-8).sqrt().mean(dim=(1, 2, 3))  # [B / g]
        std = std.view(-1, 1, 1, 1).repeat(g, 1, hh, ww)  # [B, 1, H, W]
        h = self.final_conv(torch.cat([h, std], dim=1))
        return self.final(h.flatten(1)).squeeze(1), feats


def config_dict(cfg: TalkingFaceConfig) -> dict:
    """The config as a plain dict (tuples as lists), for checkpoints."""
    d = asdict(cfg)
    d["channels"] = list(cfg.channels)
    return d


__all__ = [
    "MASK_TOP", "MASK_FEATHER", "lower_face_mask", "ModulatedConv", "TalkingFaceConfig", "AudioEncoder",
    "IdentityEncoder", "Generator", "TalkingFaceNet", "Discriminator", "config_dict",
]
