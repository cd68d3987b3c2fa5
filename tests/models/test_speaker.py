"""The speaker encoder: shapes, level freedom, silence left out, checkpoints, the loss, the pair scores, items,
a short training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from avse.errors import ConfigError, MediaError
from avse.models.speaker import SpeakerConfig, SpeakerEncoder, similarity
from avse.training.speaker import MarginSoftmax, Recipe, SpeakerItems, pair_scores, turn_scores

TINY = SpeakerConfig(channels=(4, 8), width=16, dim=8)


def voice(n: int, f0: float, seed: int = 0) -> np.ndarray:
    """A buzzy voice-like sound [n]: 8 partials of a wobbling f0 under a syllable-rate envelope."""
    t = np.arange(n) / 16000
    f = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t))
    ph = 2 * np.pi * np.cumsum(f) / 16000
    x = sum(np.sin(k * ph) / k for k in range(1, 9))
    env = 0.5 + 0.5 * np.sin(2 * np.pi * 4 * t + seed)
    return (0.1 * x * env).astype(np.float32)


def test_unit_embeddings_free_of_level():
    torch.manual_seed(0)
    enc = SpeakerEncoder(TINY).eval()
    x = torch.from_numpy(np.stack([voice(16000, 120), voice(16000, 220)]))
    with torch.no_grad():
        a, b = enc(x), enc(x * 30.0)
    assert a.shape == (2, 8)
    torch.testing.assert_close(a.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)  # the features are relative to the clip's loudest bin
    with pytest.raises(ConfigError, match=r"\[B, T\]"):
        enc(x[0])
    with pytest.raises(ConfigError, match="do not divide"):
        SpeakerConfig(channels=(4,) * 7)
    with pytest.raises(ConfigError, match="positive"):
        SpeakerConfig(dim=0)


def test_silence_does_not_count():
    """A voice with long silences around and inside it embeds as the voice does: only active frames are pooled."""
    torch.manual_seed(1)
    enc = SpeakerEncoder(TINY).eval()
    x = voice(32000, 150)
    gap = np.zeros(24000, np.float32)
    padded = np.concatenate([gap, x[:16000], gap, x[16000:], gap])
    e1, e2 = enc.embed(x), enc.embed(padded)
    assert similarity(e1, e2) > 0.99
    other = enc.embed(voice(32000, 150) + 0.3 * np.random.default_rng(0).standard_normal(32000).astype(np.float32))
    assert similarity(e1, other) < similarity(e1, e2)  # not a constant: a noisy version moves it more than silence does


def test_embed_handles_silence_short_and_long_audio(monkeypatch):
    import avse.models.speaker as sp

    torch.manual_seed(2)
    enc = SpeakerEncoder(TINY).eval()
    assert not enc.embed(np.zeros(16000, np.float32)).any()
    assert not enc.embed(voice(300, 100)).any()  # shorter than an STFT window
    assert similarity(np.zeros(8), enc.embed(voice(16000, 100))) == 0.0
    x = voice(5 * 16000 + 100, 130)
    whole = enc.embed(x)
    monkeypatch.setattr(sp, "WINDOW_S", 2.0)  # three pieces and a last one too short to count
    pieces = enc.embed(x)
    assert np.linalg.norm(pieces) == pytest.approx(1.0, abs=1e-5)
    assert similarity(whole, pieces) > 0.95
    with pytest.raises(ConfigError, match="mono"):
        enc.embed(np.zeros((2, 100), np.float32))


def test_checkpoint_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(3)
    enc = SpeakerEncoder(TINY).eval()
    path = enc.save(tmp_path / "s.avse.pt", {"epoch": 2, "val": {"threshold": 0.4}})
    back = SpeakerEncoder.from_pretrained(path)
    assert back.cfg == TINY and back.extra["val"]["threshold"] == 0.4 and not back.training
    x = voice(16000, 180)
    assert similarity(enc.embed(x), back.embed(x)) > 0.999  # float16 weights
    with pytest.raises(MediaError, match="no speaker encoder there"):
        SpeakerEncoder.from_pretrained(tmp_path / "missing.avse.pt")
    from avse.models.overlap import OverlapConfig, OverlapDetector

    other = OverlapDetector(OverlapConfig(channels=(4, 8), gru=8)).save(tmp_path / "o.avse.pt")
    with pytest.raises(MediaError, match="not a speaker encoder"):
        SpeakerEncoder.from_pretrained(other)
    with pytest.raises(ConfigError, match="unknown speaker encoder option"):
        SpeakerConfig.from_mapping({"gru": 3})


def test_margin_softmax_favours_the_right_speaker_and_widens_the_gap():
    emb = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1], [0.1, 1.0]]), dim=1)
    head = MarginSoftmax(2, 2, margin=0.0, scale=10.0)
    with torch.no_grad():
        head.weight.copy_(torch.eye(2))
    right, wrong = head(emb, torch.tensor([0, 1])), head(emb, torch.tensor([1, 0]))
    assert right < wrong
    head.margin = 0.3
    assert head(emb, torch.tensor([0, 1])) > right  # the margin asks for more than being nearest


def test_pair_scores_eer_and_threshold():
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((4, 16))
    who = np.repeat(np.arange(4), 5)
    emb = centres[who] + 0.05 * rng.standard_normal((20, 16))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    s = pair_scores(emb, who, far=0.01)
    assert s["eer"] == 0.0 and s["same_pass_at_threshold"] == 1.0
    sim = emb @ emb.T
    diff = sim[who[:, None] != who[None, :]]
    assert np.mean(diff >= s["threshold"]) <= 0.01
    noisy = centres[who] + 3.0 * rng.standard_normal((20, 16))
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    assert pair_scores(noisy, who, far=0.01)["eer"] > 0.05  # voices that overlap are told apart less well
    assert np.isnan(pair_scores(emb[:1], who[:1], far=0.01)["eer"])


class _Pool:
    def __init__(self, n: int):
        self.speakers = [f"s{i}" for i in range(n)]
        self.clips = {s: [(voice(12000, 100 + 20 * i, i) * 3e5).astype(np.int16)] for i, s in enumerate(self.speakers)}


def test_items_are_drawn_from_the_rng_alone_and_hold_some_of_the_voice():
    r = Recipe(seconds=1.0, p_gate=1.0, p_leak=0.0, p_noise=0.0, p_eq=0.0, p_reverb=0.0)
    items = SpeakerItems(r, _Pool(3), ["s0", "s1", "s2"], [])  # type: ignore[arg-type]
    a = items.make("s1", np.random.default_rng(5))
    b = items.make("s1", np.random.default_rng(5))
    np.testing.assert_array_equal(a, b)
    assert a.shape == (16000,) and a.dtype == np.float32 and np.abs(a).max() <= 1.0
    g = items.gate(np.random.default_rng(1))
    assert g.max() == pytest.approx(1.0, abs=1e-6) and g.min() < 0.01  # some words kept, some silenced
    audio, who = items.batch(np.random.default_rng(2), 4)
    assert audio.shape == (4, 16000) and who.dtype == torch.int64 and set(who.tolist()) <= {0, 1, 2}
    with pytest.raises(ConfigError, match="at least 2 speakers"):
        SpeakerItems(r, _Pool(3), ["s0"], [])  # type: ignore[arg-type]


def test_recordings_of_one_voice_or_two_taking_turns():
    """A recording is one speaker's running speech, or one speaker's then another's (a quarter to three quarters of
    it the first's), through one room and noise: 6 s or two items, drawn from the rng alone."""
    r = Recipe(seconds=1.0, p_noise=0.0, p_eq=0.0, p_reverb=0.0)
    items = SpeakerItems(r, _Pool(3), ["s0", "s1", "s2"], [])  # type: ignore[arg-type]

    def pitch(x: np.ndarray) -> float:
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(np.argmax(spec[20:]) + 20) * 16000 / len(x)

    one = items.recording("s0", "s0", np.random.default_rng(3))
    np.testing.assert_array_equal(one, items.recording("s0", "s0", np.random.default_rng(3)))
    two = items.recording("s0", "s2", np.random.default_rng(3))
    assert one.shape == two.shape == (96000,) and one.dtype == np.float32  # RECORDING_S: 6 s, though items last 1 s
    assert np.abs(two).max() == pytest.approx(10 ** (-1 / 20), rel=1e-5)
    # the last quarter is the second speaker's voice (140 Hz against 100 Hz), the first quarter the first's
    assert pitch(two[:24000]) == pytest.approx(pitch(one[:24000]), abs=10)
    assert pitch(two[-24000:]) > pitch(one[-24000:]) + 20


