"""The interface every registered model implements: rates, outputs, visual input, causality and a streaming hook."""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from avse import SAMPLE_RATE, VIDEO_FPS
from avse.errors import ConfigError


class SeparationModel(nn.Module):
    """Base of all registered models; the engine, training, the API, ``avse info`` and checkpoints ask only this.

    A subclass sets ``Config`` (a frozen dataclass), keeps its config in
    ``self.cfg``, implements ``forward`` and ``n_outputs``, and overrides the
    other properties where its defaults do not hold:

    - ``sample_rate`` (Hz) and ``video_fps``: the rates it works at;
    - ``n_outputs``: estimates per mixture (S);
    - ``visual_channels``: Dv of the visual input ``[B, Dv, F]``, 0 for an
      audio-only model (``audio_visual`` is derived from it);
    - ``causal``, ``lookahead`` (samples of future audio an output sample may
      depend on; None when not causal) and ``video_lookahead`` (video frames
      past the current one; None when not causal);
    - the streaming hook ``init_state`` / ``stream_step`` (state in, state out),
      with ``stream_delay`` and ``check_stream_block``, which the
      block-by-block engine (avse.streaming) calls; a model without one
      raises ConfigError from all four.

    ``forward`` keeps the model's own signature (``forward(mixture)`` or
    ``forward(mixture, visual)``); callers that treat all models alike use
    ``estimates(mixture, visual)``, which always returns ``[B, S, T]``.
    """

    Config: ClassVar[type]
    model_name: ClassVar[str]
    cfg: Any

    @classmethod
    def from_config(cls, cfg: Any) -> SeparationModel:
        """Build the model of ``cfg`` (an instance of ``cls.Config``)."""
        return cls(cfg)

    @property
    def sample_rate(self) -> int:
        """Audio sample rate in Hz the model works at."""
        return SAMPLE_RATE

    @property
    def video_fps(self) -> float:
        """Video frames per second of the visual stream (one frame per ``sample_rate / video_fps`` samples)."""
        return float(VIDEO_FPS)

    @property
    def n_outputs(self) -> int:
        """Estimates per mixture, S."""
        raise NotImplementedError

    @property
    def visual_channels(self) -> int:
        """Dv of the visual input ``[B, Dv, F]``; 0 when the model takes audio only."""
        return 0

    @property
    def audio_visual(self) -> bool:
        """Whether the model takes a visual stream (``visual_channels > 0``)."""
        return self.visual_channels > 0

    @property
    def causal(self) -> bool:
        """Whether an output sample depends on past input and a bounded look-ahead only."""
        return bool(getattr(self.cfg, "causal", False))

    @property
    def sums_to_input(self) -> bool:
        """Whether the estimates add up to the mixture by construction (``output: consistent``): they are on the
        input's scale already, so inference does not fit their gains (a near-silent output would be scaled up)."""
        return getattr(self.cfg, "output", None) == "consistent"

    @property
    def lookahead(self) -> int | None:
        """Samples of future audio an output sample may depend on; None when the model is not causal."""
        return None

    @property
    def video_lookahead(self) -> int | None:
        """Video frames past the current one an output sample may depend on; None when not causal or audio-only."""
        return None

    def interface(self) -> dict[str, Any]:
        """The model's interface as plain values (written into checkpoints, shown by ``avse info``)."""
        return {
            "sample_rate": self.sample_rate,
            "video_fps": self.video_fps,
            "n_outputs": self.n_outputs,
            "visual_channels": self.visual_channels,
            "causal": self.causal,
            "lookahead": self.lookahead,
            "video_lookahead": self.video_lookahead,
        }

    def estimates(self, mixture: Tensor, visual: Tensor | None = None) -> Tensor:
        """mixture ``[B, T]`` (+ visual ``[B, Dv, F]`` for AV models) -> estimates ``[B, S, T]``.

        An audio-visual model given no visual stream gets all zeros (its "no
        video" input); an audio-only model given one raises ConfigError.
        """
        if not self.audio_visual:
            if visual is not None:
                raise ConfigError(f"model {type(self).__name__} is audio-only; it takes no visual stream")
            out = self(mixture)  # [B, S, T]
        else:
            if visual is None:
                n_frames = -(-mixture.shape[-1] // self.samples_per_frame)
                visual = mixture.new_zeros(mixture.shape[0], self.visual_channels, n_frames)  # [B, Dv, F]
            out = self(mixture, visual)  # [B, T] or [B, S, T]
        return out[:, None] if out.dim() == 2 else out  # [B, S, T]

    @property
    def samples_per_frame(self) -> int:
        """Audio samples per video frame (640 at 16 kHz and 25 fps)."""
        return int(round(self.sample_rate / self.video_fps))

    def init_state(self, batch_size: int = 1) -> dict[str, Tensor]:
        """Streaming hook: the state before the first block (tensors only, so it can cross an export boundary)."""
        raise ConfigError(f"model {type(self).__name__} has no streaming implementation")

    def stream_step(self, block: Tensor, visual: Tensor | None, state: dict[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Streaming hook: audio ``block [B, H]`` (+ its visual frames ``[B, Dv, f]``) and state -> (output ``[B, S, H]``, new state)."""
        raise ConfigError(f"model {type(self).__name__} has no streaming implementation")

    @property
    def supports_streaming(self) -> bool:
        """Whether ``init_state`` / ``stream_step`` are implemented."""
        return type(self).stream_step is not SeparationModel.stream_step

    @property
    def stream_delay(self) -> int:
        """Samples by which ``stream_step``'s output lags its input: stream output j is the offline output j - delay."""
        raise ConfigError(f"model {type(self).__name__} has no streaming implementation")

    def check_stream_block(self, block_size: int) -> None:
        """ConfigError unless ``stream_step`` takes audio blocks of ``block_size`` samples (no streaming: always)."""
        raise ConfigError(f"model {type(self).__name__} has no streaming implementation")
