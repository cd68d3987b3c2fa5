"""Tests for the streaming step of the causal models and avse.streaming: streaming equals offline, ONNX equals torch, latency."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from avse.errors import ConfigError
from avse.models.avnet import AVNet
from avse.models.registry import build_model
from avse.streaming import BLOCK_SIZES, StreamingEnhancer, TorchStep
from avse.video.lipfeat import clean_frames

SECONDS = 10
TOL = 1e-4

TASNET = dict(n_filters=32, bottleneck=16, hidden=32, skip=16, n_blocks=4, n_repeats=2, causal=True, output="consistent")
AVNET = dict(
    n_filters=32,
    kernel_size=16,
    bottleneck=16,
    hidden=32,
    skip=16,
    n_blocks=3,
    n_repeats=2,
    fusion_block=2,
    visual_channels=6,
    visual_hidden=8,
    lips_blocks=2,
    causal=True,
    visual_norm="utterance",
)


def _model(name: str, cfg: dict):
    torch.manual_seed(0)
    return build_model(name, cfg).eval()


def _inputs(n_samples: int, visual_channels: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray | None]:
    """Noise audio float32 [T] and lip frames [ceil(T / 640), Dv] with a no-face gap (NaN rows) and zero rows."""
    rng = np.random.default_rng(seed)
    x = (0.3 * rng.standard_normal(n_samples)).astype(np.float32)
    if not visual_channels:
        return x, None
    v = rng.standard_normal((-(-n_samples // 640), visual_channels)).astype(np.float32)
    v[40:55] = np.nan  # a stretch without a face
    v[100:103] = 0.0
    return x, v


def _offline(model, x: np.ndarray, v: np.ndarray | None) -> np.ndarray:
    """The model run offline on all of x (followed by one block of zeros, so the last samples have their next frame) -> [S, T]."""
    t = x.shape[0]
    xp = torch.from_numpy(np.concatenate([x, np.zeros(640, np.float32)]))[None]  # [1, T + 640]
    with torch.inference_mode():
        if v is None:
            y = model.estimates(xp)
        else:
            clean, _ = clean_frames(v)
            y = model.estimates(xp, torch.from_numpy(clean.T.copy())[None])  # [1, S, T + 640]
    return y[0, :, :t].numpy()


def _streamed(engine: StreamingEnhancer, x: np.ndarray, v: np.ndarray | None, seed: int = 1) -> np.ndarray:
    """x pushed in chunks of random length (frames given as their first sample arrives), then flushed -> stream output [S, T + delay]."""
    rng = np.random.default_rng(seed)
    outs, i = [], 0
    while i < x.shape[0]:
        n = int(rng.integers(1, 1500))
        frames = None if v is None else v[-(-i // 640) : -(-min(i + n, x.shape[0]) // 640)]
        outs.append(engine.push(x[i : i + n], frames))
        i += n
    outs.append(engine.flush())
    y = np.concatenate(outs, axis=-1)
    return y if y.ndim == 2 else y[None]


def _check_stream(engine: StreamingEnhancer, x: np.ndarray, v: np.ndarray | None, offline: np.ndarray) -> float:
    y = _streamed(engine, x, v)
    d = engine.delay
    assert y.shape == (offline.shape[0], x.shape[0] + d)
    assert np.all(y[:, :d] == 0.0)  # nothing before the stream's start
    err = float(np.abs(y[:, d:] - offline).max())
    assert err <= TOL, err
    return err


# --- the model step --------------------------------------------------------------------------------------


@pytest.mark.parametrize("synthesis", ["overlap", "causal", "hop"])
@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_tasnet_step_equals_offline(block, synthesis):
    model = _model("tasnet", {**TASNET, "synthesis": synthesis})
    x, _ = _inputs(SECONDS * 16000, 0)
    offline = _offline(model, x, None)  # [2, T]
    _check_stream(StreamingEnhancer(model, block=block, backend="torch"), x, None, offline)


@pytest.mark.parametrize("synthesis", ["overlap", "causal", "hop"])
@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_avnet_step_equals_offline(block, synthesis):
    model = _model("avnet", {**AVNET, "synthesis": synthesis})
    x, v = _inputs(SECONDS * 16000, 6)
    offline = _offline(model, x, v)  # [1, T]
    _check_stream(StreamingEnhancer(model, block=block, backend="torch"), x, v, offline)


@pytest.mark.parametrize("synthesis", ["causal", "hop"])
def test_causal_and_hop_synthesis_have_no_delay_and_no_future(synthesis):
    """With "causal" or "hop" synthesis the stream is not late and an output sample never hears past the end of its hop."""
    model = _model("avnet", {**AVNET, "synthesis": synthesis})
    assert model.stream_delay == 0 and model.lookahead == 7  # hop 8: at most the rest of the hop
    assert model.video_lookahead == 0 and _model("avnet", AVNET).video_lookahead == 1
    engine = StreamingEnhancer(model, block=640, backend="torch")
    assert engine.latency_samples == 640 and engine.latency_ms == 40.0
    overlap = _model("avnet", AVNET)
    assert overlap.stream_delay == 8 and StreamingEnhancer(overlap, block=640, backend="torch").latency_ms == 40.5
    x, v = _inputs(16000, 6)
    cut = 8000  # a hop boundary
    changed = x.copy()
    changed[cut:] += 1.0
    a, b = _offline(model, x, v)[0], _offline(model, changed, v)[0]
    assert np.array_equal(a[:cut], b[:cut]) and not np.allclose(a[cut : cut + 8], b[cut : cut + 8])
    a, b = _offline(overlap, x, v)[0], _offline(overlap, changed, v)[0]
    assert not np.array_equal(a[cut - 8 : cut], b[cut - 8 : cut])  # overlap-add: the hop before hears the next frame
    frame = 640 * 10  # and no video frame past a sample's own: change frame 10, samples before it stay
    other = v.copy()
    other[10:] += 1.0
    a, b = _offline(model, x, v)[0], _offline(model, x, other)[0]
    assert np.array_equal(a[:frame], b[:frame]) and not np.allclose(a[frame:], b[frame:])


def test_hop_decoder_loads_an_overlap_checkpoint_folded():
    """An "overlap" model's weights load into a "hop" one: the decoder's two halves summed (a "causal" one takes them as they are)."""
    overlap = _model("tasnet", TASNET)
    hop = build_model("tasnet", {**TASNET, "synthesis": "hop"})
    hop.load_state_dict(overlap.state_dict())
    w = overlap.decoder.weight.detach()
    assert torch.equal(hop.decoder.weight.detach(), w[..., :8] + w[..., 8:])
    assert torch.equal(hop.encoder.weight, overlap.encoder.weight)
    causal = build_model("tasnet", {**TASNET, "synthesis": "causal"})
    causal.load_state_dict(overlap.state_dict())
    assert torch.equal(causal.decoder.weight, overlap.decoder.weight)
    with pytest.raises(RuntimeError, match="size mismatch"):  # another basis size is refused, not folded
        build_model("tasnet", {**TASNET, "synthesis": "hop", "kernel_size": 8}).load_state_dict(overlap.state_dict())
    with pytest.raises(ConfigError, match="synthesis"):
        build_model("tasnet", {**TASNET, "synthesis": "none"})


def test_step_state_has_fixed_size():
    model = _model("avnet", AVNET)
    state = model.init_state(1)
    shapes = {k: tuple(s.shape) for k, s in state.items()}
    with torch.inference_mode():
        for _ in range(5):
            _, state = model.stream_step(torch.randn(1, 160), torch.randn(1, 6, 1), state)
    assert {k: tuple(s.shape) for k, s in state.items()} == shapes
    assert int(state["phase"][0]) == 160 and int(state["frames"][0]) == 5 * 160 // 8


def test_non_streaming_models_raise_clearly():
    for model in (_model("tasnet", {**TASNET, "causal": False}), _model("avnet", {**AVNET, "causal": False})):
        assert not model.supports_streaming
        with pytest.raises(ConfigError, match="streaming"):
            model.init_state()
        with pytest.raises(ConfigError, match="streaming"):
            StreamingEnhancer(model, backend="torch")
    linear = _model("avnet", {**AVNET, "upsample": "linear"})
    assert not linear.supports_streaming
    with pytest.raises(ConfigError, match="nearest"):
        linear.init_state()
    av = _model("avnet", AVNET)
    assert av.supports_streaming and av.stream_delay == 8
    for bad in (400, 12, 0, 1280):  # must be a multiple of the hop (8) dividing 640
        with pytest.raises(ConfigError):
            av.check_stream_block(bad)
    with pytest.raises(ConfigError, match="audio-only"):
        _model("tasnet", TASNET).stream_step(torch.zeros(1, 64), torch.zeros(1, 6, 1), _model("tasnet", TASNET).init_state())


# --- the engine --------------------------------------------------------------------------------------------


def test_engine_waits_for_late_video_then_holds():
    model = _model("avnet", AVNET)
    engine = StreamingEnhancer(model, block=320, backend="torch", max_video_wait_ms=40.0)
    x, v = _inputs(6400, 6)
    assert engine.push(x[:640]).shape == (0,)  # the block's frame has not come
    assert engine.push(np.zeros(0, np.float32), v[:1]).shape == (640,)
    assert engine.push(x[640:1280]).shape == (0,)
    assert engine.push(x[1280:1920]).shape == (640,)  # 40 ms late: the last frame is held for frame 1
    engine.reset()
    assert engine.push(x[:640], v[:1]).shape == (640,)
    assert StreamingEnhancer(model, block=320, backend="torch", video=False).push(x[:640]).shape == (640,)


def test_engine_process_and_describe():
    model = _model("tasnet", TASNET)
    engine = StreamingEnhancer(model, block=160, backend="torch")
    x, _ = _inputs(16000, 0)
    y = engine.process(x, chunk=333)
    offline = _offline(model, x, None)
    assert y.shape == offline.shape and np.abs(y - offline).max() <= TOL
    info = engine.describe()
    assert info["backend"] == "torch" and info["delay_samples"] == 8
    assert info["latency_samples"] == 168 and info["latency_ms"] == pytest.approx(10.5)


# --- ONNX ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "block", "synthesis"),
    [("tasnet", 160, "overlap"), ("avnet", 640, "overlap"), ("avnet", 320, "overlap"), ("avnet", 160, "overlap"),
     ("tasnet", 320, "hop"), ("avnet", 640, "hop"), ("tasnet", 160, "causal"), ("avnet", 640, "causal")],
)
def test_onnx_step_equals_torch(name, block, synthesis):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from avse.streaming.export import OnnxStep

    model = _model(name, {**(TASNET if name == "tasnet" else AVNET), "synthesis": synthesis})
    x, v = _inputs(200 * block, model.visual_channels)
    ours, theirs = TorchStep(model, block), OnnxStep(model, block)
    err = 0.0
    for i in range(200):
        frame = None if v is None else clean_frames(v[i * block // 640][None])[0][0]
        a, b = ours(x[i * block : (i + 1) * block], frame), theirs(x[i * block : (i + 1) * block], frame)
        err = max(err, float(np.abs(a - b).max()))
    assert err <= TOL, err


# --- the shipped causal model ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped():
    from avse.api import load_model

    try:
        model, _ = load_model("av-causal")
    except ConfigError as err:
        pytest.skip(str(err))
    if not (isinstance(model, AVNet) and model.causal):
        pytest.skip("the shipped av-causal is not a causal AVNet")
    x, v = _inputs(SECONDS * 16000, model.visual_channels)
    return model, x, v, _offline(model, x, v)


@pytest.mark.parametrize("block", BLOCK_SIZES)
def test_shipped_av_causal_streams_as_offline(shipped, block):
    model, x, v, offline = shipped
    engine = StreamingEnhancer(model, block=block, backend="torch")
    _check_stream(engine, x, v, offline)
    assert engine.latency_samples == block + model.stream_delay  # the block, plus one hop with "overlap" synthesis


def test_shipped_av_causal_onnx_engine(shipped):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    model, x, v, offline = shipped
    engine = StreamingEnhancer(model, block=320, backend="onnx")
    assert engine.describe()["backend"] == "onnx" and engine.latency_ms == 1000.0 * (320 + model.stream_delay) / 16000
    _check_stream(engine, x, v, offline)
    auto = StreamingEnhancer(model, block=640)
    assert auto.describe()["backend"] in ("torch", "onnx")
    assert set(auto.describe()["backend_choice"]["median_ms"]) == {"torch", "onnx"}


def test_engine_attenuation_limit_mixes_the_input_back_on_its_clock():
    """With an attenuation limit the stream is the model's stream with the input, ``delay`` late, mixed back in
    (whatever the push sizes); a separator's outputs are left as they are."""
    model = _model("tasnet", {**TASNET, "n_sources": 1, "output": "direct"})
    x, _ = _inputs(16000, 0)
    raw = StreamingEnhancer(model, block=160, backend="torch").process(x, chunk=333)
    limited = StreamingEnhancer(model, block=160, backend="torch", atten_lim_db=20.0)
    assert limited.describe()["mix_back"] == pytest.approx(0.1)
    y = limited.process(x, chunk=1000)
    np.testing.assert_allclose(y, raw + 0.1 * (x - raw), atol=1e-6)
    pushed = np.concatenate([limited.push(x[i : i + 777]) for i in range(0, len(x), 777)] + [limited.flush()])
    np.testing.assert_allclose(pushed[limited.delay : limited.delay + len(x)], y, atol=1e-6)
    assert np.all(pushed[: limited.delay] == 0)  # the stream's first delay samples stay silent
    two = _model("tasnet", {**TASNET, "n_sources": 2})
    assert two.n_outputs == 2 and StreamingEnhancer(two, block=160, backend="torch", atten_lim_db=20.0).mix_back == 0.0
