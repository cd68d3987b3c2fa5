"""Small signal helpers shared by the front end: moving averages over frames, gaps filled by interpolation."""

from __future__ import annotations

import numpy as np


def centred_mean(x: np.ndarray, half_window: int) -> np.ndarray:
    """Centred moving average over axis 0 of x [N, ...], window 2 * half_window + 1 frames.

    Near the ends the window shrinks symmetrically (frame 0 is its own mean), so
    the average never lags and never reaches past the clip. O(N) by cumulative sums.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if half_window <= 0 or n == 0:
        return x
    csum = np.concatenate([np.zeros((1,) + x.shape[1:]), np.cumsum(x, axis=0)])  # [N + 1, ...]
    i = np.arange(n)
    h = np.minimum(np.minimum(i, n - 1 - i), half_window)  # [N]
    scale = (2 * h + 1).reshape((n,) + (1,) * (x.ndim - 1))
    return (csum[i + h + 1] - csum[i - h]) / scale


def interpolate_gaps(x: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """x [N, ...] with rows ``missing`` (bool [N]) -> a copy (same dtype) with those rows filled in.

    A missing row is interpolated linearly (in float64) between the nearest
    present rows before and after it, exact on linear motion, and held at the
    nearest present row before the first and after the last one. With no row
    present the copy is returned unchanged.
    """
    x = np.array(x)  # a copy, [N, ...]
    missing = np.asarray(missing, dtype=bool)
    seen = np.flatnonzero(~missing)
    gaps = np.flatnonzero(missing)
    if seen.size == 0 or gaps.size == 0:
        return x
    after = np.searchsorted(seen, gaps)  # index into seen of the next present row
    lo = seen[np.clip(after - 1, 0, seen.size - 1)]  # present row before (or the first)
    hi = seen[np.clip(after, 0, seen.size - 1)]  # present row after (or the last)
    w = np.where(hi > lo, (gaps - lo) / np.maximum(hi - lo, 1), 0.0)  # [G]; 0 at the ends (held)
    flat = x.reshape(len(x), -1)  # [N, D], a view
    x_lo, x_hi = flat[lo].astype(np.float64), flat[hi].astype(np.float64)  # [G, D]
    flat[gaps] = ((1.0 - w)[:, None] * x_lo + w[:, None] * x_hi).astype(x.dtype)
    return x
