"""Tests for avse.data.scenes, avse.data.mixing and avse.data.render: building scenes.json and rendering scenes bit for bit."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.signal
import soundfile as sf

from avse.audio import wav16
from avse.data import mixing as mx
from avse.data import render as rd
from avse.data import scenes as sc
from avse.data.metadata import load_scenes
from avse.errors import AvseError, ConfigError, InterfererTooShortError, MediaError, MetadataError, OutputPathError

SR = 16000
SHARED_WEIGHT = Path(__file__).resolve().parents[3] / "shared" / "avse" / "speech_weight.mat"


# ---------------------------------------------------------------------------
# A tiny synthetic corpus in the AVSE layout
# ---------------------------------------------------------------------------


def _wav(path: Path, n: int, rng: np.random.Generator, amp: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    x = rng.standard_normal(n)
    x = np.convolve(x, rng.standard_normal(8), mode="same")  # a little colour
    x = np.clip(x / np.max(np.abs(x)) * amp, -1, 1)
    sf.write(str(path), (x * 32767).astype(np.int16), SR, subtype="PCM_16")


def make_corpus(root: Path, seed: int = 0, target_lens=(9000, 12000, 20000, 14000, 17000, 6000)) -> Path:
    """Targets by spkA/spkB (some shorter than the 8000-sample ramp pair), maskers long enough."""
    rng = np.random.default_rng(seed)
    targets, maskers, noises = [], [], []
    for i, n in enumerate(target_lens):
        name = f"tgt{i:02d}"
        spk = "spkA" if i % 2 == 0 else "spkB"
        _wav(root / "train" / "targets" / f"{name}.wav", n, rng, 0.3 + 0.1 * i)
        targets.append({"wavfile": name, "dataset": "train", "nsamples": n, "speaker": spk, "text": "x"})
    for i, spk in enumerate(["spkA", "spkB", "spkC", "spkA"]):
        name = f"msk{i:02d}"
        n = 26000 + 1000 * i
        _wav(root / "train" / "interferers" / "speech" / f"{name}.wav", n, rng, 0.5)
        maskers.append({"wavfile": name, "dataset": "train", "nsamples": n, "speaker": spk})
    for i, cls in enumerate(["hum", "hum", "babble"]):
        name = f"noi{i:02d}"
        n = 30000 + 500 * i
        _wav(root / "train" / "interferers" / "noise" / f"{name}.wav", n, rng, 0.9)
        noises.append({"ID": name, "class": cls, "type": "noise", "dataset": "train", "nsamples": n})
    # one dev target, so that filtering by split is exercised
    targets.append({"wavfile": "devtgt", "dataset": "dev", "nsamples": 5000, "speaker": "spkD"})
    meta = root / "metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "target_speech_list.json").write_text(json.dumps(targets))
    (meta / "masker_speech_list.json").write_text(json.dumps(maskers))
    (meta / "masker_noise_list.json").write_text(json.dumps(noises))
    return root


@pytest.fixture
def corpus(tmp_path) -> Path:
    return make_corpus(tmp_path / "corpus")


def _hash_tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "scenes" not in p.relative_to(root).parts
    }


# ---------------------------------------------------------------------------
# The straightforward reference: the challenge's math, written out plainly
# ---------------------------------------------------------------------------


def reference_render(root: Path, scene: dict, h: np.ndarray | None) -> dict[str, np.ndarray]:
    """Read whole files, ramp, convolve, scale, sum, shared peak, int16 - no caching, no tricks."""
    split = scene["dataset"]
    target, sr = sf.read(str(root / split / "targets" / f"{scene['target']['name']}.wav"))
    assert sr == SR and target.dtype == np.float64
    pre, post = scene["pre_samples"], scene["post_samples"]
    target = np.pad(target, (pre, post))
    specs = scene.get("interferers", [scene["interferer"]])

    def wrms(x):
        # the challenge's speech-weighted level: full convolution by FFT
        y = x if h is None else scipy.signal.convolve(x, h, mode="full", method="fft")
        return np.sqrt(np.mean(y**2))

    def seg(x):
        return x[pre : len(x) - post]

    noises = []
    for spec in specs:
        full, _ = sf.read(str(root / split / "interferers" / spec["type"] / f"{spec['name']}.wav"))
        x = np.array(full[spec["offset"] : spec["offset"] + len(target)])
        ramp = (np.cos(np.linspace(math.pi, 2 * math.pi, 8000)) + 1) / 2
        if len(x) >= 8000:
            x[0:8000] *= ramp
            x[-8000:] *= ramp[::-1]
        else:
            x *= ramp[: len(x)]
            x *= ramp[::-1][8000 - len(x) :]
        noises.append(x)
    t_rms = wrms(seg(target))
    if len(noises) == 1:
        noise = noises[0]
    else:
        noise = noises[0] * (t_rms / wrms(seg(noises[0])))
        for x in noises[1:]:
            noise = noise + x * (t_rms / wrms(seg(x)))
    noise = noise * (t_rms / wrms(seg(noise)))
    noise = noise * 10 ** ((-scene["SNR"]) / 20)
    mixed = target + noise
    norm = np.max(np.abs(np.concatenate((mixed, target, noise))))
    out = {}
    for kind, x in (("mixed", mixed), ("target", target), ("interferer", noise)):
        x = x / norm
        x = np.clip(x, -1.0, 1.0)
        out[kind] = (32767 * x).astype(np.int16)
    return out


def _read_int16(path: Path) -> np.ndarray:
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SR, 1, "PCM_16", "WAV")
    x, _ = sf.read(str(path), dtype="int16")
    return x


# ---------------------------------------------------------------------------
# Building
# ---------------------------------------------------------------------------


def test_build_is_deterministic_and_written_atomically(corpus):
    a = sc.build_scenes(corpus, "train", n_scenes=20, seed=3)
    path = sc.write_scenes(corpus, "train", a)
    assert path == corpus / "metadata" / "scenes.train.json"
    first = path.read_bytes()
    b = sc.build_scenes(corpus, "train", n_scenes=20, seed=3)
    sc.write_scenes(corpus, "train", b)
    assert path.read_bytes() == first
    assert load_scenes(path) == a
    assert sc.build_scenes(corpus, "train", n_scenes=20, seed=4) != a
    assert [p.name for p in (corpus / "metadata").iterdir() if p.name.startswith(".")] == []


def test_build_fields_and_constraints(corpus):
    targets = {t["wavfile"]: t for t in json.loads((corpus / "metadata/target_speech_list.json").read_text())}
    speech = {m["wavfile"]: m for m in json.loads((corpus / "metadata/masker_speech_list.json").read_text())}
    noise = {m["ID"]: m for m in json.loads((corpus / "metadata/masker_noise_list.json").read_text())}
    scenes = sc.build_scenes(corpus, "train", n_scenes=200, seed=1, pre_samples=100, post_samples=50, start_index=7)
    assert [s["scene"] for s in scenes[:3]] == ["S00007", "S00008", "S00009"]
    # the 6 train targets are each used once before any repeats
    assert sorted(s["target"]["name"] for s in scenes[:6]) == [f"tgt{i:02d}" for i in range(6)]
    types = set()
    for s in scenes:
        assert set(s) == {"scene", "dataset", "target", "duration", "interferer", "SNR", "pre_samples", "post_samples"}
        t = targets[s["target"]["name"]]
        assert s["dataset"] == "train" and t["dataset"] == "train"
        assert s["target"]["speaker"] == t["speaker"]
        assert s["duration"] == t["nsamples"] + 150
        assert (s["pre_samples"], s["post_samples"]) == (100, 50)
        i = s["interferer"]
        types.add(i["type"])
        entry = speech[i["name"]] if i["type"] == "speech" else noise[i["name"]]
        assert 0 <= i["offset"] <= entry["nsamples"] - s["duration"]
        if i["type"] == "speech":
            assert entry["speaker"] != t["speaker"] and i["speaker"] == entry["speaker"]
            assert -15 <= s["SNR"] <= 5
        else:
            assert i["class"] == entry["class"]
            assert -10 <= s["SNR"] <= 10
        assert s["SNR"] == round(s["SNR"], 4)
    assert types == {"speech", "noise"}


def test_build_options(corpus):
    only_noise = sc.build_scenes(corpus, "train", n_scenes=30, seed=0, p_speech=0.0, snr_noise=(2, 2))
    assert {s["interferer"]["type"] for s in only_noise} == {"noise"}
    assert {s["SNR"] for s in only_noise} == {2.0}
    only_speech = sc.build_scenes(corpus, "train", n_scenes=30, seed=0, p_speech=1.0)
    assert {s["interferer"]["type"] for s in only_speech} == {"speech"}
    assert len(sc.build_scenes(corpus, "train", seed=0)) == 6  # one per target
    two = sc.build_scenes(corpus, "train", n_scenes=30, seed=0, n_interferers=2)
    for s in two:
        assert len(s["interferers"]) == 2 and s["interferers"][0] == s["interferer"]
        assert (s["interferers"][0]["type"], s["interferers"][0]["name"]) != (
            s["interferers"][1]["type"],
            s["interferers"][1]["name"],
        )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"snr_speech": (5, -15)},
        {"snr_noise": (10, -10)},
        {"snr_noise": (0, float("nan"))},
        {"p_speech": 1.5},
        {"n_interferers": 0},
        {"pre_samples": -1},
        {"n_scenes": 0},
    ],
)
def test_bad_options_raise_config_error(corpus, kwargs):
    with pytest.raises(ConfigError):
        sc.build_scenes(corpus, "train", **{"n_scenes": 3, **kwargs})


def test_too_short_interferers(tmp_path):
    root = make_corpus(tmp_path / "c", target_lens=(9000, 40000))  # every masker < 40000 samples
    with pytest.raises(InterfererTooShortError, match="target 'tgt01'"):
        sc.build_scenes(root, "train", n_scenes=2, seed=0)
    # speech maskers too short for a 28000-sample target but noise long enough: falls back to noise
    root2 = make_corpus(tmp_path / "d", target_lens=(28500,))
    scenes = sc.build_scenes(root2, "train", n_scenes=10, seed=0, p_speech=0.9)
    assert all(s["interferer"]["type"] == "noise" for s in scenes)
    # ... unless speech only was asked for
    with pytest.raises(InterfererTooShortError, match="tgt00"):
        sc.build_scenes(root2, "train", n_scenes=1, seed=0, p_speech=1.0)


def test_build_metadata_errors(corpus):
    with pytest.raises(MetadataError, match="no target of dataset 'test'"):
        sc.build_scenes(corpus, "test", n_scenes=1)
    (corpus / "metadata/masker_noise_list.json").write_text("[]")
    with pytest.raises(MetadataError, match="empty list"):
        sc.build_scenes(corpus, "train", n_scenes=1)


# ---------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------


def _build(corpus: Path, n: int = 12, **kw) -> list[dict]:
    scenes = sc.build_scenes(corpus, "train", n_scenes=n, seed=5, **kw)
    sc.write_scenes(corpus, "train", scenes)
    return scenes


def test_weighted_rms_is_the_fft_convolution():
    rng = np.random.default_rng(0)
    h = rng.standard_normal(512)
    for n in (1000, 16003, 48000, 1000):
        x = rng.standard_normal(n)
        y = scipy.signal.convolve(x, h, mode="full", method="fft")
        assert mx.weighted_rms(x, h) == float(np.sqrt(np.mean(y**2)))  # bit for bit
        direct = np.sqrt(np.mean(np.convolve(x, h) ** 2))
        assert abs(mx.weighted_rms(x, h) / direct - 1) < 1e-13  # and np.convolve to float64 rounding
    assert mx.weighted_rms(np.array([3.0, -4.0])) == math.sqrt(12.5)


def test_wav_bytes_equal_soundfile(tmp_path):
    x = (np.random.default_rng(1).standard_normal(999) * 8000).astype(np.int16)
    sf.write(str(tmp_path / "a.wav"), x, SR, subtype="PCM_16", format="WAV")
    assert wav16.wav_bytes_int16(x) == (tmp_path / "a.wav").read_bytes()


def test_ramp_matches_reference_formula():
    ramp = (np.cos(np.linspace(math.pi, 2 * math.pi, 8000)) + 1) / 2
    x = np.linspace(-1, 1, 20000)
    y = x.copy()
    y[:8000] *= ramp
    y[-8000:] *= ramp[::-1]
    assert np.array_equal(mx.apply_ramp(x), y)
    assert mx.apply_ramp(x)[0] == 0.0 and mx.apply_ramp(x)[-1] == 0.0
    short = np.ones(5)
    assert np.array_equal(mx.apply_ramp(short), ramp[:5] * ramp[::-1][-5:])


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("prepost", [(0, 0), (300, 200)])
def test_render_bit_identical_to_reference(corpus, tmp_path, weighted, prepost):
    h = np.random.default_rng(9).standard_normal(64) * 0.1 if weighted else None
    scenes = sc.build_scenes(corpus, "train", n_scenes=12, seed=2, pre_samples=prepost[0], post_samples=prepost[1])
    out = tmp_path / "out"
    for scene in scenes:
        paths = rd.render_scene(corpus, scene, out, speech_weight=h, with_video=False)
        ref = reference_render(corpus, scene, h)
        for kind in ("mixed", "target", "interferer"):
            got = _read_int16(paths[kind])
            assert len(got) == scene["duration"]
            assert np.array_equal(got, ref[kind]), (scene["scene"], kind)


def test_render_several_interferers_bit_identical(corpus, tmp_path):
    h = np.random.default_rng(1).standard_normal(32)
    scenes = sc.build_scenes(corpus, "train", n_scenes=6, seed=0, n_interferers=3)
    for scene in scenes:
        paths = rd.render_scene(corpus, scene, tmp_path / "o", speech_weight=h, with_video=False)
        ref = reference_render(corpus, scene, h)
        for kind in ("mixed", "target", "interferer"):
            assert np.array_equal(_read_int16(paths[kind]), ref[kind])
        snr = rd.measured_snr(paths["target"], paths["interferer"], speech_weight=h)
        assert abs(snr - scene["SNR"]) < 0.01


@pytest.mark.parametrize(
    "weight",
    [None, pytest.param("shared", marks=pytest.mark.skipif(not SHARED_WEIGHT.exists(), reason="no speech_weight.mat"))],
)
def test_measured_snr_matches_scene(corpus, tmp_path, weight):
    h = str(SHARED_WEIGHT) if weight else None
    scenes = sc.build_scenes(corpus, "train", n_scenes=12, seed=11)
    errors = []
    for scene in scenes:
        paths = rd.render_scene(corpus, scene, tmp_path / "out", speech_weight=h, with_video=False)
        errors.append(rd.measured_snr(paths["target"], paths["interferer"], speech_weight=h) - scene["SNR"])
    assert max(abs(e) for e in errors) < 0.01, errors


def test_speech_weight_mat_file(corpus, tmp_path):
    import scipy.io

    h = np.random.default_rng(2).standard_normal(48)
    mat = tmp_path / "w.mat"
    scipy.io.savemat(str(mat), {"filt": h[None, :]})
    assert np.array_equal(mx.load_speech_weight(mat), h)
    scene = sc.build_scenes(corpus, "train", n_scenes=1, seed=0)[0]
    a = rd.render_scene(corpus, scene, tmp_path / "a", speech_weight=mat, with_video=False)
    b = rd.render_scene(corpus, scene, tmp_path / "b", speech_weight=h, with_video=False)
    for kind in ("mixed", "target", "interferer"):
        assert a[kind].read_bytes() == b[kind].read_bytes()
    scipy.io.savemat(str(tmp_path / "bad.mat"), {"other": h})
    with pytest.raises(AvseError, match="no variable 'filt'"):
        mx.load_speech_weight(tmp_path / "bad.mat")


def test_normalization_modes(corpus, tmp_path):
    scene = sc.build_scenes(corpus, "train", n_scenes=3, seed=0)[2]
    peaks = {}
    for mode in mx.NORMALIZATIONS:
        paths = rd.render_scene(corpus, scene, tmp_path / mode, normalization=mode, with_video=False)
        xs = {k: _read_int16(paths[k]).astype(np.int64) for k in ("mixed", "target", "interferer")}
        peaks[mode] = max(int(np.max(np.abs(x))) for x in xs.values())
        # one shared factor: mixed = target + interferer up to truncation (|error| <= 2 LSB)
        assert np.max(np.abs(xs["mixed"] - xs["target"] - xs["interferer"])) <= 2
    assert peaks["avse"] == 32767
    assert abs(peaks["peak"] - 32767 * 10 ** (-1 / 20)) <= 1
    assert peaks["lufs"] <= 32767
    with pytest.raises(ConfigError):
        rd.render_scene(corpus, scene, tmp_path / "x", normalization="rms", with_video=False)


def _outputs(out: Path) -> dict[str, bytes]:
    """The rendered files of a scenes folder (not the .render records), name -> bytes."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file() and not p.name.startswith(".")}


