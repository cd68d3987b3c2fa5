"""Visual frontends: a temporal-conv net over lip features and the LRW lipreading net (3-D stem, ResNet-18, DC-TCN) over mouth crops."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avse.errors import ConfigError

ACTIVATIONS = ("relu", "prelu", "swish")


def _act(kind: str, channels: int) -> nn.Module:
    """Activation ``kind`` (relu / prelu with one slope per channel / swish = x * sigmoid(x))."""
    if kind == "relu":
        return nn.ReLU()
    if kind == "prelu":
        return nn.PReLU(channels)
    if kind == "swish":
        return nn.SiLU()
    raise ConfigError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {kind!r}")


# ---------------------------------------------------------------------------------------------
# Lip-feature frontend
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LipsFrontendConfig:
    """Temporal-conv frontend over lip features (avse.video.lipfeat, 82 per frame).

    ``n_blocks`` residual blocks with dilations 1, 2, 4, ...; receptive field
    ``1 + (kernel_size - 1) * (2**n_blocks - 1)`` frames. With ``causal`` every
    convolution pads on the left only, so output frame f sees input frames <= f.
    """

    n_features: int = 82
    channels: int = 128  # D, output feature size
    kernel_size: int = 3
    n_blocks: int = 4
    dropout: float = 0.0
    causal: bool = False

    def __post_init__(self) -> None:
        if min(self.n_features, self.channels, self.n_blocks) < 1:
            raise ConfigError("LipsFrontend sizes must all be >= 1")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(f"kernel_size must be odd, got {self.kernel_size}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")


class FrameLayerNorm(nn.Module):
    """Layer norm over channels of each frame of ``x [B, C, F]`` separately (no mixing across time, so causal)."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, F] -> [B, C, F]."""
        return self.norm(x.transpose(1, 2)).transpose(1, 2)