def test_active_audio_and_two_groups():
    from avse.models.speaker import active_audio, two_groups

    tone = np.sin(np.arange(16000) / 3.0).astype(np.float32)
    x = np.concatenate([tone, np.zeros(16000, np.float32), 0.5 * tone])
    kept = active_audio(x)
    assert len(kept) == pytest.approx(32000, abs=320) and not active_audio(x[:100]).size
    assert np.sqrt(np.mean(kept[16000 - 320 : 16000 + 320] ** 2)) > 0.3  # the silent second is gone: tone on both sides
    assert not active_audio(np.zeros(96000, np.float32)).size  # silence holds no sound
    e = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99]])
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    cos, group = two_groups(e)
    assert cos == pytest.approx(0.14, abs=0.05) and group[0] == group[1] != group[2] == group[3]
    cos1, group1 = two_groups(np.repeat(e[:1], 4, axis=0))  # all alike: two groups of one voice
    assert cos1 == pytest.approx(1.0) and set(group1.tolist()) == {0, 1}
    rng = np.random.default_rng(0)  # nearly alike pieces always give two filled groups, near 1
    for _ in range(50):
        near = np.array([1.0, 0.0]) + 0.01 * rng.standard_normal((5, 2))
        c, g = two_groups(near / np.linalg.norm(near, axis=1, keepdims=True))
        assert c > 0.99 and set(g.tolist()) == {0, 1}
    with pytest.raises(ConfigError, match="at least 2 embeddings"):
        two_groups(e[:1])