def _scene_files(out: Path, name: str) -> list[str]:
    """Every file of scene ``name`` in ``out`` (outputs, temp files, its record)."""
    found = [p.name for p in out.glob(f"*{name}_*")]
    return sorted(found + [p.name for p in (out / ".render").glob(f"*{name}*")])


def _fresh(corpus: Path, scenes: list[dict], out: Path, **kw) -> dict[str, bytes]:
    """Render ``scenes`` one by one with render_scene into an empty ``out``."""
    for s in scenes:
        rd.render_scene(corpus, s, out, **kw)
    return _outputs(out)


def test_render_scenes_resume_shards_jobs_and_inputs(corpus, tmp_path):
    scenes = _build(corpus, n=10)
    before = _hash_tree(corpus)
    out = corpus / "train" / "scenes"
    # three shards cover every scene exactly once
    counts = []
    for i in range(3):
        summary = rd.render_scenes(corpus, "train", shard=(i, 3), progress=False, with_video=False)
        counts.append(summary["rendered"])
        assert summary["skipped"] == 0 and summary["shard"] == f"{i}/3"
    assert sum(counts) == 10 and counts == [4, 3, 3]
    assert sorted(sum((rd.shard_indices(10, (i, 3)) for i in range(3)), [])) == list(range(10))
    names = sorted(_outputs(out))
    assert names == sorted(f"{s['scene']}_{k}.wav" for s in scenes for k in ("mixed", "target", "interferer"))
    assert sorted(p.name for p in (out / ".render").iterdir()) == sorted(f"{s['scene']}.json" for s in scenes)
    sharded = _outputs(out)
    # resume: nothing is rewritten
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    summary = rd.render_scenes(corpus, "train", shard="0/1", progress=False, with_video=False)
    assert (summary["rendered"], summary["skipped"], summary["scenes"]) == (0, 10, 10)
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes
    # a scene with a missing output is rendered again, and only that one
    (out / f"{scenes[4]['scene']}_target.wav").unlink()
    summary = rd.render_scenes(corpus, "train", progress=False, with_video=False)
    assert (summary["rendered"], summary["skipped"]) == (1, 9)
    # a pool of two workers gives the same bytes as the shards did one by one
    for name in _outputs(out):
        (out / name).unlink()
    summary = rd.render_scenes(corpus, "train", jobs=2, progress=False, with_video=False)
    assert summary["rendered"] == 10
    assert _outputs(out) == sharded
    assert _hash_tree(corpus) == before  # inputs untouched


