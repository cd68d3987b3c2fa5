"""avse.api and avse.inference: model names, input edges, chunking maths, gain matching, fallbacks, feature alignment."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from avse.api import Enhancer, Separator, levels_line, load_model, model_path, one_voice_line, output_levels_db, to_mono
from avse.errors import ConfigError, MediaError, NoFaceError
from avse.evaluation.metrics import si_sdr
from avse.inference import (
    InferenceConfig,
    best_permutation,
    chunk_gains,
    chunk_spans,
    chunk_window,
    fit_frames,
    ls_gains,
    model_fn,
    postfilter,
    run_chunked,
    run_shifted,
)
from avse.models import build_model, save_checkpoint
from avse.models.base import SeparationModel
from avse.models.registry import make_config

TINY_AUDIO = dict(n_filters=16, kernel_size=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1)
TINY_AV = dict(TINY_AUDIO, fusion_block=1, visual_hidden=8)
TINY = {
    "av": ("avnet", TINY_AV),
    "av_causal": ("avnet", dict(TINY_AV, causal=True)),
    "audio": ("tasnet", dict(TINY_AUDIO, n_sources=1)),
    "separate": ("tasnet", dict(TINY_AUDIO, n_sources=2)),
}


def make_checkpoints(folder: Path, seed: int = 0) -> dict[str, Path]:
    """Tiny random models saved as avse checkpoints: folder/{av,av_causal,audio,separate}.avse.pt."""
    torch.manual_seed(seed)
    paths = {}
    for name, (kind, cfg) in TINY.items():
        paths[name] = save_checkpoint(folder / f"{name}.avse.pt", build_model(kind, cfg), kind, make_config(kind, cfg))
    return paths


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory) -> dict[str, Path]:
    return make_checkpoints(tmp_path_factory.mktemp("ckpt"))


def speechlike(n: int, seed: int = 0) -> np.ndarray:
    """float32 [n]: noise under a slow random envelope (syllable-like bursts), peak about 0.5."""
    rng = np.random.default_rng(seed)
    env = np.repeat(rng.uniform(0.05, 1.0, n // 1600 + 1), 1600)[:n]
    x = rng.standard_normal(n) * env
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


def features(n_frames: int, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n_frames, 82)).astype(np.float32)


def snr_db(ref: np.ndarray, x: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref.astype(np.float64) ** 2) / np.sum((ref.astype(np.float64) - x) ** 2)))


# --------------------------------------------------------------------------- names and loading


def test_shipped_names_resolve_and_a_missing_file_says_how_to_train(tmp_path, monkeypatch, ckpts):
    import avse.api

    monkeypatch.setattr(avse.api, "PRETRAINED_DIR", tmp_path)
    with pytest.raises(ConfigError) as err:
        model_path("av-causal")
    msg = str(err.value)
    assert "av_causal.avse.pt" in msg and "avse train configs/pretrained/av_causal.yaml" in msg
    (tmp_path / "av.avse.pt").write_bytes(ckpts["av"].read_bytes())
    model, info = load_model("av")
    assert info["name"] == "av" and info["path"] == str(tmp_path / "av.avse.pt")
    assert info["audio_visual"] and info["n_outputs"] == 1 and info["model"] == "avnet" and not model.training


def test_unknown_name_and_missing_path(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'avv'.*av, av-causal, audio, separate"):
        model_path("avv")
    with pytest.raises(MediaError, match="no such checkpoint"):
        load_model(tmp_path / "nothere.avse.pt")


def test_load_model_by_path_describes_outputs(ckpts):
    _, info = load_model(ckpts["separate"])
    assert not info["audio_visual"] and info["n_outputs"] == 2 and info["sample_rate"] == 16000


def test_enhancer_refuses_a_two_output_model(ckpts):
    with pytest.raises(ConfigError, match="Separator"):
        Enhancer(ckpts["separate"])


# --------------------------------------------------------------------------- input edges


def test_to_mono_layouts_and_integer_pcm():
    x = np.random.default_rng(0).standard_normal((2, 100)).astype(np.float32)
    mono = x.mean(axis=0)
    np.testing.assert_allclose(to_mono(x), mono, atol=1e-7)  # [C, T]
    np.testing.assert_allclose(to_mono(x.T), mono, atol=1e-7)  # [T, C]
    np.testing.assert_array_equal(to_mono(np.array([-32768, 0, 16384], np.int16)), np.array([-1.0, 0.0, 0.5], np.float32))
    for bad in (np.zeros(0), np.array([0.0, np.nan]), np.zeros((2, 2, 2)), np.array(["a"])):
        with pytest.raises(ConfigError):
            to_mono(bad)


def test_stereo_is_enhanced_as_its_mono_mix(ckpts):
    enh = Enhancer(ckpts["audio"])
    left, right = speechlike(8000, 1), speechlike(8000, 2)
    np.testing.assert_allclose(enh.enhance(np.stack([left, right], 1), 16000), enh.enhance((left + right) / 2, 16000), atol=1e-6)


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_any_sample_rate_comes_back_at_that_rate_and_length(ckpts, sr):
    n = int(1.37 * sr)
    y = Enhancer(ckpts["audio"]).enhance(speechlike(n), sr)
    assert y.shape == (n,) and y.dtype == np.float32 and np.all(np.isfinite(y)) and np.max(np.abs(y)) <= 1.0


class _Triple(SeparationModel):
    """An "enhancer" that returns three times its input: [B, T] -> [B, 1, T]."""

    n_outputs = 1

    def forward(self, mixture):
        return 3.0 * mixture[:, None]


def test_output_is_clip_protected_and_says_so():
    x = 0.5 * speechlike(16000) / np.max(np.abs(speechlike(16000)))  # peak 0.5, so 3x peaks at 1.5
    enh = Enhancer(_Triple(), config=InferenceConfig(match_gain=False), atten_lim_db=None)
    y = enh.enhance(x, 16000)
    assert enh.last_info["clip_gain"] == pytest.approx(1 / 1.5, abs=1e-4)  # reported to 4 decimals
    assert np.max(np.abs(y)) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(y, 2.0 * x, rtol=0, atol=1e-5)  # 3x, scaled by 1/1.5, not clipped


def test_a_module_without_the_model_interface_is_refused():
    with pytest.raises(ConfigError, match="not an avse model"):
        Enhancer(torch.nn.Identity())


# --------------------------------------------------------------------------- chunking maths


def test_chunk_spans_sit_on_the_frame_grid_and_cover_the_input():
    assert chunk_spans(1000, 6400, 640) == [(0, 1000)]
    spans = chunk_spans(20_000, 6400, 1280)
    assert spans == [(0, 6400), (5120, 11520), (10240, 16640), (15360, 20000)]
    assert all(s % 640 == 0 for s, _ in spans)
    total = np.zeros(20_000)
    for k, (s, e) in enumerate(spans):
        total[s:e] += chunk_window(spans, k)
    np.testing.assert_allclose(total, 1.0, atol=1e-12)  # the crossfade weights add up to one everywhere
    with pytest.raises(ConfigError):
        chunk_spans(100, 640, 640)  # overlap more than half the chunk


def test_inference_config_rounds_to_frames_and_checks():
    cfg = InferenceConfig(chunk_seconds=1.01, overlap_seconds=0.25)
    assert (cfg.chunk_samples, cfg.overlap_samples) == (25 * 640, 6 * 640)
    for bad in (dict(chunk_seconds=0.01), dict(chunk_seconds=2, overlap_seconds=1.5), dict(max_gain_ratio=0.5)):
        with pytest.raises(ConfigError):
            InferenceConfig(**bad)


def test_ls_gain_exact_values():
    mix = np.array([1.0, 2.0, -1.0, 0.5])
    est = np.stack([2 * mix, np.zeros(4), np.array([1.0, 0.0, 0.0, 0.0])])
    np.testing.assert_allclose(ls_gains(mix, est), [0.5, 0.0, 1.0])


def test_chunk_gains_are_bounded_by_the_whole_input_gain():
    num = np.array([[1.0], [1.0], [0.2]])
    den = np.array([[1.0], [1.0], [0.01]])  # chunk 2 alone would get gain 20
    g = chunk_gains(num, den, n_samples=100, max_ratio=2.0)
    whole = 2.2 / 2.01
    np.testing.assert_allclose(g[:, 0], [1.0, 1.0, 2 * whole])


def test_fit_frames_repeats_the_edge_then_zeros():
    f = np.arange(6, dtype=np.float32).reshape(3, 2)
    out = fit_frames(f, 7)
    np.testing.assert_array_equal(out[:5], [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]])
    np.testing.assert_array_equal(out[5:], 0)
    np.testing.assert_array_equal(fit_frames(f, 2), f[:2])


def test_arbitrary_chunk_gains_leave_no_level_jump():
    """A 'model' that returns the mixture at a different gain per chunk comes back exactly as the mixture."""
    gains = itertools.cycle([0.7, 1.4, 1.0, 0.8, 1.25])  # within the 6 dB bound around the whole-input gain
    x = speechlike(5 * 16000)

    def fn(mix, vis):
        return (next(gains) * mix)[None]

    cfg = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.3)
    out, n = run_chunked(fn, x, config=cfg)
    assert n == 7
    np.testing.assert_allclose(out[0], x, atol=1e-5)
    # and no step in level at any chunk start: 10 ms frame energies match the input's
    e_in = np.sum(x[:79_840].reshape(-1, 160) ** 2, 1)
    e_out = np.sum(out[0][:79_840].reshape(-1, 160) ** 2, 1)
    np.testing.assert_allclose(e_out, e_in, rtol=1e-3, atol=1e-9)


def test_a_silent_talker_chunk_is_not_scaled_up_to_the_noise():
    """The estimate of a noise-only chunk is mostly suppressed residue: its own LS gain (20) would undo that."""
    rng = np.random.default_rng(0)
    n = 16000
    noise = (0.05 * rng.standard_normal(3 * n)).astype(np.float32)
    talker = np.concatenate([speechlike(2 * n), np.zeros(n, np.float32)])
    mix = talker + noise

    cfg = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.0)
    spans = iter(chunk_spans(3 * n, cfg.chunk_samples, cfg.overlap_samples))

    def fn(m, vis):  # a good model at unit gain: the talker plus 5 % of the noise
        s, e = next(spans)
        return (talker[s:e] + 0.05 * noise[s:e])[None]

    out, _ = run_chunked(fn, mix, config=cfg)
    tail = out[0][2 * n :]  # the noise-only second
    assert np.std(tail) < 0.15 * np.std(noise[2 * n :])
    assert abs(np.std(out[0][:n]) / np.std(talker[:n]) - 1) < 0.1  # the talker stays at their level


def test_blind_sources_keep_their_order_across_chunks():
    rng = np.random.default_rng(0)
    a, b = speechlike(4 * 16000, 3), speechlike(4 * 16000, 4)
    mix = a + b
    swaps = iter([False, True, True, False, True, False, True])
    cfg = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4)
    spans = iter(chunk_spans(len(mix), cfg.chunk_samples, cfg.overlap_samples))

    def fn(m, vis):
        s, e = next(spans)
        src = np.stack([b[s:e], a[s:e]] if next(swaps) else [a[s:e], b[s:e]])
        return src * rng.uniform(0.75, 1.35, (2, 1))  # arbitrary output gains too (within the 6 dB bound)

    out, n = run_chunked(fn, mix, config=cfg, align=True)
    assert n == 6
    for s in range(0, len(mix), 3200):  # every 0.2 s: output 0 is a, output 1 is b, at their levels (a few %)
        for got, want in ((out[0], a), (out[1], b)):
            seg, ref = got[s : s + 3200], want[s : s + 3200]
            assert np.dot(seg, ref) / (np.linalg.norm(seg) * np.linalg.norm(ref)) > 0.999
            assert abs(np.linalg.norm(seg) / np.linalg.norm(ref) - 1) < 0.05


def test_best_permutation_picks_the_correlated_order():
    x = np.random.default_rng(0).standard_normal((3, 500))
    assert best_permutation(x, x[[2, 0, 1]]) == (1, 2, 0)
    assert best_permutation(np.zeros((2, 10)), np.zeros((2, 10))) == (0, 1)  # silence: keep the order


# --------------------------------------------------------------------------- whole vs chunked


def test_one_chunk_is_the_model_with_its_least_squares_gain(ckpts):
    x, f = speechlike(32000), features(50)
    enh = Enhancer(ckpts["av"], atten_lim_db=None, shifts=1)  # the model's estimate as it is, one run
    y = enh.enhance(x, 16000, video=f)
    raw = model_fn(enh.model)(x, f)[0]
    g = float(np.dot(x, raw) / np.dot(raw, raw))
    np.testing.assert_allclose(y, g * raw, atol=1e-5)
    assert enh.last_info["mode"] == "audio-visual" and enh.last_info["chunks"] == 1


@pytest.mark.parametrize("name", ["av", "av_causal", "audio"])
def test_chunked_agrees_with_whole_on_a_short_input(ckpts, name):
    """3 s in one chunk vs 1 s chunks: raw estimates agree to > 27 dB (here about 32 dB).

    What differs is only what the models see: less context at chunk edges, normalisation statistics
    per chunk. With these (large) features, lips slipped by one frame would give about 20 dB.
    """
    x, f = speechlike(48000), 10 * features(75)
    raw = InferenceConfig(match_gain=False)
    whole = Enhancer(ckpts[name], config=raw).enhance(x, 16000, video=f)
    chunked_cfg = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4, match_gain=False)
    chunked = Enhancer(ckpts[name], config=chunked_cfg).enhance(x, 16000, video=f)
    assert snr_db(whole, chunked) > 27.0


def test_causal_feature_change_at_frame_f_moves_outputs_from_sample_640f_only(ckpts):
    """Lip frame f covers samples 640 f .. 640 f + 639: a causal model's output before that cannot change."""
    x, f = speechlike(48000), features(75)
    cfg = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.2, match_gain=False)  # chunks start at frames 0, 20, 40, 60
    enh = Enhancer(ckpts["av_causal"], config=cfg, shifts=1)  # one run: shifted runs place their chunks elsewhere
    base = enh.enhance(x, 16000, video=f)
    for frame in (7, 32, 41):
        g = f.copy()
        g[frame] += 5.0
        moved = enh.enhance(x, 16000, video=g)
        changed = np.flatnonzero(np.abs(moved - base) > 1e-6)
        start = 640 * frame
        assert changed.size and start - 16 <= changed[0] < start + 640, (frame, changed[:3])


