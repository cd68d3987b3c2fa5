"""Conv-TasNet-style time-domain separator (Luo & Mesgarani 2019): learned encoder, TCN mask net, decoder."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from avse.errors import ConfigError
from avse.models.base import SeparationModel
from avse.models.registry import register_model

MASK_ACTIVATIONS = ("sigmoid", "relu")
#: how the decoded masks become the output: as they are; the mixture minus them (one source);
#: or projected so the sources sum to the mixture (two or more sources)
OUTPUT_FORMS = ("direct", "residual", "consistent")
#: how the decoder turns encoder frames back into samples (see make_decoder): each frame's whole
#: window overlap-added where the frame was analysed (a streaming output one hop late); the same
#: written one hop later, so that no sample waits for a later frame ("causal": no delay); or only
#: the last hop of each frame's window, no overlap (no delay)
SYNTHESIS_FORMS = ("overlap", "causal", "hop")


@dataclass(frozen=True)
class TasNetConfig:
    """Conv-TasNet settings (paper names in brackets); defaults give about 2.5 M parameters.

    ``causal`` switches every depthwise convolution to left-only padding and
    every normalization to cumulative layer norm, so an output sample depends
    on input up to ``kernel_size - 1`` samples ahead (the encoder window) only.
    """

    n_sources: int = 2
    n_filters: int = 256  # N, encoder basis size
    kernel_size: int = 16  # L, encoder window in samples (stride L / 2)
    bottleneck: int = 128  # B
    hidden: int = 256  # H, channels inside a block
    skip: int = 128  # Sc, skip-connection channels
    conv_kernel: int = 3  # P, depthwise kernel
    n_blocks: int = 8  # X, blocks per repeat (dilations 1 .. 2^(X-1))
    n_repeats: int = 3  # R
    causal: bool = False
    mask_activation: str = "sigmoid"
    output: str = "direct"  # OUTPUT_FORMS; see output_form
    synthesis: str = "overlap"  # SYNTHESIS_FORMS; see make_decoder

    def __post_init__(self) -> None:
        check_output_form(self.output, self.n_sources)
        check_synthesis(self.synthesis)
        if min(self.n_sources, self.n_filters, self.bottleneck, self.hidden, self.skip, self.n_blocks, self.n_repeats) < 1:
            raise ConfigError("Conv-TasNet sizes must all be >= 1")
        if self.kernel_size < 2 or self.kernel_size % 2:
            raise ConfigError(f"kernel_size must be even and >= 2, got {self.kernel_size}")
        if self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
            raise ConfigError(f"conv_kernel must be odd, got {self.conv_kernel}")
        if self.mask_activation not in MASK_ACTIVATIONS:
            raise ConfigError(f"mask_activation must be one of {', '.join(MASK_ACTIVATIONS)}, got {self.mask_activation!r}")

    @property
    def stride(self) -> int:
        """Encoder hop in samples (half the window)."""
        return self.kernel_size // 2


class _ChannelNorm(nn.Module):
    """Shared state of the layer norms: ``eps`` and a learned per-channel gain and bias ``[1, C, 1]``."""

    def __init__(self, channels: int, eps: float = 1e-8):
        super().__init__()
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1, channels, 1))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1))


class GlobalLayerNorm(_ChannelNorm):
    """gLN: normalize ``x [B, C, N]`` over channels and all frames, per item; learned per-channel gain and bias."""

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, N] -> [B, C, N]."""
        mean = x.mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]
        var = (x - mean).pow(2).mean(dim=(1, 2), keepdim=True)  # [B, 1, 1]
        return (x - mean) / torch.sqrt(var + self.eps) * self.gain + self.bias