def test_render_scenes_bad_shard_and_missing_scenes(corpus):
    with pytest.raises(MetadataError, match="no such file"):
        rd.render_scenes(corpus, "train", progress=False, with_video=False)
    _build(corpus, n=2)
    for shard in [(3, 3), (0, 0), "1/1", "x", (0.5, 2), 3]:
        with pytest.raises(ConfigError):
            rd.render_scenes(corpus, "train", shard=shard, progress=False, with_video=False)
    with pytest.raises(ConfigError, match="normalization"):
        rd.render_scenes(corpus, "train", normalization="rms", progress=False, with_video=False)


def test_output_dir_that_is_a_file(corpus, tmp_path):
    scenes = _build(corpus, n=2)
    (corpus / "train" / "scenes").write_text("not a folder")
    before = _hash_tree(corpus)
    with pytest.raises(OutputPathError):
        rd.render_scenes(corpus, "train", progress=False, with_video=False)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputPathError):
        rd.render_scene(corpus, scenes[0], blocker / "sub", with_video=False)
    assert _hash_tree(corpus) == before
    assert blocker.read_text() == "x"


def test_output_that_would_be_an_input_is_refused(corpus):
    target_dir = corpus / "train" / "targets"
    scene = sc.build_scenes(corpus, "train", n_scenes=1, seed=0)[0]
    # a target whose file name is what scene "S9"'s target output would be called
    (target_dir / "S9_target.wav").write_bytes((target_dir / f"{scene['target']['name']}.wav").read_bytes())
    scene = dict(scene, scene="S9", target=dict(scene["target"], name="S9_target"))
    before = _hash_tree(corpus)
    with pytest.raises(OutputPathError, match="overwrite an input"):
        rd.render_scene(corpus, scene, target_dir, with_video=False)
    assert _hash_tree(corpus) == before
    # the same scene rendered elsewhere is fine
    assert rd.render_scene(corpus, scene, corpus / "elsewhere", with_video=False)["target"].is_file()