def test_voices_apart_reads_pieces_of_the_input():
    from avse.models.speaker import voices_apart

    class Fixed:  # embeds a piece by its loudness: under 0.3 RMS one voice, over it another
        def embed(self, x):
            return np.array([1.0, 0.0]) if np.sqrt(np.mean(x**2)) < 0.3 else np.array([0.0, 1.0])

    soft = np.full(32000, 0.1, np.float32) * np.sign(np.sin(np.arange(32000)))
    loud = 5 * soft
    assert voices_apart(Fixed(), np.concatenate([soft, soft])) == pytest.approx(1.0)  # type: ignore[arg-type]
    assert voices_apart(Fixed(), np.concatenate([soft, loud])) == pytest.approx(0.0)  # type: ignore[arg-type]
    assert voices_apart(Fixed(), np.concatenate([soft, soft])[:48000]) is None  # type: ignore[arg-type]  # one piece
    assert voices_apart(Fixed(), np.zeros(96000, np.float32)) is None  # type: ignore[arg-type]  # silence: no answer


def test_turn_scores_keep_turns_from_passing():
    one = np.array([0.99, 0.97, 0.95, 0.80])
    two = np.linspace(0.1, 0.9, 100)
    s = turn_scores(one, two, far=0.0)
    assert s["turn_threshold"] == pytest.approx(0.9, abs=1e-5) and s["turn_threshold"] > two.max()
    assert s["turn_one_voice_pass"] == 0.75
    s = turn_scores(one, two, far=0.05)  # five turns may pass
    assert np.sum(two >= s["turn_threshold"]) == 5
    assert np.isnan(turn_scores(one, two[:0], far=0.01)["turn_threshold"])
    assert turn_scores(one, np.linspace(0.0, 0.99, 100), far=0.29)["turn_threshold"] == pytest.approx(0.70, abs=1e-5)
    s = turn_scores(one, np.append(two, np.nan), far=0.0)  # a value that is not a number is left out
    assert s["turn_threshold"] == pytest.approx(0.9, abs=1e-5)
    with pytest.raises(ConfigError, match=r"far must be in \[0, 1\)"):
        turn_scores(one, two, far=1.0)