class CumulativeLayerNorm(_ChannelNorm):
    """cLN: normalize frame n of ``x [B, C, N]`` with the mean/variance over channels and frames 0..n (causal)."""

    def forward(self, x: Tensor) -> Tensor:
        """x [B, C, N] -> [B, C, N]."""
        count = torch.arange(1, x.shape[-1] + 1, device=x.device, dtype=x.dtype) * x.shape[1]  # [N]
        mean = x.sum(dim=1).cumsum(dim=-1) / count  # [B, N]
        power = x.pow(2).sum(dim=1).cumsum(dim=-1) / count  # [B, N]
        var = (power - mean.pow(2)).clamp_min(0.0)  # [B, N]
        return (x - mean[:, None]) / torch.sqrt(var[:, None] + self.eps) * self.gain + self.bias

    def step(self, x: Tensor, stats: Tensor, frames: Tensor) -> tuple[Tensor, Tensor]:
        """Streaming: the next frames ``x [B, C, n]`` -> (normalized ``[B, C, n]``, new ``stats``).

        ``stats [B, 2]``: the running sums of x and x**2 over channels and all
        earlier frames (zeros at the start); ``frames [B]``: how many frames
        came before. Equals ``forward`` on the whole stream, frame for frame.
        """
        n, c = x.shape[-1], x.shape[1]
        sums = x.sum(dim=1).cumsum(dim=-1) + stats[:, 0:1]  # [B, n]
        powers = x.pow(2).sum(dim=1).cumsum(dim=-1) + stats[:, 1:2]  # [B, n]
        count = (frames[:, None] + torch.arange(1, n + 1, device=x.device, dtype=x.dtype)) * c  # [B, n]
        mean = sums / count  # [B, n]
        var = (powers / count - mean.pow(2)).clamp_min(0.0)  # [B, n]
        y = (x - mean[:, None]) / torch.sqrt(var[:, None] + self.eps) * self.gain + self.bias  # [B, C, n]
        return y, torch.stack([sums[:, -1], powers[:, -1]], dim=1)  # [B, C, n], [B, 2]


def temporal_norm(channels: int, causal: bool) -> nn.Module:
    """The layer norm over [B, C, T] a (non-)causal model uses: cumulative when causal, else global."""
    return CumulativeLayerNorm(channels) if causal else GlobalLayerNorm(channels)


class TemporalBlock(nn.Module):
    """1x1 conv -> PReLU -> norm -> dilated depthwise conv -> PReLU -> norm -> (residual 1x1, skip 1x1).

    The last block of a stack feeds nothing but its skip output; built with
    ``residual=False`` it has no residual conv and passes its input through.
    Weights saved with that conv (older checkpoints) still load: the unused
    entries are dropped.
    """

    def __init__(self, cfg: TasNetConfig, dilation: int, residual: bool = True):
        super().__init__()
        self.causal = cfg.causal
        self.pad = (cfg.conv_kernel - 1) * dilation  # total padding keeping the frame count
        self.expand = nn.Sequential(nn.Conv1d(cfg.bottleneck, cfg.hidden, 1), nn.PReLU(), temporal_norm(cfg.hidden, cfg.causal))
        self.depthwise = nn.Conv1d(cfg.hidden, cfg.hidden, cfg.conv_kernel, dilation=dilation, groups=cfg.hidden)
        self.post = nn.Sequential(nn.PReLU(), temporal_norm(cfg.hidden, cfg.causal))
        # built either way, so that a seed initialises every other layer as it always did; kept only when used
        residual_conv = nn.Conv1d(cfg.hidden, cfg.bottleneck, 1)
        self.residual = residual_conv if residual else None
        self.skip = nn.Conv1d(cfg.hidden, cfg.skip, 1)
        if not residual:
            self._register_load_state_dict_pre_hook(_drop_residual)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x [B, Bn, N] -> (residual output [B, Bn, N] (x itself without a residual conv), skip [B, Sc, N])."""
        y = self.expand(x)  # [B, H, N]
        left = self.pad if self.causal else self.pad // 2
        y = F.pad(y, (left, self.pad - left))  # [B, H, N + pad]
        y = self.post(self.depthwise(y))  # [B, H, N]
        out = x if self.residual is None else x + self.residual(y)  # [B, Bn, N]
        return out, self.skip(y)

    def init_state(self, batch_size: int, like: Tensor) -> dict[str, Tensor]:
        """Streaming state of a causal block (dtype/device of ``like``): depthwise-conv history and two cLN sums."""
        hidden = self.depthwise.in_channels
        return {
            "conv": like.new_zeros(batch_size, hidden, self.pad),  # [B, H, pad] last inputs of the depthwise conv
            "norm1": like.new_zeros(batch_size, 2),
            "norm2": like.new_zeros(batch_size, 2),
        }

    def step(self, x: Tensor, state: dict[str, Tensor], frames: Tensor) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """Streaming (causal only): the next frames ``x [B, Bn, n]`` -> (residual out ``[B, Bn, n]``, skip ``[B, Sc, n]``, state)."""
        norm1, norm2 = self.expand[2], self.post[1]
        assert isinstance(norm1, CumulativeLayerNorm) and isinstance(norm2, CumulativeLayerNorm)
        y = self.expand[1](self.expand[0](x))  # [B, H, n]
        y, stats1 = norm1.step(y, state["norm1"], frames)
        y = torch.cat([state["conv"], y], dim=-1)  # [B, H, pad + n]
        history = y[..., y.shape[-1] - self.pad :]  # [B, H, pad]
        y, stats2 = norm2.step(self.post[0](self.depthwise(y)), state["norm2"], frames)  # [B, H, n]
        out = x if self.residual is None else x + self.residual(y)  # [B, Bn, n]
        return out, self.skip(y), {"conv": history, "norm1": stats1, "norm2": stats2}


def _drop_residual(state_dict: dict, prefix: str, *args: object) -> None:
    """Load hook of a block without residual conv: forget that conv's weights in older checkpoints."""
    for name in ("weight", "bias"):
        state_dict.pop(f"{prefix}residual.{name}", None)