def test_failed_scene_is_reported_after_the_others(corpus):
    scenes = _build(corpus, n=4)
    (corpus / "train" / "targets" / f"{scenes[1]['target']['name']}.wav").unlink()
    with pytest.raises(AvseError, match="1 of 4 scenes failed"):
        rd.render_scenes(corpus, "train", progress=False, with_video=False)
    assert rd.scene_done(corpus / "train" / "scenes", scenes[0], with_video=False)
    assert not rd.scene_done(corpus / "train" / "scenes", scenes[1], with_video=False)


# ---------------------------------------------------------------------------
# Broken inputs: a failing scene leaves none of its outputs
# ---------------------------------------------------------------------------


def _truncate(path: Path, fraction: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])


def test_truncated_target_fails_and_leaves_nothing(corpus):
    scenes = _build(corpus, n=4)
    _videos(corpus, scenes)
    out = corpus / "train" / "scenes"
    bad = corpus / "train" / "targets" / f"{scenes[1]['target']['name']}.wav"
    _truncate(bad, 0.5)  # cut mid-speech: the header still says the whole length
    with pytest.raises(AvseError, match="1 of 4 scenes failed") as info:
        rd.render_scenes(corpus, "train", progress=False)
    assert str(bad) in str(info.value) and "truncated" in str(info.value)
    assert _scene_files(out, scenes[1]["scene"]) == []
    for s in (scenes[0], scenes[2], scenes[3]):
        assert len(_scene_files(out, s["scene"])) == 5  # 3 wavs, the mp4, the record
    # rendered once already, then the target is cut (here: rewritten shorter): the stale outputs go too
    bad2 = corpus / "train" / "targets" / f"{scenes[2]['target']['name']}.wav"
    sf.write(str(bad2), sf.read(str(bad2), dtype="int16")[0][:3000], SR, subtype="PCM_16")  # a valid, shorter file
    with pytest.raises(MediaError) as info:
        rd.render_scene(corpus, scenes[2], out)
    assert info.value.path == bad2 and "3000 samples" in str(info.value)
    assert _scene_files(out, scenes[2]["scene"]) == []