class _LipsBlock(nn.Module):
    """Residual block: dilated conv -> frame layer norm -> PReLU -> dropout -> 1x1 conv, plus the input."""

    def __init__(self, cfg: LipsFrontendConfig, dilation: int):
        super().__init__()
        span = (cfg.kernel_size - 1) * dilation
        self.pad = (span, 0) if cfg.causal else (span // 2, span - span // 2)
        self.conv = nn.Conv1d(cfg.channels, cfg.channels, cfg.kernel_size, dilation=dilation)
        self.norm = FrameLayerNorm(cfg.channels)
        self.act = nn.PReLU(cfg.channels)
        self.drop = nn.Dropout(cfg.dropout)
        self.proj = nn.Conv1d(cfg.channels, cfg.channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, D, F] -> [B, D, F]."""
        y = self.conv(F.pad(x, self.pad))  # [B, D, F]
        y = self.drop(self.act(self.norm(y)))  # [B, D, F]
        return x + self.proj(y)  # [B, D, F]


class LipsFrontend(nn.Module):
    """Lip features ``[B, F, 82]`` -> visual embedding ``[B, D, F]`` (one vector per video frame)."""

    Config = LipsFrontendConfig

    def __init__(self, cfg: LipsFrontendConfig = LipsFrontendConfig()):
        super().__init__()
        self.cfg = cfg
        self.in_proj = nn.Conv1d(cfg.n_features, cfg.channels, 1)
        self.blocks = nn.ModuleList(_LipsBlock(cfg, 2**i) for i in range(cfg.n_blocks))

    @classmethod
    def from_config(cls, cfg: LipsFrontendConfig) -> LipsFrontend:
        """Build the frontend of ``cfg``."""
        return cls(cfg)

    @property
    def out_channels(self) -> int:
        """D, the size of each output vector."""
        return self.cfg.channels

    @property
    def receptive_field(self) -> int:
        """Input frames one output frame depends on."""
        return 1 + (self.cfg.kernel_size - 1) * (2**self.cfg.n_blocks - 1)

    def forward(self, features: Tensor) -> Tensor:
        """features [B, F, n_features] float -> [B, D, F]."""
        if features.dim() != 3 or features.shape[-1] != self.cfg.n_features:
            raise ConfigError(f"expected lip features [B, F, {self.cfg.n_features}], got shape {tuple(features.shape)}")
        x = self.in_proj(features.transpose(1, 2))  # [B, D, F]
        for block in self.blocks:
            x = block(x)  # [B, D, F]
        return x

    def init_state(self, batch_size: int, like: Tensor) -> list[Tensor]:
        """Streaming state of a causal frontend (dtype/device of ``like``): each block's conv history ``[B, D, span]``."""
        if not self.cfg.causal:
            raise ConfigError("a non-causal LipsFrontend has no streaming implementation")
        return [like.new_zeros(batch_size, self.cfg.channels, self._block(i).pad[0]) for i in range(len(self.blocks))]

    def _block(self, i: int) -> _LipsBlock:
        """Block i (typed)."""
        block = self.blocks[i]
        assert isinstance(block, _LipsBlock)
        return block

    def step(self, x: Tensor, history: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Streaming (causal only): the next frames ``x [B, n_features, n]`` -> (``[B, D, n]``, new conv histories).

        Channels first, unlike ``forward``; equals ``forward`` on the whole stream, frame for frame.
        """
        x = self.in_proj(x)  # [B, D, n]
        after: list[Tensor] = []
        for i, past in enumerate(history):
            block = self._block(i)
            z = torch.cat([past, x], dim=-1)  # [B, D, span + n]
            after.append(z[..., z.shape[-1] - past.shape[-1] :])  # [B, D, span]
            y = block.drop(block.act(block.norm(block.conv(z))))  # [B, D, n]
            x = x + block.proj(y)  # [B, D, n]
        return x, after


# ---------------------------------------------------------------------------------------------
# Mouth-ROI frontend: the LRW lipreading network (Ma et al., DC-TCN; lrw_resnet18_dctcn_video_boundary)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RoiFrontendConfig:
    """The lipreading net of ``lrw_resnet18_dctcn_video_boundary.pth``; defaults are that checkpoint's.

    Stem Conv3d(1 -> 64, k (5, 7, 7), s (1, 2, 2)) + BN3d + act + MaxPool3d;
    ResNet-18 trunk per frame (64, 128, 256, 512, global average -> 512);
    with ``use_boundary`` one word-boundary channel is appended (513 inputs);
    DC-TCN backend: transition to ``reduced_size``, then ``block_config`` dense
    blocks of multi-kernel dilated conv layers (each layer adds ``growth_rates[i]``
    channels, split equally across ``kernel_sizes``), transitions back to
    ``reduced_size`` between blocks, final batch norm. Output size D =
    ``reduced_size + block_config[-1] * growth_rates[-1]`` (1664 by default).
    The backend is non-causal (symmetric temporal padding, squeeze-excitation
    over the whole clip).
    """

    act: str = "swish"
    block_config: tuple[int, ...] = (3, 3, 3, 3)
    growth_rates: tuple[int, ...] = (384, 384, 384, 384)
    kernel_sizes: tuple[int, ...] = (3, 5, 7)
    dilations: tuple[int, ...] = (1, 2, 5)
    reduced_size: int = 512
    squeeze_excitation: bool = True
    se_reduction: int = 16
    dropout: float = 0.2
    use_boundary: bool = True
    boundary_value: float = 1.0  # boundary channel when none is given: every frame inside the "word"

    def __post_init__(self) -> None:
        if self.act not in ACTIVATIONS:
            raise ConfigError(f"act must be one of {', '.join(ACTIVATIONS)}, got {self.act!r}")
        if not self.block_config or len(self.block_config) != len(self.growth_rates):
            raise ConfigError("block_config and growth_rates must be non-empty and of equal length")
        if not self.kernel_sizes or not self.dilations:
            raise ConfigError("kernel_sizes and dilations must be non-empty")
        for g in self.growth_rates:
            if g % len(self.kernel_sizes):
                raise ConfigError(f"growth rate {g} is not divisible by the {len(self.kernel_sizes)} kernel sizes")
        if any(k < 1 for k in self.kernel_sizes) or any(d < 1 for d in self.dilations):
            raise ConfigError("kernel sizes and dilations must be >= 1")
        if any(((k - 1) * d) % 2 for k in self.kernel_sizes for d in self.dilations):
            raise ConfigError("(kernel_size - 1) * dilation must be even for symmetric padding")

    @property
    def out_channels(self) -> int:
        """D, the size of the backend output per frame."""
        return self.reduced_size + self.block_config[-1] * self.growth_rates[-1]


class _ResBlock(nn.Module):
    """ResNet BasicBlock: two 3x3 conv + BN, activation after each, 1x1 conv + BN shortcut when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int, act: str):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.act1 = _act(act, c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.act2 = _act(act, c_out)
        self.shortcut: nn.Module | None = None
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential()
            self.shortcut.add_module("conv", nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False))
            self.shortcut.add_module("bn", nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        """x [N, C_in, H, W] -> [N, C_out, H / stride, W / stride]."""
        y = self.act1(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        res = x if self.shortcut is None else self.shortcut(x)
        return self.act2(y + res)


class _ResNet18Trunk(nn.Module):
    """ResNet-18 body without its stem: frames ``[N, 64, H, W]`` -> ``[N, 512]`` (global average pool)."""

    def __init__(self, act: str):
        super().__init__()
        c_in = 64
        for i, (c_out, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            self.add_module(f"layer{i}", nn.Sequential(_ResBlock(c_in, c_out, stride, act), _ResBlock(c_out, c_out, 1, act)))
            c_in = c_out

    def forward(self, x: Tensor) -> Tensor:
        """x [N, 64, H, W] -> [N, 512]."""
        for i in range(1, 5):
            x = getattr(self, f"layer{i}")(x)
        return x.mean(dim=(2, 3))


class _SqueezeExcite(nn.Module):
    """Channel gate from the clip-mean of ``x [B, C, F]``: fc1 (C -> C/r) -> swish -> fc2 -> sigmoid."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc1 = nn.Linear(channels, channels // reduction, bias=False)
        self.fc2 = nn.Linear(channels // reduction, channels, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, F] -> [B, C, F]."""
        gate = torch.sigmoid(self.fc2(F.silu(self.fc1(x.mean(dim=2)))))  # [B, C]
        return x * gate[:, :, None]


class _TemporalConv(nn.Module):
    """Dilated Conv1d padded by the full span, BN, then the span trimmed equally from both ends, activation."""

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, act: str):
        super().__init__()
        self.span = (kernel - 1) * dilation
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=self.span, dilation=dilation)
        self.bn = nn.BatchNorm1d(c_out)
        self.act = _act(act, c_out)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, F] -> [B, C_out, F]."""
        y = self.bn(self.conv(x))  # [B, C_out, F + span]; BN sees the padded frames, as in the reference
        half = self.span // 2
        if half:
            y = y[:, :, half:-half]  # [B, C_out, F]
        return self.act(y)


class _DenseLayer(nn.Module):
    """One DC-TCN layer: two multi-kernel conv sets (optional SE before the first), residual, activation."""

    def __init__(self, c_in: int, growth: int, dilation: int, cfg: RoiFrontendConfig):
        super().__init__()
        n_k = len(cfg.kernel_sizes)
        per = growth // n_k
        self.se = nn.ModuleList(_SqueezeExcite(c_in, cfg.se_reduction) for _ in range(n_k)) if cfg.squeeze_excitation else None
        self.branch0 = nn.ModuleList(_TemporalConv(c_in, per, k, dilation, cfg.act) for k in cfg.kernel_sizes)
        self.branch1 = nn.ModuleList(_TemporalConv(growth, per, k, dilation, cfg.act) for k in cfg.kernel_sizes)
        self.drop = nn.Dropout(cfg.dropout)
        self.shortcut = nn.Conv1d(c_in, growth, 1) if c_in != growth else None
        self.act_out = _act(cfg.act, growth)

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, F] -> [B, growth, F]."""
        if self.se is None:
            y = torch.cat([conv(x) for conv in self.branch0], dim=1)  # [B, growth, F]
        else:
            y = torch.cat([conv(se(x)) for se, conv in zip(self.se, self.branch0)], dim=1)
        y = self.drop(y)
        y = self.drop(torch.cat([conv(y) for conv in self.branch1], dim=1))  # [B, growth, F]
        res = x if self.shortcut is None else self.shortcut(x)
        return self.act_out(y + res)


class _DenseBlock(nn.Module):
    """Dense block: layer l sees the concatenation of the block input and all earlier layer outputs."""

    def __init__(self, n_layers: int, c_in: int, growth: int, cfg: RoiFrontendConfig):
        super().__init__()
        for i in range(n_layers):
            dilation = cfg.dilations[i % len(cfg.dilations)]
            self.add_module(f"layer{i + 1}", _DenseLayer(c_in + i * growth, growth, dilation, cfg))
        self.n_layers = n_layers

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, F] -> [B, C_in + n_layers * growth, F]."""
        feats = [x]
        for i in range(1, self.n_layers + 1):
            feats.append(getattr(self, f"layer{i}")(torch.cat(feats, dim=1)))
        return torch.cat(feats, dim=1)


class _Transition(nn.Sequential):
    """1x1 Conv1d (no bias) -> BN -> activation."""

    def __init__(self, c_in: int, c_out: int, act: str):
        super().__init__()
        self.add_module("conv", nn.Conv1d(c_in, c_out, 1, bias=False))
        self.add_module("norm", nn.BatchNorm1d(c_out))
        self.add_module("act", _act(act, c_out))


class DenseTCN(nn.Module):
    """DC-TCN backend (Ma et al. 2021): ``[B, C_in, F]`` -> ``[B, D, F]``, D = RoiFrontendConfig.out_channels."""

    def __init__(self, c_in: int, cfg: RoiFrontendConfig):
        super().__init__()
        self.transition0 = _Transition(c_in, cfg.reduced_size, "prelu")  # the reference fixes PReLU here
        n = cfg.reduced_size
        last = len(cfg.block_config)
        for i, (n_layers, growth) in enumerate(zip(cfg.block_config, cfg.growth_rates), start=1):
            self.add_module(f"block{i}", _DenseBlock(n_layers, n, growth, cfg))
            n += n_layers * growth
            if i != last:
                self.add_module(f"transition{i}", _Transition(n, cfg.reduced_size, cfg.act))
                n = cfg.reduced_size
        self.norm_out = nn.BatchNorm1d(n)
        self.n_blocks = last

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C_in, F] -> [B, D, F]."""
        x = self.transition0(x)  # [B, reduced, F]
        for i in range(1, self.n_blocks + 1):
            x = getattr(self, f"block{i}")(x)
            if i != self.n_blocks:
                x = getattr(self, f"transition{i}")(x)
        return self.norm_out(x)


