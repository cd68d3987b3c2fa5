"""Real-time processing: the causal block engine over a model's streaming step, with torch and ONNX backends."""

from avse.streaming.engine import BLOCK_SIZES, StreamingEnhancer, TorchStep, make_step, pick_backend, time_step

__all__ = ["BLOCK_SIZES", "StreamingEnhancer", "TorchStep", "make_step", "pick_backend", "time_step"]
