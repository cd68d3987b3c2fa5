"""Streaming sample-rate conversion: a causal polyphase FIR with carried state and an exactly known delay."""

from __future__ import annotations

from fractions import Fraction
from math import gcd

import numpy as np
from scipy.signal import firwin

from avse.errors import ConfigError


class StreamResampler:
    """Rational-ratio resampler (``sr_in`` -> ``sr_out``) for a stream: chunks of any length in, what is ready out.

    A Kaiser-windowed low-pass FIR of ``2 * half * R + 1`` taps (R = max(up,
    down), cut-off ``cutoff`` x the lower Nyquist rate) applied polyphase to
    the zero-stuffed input and decimated. The filter is causal: output sample
    m is computed as soon as the input sample at ``floor(m * down / up)`` has
    come, so after N input samples exactly ``ceil(N * up / down)`` output
    samples have been returned (``count(N)``), whatever the chunking. The
    linear-phase filter delays the signal by ``delay`` output samples
    (``half * R / down``; a Fraction, an integer for 48 k <-> 16 k) =
    ``delay_seconds``. Equal rates pass through with no delay.
    """

    def __init__(self, sr_in: int, sr_out: int, half: int = 24, cutoff: float = 0.9, beta: float = 8.6):
        if sr_in <= 0 or sr_out <= 0 or half < 1:
            raise ConfigError(f"sample rates must be positive and half >= 1, got {sr_in} -> {sr_out}, half {half}")
        g = gcd(int(sr_in), int(sr_out))
        self.sr_in, self.sr_out = int(sr_in), int(sr_out)
        self.up, self.down = self.sr_out // g, self.sr_in // g
        self.identity = self.up == self.down
        r = max(self.up, self.down)
        self.half = 0 if self.identity else int(half)
        if not self.identity:
            h = firwin(2 * self.half * r + 1, cutoff / r, window=("kaiser", beta)) * self.up  # [L]
            n_phase = -(-h.shape[0] // self.up)
            h = np.concatenate([h, np.zeros(n_phase * self.up - h.shape[0])])
            self._h = h.reshape(n_phase, self.up).T.astype(np.float64)  # [up, Kp]: phase p, tap j = h[p + j up]
            self._kp = n_phase
        self.reset()

    @property
    def delay(self) -> Fraction:
        """The filter's group delay in output samples (exact)."""
        return Fraction(self.half * max(self.up, self.down), self.down)

    @property
    def delay_seconds(self) -> float:
        """The filter's group delay in seconds."""
        return float(self.delay) / self.sr_out

    def count(self, n_in: int) -> int:
        """How many output samples the stream has returned after ``n_in`` input samples."""
        return n_in if self.identity else -(-n_in * self.up // self.down)

    def reset(self) -> None:
        """Start a new stream: zero history."""
        self._n_in = 0  # input samples received
        self._n_out = 0  # output samples returned
        self._hist = np.zeros(0 if self.identity else self._kp - 1, np.float64)  # the last Kp - 1 inputs

    def push(self, x: np.ndarray) -> np.ndarray:
        """Input chunk float [n] -> the output samples now ready, float32 [m] (m = count(N + n) - count(N))."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        if self.identity:
            self._n_in += x.shape[0]
            self._n_out += x.shape[0]
            return x.astype(np.float32)
        buf = np.concatenate([self._hist, x])  # buf[k] is absolute input sample k + offset
        offset = self._n_in - self._hist.shape[0]
        self._n_in += x.shape[0]
        m = np.arange(self._n_out, self.count(self._n_in), dtype=np.int64)  # [M] output indices now ready
        self._n_out += m.shape[0]
        self._hist = buf[buf.shape[0] - (self._kp - 1) :]
        if m.shape[0] == 0:
            return np.zeros(0, np.float32)
        t = m * self.down  # [M] positions on the up-sampled grid
        base, phase = t // self.up, t % self.up  # newest input sample each output uses, and its filter phase
        idx = (base - offset)[:, None] - np.arange(self._kp)[None, :]  # [M, Kp] into buf; < 0: before the stream (zeros)
        vals = np.where(idx >= 0, buf[np.clip(idx, 0, None)], 0.0)  # [M, Kp]
        return np.einsum("mj,mj->m", self._h[phase], vals).astype(np.float32)

    def process(self, x: np.ndarray, chunk: int = 16384) -> np.ndarray:
        """A whole signal float [T] through a fresh stream (then reset) -> float32 [count(T)], ``delay`` late."""
        self.reset()
        x = np.asarray(x).reshape(-1)
        y = np.concatenate([self.push(x[i : i + chunk]) for i in range(0, x.shape[0], chunk)] or [np.zeros(0, np.float32)])
        self.reset()
        return y


__all__ = ["StreamResampler"]