def test_truncated_interferer_fails_and_leaves_nothing(corpus, tmp_path):
    scene = sc.build_scenes(corpus, "train", n_scenes=1, seed=0, p_speech=0.0)[0]
    spec = scene["interferer"]
    path = corpus / "train" / "interferers" / spec["type"] / f"{spec['name']}.wav"
    out = tmp_path / "out"
    rd.render_scene(corpus, scene, out, with_video=False)
    # cut to 60%: the header says more than the file holds
    whole = path.read_bytes()
    _truncate(path, 0.6)
    with pytest.raises(MediaError, match="truncated") as info:
        rd.render_scene(corpus, scene, out, with_video=False)
    assert info.value.path == path
    assert _scene_files(out, scene["scene"]) == []
    # a valid file that ends inside the scene: never zero-padded
    x = np.frombuffer(whole[44:], "<i2")
    end = spec["offset"] + scene["duration"] // 2
    sf.write(str(path), x[:end], SR, subtype="PCM_16")
    with pytest.raises(MediaError, match="too short") as info:
        rd.render_scene(corpus, scene, out, with_video=False)
    assert info.value.path == path
    assert _scene_files(out, scene["scene"]) == []


def test_read_wav64_never_returns_a_short_read(tmp_path):
    x = (np.arange(1000) % 200 - 100).astype(np.int16)
    path = tmp_path / "a.wav"
    sf.write(str(path), x, SR, subtype="PCM_16")
    assert np.array_equal(wav16.read_wav64(path, 500, 500), x[500:] / 32768)
    with pytest.raises(MediaError, match="too short") as info:
        wav16.read_wav64(path, 500, 501)
    assert info.value.path == path
    with pytest.raises(MediaError, match="past the end"):
        wav16.read_wav64(path, 1000, 10)


