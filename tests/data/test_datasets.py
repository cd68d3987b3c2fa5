"""Torch datasets over rendered scenes and with dynamic mixing."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from avse.data.datasets import DynamicMixDataset, SceneDataset, align_visual, frames_for
from avse.errors import ConfigError


def test_frames_for_and_align_visual():
    assert [frames_for(n) for n in (1, 640, 641, 1280)] == [1, 1, 2, 2]
    lips = np.arange(3 * 2).reshape(3, 1, 2).astype(np.float32)
    out = align_visual(lips, 5, pre_frames=1)
    assert out.shape == (5, 1, 2)
    np.testing.assert_array_equal(out[:, 0, 0], [0, 0, 2, 4, 4])


def test_scene_dataset_items_are_frame_aligned(tiny_corpus):
    ds = SceneDataset(tiny_corpus, "dev")
    assert len(ds) == 4
    for item in ds:
        n = item["lips"].shape[0]
        assert item["lips"].shape == (n, 40, 2)
        for k in ("mixture", "target", "interferer"):
            assert item[k].shape == (n * 640,) and item[k].dtype == torch.float32
        # the mixture is the sum of its parts, up to int16 truncation
        assert torch.max(torch.abs(item["mixture"] - item["target"] - item["interferer"])) < 3 / 32767


def test_dynamic_mix_reproducible_per_epoch_and_hits_snr(tiny_corpus):
    ds = DynamicMixDataset(tiny_corpus, "dev", snr_speech=(-5, 5), snr_noise=(-5, 5), seed=3)
    a, b = ds[0], ds[0]
    torch.testing.assert_close(a["mixture"], b["mixture"], rtol=0, atol=0)
    draws0 = [ds.draw(i) for i in range(len(ds))]
    ds.set_epoch(1)
    draws1 = [ds.draw(i) for i in range(len(ds))]
    assert draws0 != draws1
    for i in range(len(ds)):
        item = ds[i]
        t, n = item["target"].double(), item["interferer"].double()
        snr = 10 * torch.log10(t.pow(2).sum() / n.pow(2).sum())
        assert abs(float(snr) - item["info"]["SNR"]) < 1e-3
        assert -5 <= item["info"]["SNR"] <= 5
        torch.testing.assert_close(item["mixture"], item["target"] + item["interferer"], rtol=0, atol=1e-6)
        assert float(item["mixture"].abs().max()) <= 0.9 + 1e-6


def test_dynamic_mix_same_items_whatever_the_workers(tiny_corpus):
    ds = DynamicMixDataset(tiny_corpus, "dev", segment_frames=20, seed=1)
    seq = [ds[i]["mixture"] for i in range(len(ds))]
    loader = DataLoader(ds, batch_size=None, num_workers=2, collate_fn=lambda x: x)
    par = [item["mixture"] for item in loader]
    for x, y in zip(seq, par):
        assert x.shape == (20 * 640,)
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def test_dynamic_mix_refuses_bad_ranges(tiny_corpus):
    with pytest.raises(ConfigError, match="upside down"):
        DynamicMixDataset(tiny_corpus, "dev", snr_noise=(5, -5))
    with pytest.raises(ConfigError, match="no targets"):
        DynamicMixDataset(tiny_corpus, "nonexistent")


def test_items_batch_with_the_default_collate(tiny_corpus):
    ds = DynamicMixDataset(tiny_corpus, "dev", segment_frames=10, seed=0)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["mixture"].shape == (2, 10 * 640) and batch["lips"].shape == (2, 10, 40, 2)
    assert len(batch["info"]["SNR"]) == 2
    scenes = DataLoader(SceneDataset(tiny_corpus, "dev"), batch_size=1)
    assert set(next(iter(scenes))["info"]) == {"scene", "target", "type", "name", "SNR"}


def test_segment_frames_must_be_positive(tiny_corpus):
    with pytest.raises(ConfigError, match="segment_frames"):
        DynamicMixDataset(tiny_corpus, "dev", segment_frames=0)


def test_short_utterances_are_padded_to_the_window(tiny_corpus):
    """A window longer than the utterance: silence after the audio, the last lip frame repeated; items still batch."""
    ds = DynamicMixDataset(tiny_corpus, "dev", segment_frames=400, seed=0)  # 16 s, longer than any tiny utterance
    whole = DynamicMixDataset(tiny_corpus, "dev", seed=0)
    item, ref = ds[0], whole[0]
    n = ref["mixture"].shape[0]
    f = ref["lips"].shape[0]
    assert n < 400 * 640 and item["mixture"].shape == (400 * 640,) and item["lips"].shape == (400, 40, 2)
    torch.testing.assert_close(item["mixture"][:n], ref["mixture"], rtol=0, atol=0)
    assert float(item["mixture"][n:].abs().max()) == 0.0 and float(item["target"][n:].abs().max()) == 0.0
    torch.testing.assert_close(item["lips"][:f], ref["lips"], rtol=0, atol=0)
    assert torch.equal(item["lips"][f:], ref["lips"][-1:].expand(400 - f, -1, -1))
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["mixture"].shape == (2, 400 * 640)


def test_p_clean_items_are_the_target_alone_and_p_clean_zero_changes_nothing(tiny_corpus):
    import numpy as np

    from avse.data.datasets import DynamicMixDataset

    base = DynamicMixDataset(tiny_corpus, "dev", seed=5)
    same = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_clean=0.0)
    assert np.array_equal(base[0]["mixture"].numpy(), same[0]["mixture"].numpy())
    clean = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_clean=1.0)
    item = clean[0]
    assert item["info"]["type"] == "clean"
    assert np.array_equal(item["mixture"].numpy(), item["target"].numpy())
    assert not np.any(item["interferer"].numpy())
    with pytest.raises(ConfigError, match="p_clean"):
        DynamicMixDataset(tiny_corpus, "dev", p_clean=1.5)


def test_p_masker_target_puts_a_masker_voice_in_the_target_place(tiny_corpus):
    from avse.audio.wav16 import read_wav64
    from avse.data.metadata import interferer_wav_path
    from avse.data.mixing import apply_ramp

    base = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0)
    same = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_masker_target=0.0)
    assert np.array_equal(base[0]["mixture"].numpy(), same[0]["mixture"].numpy()) and "masker_target" not in base[0]["info"]
    ds = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_masker_target=1.0)
    pool, kinds = ds.pools["speech"], set()
    for i in range(len(ds)):
        m = ds.masker_target(i)
        if m is None:  # no masker of the split is as long as this target
            continue
        item = ds[i]
        assert item["info"]["masker_target"] == m["name"] and item["target"].shape == base[i]["target"].shape
        if item["info"]["type"] == "speech":  # never two windows of one voice (no other voice long enough: a noise)
            assert pool.by_name[item["info"]["name"]]["speaker"] != m["speaker"]
            kinds.add("speech")
        n = int(ds.targets[i]["nsamples"])
        src = apply_ramp(read_wav64(interferer_wav_path(tiny_corpus, "train", "speech", m["name"]), m["offset"], n))
        # the target is the masker's window, ramped as every interferer is, then scaled with the mixture
        t = item["target"].numpy().astype(np.float64)
        assert abs(np.corrcoef(t[: len(src)], src)[0, 1]) > 0.99
        torch.testing.assert_close(item["mixture"], item["target"] + item["interferer"], rtol=0, atol=1e-6)
    assert kinds == {"speech"}
    with pytest.raises(ConfigError, match="p_masker_target"):
        DynamicMixDataset(tiny_corpus, "train", p_masker_target=-0.1)


def test_change_speed_scales_pitch_and_length():
    from avse.data.datasets import change_speed, speed_length

    sr = 16000
    x = np.sin(2 * np.pi * 200.0 * np.arange(sr) / sr)  # 1 s at 200 Hz
    for factor in (0.85, 1.0, 1.15):
        y = change_speed(x, factor)
        assert len(y) == speed_length(len(x), factor)
        assert abs(len(y) - len(x) / factor) <= 1
        spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
        f0 = np.argmax(spec) * sr / len(y)
        assert abs(f0 - 200.0 * factor) < 2.0
    assert change_speed(x, 1.0) is x


def test_stretch_frames_follows_the_audio_and_keeps_dtype():
    from avse.data.datasets import stretch_frames

    lips = np.arange(20, dtype=np.float32)[:, None, None] * np.ones((1, 40, 2), np.float32)  # frame k holds k
    out = stretch_frames(lips, 0.8, 25)  # slower: 25 frames show the clip's 20
    np.testing.assert_allclose(out[:, 0, 0], np.minimum(np.arange(25) * 0.8, 19), atol=1e-5)
    crops = np.arange(10, dtype=np.uint8)[:, None, None] * np.ones((1, 4, 4), np.uint8)
    fast = stretch_frames(crops, 1.25, 8)
    assert fast.dtype == np.uint8
    np.testing.assert_array_equal(fast[:, 0, 0], np.rint(np.arange(8) * 1.25).clip(0, 9))
    gap = lips.copy()
    gap[5] = np.nan  # a frame without a face stays one frame: its neighbours hit exactly are copied, not mixed with it
    out = stretch_frames(gap, 1.0, 20)
    assert np.isnan(out[5]).all() and np.isfinite(np.delete(out, 5, axis=0)).all()


def test_speed_perturbed_items_stay_aligned_and_p_speed_zero_changes_nothing(tiny_corpus):
    from avse.data.datasets import change_speed, speed_length

    base = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_speech=1.0, snr_speech=(0, 0))
    off = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_speech=1.0, snr_speech=(0, 0), p_speed=0.0, speed=(0.8, 1.2))
    a, b = base[0], off[0]
    assert np.array_equal(a["mixture"].numpy(), b["mixture"].numpy())
    assert "speed" not in b["info"]
    slow = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_speech=1.0, snr_speech=(0, 0), p_speed=1.0, speed=(0.9, 0.9))
    for i in range(len(slow)):
        item = slow[i]
        assert item["info"]["speed"] == pytest.approx(0.9)
        assert item["info"]["speed_interferer"] == pytest.approx(0.9)
        n = item["mixture"].shape[0]
        assert n % 640 == 0 and item["lips"].shape[0] == n // 640
        t, x = item["target"].double(), item["interferer"].double()
        assert abs(float(10 * torch.log10(t.pow(2).sum() / x.pow(2).sum()))) < 1e-3
        torch.testing.assert_close(item["mixture"], item["target"] + item["interferer"], rtol=0, atol=1e-6)
    # the target is the clean utterance played at 0.9, and its lips are stretched with it
    item, ref = slow[0], base[0]
    want = change_speed(ref["target"].double().numpy(), 0.9)
    got = item["target"].double().numpy()[: len(want) - 64]
    assert abs(np.corrcoef(got, want[: len(got)])[0, 1]) > 0.999
    np.testing.assert_allclose(item["lips"][30].numpy(), ref["lips"][27].numpy(), atol=1e-5)  # frame 30 shows 27
    # a slowed target with a sped-up talker needs more of the talker's recording: the draw asks the pool for it
    mixed = DynamicMixDataset(tiny_corpus, "dev", seed=5, p_speech=1.0, snr_speech=(0, 0), p_speed=1.0, speed=(0.8, 1.25))
    pool, asked = mixed.pools["speech"], []
    draw_from_pool = pool.draw
    pool.draw = lambda rng, n, *a: asked.append(n) or draw_from_pool(rng, n, *a)  # type: ignore[method-assign]
    needs = []
    for epoch, i in itertools.product(range(8), range(len(mixed))):
        mixed.set_epoch(epoch)
        (s_t, s_i), d = mixed.speeds(i), mixed.draw(i)
        played = speed_length(int(mixed.targets[i]["nsamples"]), s_t)
        assert asked[-1] == pytest.approx(played * s_i, abs=2)  # the talker's samples behind the played target
        left = int(pool.by_name[d["name"]]["nsamples"]) - d["offset"]
        assert left >= played * s_i
        needs.append(asked[-1] / mixed.targets[i]["nsamples"])
    assert max(needs) > 1.1 and min(needs) < 0.9  # more and less than the target's own length
    with pytest.raises(ConfigError, match="speed"):
        DynamicMixDataset(tiny_corpus, "dev", p_speed=1.0, speed=(1.2, 0.8))
    with pytest.raises(ConfigError, match="p_speed"):
        DynamicMixDataset(tiny_corpus, "dev", p_speed=2.0)


def test_noise_augment_changes_only_the_noise_and_none_changes_nothing(tiny_corpus):
    """With noise augmentation the noise items draw the same target, interferer, SNR and window; the target is the
    same and the noise differs, at the same SNR. Speech interferers are not touched."""
    from avse.data.noise import NoiseAugment
    from avse.evaluation.metrics import si_sdr

    kw = dict(segment_frames=None, seed=0, snr_noise=(0.0, 0.0), snr_speech=(0.0, 0.0))
    plain = DynamicMixDataset(tiny_corpus, "dev", **kw)
    aug = DynamicMixDataset(tiny_corpus, "dev", noise_augment=NoiseAugment(p_layer=1.0, p_reverb=1.0, p_eq=1.0), **kw)
    kinds = set()
    for i in range(len(plain)):
        a, b = plain[i], aug[i]
        assert a["info"] == b["info"]
        kinds.add(a["info"]["type"])
        ta, tb = a["target"].numpy(), b["target"].numpy()
        assert np.allclose(ta / np.abs(ta).max(), tb / np.abs(tb).max(), atol=1e-6)
        same = np.allclose(a["interferer"].numpy(), b["interferer"].numpy())
        assert same == (a["info"]["type"] == "speech")
        assert abs(si_sdr(b["mixture"].numpy(), tb) - si_sdr(a["mixture"].numpy(), ta)) < 1.0  # still about 0 dB
    assert "noise" in kinds


def test_speech_augment_changes_the_voices_and_their_references_together_and_none_changes_nothing(tiny_corpus):
    """With speech augmentation every item draws the same interferer, SNR and window; the voice to keep (alone
    or not) and a competing talker change, the noise does not, the mixture is still their sum at the drawn SNR,
    and with both probabilities 0 the items are those without it."""
    from avse.data.noise import SpeechAugment
    from avse.evaluation.metrics import si_sdr

    kw = dict(segment_frames=None, seed=0, snr_noise=(0.0, 0.0), snr_speech=(0.0, 0.0), p_clean=0.4)
    plain = DynamicMixDataset(tiny_corpus, "dev", **kw)
    aug = DynamicMixDataset(tiny_corpus, "dev", speech_augment=SpeechAugment(p_reverb=1.0, p_eq=1.0), **kw)
    off = DynamicMixDataset(tiny_corpus, "dev", speech_augment=SpeechAugment(p_reverb=0.0, p_eq=0.0), **kw)
    kinds = set()
    for epoch, i in itertools.product(range(3), range(len(plain))):
        for ds in (plain, aug, off):
            ds.set_epoch(epoch)
        a, b, c = plain[i], aug[i], off[i]
        assert a["info"] == b["info"] == c["info"]
        for k in ("mixture", "target", "interferer"):
            assert torch.equal(a[k], c[k])
        kind = a["info"]["type"]
        kinds.add(kind)
        ta, tb = a["target"].numpy(), b["target"].numpy()
        assert abs(si_sdr(tb, ta)) < 30.0  # the voice to keep is changed, reference and all
        assert np.allclose(b["mixture"].numpy(), tb + b["interferer"].numpy(), atol=1e-5)
        if kind == "noise":
            ia, ib = a["interferer"].numpy(), b["interferer"].numpy()
            assert np.allclose(ia / np.abs(ia).max(), ib / np.abs(ib).max(), atol=1e-6)
        if kind == "speech":
            assert si_sdr(b["interferer"].numpy(), a["interferer"].numpy()) < 30.0
        if kind != "clean":
            assert abs(si_sdr(b["mixture"].numpy(), tb) - si_sdr(a["mixture"].numpy(), ta)) < 1.0  # still about 0 dB
    assert {"noise", "speech", "clean"} <= kinds


def test_bandwidth_and_match_band_cut_the_wider_voice_to_the_narrower_band():
    from avse.data.mixing import bandwidth, lowpass, match_band

    rng = np.random.default_rng(0)
    wide = rng.standard_normal(32000)
    narrow = lowpass(rng.standard_normal(32000), 4000.0)
    assert bandwidth(wide) > 7500 and 4000 < bandwidth(narrow) < 5500
    assert bandwidth(np.zeros(16000)) == 8000 and bandwidth(wide[:100]) == 8000  # nothing to measure: full band
    a, b = match_band(wide, narrow)
    assert np.array_equal(b, narrow) and abs(bandwidth(a) - bandwidth(narrow)) < 300  # the wide one now stops there too
    b2, a2 = match_band(narrow, wide)  # either order
    assert np.array_equal(b2, narrow) and np.allclose(a2, a)
    same_a, same_b = match_band(wide, wide[::-1].copy())  # two voices of one band: untouched
    assert np.array_equal(same_a, wide) and np.array_equal(same_b, wide[::-1])
    hum = np.sin(2 * np.pi * 50 * np.arange(32000) / 16000)  # no voice: its "band" would take the words along
    assert bandwidth(hum) < 3000 and np.array_equal(match_band(wide, hum)[0], wide)
    short = match_band(wide[:300], narrow[:300])  # too short to measure: untouched
    assert np.array_equal(short[0], wide[:300]) and np.array_equal(short[1], narrow[:300])
    # below the cut the wide voice is kept: a 1 kHz tone passes, a 7 kHz one is gone
    t = np.arange(16000) / 16000
    tones = np.sin(2 * np.pi * 1000 * t) + np.sin(2 * np.pi * 7000 * t)
    cut = lowpass(tones, 4000.0)
    spec = np.abs(np.fft.rfft(cut[2000:14000] * np.hanning(12000)))
    f = np.fft.rfftfreq(12000, 1 / 16000)
    assert spec[np.argmin(abs(f - 1000))] > 1000 * spec[np.argmin(abs(f - 7000))]


def test_band_match_cuts_the_voice_mixed_with_a_narrowband_masker(corpus_copy):
    import soundfile as sf

    from avse.data.metadata import interferer_wav_path
    from avse.data.mixing import bandwidth, lowpass

    base = DynamicMixDataset(corpus_copy, "train", seed=5, p_speech=1.0)
    for e in base.pools["speech"].entries:
        path = interferer_wav_path(corpus_copy, "train", "speech", e["wavfile"])  # every masker recorded at 11 kHz, say
        x, sr = sf.read(path)
        sf.write(path, lowpass(x, 4000.0, sr), sr, subtype="PCM_16")
    ds = DynamicMixDataset(corpus_copy, "train", seed=5, p_speech=1.0, band_match=True)
    plain = DynamicMixDataset(corpus_copy, "train", seed=5, p_speech=1.0)
    cut = 0
    for i in range(len(ds)):
        item, ref = ds[i], plain[i]
        if item["info"]["type"] != "speech":
            continue
        t, r = item["target"].numpy().astype(np.float64), ref["target"].numpy().astype(np.float64)
        assert bandwidth(r) > 6500 and bandwidth(t) < 5500  # the target's voice now stops where the masker's does
        torch.testing.assert_close(item["mixture"], item["target"] + item["interferer"], rtol=0, atol=1e-6)
        cut += 1
    assert cut > 0
    with pytest.raises(ConfigError, match="band_match"):
        from avse.training.data import AvseDataModule

        AvseDataModule(corpus_copy, band_match="yes")


def test_alone_only_voices_are_never_mixed_with_another_voice(tiny_corpus):
    base = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_clean=0.5, p_masker_target=0.5)
    speakers = sorted(base.pools["speech"].groups)
    assert len(speakers) >= 2
    solo = speakers[0]
    ds = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_clean=0.5, p_masker_target=0.5,
                           alone_only=[solo + "*"])
    assert solo not in ds.pools["speech"].groups and solo in ds.lone_pool.groups
    seen = {"alone": 0, "mixed": 0}
    for epoch in range(40):  # the tiny corpus: two targets, one masker of that voice as long as one of them
        ds.set_epoch(epoch)
        for i in range(len(ds)):
            m, item = ds.masker_target(i), ds[i]
            voice = ds.speech_by_name[m["name"]]["speaker"] if m is not None else ds.targets[i]["speaker"]
            if item["info"]["type"] == "clean":
                seen["alone"] += voice == solo
                continue
            assert voice != solo  # never the voice to keep in a mixture
            if item["info"]["type"] == "speech":
                assert ds.speech_by_name[item["info"]["name"]]["speaker"] != solo  # never the other voice
                seen["mixed"] += 1
    assert seen["alone"] > 0 and seen["mixed"] > 0
    with pytest.raises(ConfigError, match="list of speaker patterns"):  # not its characters as patterns
        DynamicMixDataset(tiny_corpus, "train", p_clean=0.5, p_masker_target=0.5, alone_only=solo)
    with pytest.raises(ConfigError, match="none is left to mix"):
        DynamicMixDataset(tiny_corpus, "train", p_clean=0.5, p_masker_target=0.5, alone_only=["*"])
    with pytest.raises(ConfigError, match="no masker speaker"):
        DynamicMixDataset(tiny_corpus, "train", p_clean=0.5, p_masker_target=0.5, alone_only=["nobody-*"])
    with pytest.raises(ConfigError, match="p_clean > 0"):
        DynamicMixDataset(tiny_corpus, "train", p_masker_target=0.5, alone_only=[solo])


def test_never_alone_voices_are_never_the_lone_voice(tiny_corpus):
    base = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_clean=0.5, p_masker_target=0.5)
    mixed_only = sorted(base.pools["speech"].groups)[1]  # the masker voice long enough for both targets
    ds = DynamicMixDataset(tiny_corpus, "train", seed=5, p_speech=1.0, p_clean=0.5, p_masker_target=0.5,
                           never_alone=[mixed_only])
    assert mixed_only in ds.pools["speech"].groups and mixed_only not in ds.lone_pool.groups
    seen = {"mixed": 0, "alone_before": 0}
    for epoch in range(40):
        ds.set_epoch(epoch)
        base.set_epoch(epoch)
        for i in range(len(ds)):
            m, b = ds.masker_target(i), base.masker_target(i)
            if ds._clean(i):
                assert m is None or ds.speech_by_name[m["name"]]["speaker"] != mixed_only
                seen["alone_before"] += b is not None and b["speaker"] == mixed_only  # it was, without the option
            elif m is not None and m["speaker"] == mixed_only:
                seen["mixed"] += 1
    assert seen["mixed"] > 0 and seen["alone_before"] > 0
    with pytest.raises(ConfigError, match="same speaker"):
        DynamicMixDataset(tiny_corpus, "train", p_clean=0.5, p_masker_target=0.5, alone_only=["spk*"], never_alone=["spk00*"])


def test_a_crowd_under_the_noise_is_the_splits_masker_voices_never_the_targets(tiny_corpus):
    """With p_crowd the noise items carry other talkers of the split, drawn apart from the mixture's own draws;
    speech items and everything else stay as they were."""
    from avse.data.noise import NoiseAugment

    kw = dict(segment_frames=None, seed=0, snr_noise=(0.0, 0.0), snr_speech=(0.0, 0.0))
    off = NoiseAugment(p_layer=0.0, p_reverb=0.0, p_eq=0.0)
    on = NoiseAugment(p_layer=0.0, p_reverb=0.0, p_eq=0.0, p_crowd=1.0, crowd_talkers=(3, 3))
    plain, crowded = DynamicMixDataset(tiny_corpus, "dev", noise_augment=off, **kw), DynamicMixDataset(tiny_corpus, "dev", noise_augment=on, **kw)
    picks: list[tuple[str, str]] = []
    pool = crowded.pools["speech"]
    draw = pool.draw

    def spy(rng, duration, speaker, used):
        pick = draw(rng, duration, speaker, used)
        if pick is not None:
            picks.append((speaker, pick["speaker"]))
        return pick

    pool.draw = spy  # type: ignore[method-assign]
    noise_items = 0
    for i in range(len(plain)):
        picks.clear()
        a, b = plain[i], crowded[i]
        assert a["info"] == b["info"]
        if a["info"]["type"] != "noise":
            assert np.allclose(a["interferer"].numpy(), b["interferer"].numpy()) and len(picks) <= 1  # its own voice
            continue
        noise_items += 1
        assert len(picks) == 3 and all(s != p for s, p in picks)
        assert all(s == plain.targets[i]["speaker"] for s, _ in picks)
        assert not np.allclose(a["interferer"].numpy(), b["interferer"].numpy(), atol=1e-3)
    assert noise_items
