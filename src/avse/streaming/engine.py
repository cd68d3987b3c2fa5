"""The causal block engine: buffers arbitrary audio chunks (and video frames on the audio clock) into model blocks."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from avse import SAMPLES_PER_FRAME
from avse.errors import ConfigError
from avse.models.base import SeparationModel
from avse.video.lipfeat import clean_frames

#: block sizes the engine is tested with (samples at 16 kHz: 40, 20 and 10 ms)
BLOCK_SIZES = (640, 320, 160)
BACKENDS = ("auto", "torch", "onnx")


class StepFn(Protocol):
    """One streaming step with its state inside: block float32 [H] (+ frame float32 [Dv]) -> output float32 [S, H]."""

    name: str

    def __call__(self, block: np.ndarray, frame: np.ndarray | None) -> np.ndarray: ...

    def reset(self) -> None: ...


class TorchStep:
    """Runs ``model.stream_step`` eagerly (inference mode): block float32 [H] (+ frame [Dv]) -> output float32 [S, H]."""

    name = "torch"

    def __init__(self, model: SeparationModel, block: int):
        model.check_stream_block(block)
        self.model = model
        self.block = block
        try:
            self.device = next(model.parameters()).device
        except StopIteration:
            self.device = torch.device("cpu")
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the state before the first block."""
        with torch.inference_mode():
            self.state = self.model.init_state(1)

    def __call__(self, block: np.ndarray, frame: np.ndarray | None) -> np.ndarray:
        """block float32 [H], frame float32 [Dv] or None (zeros; audio-only models: ignored) -> output float32 [S, H]."""
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))[None].to(self.device)  # [1, H]
            v = None
            if self.model.audio_visual and frame is not None:
                v = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))[None, :, None].to(self.device)  # [1, Dv, 1]
            out, self.state = self.model.stream_step(x, v, self.state)  # [1, S, H]
        return out[0].float().cpu().numpy()


def make_step(model: SeparationModel, block: int, backend: str, threads: int = 1) -> StepFn:
    """The step runner of ``backend`` ("torch" or "onnx"; ``threads``: onnxruntime's intra-op threads)."""
    if backend == "torch":
        return TorchStep(model, block)
    if backend == "onnx":
        from avse.streaming.export import OnnxStep

        return OnnxStep(model, block, threads=threads)
    raise ConfigError(f"backend must be 'torch' or 'onnx', got {backend!r}")


def time_step(step: StepFn, block: int, visual_channels: int, n_blocks: int = 60, seed: int = 0) -> np.ndarray:
    """Seconds per call of ``step`` on ``n_blocks`` blocks of noise (after 5 warm-up calls) -> float64 [n_blocks]; resets it after."""
    rng = np.random.default_rng(seed)
    x = (0.1 * rng.standard_normal((n_blocks + 5, block))).astype(np.float32)  # [n, H]
    v = rng.standard_normal((n_blocks + 5, visual_channels)).astype(np.float32) if visual_channels else None  # [n, Dv]
    step.reset()
    times = np.empty(n_blocks)
    for i in range(n_blocks + 5):
        t0 = time.perf_counter()
        step(x[i], None if v is None else v[i])
        if i >= 5:
            times[i - 5] = time.perf_counter() - t0
    step.reset()
    return times


def pick_backend(model: SeparationModel, block: int, threads: int = 1, n_blocks: int = 60) -> tuple[StepFn, dict[str, Any]]:
    """Time the torch and ONNX steps of ``model`` on ``block``-sample blocks and keep the faster -> (step, report).

    The report: ``{"backend": name, "median_ms": {name: ms per block}, "why": text}``.
    Torch runs with the process's torch thread setting, onnxruntime with
    ``threads``. Without onnx / onnxruntime (the ``eval`` extra) torch is kept.
    """
    steps: list[StepFn] = [TorchStep(model, block)]
    why = "faster median time per block"
    try:
        steps.append(make_step(model, block, "onnx", threads))
    except ConfigError as err:
        why = f"onnx unavailable ({err})"
    medians = {s.name: float(np.median(time_step(s, block, model.visual_channels, n_blocks))) * 1e3 for s in steps}
    best = min(steps, key=lambda s: medians[s.name])
    return best, {"backend": best.name, "median_ms": {k: round(v, 4) for k, v in medians.items()}, "why": why}


