"""Noise generators: lengths, levels, spectra and determinism."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from avse.data.noise import NOISE_CLASSES, coloured_noise, generate_noise, hum, real_noise_segments

N = 16_000 * 2


@pytest.mark.parametrize("kind", NOISE_CLASSES)
def test_each_class_has_length_level_and_is_deterministic(kind):
    voices = [np.sin(np.arange(8000) * 0.05).astype(np.float32), np.random.default_rng(1).standard_normal(12000).astype(np.float32)]
    a = generate_noise(kind, N, np.random.default_rng(7), voices=voices)
    b = generate_noise(kind, N, np.random.default_rng(7), voices=voices)
    c = generate_noise(kind, N, np.random.default_rng(8), voices=voices)
    assert a.shape == (N,) and a.dtype == np.float32
    assert np.isclose(np.max(np.abs(a)), 0.8, atol=1e-6)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def _slope(x):
    spec = np.abs(np.fft.rfft(x)) ** 2
    f = np.fft.rfftfreq(len(x), 1 / 16_000)
    band = (f > 50) & (f < 7000)
    return np.polyfit(np.log10(f[band]), 10 * np.log10(spec[band] + 1e-20), 1)[0]


def test_coloured_noise_spectral_slope_follows_exponent():
    rng = np.random.default_rng(0)
    white, pink, brown = (coloured_noise(N, rng, e) for e in (0.0, 1.0, 2.0))
    assert abs(_slope(white)) < 1.0  # ~0 dB/decade
    assert -12 < _slope(pink) < -8  # ~-10 dB/decade
    assert -22 < _slope(brown) < -18  # ~-20 dB/decade


def test_hum_peaks_at_mains_frequency():
    x = hum(N, np.random.default_rng(3))
    spec = np.abs(np.fft.rfft(x))
    f = np.fft.rfftfreq(N, 1 / 16_000)
    peak = f[np.argmax(spec * (f < 400))]
    assert min(abs(peak % 50), abs(peak % 60), 50 - peak % 50, 60 - peak % 60) < 2.0


def test_unknown_class_is_refused():
    with pytest.raises(ValueError, match="unknown noise class"):
        generate_noise("thunder", 100, np.random.default_rng(0))


def test_real_noise_is_cut_into_split_disjoint_segments(tmp_path):
    x = np.random.default_rng(0).standard_normal(16_000 * 20).astype(np.float32) * 0.1
    sf.write(tmp_path / "kitchen.wav", x, 16_000)
    segs = {"train": [], "dev": [], "test": []}
    for split, name, audio in real_noise_segments([tmp_path / "kitchen.wav"], {"train": 0.7, "dev": 0.15, "test": 0.15}, 5.0):
        segs[split].append((name, audio))
    assert [len(segs[s]) for s in ("train", "dev", "test")] == [2, 1, 1]
    # Each segment is a distinct stretch of the file: no sample range is shared.
    found = []
    for split in segs:
        for _, audio in segs[split]:
            start = int(np.flatnonzero(np.isclose(x, audio[0], atol=1e-4) & np.isclose(np.roll(x, -1), audio[1], atol=1e-4))[0])
            found.append((start, start + len(audio)))
    found.sort()
    assert all(a[1] <= b[0] for a, b in zip(found, found[1:]))


def test_short_clips_of_a_folder_are_chained_before_the_cut(tmp_path):
    folder = tmp_path / "pack" / "sfx"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for k in range(6):  # six 3 s clips at very different levels: too short to cut one by one
        sf.write(folder / f"clip{k}.wav", (rng.standard_normal(48_000) * 0.01 * 4**k).astype(np.float32), 16_000)
    long = rng.standard_normal(16_000 * 20).astype(np.float32) * 0.1
    sf.write(tmp_path / "pack" / "street.wav", long, 16_000)
    out = list(real_noise_segments(sorted((tmp_path / "pack").rglob("*.wav")), {"train": 0.7, "dev": 0.15, "test": 0.15}, 5.0))
    chained = [(s, n, a) for s, n, a in out if n.startswith("pack_sfx_")]
    alone = [(s, n, a) for s, n, a in out if n.startswith("street_")]
    assert len(alone) == 4 and len(chained) + len(alone) == len(out)
    # 18 s of clips less five 50 ms crossfades (284,000 samples) cut 70/15/15: two 5 s train segments (the
    # rest of the train part dropped), and the dev and test parts (42,600 samples) one segment each
    assert [(s, len(a)) for s, _, a in chained] == [("train", 80_000), ("train", 80_000), ("dev", 42_600), ("test", 42_600)]
    # every clip comes out at the same level, whatever it had: 1 s windows inside each clip have equal RMS
    stream = np.concatenate([a for _, _, a in chained])
    rms = [float(np.sqrt(np.mean(stream[i : i + 16_000] ** 2))) for i in range(16_000, len(stream) - 16_000, 48_000 - 800)]
    assert max(rms) / min(rms) < 1.1


def test_hidden_files_and_folders_are_not_noise(tmp_path):
    from avse.config import SynthConfig
    from avse.data.synth import _real_noise_files

    (tmp_path / ".debs").mkdir()
    (tmp_path / ".debs" / "pkg.deb").write_bytes(b"!<arch>\n not audio")
    (tmp_path / ".hidden.wav").write_bytes(b"junk")
    sf.write(tmp_path / "rain.wav", np.full(16_000, 0.1, np.float32), 16_000)
    assert _real_noise_files(SynthConfig(noise_dirs=(str(tmp_path),))) == [tmp_path / "rain.wav"]


REAL_NOISE = Path(__file__).resolve().parents[2] / "data" / "real_noise"


@pytest.mark.slow
@pytest.mark.skipif(not (REAL_NOISE / ".done").is_dir(), reason=f"no recorded noise in {REAL_NOISE} (scripts/fetch_real_noise)")
def test_fetched_noise_gives_a_hundred_train_items_of_sound():
    from avse.config import SynthConfig
    from avse.data.synth import _real_noise_files

    files = _real_noise_files(SynthConfig(noise_dirs=(str(REAL_NOISE),)))
    assert all(f.suffix.lower() in (".wav", ".ogg") for f in files)
    segs = list(real_noise_segments(files, {"train": 0.7, "dev": 0.15, "test": 0.15}, 8.0))
    train = [a for s, _, a in segs if s == "train"]
    assert len(train) >= 100 and sum(len(a) == 8 * 16_000 for a in train) >= 0.9 * len(train)
    assert all(16_000 <= len(a) < 16 * 16_000 for _, _, a in segs)  # a part shorter than two segments is one
    assert all(float(np.sqrt(np.mean(a**2))) > 1e-3 for _, _, a in segs)  # sound, not silence
    assert {n.split("_dev")[0] for s, n, _ in segs if s == "dev"} >= {"real_noise_lincity", "real_noise_minetest"}


def test_synthetic_rir_decays_at_its_rt60_and_highs_decay_faster():
    from avse.data.noise import synthetic_rir

    rt60 = 0.5
    h = synthetic_rir(rt60, np.random.default_rng(0))
    assert len(h) == int(1.2 * rt60 * 16000) and abs(np.sum(h**2) - 1) < 1e-9
    # Schroeder integral: the energy decay curve falls 60 dB in about rt60 (fit from -5 to -25 dB, as T20 does)
    edc = 10 * np.log10(np.cumsum((h**2)[::-1])[::-1] / np.sum(h**2))
    t = np.arange(len(h)) / 16000
    sel = (edc < -5) & (edc > -25)
    slope = np.polyfit(t[sel], edc[sel], 1)[0]  # dB/s
    assert 0.3 < -60 / slope < 0.6  # the low band dominates the energy; the high band decays twice as fast
    spec_early = np.abs(np.fft.rfft(h[:800], 4096)) ** 2
    spec_late = np.abs(np.fft.rfft(h[3200:4000], 4096)) ** 2
    f = np.fft.rfftfreq(4096, 1 / 16000)
    hi_share = lambda s: s[f > 3000].sum() / s.sum()  # noqa: E731
    assert hi_share(spec_late) < 0.5 * hi_share(spec_early)


def test_random_eq_is_smooth_and_bounded():
    from avse.data.noise import random_eq

    x = np.random.default_rng(0).standard_normal(64000)
    y = random_eq(x, np.random.default_rng(1), 10.0)
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    g = 20 * np.log10(np.abs(np.fft.rfft(y)) / np.abs(np.fft.rfft(x)))
    band = (f > 60) & (f < 7900)
    assert np.all(np.abs(g[band]) <= 10.0 + 1e-6) and g[band].max() - g[band].min() > 3.0
    assert np.array_equal(random_eq(x, np.random.default_rng(1), 0.0), x)


def test_augment_noise_layers_reverberates_and_equalises_by_its_draws_only():
    from avse.data.noise import NoiseAugment, augment_noise

    rng = np.random.default_rng(0)
    x = np.zeros(32000)
    x[::4000] = 1.0  # clicks: reverb shows as energy between them
    calls = []

    def layer():
        calls.append(1)
        return rng.standard_normal(32000)

    none = NoiseAugment(p_layer=0.0, p_reverb=0.0, p_eq=0.0)
    assert np.array_equal(augment_noise(x, np.random.default_rng(3), none, layer), x) and not calls
    rev = augment_noise(x, np.random.default_rng(3), NoiseAugment(p_layer=0.0, p_reverb=1.0, p_eq=0.0, rt60=(0.4, 0.4)))
    gaps = np.ones(32000, bool)
    gaps[::4000] = False
    assert np.sum(rev[gaps] ** 2) > 0.3 * np.sum(rev**2)  # the tails between the clicks
    both = augment_noise(x, np.random.default_rng(3), NoiseAugment(p_layer=1.0, p_reverb=0.0, p_eq=0.0, layer_db=(0.0, 0.0)), layer)
    assert len(calls) == 1 and np.isclose(np.sum((both - x) ** 2), np.sum(x**2), rtol=1e-6)  # the layer at the same RMS
    a = augment_noise(x, np.random.default_rng(5), NoiseAugment())
    assert np.array_equal(a, augment_noise(x, np.random.default_rng(5), NoiseAugment())) and a.shape == x.shape


def test_noise_augment_checks_its_ranges():
    from avse.data.noise import NoiseAugment
    from avse.errors import ConfigError

    for bad in ({"p_reverb": 1.5}, {"rt60": (1.0, 0.5)}, {"rt60": (0.0, 0.5)}, {"eq_db": -1.0}, {"layer_db": (0.0, -5.0)}):
        with pytest.raises(ConfigError):
            NoiseAugment(**bad)


def test_impacts_are_decaying_resonances_at_the_drawn_rate():
    from avse.data.noise import impacts

    x = impacts(16000 * 20, np.random.default_rng(0), rate_hz=2.0)
    assert x.dtype == np.float32 and abs(np.abs(x).max() - 0.8) < 1e-6
    assert np.array_equal(x, impacts(16000 * 20, np.random.default_rng(0), rate_hz=2.0))
    env = np.abs(x).reshape(-1, 160).max(1)  # 10 ms peaks
    onsets = np.flatnonzero((env[1:] > 0.05) & (env[1:] > 4 * env[:-1] + 1e-6))
    assert 15 <= len(onsets) <= 70  # about 40 events in 20 s, some merged or buried
    f = np.fft.rfftfreq(len(x), 1 / 16000)
    p = np.abs(np.fft.rfft(x)) ** 2
    assert p[f > 1000].sum() > 0.5 * p.sum()  # struck hard objects ring high
    assert not impacts(16000, np.random.default_rng(0), rate_hz=0.0).any()
    for seed in range(20):  # many events in very short noises: some start in the last samples
        y = impacts(64, np.random.default_rng(seed), rate_hz=5000.0)
        assert y.shape == (64,) and np.isfinite(y).all()


def test_impacts_join_the_noise_only_when_asked_and_leave_the_other_draws_alone():
    from avse.data.noise import NoiseAugment, augment_noise

    x = np.random.default_rng(0).standard_normal(32000) * 0.1
    base = NoiseAugment(p_layer=0.0)
    plain = augment_noise(x, np.random.default_rng(7), base)
    assert np.array_equal(plain, augment_noise(x, np.random.default_rng(7), NoiseAugment(p_layer=0.0, impacts_db=(0.0, 0.0))))
    hit = augment_noise(x, np.random.default_rng(7), NoiseAugment(p_layer=0.0, p_reverb=0.0, p_eq=0.0, p_impacts=1.0,
                                                                    impacts_db=(0.0, 0.0)))
    extra = hit - x
    assert np.isclose(np.sqrt(np.mean(extra**2)), np.sqrt(np.mean(x**2)), rtol=1e-6)  # at the noise's own RMS


MORE_NOISE = Path(__file__).resolve().parents[2] / "data" / "real_noise_more"


@pytest.mark.slow
@pytest.mark.skipif(not (MORE_NOISE / ".done" / "0ad-data").is_file(),
                    reason=f"no {MORE_NOISE} (scripts/fetch_real_noise --more-noise data/real_noise_more)")
def test_more_noise_holds_long_recordings_without_digital_silence():
    import soundfile as sf

    seconds: dict[str, float] = {}
    for name in ("0ad_ambient", "0ad_sounds", "widelands"):
        files = sorted((MORE_NOISE / name).iterdir())
        assert files, name
        for f in files[:: max(1, len(files) // 40)]:  # every file would take minutes: a spread of them
            x, sr = sf.read(f, always_2d=True)
            silent = np.abs(x).max(axis=1) < 1.0 / 32768
            edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]]))).reshape(-1, 2)
            assert len(edges) == 0 or (edges[:, 1] - edges[:, 0]).max() <= 0.1 * sr + 1, f  # stretches cut to 0.1 s
            assert sr >= 11_025 and (~silent).sum() >= 0.02 * sr, f  # sound, not silence
        seconds[name] = sum(sf.info(f).duration for f in files)
    assert seconds["0ad_ambient"] > 20 * 60 and seconds["0ad_sounds"] > 10 * 60 and seconds["widelands"] > 5 * 60
    assert not [f for name in ("0ad_ambient", "0ad_sounds") for f in (MORE_NOISE / name).glob("*music*")]  # no music


def test_in_room_adds_the_reverberation_at_its_direct_to_reverberant_ratio():
    from avse.data.noise import in_room, synthetic_rir

    x = np.random.default_rng(1).standard_normal(16000)
    rir = synthetic_rir(0.4, np.random.default_rng(2))
    y = in_room(x, rir, 6.0)
    dry = x * 10 ** (6.0 / 20)
    wet = y - dry
    assert np.sqrt(np.mean(wet**2)) == pytest.approx(np.sqrt(np.mean(x**2)), rel=1e-9)  # wet at the dry level
    np.testing.assert_array_equal(in_room(x, np.zeros(8), 6.0), x)  # a silent response leaves x as it is


def test_crowd_is_every_talker_in_one_room_near_ones_clear_far_ones_blurred(monkeypatch):
    import avse.data.noise as noise_mod
    from avse.data.noise import crowd

    rng = np.random.default_rng(0)
    voices = [rng.standard_normal(16000) for _ in range(12)]
    y = crowd(32000, np.random.default_rng(1), voices, 0.5)
    assert y.shape == (32000,) and np.isclose(np.sqrt(np.mean(y**2)), 1.0)
    assert np.array_equal(y, crowd(32000, np.random.default_rng(1), voices, 0.5))
    assert not crowd(32000, np.random.default_rng(1), [], 0.5).any() and crowd(0, np.random.default_rng(1), voices, 0.5).shape == (0,)
    # every talker is in it: silencing one (the same draws) changes the crowd
    for j in (0, 5, 11):
        quiet = [np.zeros_like(v) if i == j else v for i, v in enumerate(voices)]
        assert not np.allclose(crowd(32000, np.random.default_rng(1), quiet, 0.5), y, atol=1e-3)

    # one talker near, then far: the far one's direct sound is weaker against the room's tail
    click = np.zeros(16000)
    click[100] = 1.0

    def direct_share(distance):
        monkeypatch.setattr(noise_mod, "CROWD_DISTANCE_M", (distance, distance))
        out = np.abs(crowd(16000, np.random.default_rng(2), [click], 0.6))
        return out.max() ** 2 / np.sum(out**2)

    assert direct_share(1.0) > 3 * direct_share(10.0)


def test_a_crowd_joins_the_noise_only_when_asked_with_voices_and_leaves_the_other_draws_alone():
    from avse.data.noise import NoiseAugment, augment_noise

    x = np.random.default_rng(0).standard_normal(32000) * 0.1
    asked = []

    def talkers(k):
        asked.append(k)
        return [np.random.default_rng(k + i).standard_normal(8000) for i in range(k)]

    base = NoiseAugment(p_layer=0.0, p_impacts=0.5)
    plain = augment_noise(x, np.random.default_rng(7), base)
    assert np.array_equal(plain, augment_noise(x, np.random.default_rng(7), base, None, talkers)) and not asked
    assert np.array_equal(plain, augment_noise(x, np.random.default_rng(7), NoiseAugment(p_layer=0.0, p_impacts=0.5, p_crowd=1.0)))
    only = NoiseAugment(p_layer=0.0, p_reverb=0.0, p_eq=0.0, p_crowd=1.0, crowd_db=(6.0, 6.0), crowd_talkers=(3, 5))
    hit = augment_noise(x, np.random.default_rng(7), only, None, talkers)
    assert len(asked) == 1 and 3 <= asked[0] <= 5
    extra = hit - x
    assert np.isclose(20 * np.log10(np.sqrt(np.mean(extra**2)) / np.sqrt(np.mean(x**2))), 6.0, atol=1e-6)
    counts = []
    for seed in range(200):
        asked.clear()
        augment_noise(x[:100], np.random.default_rng(seed), NoiseAugment(p_crowd=0.3, crowd_talkers=(2, 2)), None, talkers)
        counts.append(len(asked))
    assert 0.2 < np.mean(counts) < 0.4 and asked in ([], [2])
    # no voices to be had: the noise as it was
    assert np.array_equal(augment_noise(x, np.random.default_rng(7), only, None, lambda k: []), x)


def test_noise_augment_checks_the_crowd():
    from avse.data.noise import NoiseAugment
    from avse.errors import ConfigError

    for bad in ({"p_crowd": -0.1}, {"crowd_db": (5.0, 0.0)}, {"crowd_talkers": (0, 4)}, {"crowd_talkers": (8, 4)},
                {"crowd_talkers": (2.5, 4)}):
        with pytest.raises(ConfigError, match="crowd"):
            NoiseAugment(**bad)


def test_augment_speech_reverberates_and_equalises_a_voice_at_its_level_by_its_draws_only():
    from avse.data.noise import SpeechAugment, augment_speech

    x = np.zeros(32000)
    x[::4000] = 1.0  # clicks: reverb shows as energy between them
    none = SpeechAugment(p_reverb=0.0, p_eq=0.0)
    assert np.array_equal(augment_speech(x, np.random.default_rng(3), none), x)
    rev = augment_speech(x, np.random.default_rng(3), SpeechAugment(p_reverb=1.0, p_eq=0.0, rt60=(0.4, 0.4), drr_db=(0.0, 0.0)))
    gaps = np.ones(32000, bool)
    gaps[::4000] = False
    assert np.sum(rev[gaps] ** 2) > 0.3 * np.sum(rev**2)  # the tails between the clicks
    assert np.isclose(np.sum(rev**2), np.sum(x**2))  # the voice's level kept
    eq = augment_speech(x, np.random.default_rng(3), SpeechAugment(p_reverb=0.0, p_eq=1.0, eq_db=6.0))
    assert not np.allclose(eq, x) and np.isclose(np.sum(eq**2), np.sum(x**2))
    a = augment_speech(x, np.random.default_rng(5), SpeechAugment())
    assert np.array_equal(a, augment_speech(x, np.random.default_rng(5), SpeechAugment())) and a.shape == x.shape
    assert not np.any(augment_speech(np.zeros(1000), np.random.default_rng(5), SpeechAugment(p_reverb=1.0, p_eq=1.0)))


def test_speech_augment_checks_its_ranges():
    from avse.data.noise import SpeechAugment
    from avse.errors import ConfigError

    for bad in ({"p_reverb": -0.1}, {"p_eq": 2.0}, {"rt60": (0.8, 0.2)}, {"rt60": (0.01, 0.5)}, {"eq_db": -1.0},
                {"drr_db": (10.0, 0.0)}):
        with pytest.raises(ConfigError):
            SpeechAugment(**bad)