def test_turn_scores_give_the_equal_error_point():
    """One voice [0.5 .. 0.95] against two [0.1 .. 0.7]: at the equal error point as many lone voices fall under
    the threshold as turns reach it."""
    one = np.linspace(0.5, 0.95, 10)
    two = np.linspace(0.1, 0.7, 10)
    s = turn_scores(one, two, far=0.0)
    thr, eer = s["turn_eer_threshold"], s["turn_eer"]
    miss, merge = np.mean(one < thr), np.mean(two >= thr)
    assert abs(miss - merge) <= 0.1 + 1e-9 and eer == pytest.approx((miss + merge) / 2)
    assert 0.5 <= thr <= 0.7 and 0.0 < eer < 0.3
    apart = turn_scores(np.array([0.9, 0.95]), np.array([0.1, 0.2]), far=0.0)  # no overlap: no errors
    assert apart["turn_eer"] == 0.0 and 0.2 < apart["turn_eer_threshold"] <= 0.9
    assert np.isnan(turn_scores(one[:0], two, far=0.0)["turn_eer"])


def test_validation_recordings_are_drawn_from_the_seed_alone():
    r = Recipe(seconds=1.0, p_noise=0.0, p_eq=0.0, p_reverb=0.0)
    items = SpeakerItems(r, _Pool(3), ["s0", "s1", "s2"], [])  # type: ignore[arg-type]
    from avse.training.speaker import validation_recordings

    a = validation_recordings(items, ["s0", "s1", "s2"], 2, seed=5)
    b = validation_recordings(items, ["s0", "s1", "s2"], 2, seed=5)
    assert len(a) == 12 and [(x, y) for x, y, _ in a] == [(x, y) for x, y, _ in b]
    assert all(np.array_equal(x, y) for (_, _, x), (_, _, y) in zip(a, b, strict=True))
    assert [x == y for x, y, _ in a] == [True, False] * 6  # alone, then with another, per draw
    assert all(x != y for x, y, _ in a[1::2])
    assert not np.array_equal(a[1][2], validation_recordings(items, ["s0", "s1", "s2"], 2, seed=6)[1][2])


def test_speeds_make_speakers_of_their_own():
    """With speeds, a class is a speaker at one speed: index = speaker * len(speeds) + speed; a faster voice is
    higher and its item keeps the item's length."""
    r = Recipe(seconds=1.0, p_gate=0.0, p_leak=0.0, p_noise=0.0, p_eq=0.0, p_reverb=0.0, speeds=(0.8, 1.0, 1.25))
    items = SpeakerItems(r, _Pool(3), ["s0", "s1", "s2"], [])  # type: ignore[arg-type]
    audio, who = items.batch(np.random.default_rng(0), 64)
    assert audio.shape == (64, 16000) and set(who.tolist()) <= set(range(9)) and len(set(who.tolist())) > 5

    def pitch(x: np.ndarray) -> float:  # the strongest spectral peak, Hz
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return float(np.argmax(spec[20:]) + 20) * 16000 / len(x)

    slow, same, fast = (items.make("s1", np.random.default_rng(4), f) for f in (0.8, 1.0, 1.25))
    assert slow.shape == same.shape == fast.shape == (16000,)
    assert pitch(slow) < pitch(same) < pitch(fast)
    assert Recipe.from_mapping({"speeds": [0.9, 1, 1.1]}).speeds == (0.9, 1.0, 1.1)


def test_recipe_refuses_unknown_keys():
    with pytest.raises(ConfigError, match="unknown keys detector"):
        Recipe.from_mapping({"detector": {}})
    r = Recipe.from_mapping({"speech": "x", "leak_db": [-20, -10]})
    assert r.speech == ("x",) and r.leak_db == (-20.0, -10.0) and r.mbrola == 0


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "configs" / "speaker").glob("*.yaml")),
                         ids=lambda p: p.stem)
def test_speaker_recipes_parse(path):
    import yaml

    r = Recipe.from_mapping(yaml.safe_load(path.read_text()))
    assert r.model == "speaker_encoder" and r.speech and r.mbrola >= 0