@pytest.mark.parametrize("damage", ["truncated", "junk"])
def test_bad_target_video_leaves_no_wavs(corpus, damage):
    scenes = _build(corpus, n=3)
    _videos(corpus, scenes)
    bad = corpus / "train" / "targets_video" / f"{scenes[0]['target']['name']}.mp4"
    if damage == "truncated":
        _truncate(bad, 0.5)
    else:
        bad.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8).tobytes())
    out = corpus / "train" / "scenes"
    with pytest.raises(AvseError, match="1 of 3 scenes failed") as info:
        rd.render_scenes(corpus, "train", progress=False)
    assert str(bad) in str(info.value)
    assert _scene_files(out, scenes[0]["scene"]) == []
    assert all(len(_scene_files(out, s["scene"])) == 5 for s in scenes[1:])


# ---------------------------------------------------------------------------
# Resume: stale outputs are rendered again, interrupted runs resume cleanly
# ---------------------------------------------------------------------------


def test_rebuilt_scenes_are_rendered_again(corpus, tmp_path):
    _build(corpus, n=6)
    out = corpus / "train" / "scenes"
    assert rd.render_scenes(corpus, "train", progress=False, with_video=False)["rendered"] == 6
    old = _outputs(out)
    # `scenes build --seed 7`: the same scene names, other targets, offsets and SNRs
    new = sc.build_scenes(corpus, "train", n_scenes=4, seed=7)
    sc.write_scenes(corpus, "train", new)
    summary = rd.render_scenes(corpus, "train", progress=False, with_video=False)
    assert (summary["rendered"], summary["skipped"], summary["removed"]) == (4, 0, 2)  # S00005, S00006 are gone
    got = _outputs(out)
    assert got == _fresh(corpus, new, tmp_path / "fresh", with_video=False)
    assert all(got[k] != old[k] for k in got)
    assert sorted(p.name for p in (out / ".render").iterdir()) == [f"{s['scene']}.json" for s in new]
    assert rd.render_scenes(corpus, "train", progress=False, with_video=False)["skipped"] == 4


def test_other_options_render_again(corpus, tmp_path):
    scenes = _build(corpus, n=3)
    out = corpus / "train" / "scenes"
    rd.render_scenes(corpus, "train", progress=False, with_video=False)
    summary = rd.render_scenes(corpus, "train", normalization="peak", progress=False, with_video=False)
    assert (summary["rendered"], summary["skipped"]) == (3, 0)
    assert _outputs(out) == _fresh(corpus, scenes, tmp_path / "peak", normalization="peak", with_video=False)
    assert rd.scene_done(out, scenes[0], normalization="peak", with_video=False)
    assert not rd.scene_done(out, scenes[0], with_video=False)
    h = np.random.default_rng(3).standard_normal(16)
    opts = {"speech_weight": h, "normalization": "peak", "with_video": False}
    assert rd.render_scenes(corpus, "train", progress=False, **opts)["rendered"] == 3
    assert _outputs(out) == _fresh(corpus, scenes, tmp_path / "w", **opts)
    assert rd.render_scenes(corpus, "train", progress=False, **opts)["skipped"] == 3
    # a record that does not match (edited, or of another renderer) means: not done
    rec = rd.render_record_path(out, scenes[1]["scene"])
    rec.write_text(json.dumps({"scene": scenes[1]["scene"], "key": "0" * 64}))
    assert not rd.scene_done(out, scenes[1], **opts)
    rec.write_text("{not json")
    summary = rd.render_scenes(corpus, "train", progress=False, **opts)
    assert (summary["rendered"], summary["skipped"]) == (1, 2)