def temporal_blocks(cfg: TasNetConfig, dilations: list[int], last_residual: bool = False) -> nn.ModuleList:
    """Blocks with the given dilations; the last one without residual conv unless ``last_residual``."""
    n = len(dilations)
    return nn.ModuleList(TemporalBlock(cfg, d, residual=last_residual or i < n - 1) for i, d in enumerate(dilations))


def encode(encoder: nn.Conv1d, mixture: Tensor, win: int, hop: int) -> tuple[Tensor, int]:
    """Pad ``mixture [B, T]`` so every sample is covered by two frames and encode it -> (``w [B, N, K]``, left pad).

    ``decode`` lines the decoder's output up with the input again.
    """
    t = mixture.shape[-1]
    left = win - hop  # every sample is covered by two frames
    right = -(t + left - win) % hop if t + left >= win else win - t - left
    x = F.pad(mixture[:, None], (left, right))  # [B, 1, T'] with (T' - L) % hop == 0
    return F.relu(encoder(x)), left  # [B, N, K]


def check_synthesis(form: str) -> None:
    """ConfigError unless ``form`` is one of SYNTHESIS_FORMS."""
    if form not in SYNTHESIS_FORMS:
        raise ConfigError(f"synthesis must be one of {', '.join(SYNTHESIS_FORMS)}, got {form!r}")


def make_decoder(n_filters: int, win: int, hop: int, synthesis: str) -> nn.ConvTranspose1d:
    """The decoder of ``encode``'s frames: a transposed conv from ``[B, N, K]`` to ``[B, 1, T']``.

    Frame k is analysed on input samples ``[k hop - hop, k hop + hop)``.

    - ``"overlap"`` (Conv-TasNet's): a ``win``-sample basis per frame written
      back on the same samples and overlap-added at ``hop``. Sample n needs the
      frame after its own, so a streaming output is one hop late.
    - ``"causal"``: the same basis written one hop later, on ``[k hop, k hop +
      2 hop)``. Sample n is the overlap-add of its own frame and the frame
      before, so it is final as soon as the input up to the end of its hop is in
      (no delay), and frame boundaries stay smooth.
    - ``"hop"``: a ``hop``-sample basis that writes only ``[k hop, k hop + hop)``,
      no overlap (no delay). Built as ``"hop"``, the decoder also loads an
      ``"overlap"`` checkpoint's ``win``-sample weights, folded to one hop (the
      two halves summed).

    A model trained with ``"overlap"`` is moved to another synthesis by
    ``DecoderFit`` (least squares), then trained on.
    """
    check_synthesis(synthesis)
    size = hop if synthesis == "hop" else win
    decoder = nn.ConvTranspose1d(n_filters, 1, size, stride=hop, bias=False)
    if synthesis == "hop":
        decoder._register_load_state_dict_pre_hook(_fold_decoder, with_module=True)
    return decoder


def _fold_decoder(decoder: nn.ConvTranspose1d, state_dict: dict, prefix: str, *args: object) -> None:
    """Load hook of a ``"hop"`` decoder: a weight ``[N, 1, 2 hop]`` (an overlap decoder's) becomes ``[N, 1, hop]``, halves summed."""
    key = f"{prefix}weight"
    w = state_dict.get(key)
    hop = decoder.stride[0]
    if isinstance(w, Tensor) and w.dim() == 3 and w.shape[-1] == 2 * hop:
        state_dict[key] = w[..., :hop] + w[..., hop:]