class RoiFrontend(nn.Module):
    """Grey mouth crops ``[B, F, 88, 88]`` (avse.video.roi.lipreading_input) -> lipreading features ``[B, D, F]``.

    D = 1664 with the default (checkpoint) config: the DC-TCN output before the
    clip-average and the 500-word classifier. Load the public weights with
    :func:`load_lipreading_state_dict`; call ``.eval()`` for inference (dropout
    and batch-norm statistics).
    """

    Config = RoiFrontendConfig

    def __init__(self, cfg: RoiFrontendConfig = RoiFrontendConfig()):
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential()
        self.stem.add_module("conv", nn.Conv3d(1, 64, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False))
        self.stem.add_module("bn", nn.BatchNorm3d(64))
        self.stem.add_module("act", _act(cfg.act, 64))
        self.stem.add_module("pool", nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        self.trunk = _ResNet18Trunk(cfg.act)
        self.backend = DenseTCN(512 + int(cfg.use_boundary), cfg)

    @classmethod
    def from_config(cls, cfg: RoiFrontendConfig) -> RoiFrontend:
        """Build the frontend of ``cfg``."""
        return cls(cfg)

    @property
    def out_channels(self) -> int:
        """D, the size of each output vector."""
        return self.cfg.out_channels

    def frame_embeddings(self, crops: Tensor) -> Tensor:
        """crops [B, F, H, W] float -> per-frame ResNet-18 embeddings [B, F, 512] (before the temporal backend)."""
        if crops.dim() != 4:
            raise ConfigError(f"expected mouth crops [B, F, H, W], got shape {tuple(crops.shape)}")
        b, f = crops.shape[:2]
        x = self.stem(crops[:, None])  # [B, 64, F, H/4, W/4]
        x = x.transpose(1, 2).reshape(b * f, 64, x.shape[-2], x.shape[-1])  # [B*F, 64, h, w]
        return self.trunk(x).view(b, f, 512)  # [B, F, 512]

    def forward(self, crops: Tensor, boundaries: Tensor | None = None) -> Tensor:
        """crops [B, F, 88, 88] float, boundaries [B, F] (optional, used when ``use_boundary``) -> [B, D, F]."""
        x = self.frame_embeddings(crops)  # [B, F, 512]
        if self.cfg.use_boundary:
            if boundaries is None:
                boundaries = x.new_full(x.shape[:2], self.cfg.boundary_value)
            elif boundaries.shape != x.shape[:2]:
                raise ConfigError(f"boundaries must be [B, F] = {tuple(x.shape[:2])}, got {tuple(boundaries.shape)}")
            x = torch.cat([x, boundaries.to(x.dtype)[..., None]], dim=-1)  # [B, F, 513]
        return self.backend(x.transpose(1, 2))  # [B, D, F]


# ---------------------------------------------------------------------------------------------
# Checkpoint name mapping
# ---------------------------------------------------------------------------------------------

_TENSOR = r"(?P<t>weight|bias|running_mean|running_var|num_batches_tracked)"
_DENSE = r"tcn\.tcn_trunk\.features\.denseblock(?P<b>\d+)\.denselayer(?P<l>\d+)\."

#: (checkpoint name pattern, our name template); ``{t}`` is the tensor name (weight, bias, running_mean, ...)
NAME_MAP: tuple[tuple[str, str], ...] = (
    (r"frontend3D\.0\.", "stem.conv.{t}"),
    (r"frontend3D\.1\.", "stem.bn.{t}"),
    (r"frontend3D\.2\.", "stem.act.{t}"),
    (r"trunk\.layer(?P<s>\d)\.(?P<i>\d)\.(?P<m>conv[12]|bn[12])\.", "trunk.layer{s}.{i}.{m}.{t}"),
    (r"trunk\.layer(?P<s>\d)\.(?P<i>\d)\.relu(?P<n>[12])\.", "trunk.layer{s}.{i}.act{n}.{t}"),
    (r"trunk\.layer(?P<s>\d)\.(?P<i>\d)\.downsample\.0\.", "trunk.layer{s}.{i}.shortcut.conv.{t}"),
    (r"trunk\.layer(?P<s>\d)\.(?P<i>\d)\.downsample\.1\.", "trunk.layer{s}.{i}.shortcut.bn.{t}"),
    (r"tcn\.tcn_trunk\.features\.transition(?P<n>\d+)\.(?P<m>conv|norm)\.", "backend.transition{n}.{m}.{t}"),
    (r"tcn\.tcn_trunk\.features\.transition(?P<n>\d+)\.prelu\.", "backend.transition{n}.act.{t}"),
    (_DENSE + r"cbcr0_se_(?P<k>\d+)\.fc\.0\.", "backend.block{b}.layer{l}.se.{k}.fc1.{t}"),
    (_DENSE + r"cbcr0_se_(?P<k>\d+)\.fc\.2\.", "backend.block{b}.layer{l}.se.{k}.fc2.{t}"),
    (_DENSE + r"cbcr(?P<j>[01])_(?P<k>\d+)\.net\.0\.", "backend.block{b}.layer{l}.branch{j}.{k}.conv.{t}"),
    (_DENSE + r"cbcr(?P<j>[01])_(?P<k>\d+)\.net\.1\.", "backend.block{b}.layer{l}.branch{j}.{k}.bn.{t}"),
    (_DENSE + r"cbcr(?P<j>[01])_(?P<k>\d+)\.net\.3\.", "backend.block{b}.layer{l}.branch{j}.{k}.act.{t}"),
    (_DENSE + r"downsample\.", "backend.block{b}.layer{l}.shortcut.{t}"),
    (_DENSE + r"relu_final\.", "backend.block{b}.layer{l}.act_out.{t}"),
    (r"tcn\.tcn_trunk\.features\.norm5\.", "backend.norm_out.{t}"),
)
_COMPILED = tuple((re.compile(p + _TENSOR), tpl) for p, tpl in NAME_MAP)
#: checkpoint names dropped on purpose: the 500-word classifier
IGNORED_PREFIXES: tuple[str, ...] = ("tcn.tcn_output.",)


def map_lipreading_name(name: str) -> str | None:
    """Our parameter name for checkpoint name ``name``; None when no rule of NAME_MAP matches."""
    for pattern, template in _COMPILED:
        m = pattern.fullmatch(name)
        if m:
            return template.format(**m.groupdict())
    return None


def load_lipreading_state_dict(module: RoiFrontend, state_dict: Mapping[str, Any]) -> dict[str, Any]:
    """Load the weights of ``lrw_resnet18_dctcn_video_boundary.pth`` (mpc001's lipreading repo) into ``module``.

    ``state_dict``: the checkpoint's name -> tensor mapping (a ``{"model_state_dict": ...}``
    wrapper and a DataParallel ``module.`` prefix are accepted). Name mapping
    (checkpoint -> ours; ``*`` = weight / bias / running_mean / running_var / num_batches_tracked):

    ==========================================================  =====================================
    checkpoint                                                  ours
    ==========================================================  =====================================
    frontend3D.0.*  (Conv3d 1->64, 5x7x7, no bias)              stem.conv.*
    frontend3D.1.*  (BatchNorm3d 64)                            stem.bn.*
    frontend3D.2.*  (PReLU, only when relu_type = prelu)        stem.act.*
    trunk.layerS.I.{conv1,bn1,conv2,bn2}.*                      trunk.layerS.I.{conv1,bn1,conv2,bn2}.*
    trunk.layerS.I.relu{1,2}.*  (PReLU only)                    trunk.layerS.I.act{1,2}.*
    trunk.layerS.I.downsample.{0,1}.*                           trunk.layerS.I.shortcut.{conv,bn}.*
    tcn.tcn_trunk.features.transitionN.{conv,norm}.*            backend.transitionN.{conv,norm}.*
    tcn.tcn_trunk.features.transitionN.prelu.*                  backend.transitionN.act.*
    ...denseblockB.denselayerL.cbcr0_se_K.fc.{0,2}.*            backend.blockB.layerL.se.K.{fc1,fc2}.*
    ...denseblockB.denselayerL.cbcrJ_K.net.{0,1,3}.*            backend.blockB.layerL.branchJ.K.{conv,bn,act}.*
    ...denseblockB.denselayerL.downsample.*                     backend.blockB.layerL.shortcut.*
    ...denseblockB.denselayerL.relu_final.*  (PReLU only)       backend.blockB.layerL.act_out.*
    tcn.tcn_trunk.features.norm5.*                              backend.norm_out.*
    tcn.tcn_output.*  (500-word classifier)                     ignored
    ==========================================================  =====================================

    ``num_batches_tracked`` buffers may be absent from the checkpoint. Raises
    ConfigError listing unexpected (unmapped or not in ``module``), mis-shaped
    and missing tensors; nothing is loaded then. Returns a report
    ``{"loaded": int, "ignored": [names], "not_in_checkpoint": [our names]}``.
    """
    if "model_state_dict" in state_dict and isinstance(state_dict["model_state_dict"], Mapping):
        state_dict = state_dict["model_state_dict"]
    ours = module.state_dict()
    mapped: dict[str, Tensor] = {}
    ignored: list[str] = []
    unexpected: list[str] = []
    misshaped: list[str] = []
    for raw_name, value in state_dict.items():
        name = raw_name[len("module.") :] if raw_name.startswith("module.") else raw_name
        if name.startswith(IGNORED_PREFIXES):
            ignored.append(raw_name)
            continue
        target = map_lipreading_name(name)
        if target is None or target not in ours:
            unexpected.append(raw_name if target is None else f"{raw_name} (-> {target})")
            continue
        value = torch.as_tensor(value)
        if tuple(value.shape) != tuple(ours[target].shape):
            misshaped.append(f"{raw_name}: checkpoint {tuple(value.shape)}, expected {tuple(ours[target].shape)} for {target}")
            continue
        mapped[target] = value
    absent = [k for k in ours if k not in mapped]
    missing = [k for k in absent if not k.endswith("num_batches_tracked")]
    if unexpected or misshaped or missing:
        parts = []
        for label, names in (("unexpected", unexpected), ("mis-shaped", misshaped), ("missing", missing)):
            if names:
                shown = "; ".join(names[:20]) + (f"; ... ({len(names) - 20} more)" if len(names) > 20 else "")
                parts.append(f"{len(names)} {label}: {shown}")
        raise ConfigError("lipreading checkpoint does not fit RoiFrontend: " + " | ".join(parts))
    module.load_state_dict(mapped, strict=False)
    return {"loaded": len(mapped), "ignored": ignored, "not_in_checkpoint": absent}


__all__ = [
    "DenseTCN",
    "IGNORED_PREFIXES",
    "LipsFrontend",
    "LipsFrontendConfig",
    "NAME_MAP",
    "RoiFrontend",
    "RoiFrontendConfig",
    "load_lipreading_state_dict",
    "map_lipreading_name",
]
