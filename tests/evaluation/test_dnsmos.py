"""DNSMOS: window layout and P.808 features exactly, and the real models (when ../shared has them) on real speech."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avse.errors import ConfigError
from avse.evaluation.dnsmos import Dnsmos, dnsmos_windows, p808_features

SHARED = Path(__file__).resolve().parents[3] / "shared"
MODELS = SHARED / "models" / "dnsmos"
REAL = SHARED / "data" / "real"
needs_models = pytest.mark.skipif(not (MODELS / "sig_bak_ovr.onnx").is_file(), reason="DNSMOS models not in ../shared/models")


def test_windows_repeat_short_input_and_hop_one_second():
    x = np.arange(16000, dtype=np.float32)  # 1 s: repeated to 16 s, then cut into 9.01 s windows
    w = dnsmos_windows(x)
    assert w.shape == (7, 144160)  # floor(16 - 9.01) + 1
    np.testing.assert_array_equal(w[0, 16000:32000], x)  # the copy follows the original
    np.testing.assert_array_equal(w[1], np.tile(x, 16)[16000 : 16000 + 144160])
    assert dnsmos_windows(np.ones(20 * 16000 + 5)).shape == (11, 144160)
    with pytest.raises(ConfigError):
        dnsmos_windows(np.zeros(0))


def test_p808_features_are_a_clamped_log_mel_relative_to_the_maximum():
    rng = np.random.default_rng(0)
    f = p808_features(rng.standard_normal(144000).astype(np.float32))
    assert f.shape == (900, 120) and f.dtype == np.float32  # 1 + (144000 + 2 * 160 - 321) // 160 frames, 120 mels
    assert f.max() == pytest.approx(1.0) and f.min() >= -1.0 - 1e-6  # 0 dB -> 1, floor 80 dB below -> -1
    g = p808_features(0.01 * rng.standard_normal(144000).astype(np.float32))
    assert abs(float(g.mean()) - float(f.mean())) < 0.05  # relative to its own maximum: level does not matter


def test_missing_models_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no DNSMOS model"):
        Dnsmos(tmp_path)
    (tmp_path / "sig_bak_ovr.onnx").write_bytes(b"not onnx")
    with pytest.raises(Exception, match="not a readable ONNX model"):
        Dnsmos(tmp_path)


@needs_models
def test_clean_real_speech_scores_above_the_same_in_noise():
    from avse.audio.io import load_audio

    model = Dnsmos(MODELS)
    assert model.has_p808
    clean, _ = load_audio(REAL / "speech" / "cmu_arctic_us_aew_a0001.wav", sample_rate=16000)
    noise, _ = load_audio(REAL / "noise" / "cafe_short.wav", sample_rate=16000)
    noise = np.resize(noise, clean.shape) * np.sqrt(np.mean(clean**2) / np.mean(noise**2))  # 0 dB
    a, b = model.score(clean), model.score(clean + noise)
    assert 2.5 < a.ovrl < 4.5 and 1.0 < b.ovrl < a.ovrl - 0.8
    assert a.bak > b.bak + 1.0 and a.sig > b.sig and a.p808 > b.p808
    assert model.score(clean).as_dict() == a.as_dict()  # deterministic


@needs_models
@pytest.mark.slow
def test_score_command_and_evaluate_report_dnsmos(tiny_corpus, tmp_path, capsys):
    from avse.cli import main
    from avse.evaluation.run import DNSMOS_COLUMNS, evaluate

    wav = REAL / "speech" / "cmu_arctic_us_aew_a0001.wav"
    assert main(["score", str(wav), str(wav), "--dnsmos", str(MODELS), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == ["file", "SIG", "BAK", "OVRL", "P808"] and out[-1].startswith("mean\t")
    scores = json.loads((tmp_path / "s.json").read_text())["scores"]
    assert len(scores) == 2 and scores[0] == scores[1]
    summary = evaluate(tiny_corpus, "dev", "unprocessed", tmp_path / "ev", jobs=1, progress=False, dnsmos=MODELS)
    assert set(DNSMOS_COLUMNS) <= set(summary["metrics"])
    assert summary["all"]["dnsmos_ovrl"]["mean"] == pytest.approx(summary["all"]["dnsmos_ovrl_input"]["mean"])