def test_leftover_part_files_are_removed_at_the_next_run(corpus):
    scenes = _build(corpus, n=4)
    out = corpus / "train" / "scenes"
    names = [s["scene"] for s in scenes]  # shard 0/2: scenes 0 and 2
    (out / ".render").mkdir(parents=True)
    ours = [
        out / f".{names[0]}_mixed.k3j_x9a2.part.wav",
        out / f"..{names[2]}_silent.aaaa1111.part.bbbb2222.part.mp4",  # copy_video_stream's temp of our temp
        out / ".render" / f".{names[0]}.zz99zz99.part.json",
    ]
    theirs = [
        out / f".{names[1]}_target.q1w2e3r4.part.wav",  # shard 1's, maybe being written right now
        out / ".render" / f".{names[3]}.q1w2e3r4.part.json",
        out / ".notes.abcdefgh.part.txt",
        out / "keep.part.wav",
    ]
    for p in ours + theirs:
        p.write_bytes(b"half written")
    assert rd.render_scenes(corpus, "train", shard="0/2", progress=False, with_video=False)["rendered"] == 2
    assert [p.exists() for p in ours] == [False] * 3
    assert [p.exists() for p in theirs] == [True] * 4  # another shard's, or not ours at all


def test_part_stem_and_remove_stale_parts(tmp_path):
    from avse.utils.fs import atomic_path
    from avse.utils.pool import part_stem, remove_stale_parts

    names = []
    with pytest.raises(KeyboardInterrupt):  # temp names as atomic_path makes them, nested as copy_video_stream does
        with atomic_path(tmp_path / "S00001_silent.mp4") as tmp, atomic_path(tmp) as inner:
            names += [tmp.name, inner.name]
            raise KeyboardInterrupt
    assert [part_stem(n) for n in names] == ["S00001_silent"] * 2
    assert part_stem("S00001_mixed.wav") is None and part_stem(".hidden.wav") is None
    assert part_stem(".scenes.train.abcd_123.part.json") == "scenes.train"
    for n in names + ["keep.wav", ".keep.wav"]:
        (tmp_path / n).write_bytes(b"x")
    assert remove_stale_parts(tmp_path, stems={"other"}) == []
    assert remove_stale_parts(tmp_path) == sorted(tmp_path / n for n in names)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".keep.wav", "keep.wav"]
    assert remove_stale_parts(tmp_path / "missing") == []


def test_interrupted_render_resumes_cleanly(corpus, tmp_path, monkeypatch):
    scenes = _build(corpus, n=5)
    out = corpus / "train" / "scenes"
    real, calls = rd.wav_bytes_int16, []

    def interrupt_in_scene_three(x, *a):
        calls.append(1)
        if len(calls) == 8:  # the 2nd wav of the 3rd scene: temp files are open
            raise KeyboardInterrupt
        return real(x, *a)

    monkeypatch.setattr(rd, "wav_bytes_int16", interrupt_in_scene_three)
    with pytest.raises(KeyboardInterrupt):
        rd.render_scenes(corpus, "train", progress=False, with_video=False)
    monkeypatch.setattr(rd, "wav_bytes_int16", real)
    assert [p.name for p in out.rglob(".*") if p.is_file()] == []  # no temp file left
    assert len(_outputs(out)) == 6  # two whole scenes, nothing of the third
    summary = rd.render_scenes(corpus, "train", progress=False, with_video=False)
    assert (summary["rendered"], summary["skipped"]) == (3, 2)
    assert _outputs(out) == _fresh(corpus, scenes, tmp_path / "fresh", with_video=False)


def test_pool_workers_ignore_ctrl_c():
    import signal

    from avse.utils.pool import worker_pool

    with worker_pool(2) as pool:
        handlers = pool.map(signal.getsignal, [signal.SIGINT] * 4)
    assert handlers == [signal.SIG_IGN] * 4
    assert signal.getsignal(signal.SIGINT) is not signal.SIG_IGN  # the parent still takes Ctrl-C


_CTRL_C_SCRIPT = """
import sys, time
from avse.data import render as rd
real = rd.wav_bytes_int16
def slow(x, *a):
    time.sleep(0.05)
    return real(x, *a)
rd.wav_bytes_int16 = slow  # the forked workers inherit it
rd.render_scenes(sys.argv[1], "train", jobs=2, progress=False, with_video=False)
"""


