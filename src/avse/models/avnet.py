"""Audio-visual Conv-TasNet: extracts the talker whose lips are given (visual stream fused mid-TCN) from a mixture."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avse import SAMPLE_RATE, SAMPLES_PER_FRAME, VISUAL_STREAMS
from avse.errors import ConfigError
from avse.models.base import SeparationModel
from avse.models.registry import register_model
from avse.models.tasnet import (
    TasNetConfig,
    blocks_state,
    check_output_form,
    check_stream_block,
    check_synthesis,
    decode,
    decode_step,
    delayed_input,
    encode,
    make_decoder,
    mask_activation,
    output_form,
    run_blocks,
    run_blocks_step,
    stream_front,
    synthesis_delay,
    synthesis_lookahead,
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
    on video frames up to ``t // 640 + 1`` (at most one frame of lookahead);
    with ``synthesis`` "causal" or "hop" (``avse.models.tasnet.make_decoder``) on audio up
    to the end of t's encoder hop and, with "nearest" upsampling, on no later
    video frame than t's own.
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
    movement. ``visual_stream`` says what the visual input is (VISUAL_STREAMS),
    so that inference and training feed the stream the model learned from;
    "light_asd" needs ``visual_channels`` 128. ``output`` is the output form of ``avse.models.tasnet.output_form``
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
    visual_stream: str = "lip_features"  # VISUAL_STREAMS
    output: str = "direct"  # "direct" | "residual"
    synthesis: str = "overlap"  # "overlap" | "causal" | "hop": avse.models.tasnet.make_decoder

    def __post_init__(self) -> None:
        check_output_form(self.output, 1)
        check_synthesis(self.synthesis)
        if self.visual_norm not in VISUAL_NORMS:
            raise ConfigError(f"visual_norm must be one of {', '.join(VISUAL_NORMS)}, got {self.visual_norm!r}")
        if self.visual_stream not in VISUAL_STREAMS:
            raise ConfigError(f"visual_stream must be one of {', '.join(VISUAL_STREAMS)}, got {self.visual_stream!r}")
        if self.visual_stream == "light_asd" and self.visual_channels != 128:
            raise ConfigError(f"visual_stream 'light_asd' gives 128 channels a frame, got visual_channels={self.visual_channels}")
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
            synthesis=self.synthesis,
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
        self.decoder = make_decoder(cfg.n_filters, cfg.kernel_size, cfg.stride, cfg.synthesis)

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
        """Samples of future audio an output sample may depend on when causal: ``tasnet.synthesis_lookahead``."""
        return synthesis_lookahead(self.cfg.kernel_size, self.cfg.synthesis) if self.cfg.causal else None

    @property
    def video_lookahead(self) -> int | None:
        """Video frames past the current one an output sample may depend on when causal.

        One with overlap-add synthesis (a frame's last samples hear the next
        encoder frame, which may lie in the next video frame) or "linear"
        upsampling; none with "causal" or "hop" synthesis and "nearest" upsampling.
        """
        if not self.cfg.causal:
            return None
        return 0 if self.cfg.synthesis != "overlap" and self.cfg.upsample == "nearest" else 1

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
        out = decode(self.decoder, mask * w, left, t, cfg.synthesis)  # [B, T]
        return output_form(out[:, None], mixture, cfg.output)[:, 0]  # [B, T]

    # --- streaming (causal, "nearest" upsampling) --------------------------------------------------------

    @property
    def supports_streaming(self) -> bool:
        """Whether ``init_state`` / ``stream_step`` work: causal, "nearest" upsampling, a hop that divides a video frame."""
        return self.cfg.causal and self.cfg.upsample == "nearest" and SAMPLES_PER_FRAME % self.cfg.stride == 0

    @property
    def stream_delay(self) -> int:
        """Samples by which ``stream_step``'s output lags its input: ``tasnet.synthesis_delay`` (one hop, or none)."""
        self.check_stream_block(self.cfg.stride)
        return synthesis_delay(self.cfg.kernel_size, self.cfg.synthesis)

    def check_stream_block(self, block_size: int) -> None:
        """ConfigError unless the model streams and ``block_size`` is a multiple of the hop dividing 640 (one video frame)."""
        cfg, name = self.cfg, type(self).__name__
        check_stream_block(block_size, cfg.stride, cfg.causal, name)
        if cfg.upsample != "nearest":
            raise ConfigError(f"model {name} upsamples the visual stream with {cfg.upsample!r}; streaming needs 'nearest'")
        if SAMPLES_PER_FRAME % cfg.stride or SAMPLES_PER_FRAME % block_size:
            raise ConfigError(
                f"the streaming block ({block_size}) and the encoder hop ({cfg.stride}) must divide a video frame "
                f"({SAMPLES_PER_FRAME} samples)"
            )

    def init_state(self, batch_size: int = 1) -> dict[str, Tensor]:
        """The streaming state before the first block (flat dict of tensors, fixed sizes).

        Audio path as ConvTasNet's (``enc``, ``dec [B, 1, hop]``, ``frames``,
        ``in_norm``, ``audio.{i}.*``, ``av.{i}.*``); visual path: ``phase [B]``
        (int64, samples into the current video frame), ``visual [B, Dh, 1]``
        (the current frame, projected), ``vnorm.sum [B, Dv]`` / ``vnorm.count
        [B, 1]`` (the running lip mean, with visual_norm "utterance") and
        ``lips.{i} [B, D, span]`` (the lip frontend's conv histories).
        """
        cfg, like = self.cfg, self.encoder.weight
        self.check_stream_block(cfg.stride)
        state = {
            "enc": like.new_zeros(batch_size, cfg.stride),
            "frames": like.new_zeros(batch_size),
            "in_norm": like.new_zeros(batch_size, 2),
            "phase": torch.zeros(batch_size, dtype=torch.int64, device=like.device),
            "visual": like.new_zeros(batch_size, cfg.visual_hidden, 1),
        }
        if cfg.synthesis != "hop":  # an overlap-add tail
            state["dec"] = like.new_zeros(batch_size, 1, cfg.stride)
        state.update(blocks_state(self.audio_blocks, batch_size, like, "audio"))
        state.update(blocks_state(self.av_blocks, batch_size, like, "av"))
        if cfg.visual_norm == "utterance":
            state["vnorm.sum"] = like.new_zeros(batch_size, cfg.visual_channels)
            state["vnorm.count"] = like.new_zeros(batch_size, 1)
        if isinstance(self.visual_frontend, LipsFrontend):
            state.update({f"lips.{i}": h for i, h in enumerate(self.visual_frontend.init_state(batch_size, like))})
        return state

    def _visual_step(self, frame: Tensor, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """One new video frame ``[B, Dv, 1]`` -> the visual part of the state after it (``visual [B, Dh, 1]`` and the rest)."""
        new: dict[str, Tensor] = {}
        v = frame  # [B, Dv, 1]
        if self.cfg.visual_norm == "utterance":  # normalize_visual, causal, as a running mean
            valid = (v.abs().sum(1, keepdim=True) > 0).to(v.dtype)  # [B, 1, 1]
            new["vnorm.sum"] = state["vnorm.sum"] + (v * valid)[..., 0]  # [B, Dv]
            new["vnorm.count"] = state["vnorm.count"] + valid[..., 0]  # [B, 1]
            v = (v - (new["vnorm.sum"] / new["vnorm.count"].clamp_min(1.0))[..., None]) * valid  # [B, Dv, 1]
        if isinstance(self.visual_frontend, LipsFrontend):
            n = len(self.visual_frontend.blocks)
            v, history = self.visual_frontend.step(v, [state[f"lips.{i}"] for i in range(n)])  # [B, D, 1]
            new.update({f"lips.{i}": h for i, h in enumerate(history)})
        new["visual"] = self.visual_proj(v)  # [B, Dh, 1]
        return new

    def stream_step(self, block: Tensor, visual: Tensor | None, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Streaming: audio ``block [B, H]`` (H divides 640) + its video frame ``visual [B, Dv, 1]`` and state -> (``[B, 1, H]``, state).

        ``visual`` is the frame the block lies in (frame f for samples 640 f ..
        640 f + 639), given with every block; it is read when a frame starts
        (``phase`` 0), so a frame spread over several blocks is taken once.
        None: an all-zero frame ("no video"). The output is ``stream_delay``
        samples behind: over a stream, output sample j equals ``forward``'s
        sample j - hop (the first hop samples come before the stream's start;
        ``forward`` on a finite input lacks the encoder frame past its end, so
        its last hop samples match ``forward`` on the input followed by zeros).
        """
        cfg = self.cfg
        self.check_stream_block(block.shape[-1])
        b, h = block.shape
        if visual is None:
            visual = block.new_zeros(b, cfg.visual_channels, 1)
        elif visual.dim() != 3 or tuple(visual.shape) != (b, cfg.visual_channels, 1):
            raise ConfigError(f"expected the block's video frame [B={b}, Dv={cfg.visual_channels}, 1], got {tuple(visual.shape)}")
        frames, phase = state["frames"], state["phase"]
        w, y, skips, new = stream_front(self.encoder, self.in_norm, self.bottleneck, cfg.skip, block, state)
        y, skips = run_blocks_step(self.audio_blocks, y, skips, state, new, "audio", frames)
        visual_keys = [k for k in state if k == "visual" or k.startswith(("vnorm.", "lips."))]
        if torch.onnx.is_in_onnx_export():  # one graph for every phase: compute the frame, keep it where a frame starts
            fresh = self._visual_step(visual.to(w.dtype), state)
            starts = phase == 0  # [B]
            for k in visual_keys:
                new[k] = torch.where(starts.view(-1, *[1] * (state[k].dim() - 1)), fresh[k], state[k])
        elif int(phase[0]) == 0:
            new.update(self._visual_step(visual.to(w.dtype), state))
        else:
            new.update({k: state[k] for k in visual_keys})
        v = new["visual"].expand(-1, -1, w.shape[-1])  # [B, Dh, K] every encoder frame of the block is in this video frame
        y = self.fusion(torch.cat([y, v], dim=1))  # [B, Bn, K]
        y, skips = run_blocks_step(self.av_blocks, y, skips, state, new, "av", frames)
        mask = mask_activation(self.mask_head(skips), cfg.mask_activation)  # [B, N, K]
        out, dec = decode_step(self.decoder, mask * w, state["dec"][:, 0] if "dec" in state else None)  # [B, H]
        if dec is not None:
            new["dec"] = dec[:, None]  # [B, 1, hop]
        new.update(frames=frames + w.shape[-1], phase=(phase + h) % SAMPLES_PER_FRAME)
        mix = delayed_input(block, state["enc"], cfg.synthesis == "overlap")  # [B, H] the input samples the output lines up with
        return output_form(out[:, None], mix, cfg.output), new  # [B, 1, H]
