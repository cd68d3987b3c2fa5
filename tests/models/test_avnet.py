"""Tests for avse.models.avnet: shapes, causality (audio and video), the visual stream's role, checkpoints, overfit."""

from __future__ import annotations

import math

import pytest
import torch

from avse.errors import ConfigError
from avse.models.avnet import AVNet, AVNetConfig, fit_visual_length, upsample_visual
from avse.models.checkpoint import count_parameters, load_checkpoint, save_checkpoint
from avse.models.registry import build_model, list_models
from avse.training.losses import neg_si_sdr

TINY = {
    "n_filters": 16,
    "kernel_size": 8,
    "bottleneck": 8,
    "hidden": 16,
    "skip": 8,
    "n_blocks": 3,
    "n_repeats": 2,
    "fusion_block": 2,
    "visual_channels": 6,
    "visual_hidden": 8,
}


def _tiny(**over) -> AVNet:
    torch.manual_seed(0)
    model = build_model("avnet", {**TINY, **over})
    assert isinstance(model, AVNet)
    return model.eval()


def _signal(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


# --- config, registry, size ----------------------------------------------------------------------------------


def test_registered_and_default_size():
    assert "avnet" in list_models()
    model = build_model("avnet")
    assert isinstance(model, AVNet) and model.cfg == AVNetConfig()
    assert 1.0e6 < count_parameters(model) < 2.0e6  # about 1.73 M
    assert AVNetConfig().frame_rate == 2000.0


@pytest.mark.parametrize(
    "bad",
    [{"fusion_block": 17}, {"fusion_block": -1}, {"upsample": "cubic"}, {"visual_dropout": 1.5}, {"kernel_size": 7}],
)
def test_bad_config(bad):
    with pytest.raises(ConfigError):
        build_model("avnet", bad)


def test_bad_inputs():
    model = _tiny()
    with pytest.raises(ConfigError, match="mixture"):
        model(torch.zeros(1, 1, 640), torch.zeros(1, 6, 1))
    with pytest.raises(ConfigError, match="visual"):
        model(torch.zeros(1, 640), torch.zeros(1, 5, 1))  # wrong Dv
    with pytest.raises(ConfigError, match="visual"):
        model(torch.zeros(2, 640), torch.zeros(1, 6, 1))  # wrong B


# --- visual alignment helpers --------------------------------------------------------------------------------


def test_fit_visual_length_crops_and_repeats_the_edge():
    v = torch.arange(6.0).view(1, 2, 3)  # [1, 2, 3]: frames (0,3), (1,4), (2,5)
    assert fit_visual_length(v, 2).tolist() == [[[0.0, 1.0], [3.0, 4.0]]]
    assert fit_visual_length(v, 5).tolist() == [[[0.0, 1.0, 2.0, 2.0, 2.0], [3.0, 4.0, 5.0, 5.0, 5.0]]]
    assert torch.equal(fit_visual_length(v, 3), v)


def test_upsample_nearest_maps_frame_f_to_samples_640f_to_640f_plus_639():
    v = torch.arange(3.0).view(1, 1, 3)  # frame index as the value
    hop = 8
    out = upsample_visual(v, 300, hop, "nearest")[0, 0]  # [300]; encoder frame k centred on sample 8 k
    expected = torch.tensor([min(k * hop // 640, 2) for k in range(300)], dtype=torch.float32)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    assert out[79].item() == 0 and out[80].item() == 1  # sample 632 in frame 0, sample 640 in frame 1


def test_upsample_linear_interpolates_between_frame_centres():
    v = torch.tensor([[[0.0, 10.0, 20.0]]])
    out = upsample_visual(v, 240, 8, "linear")[0, 0]  # [240]
    assert out[40].item() == 0.0  # sample 320 = centre of frame 0
    assert out[120].item() == pytest.approx(10.0)  # sample 960 = centre of frame 1
    assert out[80].item() == pytest.approx(5.0)  # half way
    assert out[0].item() == 0.0 and out[239].item() == 20.0  # clamped at both ends


# --- shapes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length,frames", [(640, 1), (1001, 2), (1001, 1), (1001, 7), (3203, 3), (7, 1), (12800, 25)])
def test_output_shape(length, frames, causal):
    model = _tiny(causal=causal)
    with torch.no_grad():
        y = model(_signal((2, length)), _signal((2, 6, frames), seed=1))
    assert y.shape == (2, length) and y.dtype == torch.float32 and torch.isfinite(y).all()


def test_edge_padding_equals_explicit_repeat():
    """F shorter than ceil(T/640) behaves exactly like the stream padded by repeating its last frame."""
    model = _tiny()
    x, v = _signal((1, 3000)), _signal((1, 6, 3), seed=1)  # needs 5 frames
    padded = torch.cat([v, v[..., -1:], v[..., -1:]], dim=-1)
    longer = torch.cat([padded, _signal((1, 6, 4), seed=2)], dim=-1)  # extra frames are cropped
    with torch.no_grad():
        y = model(x, v)
        torch.testing.assert_close(model(x, padded), y, atol=0, rtol=0)
        torch.testing.assert_close(model(x, longer), y, atol=0, rtol=0)


# --- causality -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("t0", [700, 1901])
def test_causal_ignores_future_audio(t0, upsample):
    model = _tiny(causal=True, upsample=upsample)
    x, v = _signal((1, 3200)), _signal((1, 6, 5), seed=1)
    x2 = x.clone()
    x2[:, t0:] += _signal((1, 3200 - t0), seed=2)
    with torch.no_grad():
        y, y2 = model(x, v), model(x2, v)
    safe = t0 - model.lookahead
    torch.testing.assert_close(y2[..., :safe], y[..., :safe], atol=1e-6, rtol=0)
    assert (y2[..., safe:] - y[..., safe:]).abs().max() > 1e-4


@pytest.mark.parametrize("form", [{}, {"visual_norm": "utterance", "output": "residual"}], ids=["plain", "norm-residual"])
@pytest.mark.parametrize("lips_blocks", [0, 2])
@pytest.mark.parametrize("upsample", ["nearest", "linear"])
@pytest.mark.parametrize("f0", [1, 3, 6])
def test_causal_video_lookahead_is_one_frame(f0, upsample, lips_blocks, form):
    """Perturbing video frame f0 leaves every output before sample 640 (f0 - 1) unchanged, and changes later ones."""
    model = _tiny(causal=True, upsample=upsample, lips_blocks=lips_blocks, **form)
    x, v = _signal((1, 4800)), _signal((1, 6, 8), seed=1)
    v2 = v.clone()
    v2[..., f0] += 3.0 * _signal((1, 6), seed=3)
    with torch.no_grad():
        y, y2 = model(x, v), model(x, v2)
    safe = 640 * (f0 - 1)
    assert model.video_lookahead == 1
    torch.testing.assert_close(y2[..., :safe], y[..., :safe], atol=1e-6, rtol=0)
    assert (y2[..., safe : safe + 1280] - y[..., safe : safe + 1280]).abs().max() > 1e-4


@pytest.mark.parametrize("lips_blocks", [0, 2])
def test_non_causal_sees_future_video(lips_blocks):
    """The control: without causal=True a late video frame changes early outputs."""
    model = _tiny(causal=False, lips_blocks=lips_blocks)
    x, v = _signal((1, 4800)), _signal((1, 6, 8), seed=1)
    v2 = v.clone()
    v2[..., 6] += 3.0
    with torch.no_grad():
        diff = (model(x, v2) - model(x, v))[..., :640].abs().max()
    assert diff > 1e-4


# --- the visual stream's role --------------------------------------------------------------------------------


def test_visual_stream_changes_the_output():
    model = _tiny()
    x = _signal((1, 2000))
    with torch.no_grad():
        diff = (model(x, _signal((1, 6, 4), seed=1)) - model(x, _signal((1, 6, 4), seed=2))).abs().max()
    assert diff > 1e-4


def test_visual_dropout_one_makes_the_output_independent_of_video():
    model = _tiny(visual_dropout=1.0).train()
    x = _signal((3, 2000))
    with torch.no_grad():
        y1 = model(x, _signal((3, 6, 4), seed=1))
        y2 = model(x, _signal((3, 6, 4), seed=2))
        y0 = model(x, torch.zeros(3, 6, 4))  # "no video" is the all-zero stream
    torch.testing.assert_close(y1, y2, atol=0, rtol=0)
    torch.testing.assert_close(y1, y0, atol=0, rtol=0)
    model.eval()  # dropout is a training option only
    with torch.no_grad():
        assert (model(x, _signal((3, 6, 4), seed=1)) - model(x, _signal((3, 6, 4), seed=2))).abs().max() > 1e-4


def test_visual_dropout_is_per_item():
    """With p = 0.5 some items of a batch keep their video and some lose it (seeded)."""
    model = _tiny(visual_dropout=0.5).train()
    x = _signal((1, 1280)).expand(16, -1)
    v = _signal((1, 6, 2), seed=1).expand(16, -1, -1)
    torch.manual_seed(0)
    with torch.no_grad():
        y = model(x, v)
        y_none = model(x, torch.zeros_like(v))
        y_all = _tiny(visual_dropout=0.5).eval()(x, v)  # same weights, no dropout
    dropped = torch.isclose(y, y_none, atol=1e-6, rtol=0).all(dim=-1)  # [16]
    kept = torch.isclose(y, y_all, atol=1e-6, rtol=0).all(dim=-1)  # [16]
    assert (dropped ^ kept).all()
    assert 0 < int(dropped.sum()) < 16


# --- checkpoints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_checkpoint_round_trip(tmp_path, causal):
    model = _tiny(causal=causal, upsample="linear")
    path = save_checkpoint(tmp_path / "avnet.pt", model, "avnet", model.cfg, extra={"epoch": 3})
    loaded, info = load_checkpoint(path)
    assert isinstance(loaded, AVNet) and loaded.cfg == model.cfg and not loaded.training
    assert info["model"] == "avnet" and info["extra"] == {"epoch": 3} and info["config"]["causal"] is causal
    x, v = _signal((2, 1500)), _signal((2, 6, 2), seed=1)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x, v), model(x, v), atol=0, rtol=0)


# --- a short overfit run -------------------------------------------------------------------------------------


def _envelope_features(s: torch.Tensor, dv: int) -> torch.Tensor:
    """s [T] -> visual [dv, ceil(T/640)]: per-video-frame RMS of s and its powers (a stand-in for lip opening)."""
    n = -(-s.shape[-1] // 640)
    frames = torch.nn.functional.pad(s, (0, n * 640 - s.shape[-1])).view(n, 640)  # [F, 640]
    rms = frames.pow(2).mean(-1).sqrt()  # [F]
    rms = rms / rms.max()
    return torch.stack([rms**p for p in range(1, dv + 1)])  # [dv, F]


def test_overfits_when_video_picks_the_target():
    """One mixture of two talker-like sources, two batch items: each item's visual stream is its target's envelope.

    The audio alone cannot tell which source to return, so only the visual
    stream can lower the loss of both items at once. 30 Adam steps must improve
    the mean SI-SDR by at least 10 dB and beat the unprocessed mixture by 3 dB,
    and swapping the two visual streams must cost at least 10 dB
    (seen: 16.0 -> -5.6 dB loss, -5.9 dB in eval mode, 15.0 dB swapped, 0 dB mixture).
    """
    n = 6400  # 10 video frames
    t = torch.arange(n) / 16000.0
    gate1 = (torch.arange(n) // 1280 % 2 == 0).float()  # on/off every 2 video frames
    gate2 = 1.0 - gate1
    s1 = torch.sin(2 * math.pi * 440 * t) * (0.2 + gate1)
    s2 = 0.8 * torch.sin(2 * math.pi * 1250 * t + 0.3) * (0.2 + gate2)
    mixture = (s1 + s2)[None].expand(2, -1)  # [2, T]
    targets = torch.stack([s1, s2])  # [2, T]
    dv = TINY["visual_channels"]
    visual = torch.stack([_envelope_features(s1, dv), _envelope_features(s2, dv)])  # [2, dv, 10]
    model = _tiny().train()
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    losses = []
    for _ in range(30):
        loss = neg_si_sdr(model(mixture, visual), targets).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 10.0, losses
    model.eval()
    with torch.no_grad():
        final = neg_si_sdr(model(mixture, visual), targets).mean().item()
        swapped = neg_si_sdr(model(mixture, visual.flip(0)), targets).mean().item()
    assert final < losses[0] - 10.0
    assert final < neg_si_sdr(mixture, targets).mean().item() - 3.0  # better than returning the mixture
    assert swapped > final + 10.0  # the wrong lips give the wrong talker


def test_the_visual_stream_is_named_and_light_asd_takes_128_channels():
    from avse.errors import ConfigError
    from avse.models.avnet import AVNetConfig

    assert AVNetConfig().visual_stream == "lip_features"
    assert AVNetConfig(visual_channels=128, visual_stream="light_asd").visual_channels == 128
    with pytest.raises(ConfigError, match="visual_channels=82"):
        AVNetConfig(visual_stream="light_asd")
    with pytest.raises(ConfigError, match="visual_stream must be one of"):
        AVNetConfig(visual_stream="pixels")
