"""Tests for avse.models: registry, shapes, causality, checkpoints and a short overfit run."""

from __future__ import annotations

import math
from dataclasses import asdict

import pytest
import torch
from torch import nn

from avse.errors import ConfigError, MediaError
from avse.models import build_model, count_parameters, list_models, load_checkpoint, register_model, save_checkpoint
from avse.models.base import SeparationModel
from avse.models.registry import make_config
from avse.models.tasnet import ConvTasNet, CumulativeLayerNorm, GlobalLayerNorm, TasNetConfig
from avse.models.unet import SpectrogramUNet, UNetConfig
from avse.training.losses import neg_si_sdr, pit_neg_si_sdr

TINY = {
    "unet": {"depth": 3, "channels": 4, "dropout": 0.0, "n_fft": 128, "hop_length": 32, "win_length": 128},
    "tasnet": {"n_filters": 16, "kernel_size": 8, "bottleneck": 8, "hidden": 16, "skip": 8, "n_blocks": 3, "n_repeats": 1},
}


def _tiny(name: str, **over) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, {**TINY[name], **over}).eval()


def _signal(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g)


# --- registry ------------------------------------------------------------------------------------------------


def test_registry_lists_and_builds():
    assert {"unet", "tasnet"} <= set(list_models())
    model = build_model("tasnet", {"n_sources": 3, "causal": True, **TINY["tasnet"]})
    assert isinstance(model, ConvTasNet)
    assert model.cfg == TasNetConfig(n_sources=3, causal=True, **TINY["tasnet"])
    unet = build_model("unet")
    assert isinstance(unet, SpectrogramUNet) and unet.cfg == UNetConfig()
    # config dict -> Config -> dict round trip
    assert asdict(make_config("unet", asdict(unet.cfg))) == asdict(UNetConfig())


def test_registry_errors():
    with pytest.raises(ConfigError, match="unknown model 'nope'"):
        build_model("nope")
    with pytest.raises(ConfigError, match="unknown option"):
        build_model("unet", {"n_layers": 3})
    with pytest.raises(ConfigError, match="n_sources"):
        build_model("unet", {"n_sources": 0})
    with pytest.raises(ConfigError, match="already registered"):

        @register_model("unet")
        class Other(SeparationModel):
            Config = UNetConfig

            @classmethod
            def from_config(cls, cfg):
                return cls()

    with pytest.raises(ConfigError, match="Config"):

        @register_model("no_config")
        class Bare(SeparationModel):
            pass

    with pytest.raises(ConfigError, match="must subclass"):

        @register_model("plain_module")
        class Plain(nn.Module):
            Config = UNetConfig

    assert "no_config" not in list_models() and "plain_module" not in list_models()


def test_default_sizes():
    assert 0.8e6 < count_parameters(build_model("unet")) < 1.2e6
    assert 2.0e6 < count_parameters(build_model("tasnet")) < 3.0e6


# --- shapes --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unet", "tasnet"])
@pytest.mark.parametrize("n_sources", [1, 2])
@pytest.mark.parametrize("length", [100, 1000, 1601, 3333])
def test_output_shape(name, n_sources, length):
    model = _tiny(name, n_sources=n_sources)
    with torch.no_grad():
        out = model(_signal((2, length)))
    assert out.shape == (2, n_sources, length)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["unet", "tasnet"])
def test_bad_input_rank(name):
    with pytest.raises(ConfigError, match=r"\[B, T\]"):
        _tiny(name)(_signal((1, 2, 500)))


def test_unet_mask_of_ones_returns_the_mixture():
    """With every mask forced to 1 the STFT -> ISTFT path must give the mixture back."""
    model = _tiny("unet", n_sources=2)
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(60.0)  # sigmoid(60) == 1 in float32
        x = _signal((3, 1601))
        out = model(x)
    torch.testing.assert_close(out, x[:, None].expand(-1, 2, -1), atol=1e-5, rtol=0)


def test_unet_masks_in_unit_range_and_gain_invariant():
    model = _tiny("unet", n_sources=2)
    from avse.audio.features import stft

    x = _signal((2, 2000))
    with torch.no_grad():
        m1 = model.masks(stft(x, model.cfg.stft))
        m2 = model.masks(stft(10.0 * x, model.cfg.stft))
        y1, y2 = model(x), model(10.0 * x)
    assert m1.shape == (2, 2, 65, 1 + 2000 // 32)
    assert (m1 >= 0).all() and (m1 <= 1).all()
    torch.testing.assert_close(m1, m2, atol=1e-5, rtol=0)
    torch.testing.assert_close(y2, 10.0 * y1, atol=1e-4, rtol=1e-4)


# --- causality -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t0", [400, 1001])
def test_causal_tasnet_ignores_the_future(t0):
    model = _tiny("tasnet", causal=True)
    x = _signal((1, 2000))
    x2 = x.clone()
    x2[:, t0:] += _signal((1, 2000 - t0), seed=1)
    with torch.no_grad():
        y, y2 = model(x), model(x2)
    safe = t0 - model.lookahead  # output t sees input up to t + kernel_size - 1
    torch.testing.assert_close(y2[..., :safe], y[..., :safe], atol=1e-6, rtol=0)
    assert (y2[..., safe:] - y[..., safe:]).abs().max() > 1e-4  # the perturbation shows up right after


def test_non_causal_tasnet_sees_the_future():
    """The control: without causal=True the same perturbation changes earlier outputs."""
    model = _tiny("tasnet", causal=False)
    x = _signal((1, 2000))
    x2 = x.clone()
    x2[:, 1000:] += _signal((1, 1000), seed=1)
    with torch.no_grad():
        diff = (model(x2) - model(x))[..., :900].abs().max()
    assert diff > 1e-4


def test_cumulative_layer_norm_matches_prefix_statistics():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 7, dtype=torch.float64)
    y = CumulativeLayerNorm(3).double()(x)
    for n in range(7):
        prefix = x[:, :, : n + 1]
        mean = prefix.mean(dim=(1, 2), keepdim=True)
        var = prefix.var(dim=(1, 2), unbiased=False, keepdim=True)
        expect = (x[:, :, n : n + 1] - mean) / torch.sqrt(var + 1e-8)
        torch.testing.assert_close(y[:, :, n : n + 1], expect)
    # gLN equals cLN's last frame statistics applied everywhere
    g = GlobalLayerNorm(3).double()(x)
    torch.testing.assert_close(g[:, :, -1], y[:, :, -1])


