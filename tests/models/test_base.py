"""The model interface: every registered model answers it, checkpoints and the API ask it and nothing else."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from avse.api import load_model
from avse.errors import ConfigError
from avse.models import build_model, list_models, load_checkpoint, register_model, save_checkpoint
from avse.models.base import SeparationModel
from avse.models.registry import make_config

TINY = {
    "tasnet": dict(n_filters=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1),
    "avnet": dict(n_filters=16, bottleneck=8, hidden=16, skip=8, n_blocks=2, n_repeats=1, fusion_block=1, visual_hidden=8),
    "unet": dict(depth=2, channels=4),
}


@pytest.mark.parametrize("name", ["tasnet", "avnet", "unet"])
def test_every_registered_model_answers_the_interface(name):
    assert name in list_models()
    model = build_model(name, TINY[name]).eval()
    face = model.interface()
    assert set(face) == {"sample_rate", "video_fps", "n_outputs", "visual_channels", "causal", "lookahead", "video_lookahead"}
    assert (face["sample_rate"], face["video_fps"], model.samples_per_frame) == (16000, 25.0, 640)
    assert face["n_outputs"] == {"tasnet": 2, "avnet": 1, "unet": 1}[name]
    assert model.audio_visual == (name == "avnet") and face["visual_channels"] == (82 if name == "avnet" else 0)
    assert not face["causal"] and face["lookahead"] is None
    out = model.estimates(torch.randn(2, 3000))  # AV models get their all-zero "no video" stream
    assert out.shape == (2, face["n_outputs"], 3000)
    assert not model.supports_streaming
    with pytest.raises(ConfigError, match="streaming"):
        model.init_state()


def test_causal_models_state_their_lookahead():
    tas = build_model("tasnet", {**TINY["tasnet"], "causal": True, "kernel_size": 32})
    av = build_model("avnet", {**TINY["avnet"], "causal": True})
    assert tas.causal and tas.lookahead == 31 and tas.video_lookahead is None
    assert av.causal and av.lookahead == 15 and av.video_lookahead == 1


def test_estimates_of_an_av_model_with_no_video_equal_zeros_given():
    torch.manual_seed(0)
    model = build_model("avnet", TINY["avnet"]).eval()
    x = torch.randn(1, 2000)
    with torch.no_grad():
        torch.testing.assert_close(model.estimates(x), model(x, torch.zeros(1, 82, 4))[:, None])
    audio_only = build_model("tasnet", TINY["tasnet"])
    with pytest.raises(ConfigError, match="audio-only"):
        audio_only.estimates(x, torch.zeros(1, 82, 4))


@dataclass(frozen=True)
class _SlowConfig:
    gain: float = 1.0


@register_model("test_8k_gain")
class _Gain8k(SeparationModel):
    """A one-parameter model that works at 8 kHz: checkpoints must say so, inference must refuse it."""

    Config = _SlowConfig

    def __init__(self, cfg: _SlowConfig = _SlowConfig()):
        super().__init__()
        self.cfg = cfg
        self.gain = torch.nn.Parameter(torch.tensor(cfg.gain))

    @property
    def sample_rate(self) -> int:
        return 8000

    @property
    def n_outputs(self) -> int:
        return 1

    def forward(self, mixture):
        return self.gain * mixture[:, None]


def test_checkpoint_records_the_models_own_rate_and_inference_refuses_another(tmp_path):
    model = _Gain8k()
    path = save_checkpoint(tmp_path / "g.avse.pt", model, "test_8k_gain", make_config("test_8k_gain"))
    raw = torch.load(path, weights_only=True)
    assert raw["sample_rate"] == 8000 and raw["interface"]["sample_rate"] == 8000
    assert load_checkpoint(path)[1]["interface"]["n_outputs"] == 1
    with pytest.raises(ConfigError, match="8000 Hz"):
        load_model(path)


def test_last_block_has_no_residual_conv_and_old_weights_still_load(tmp_path):
    torch.manual_seed(0)
    model = build_model("tasnet", TINY["tasnet"]).eval()
    blocks = model.blocks
    assert all(b.residual is not None for b in blocks[:-1]) and blocks[-1].residual is None
    state = model.state_dict()
    old = dict(state)  # as saved before the unused conv was dropped
    old["blocks.1.residual.weight"] = torch.randn(8, 16, 1)
    old["blocks.1.residual.bias"] = torch.randn(8)
    again = build_model("tasnet", TINY["tasnet"]).eval()
    again.load_state_dict(old)  # strict: the only extra keys are the unused conv's
    x = torch.randn(1, 1000)
    with torch.no_grad():
        torch.testing.assert_close(again(x), model(x))
    with pytest.raises(ConfigError, match="fusion_block"):  # no block after the fusion: the lips could not act
        build_model("avnet", {**TINY["avnet"], "fusion_block": 2})
    av = build_model("avnet", TINY["avnet"])
    assert av.audio_blocks[-1].residual is not None and av.av_blocks[-1].residual is None
    av(torch.randn(1, 1280), torch.randn(1, 82, 2)).sum().backward()
    assert all(p.grad is not None for p in av.parameters())  # every parameter reaches the output (plain DDP works)
