"""Tests for the output forms (direct, residual, mixture-consistent) and the per-utterance visual normalisation."""

from __future__ import annotations

import pytest
import torch

from avse.errors import ConfigError
from avse.models.avnet import AVNet, AVNetConfig, normalize_visual
from avse.models.tasnet import ConvTasNet, TasNetConfig, output_form

TINY_AUDIO = {"n_filters": 16, "kernel_size": 8, "bottleneck": 8, "hidden": 16, "skip": 8, "n_blocks": 3, "n_repeats": 1}
TINY_AV = {**TINY_AUDIO, "n_repeats": 2, "fusion_block": 2, "visual_channels": 6, "visual_hidden": 8}


def test_residual_is_the_mixture_minus_what_the_masks_picked():
    torch.manual_seed(0)
    direct = ConvTasNet(TasNetConfig(n_sources=1, **TINY_AUDIO)).eval()
    residual = ConvTasNet(TasNetConfig(n_sources=1, output="residual", **TINY_AUDIO)).eval()
    residual.load_state_dict(direct.state_dict())
    x = torch.randn(2, 4000)
    with torch.no_grad():
        torch.testing.assert_close(residual(x), x[:, None] - direct(x))


def test_residual_with_zero_masks_passes_the_input_through_exactly():
    model = AVNet(AVNetConfig(output="residual", **TINY_AV)).eval()
    with torch.no_grad():
        last = model.mask_head[-1]
        last.weight.zero_()
        last.bias.fill_(-1e4)  # sigmoid -> 0: nothing is taken away
        x = torch.randn(1, 3200)
        y = model(x, torch.randn(1, 6, 5))
    assert torch.equal(y, x)


def test_consistent_sources_add_up_to_the_mixture():
    torch.manual_seed(1)
    model = ConvTasNet(TasNetConfig(n_sources=2, output="consistent", **TINY_AUDIO)).eval()
    x = torch.randn(3, 4000)
    with torch.no_grad():
        y = model(x)
    torch.testing.assert_close(y.sum(1), x, atol=1e-5, rtol=0)
    d = torch.randn(1, 3, 10)
    m = torch.randn(1, 10)
    torch.testing.assert_close(output_form(d, m, "consistent").sum(1), m)


@pytest.mark.parametrize(
    "kwargs", [{"n_sources": 2, "output": "residual"}, {"n_sources": 1, "output": "consistent"}, {"n_sources": 1, "output": "x"}]
)
def test_output_forms_that_do_not_fit_are_refused(kwargs):
    with pytest.raises(ConfigError, match="output"):
        TasNetConfig(**kwargs)


def test_normalize_visual_removes_the_mean_of_face_frames_and_keeps_gaps_zero():
    v = torch.randn(2, 6, 20) + 5.0
    v[:, :, 3:6] = 0.0  # no face there
    out = normalize_visual(v, causal=False)
    assert torch.all(out[:, :, 3:6] == 0)
    valid = torch.ones(20, dtype=torch.bool)
    valid[3:6] = False
    torch.testing.assert_close(out[:, :, valid].mean(-1), torch.zeros(2, 6), atol=1e-5, rtol=0)
    # a constant added to every face frame (another resting mouth shape) changes nothing
    shifted = v + 0.7 * (v.abs().sum(1, keepdim=True) > 0)
    torch.testing.assert_close(normalize_visual(shifted, causal=False), out, atol=1e-5, rtol=0)


def test_causal_normalize_visual_uses_only_past_frames():
    v = torch.randn(1, 6, 30)
    w = v.clone()
    w[:, :, 20:] += torch.randn(1, 6, 10) * 3
    a, b = normalize_visual(v, causal=True), normalize_visual(w, causal=True)
    torch.testing.assert_close(a[:, :, :20], b[:, :, :20])
    assert not torch.allclose(a[:, :, 20:], b[:, :, 20:])


def test_avnet_with_utterance_norm_ignores_a_constant_lip_offset():
    torch.manual_seed(2)
    model = AVNet(AVNetConfig(visual_norm="utterance", **TINY_AV)).eval()
    x, v = torch.randn(1, 6400), torch.randn(1, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(model(x, v), model(x, v + 0.3), atol=1e-5, rtol=0)
    with pytest.raises(ConfigError, match="visual_norm"):
        AVNetConfig(visual_norm="frame", **TINY_AV)


@pytest.mark.parametrize("synthesis", ["hop", "causal"])
def test_decoder_fit_recovers_the_decoder_that_wrote_the_output(synthesis):
    """DecoderFit on outputs a "hop" or "causal" decoder wrote (put in encode's framing) gives back that decoder's weight."""
    from avse.models.tasnet import DecoderFit, make_decoder

    torch.manual_seed(0)
    hop = make_decoder(12, 8, 4, synthesis)
    fitter = DecoderFit(12, 4, synthesis)
    for _ in range(3):
        src = torch.rand(2, 12, 50)  # [B, N, K]
        out = torch.zeros(2, 1, 51 * 4)
        with torch.no_grad():
            out[:, :, 4:] = hop(src)[..., : 50 * 4]  # hop k of the output at samples [(k + 1) hop, (k + 2) hop)
        fitter.add(src, out)
    assert fitter.frames == 300
    torch.testing.assert_close(fitter.solve(ridge=0.0), hop.weight.detach(), atol=1e-4, rtol=1e-4)
    with pytest.raises(ConfigError, match="fitted"):
        DecoderFit(12, 4, "overlap")