# --------------------------------------------------------------------------- fallbacks


def test_no_video_uses_the_audio_only_fallback_and_says_so(ckpts):
    x = speechlike(16000)
    enh = Enhancer(ckpts["av"], fallback=ckpts["audio"])
    y = enh.enhance(x, 16000)
    assert enh.last_info["mode"] == "audio-only" and "no video" in enh.last_info["reason"]
    assert enh.last_info["model"] == str(ckpts["audio"])
    np.testing.assert_allclose(y, Enhancer(ckpts["audio"]).enhance(x, 16000), atol=1e-6)


def test_without_fallback_the_av_model_gets_a_blank_visual_stream(ckpts):
    x = speechlike(16000)
    enh = Enhancer(ckpts["av"], fallback=None)
    y = enh.enhance(x, 16000)
    assert enh.last_info["mode"] == "audio-only" and "blank visual stream" in enh.last_info["reason"]
    np.testing.assert_allclose(y, enh.enhance(x, 16000, video=np.zeros((25, 82), np.float32)), atol=1e-6)


def test_mostly_missing_lips_fall_back(ckpts):
    f = features(25)
    f[5:20] = np.nan  # 60 % of the frames without a face
    enh = Enhancer(ckpts["av"], fallback=ckpts["audio"])
    enh.enhance(speechlike(16000), 16000, video=f)
    assert enh.last_info["mode"] == "audio-only" and "40%" in enh.last_info["reason"]
    f[5:20] = 0.0
    f[5:10] = np.nan  # 20 % missing: used, the gaps as "no video" frames
    enh.enhance(speechlike(16000), 16000, video=f)
    assert enh.last_info["mode"] == "audio-visual" and enh.last_info["face_coverage"] == 0.8


