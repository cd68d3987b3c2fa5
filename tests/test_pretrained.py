"""The shipped models: present, small, of the kind their names say, and they do their job on a synthetic mixture."""

import numpy as np
import pytest

from avse.api import PRETRAINED_DIR, SHIPPED, Enhancer, Separator, load_model
from avse.audio.io import load_audio
from avse.evaluation.metrics import si_sdr
from avse.models import count_parameters


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_there_small_and_of_its_kind(name):
    file, _ = SHIPPED[name]
    path = PRETRAINED_DIR / file
    assert path.is_file() and path.stat().st_size < 3_000_000
    model, info = load_model(name)
    assert count_parameters(model) < 500_000
    assert info["audio_visual"] == name.startswith("av")
    assert info["n_outputs"] == (2 if name == "separate" else 1)
    assert getattr(model.cfg, "causal") == (name == "av-causal")


def test_shipped_separator_splits_two_synthetic_talkers(tiny_corpus):
    """Two voices of the tiny corpus (never in the models corpus) mixed at 0 dB: both come out better."""
    a, _ = load_audio(sorted((tiny_corpus / "dev" / "targets").glob("*.wav"))[0], 16000)
    b, _ = load_audio(sorted((tiny_corpus / "dev" / "interferers" / "speech").glob("*.wav"))[0], 16000)
    n = min(len(a), len(b))
    a, b = a[:n], b[:n] * np.sqrt(np.sum(a[:n] ** 2) / np.sum(b[:n] ** 2))
    mix = (a + b) / (2 * np.abs(a + b).max())
    est = Separator.from_pretrained("separate", av=None).separate(mix, 16000)
    gain = max(si_sdr(est[0], a) + si_sdr(est[1], b), si_sdr(est[0], b) + si_sdr(est[1], a)) - si_sdr(mix, a) - si_sdr(mix, b)
    assert gain / 2 > 3.0  # dB per voice


def test_shipped_enhancer_removes_noise(tiny_corpus):
    """The audio-only model on a tiny-corpus voice in that corpus's noise at 0 dB."""
    s, _ = load_audio(sorted((tiny_corpus / "dev" / "targets").glob("*.wav"))[0], 16000)
    z, _ = load_audio(sorted((tiny_corpus / "dev" / "interferers" / "noise").glob("*.wav"))[0], 16000)
    z = np.resize(z, len(s)) * np.sqrt(np.sum(s**2) / np.sum(np.resize(z, len(s)) ** 2))
    mix = (s + z) / (2 * np.abs(s + z).max())
    est = Enhancer.from_pretrained("audio", fallback=None).enhance(mix, 16000)
    assert si_sdr(est, s) - si_sdr(mix, s) > 3.0