@pytest.mark.slow
def test_a_short_training_run_resumes_and_writes_an_encoder(tmp_path):
    """Two epochs of a few steps on espeak voices, then a resume that goes on to a third: the checkpoints load and
    carry a threshold."""
    from avse.audio.io import save_wav
    from avse.data.realspeech import import_speech
    from avse.data.tts import Voice, synthesize
    from avse.training.speaker import train_speaker

    src = tmp_path / "src"
    texts = ["Put the red cup on the table.", "Bin blue at F two now.", "The cat sat on a warm mat."]
    for spk, v in {"anna": Voice("espeak", "en-us", "f3"), "bert": Voice("espeak", "en-gb-x-rp", "m3"),
                   "carl": Voice("espeak", "en-us", "m1"), "dora": Voice("espeak", "en-us", "f2")}.items():
        for k, text in enumerate(texts):
            save_wav(src / spk / f"u{k}.wav", synthesize(text, v).audio)
    import_speech(src, tmp_path / "speech", do_align=False, jobs=1, progress=False)
    save_wav(tmp_path / "noise" / "hiss.wav", (np.random.default_rng(0).standard_normal(32000) * 0.05).astype(np.float32))
    cfg = {"model": "speaker_encoder", "speech": [str(tmp_path / "speech")], "noise": [str(tmp_path / "noise")],
           "encoder": {"channels": [4, 8], "width": 16, "dim": 8}, "seconds": 1.0, "batch": 4, "steps_per_epoch": 2,
           "max_epochs": 2, "val_every": 2, "val_per_speaker": 2}
    out = tmp_path / "run"
    best = train_speaker(cfg, out)
    assert best.is_file() and (out / "last.pt").is_file()
    assert len((out / "log.jsonl").read_text().splitlines()) == 2
    train_speaker(cfg | {"max_epochs": 3}, out, resume=True)
    lines = (out / "log.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"epoch": 2' in lines[-1]
    enc = SpeakerEncoder.from_pretrained(out / "epoch_last.avse.pt")
    assert enc.extra["epoch"] == 2 and enc.extra["train_speakers"] == 2 and -1.0 <= enc.extra["val"]["threshold"] <= 1.01
    assert 0.0 < enc.extra["val"]["turn_threshold"] <= 1.01 and 0.0 <= enc.extra["val"]["turn_one_voice_pass"] <= 1.0
    from avse.models.checkpoint import read_checkpoint

    shipped = read_checkpoint(out / "epoch_last.avse.pt")["state_dict"]
    assert set(shipped) == set(SpeakerEncoder(enc.cfg).state_dict())  # the classifier over speakers is not shipped
    assert set(torch.load(out / "last.pt", weights_only=False)["head"]) == {"weight"}  # ... but kept for resuming
    with pytest.raises(ConfigError, match="model must be speaker_encoder"):
        train_speaker(cfg | {"model": "other"}, tmp_path / "x")
    with pytest.raises(ConfigError, match="holds a run already"):
        train_speaker(cfg, out)
    with pytest.raises(ConfigError, match="differs from the run's in margin"):
        train_speaker(cfg | {"max_epochs": 4, "margin": 0.3}, out, resume=True)
    # a run saved before a recipe field existed resumes when the field keeps its default, and refuses another value
    state = torch.load(out / "last.pt", weights_only=False)
    del state["recipe"]["speeds"]
    torch.save(state, out / "last.pt")
    with pytest.raises(ConfigError, match="differs from the run's in speeds"):
        train_speaker(cfg | {"max_epochs": 4, "speeds": [0.9, 1.0]}, out, resume=True)
    train_speaker(cfg | {"max_epochs": 4}, out, resume=True)
    assert '"epoch": 3' in (out / "log.jsonl").read_text().splitlines()[-1]


def test_info_describes_an_encoder(tmp_path, capsys):
    from avse.cli import main

    path = SpeakerEncoder(TINY).save(tmp_path / "s.avse.pt", {"epoch": 4})
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "speaker_encoder" in out and "speaker encoder (Separator(speaker" in out and '"epoch": 4' in out
