"""The synthetic corpus: plan, layout, alignment, determinism, resume, refusals."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avse.config import SPLITS, synth_config
from avse.data.metadata import load_noise_list, load_speech_list
from avse.data.synth import lip_speech_report, plan_noise, plan_speech, synthesize_corpus
from avse.errors import ConfigError, OutputPathError
from avse.video.io import read_video
from avse.video.landmarks import read_landmarks


def _digest(root: Path) -> dict[str, str]:
    files = sorted(p for p in root.rglob("*") if p.is_file() and ".synth" not in p.parts)
    return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in files}


def test_default_plan_has_24_plus_disjoint_identities_and_is_deterministic():
    cfg = synth_config("default")
    plan = plan_speech(cfg)
    assert plan == plan_speech(cfg)
    speakers = {t.speaker for t in plan}
    assert len(speakers) == cfg.n_identities >= 24
    assert len({t.voice.id for t in plan}) == len(speakers)  # one voice identity per speaker
    by_split = {s: {t.speaker for t in plan if t.split == s} for s in SPLITS}
    assert not (by_split["train"] & by_split["dev"]) and not (by_split["train"] & by_split["test"])
    assert not (by_split["dev"] & by_split["test"])
    for s in SPLITS:  # target and masker speakers are disjoint too
        targets = {t.speaker for t in plan if t.split == s and t.role == "target"}
        maskers = {t.speaker for t in plan if t.split == s and t.role == "masker"}
        assert targets and maskers and not (targets & maskers)
    assert len({t.voice.engine for t in plan}) >= 2
    assert plan_speech(synth_config("default", seed=1)) != plan


def test_noise_plan_cycles_classes():
    plan = plan_noise(synth_config("demo"))
    classes = {t.cls for t in plan if t.split == "train"}
    assert classes == {"coloured", "babble", "hum", "music", "bursts"}


def test_tiny_corpus_layout_lists_and_alignment(tiny_corpus):
    meta = tiny_corpus / "metadata"
    targets = load_speech_list(meta / "target_speech_list.json")
    maskers = load_speech_list(meta / "masker_speech_list.json")
    noises = load_noise_list(meta / "masker_noise_list.json")
    cfg = synth_config("tiny")
    assert len(targets) == sum(cfg.speakers(s)[0] * cfg.utterances(s) for s in SPLITS)
    assert len(maskers) == sum(cfg.speakers(s)[1] * cfg.utterances(s) for s in SPLITS)
    assert len(noises) == sum(cfg.noises(s) for s in SPLITS)
    for e in targets:
        split, uid = e["dataset"], e["wavfile"]
        audio, sr = sf.read(tiny_corpus / split / "targets" / f"{uid}.wav")
        assert sr == 16_000 and audio.ndim == 1 and len(audio) == e["nsamples"]
        assert e["nframes"] == -(-e["nsamples"] // 640)
        marks = read_landmarks(tiny_corpus / split / "targets_landmarks" / f"{uid}.npz")
        assert marks["lips"].shape == (e["nframes"], 40, 2)
        assert list(marks["lip_index"][:2]) == [61, 146]
        assert len(marks["phone_symbols"]) == len(marks["phone_times"]) > 0
    first = targets[0]
    clip = read_video(tiny_corpus / first["dataset"] / "targets_video" / f"{first['wavfile']}.mp4")
    assert clip.n_frames == first["nframes"] and abs(clip.fps - 25) < 1e-6
    assert clip.audio is not None and abs(len(clip.audio) - first["nsamples"]) < 1024 + 640
    for e in maskers:
        assert (tiny_corpus / e["dataset"] / "interferers" / "speech" / f"{e['wavfile']}.wav").is_file()
    for e in noises:
        assert sf.info(tiny_corpus / e["dataset"] / "interferers" / "noise" / f"{e['ID']}.wav").frames == e["nsamples"]


def test_lips_follow_speech_on_tiny_dev(tiny_corpus):
    rep = lip_speech_report(tiny_corpus, "dev")
    assert len(rep["ids"]) == 2
    assert rep["mean_corr"] >= 0.5
    assert np.all(np.abs(rep["lag"]) <= 1)


@pytest.mark.slow
def test_same_seed_same_bytes_and_resume_remakes_only_what_is_missing(tiny_corpus, tmp_path):
    other = tmp_path / "again"
    summary = synthesize_corpus(other, synth_config("tiny"), jobs=1, progress=False)
    assert summary["made_now"] > 0
    want = {k: v for k, v in _digest(tiny_corpus).items() if "/scenes/" not in k and "scenes." not in k}
    assert _digest(other) == want
    # An interrupted run: one target's files are gone, a temp file is left over.
    victim = json.loads((other / "metadata" / "target_speech_list.json").read_text())[0]
    for p in other.rglob(f"{victim['wavfile']}.*"):
        p.unlink()
    summary = synthesize_corpus(other, synth_config("tiny"), jobs=1, progress=False)
    assert summary["made_now"] == 1
    assert _digest(other) == want


def test_an_item_whose_plan_changed_is_made_again(corpus_copy):
    """A record made from another plan (e.g. a copied corpus made again with other options) is not kept."""
    from avse.data.synth import WORK_DIR

    noise = json.loads((corpus_copy / "metadata" / "masker_noise_list.json").read_text())[0]
    record = corpus_copy / WORK_DIR / f"{noise['ID']}.json"
    entry = json.loads(record.read_text())
    assert len(entry["_plan"]) == 16
    record.write_text(json.dumps({**entry, "_plan": "0" * 16}))  # made from something else
    assert synthesize_corpus(corpus_copy, synth_config("tiny"), jobs=1, progress=False)["made_now"] == 1
    assert json.loads(record.read_text())["_plan"] == entry["_plan"]
    del entry["_plan"]  # a record of an older run, without a plan: kept
    record.write_text(json.dumps(entry))
    assert synthesize_corpus(corpus_copy, synth_config("tiny"), jobs=1, progress=False)["made_now"] == 0
    assert "_plan" not in json.loads((corpus_copy / "metadata" / "masker_noise_list.json").read_text())[0]


def test_other_config_in_same_root_is_refused(corpus_copy):
    with pytest.raises(ConfigError, match="another configuration"):
        synthesize_corpus(corpus_copy, synth_config("tiny", seed=5), progress=False)


def test_root_that_is_a_file_is_refused(tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    with pytest.raises(OutputPathError, match="is a file"):
        synthesize_corpus(f, synth_config("tiny"), progress=False)
    assert f.read_text() == "x"


def test_bad_real_noise_file_stops_the_run_before_any_speech(tmp_path):
    from avse.errors import MediaError

    noise_dir = tmp_path / "noises"
    noise_dir.mkdir()
    sf.write(noise_dir / "good.wav", np.zeros(16_000 * 3, np.float32) + 0.01, 16_000)
    (noise_dir / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    root = tmp_path / "corpus"
    with pytest.raises(MediaError, match="broken.wav"):
        synthesize_corpus(root, synth_config("tiny", noise_dirs=(str(noise_dir),)), progress=False)
    assert not root.exists()  # nothing written at all, not even the config record


def test_corrupt_config_record_is_a_one_line_error(corpus_copy):
    from avse.errors import MetadataError

    (corpus_copy / "metadata" / "synth_config.json").write_text("{not json")
    with pytest.raises(MetadataError, match="synth_config.json: not valid JSON"):
        synthesize_corpus(corpus_copy, synth_config("tiny"), progress=False)


def test_relative_and_absolute_noise_dirs_are_the_same_config(tmp_path, monkeypatch):
    noise_dir = tmp_path / "noises"
    noise_dir.mkdir()
    sf.write(noise_dir / "hum.wav", (0.1 * np.sin(np.arange(16_000 * 6) * 0.02)).astype(np.float32), 16_000)
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "corpus"
    synthesize_corpus(root, synth_config("tiny", noise_dirs=("noises",)), progress=False)
    summary = synthesize_corpus(root, synth_config("tiny", noise_dirs=(str(noise_dir),)), progress=False)
    assert summary["made_now"] == 0


def test_leftover_temp_files_are_removed_on_resume(corpus_copy):
    stale = corpus_copy / "dev" / "targets" / ".spk005_001.abcd1234.part.wav"
    stale.write_bytes(b"half a file")
    summary = synthesize_corpus(corpus_copy, synth_config("tiny"), progress=False)
    assert summary["made_now"] == 0 and not stale.exists()