class StreamingEnhancer:
    """Real-time enhancement with a causal model: arbitrary audio chunks in, enhanced audio out, fixed latency.

    ``model``: a streaming SeparationModel (causal TasNet or AVNet) or a name
    / checkpoint path for ``avse.api.load_model`` (e.g. "av-causal"). Audio is
    float32 mono at 16 kHz; ``push`` takes chunks of any length and returns
    what is ready. The output stream is the offline output delayed by
    ``delay`` samples (its first ``delay`` samples are zeros), so
    ``concat(pushes + [flush()])[delay : delay + T]`` is ``model`` run offline
    on the T input samples. Algorithmic latency = ``block`` (buffering) +
    ``delay`` (the model's look-ahead): ``latency_samples`` / ``latency_ms``.

    Video (audio-visual models): lip-feature frames [f, Dv] on the audio clock,
    frame i belonging to samples 640 i .. 640 i + 639 (rows with NaN are
    frames without a face: zeros). A block is run once its frame has come,
    read when the frame starts (no later frame is needed: the model's one-frame
    video look-ahead falls inside the ``delay``). Audio waits up to
    ``max_video_wait_ms`` for a late frame; past that the last frame is held
    (zeros before any) and the late frame is not used.

    ``video``: None or True: frames are expected as above (audio-visual
    models); False: all-zero frames ("no video"), no waiting. ``backend``:
    "torch", "onnx", or "auto" (time both on this machine, keep the faster;
    ``describe()`` says which). ``threads``: onnxruntime's intra-op threads
    (torch uses the process's setting). ``atten_lim_db``: for a one-output
    model, the input mixed back in that far below the output (the offline
    ``avse.api.Enhancer``'s attenuation limit, on the same ``delay``-late
    clock); None (default here) or 0: the model's output as it is.
    """

    def __init__(
        self,
        model: SeparationModel | str | Path,
        block: int = 640,
        backend: str = "auto",
        video: bool | None = None,
        threads: int = 1,
        max_video_wait_ms: float = 80.0,
        atten_lim_db: float | None = None,
    ):
        from avse.api import mix_back_gain

        name = str(model) if isinstance(model, (str, Path)) else type(model).__name__
        if isinstance(model, (str, Path)):
            from avse.api import load_model

            model = load_model(model)[0]
        if not isinstance(model, SeparationModel):
            raise ConfigError(f"a {type(model).__name__} is not an avse model")
        if backend not in BACKENDS:
            raise ConfigError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        model.eval()
        model.check_stream_block(block)
        self.model = model
        self.name = name
        self.block = block
        self.delay = model.stream_delay
        self.n_outputs = model.n_outputs
        self.audio_visual = model.audio_visual
        self.video = self.audio_visual if video is None else bool(video) and self.audio_visual
        self.max_video_wait = int(round(max_video_wait_ms * model.sample_rate / 1000))
        self.sample_rate = model.sample_rate
        self.mix_back = mix_back_gain(atten_lim_db) if self.n_outputs == 1 else 0.0
        self.choice: dict[str, Any] = {"backend": backend, "why": "given"}
        if backend == "auto":
            self.step, self.choice = pick_backend(model, block, threads)
        else:
            self.step = make_step(model, block, backend, threads)
        self.reset()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path = "av-causal", block: int = 640, backend: str = "auto"
    ) -> StreamingEnhancer:
        """A StreamingEnhancer on a shipped model name (default the causal audio-visual "av-causal") or a checkpoint path."""
        return cls(name_or_path, block=block, backend=backend)

    # --- latency -------------------------------------------------------------------------------------

    @property
    def latency_samples(self) -> int:
        """Algorithmic latency in samples: the block plus the model's look-ahead (``delay``)."""
        return self.block + self.delay

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency in milliseconds."""
        return 1000.0 * self.latency_samples / self.sample_rate

    def describe(self) -> dict[str, Any]:
        """What runs and how late: model, backend (and why), block, delay, latency in samples and ms, video handling."""
        return {
            "model": self.name,
            "backend": self.step.name,
            "backend_choice": self.choice,
            "block_samples": self.block,
            "block_ms": 1000.0 * self.block / self.sample_rate,
            "delay_samples": self.delay,
            "latency_samples": self.latency_samples,
            "latency_ms": self.latency_ms,
            "n_outputs": self.n_outputs,
            "audio_visual": self.audio_visual,
            "video": self.video,
            "mix_back": self.mix_back,
        }

    # --- the stream ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """Start a new stream: empty buffers, the model state before the first block."""
        self.step.reset()
        self._audio = np.zeros(0, np.float32)  # [n] input not yet run
        self._consumed = 0  # input samples run through the model
        self._pushed = 0  # input samples received
        self._emitted = 0  # output samples returned
        self._dry = np.zeros(0, np.float32)  # input from sample _dry_start on, kept to be mixed back (mix_back > 0)
        self._dry_start = 0
        self._frames: deque[np.ndarray] = deque()  # [Dv] each: frames _frames_in - len(_frames) .. _frames_in - 1
        self._frames_in = 0  # video frames received
        self._last_frame: np.ndarray | None = None

    def _frame_for(self, start: int, waiting: bool) -> tuple[bool, np.ndarray | None]:
        """The frame of the block starting at sample ``start`` -> (ready, frame float32 [Dv] or None for zeros)."""
        if not self.video:
            return True, None
        f = start // SAMPLES_PER_FRAME
        first = self._frames_in - len(self._frames)  # index of _frames[0]
        while self._frames and first < f:  # frames before this block's are no longer needed
            self._last_frame = self._frames.popleft()
            first += 1
        if self._frames:
            return True, self._frames[0]
        if waiting:
            return False, None
        return True, self._last_frame  # late or missing: hold the last frame

    def _run(self, final: bool) -> list[np.ndarray]:
        """Run every block that is ready (``final``: every block, holding the last frame) -> outputs [S, H] each."""
        outs = []
        while self._audio.shape[0] >= self.block:
            waiting = not final and self._audio.shape[0] < self.block + self.max_video_wait
            ready, frame = self._frame_for(self._consumed, waiting)
            if not ready:
                break
            outs.append(self.step(self._audio[: self.block], frame))  # [S, H]
            self._audio = self._audio[self.block :]
            self._consumed += self.block
        return outs

    def _emit(self, outs: list[np.ndarray], limit: int | None = None) -> np.ndarray:
        """Block outputs -> the next output samples ([n] for one output, [S, n] for several), the stream's first ``delay`` zeroed."""
        y = np.concatenate(outs, axis=-1) if outs else np.zeros((self.n_outputs, 0), np.float32)  # [S, n]
        if limit is not None:
            y = y[:, : max(0, limit - self._emitted)]
        head = self.delay - self._emitted
        if head > 0:
            y[:, :head] = 0.0
        if self.mix_back > 0.0 and y.shape[-1]:
            y = y + self.mix_back * (self._dry_for(self._emitted - self.delay, y.shape[-1])[None] - y)
        self._emitted += y.shape[-1]
        return y[0] if self.n_outputs == 1 else y

    def _dry_for(self, start: int, n: int) -> np.ndarray:
        """Input samples start .. start + n - 1 (zeros before the stream and past what was pushed) -> float32 [n];
        what comes before start + n is then dropped."""
        out = np.zeros(n, np.float32)
        lo, hi = max(start, self._dry_start), min(start + n, self._dry_start + self._dry.shape[0])
        if hi > lo:
            out[lo - start : hi - start] = self._dry[lo - self._dry_start : hi - self._dry_start]
        cut = min(max(0, start + n - self._dry_start), self._dry.shape[0])
        self._dry, self._dry_start = self._dry[cut:], self._dry_start + cut
        return out

    def push(self, audio: np.ndarray, frames: np.ndarray | None = None) -> np.ndarray:
        """Feed ``audio`` float [n] (16 kHz, any n) and the next video ``frames`` [f, Dv] (or None) -> the ready output.

        Returns float32 [m] (one-output models) or [S, m], m a multiple of the
        block (0 while a block fills or waits for its frame).
        """
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        if frames is not None and self.video:
            v = np.asarray(frames, dtype=np.float32)
            v = v[None] if v.ndim == 1 else v  # [f, Dv]
            if v.ndim != 2 or v.shape[1] != self.model.visual_channels:
                raise ConfigError(f"video frames must be [f, {self.model.visual_channels}], got shape {np.shape(frames)}")
            clean, _ = clean_frames(v)  # [f, Dv] frames without a face -> zeros
            self._frames.extend(clean)
            self._frames_in += clean.shape[0]
        self._audio = np.concatenate([self._audio, x])
        self._pushed += x.shape[0]
        if self.mix_back > 0.0:
            self._dry = np.concatenate([self._dry, x])
        return self._emit(self._run(final=False))

    def flush(self) -> np.ndarray:
        """End the stream: run what is buffered (zero-padded, last frame held) -> the rest of the output; then reset.

        Over the whole stream the engine has returned ``pushed + delay``
        samples: the offline output of every input sample, ``delay`` late.
        """
        total = self._pushed + self.delay
        missing = total - self._consumed
        if missing > 0:
            pad = -(-missing // self.block) * self.block - self._audio.shape[0]
            self._audio = np.concatenate([self._audio, np.zeros(max(pad, 0), np.float32)])
        y = self._emit(self._run(final=True), limit=total)
        self.reset()
        return y

    def process(self, audio: np.ndarray, frames: np.ndarray | None = None, chunk: int | None = None) -> np.ndarray:
        """Stream a whole recording through (in ``chunk``-sample pieces, default one block) -> output aligned with the input.

        audio float [T], frames [F, Dv] (frame i with samples 640 i ..) -> float32
        [T] or [S, T]: the stream with its ``delay`` removed (what the
        offline model gives, up to rounding).
        """
        x = np.asarray(audio, dtype=np.float32).reshape(-1)
        step = chunk or self.block
        outs = []
        for i in range(0, x.shape[0], step):
            f = None
            if frames is not None:
                a, b = -(-i // SAMPLES_PER_FRAME), -(-min(i + step, x.shape[0]) // SAMPLES_PER_FRAME)
                f = frames[a:b]
            outs.append(self.push(x[i : i + step], f))
        outs.append(self.flush())
        y = np.concatenate(outs, axis=-1)
        return y[..., self.delay : self.delay + x.shape[0]]


__all__ = ["BACKENDS", "BLOCK_SIZES", "StepFn", "StreamingEnhancer", "TorchStep", "make_step", "pick_backend", "time_step"]