# --- checkpoints ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["unet", "tasnet"])
def test_checkpoint_round_trip(tmp_path, name):
    model = _tiny(name, n_sources=2)
    with torch.no_grad():  # move batch-norm statistics off their defaults so they must be saved too
        for buf_name, buf in model.named_buffers():
            if buf_name.endswith("running_mean"):
                buf.uniform_(-0.1, 0.1)
    path = save_checkpoint(tmp_path / "m.pt", model, name, model.cfg, extra={"epoch": 3, "val_si_sdr": 7.5})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # no temp file left behind

    raw = torch.load(path, weights_only=True)
    assert raw["format"] == 1 and raw["model"] == name
    assert raw["config"] == asdict(model.cfg)
    assert (raw["sample_rate"], raw["video_fps"]) == (16000, 25)
    assert set(raw["versions"]) == {"avse", "torch"}
    assert raw["extra"] == {"epoch": 3, "val_si_sdr": 7.5}

    loaded, info = load_checkpoint(path)
    assert type(loaded) is type(model) and loaded.cfg == model.cfg and not loaded.training
    assert "state_dict" not in info and info["model"] == name
    x = _signal((2, 1601))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), atol=0, rtol=0)


def test_checkpoint_errors(tmp_path):
    with pytest.raises(MediaError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.pt")
    text = tmp_path / "notes.pt"
    text.write_text("hello")
    with pytest.raises(MediaError, match="not a readable checkpoint"):
        load_checkpoint(text)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    with pytest.raises(MediaError, match="not an avse checkpoint"):
        load_checkpoint(other)

    model = _tiny("tasnet")
    path = save_checkpoint(tmp_path / "m.pt", model, "tasnet", model.cfg)
    ckpt = torch.load(path, weights_only=True)
    torch.save({**ckpt, "format": 2}, tmp_path / "future.pt")
    with pytest.raises(ConfigError, match="format 2"):
        load_checkpoint(tmp_path / "future.pt")
    torch.save({**ckpt, "model": "mystery"}, tmp_path / "unknown.pt")
    with pytest.raises(ConfigError, match="unknown model 'mystery'"):
        load_checkpoint(tmp_path / "unknown.pt")
    torch.save({**ckpt, "config": {**ckpt["config"], "hidden": 32}}, tmp_path / "mismatch.pt")
    with pytest.raises(MediaError, match="weights do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt")
    with pytest.raises(ConfigError, match="names SpectrogramUNet"):
        save_checkpoint(tmp_path / "wrong.pt", model, "unet", model.cfg)
    assert not (tmp_path / "wrong.pt").exists()


def test_count_parameters():
    model = _tiny("tasnet")
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    model.encoder.weight.requires_grad_(False)
    assert count_parameters(model, trainable_only=True) == count_parameters(model) - model.encoder.weight.numel()


# --- a short overfit run -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["tasnet", "unet"])
def test_overfits_one_example(name):
    """30 Adam steps on one two-talker-like mixture must improve the PIT SI-SDR by at least 8 dB (seen: ~14-17 dB)."""
    n = 2000
    t = torch.arange(n) / 16000.0
    s1 = torch.sin(2 * math.pi * 440 * t) * torch.hann_window(n)
    s2 = 0.5 * torch.sign(torch.sin(2 * math.pi * 97 * t))
    targets = torch.stack([s1, s2])[None]  # [1, 2, T]
    mixture = targets.sum(1)  # [1, T]
    model = _tiny(name, n_sources=2).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss, _ = pit_neg_si_sdr(model(mixture), targets)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
        losses.append(loss.item())
    assert all(math.isfinite(v) for v in losses)
    assert losses[-1] < losses[0] - 8.0, losses
    model.eval()
    with torch.no_grad():
        final, _ = pit_neg_si_sdr(model(mixture), targets)
    assert final.item() < losses[0] - 8.0
    assert neg_si_sdr(mixture[:, None].expand(-1, 2, -1), targets).mean() > final.item()  # better than no separation