@pytest.mark.slow
def test_ctrl_c_with_a_pool_is_quiet_and_resumes(corpus, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    scenes = _build(corpus, n=40)
    out = corpus / "train" / "scenes"
    proc = subprocess.Popen(
        [sys.executable, "-c", _CTRL_C_SCRIPT, str(corpus)],
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while not (out / ".render").is_dir() or not any((out / ".render").iterdir()):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole process group
    _, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    # the parent's KeyboardInterrupt only: no "Process ForkPoolWorker-1: Traceback ..." per worker
    assert "PoolWorker" not in err and err.rstrip().endswith("KeyboardInterrupt"), err
    assert [p.name for p in out.rglob(".*") if p.is_file()] == []
    summary = rd.render_scenes(corpus, "train", jobs=2, progress=False, with_video=False)
    assert summary["rendered"] + summary["skipped"] == 40 and summary["rendered"] > 0
    assert _outputs(out) == _fresh(corpus, scenes, tmp_path / "fresh", with_video=False)


# ---------------------------------------------------------------------------
# Bad options and degenerate files
# ---------------------------------------------------------------------------


def test_junk_speech_weight_is_a_one_line_media_error(corpus, tmp_path):
    import scipy.io

    junk = tmp_path / "junk.mat"
    for content in (b"junk", b"hello world junk" * 20, b""):
        junk.write_bytes(content)
        with pytest.raises(MediaError, match="not a MATLAB .mat file with a 'filt' vector") as info:
            mx.load_speech_weight(junk)
        assert info.value.path == junk and "\n" not in str(info.value)
    for filt in ("abc", np.ones((3, 4))):
        scipy.io.savemat(str(tmp_path / "odd.mat"), {"filt": filt})
        with pytest.raises(MediaError, match="'filt'"):
            mx.load_speech_weight(tmp_path / "odd.mat")
    _build(corpus, n=1)
    with pytest.raises(MediaError, match="not a MATLAB"):
        rd.render_scenes(corpus, "train", speech_weight=junk, progress=False, with_video=False)


def test_measured_snr_of_silent_files(tmp_path):
    x = np.random.default_rng(0).standard_normal(4000) * 0.1
    paths = {}
    for name, sig in (("t", x), ("i", 0.5 * x), ("zero", np.zeros(4000)), ("short", x[:3999])):
        paths[name] = tmp_path / f"{name}.wav"
        sf.write(str(paths[name]), (sig * 32767).astype(np.int16), SR, subtype="PCM_16")
    assert abs(rd.measured_snr(paths["t"], paths["i"]) - 20 * math.log10(2)) < 0.01  # int16 rounding
    assert rd.measured_snr(paths["t"], paths["zero"]) == math.inf
    assert rd.measured_snr(paths["zero"], paths["i"]) == -math.inf
    with pytest.raises(MediaError, match="both silent"):
        rd.measured_snr(paths["zero"], paths["zero"])
    with pytest.raises(MediaError, match="3999 samples"):
        rd.measured_snr(paths["t"], paths["short"])


# ---------------------------------------------------------------------------
# Video: the silent mp4 is a stream copy of the target video's video
# ---------------------------------------------------------------------------


def _videos(corpus: Path, scenes: list[dict], frames: int = 10) -> None:
    """A tiny H.264 + AAC target video for every target of ``scenes``."""
    from avse.video.io import write_video

    for name in sorted({s["target"]["name"] for s in scenes}):
        k = int(name[-2:]) if name[-2:].isdigit() else 0
        img = np.stack([np.full((32, 32, 3), (9 * f + 40 * k) % 255, np.uint8) for f in range(frames)])
        audio = np.zeros(frames * 640, np.float32)
        write_video(corpus / "train" / "targets_video" / f"{name}.mp4", img, audio=audio, preset="ultrafast")


def _video_packets(path: Path) -> list[tuple[int | None, bytes]]:
    import av

    with av.open(str(path)) as c:
        return [(p.pts, bytes(p)) for p in c.demux(c.streams.video[0]) if p.size]


def test_render_writes_silent_video(corpus):
    import av

    scenes = _build(corpus, n=3)
    _videos(corpus, scenes)
    summary = rd.render_scenes(corpus, "train", progress=False)
    assert summary["rendered"] == 3
    out = corpus / "train" / "scenes"
    for s in scenes:
        src = corpus / "train" / "targets_video" / f"{s['target']['name']}.mp4"
        mp4 = out / f"{s['scene']}_silent.mp4"
        with av.open(str(src)) as c:
            assert len(c.streams.audio) == 1  # the source has sound
        with av.open(str(mp4)) as c:
            assert len(c.streams.audio) == 0 and len(c.streams.video) == 1
            assert sum(1 for _ in c.decode(video=0)) == 10
        copied, source = _video_packets(mp4), _video_packets(src)
        assert len(copied) == 10 and copied == source  # the same compressed bytes at the same times
    # the audio-only outputs alone do not count as done when video is asked for
    (out / f"{scenes[0]['scene']}_silent.mp4").unlink()
    assert rd.render_scenes(corpus, "train", progress=False)["rendered"] == 1
    # and a render with video does not count as one without
    assert rd.render_scenes(corpus, "train", progress=False, with_video=False)["rendered"] == 3
