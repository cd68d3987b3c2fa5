"""Small signal helpers shared by the front end: moving averages over frames."""

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
