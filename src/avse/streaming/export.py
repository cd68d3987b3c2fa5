"""ONNX export of a model's streaming step (state tensors as explicit inputs and outputs) and its onnxruntime runner."""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from avse.errors import ConfigError
from avse.models.base import SeparationModel

#: ONNX opset of the exported step
OPSET = 17


class _StepGraph(nn.Module):
    """``stream_step`` with its state dict flattened: (block, [visual], *state) -> (out, *next state), in ``keys`` order."""

    def __init__(self, model: SeparationModel, keys: list[str]):
        super().__init__()
        self.model = model
        self.keys = keys
        self.audio_visual = model.audio_visual

    def forward(self, block: Tensor, *rest: Tensor) -> tuple[Tensor, ...]:
        """block [1, H], (visual [1, Dv, 1],) state tensors -> (output [1, S, H], next state tensors)."""
        visual, states = (rest[0], rest[1:]) if self.audio_visual else (None, rest)
        out, new = self.model.stream_step(block, visual, dict(zip(self.keys, states)))
        return (out, *(new[k] for k in self.keys))


def state_names(model: SeparationModel) -> list[str]:
    """The state keys of ``model.init_state`` in the order the exported graph takes and returns them."""
    return list(model.init_state(1))


def export_step(model: SeparationModel, block: int, path: str | Path | None = None) -> bytes:
    """Export ``model.stream_step`` for blocks of ``block`` samples (batch 1) to ONNX -> the model bytes (also written to ``path``).

    Inputs: ``block`` float32 [1, H]; for audio-visual models ``visual``
    float32 [1, Dv, 1] (the block's video frame); then ``state.<key>`` for
    every key of ``init_state`` (shapes as there). Outputs: ``out`` float32
    [1, S, H], then ``next.<key>`` in the same order. Needs the ``onnx``
    package (the ``eval`` extra); raises ConfigError when it is missing or the
    model does not stream.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs it)
    except ImportError as err:
        raise ConfigError("exporting to ONNX needs the onnx package (pip install 'avse[eval]')") from err
    model.check_stream_block(block)
    was_training = model.training
    model.eval()
    keys = state_names(model)
    state = model.init_state(1)
    args: list[Tensor] = [torch.zeros(1, block)]
    names = ["block"]
    if model.audio_visual:
        args.append(torch.zeros(1, model.visual_channels, 1))
        names.append("visual")
    args += [state[k] for k in keys]
    names += [f"state.{k}" for k in keys]
    try:
        with tempfile.TemporaryDirectory() as tmp, torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # the shape checks are constants for a fixed block
            warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter, chosen: dynamo's needs onnxscript
            file = Path(tmp) / "step.onnx"
            torch.onnx.export(
                _StepGraph(model, keys),
                tuple(args),
                file,
                input_names=names,
                output_names=["out", *(f"next.{k}" for k in keys)],
                opset_version=OPSET,
                dynamo=False,
            )
            data = file.read_bytes()
    finally:
        model.train(was_training)
    if path is not None:
        Path(path).write_bytes(data)
    return data


class OnnxStep:
    """Runs an exported streaming step with onnxruntime: block float32 [H] (+ frame [Dv]) -> output float32 [S, H].

    Keeps the state arrays between calls; ``reset`` starts a new stream.
    ``threads`` is onnxruntime's intra-op thread count.
    """

    name = "onnx"

    def __init__(self, model: SeparationModel, block: int, threads: int = 1):
        try:
            import onnxruntime as ort
        except ImportError as err:
            raise ConfigError("the ONNX backend needs onnxruntime (pip install 'avse[eval]')") from err
        self.block = block
        self.audio_visual = model.audio_visual
        self.visual_channels = model.visual_channels
        self.keys = state_names(model)
        with torch.no_grad():
            self._init = {k: v.detach().cpu().numpy() for k, v in model.init_state(1).items()}
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(export_step(model, block), opts, providers=["CPUExecutionProvider"])
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the state before the first block."""
        self.state = {k: v.copy() for k, v in self._init.items()}

    def __call__(self, block: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        """block float32 [H], frame float32 [Dv] or None (zeros; audio-only models: ignored) -> output float32 [S, H]."""
        feeds = {"block": np.ascontiguousarray(block, dtype=np.float32)[None]}
        if self.audio_visual:
            v = np.zeros(self.visual_channels, np.float32) if frame is None else np.asarray(frame, np.float32)
            feeds["visual"] = np.ascontiguousarray(v)[None, :, None]
        feeds.update({f"state.{k}": v for k, v in self.state.items()})
        outs = self.session.run(None, feeds)
        self.state = dict(zip(self.keys, outs[1:]))
        return outs[0][0]


__all__ = ["OPSET", "OnnxStep", "export_step", "state_names"]
