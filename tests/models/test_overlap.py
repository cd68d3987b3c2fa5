"""The overlapped speech detector: shapes, level freedom, checkpoints, labels, training items, a short training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avse.errors import ConfigError, MediaError
from avse.models.overlap import HOP, OverlapConfig, OverlapDetector, active_frames, frame_energy, overlap_share
from avse.training.overlap import ItemMaker, Recipe, VoicePool, overlap_labels

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


def tone(n: int, f0: float, start: int = 0, stop: int | None = None, amp: float = 0.1) -> np.ndarray:
    """A harmonic tone [n] (5 partials of f0) sounding from ``start`` to ``stop``."""
    t = np.arange(n) / 16000
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 6)) * amp
    out = np.zeros(n)
    out[start:stop] = x[start:stop]
    return out


def test_frames_every_10_ms_and_free_of_level():
    torch.manual_seed(0)
    det = OverlapDetector(OverlapConfig(channels=(4, 8), gru=8)).eval()
    x = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        a, b = det(x), det(x * 30.0)
    assert a.shape == (2, 16000 // HOP + 1)
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # the features are relative to the clip's loudest bin
    with pytest.raises(ConfigError, match=r"\[B, T\]"):
        det(x[0])
    with pytest.raises(ConfigError, match="do not divide"):
        OverlapConfig(channels=(4,) * 7)


class LocalDetector(OverlapDetector):
    """A stand-in whose logit for a frame depends only on that frame's samples (its 25 ms energy, in dB): run in
    windows, each frame must come out as in one pass wherever the windows are cut."""

    def forward(self, audio):
        x = audio[0].numpy()
        e = frame_energy(x, len(x) // HOP + 1)
        return torch.from_numpy(10 * np.log10(e + 1e-9) / 20).float()[None]


@pytest.mark.parametrize("seconds", [0.01, 0.016, 0.0375, 1.99, 2.0, 2.01, 3.5, 3.51, 7.0])
def test_windows_stitch_every_frame_once_in_place(monkeypatch, seconds):
    """Long audio runs in overlapping windows; every frame is filled, from a window where it is not near an edge,
    so a frame-local model gives exactly what one pass gives, for lengths on and just past a window's end, and
    for audio shorter than one STFT window."""
    import avse.models.overlap as ov

    det = LocalDetector(OverlapConfig(channels=(4, 8), gru=8)).eval()
    n = int(round(seconds * 16000))
    x = (np.random.default_rng(3).standard_normal(n) * np.linspace(0.01, 1, n)).astype(np.float32)
    whole = det.frame_probs(x)  # one window of 20 s
    assert whole.shape == (n // HOP + 1,) and np.all((whole > 0) & (whole < 1))
    monkeypatch.setattr(ov, "WINDOW_S", 2.0)
    monkeypatch.setattr(ov, "WINDOW_OVERLAP_S", 0.5)
    np.testing.assert_allclose(det.frame_probs(x), whole, atol=1e-6)


def test_a_trained_shape_model_runs_long_and_short_audio():
    torch.manual_seed(1)
    det = OverlapDetector(OverlapConfig(channels=(4, 8), gru=8)).eval()
    for n in (100, 400, 25 * 16000 + 7):
        p = det.frame_probs((np.random.default_rng(0).standard_normal(n) * 0.1).astype(np.float32))
        assert p.shape == (n // HOP + 1,) and np.all((p >= 0) & (p <= 1))


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(2)
    det = OverlapDetector(OverlapConfig(channels=(4, 8), gru=8)).eval()
    path = det.save(tmp_path / "d.avse.pt", {"epoch": 3})
    back = OverlapDetector.from_pretrained(path)
    assert back.cfg == det.cfg and back.extra["epoch"] == 3
    x = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        torch.testing.assert_close(back(x), det.half().float()(x), atol=2e-3, rtol=1e-2)  # stored as float16
    with pytest.raises(MediaError, match="no overlap detector there"):
        OverlapDetector.from_pretrained(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(MediaError, match="not a readable checkpoint"):
        OverlapDetector.from_pretrained(tmp_path / "junk.pt")
    ckpt = det.checkpoint()
    torch.save(ckpt | {"model": "sync_expert"}, tmp_path / "other.pt")
    with pytest.raises(MediaError, match="not an overlap detector"):
        OverlapDetector.from_pretrained(tmp_path / "other.pt")
    torch.save(ckpt | {"config": ckpt["config"] | {"layers": 3}}, tmp_path / "newer.pt")
    with pytest.raises(ConfigError, match="unknown overlap detector option.*layers"):
        OverlapDetector.from_pretrained(tmp_path / "newer.pt")


def test_labels_mark_only_frames_where_both_voices_are_heard():
    n = 16000
    frames = n // HOP + 1
    a = tone(n, 120.0, 0, 9600)  # 0-0.6 s
    b = tone(n, 210.0, 6400, n)  # 0.4-1.0 s
    lab = overlap_labels(a, b, frames)
    t = np.arange(frames) * HOP / 16000
    assert lab[(t > 0.45) & (t < 0.55)].all()  # both sound
    assert not lab[t < 0.35].any() and not lab[t > 0.65].any()  # one at a time
    assert not overlap_labels(a, b * 10 ** (-30 / 20), frames).any()  # 30 dB under the other: not heard
    assert not overlap_labels(a, np.zeros(n), frames).any()
    e = frame_energy(a, frames)
    assert e.shape == (frames,) and e[t > 0.7].max() == 0.0


def test_share_counts_only_active_frames():
    x = tone(16000, 150.0, 0, 8000)  # sound for half the clip
    act = active_frames(x)
    assert 0.45 < act.mean() < 0.56
    probs = np.where(np.arange(len(act)) < 25, 1.0, 0.0)  # "two voices" in the first 0.25 s
    assert overlap_share(probs, x) == pytest.approx(25 / act.sum(), abs=0.01)
    assert overlap_share(probs, np.zeros(16000)) == 0.0


def _pool(speakers: int = 3) -> VoicePool:
    pool = VoicePool.__new__(VoicePool)
    rng = np.random.default_rng(0)
    pool.clips = {f"s{k}": [(tone(16000, 100.0 + 40 * k + 5 * j, amp=1.0) / 2.5 * 30000 * rng.uniform(0.5, 1)).astype(np.int16)
                            for j in range(3)] for k in range(speakers)}
    pool.speakers = sorted(pool.clips)
    return pool


def test_items_are_drawn_from_the_rng_alone_and_label_two_voices():
    recipe = Recipe(seconds=2.0, p_two=1.0, p_turns=0.0, p_noise=0.0, p_reverb=0.0, p_eq=0.0, sir_db=(0.0, 0.0))
    maker = ItemMaker(recipe, _pool(), ["s0", "s1", "s2"], [])
    mix, lab, two = maker.make(np.random.default_rng(5))
    again = maker.make(np.random.default_rng(5))
    np.testing.assert_array_equal(mix, again[0])
    assert two and mix.shape == (32000,) and lab.shape == (32000 // HOP + 1,)
    assert lab.mean() > 0.3  # two running voices at the same level overlap much of the time
    one = ItemMaker(Recipe(seconds=2.0, p_two=0.0), _pool(), ["s0", "s1"], [])
    mix, lab, two = one.make(np.random.default_rng(1))
    assert not two and not lab.any() and np.abs(mix).max() <= 0.9
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        ItemMaker(recipe, _pool(), ["s0"], [])


def test_recipe_refuses_unknown_keys_and_splits_speakers():
    with pytest.raises(ConfigError, match="unknown keys bogus"):
        Recipe.from_mapping({"bogus": 1})
    r = Recipe.from_mapping({"speech": "x", "sir_db": [-3, 3]})
    assert r.speech == ("x",) and r.sir_db == (-3.0, 3.0)
    train, val = _pool(12).split(6)
    assert val == ["s3", "s9"] and len(train) == 10 and not set(train) & set(val)  # every 6th of s0, s1, s10, s11, s2, ... and not set(train) & set(val)


@pytest.mark.slow
def test_a_short_training_run_resumes_and_writes_a_detector(tmp_path):
    """Two epochs of a few steps on espeak voices, then a resume that goes on to a third: the checkpoints load."""
    from avse.audio.io import save_wav
    from avse.data.realspeech import import_speech
    from avse.data.tts import Voice, synthesize
    from avse.training.overlap import train_overlap

    src = tmp_path / "src"
    texts = ["Put the red cup on the table.", "Bin blue at F two now.", "The cat sat on a warm mat."]
    for spk, voice in {"anna": Voice("espeak", "en-us", "f3"), "bert": Voice("espeak", "en-gb-x-rp", "m3"),
                       "carl": Voice("espeak", "en-us", "m1"), "dora": Voice("espeak", "en-us", "f2")}.items():
        for k, text in enumerate(texts):
            save_wav(src / spk / f"u{k}.wav", synthesize(text, voice).audio)
    import_speech(src, tmp_path / "speech", do_align=False, jobs=1, progress=False)
    rng = np.random.default_rng(0)
    save_wav(tmp_path / "noise" / "hiss.wav", (rng.standard_normal(32000) * 0.05).astype(np.float32))
    cfg = {"model": "overlap_detector", "speech": [str(tmp_path / "speech")], "noise": [str(tmp_path / "noise")],
           "detector": {"channels": [4, 8], "gru": 8}, "seconds": 1.0, "batch": 2, "steps_per_epoch": 2,
           "max_epochs": 2, "val_every": 2, "val_items": 4}
    out = tmp_path / "run"
    best = train_overlap(cfg, out)
    assert best.is_file() and (out / "last.pt").is_file()
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    train_overlap(cfg | {"max_epochs": 3}, out, resume=True)
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"epoch": 2' in lines[-1]
    det = OverlapDetector.from_pretrained(out / "epoch_last.avse.pt")
    assert det.extra["epoch"] == 2 and det.extra["val_speakers"] == 2 and det.extra["train_speakers"] == 2
    with pytest.raises(ConfigError, match="model must be overlap_detector"):
        train_overlap(cfg | {"model": "other"}, tmp_path / "x")
    with pytest.raises(ConfigError, match="1 to validation"):
        train_overlap(cfg | {"val_every": 3}, tmp_path / "y")
    with pytest.raises(ConfigError, match="holds a run already"):  # a fresh run would mix its log with the old one's
        train_overlap(cfg, out)
    with pytest.raises(ConfigError, match="differs from the run's in lr"):
        train_overlap(cfg | {"max_epochs": 4, "lr": 0.01}, out, resume=True)
    # one validation item: no clip AUC to rank epochs by, yet the best checkpoint is written
    best = train_overlap(cfg | {"val_items": 1, "max_epochs": 1}, tmp_path / "one")
    assert best.is_file()


@pytest.mark.slow
@pytest.mark.skipif(not (REAL / "speech").is_dir(), reason="the real clips are not here")
def test_shipped_detector_hears_two_real_voices_and_not_one():
    """The shipped detector on the CMU ARCTIC utterances of the real clips: each alone under the threshold of
    `avse separate`, two speakers mixed at 0 dB above it (voices it never trained on)."""
    from avse.api import ONE_VOICE_OVERLAP
    from avse.audio.io import load_audio

    det = OverlapDetector.from_pretrained()
    arctic = [load_audio(p, 16000)[0] for p in sorted((REAL / "speech").glob("*.wav"))]
    alone = [overlap_share(det.frame_probs(a), a) for a in arctic]
    a, b = arctic[0], arctic[3]  # aew and axb
    n = min(len(a), len(b))
    mix = (0.1 * (a[:n] / a[:n].std() + b[:n] / b[:n].std())).astype(np.float32)
    assert max(alone) < ONE_VOICE_OVERLAP, alone
    assert overlap_share(det.frame_probs(mix), mix) >= ONE_VOICE_OVERLAP


def test_info_describes_a_detector(tmp_path, capsys):
    from avse.cli import main

    path = OverlapDetector(OverlapConfig(channels=(4, 8), gru=8)).save(tmp_path / "d.avse.pt", {"epoch": 1})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "overlap_detector" in out and "overlapped speech detector" in out and '"epoch": 1' in out


def test_voice_pool_takes_a_corpus_train_split_only(tiny_corpus):
    from avse.data.metadata import load_speech_list, masker_speech_list_path, target_speech_list_path

    pool = VoicePool([], corpora=[tiny_corpus])
    entries = load_speech_list(target_speech_list_path(tiny_corpus)) + load_speech_list(masker_speech_list_path(tiny_corpus))
    train = {f"{tiny_corpus.name}:{e['speaker']}" for e in entries if e["dataset"] == "train"}
    others = {f"{tiny_corpus.name}:{e['speaker']}" for e in entries if e["dataset"] != "train"}
    assert set(pool.speakers) == train and not set(pool.speakers) & others
    assert all(c.dtype == np.int16 and np.abs(c).max() > 30000 for clips in pool.clips.values() for c in clips)