def test_a_front_end_result_is_used_by_its_detection_flags(ckpts):
    from avse.video.frontend import FrontEndResult

    flags = np.zeros(25, np.uint8)
    result = FrontEndResult({"flags": flags}, np.zeros((25, 96, 96), np.uint8), features(25), None, (float("nan"), 0.0, False),
                            {"track": 0, "choice": "only", "n_tracks": 1})
    enh = Enhancer(ckpts["av"], fallback=ckpts["audio"])
    x = speechlike(16000)
    y = enh.enhance(x, 16000, video=result)
    assert enh.last_info["mode"] == "audio-visual" and enh.last_info["face"] == {"track": 0, "choice": "only", "n_tracks": 1}
    np.testing.assert_array_equal(y, enh.enhance(x, 16000, video=result.features))
    flags[:15] = 1  # interpolated on 60 % of the frames
    enh.enhance(x, 16000, video=result)
    assert enh.last_info["mode"] == "audio-only" and "only 40%" in enh.last_info["reason"]


def test_wrong_feature_shape_is_an_error(ckpts):
    with pytest.raises(ConfigError, match=r"\[F, 82\]"):
        Enhancer(ckpts["av"]).enhance(speechlike(16000), 16000, video=np.zeros((25, 40)))


@pytest.fixture(scope="module")
def blank_video(tmp_path_factory) -> Path:
    from avse.video.io import write_video

    path = tmp_path_factory.mktemp("blank") / "blank.mp4"
    write_video(path, np.full((25, 64, 64, 3), 128, np.uint8), audio=speechlike(16000), preset="ultrafast")
    return path


def _need_mediapipe() -> None:
    from avse.video.detect import mediapipe_available

    if not mediapipe_available():
        pytest.skip("MediaPipe is not installed")


def test_video_without_a_face_falls_back(ckpts, blank_video):
    _need_mediapipe()
    enh = Enhancer(ckpts["av"], fallback=ckpts["audio"])
    y = enh.enhance(speechlike(16000), 16000, video=blank_video)
    assert y.shape == (16000,)
    assert enh.last_info["mode"] == "audio-only" and "no face" in enh.last_info["reason"]


# --------------------------------------------------------------------------- separation


def test_separator_blind_outputs_and_info(ckpts):
    sep = Separator(ckpts["separate"], av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=False,
                    shifts=1)
    y = sep.separate(speechlike(40000), 16000)
    assert y.shape == (2, 40000) and y.dtype == np.float32
    assert sep.last_info["mode"] == "blind" and sep.last_info["names"] == ["source0", "source1"]
    assert sep.last_info["chunks"] == 4
    x = speechlike(40000)
    levels = [10 * np.log10(np.mean(o.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2)) for o in y]
    np.testing.assert_allclose(sep.last_info["levels_db"], levels, atol=0.06)


def test_outputs_that_add_up_to_the_input_keep_their_levels():
    """A separator with mixture consistency gives one voice whole and a near-silent output: no gain lifts that one."""
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class OneVoice(ConvTasNet):
        def forward(self, mixture):  # [B, T] -> [B, 2, T]: most of it, and a part 16.5 dB down
            return torch.stack([0.85 * mixture, 0.15 * mixture], 1)

    x = speechlike(40000)
    config = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4)
    for output, second_db in (("consistent", -16.5), ("direct", 0.0)):
        model = OneVoice(TasNetConfig(**TINY_AUDIO, n_sources=2, output=output))
        sep = Separator(model, av=None, config=config, overlap=False)
        y = sep.separate(x, 16000)
        assert sep.last_info["levels_db"][1] == pytest.approx(second_db, abs=0.2), output  # "direct": fitted onto the mixture
        total = {"consistent": x, "direct": 2 * x}[output]  # without consistency both are lifted to the input's level
        np.testing.assert_allclose(y[0] + y[1], total, atol=1e-3)
        assert "one_voice" not in sep.last_info


def test_a_trace_split_off_one_voice_goes_back_to_it():
    """No faces: a blind output 20 dB or more under the input is bits of the one voice, given back to the other."""
    from avse.api import ONE_VOICE_BLIND_DB
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class Split(ConvTasNet):
        share = 0.05  # of the input's amplitude in the second output

        def forward(self, mixture):
            return torch.stack([(1 - self.share) * mixture, self.share * mixture], 1)

    x = speechlike(40000)
    model = Split(TasNetConfig(**TINY_AUDIO, n_sources=2, output="consistent"))
    sep = Separator(model, av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=False)
    y = sep.separate(x, 16000)  # the trace is 26 dB down
    assert 20 * np.log10(Split.share) <= ONE_VOICE_BLIND_DB and sep.last_info["one_voice"] == "source0"
    np.testing.assert_allclose(y[0], x, atol=1e-4)
    assert not y[1].any() and sep.last_info["levels_db"] == [0.0, -120.0]
    Split.share = 0.15  # 16.5 dB down: it may be a quiet second talker, kept
    y = sep.separate(x, 16000)
    assert "one_voice" not in sep.last_info and sep.last_info["levels_db"][1] == pytest.approx(-16.5, abs=0.2)


class FixedOverlap(torch.nn.Module):
    """An overlap detector that hears two voices on a fixed share of the frames (the first ones)."""

    def __init__(self, share: float):
        super().__init__()
        self.share, self.calls = share, 0

    def frame_probs(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        n = len(audio) // 160 + 1
        return (np.arange(n) < self.share * n).astype(np.float32)


def share_split(share: float, swap: bool = False) -> torch.nn.Module:
    """A blind two-output model that gives its first output (1 - share) of the input and its second ``share`` of it
    (the other way round with ``swap``): one voice split at a known level, the outputs adding up to the input."""
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class Split(ConvTasNet):
        def forward(self, mixture):
            parts = [(1 - share) * mixture, share * mixture]
            return torch.stack(parts[::-1] if swap else parts, 1)

    return Split(TasNetConfig(**TINY_AUDIO, n_sources=2, output="consistent"))


def test_shifted_runs_are_put_back_in_place_and_order_before_they_are_averaged():
    """A model that splits the input into its positive and negative halves but swaps its outputs on every other
    call: every shifted run, its delay cut and its outputs put in the first run's order, gives the same split, so
    the average is that split exactly."""
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class Flipping(ConvTasNet):
        calls = 0

        def forward(self, mixture):
            Flipping.calls += 1
            parts = [mixture.clamp(min=0), mixture.clamp(max=0)]
            return torch.stack(parts[::-1] if Flipping.calls % 2 else parts, 1)

    x = speechlike(40000)
    halves = np.stack([np.maximum(x, 0), np.minimum(x, 0)])
    config = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4)
    model = Flipping(TasNetConfig(**TINY_AUDIO, n_sources=2, output="consistent"))
    once = Separator(model, av=None, config=config, shifts=1).blind_outputs(x)[0]
    Flipping.calls = 0
    four = Separator(model, av=None, config=config, shifts=4).blind_outputs(x)[0]
    assert Flipping.calls > 4 * 3  # four runs of several chunks each
    assert four.shape == once.shape == (2, len(x))
    assert np.allclose(four, once, atol=1e-5)
    assert np.allclose(four, halves, atol=1e-5) or np.allclose(four, halves[::-1], atol=1e-5)
    seen: list[float] = []  # a progress callable counts the chunks of every run, once through
    Separator(model, av=None, config=config, shifts=3, progress=lambda d, t: seen.append(d / t)).blind_outputs(x)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:]))
    assert sum(f in (1 / 3, 2 / 3) for f in seen) >= 2


