"""The live tab's engine: the browser's microphone chunks through avse.streaming.StreamingEnhancer, audio only."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from avse import SAMPLE_RATE
from avse.errors import ConfigError

#: why the browser path runs without the camera's lips (shown in the tab)
NO_CAMERA = (
    "The camera's lips are not used here. In the browser, sound and camera frames reach the server as two separate "
    "streams with no common clock, so a frame cannot be matched to its 40 ms of sound the way `avse live` does "
    "(there, both are stamped at capture). This tab therefore runs the causal model audio-only (its \"no video\" "
    "input); for the lips, run `avse live --camera 0` on the machine with the camera."
)


class BrowserLive:
    """The browser's microphone through a causal model: chunks in at the browser's rate, enhanced chunks out at 16 kHz.

    ``model``: a causal model name or path (default "av-causal", run with no
    video). ``block``: the model block in 16 kHz samples. ``backend``: as for
    StreamingEnhancer ("auto": both timed here, the faster kept). The input is
    resampled with ``avse.streaming.resample.StreamResampler`` (causal, its
    delay known), so the algorithmic latency is the engine's plus the
    resampler's; the browser adds the chunk interval it sends at and its
    player's buffer, which the server cannot measure.
    """

    def __init__(self, model: str = "av-causal", block: int = 640, backend: str = "auto"):
        from avse.config import ATTEN_LIM_DB
        from avse.streaming import StreamingEnhancer

        self.engine = StreamingEnhancer(model, block=block, backend=backend, video=False, atten_lim_db=ATTEN_LIM_DB)
        self.resampler: Any = None
        self.sr_in: int | None = None
        self.seconds_in = 0.0
        self.chunks = 0
        self.compute_s = 0.0  # time spent in resampling + the model
        self.last_chunk_s = 0.0  # length of the last chunk received

    def push(self, sr: int, data: np.ndarray) -> np.ndarray:
        """One chunk from the browser: ``data`` int16 or float [n] or [n, C] at ``sr`` -> float32 [m] at 16 kHz, enhanced."""
        from avse.api import to_mono
        from avse.streaming.resample import StreamResampler

        if sr <= 0:
            raise ConfigError(f"the microphone's sample rate must be positive, got {sr}")
        if self.sr_in is None:
            self.sr_in = int(sr)
            self.resampler = StreamResampler(self.sr_in, SAMPLE_RATE)
        elif int(sr) != self.sr_in:
            raise ConfigError(f"the microphone changed its rate ({self.sr_in} -> {sr} Hz); start the stream again")
        x = to_mono(np.asarray(data))  # [n]
        t0 = time.perf_counter()
        x16 = self.resampler.push(x)  # [n'] at 16 kHz, causal, state carried
        y = self.engine.push(x16)  # [m]
        self.compute_s += time.perf_counter() - t0
        self.chunks += 1
        self.last_chunk_s = x.shape[0] / sr
        self.seconds_in += self.last_chunk_s
        return np.asarray(y, dtype=np.float32)

    def latency(self) -> dict[str, float]:
        """Latency in ms: the model's (block + look-ahead), the resampler's, the browser's chunk, their sum; real-time factor."""
        model_ms = float(self.engine.latency_ms)
        resample_ms = 1000.0 * float(self.resampler.delay_seconds) if self.resampler is not None else 0.0
        chunk_ms = 1000.0 * self.last_chunk_s
        rtf = self.compute_s / self.seconds_in if self.seconds_in else 0.0
        return {"model_ms": model_ms, "resample_ms": resample_ms, "browser_chunk_ms": chunk_ms,
                "total_ms": model_ms + resample_ms + chunk_ms, "real_time_factor": rtf}

    def status(self) -> str:
        """One line for the tab: latency (model, resampling, the browser's chunk), compute per second of sound."""
        lat = self.latency()
        return (f"{self.seconds_in:.1f} s heard | latency {lat['total_ms']:.0f} ms = model {lat['model_ms']:.0f} ms "
                f"+ resampling {lat['resample_ms']:.1f} ms + the browser's chunk {lat['browser_chunk_ms']:.0f} ms "
                f"(plus the browser's playback buffer, not measurable here) | real-time factor {lat['real_time_factor']:.2f} "
                f"| backend {self.engine.step.name} | audio-only (no lips)")


__all__ = ["NO_CAMERA", "BrowserLive"]