class DecoderFit:
    """The least-squares ``"causal"`` or ``"hop"`` decoder that reproduces a trained ``"overlap"`` decoder, hop by hop.

    An overlap decoder's hop also draws on the next frame, which the other two
    do not see; fitted on what the model decodes from real inputs, their
    decoder starts from nearly the overlap model's output. Hop m of the output
    (samples ``[m hop, m hop + hop)``) is, for ``"hop"``, ``A^T s_m`` and, for
    ``"causal"``, ``A^T s_m + B^T s_{m-1}`` (s the masked encodings);
    ``A`` (and ``B``) are fitted. ``add(src, out)`` with the overlap decoder's
    input ``src [B, N, K]`` and output ``out [B, 1, (K + 1) hop]`` (whose hop m
    is ``out[(m + 1) hop : (m + 2) hop]``); ``solve()`` -> the new decoder's
    weight, ``[N, 1, hop]`` ("hop") or ``[N, 1, 2 hop]`` ("causal").
    """

    def __init__(self, n_filters: int, hop: int, synthesis: str):
        if synthesis not in ("causal", "hop"):
            raise ConfigError(f"a decoder is fitted for 'causal' or 'hop' synthesis, got {synthesis!r}")
        self.hop, self.synthesis, self.n_filters = hop, synthesis, n_filters
        width = n_filters * (2 if synthesis == "causal" else 1)
        self.xtx = torch.zeros(width, width, dtype=torch.float64)
        self.xty = torch.zeros(width, hop, dtype=torch.float64)
        self.frames = 0

    def add(self, src: Tensor, out: Tensor) -> None:
        """Accumulate one batch: ``src [B, N, K]`` (the masked encodings) and the overlap decoder's ``out [B, 1, (K + 1) hop]``."""
        b, n, k = src.shape
        y = out[:, 0, self.hop : (k + 1) * self.hop].reshape(b * k, self.hop).double()  # [B K, hop]
        x = src.transpose(1, 2)  # [B, K, N]
        if self.synthesis == "causal":  # this frame and the one before (zeros before the first)
            x = torch.cat([x, F.pad(x, (0, 0, 1, 0))[:, :k]], dim=-1)  # [B, K, 2N]
        x = x.reshape(b * k, -1).double()
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.frames += b * k

    def solve(self, ridge: float = 1e-6) -> Tensor:
        """The fitted decoder weight, float32 (ridge: relative to the mean frame energy)."""
        if self.frames == 0:
            raise ConfigError("no frames were added to fit a decoder on")
        n = self.xtx.shape[0]
        lam = ridge * float(self.xtx.diagonal().mean()) + 1e-12
        w = torch.linalg.solve(self.xtx + lam * torch.eye(n, dtype=torch.float64), self.xty).float()  # [N or 2N, hop]
        if self.synthesis == "hop":
            return w[:, None, :]  # [N, 1, hop]
        return torch.cat([w[: self.n_filters], w[self.n_filters :]], dim=-1)[:, None, :]  # [N, 1, 2 hop]: own frame, then the next hop


def decode(decoder: nn.ConvTranspose1d, src: Tensor, left: int, t: int, synthesis: str) -> Tensor:
    """``make_decoder``'s decoder on ``src [B', N, K]`` -> ``[B', T]`` lined up with ``encode``'s input of T samples.

    ``left`` is ``encode``'s left pad: an ``"overlap"`` decoder writes frame k
    where it was analysed, from sample ``k hop - hop`` on; the others from
    sample ``k hop`` on.
    """
    out = decoder(src)[:, 0]  # [B', T']
    start = left if synthesis == "overlap" else 0
    return out[:, start : start + t]


def run_blocks(blocks: nn.ModuleList, y: Tensor, skips: Tensor) -> tuple[Tensor, Tensor]:
    """Pass ``y [B, Bn, K]`` through temporal blocks, adding their skip outputs to ``skips [B, Sc, K]``."""
    for block in blocks:
        y, s = block(y)  # [B, Bn, K], [B, Sc, K]
        skips = skips + s
    return y, skips


def blocks_state(blocks: nn.ModuleList, batch_size: int, like: Tensor, prefix: str) -> dict[str, Tensor]:
    """The streaming state of causal temporal blocks, flat: ``{prefix}.{i}.{conv,norm1,norm2}``."""
    state: dict[str, Tensor] = {}
    for i, block in enumerate(blocks):
        assert isinstance(block, TemporalBlock)
        state.update({f"{prefix}.{i}.{k}": v for k, v in block.init_state(batch_size, like).items()})
    return state