def test_shifted_runs_reuse_a_first_run_given_to_them():
    """run_shifted(first=run 0's result) gives what it would have made itself, without running run 0 again and without
    changing the array it was given; a progress callable then counts from the second run on."""
    def fn(audio, feats):  # [L] -> [2, L]: the second output depends on where the chunk starts
        return np.stack([0.5 * audio, np.cumsum(audio) * 1e-3]).astype(np.float32)

    calls: list[int] = []

    def counted(audio, feats):
        calls.append(len(audio))
        return fn(audio, feats)

    x = speechlike(40000)
    config = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4)
    whole, chunks = run_shifted(fn, x, None, config, align=True, shifts=3)
    first = run_chunked(fn, x, None, config, align=True)
    kept = first[0].copy()
    seen: list[float] = []
    again, again_chunks = run_shifted(counted, x, None, config, align=True, shifts=3, first=first,
                                      progress=lambda d, t: seen.append(d / t))
    np.testing.assert_allclose(again, whole, atol=1e-6)
    assert again_chunks == chunks == first[1] and again.dtype == np.float32
    np.testing.assert_array_equal(first[0], kept)  # the caller's array is left as it was
    assert 2 * chunks <= len(calls) < 3 * chunks  # runs 1 and 2 only (run 0 was given)
    assert seen[0] > 1 / 3 - 1e-9 and seen[-1] == 1.0 and all(b >= a for a, b in zip(seen, seen[1:]))


def test_shifted_runs_outvote_an_error_tied_to_where_the_model_is_run():
    """A model that puts a click into its first output at the start of every chunk it is given (and takes it from
    the second, so they still add up to the input): averaged over shifted runs the clicks fall elsewhere each time
    and shrink; the outputs keep adding up to the input."""
    from avse.models.tasnet import ConvTasNet, TasNetConfig

    class Clicking(ConvTasNet):
        def forward(self, mixture):
            click = torch.zeros_like(mixture)
            click[:, :50] = 0.5
            return torch.stack([0.5 * mixture + click, 0.5 * mixture - click], 1)

    x = speechlike(48000)
    config = InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4)
    model = Clicking(TasNetConfig(**TINY_AUDIO, n_sources=2, output="consistent"))
    errors = []
    for shifts in (1, 4):
        out = Separator(model, av=None, config=config, shifts=shifts).blind_outputs(x, align=False)[0]
        assert np.allclose(out.sum(axis=0), x, atol=1e-4)
        errors.append(np.max(np.abs(out[0] - 0.5 * x)))
    assert errors[1] < 0.5 * errors[0]
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ConfigError):
            Separator(model, av=None, shifts=bad)


