"""Tests for avse.evaluation.run: the evaluation of a method over rendered scenes."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from avse.audio.io import load_audio
from avse.data.metadata import load_scenes, scenes_path
from avse.errors import ConfigError
from avse.evaluation.run import ITEM_FIELDS, evaluate, mean_ci, read_items

FAST_METRICS = ("si_sdr", "si_sdri", "stoi")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_mean_ci_student_t_exact():
    # n = 4, mean 2.5, sd = sqrt(5/3); t_{0.975,3} = 3.182446305284263
    s = mean_ci([1.0, 2.0, 3.0, 4.0, math.nan])
    half = 3.182446305284263 * math.sqrt(5 / 3) / 2
    assert s["n"] == 4 and s["mean"] == pytest.approx(2.5)
    assert s["ci_low"] == pytest.approx(2.5 - half) and s["ci_high"] == pytest.approx(2.5 + half)
    assert mean_ci([7.0]) == {"mean": 7.0, "ci_low": None, "ci_high": None, "n": 1}
    assert mean_ci([])["mean"] is None


def test_evaluate_writes_items_summary_and_plots(tiny_corpus, tmp_path):
    out = tmp_path / "eval"
    summary = evaluate(tiny_corpus, "dev", "oracle-irm", out, metrics=FAST_METRICS, progress=False)
    scenes = load_scenes(scenes_path(tiny_corpus, "dev"))
    with open(out / "items.csv", newline="") as fh:
        header = next(csv.reader(fh))
    assert header == [*ITEM_FIELDS, *FAST_METRICS]
    rows = read_items(out / "items.csv")
    assert [r["scene"] for r in rows] == [s["scene"] for s in scenes]
    assert [r["interferer_type"] for r in rows] == [s["interferer"]["type"] for s in scenes]
    assert [r["input_snr"] for r in rows] == pytest.approx([s["SNR"] for s in scenes])
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["n_items"] == len(scenes) and on_disk["method"] == "oracle-irm"
    for m in FAST_METRICS:
        col = np.array([r[m] for r in rows])
        assert on_disk["all"][m]["mean"] == pytest.approx(float(np.nanmean(col)), abs=1e-12)
        assert on_disk["all"][m]["n"] == int(np.isfinite(col).sum())
        for kind, block in on_disk["by_interferer_type"].items():
            sub = np.array([r[m] for r in rows if r["interferer_type"] == kind])
            assert block[m]["mean"] == pytest.approx(float(np.nanmean(sub)), abs=1e-12)
    assert on_disk["all"]["si_sdri"]["mean"] > 5.0  # an oracle mask helps a lot
    for name in ("hist.png", "improvement_vs_snr.png"):
        assert (out / name).read_bytes()[:8] == PNG_MAGIC
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_evaluate_callable_sees_mixture_only_and_unprocessed_gives_zero_improvement(tiny_corpus, tmp_path):
    seen = []

    def passthrough(mixture, target, interferer, sr):
        seen.append((target, interferer, sr))
        return mixture

    summary = evaluate(tiny_corpus, "dev", passthrough, tmp_path / "a", metrics=("si_sdri",), progress=False)
    assert summary["method"] == "passthrough"
    assert all(t is None and i is None and sr == 16_000 for t, i, sr in seen)
    assert summary["all"]["si_sdri"]["mean"] == pytest.approx(0.0, abs=1e-9)
    named = evaluate(tiny_corpus, "dev", "unprocessed", tmp_path / "b", metrics=("si_sdri",), progress=False)
    assert named["all"] == summary["all"]


def test_evaluate_rejects_unknown_method_and_metric(tiny_corpus, tmp_path):
    with pytest.raises(ConfigError, match="unknown method"):
        evaluate(tiny_corpus, "dev", "magic", tmp_path / "x", progress=False)
    with pytest.raises(ConfigError, match="unknown metrics"):
        evaluate(tiny_corpus, "dev", "unprocessed", tmp_path / "x", metrics=("mos",), progress=False)
    assert not (tmp_path / "x").exists()


@pytest.mark.slow
def test_evaluate_default_metrics_deterministic_across_jobs(tiny_corpus, tmp_path):
    pytest.importorskip("noisereduce")
    evaluate(tiny_corpus, "dev", "noisereduce", tmp_path / "one", jobs=1, progress=False)
    evaluate(tiny_corpus, "dev", "noisereduce", tmp_path / "two", jobs=2, progress=False)
    one_rows, two_rows = read_items(tmp_path / "one" / "items.csv"), read_items(tmp_path / "two" / "items.csv")
    assert [r["scene"] for r in one_rows] == [r["scene"] for r in two_rows]
    for a, b in zip(one_rows, two_rows):  # worker processes may differ in the last bits (BLAS threading)
        assert {k: v for k, v in a.items() if isinstance(v, str)} == {k: v for k, v in b.items() if isinstance(v, str)}
        for k in ("si_sdr", "si_sdri", "pesq_wb", "stoi", "estoi"):
            assert a[k] == pytest.approx(b[k], rel=1e-9, abs=1e-12)
    one = json.loads((tmp_path / "one" / "summary.json").read_text())
    assert set(one["all"]) == {"si_sdr", "si_sdri", "pesq_wb", "stoi", "estoi"}


def test_scene_lip_features_follow_the_scene_timeline(tiny_corpus):
    from avse.data.metadata import target_landmarks_path
    from avse.evaluation.run import scene_lip_features
    from avse.video.landmarks import read_landmarks
    from avse.video.lipfeat import lip_features

    s = load_scenes(scenes_path(tiny_corpus, "dev"))[0]
    full = np.nan_to_num(lip_features(read_landmarks(target_landmarks_path(tiny_corpus, "dev", s["target"]["name"]))))
    n = 640 * (len(full) + 3) - 100  # three frames and a bit longer than the lips
    feats = scene_lip_features(tiny_corpus, "dev", s, n)
    assert feats.shape == (len(full) + 3, full.shape[1]) and feats.dtype == np.float32
    np.testing.assert_allclose(feats[: len(full)], full, rtol=0, atol=1e-6)
    np.testing.assert_allclose(feats[len(full):], np.repeat(full[-1:], 3, axis=0), rtol=0, atol=1e-6)
    shifted = scene_lip_features(tiny_corpus, "dev", {**s, "pre_samples": 1280}, n)  # two frames of lead-in
    np.testing.assert_allclose(shifted[2:], feats[:-2], rtol=0, atol=1e-6)
    np.testing.assert_allclose(shifted[:2], np.repeat(full[:1], 2, axis=0), rtol=0, atol=1e-6)
    with pytest.raises(ConfigError, match="whole number of video frames"):
        scene_lip_features(tiny_corpus, "dev", {**s, "pre_samples": 1000}, n)


def test_evaluate_a_checkpoint_gives_the_enhancers_scores(tiny_corpus, tmp_path):
    """A trained model is scored on exactly what Enhancer makes of the scene with the target's lips (its own output:
    no attenuation limit, one run)."""
    from avse.api import Enhancer
    from avse.evaluation.metrics import evaluate_pair
    from avse.evaluation.run import scene_lip_features
    from tests.test_api import make_checkpoints

    ckpt = make_checkpoints(tmp_path / "ckpt")["av"]
    summary = evaluate(tiny_corpus, "dev", str(ckpt), tmp_path / "eval", metrics=("si_sdr", "si_sdri"), progress=False)
    assert summary["method"] == "av" and summary["n_items"] == len(load_scenes(scenes_path(tiny_corpus, "dev")))
    rows = read_items(tmp_path / "eval" / "items.csv")
    s = load_scenes(scenes_path(tiny_corpus, "dev"))[0]
    mixed, _ = load_audio(tiny_corpus / "dev" / "scenes" / f"{s['scene']}_mixed.wav", 16000)
    target, _ = load_audio(tiny_corpus / "dev" / "scenes" / f"{s['scene']}_target.wav", 16000)
    enh = Enhancer.from_pretrained(ckpt, fallback=None, atten_lim_db=None, shifts=1)
    est = enh.enhance(mixed, 16000, video=scene_lip_features(tiny_corpus, "dev", s, len(mixed)))
    want = evaluate_pair(est, target, mixed, 16000, metrics=("si_sdr",))["si_sdr"]
    assert rows[0]["si_sdr"] == pytest.approx(want, abs=1e-4)