def run_blocks_step(
    blocks: nn.ModuleList, y: Tensor, skips: Tensor, state: dict[str, Tensor], new: dict[str, Tensor], prefix: str, frames: Tensor
) -> tuple[Tensor, Tensor]:
    """Streaming ``run_blocks``: ``y [B, Bn, n]``, ``skips [B, Sc, n]`` -> both updated; the blocks' new state goes into ``new``."""
    for i, block in enumerate(blocks):
        assert isinstance(block, TemporalBlock)
        key = f"{prefix}.{i}."
        mine = {k[len(key) :]: v for k, v in state.items() if k.startswith(key)}
        y, s, after = block.step(y, mine, frames)  # [B, Bn, n], [B, Sc, n]
        new.update({key + k: v for k, v in after.items()})
        skips = skips + s
    return y, skips


def encode_step(encoder: nn.Conv1d, block: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
    """Streaming ``encode``: ``block [B, H]`` after ``tail [B, hop]`` (the previous input's last hop, zeros at the start).

    -> (``w [B, N, H / hop]``, the new tail ``[B, hop]``). Frame k of the block
    covers ``[k hop - hop, k hop + hop)`` relative to the block start, as in ``encode``.
    """
    x = torch.cat([tail, block], dim=-1)  # [B, hop + H]
    return F.relu(encoder(x[:, None])), x[:, x.shape[-1] - tail.shape[-1] :]  # [B, N, H / hop], [B, hop]


def stream_front(
    encoder: nn.Conv1d, in_norm: nn.Module, bottleneck: nn.Module, skip: int, block: Tensor, state: dict[str, Tensor]
) -> tuple[Tensor, Tensor, Tensor, dict[str, Tensor]]:
    """Streaming encoder, input norm and bottleneck of one ``block [B, H]``.

    -> (``w [B, N, K]`` the encoded block, ``y [B, Bn, K]`` the TCN input,
    zero ``skips [B, skip, K]``, the new state so far: ``enc`` and ``in_norm``).
    """
    w, enc = encode_step(encoder, block, state["enc"])  # [B, N, K]
    new = {"enc": enc}
    assert isinstance(in_norm, CumulativeLayerNorm)
    y, new["in_norm"] = in_norm.step(w, state["in_norm"], state["frames"])  # [B, N, K]
    y = bottleneck(y)  # [B, Bn, K]
    skips = torch.zeros(block.shape[0], skip, w.shape[-1], dtype=w.dtype, device=w.device)  # [B, Sc, K]
    return w, y, skips, new


def decode_step(decoder: nn.ConvTranspose1d, src: Tensor, tail: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """Streaming decoder: ``src [B', N, K]`` (K frames) and the overlap-add ``tail [B', hop]`` -> (``[B', K hop]``, new tail).

    An ``"overlap"`` decoder's output is ``hop`` samples behind the input:
    with ``encode_step``'s framing, sample j of a block's output is input
    sample ``j - hop`` of the stream. A ``"causal"`` decoder's (frames written
    one hop later) is not: sample j is input sample j. A ``"hop"`` decoder
    (``tail`` None) has no overlap to carry: sample j is input sample j, and
    the new tail is None.
    """
    y = decoder(src)[:, 0]  # [B', (K + 1) hop] or, "hop", [B', K hop]
    if tail is None:
        return y, None
    hop = tail.shape[-1]
    n = y.shape[-1] - hop
    out = torch.cat([y[:, :hop] + tail, y[:, hop:n]], dim=-1)  # [B', K hop]
    return out, y[:, n:]  # [B', K hop], [B', hop]


def check_stream_block(block_size: int, hop: int, causal: bool, name: str) -> None:
    """ConfigError unless a (causal) model with encoder hop ``hop`` can stream blocks of ``block_size`` samples."""
    if not causal:
        raise ConfigError(f"model {name} is not causal (causal: false), so it has no streaming implementation")
    if block_size < hop or block_size % hop:
        raise ConfigError(f"the streaming block must be a positive multiple of the encoder hop {hop}, got {block_size}")


def synthesis_delay(win: int, synthesis: str) -> int:
    """Samples a streaming output lags its input: one hop with ``"overlap"`` synthesis, else none."""
    return win // 2 if synthesis == "overlap" else 0


def synthesis_lookahead(win: int, synthesis: str) -> int:
    """Samples of future input a causal model's output sample may depend on: the encoder window minus one ("overlap"), else the hop minus one."""
    return win - 1 if synthesis == "overlap" else win // 2 - 1


def delayed_input(block: Tensor, tail: Tensor, overlap: bool) -> Tensor:
    """The input samples ``[B, H]`` a streaming block's output lines up with: one hop back (``tail [B, hop]`` first) or the block."""
    return torch.cat([tail, block], dim=-1)[:, : block.shape[-1]] if overlap else block


def check_output_form(form: str, n_sources: int) -> None:
    """ConfigError unless ``form`` is one of OUTPUT_FORMS and fits ``n_sources``."""
    if form not in OUTPUT_FORMS:
        raise ConfigError(f"output must be one of {', '.join(OUTPUT_FORMS)}, got {form!r}")
    if form == "residual" and n_sources != 1:
        raise ConfigError(f"output 'residual' is for one source (mixture minus the rest), got n_sources={n_sources}")
    if form == "consistent" and n_sources < 2:
        raise ConfigError("output 'consistent' needs two or more sources (one source would just be the mixture)")


def output_form(decoded: Tensor, mixture: Tensor, form: str) -> Tensor:
    """The decoded masked encodings ``[B, S, T]`` -> the model's estimates ``[B, S, T]``.

    ``"direct"``: as they are. ``"residual"`` (S = 1): the mask picked what is
    *not* the target, and the estimate is ``mixture - decoded``; a mask of zero
    passes the input through exactly, so a clean input is easy to leave
    alone. ``"consistent"`` (S >= 2): mixture consistency, each source plus an
    equal share of ``mixture - sum(sources)``, so the estimates always add up
    to the input (Wisdom et al., 2019).
    """
    if form == "direct":
        return decoded
    if form == "residual":
        return mixture[:, None] - decoded
    return decoded + (mixture[:, None] - decoded.sum(1, keepdim=True)) / decoded.shape[1]


def mask_activation(masks: Tensor, kind: str) -> Tensor:
    """Masks from the mask head's output: ``"sigmoid"`` or ``"relu"`` (any shape)."""
    return torch.sigmoid(masks) if kind == "sigmoid" else F.relu(masks)


@register_model("tasnet")
class ConvTasNet(SeparationModel):
    """Conv-TasNet: mixture ``[B, T]`` -> sources ``[B, S, T]`` by masking a learned 1-D conv encoding."""

    Config = TasNetConfig

    def __init__(self, cfg: TasNetConfig = TasNetConfig()):
        super().__init__()
        self.cfg = cfg
        self.encoder = nn.Conv1d(1, cfg.n_filters, cfg.kernel_size, stride=cfg.stride, bias=False)
        self.in_norm = temporal_norm(cfg.n_filters, cfg.causal)
        self.bottleneck = nn.Conv1d(cfg.n_filters, cfg.bottleneck, 1)
        self.blocks = temporal_blocks(cfg, [2**x for _ in range(cfg.n_repeats) for x in range(cfg.n_blocks)])
        self.mask_head = nn.Sequential(nn.PReLU(), nn.Conv1d(cfg.skip, cfg.n_sources * cfg.n_filters, 1))
        self.decoder = make_decoder(cfg.n_filters, cfg.kernel_size, cfg.stride, cfg.synthesis)

    @property
    def n_outputs(self) -> int:
        """S, the configured ``n_sources``."""
        return self.cfg.n_sources

    @property
    def lookahead(self) -> int | None:
        """Samples of future input an output sample may depend on when causal: see ``synthesis_lookahead``."""
        return synthesis_lookahead(self.cfg.kernel_size, self.cfg.synthesis) if self.cfg.causal else None

    def forward(self, mixture: Tensor) -> Tensor:
        """mixture ``[B, T]`` float -> estimates ``[B, S, T]`` (S = ``n_sources``)."""
        if mixture.dim() != 2:
            raise ConfigError(f"expected a mixture [B, T], got shape {tuple(mixture.shape)}")
        cfg = self.cfg
        b, t = mixture.shape
        w, left = encode(self.encoder, mixture, cfg.kernel_size, cfg.stride)  # [B, N, K]
        y = self.bottleneck(self.in_norm(w))  # [B, Bn, K]
        y, skips = run_blocks(self.blocks, y, torch.zeros(b, cfg.skip, w.shape[-1], dtype=w.dtype, device=w.device))
        masks = self.mask_head(skips).view(b, cfg.n_sources, cfg.n_filters, -1)  # [B, S, N, K]
        masks = mask_activation(masks, cfg.mask_activation)
        src = (masks * w[:, None]).reshape(b * cfg.n_sources, cfg.n_filters, -1)  # [B * S, N, K]
        out = decode(self.decoder, src, left, t, cfg.synthesis)  # [B * S, T]
        return output_form(out.reshape(b, cfg.n_sources, t), mixture, cfg.output)  # [B, S, T]

    # --- streaming (causal only) ---------------------------------------------------------------------

    @property
    def supports_streaming(self) -> bool:
        """Whether ``init_state`` / ``stream_step`` work: when causal."""
        return self.cfg.causal

    @property
    def stream_delay(self) -> int:
        """Samples by which ``stream_step``'s output lags its input: see ``synthesis_delay``."""
        check_stream_block(self.cfg.stride, self.cfg.stride, self.cfg.causal, type(self).__name__)
        return synthesis_delay(self.cfg.kernel_size, self.cfg.synthesis)

    def check_stream_block(self, block_size: int) -> None:
        """ConfigError unless causal and ``block_size`` is a positive multiple of the encoder hop."""
        check_stream_block(block_size, self.cfg.stride, self.cfg.causal, type(self).__name__)

    def init_state(self, batch_size: int = 1) -> dict[str, Tensor]:
        """The streaming state before the first block (flat dict of tensors, fixed sizes; causal only).

        ``enc [B, hop]`` encoder input tail; ``dec [B, S, hop]`` decoder
        overlap-add tail (not with ``"hop"`` synthesis); ``frames [B]`` encoder frames so far; ``in_norm [B, 2]``
        and ``blocks.{i}.*`` the cumulative norms' sums and the depthwise conv histories.
        """
        self.check_stream_block(self.cfg.stride)
        cfg, like = self.cfg, self.encoder.weight
        state = {
            "enc": like.new_zeros(batch_size, cfg.stride),
            "frames": like.new_zeros(batch_size),
            "in_norm": like.new_zeros(batch_size, 2),
        }
        if cfg.synthesis != "hop":  # an overlap-add tail
            state["dec"] = like.new_zeros(batch_size, cfg.n_sources, cfg.stride)
        state.update(blocks_state(self.blocks, batch_size, like, "blocks"))
        return state

    def stream_step(self, block: Tensor, visual: Tensor | None, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Streaming: audio ``block [B, H]`` (H a multiple of the hop; ``visual`` must be None) and state -> (``[B, S, H]``, state).

        The output is ``stream_delay`` samples behind: over a stream, output
        sample j equals ``forward``'s sample j - delay. With ``"overlap"``
        synthesis (delay = hop) the first hop samples come before the stream's
        start, and ``forward`` on a finite input lacks the encoder frame past
        its end, so its last hop samples match ``forward`` on the input
        followed by zeros; with ``"causal"`` or ``"hop"`` synthesis (no delay)
        every block's output is ``forward``'s on the same samples.
        """
        cfg = self.cfg
        if visual is not None:
            raise ConfigError(f"model {type(self).__name__} is audio-only; it takes no visual stream")
        self.check_stream_block(block.shape[-1])
        b, h = block.shape
        frames = state["frames"]
        w, y, skips, new = stream_front(self.encoder, self.in_norm, self.bottleneck, cfg.skip, block, state)
        y, skips = run_blocks_step(self.blocks, y, skips, state, new, "blocks", frames)
        masks = mask_activation(self.mask_head(skips).view(b, cfg.n_sources, cfg.n_filters, -1), cfg.mask_activation)
        src = (masks * w[:, None]).reshape(b * cfg.n_sources, cfg.n_filters, -1)  # [B * S, N, K]
        tail = state["dec"].reshape(b * cfg.n_sources, -1) if "dec" in state else None
        out, dec = decode_step(self.decoder, src, tail)  # [B * S, H]
        if dec is not None:
            new["dec"] = dec.reshape(b, cfg.n_sources, -1)
        new["frames"] = frames + w.shape[-1]
        mix = delayed_input(block, state["enc"], cfg.synthesis == "overlap")  # [B, H] the input samples the output lines up with
        return output_form(out.reshape(b, cfg.n_sources, h), mix, cfg.output), new  # [B, S, H]