def test_shifted_runs_move_the_lips_with_the_audio():
    """A model that passes the audio where the lips say "open" (1) and silences it where they say "shut" (0), in
    blocks of 10 frames: each shifted run delays the lips by the nearest whole frames with the audio, so the average
    keeps the one run's gating but within half a frame of each block's edges. Lips left where they were would gate
    the wrong 4.7 frames of every block in the third run."""

    def gate(audio: np.ndarray, feats: np.ndarray | None) -> np.ndarray:
        assert feats is not None
        mask = np.repeat(feats[:, 0], 640)[: len(audio)]
        return (audio * np.pad(mask, (0, len(audio) - len(mask))))[None]

    x = speechlike(64000)
    lips = ((np.arange(100) // 10) % 2 == 0).astype(np.float32)[:, None]  # [100, 1]
    config = InferenceConfig(chunk_seconds=1.6, overlap_seconds=0.4)
    once = run_chunked(gate, x, lips, config)[0][0]
    four = run_shifted(gate, x, lips, config, shifts=4)[0][0]
    assert four.shape == once.shape == x.shape
    edges = np.zeros(len(x), bool)
    for f in range(10, 100, 10):
        edges[max(0, 640 * f - 320) : 640 * f + 320] = True
    np.testing.assert_allclose(four[~edges], once[~edges], atol=1e-5)
    stale = run_chunked(gate, np.concatenate([np.zeros(3009, np.float32), x]), lips, config)[0][0][3009:]
    assert np.abs(stale - once).max() > 0.1  # the check above can fail
    with pytest.raises(ConfigError, match="shifts must be"):
        run_shifted(gate, x, lips, config, shifts=0)


@pytest.mark.parametrize("share_db, heard, whole", [
    (-16.5, 0.02, True),   # 10-20 dB down and no voices at once: a lone voice, split
    (-16.5, 0.40, False),  # two voices at once: a quiet second talker, kept
    (-8.0, 0.0, False),    # well above 10 dB down: two talkers (e.g. taking turns), the detector is not asked
    (-26.0, 0.9, True),    # 20 dB or more down: one voice whatever the detector says
])
@pytest.mark.parametrize("loud", [0, 1])
def test_the_overlap_detector_tells_a_split_voice_from_a_quiet_second_talker(share_db, heard, whole, loud):
    x = speechlike(40000)
    det = FixedOverlap(heard)
    model = share_split(10 ** (share_db / 20), swap=loud != 0)
    sep = Separator(model, av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=det,
                    speaker=False)
    y = sep.separate(x, 16000)
    assert (sep.last_info.get("one_voice") == f"source{loud}") is whole  # the whole input goes to the louder output
    assert ("one_voice" in sep.last_info) is whole
    assert det.calls == (1 if -20 < share_db <= -10 else 0)
    if det.calls:
        assert sep.last_info["overlap_share"] == pytest.approx(heard, abs=0.02)
    if whole:
        np.testing.assert_allclose(y[loud], x, atol=1e-4)
        assert not y[1 - loud].any()
    else:
        np.testing.assert_allclose(y[0] + y[1], x, atol=1e-3)
        assert np.sqrt(np.mean(y[loud] ** 2)) > np.sqrt(np.mean(y[1 - loud] ** 2))
    off = Separator(model, av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=False)
    off.separate(x, 16000)
    assert (off.last_info.get("one_voice") == f"source{loud}") is (share_db <= -20)


class FixedSpeaker(torch.nn.Module):
    """A speaker encoder whose two embeddings (first call, second call, ...) have a fixed cosine ``sim``; its stored
    same-voice threshold is 0.5."""

    def __init__(self, sim: float):
        super().__init__()
        self.vectors = [np.array([1.0, 0.0]), np.array([sim, np.sqrt(1 - sim**2)])]
        self.calls = 0
        self.extra = {"val": {"threshold": 0.5}}

    def embed(self, audio: np.ndarray) -> np.ndarray:
        self.calls += 1
        return self.vectors[(self.calls - 1) % 2]


@pytest.mark.parametrize("share_db, heard, sim, whole", [
    (-8.0, 0.02, 0.9, True),    # no voices at once, the same voice in both outputs: one voice split, at any level
    (-8.0, 0.02, 0.1, False),   # no voices at once, two voices: two talkers taking turns
    (-8.0, 0.40, 0.9, False),   # two voices at once: the encoder is not asked
    (-16.5, 0.02, 0.1, False),  # 10-20 dB down, two voices: a quiet second talker who takes turns, kept
    (-16.5, 0.02, 0.9, True),
    (-26.0, 0.9, 0.1, True),    # 20 dB or more down: one voice whatever the detector and the encoder say
])
def test_the_speaker_encoder_tells_a_split_voice_from_talkers_taking_turns(share_db, heard, sim, whole, monkeypatch):
    import avse.api
    monkeypatch.setattr(avse.api, "ONE_VOICE_SPEAKER_BY", "outputs")  # the rule that compares the two outputs

    x = speechlike(40000)
    model = share_split(10 ** (share_db / 20))
    det, enc = FixedOverlap(heard), FixedSpeaker(sim)
    sep = Separator(model, av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=det, speaker=enc)
    y = sep.separate(x, 16000)
    assert (sep.last_info.get("one_voice") == "source0") is whole
    asked = share_db > -20 and heard < 0.1
    assert enc.calls == (2 if asked else 0)
    assert ("speaker_similarity" in sep.last_info) is asked
    if asked:
        assert sep.last_info["speaker_similarity"] == pytest.approx(sim, abs=1e-3)
    if whole:
        np.testing.assert_allclose(y[0], x, atol=1e-4)
        assert not y[1].any()
        if asked:
            assert "same voice in both outputs (similarity" in one_voice_line(sep.last_info)
    if asked:
        assert sep.last_info["same_speaker"] is (sim >= 0.5)
    # the quiet output merged by level alone when the encoder does not gate it
    monkeypatch.setattr(avse.api, "ONE_VOICE_SPEAKER_GATES_QUIET", False)
    sep.separate(x, 16000)
    assert ("one_voice" in sep.last_info) is (whole or (share_db <= -10 and heard < 0.1))
    if "one_voice" in sep.last_info and asked and sim < 0.5:  # merged by level: the line does not claim one voice
        line = one_voice_line(sep.last_info)
        assert "same voice" not in line and "voice similarity 0.10, under the same-voice threshold" in line
    # a fixed threshold above the similarity keeps them apart
    monkeypatch.setattr(avse.api, "ONE_VOICE_SAME_SPEAKER", 0.95)
    sep.separate(x, 16000)
    assert ("one_voice" in sep.last_info) is (share_db <= -10 and (share_db <= -20 or heard < 0.1))


class BandSpeaker(torch.nn.Module):
    """A speaker encoder that tells two "voices" apart by where their energy lies: the unit vector of the energy under
    and over 2 kHz; its stored turn threshold is 0.9."""

    def __init__(self, extra: dict | None = None):
        super().__init__()
        self.extra = {"val": {"turn_threshold": 0.9}} if extra is None else extra

    def embed(self, audio: np.ndarray) -> np.ndarray:
        spec = np.abs(np.fft.rfft(audio)) ** 2
        low, high = spec[: len(spec) // 4].sum(), spec[len(spec) // 4 :].sum()
        v = np.array([low, high])
        return (v / np.linalg.norm(v)).astype(np.float32)


def band_voice(n: int, high: bool, seed: int = 0) -> np.ndarray:
    """speechlike noise [n] kept under 2 kHz (``high`` False) or over it."""
    x = speechlike(n, seed)
    spec = np.fft.rfft(x)
    cut = len(spec) // 4
    spec[cut:] = 0 if not high else spec[cut:]
    spec[:cut] = spec[:cut] if not high else 0
    y = np.fft.irfft(spec, n)
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


@pytest.mark.parametrize("share_db, heard, turns, seconds, whole", [
    (-8.0, 0.02, False, 6.0, True),    # one voice throughout the input: split, merged at any level
    (-8.0, 0.02, True, 6.0, False),    # two voices take turns: kept apart
    (-8.0, 0.40, False, 6.0, False),   # two voices at once: the encoder is not asked
    (-16.5, 0.02, True, 6.0, True),    # 10-20 dB down: merged by level, as without the encoder
    (-8.0, 0.02, False, 3.0, False),   # too little sound for two pieces: no answer, kept apart
])
def test_the_speaker_encoder_hears_one_voice_throughout_the_input(share_db, heard, turns, seconds, whole):
    n = int(seconds * 16000)
    x = np.concatenate([band_voice(n // 2, False), band_voice(n - n // 2, turns, seed=1)])
    model = share_split(10 ** (share_db / 20))
    sep = Separator(model, av=None, config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4),
                    overlap=FixedOverlap(heard), speaker=BandSpeaker())
    y = sep.separate(x, 16000)
    assert (sep.last_info.get("one_voice") == "source0") is whole
    asked = heard < 0.1 and share_db > -10
    assert ("voices_apart" in sep.last_info) is asked
    if asked and seconds >= 4.0:
        apart = sep.last_info["voices_apart"]  # two voices: a piece across the turn sits between the groups
        assert apart < 0.5 if turns else apart == pytest.approx(1.0, abs=1e-3)
        assert sep.last_info["one_voice_throughout"] is (not turns)
    if asked and seconds < 4.0:
        assert sep.last_info["voices_apart"] is None and sep.last_info["one_voice_throughout"] is False
    if whole:
        np.testing.assert_allclose(y[0], x, atol=1e-4)
        assert not y[1].any()
        line = one_voice_line(sep.last_info)
        assert ("one voice throughout the input (its pieces alike: 1.00)" in line) is asked


@pytest.mark.parametrize("setting, whole", [(None, False), (0.2, True), (0.999, False)])
def test_the_turn_threshold_setting_decides_the_merge(setting, whole, monkeypatch):
    """Two voices taking turns (voices_apart near 0.1) stay apart at the encoder's 0.9, and are one voice when
    ``ONE_VOICE_TURN_THRESHOLD`` is set under what they score."""
    import avse.api

    monkeypatch.setattr(avse.api, "ONE_VOICE_TURN_THRESHOLD", setting)
    x = np.concatenate([band_voice(48000, False), band_voice(48000, True, seed=1)])
    sep = Separator(share_split(0.4), av=None,
                    config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=FixedOverlap(0.0),
                    speaker=BandSpeaker())
    sep.separate(x, 16000)
    assert 0.0 <= sep.last_info["voices_apart"] < 0.5
    assert (sep.last_info.get("one_voice") == "source0") is whole
    assert sep.last_info["one_voice_throughout"] is whole


def test_the_turn_threshold_comes_from_the_encoder_or_the_setting(monkeypatch):
    import avse.api

    assert Separator.turn_threshold(BandSpeaker()) == 0.9
    assert Separator.speaker_rule(BandSpeaker()) == "input"  # type: ignore[arg-type]
    old = BandSpeaker({"val": {"threshold": 0.93}})  # an encoder trained before the turn threshold was kept
    with pytest.raises(ConfigError, match="no turn threshold .*train it again"):
        Separator.turn_threshold(old)  # type: ignore[arg-type]
    assert Separator.speaker_rule(old) == "outputs"  # type: ignore[arg-type]  # ... compares the outputs, as it was made to
    assert Separator.speaker_rule(BandSpeaker({"val": {"turn_threshold": float("nan")}})) == "outputs"  # type: ignore[arg-type]
    monkeypatch.setattr(avse.api, "ONE_VOICE_TURN_THRESHOLD", 0.5)
    assert Separator.turn_threshold(BandSpeaker({})) == 0.5
    assert Separator.speaker_rule(old) == "input"  # type: ignore[arg-type]
    monkeypatch.setattr(avse.api, "ONE_VOICE_SPEAKER_BY", "inputs")
    with pytest.raises(ConfigError, match="must be 'input' or 'outputs', got 'inputs'"):
        Separator.speaker_rule(old)  # type: ignore[arg-type]


def test_an_encoder_without_a_turn_threshold_compares_the_outputs():
    """The default rule reads the input, but an encoder trained before the turn threshold was kept does what it was
    made for: the same voice in both outputs is one voice, at any level."""
    sep = Separator(share_split(0.4), av=None,
                    config=InferenceConfig(chunk_seconds=1.0, overlap_seconds=0.4), overlap=FixedOverlap(0.0),
                    speaker=FixedSpeaker(0.9))
    sep.separate(speechlike(40000), 16000)
    assert sep.last_info["one_voice"] == "source0" and sep.last_info["same_speaker"] is True
    assert "voices_apart" not in sep.last_info


def test_output_levels_against_the_input():
    x = np.sin(np.arange(16000) / 5.0).astype(np.float32)
    assert output_levels_db(np.stack([x, 0.1 * x, np.zeros_like(x)]), x) == [0.0, -20.0, -120.0]
    assert levels_line(["a", "b", "c"], [0.0, -20.0, -120.0]) == "a +0.0 dB, b -20.0 dB, c -120.0 dB (near silent)"


def test_known_speakers_name_the_outputs(tmp_path):
    kind, cfg = TINY["separate"]
    path = save_checkpoint(tmp_path / "known.avse.pt", build_model(kind, cfg), kind, make_config(kind, cfg),
                           extra={"speakers": ["alice", "bob"]})
    sep = Separator(path, av=None)
    assert sep.separate(speechlike(16000), 16000).shape == (2, 16000)
    assert sep.last_info["mode"] == "known-speakers" and sep.last_info["names"] == ["alice", "bob"]


def test_one_output_per_face_with_an_av_model(ckpts):
    x, fa, fb = speechlike(32000), features(50, 5), features(50, 6)
    sep = Separator(ckpts["separate"], av=ckpts["av"])
    y = sep.separate(x, 16000, video=[fa, fb])
    assert y.shape == (2, 32000) and sep.last_info["names"] == ["face0", "face1"]
    enh = Enhancer(ckpts["av"], atten_lim_db=None)  # a face's voice has no input mixed back: it would carry the others
    np.testing.assert_allclose(y[1], enh.enhance(x, 16000, video=fb), atol=1e-6)


def test_separator_falls_back_to_blind_without_faces(ckpts, blank_video):
    _need_mediapipe()
    sep = Separator(ckpts["separate"], av=ckpts["av"])
    y = sep.separate(speechlike(16000), 16000, video=blank_video)
    assert y.shape == (2, 16000) and sep.last_info["mode"] == "blind" and "no face" in sep.last_info["reason"]


def test_separator_assign_modes(ckpts):
    """Feature arrays carry no face crops: "auto" runs the audio-visual model per face and says why; "sync" refuses."""
    with pytest.raises(ConfigError, match="assign must be one of"):
        Separator(ckpts["separate"], av=ckpts["av"], assign="lips")
    with pytest.raises(ConfigError, match="give a blind model"):
        Separator(None, av=ckpts["av"], assign="sync")
    sep = Separator(ckpts["separate"], av=ckpts["av"])
    y = sep.separate(speechlike(16000), 16000, video=[features(25), features(25)])
    assert y.shape == (2, 16000) and sep.last_info["mode"] == "audio-visual"
    assert "video file" in sep.last_info["assign_reason"] and "assignment" not in sep.last_info
    with pytest.raises(ConfigError, match="assign 'sync': the faces' crops need the video file"):
        Separator(ckpts["separate"], av=ckpts["av"], assign="sync").separate(speechlike(16000), 16000, video=[features(25)] * 2)


def test_separator_refuses_models_of_the_wrong_kind(ckpts):
    with pytest.raises(ConfigError, match="not a blind separator"):
        Separator(ckpts["av"], av=None).separate(speechlike(8000), 16000)
    with pytest.raises(ConfigError, match="not audio-visual"):
        Separator(ckpts["separate"], av=ckpts["audio"]).separate(speechlike(8000), 16000, video=features(13))


def test_has_video_tells_videos_from_audio(blank_video, tmp_path):
    import soundfile as sf

    from avse.video.io import has_video

    sf.write(str(tmp_path / "a.wav"), speechlike(800), 16000)
    assert has_video(blank_video) and not has_video(tmp_path / "a.wav")
    with pytest.raises(MediaError):
        has_video(tmp_path / "missing.mp4")


def test_face_features_raise_on_a_faceless_video(blank_video):
    _need_mediapipe()
    from avse.video.faces import face_features

    with pytest.raises(NoFaceError):
        face_features(blank_video)


def test_shift_frames_moves_lips_onto_late_audio():
    from avse.api import shift_frames

    f = np.arange(6, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i holds i
    np.testing.assert_array_equal(shift_frames(f, 2)[:, 0], [0, 0, 0, 1, 2, 3])  # audio 2 frames late
    np.testing.assert_array_equal(shift_frames(f, -1)[:, 0], [1, 2, 3, 4, 5, 5])
    np.testing.assert_array_equal(shift_frames(f, 0), f)


def test_output_names_must_be_plain_file_names():
    from avse.utils.fs import check_file_stem

    assert check_file_stem("Alice Smith") == "Alice Smith"
    for bad in ("", "../x", "a/b", ".hidden"):
        with pytest.raises(ConfigError, match="cannot be a file name"):
            check_file_stem(bad)


def test_a_light_asd_model_reads_the_encoders_embeddings_of_the_video(tiny_corpus, tmp_path, monkeypatch):
    """A model with visual_stream "light_asd" gets the Light-ASD embeddings of the face crops the front end's landmarks
    place: enhancing the video equals enhancing with those embeddings given. Without the checkpoint it is a one-line
    error before any work; lip features do not fit it; per-face separation refuses it."""
    _need_mediapipe()
    from avse.api import enhance_file
    from avse.models.light_asd import embed_video, load_visual_encoder
    from avse.video.frontend import process
    from tests.models.test_light_asd import light_asd_checkpoint

    monkeypatch.delenv("AVSE_LIGHT_ASD", raising=False)
    weights = light_asd_checkpoint(tmp_path / "asd.model")
    cfg = dict(TINY_AV, visual_channels=128, visual_stream="light_asd")
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "asd.avse.pt", build_model("avnet", cfg), "avnet", make_config("avnet", cfg))
    video = sorted((tiny_corpus / "dev" / "targets_video").glob("*.mp4"))[0]
    front = process(video)
    audio = front.audio
    enh = Enhancer(path, fallback=None, light_asd=weights)
    assert enh.visual_stream == "light_asd"
    y = enh.enhance(audio, 16000, video=video)
    assert enh.last_info["mode"] == "audio-visual" and enh.last_info.get("lips_shifted_frames", 0) == 0
    emb = embed_video(video, front.landmarks, load_visual_encoder(weights))
    scale = float(np.abs(y).max())
    assert scale > 0
    assert np.abs(y - enh.enhance(audio, 16000, video=emb)).max() <= 1e-4 * scale
    other = np.random.default_rng(0).normal(size=emb.shape).astype(np.float32)  # the model does read the stream
    assert np.abs(y - enh.enhance(audio, 16000, video=other)).max() > 1e-2 * scale
    with pytest.raises(ConfigError, match=r"\[F, 128\]"):
        enh.enhance(audio, 16000, video=front.features)
    with pytest.raises(ConfigError, match="needs the video file"):
        enh.enhance(audio, 16000, video=front)
    with pytest.raises(ConfigError, match="--light-asd"):
        Enhancer(path, fallback=None).enhance(audio, 16000, video=video)
    out = tmp_path / "out" / "y.wav"
    out.parent.mkdir()
    with pytest.raises(ConfigError, match="--light-asd"):
        enhance_file(video, out, model=path, fallback=None)
    assert not any(out.parent.iterdir())
    monkeypatch.setenv("AVSE_LIGHT_ASD", str(tmp_path / "missing.model"))
    with pytest.raises(MediaError, match="no such Light-ASD checkpoint"):
        enhance_file(video, out, model=path, fallback=None)
    with pytest.raises(ConfigError, match="Light-ASD"):
        Separator(None, av=path).separate(audio, 16000, video=video)


def test_attenuation_limit_mixes_the_input_back_in(ckpts):
    """The default limit (20 dB) is the model's estimate with the input mixed back in 20 dB down; 0 or None is the
    estimate as it is; anything else than a number of dB >= 0 is refused."""
    from avse.api import mix_back_gain
    from avse.config import ATTEN_LIM_DB

    x = speechlike(16000)
    raw = Enhancer(ckpts["audio"], atten_lim_db=None).enhance(x, 16000)
    np.testing.assert_allclose(Enhancer(ckpts["audio"], atten_lim_db=0).enhance(x, 16000), raw, atol=1e-7)
    enh = Enhancer(ckpts["audio"])
    limited = enh.enhance(x, 16000)
    assert enh.last_info["atten_lim_db"] == 20.0
    assert ATTEN_LIM_DB == 20.0 and mix_back_gain(ATTEN_LIM_DB) == pytest.approx(0.1)
    np.testing.assert_allclose(limited, raw + 0.1 * (x - raw), atol=1e-6)
    assert np.abs(limited - raw).max() > 1e-3  # the limit does something
    six = Enhancer(ckpts["audio"], atten_lim_db=6.0).enhance(x, 16000)
    np.testing.assert_allclose(six, raw + 10 ** (-6 / 20) * (x - raw), atol=1e-6)
    for bad in (-3.0, float("inf"), float("nan")):
        with pytest.raises(ConfigError, match="attenuation limit"):
            Enhancer(ckpts["audio"], atten_lim_db=bad)


def _tone_and_noise(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A gated 220 Hz harmonic tone [n] and white noise [n] (float64)."""
    t = np.arange(n) / 16000
    tone = sum(np.sin(2 * np.pi * 220 * k * t) / k for k in range(1, 8)) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    return 0.3 * tone, 0.05 * np.random.default_rng(seed).standard_normal(n)


def test_postfilter_keeps_what_the_model_kept_and_turns_down_what_it_left():
    tone, noise = _tone_and_noise(48000)
    mix = (tone + noise).astype(np.float32)
    np.testing.assert_allclose(postfilter(mix, mix), mix, atol=1e-5)  # nothing taken away: nothing changes
    est = (tone + 0.3 * noise).astype(np.float32)  # a model that left 30 % of the noise
    out = postfilter(est, mix)
    assert out.dtype == np.float32 and out.shape == mix.shape
    assert si_sdr(out, tone) > si_sdr(est, tone) + 3.0
    np.testing.assert_array_equal(postfilter(est, mix, strength=0.0), est)
    # the floor: a bin the model judged all noise is turned down by at most floor_db
    quiet = (0.01 * noise).astype(np.float32)
    assert 10 * np.log10(np.mean(postfilter(quiet, mix, floor_db=-20.0) ** 2) / np.mean(quiet**2)) > -20.5


def test_postfilter_in_blocks_matches_one_block_and_refuses_bad_input():
    tone, noise = _tone_and_noise(5 * 16000, seed=1)
    mix, est = (tone + noise).astype(np.float32), (tone + 0.3 * noise).astype(np.float32)
    whole = postfilter(est, mix)
    blocks = postfilter(est, mix, block=2 * 16000, overlap=4000)  # three blocks crossfaded
    assert np.sqrt(np.mean((blocks - whole) ** 2)) < 0.01 * np.sqrt(np.mean(whole**2))
    with pytest.raises(ConfigError, match="same"):
        postfilter(est, mix[:-1])
    with pytest.raises(ConfigError, match="strength"):
        postfilter(est, mix, strength=-1.0)


def test_enhancer_postfilter_runs_before_the_attenuation_limit(ckpts):
    x = speechlike(16000)
    raw = Enhancer(ckpts["audio"], atten_lim_db=None).enhance(x, 16000)
    enh = Enhancer(ckpts["audio"], postfilter=2.0)
    y = enh.enhance(x, 16000)
    assert enh.last_info["postfilter"] == 2.0
    filtered = postfilter(raw, x.astype(np.float32), 2.0)
    np.testing.assert_allclose(y, filtered + 0.1 * (x - filtered), atol=1e-5)
    assert Enhancer(ckpts["audio"], postfilter=0).postfilter is None
    with pytest.raises(ConfigError, match="post-filter"):
        Enhancer(ckpts["audio"], postfilter=float("nan"))


# --------------------------------------------------------------------------- one face, a second voice (assign)


def test_enhancer_takes_the_blind_output_the_lips_follow_only_when_told_so(ckpts, monkeypatch):
    """assign "auto" asks ``talker_output``; its choice of a blind output is that output, held to the talker limit;
    its None (and assign "av") is the audio-visual model's output; what it went by is in last_info["talker"]."""
    import avse.talking.expert as expert_mod
    from avse.api import ONE_VOICE_OVERLAP, TALKER_ATTEN_LIM_DB, mix_back_gain
    from avse.talking.expert import SyncExpert

    torch.manual_seed(0)
    judge = SyncExpert().eval()
    x, feats = speechlike(32000), features(50)
    crops = np.random.default_rng(2).integers(0, 256, (50, 96, 96, 3), dtype=np.uint8)
    plain = Enhancer(ckpts["av"], assign="av")
    y_av = plain.enhance(x, 16000, video=feats)
    assert "talker" not in plain.last_info
    enh = Enhancer(ckpts["av"], assign="auto", separator=ckpts["separate"], sync_expert=judge)
    seen: list[tuple] = []

    def choose(k):
        def talker_output(levels_db, lse_outputs, voiced, lse_input, overlap, min_overlap):  # measures all, then decides
            assert min_overlap == ONE_VOICE_OVERLAP
            seen.append((levels_db, lse_outputs(), [voiced(0), voiced(1)], lse_input(), overlap()))
            return k, "chosen by the test"
        return talker_output

    monkeypatch.setattr(expert_mod, "talker_output", choose(None))
    np.testing.assert_allclose(enh.enhance(x, 16000, video=feats, face_crops=crops), y_av, atol=1e-6)
    facts = enh.last_info["talker"]
    assert facts["used"] == "av" and facts["why"] == "chosen by the test" and len(facts["lse_c"]) == 2
    levels, lse_c, voiced, heard, share = seen[-1]
    assert len(levels) == 2 and len(lse_c) == 2 and all(0.0 <= v <= 1.0 for v in voiced) and np.isfinite(heard)
    assert facts["levels_db"] == levels and facts["lse_c_input"] == round(heard, 4)
    assert 0.0 <= share <= 1.0 and facts["overlap_share"] == round(share, 3)  # the shipped overlap detector's

    monkeypatch.setattr(expert_mod, "talker_output", choose(1))
    blind = Separator(ckpts["separate"], av=None).blind_outputs(x)[0][1]
    y = enh.enhance(x, 16000, video=feats, face_crops=crops)
    assert enh.last_info["talker"]["used"] == "blind" and TALKER_ATTEN_LIM_DB < enh.atten_lim_db
    np.testing.assert_allclose(y, blind + mix_back_gain(TALKER_ATTEN_LIM_DB) * (x - blind), atol=1e-5)
    enh.set_atten_lim(None)  # no limit: the blind output as it is
    np.testing.assert_allclose(enh.enhance(x, 16000, video=feats, face_crops=crops), blind, atol=1e-5)
    shifted = Enhancer(ckpts["av"], assign="auto", separator=ckpts["separate"], sync_expert=judge, atten_lim_db=None, shifts=3)
    assert shifted.blind_separator().shifts == 3  # the blind model's runs averaged, as Separator(shifts=3) gives them
    blind3 = Separator(ckpts["separate"], av=None, shifts=3).blind_outputs(x)[0][1]
    assert not np.allclose(blind3, blind, atol=1e-4)
    np.testing.assert_allclose(shifted.enhance(x, 16000, video=feats, face_crops=crops), blind3, atol=1e-5)
    for bad in (0, 2.5, True):
        with pytest.raises(ConfigError, match="shifts must be"):
            Enhancer(ckpts["av"], shifts=bad)


def test_the_check_decides_on_one_run_and_shifts_only_the_output_it_takes(ckpts, monkeypatch):
    """With shifts, the check for a second voice decides on one run of the blind model; only when it takes the blind
    output are the other runs made, the first one reused rather than run again, and the audio-visual model, whose
    output would be thrown away, is not run."""
    import avse.api
    import avse.talking.expert as expert_mod
    from avse.talking.expert import SyncExpert

    torch.manual_seed(0)
    judge = SyncExpert().eval()
    x, feats = speechlike(32000), features(50)
    crops = np.random.default_rng(2).integers(0, 256, (50, 96, 96, 3), dtype=np.uint8)
    runs: list[tuple] = []
    real = avse.api.run_shifted

    def spy(fn, audio, features=None, config=InferenceConfig(), align=False, progress=False, shifts=1, first=None):
        runs.append((features is None, shifts, first is not None))
        return real(fn, audio, features, config, align=align, progress=progress, shifts=shifts, first=first)

    monkeypatch.setattr(avse.api, "run_shifted", spy)
    enh = Enhancer(ckpts["av"], assign="auto", separator=ckpts["separate"], sync_expert=judge, atten_lim_db=None, shifts=3)
    for k, blind_runs in ((None, [(True, 1, False)]), (1, [(True, 1, False), (True, 3, True)])):
        monkeypatch.setattr(expert_mod, "talker_output", lambda *args, k=k: (k, "chosen by the test"))
        runs.clear()
        enh.enhance(x, 16000, video=feats, face_crops=crops)
        assert enh.last_info["talker"]["used"] == ("av" if k is None else "blind")
        assert [r for r in runs if r[0]] == blind_runs  # the blind model's runs (the audio-visual one has lips)
        assert [r[1] for r in runs if not r[0]] == ([3] if k is None else [])  # the audio-visual model only when used


def test_enhancer_runs_its_model_shifted_when_asked(ckpts, monkeypatch):
    """shifts=N reaches the main model's runs (the audio-visual one with its lips, the audio-only one without) through
    run_shifted, and changes the output; without it they run DEFAULT_SHIFTS times."""
    import avse.api
    from avse.config import DEFAULT_SHIFTS

    asked: list[tuple] = []
    real = avse.api.run_shifted

    def spy(fn, audio, features=None, config=InferenceConfig(), align=False, progress=False, shifts=1):
        asked.append((features is not None, shifts))
        return real(fn, audio, features, config, align=align, progress=progress, shifts=shifts)

    monkeypatch.setattr(avse.api, "run_shifted", spy)
    x, feats = speechlike(32000), features(50)
    for name, video in (("av", feats), ("audio", None)):
        Enhancer(ckpts[name], assign="av", atten_lim_db=None).enhance(x, 16000, video=video)
        once = Enhancer(ckpts[name], assign="av", atten_lim_db=None, shifts=1).enhance(x, 16000, video=video)
        three = Enhancer(ckpts[name], assign="av", atten_lim_db=None, shifts=3).enhance(x, 16000, video=video)
        assert asked[-3:] == [(video is not None, DEFAULT_SHIFTS), (video is not None, 1), (video is not None, 3)]
        assert three.shape == once.shape and not np.allclose(three, once, atol=1e-4)


def test_enhancer_assign_needs_the_face_crops_and_a_blind_two_talker_model(ckpts):
    x, feats = speechlike(16000), features(25)
    with pytest.raises(ConfigError, match="assign must be one of"):
        Enhancer(ckpts["av"], assign="lips")
    with pytest.raises(ConfigError, match="give a separator"):
        Enhancer(ckpts["av"], assign="sync", separator=None)
    auto = Enhancer(ckpts["av"], separator=ckpts["separate"])
    y = auto.enhance(x, 16000, video=feats)  # lip features only: no crops to ask the sync expert with
    assert auto.last_info["talker"] == {"used": "av", "why": "the face's crops need the video file"}
    np.testing.assert_allclose(y, Enhancer(ckpts["av"], assign="av").enhance(x, 16000, video=feats), atol=1e-6)
    with pytest.raises(ConfigError, match="assign 'sync': the face's crops need the video file"):
        Enhancer(ckpts["av"], assign="sync", separator=ckpts["separate"]).enhance(x, 16000, video=feats)
    crops = np.zeros((25, 96, 96, 3), np.uint8)
    one = Enhancer(ckpts["av"], assign="sync", separator=ckpts["audio"])
    with pytest.raises(ConfigError, match="not a blind two-talker separator"):
        one.enhance(x, 16000, video=feats, face_crops=crops)
    Enhancer(ckpts["audio"], assign="sync", separator=ckpts["separate"]).enhance(x, 16000)  # audio-only: nothing to assign


def test_separator_with_one_face_asks_the_check_for_a_second_voice(ckpts, monkeypatch, tmp_path):
    """One face of a video file, assign "auto": its voice is the blind output the check takes (nothing mixed back),
    else the audio-visual model's; the facts say which. The check runs the Separator's shifts."""
    import avse.api

    x = speechlike(16000)
    sep = Separator(ckpts["separate"], av=ckpts["av"], shifts=3)
    est = np.zeros((1, 16000), np.float32)
    blind = Separator(ckpts["separate"], av=None).blind_outputs(x)[0]
    lm = {"lips": np.zeros((25, 40, 2))}
    shifts: list[tuple[int, int]] = []
    for k in (None, 1):
        facts = {"used": "av" if k is None else "blind", "why": "chosen by the test", "model": "separate"}

        def talker(self, x16, video, landmarks, crops, k=k, facts=facts):
            shifts.append((self.shifts, self.blind_separator().shifts))
            return None if k is None else blind[k], facts

        monkeypatch.setattr(avse.api.Enhancer, "_talker", talker)
        info: dict = {"mode": "audio-visual"}
        out = sep._one_face(x, tmp_path / "talk.mp4", lm, est, info)
        assert info["talker"] is facts and shifts[-1] == (3, 3)
        if k is None:
            assert out is est and info["mode"] == "audio-visual"
        else:
            np.testing.assert_array_equal(out[0], blind[1])
            assert out.shape == (1, 16000) and info["mode"] == "blind, by lip sync"
    assert sep._one_face(x, tmp_path / "talk.mp4", None, est, {}) is est  # no landmarks: no crops to ask with
