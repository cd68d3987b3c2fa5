"""Moving averages over frames."""

import numpy as np
import pytest

from avse.utils.signal import centred_mean


@pytest.mark.parametrize("half", [0, 1, 3, 10])
def test_centred_mean_matches_a_direct_shrinking_window(half):
    x = np.random.default_rng(half).standard_normal((9, 4, 2))
    got = centred_mean(x, half)
    for i in range(len(x)):
        h = min(i, len(x) - 1 - i, half)
        np.testing.assert_allclose(got[i], x[i - h : i + h + 1].mean(0), atol=1e-12)


def test_centred_mean_keeps_a_ramp_in_place():
    ramp = np.arange(20, dtype=float)[:, None]
    np.testing.assert_allclose(centred_mean(ramp, 3), ramp, atol=1e-12)
