"""Real-time processing: the causal block engine (torch and ONNX steps); live I/O in audio_io, camera, resample and live."""

from avse.streaming.engine import BLOCK_SIZES, StreamingEnhancer, TorchStep, make_step, pick_backend, time_step

__all__ = ["BLOCK_SIZES", "StreamingEnhancer", "TorchStep", "make_step", "pick_backend", "time_step"]
