"""Tests for the visual frontends: shapes, causality, the ROI net, and the lipreading checkpoint name mapping."""

from __future__ import annotations

import pytest
import torch

from avse.errors import ConfigError
from avse.models.visual import (
    LipsFrontend,
    LipsFrontendConfig,
    RoiFrontend,
    RoiFrontendConfig,
    load_lipreading_state_dict,
    map_lipreading_name,
)


def _bn(prefix: str, c: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.{t}": (c,) for t in ("weight", "bias", "running_mean", "running_var")} | {f"{prefix}.num_batches_tracked": ()}


def reference_checkpoint_shapes(relu_type: str = "swish") -> dict[str, tuple[int, ...]]:
    """Name -> shape of lrw_resnet18_dctcn_video_boundary.pth, written out from the reference repo's module layout.

    (Lipreading: frontend3D Sequential, ResNet(BasicBlock, [2, 2, 2, 2]) as ``trunk``,
    DenseTCN as ``tcn`` with block_config 3x3, growth 384, kernels 3/5/7, reduced 512,
    SE on, input 512 + 1 boundary channel, 500-word ``tcn_output``.)
    """
    prelu = relu_type == "prelu"
    s: dict[str, tuple[int, ...]] = {"frontend3D.0.weight": (64, 1, 5, 7, 7)} | _bn("frontend3D.1", 64)
    if prelu:
        s["frontend3D.2.weight"] = (64,)
    c_in = 64
    for li, c in enumerate((64, 128, 256, 512), start=1):
        for bi in range(2):
            p = f"trunk.layer{li}.{bi}"
            cin = c_in if bi == 0 else c
            s[f"{p}.conv1.weight"] = (c, cin, 3, 3)
            s |= _bn(f"{p}.bn1", c)
            s[f"{p}.conv2.weight"] = (c, c, 3, 3)
            s |= _bn(f"{p}.bn2", c)
            if prelu:
                s[f"{p}.relu1.weight"] = (c,)
                s[f"{p}.relu2.weight"] = (c,)
            if bi == 0 and cin != c:
                s[f"{p}.downsample.0.weight"] = (c, cin, 1, 1)
                s |= _bn(f"{p}.downsample.1", c)
        c_in = c
    f = "tcn.tcn_trunk.features"
    s[f"{f}.transition0.conv.weight"] = (512, 513, 1)
    s |= _bn(f"{f}.transition0.norm", 512)
    s[f"{f}.transition0.prelu.weight"] = (512,)
    n = 512
    for b in range(1, 5):
        for layer in range(1, 4):
            p = f"{f}.denseblock{b}.denselayer{layer}"
            cin = n + (layer - 1) * 384
            for k_idx, k in enumerate((3, 5, 7)):
                s[f"{p}.cbcr0_se_{k_idx}.fc.0.weight"] = (cin // 16, cin)
                s[f"{p}.cbcr0_se_{k_idx}.fc.2.weight"] = (cin, cin // 16)
                for j, cj in ((0, cin), (1, 384)):
                    s[f"{p}.cbcr{j}_{k_idx}.net.0.weight"] = (128, cj, k)
                    s[f"{p}.cbcr{j}_{k_idx}.net.0.bias"] = (128,)
                    s |= _bn(f"{p}.cbcr{j}_{k_idx}.net.1", 128)
                    if prelu:
                        s[f"{p}.cbcr{j}_{k_idx}.net.3.weight"] = (128,)
            s[f"{p}.downsample.weight"] = (384, cin, 1)
            s[f"{p}.downsample.bias"] = (384,)
            if prelu:
                s[f"{p}.relu_final.weight"] = (384,)
        n += 3 * 384
        if b != 4:
            s[f"{f}.transition{b}.conv.weight"] = (512, n, 1)
            s |= _bn(f"{f}.transition{b}.norm", 512)
            if prelu:
                s[f"{f}.transition{b}.prelu.weight"] = (512,)
            n = 512
    s |= _bn(f"{f}.norm5", 1664)
    s["tcn.tcn_output.weight"] = (500, 1664)
    s["tcn.tcn_output.bias"] = (500,)
    return s


def _synthetic(shapes: dict[str, tuple[int, ...]]) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {k: torch.randn(v, generator=g) if v else torch.tensor(7) for k, v in shapes.items()}


@pytest.fixture(scope="module")
def roi() -> RoiFrontend:
    torch.manual_seed(0)
    return RoiFrontend().eval()


# -- LipsFrontend -------------------------------------------------------------------------------


@pytest.mark.parametrize("frames", [1, 7, 29])
@pytest.mark.parametrize("causal", [False, True])
def test_lips_shapes(frames: int, causal: bool) -> None:
    model = LipsFrontend(LipsFrontendConfig(causal=causal)).eval()
    out = model(torch.randn(2, frames, 82))
    assert out.shape == (2, 128, frames)
    assert torch.isfinite(out).all()


def test_lips_causal_no_future_dependence() -> None:
    torch.manual_seed(1)
    model = LipsFrontend(LipsFrontendConfig(causal=True, channels=16)).eval()
    x = torch.randn(1, 20, 82)
    base = model(x)
    for f in (0, 5, 12):
        y = x.clone()
        y[:, f + 1 :] = torch.randn_like(y[:, f + 1 :]) * 10
        torch.testing.assert_close(model(y)[..., : f + 1], base[..., : f + 1], rtol=0, atol=0)
        # and frame f itself does influence output frame f
        z = x.clone()
        z[:, f] += torch.randn(82)
        assert not torch.allclose(model(z)[..., f], base[..., f])


def test_lips_noncausal_sees_future() -> None:
    torch.manual_seed(2)
    model = LipsFrontend(LipsFrontendConfig(causal=False, channels=16)).eval()
    x = torch.randn(1, 10, 82)
    y = x.clone()
    y[:, 6] += torch.randn(82)
    assert not torch.allclose(model(y)[..., 5], model(x)[..., 5])
    assert model.receptive_field == 31


def test_lips_rejects_bad_input() -> None:
    with pytest.raises(ConfigError):
        LipsFrontend()(torch.randn(1, 5, 80))
    with pytest.raises(ConfigError):
        LipsFrontendConfig(kernel_size=4)


# -- RoiFrontend ---------------------------------------------------------------------------------


def test_roi_forward_tiny_batch(roi: RoiFrontend) -> None:
    crops = torch.randn(1, 3, 88, 88)
    with torch.no_grad():
        out = roi(crops)
        emb = roi.frame_embeddings(crops)
    assert out.shape == (1, 1664, 3) and roi.out_channels == 1664
    assert emb.shape == (1, 3, 512)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("frames", [1, 7])
def test_roi_small_config_shapes(frames: int) -> None:
    cfg = RoiFrontendConfig(block_config=(2, 2), growth_rates=(48, 48), reduced_size=64, se_reduction=4, act="prelu")
    model = RoiFrontend(cfg).eval()
    with torch.no_grad():
        out = model(torch.randn(2, frames, 88, 88), boundaries=torch.ones(2, frames))
    assert out.shape == (2, 64 + 2 * 48, frames)
    with pytest.raises(ConfigError):
        model(torch.randn(2, frames, 88, 88), boundaries=torch.ones(2, frames + 1))


def test_roi_config_validation() -> None:
    with pytest.raises(ConfigError):
        RoiFrontendConfig(growth_rates=(100, 384, 384, 384))  # not divisible by 3 kernels
    with pytest.raises(ConfigError):
        RoiFrontendConfig(act="gelu")


# -- checkpoint mapping --------------------------------------------------------------------------


def test_every_reference_name_maps_onto_a_module_tensor_of_the_same_shape(roi: RoiFrontend) -> None:
    ours = {k: tuple(v.shape) for k, v in roi.state_dict().items()}
    ref = reference_checkpoint_shapes()
    mapped = {}
    for name, shape in ref.items():
        if name.startswith("tcn.tcn_output."):
            assert map_lipreading_name(name) is None
            continue
        target = map_lipreading_name(name)
        assert target is not None, name
        assert ours[target] == shape, name
        mapped[target] = name
    assert set(mapped) == set(ours)  # a bijection: nothing of ours is left without a checkpoint tensor


def test_load_round_trip(roi: RoiFrontend) -> None:
    ref = _synthetic(reference_checkpoint_shapes())
    model = RoiFrontend().eval()
    report = load_lipreading_state_dict(model, {"model_state_dict": ref})
    assert report["ignored"] == ["tcn.tcn_output.weight", "tcn.tcn_output.bias"]
    assert report["loaded"] == len(ref) - 2
    sd = model.state_dict()
    assert torch.equal(sd["stem.conv.weight"], ref["frontend3D.0.weight"])
    assert torch.equal(sd["trunk.layer2.0.shortcut.bn.running_var"], ref["trunk.layer2.0.downsample.1.running_var"])
    key = "tcn.tcn_trunk.features.denseblock3.denselayer2.cbcr1_2.net.0.weight"
    assert torch.equal(sd["backend.block3.layer2.branch1.2.conv.weight"], ref[key])
    assert torch.equal(sd["backend.norm_out.bias"], ref["tcn.tcn_trunk.features.norm5.bias"])


def test_load_prelu_variant_and_module_prefix() -> None:
    cfg = RoiFrontendConfig(act="prelu")
    model = RoiFrontend(cfg)
    shapes = reference_checkpoint_shapes("prelu")
    ref = {f"module.{k}": v for k, v in _synthetic({k: v for k, v in shapes.items() if not k.endswith("num_batches_tracked")}).items()}
    report = load_lipreading_state_dict(model, ref)
    assert all(k.endswith("num_batches_tracked") for k in report["not_in_checkpoint"])
    assert torch.equal(model.state_dict()["trunk.layer4.1.act2.weight"], ref["module.trunk.layer4.1.relu2.weight"])


def test_load_reports_wrong_shape_missing_and_unexpected(roi: RoiFrontend) -> None:
    ref = _synthetic(reference_checkpoint_shapes())
    before = roi.state_dict()["backend.transition0.conv.weight"].clone()
    bad = dict(ref)
    bad["tcn.tcn_trunk.features.transition0.conv.weight"] = torch.zeros(512, 512, 1)  # no boundary channel
    with pytest.raises(ConfigError, match=r"1 mis-shaped: tcn\.tcn_trunk\.features\.transition0\.conv\.weight: checkpoint \(512, 512, 1\), expected \(512, 513, 1\)"):
        load_lipreading_state_dict(roi, bad)
    assert torch.equal(roi.state_dict()["backend.transition0.conv.weight"], before)  # nothing loaded

    bad = dict(ref)
    del bad["trunk.layer1.0.conv1.weight"]
    bad["trunk.fc.weight"] = torch.zeros(3)
    with pytest.raises(ConfigError) as err:
        load_lipreading_state_dict(roi, bad)
    assert "1 unexpected: trunk.fc.weight" in str(err.value)
    assert "1 missing: trunk.layer1.0.conv1.weight" in str(err.value)
